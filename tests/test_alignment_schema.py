"""The result schema: the JSON shape the issue fixes, the round trip, metrics and the networkx view."""

from __future__ import annotations

import json

import networkx as nx
import pytest

from ctkd_inspect import Alignment, align
from ctkd_inspect.alignment import SCHEMA_VERSION, GroupTable
from ctkd_inspect.metrics import covered_characters

TEXT = "The café costs 3.50€ 🦙 — naïve\tcode: x+=1"


@pytest.fixture(scope="module")
def result():
    return align("llama3", "gemma2", TEXT)


def test_json_has_the_required_shape(result, tok):
    data = json.loads(result.to_json())
    assert {"schema_version", "engine", "text", "teacher", "student", "groups", "metrics"} <= set(data)
    assert data["schema_version"] == SCHEMA_VERSION and data["engine"] == "span" and data["text"] == TEXT
    for side, name in (("teacher", "llama3"), ("student", "gemma2")):
        assert data[side]["name"] == name
        tokens = data[side]["tokens"]
        assert all({"id", "token", "start", "end", "special"} <= set(t) for t in tokens)
        # "token" is the raw vocabulary string, as convert_ids_to_tokens gives it
        assert [t["token"] for t in tokens] == tok(name).convert_ids_to_tokens([t["id"] for t in tokens])
    assert all(set(g) >= {"teacher", "student"} for g in data["groups"])
    assert "alignment_rate" in data["metrics"]
    # byte clusters are listed on both sides, empty where the side has none (one shape for consumers)
    assert [c["text"] for c in data["teacher"]["byte_clusters"]] == [" 🦙"] and data["student"]["byte_clusters"] == []
    assert data["teacher"]["tokens"][0]["token"] == "<|begin_of_text|>"
    assert data["student"]["tokens"][0]["token"] == "<bos>"


def test_round_trip(result):
    again = Alignment.from_json(result.to_json())
    assert again.to_dict() == result.to_dict()


def test_other_major_versions_are_refused(result):
    data = result.to_dict()
    data["schema_version"] = "2.0"
    with pytest.raises(ValueError, match="schema_version"):
        Alignment.from_dict(data)


def test_metrics_by_hand(result):
    """The README's metrics panel for this text, worked out from its group table (see the README): 16 groups, of
    which 12 are exact 1:1 (The, ␣café, ␣costs, ␣, 3, ., €, ␣—, :, ␣x, +=, 1), two 1:n (50 | 5 0, ⇥code | ⇥ code),
    one n:1 (␣naï ve | ␣naïve) and one n:m (the llama emoji); 19 non-special tokens a side (20 with BOS); the
    exact groups cover 3+5+6+1+1+1+1+2+1+2+2+1 = 26 of the 41 characters."""
    m = result.metrics
    assert m["groups"] == 16 and m["exact_groups"] == 12
    assert m["shapes"] == {"1:1": 12, "1:n": 2, "n:1": 1, "n:m": 1, "unmatched": 0}
    assert m["alignment_rate"] == pytest.approx(12 / 19) and round(m["alignment_rate"], 3) == 0.632  # README: 63.2%
    assert m["text_coverage_1to1"] == pytest.approx(26 / 41) == m["text_coverage_exact"]  # README: 63.4%
    assert m["fertility"] == 1.0 and m["max_group_tokens"] == 5
    assert m["tokens"] == {"teacher": {"all": 20, "non_special": 19}, "student": {"all": 20, "non_special": 19}}
    assert m["unmatched"]["teacher"] == {"special": 1, "zero-width": 0, "no-partner": 0}
    assert m["unmatched"]["student"] == {"special": 1, "zero-width": 0, "no-partner": 0}


def test_covered_characters_counts_overlaps_once():
    import numpy as np

    assert covered_characters(np.array([[0, 3], [2, 5], [7, 8]]), 10) == 6
    assert covered_characters(np.zeros((0, 2), dtype=int), 10) == 0


def test_networkx_components_are_the_groups(result):
    graph = result.to_networkx()
    assert nx.is_bipartite(graph)
    components = {frozenset(c) for c in nx.connected_components(graph)}
    groups = {frozenset([("teacher", i) for i in g.teacher] + [("student", j) for j in g.student])
              for g in result.groups}
    specials = {frozenset([("teacher", 0)]), frozenset([("student", 0)])}
    assert components == groups | specials
    assert graph.nodes[("teacher", 1)]["token"] == "The"


def test_networkx_keeps_non_overlapping_groups_connected():
    """A DTW-style group may pair tokens whose spans do not overlap; the graph still has it as one component."""
    from tests.engines.helpers import from_spans

    teacher = from_spans("t", "abcd", [(0, 2), (2, 4)])
    student = from_spans("s", "abcd", [(0, 1), (3, 4)])
    table = GroupTable.from_lists([[0, 1]], [[0, 1]])
    graph = Alignment(teacher, student, table, engine="test").to_networkx()
    assert nx.number_connected_components(graph) == 1


def test_group_table_round_trip_and_columns():
    table = GroupTable.from_lists([[0], [1, 2], []], [[0, 1], [2], [3]], {"cost": [0.0, 1.5, 2.0]})
    assert len(table) == 3 and table.teacher(1).tolist() == [1, 2] and table.student(2).tolist() == [3]
    groups = table.to_groups()
    assert groups[1].extra == {"cost": 1.5} and groups[2].shape == "unmatched" and groups[0].shape == "1:n"
