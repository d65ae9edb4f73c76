"""diff(a, b): hand-built cases whose every count and figure is worked out by hand from the definitions, a brute-force
oracle on real texts, the invariants on the corpus, and the vocabulary-mapping diff."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

import ctkd_inspect
from ctkd_inspect import align, load_tokenizer
from ctkd_inspect.alignment import Alignment, GroupTable
from ctkd_inspect.diffs import AlignmentDiff, diff, same_tokenization, vocab_diff
from ctkd_inspect.errors import InputError
from ctkd_inspect.text import Tokenization
from ctkd_inspect.vocab import VocabMapping, Vocabulary, exact_mapping, vocabulary
from tests.engines.helpers import from_spans


def aligned(teacher: Tokenization, student: Tokenization, teacher_groups, student_groups, engine="hand") -> Alignment:
    return Alignment(teacher, student, GroupTable.from_lists(teacher_groups, student_groups), engine=engine)


def counts(d: AlignmentDiff) -> tuple:
    return d.agree, d.split, d.merge, d.cross, d.cross_b


# -- hand-built cases -------------------------------------------------------------------------------------------

TEXT8 = "abcdefgh"
T8 = from_spans("t", TEXT8, [(0, 2), (2, 3), (3, 4), (4, 6), (6, 7), (7, 8)])  # ab c d ef g h
S8 = from_spans("s", TEXT8, [(0, 1), (1, 2), (2, 4), (4, 5), (5, 6), (6, 8)])  # a b cd e f gh


def test_all_four_kinds_with_a_one_sided_group():
    # a: A0 = ab|a b, A1 = c d|cd, A2 = ef|e f, A3 = g h|gh
    a = aligned(T8, S8, [[0], [1, 2], [3], [4, 5]], [[0, 1], [2], [3, 4], [5]])
    # b: B0 = A0; B1 = c|(none) and B2 = d|cd split A1; B3 = ef g h|e f gh merges A2 and A3
    b = aligned(T8, S8, [[0], [1], [2], [3, 4, 5]], [[0, 1], [], [2], [3, 4, 5]])
    d = diff(a, b)
    # A0 agrees; A1 is B1 ∪ B2 (split); A2 and A3 are each a strict part of B3 (cross); B3 = A2 ∪ A3 (merge);
    # B1 and B2 neither agree nor merge (cross_b)
    assert counts(d) == (1, 1, 1, 2, 2)
    assert d.differs and (d.groups_a, d.groups_b) == (4, 4)
    # boundaries: a teacher owners 0 1 1 2 3 3 → {0, 2, 3}; a student 0 0 1 2 2 3 → {1, 2, 4};
    # b teacher 0 1 2 3 3 3 → {0, 1, 2}; b student 0 0 2 3 3 3 → {1, 2}
    assert dict(d.boundaries_a) == {"teacher": (0, 2, 3), "student": (1, 2, 4)}
    assert dict(d.boundaries_b) == {"teacher": (0, 1, 2), "student": (1, 2)}
    # |B_a ∩ B_b| = |{T0, T2, S1, S2}| = 4, |B_b| = 5, |B_a| = 6
    assert d.boundary_precision == pytest.approx(4 / 5)
    assert d.boundary_recall == pytest.approx(4 / 6)
    assert d.boundary_f1 == pytest.approx(float(Fraction(8, 11)))
    assert [(r.group, r.kind, r.related) for r in d.disagreeing_a] == [(1, "split", (1, 2)), (2, "cross", (3,)),
                                                                        (3, "cross", (3,))]
    assert [(r.group, r.kind, r.related) for r in d.disagreeing_b] == [(1, "cross", (1,)), (2, "cross", (1,)),
                                                                        (3, "merge", (2, 3))]
    split = d.disagreeing_a[0]
    assert split.teacher == ((1, "c", 2, 3), (2, "d", 3, 4)) and split.student == ((2, "cd", 2, 4),)
    assert (split.start, split.end, split.shape) == (2, 4, "n:1")
    assert d.disagreeing_b[0].shape == "unmatched" and d.disagreeing_b[0].student == ()


def test_a_cross_where_neither_side_is_a_union():
    text = "abc"
    teacher = from_spans("t", text, [(0, 1), (1, 2), (2, 3)])
    student = from_spans("s", text, [(0, 2), (2, 3)])
    a = aligned(teacher, student, [[0, 1], [2]], [[0], [1]])  # A0 = a b|ab, A1 = c|c
    b = aligned(teacher, student, [[0], [1, 2]], [[], [0, 1]])  # B0 = a|(none), B1 = b c|ab c
    d = diff(a, b)
    # A0 touches B0 and B1 but B1 holds c too; A1 is a strict part of B1; B1 is not A0 ∪ A1 (it lacks a)
    assert counts(d) == (0, 0, 0, 2, 2) and d.differs
    # B_a = {T1, S0}, B_b = {T0}: nothing in common
    assert (d.boundary_precision, d.boundary_recall, d.boundary_f1) == (0.0, 0.0, 0.0)


def test_boundaries_are_not_counted_across_special_tokens():
    text = "xyz"
    teacher = from_spans("t", text, [(0, 0), (0, 1), (1, 1), (1, 2), (2, 3)], special=[True, False, True, False,
                                                                                       False])
    student = from_spans("s", text, [(0, 1), (1, 2), (2, 3)])
    a = aligned(teacher, student, [[1], [3], [4]], [[0], [1], [2]])
    b = aligned(teacher, student, [[1, 3], [4]], [[0, 1], [2]])  # one group across the special token
    d = diff(a, b)
    # teacher: the pairs (0,1), (1,2), (2,3) each touch a special token, so only i = 3 can be a boundary
    assert dict(d.boundaries_a) == {"teacher": (3,), "student": (0, 1)}
    assert dict(d.boundaries_b) == {"teacher": (3,), "student": (1,)}
    assert (d.boundary_precision, d.boundary_recall) == (1.0, pytest.approx(2 / 3))
    assert d.boundary_f1 == pytest.approx(0.8)
    assert counts(d) == (1, 0, 1, 2, 0)  # A2 agrees; B0 = A0 ∪ A1 merges them


def test_one_sided_groups_split_into_one_sided_groups():
    text = "abc"
    teacher = from_spans("t", text, [(0, 1), (1, 1), (1, 3)])
    student = from_spans("s", text, [(1, 3)])
    a = aligned(teacher, student, [[0, 1], [2]], [[], [0]])
    b = aligned(teacher, student, [[0], [1], [2]], [[], [], [0]])
    d = diff(a, b)
    assert counts(d) == (1, 1, 0, 0, 2)
    assert dict(d.boundaries_a) == {"teacher": (1,), "student": ()}
    assert dict(d.boundaries_b) == {"teacher": (0, 1), "student": ()}
    assert (d.boundary_precision, d.boundary_recall) == (0.5, 1.0)
    assert d.boundary_f1 == pytest.approx(2 / 3)


def test_empty_texts_and_one_empty_boundary_set():
    bos = from_spans("t", "", [(0, 0)], special=[True])
    empty = from_spans("s", "", [])
    a = aligned(bos, empty, [], [])
    d = diff(a, a)
    assert counts(d) == (0, 0, 0, 0, 0) and not d.differs
    assert (d.boundary_precision, d.boundary_recall, d.boundary_f1) == (1.0, 1.0, 1.0)
    # exactly one boundary set empty: b puts everything in one group
    text = "ab"
    teacher, student = from_spans("t", text, [(0, 1), (1, 2)]), from_spans("s", text, [(0, 1), (1, 2)])
    a = aligned(teacher, student, [[0], [1]], [[0], [1]])
    b = aligned(teacher, student, [[0, 1]], [[0, 1]])
    d = diff(a, b)
    assert (d.boundary_precision, d.boundary_recall, d.boundary_f1) == (0.0, 0.0, 0.0)
    assert counts(d) == (0, 0, 1, 2, 0)
    d = diff(b, a)
    assert (d.boundary_precision, d.boundary_recall, d.boundary_f1) == (0.0, 0.0, 0.0)
    assert counts(d) == (0, 1, 0, 0, 2)


def test_equal_partitions_differ_in_nothing_but_group_count_matters():
    text = "ab"
    teacher, student = from_spans("t", text, [(0, 1), (1, 2)]), from_spans("s", text, [(0, 2)])
    a = aligned(teacher, student, [[0, 1]], [[0]])
    b = aligned(teacher, student, [[0, 1]], [[0]], engine="other")
    d = diff(a, b)
    assert counts(d) == (1, 0, 0, 0, 0) and not d.differs and d.disagreeing_a == () == d.disagreeing_b
    # every group of a agrees, but b has one more (an empty group): the partitions still count as different
    c = Alignment(teacher, student, GroupTable.from_lists([[0, 1], []], [[0], []]), engine="other")
    assert diff(a, c).differs and diff(a, c).agree == 1


def byte_tokens(name: str, text: str, entries) -> Tokenization:
    """A SentencePiece-style tokenization: entries (vocabulary string, start, end); ids from a toy vocabulary."""
    n = len(entries)
    vocab = {"<0xC3>": 198, "<0xA9>": 172, "é": 300, "a": 301, "b": 302, "ab": 303}
    return Tokenization(name=name, text=text, ids=np.array([vocab[e[0]] for e in entries]),
                        tokens=[e[0] for e in entries],
                        starts=np.array([e[1] for e in entries]), ends=np.array([e[2] for e in entries]),
                        special=np.zeros(n, bool), scheme="sentencepiece")


def test_two_teachers_tokens_by_span_occurrence_and_bytes_boundaries_by_offset():
    text = "éab"
    student = from_spans("s", text, [(0, 1), (1, 3)])
    # teacher 1: "é" as two byte tokens sharing its span, then "ab"; teacher 2: the same bytes, then "a", "b";
    # teacher 3: "é" as one token
    t1 = byte_tokens("t1", text, [("<0xC3>", 0, 1), ("<0xA9>", 0, 1), ("ab", 1, 3)])
    t2 = byte_tokens("t2", text, [("<0xC3>", 0, 1), ("<0xA9>", 0, 1), ("a", 1, 2), ("b", 2, 3)])
    t3 = byte_tokens("t3", text, [("é", 0, 1), ("ab", 1, 3)])
    a = aligned(t1, student, [[0, 1], [2]], [[0], [1]])
    b = aligned(t2, student, [[0, 1], [2, 3]], [[0], [1]])
    d = diff(a, b)
    # the é group has the same two byte tokens (span, occurrence, bytes) on both: it agrees; "ab" vs "a", "b" is
    # neither equal nor a union of b's groups (b has one group there, with other tokens): cross
    assert counts(d) == (1, 0, 0, 1, 1) and d.differs
    assert dict(d.basis) == {"teacher": "offset", "student": "index"}
    # teacher boundaries by offset: a after token 1 (ends at 1); b after token 1 (1) only (a, b share a group)
    assert dict(d.boundaries_a) == {"teacher": (1,), "student": (0,)}
    assert dict(d.boundaries_b) == {"teacher": (1,), "student": (0,)}
    assert d.boundary_f1 == 1.0
    c = aligned(t3, student, [[0], [1]], [[0], [1]])
    d = diff(a, c)
    # "é" as one token is not the two byte tokens: no teacher token in common there; "ab" is the same token
    assert counts(d) == (1, 0, 0, 1, 1)
    # the byte tokens are told apart by their occurrence number: swapping their bytes breaks the match
    swapped = byte_tokens("t4", text, [("<0xA9>", 0, 1), ("<0xC3>", 0, 1), ("ab", 1, 3)])
    assert diff(a, aligned(swapped, student, [[0, 1], [2]], [[0], [1]])).agree == 1


def test_errors_name_the_argument():
    x = align("llama3", "gemma2", "one text")
    with pytest.raises(InputError, match="b aligns a different text"):
        diff(x, align("llama3", "gemma2", "another text"))
    with pytest.raises(InputError, match="differ in both tokenizations"):
        diff(x, align("llama2", "bert", "one text"))
    with pytest.raises(InputError, match="a must be an Alignment"):
        diff(x.to_dict(), x)
    with pytest.raises(InputError, match="b must be an Alignment"):
        diff(x, None)


def test_frozen_and_json_ready():
    a = align("llama3", "gemma2", "The café 🦙")
    d = diff(a, align("llama3", "gemma2", "The café 🦙", engine="mined"))
    with pytest.raises(AttributeError):
        d.agree = 0
    data = json.loads(json.dumps(d.to_dict()))
    assert {"agree", "split", "merge", "cross", "boundary_precision", "boundary_recall", "boundary_f1",
            "differs", "disagreeing", "boundaries"} <= set(data)
    assert data["a"] == {"engine": "span", "teacher": "llama3", "student": "gemma2"}
    assert data["b"]["engine"] == "mined"
    assert {r["kind"] for r in data["disagreeing"]["a"]} <= {"split", "cross"}
    assert {r["kind"] for r in data["disagreeing"]["b"]} <= {"merge", "cross"}
    assert ctkd_inspect.diff is diff and ctkd_inspect.AlignmentDiff is AlignmentDiff


# -- an independent oracle on real texts ------------------------------------------------------------------------


def token_names(tokens: Tokenization, by_index: bool) -> list:
    """Token identities written out directly: the index, or (span, occurrence within the span, bytes)."""
    if by_index:
        return list(range(len(tokens)))
    names, seen = [], {}
    for k, raw in enumerate(tokens.token_bytes()):
        span = (int(tokens.starts[k]), int(tokens.ends[k]))
        seen[span] = seen.get(span, -1) + 1
        names.append((span, seen[span], raw))
    return names


def group_sets(alignment: Alignment, by_index: dict) -> list[frozenset]:
    t_names = token_names(alignment.teacher, by_index["teacher"])
    s_names = token_names(alignment.student, by_index["student"])
    return [frozenset([("t", t_names[i]) for i in g.teacher] + [("s", s_names[j]) for j in g.student])
            for g in alignment.groups]


def oracle(a: Alignment, b: Alignment) -> dict:
    """The definitions, computed the slow, obvious way: sets of tagged tokens, all pairs of groups."""
    by_index = {side: same_tokenization(getattr(a, side), getattr(b, side)) for side in ("teacher", "student")}
    ga, gb = group_sets(a, by_index), group_sets(b, by_index)

    def is_union(group, others):
        parts = [o for o in others if o and o <= group]
        return len(parts) >= 2 and frozenset().union(*parts) == group

    agree = [g in gb for g in ga]
    split = [not agree[k] and is_union(g, gb) for k, g in enumerate(ga)]
    merge = [h not in ga and is_union(h, ga) for h in gb]

    def boundaries(alignment):
        out = set()
        for side, tag in (("teacher", "t"), ("student", "s")):
            tokens, owner = getattr(alignment, side), alignment.group_of(side)
            for i in range(len(tokens) - 1):
                if not tokens.special[i] and not tokens.special[i + 1] and owner[i] != owner[i + 1]:
                    out.add((tag, i if by_index[side] else int(tokens.ends[i])))
        return out

    ba, bb = boundaries(a), boundaries(b)
    return {"agree": sum(agree), "split": sum(split), "merge": sum(merge),
            "cross": len(ga) - sum(agree) - sum(split),
            "precision": len(ba & bb) / len(bb) if bb else (1.0 if not ba else 0.0),
            "recall": len(ba & bb) / len(ba) if ba else (1.0 if not bb else 0.0),
            "differs": set(ga) != set(gb) or len(ga) != len(gb)}


def check_against_oracle(a, b):
    d = diff(a, b)
    expected = oracle(a, b)
    assert (d.agree, d.split, d.merge, d.cross) == tuple(expected[k] for k in ("agree", "split", "merge", "cross"))
    assert d.boundary_precision == pytest.approx(expected["precision"])
    assert d.boundary_recall == pytest.approx(expected["recall"])
    assert d.differs == expected["differs"]
    return d


@pytest.fixture(scope="module")
def texts(corpus):
    return corpus[:150]


def test_span_vs_mined_on_real_texts_matches_the_oracle_and_the_invariants(texts):
    kinds = {"split": 0, "merge": 0, "cross": 0}
    for text in texts:
        a = align("llama3", "gemma2", text)
        b = align("llama3", "gemma2", text, engine="mined")
        d = check_against_oracle(a, b)
        assert d.agree + d.split + d.cross == len(a.groups)
        reverse = diff(b, a)
        assert reverse.boundary_recall == pytest.approx(d.boundary_precision)
        assert reverse.boundary_precision == pytest.approx(d.boundary_recall)
        assert (reverse.split, reverse.merge, reverse.agree) == (d.merge, d.split, d.agree)
        same = diff(a, a)
        assert same.agree == len(a.groups) and not same.differs and same.boundary_f1 == 1.0
        kinds["split"] += d.split
        kinds["cross"] += d.cross
        kinds["merge"] += reverse.merge  # mined never joins whole span groups here: merges show with roles swapped
    assert all(kinds.values())  # the real texts exercise every kind


def test_two_teachers_of_one_student_on_real_texts(texts):
    for text in texts[:60]:
        a = align("llama2", "gemma2", text)
        b = align("llama3", "gemma2", text)
        d = check_against_oracle(a, b)
        assert dict(d.basis) == {"teacher": "offset", "student": "index"}
        assert diff(b, a).boundary_recall == pytest.approx(d.boundary_precision)
    # a word both teachers cut alike (same span and bytes) agrees; "▁The" (llama2) is not "The" (llama3)
    a, b = align("llama2", "gemma2", "The costs"), align("llama3", "gemma2", "The costs")
    d = diff(a, b)
    assert (d.agree, d.cross) == (1, 1) and d.disagreeing_a[0].teacher[0][1] == " The"


# -- vocabulary mappings ----------------------------------------------------------------------------------------


def toy_vocab(name: str, raw: list[str]) -> Vocabulary:
    return Vocabulary(name, "plain", raw, [r for r in raw], np.zeros(len(raw), bool))


def mapping(kind, t2s, s2t, t_dist=None, s_dist=None) -> VocabMapping:
    t2s, s2t = np.array(t2s), np.array(s2t)
    t_dist = np.where(t2s >= 0, 0, -1) if t_dist is None else np.array(t_dist)
    s_dist = np.where(s2t >= 0, 0, -1) if s_dist is None else np.array(s_dist)
    return VocabMapping(kind, "canonical", "t", "s", t2s, t_dist, s2t, s_dist,
                        {"teacher_mappable": len(t2s), "student_mappable": len(s2t)})


def test_vocab_diff_by_hand():
    teacher = toy_vocab("t", ["a", "b", "c", "d", "e"])
    student = toy_vocab("s", ["a", "bb", "c", "x"])
    a = mapping("exact", [0, -1, 2, -1, -1], [0, -1, 2, -1])
    b = mapping("mined", [0, 1, 3, -1, 3], [0, 1, 2, -1], [0, 1, 1, -1, 1], [0, 1, 0, -1])
    d = vocab_diff(a, b, teacher_vocab=teacher, student_vocab=student)
    t2s = d.directions["teacher_to_student"]
    # a: 0→0, 2→2; b: 0→0, 1→1, 2→3, 4→3: agree {0}, differ {2}, only b {1, 4}, neither {3}
    assert {k: t2s[k] for k in ("agree", "differ", "only_a", "only_b", "neither")} == {
        "agree": 1, "differ": 1, "only_a": 0, "only_b": 2, "neither": 1}
    assert t2s["examples"]["differ"][0] == {"id": 2, "token": "c", "a": {"id": 2, "token": "c", "distance": 0},
                                            "b": {"id": 3, "token": "x", "distance": 1}}
    assert [e["id"] for e in t2s["examples"]["only_b"]] == [1, 4]
    assert t2s["examples"]["only_b"][0]["a"] == {"id": -1, "token": None, "distance": -1}
    s2t = d.directions["student_to_teacher"]
    assert (s2t["agree"], s2t["differ"], s2t["only_a"], s2t["only_b"], s2t["neither"]) == (2, 0, 0, 1, 1)
    assert d.differs
    assert d.coverage_a["teacher"]["mapped"] == 2 and d.coverage_b["teacher"]["mapped"] == 4
    data = json.loads(json.dumps(d.to_dict()))
    assert data["a"]["kind"] == "exact" and data["b"]["kind"] == "mined"
    assert not vocab_diff(a, a).differs
    # examples are capped and spread over the category
    assert len(vocab_diff(a, b, limit=1).directions["teacher_to_student"]["examples"]["only_b"]) == 1


def test_vocab_diff_refuses_mappings_of_other_pairs():
    a = mapping("exact", [0, -1], [0])
    with pytest.raises(InputError, match="different tokenizer pairs"):
        vocab_diff(a, mapping("exact", [0, -1, 1], [0]))
    with pytest.raises(InputError, match="student vocabulary of 2 ids"):
        vocab_diff(a, mapping("exact", [0, -1], [0, 1]))
    with pytest.raises(InputError, match="teacher_vocab has 3 ids"):
        vocab_diff(a, a, teacher_vocab=toy_vocab("t", ["a", "b", "c"]))
    with pytest.raises(InputError, match="b must be a VocabMapping"):
        vocab_diff(a, {"kind": "exact"})


def test_vocab_diff_exact_canonical_vs_reference_on_real_tokenizers():
    teacher, student = vocabulary(load_tokenizer("llama2"), "llama2"), vocabulary(load_tokenizer("gpt2"), "gpt2")
    canonical, reference = exact_mapping(teacher, student), exact_mapping(teacher, student, "reference")
    d = vocab_diff(canonical, reference, teacher_vocab=teacher, student_vocab=student, limit=5)
    t2s = d.directions["teacher_to_student"]
    assert t2s["agree"] + t2s["differ"] + t2s["only_a"] + t2s["only_b"] + t2s["neither"] == len(teacher)
    # canonical bytes meet byte-level strings that FuseLLM's marker replacement misses: "▁the" → "Ġthe" in both,
    # but e.g. "é" → "Ã©" only canonically
    assert t2s["only_a"] > t2s["only_b"] and t2s["agree"] > 0
    assert t2s["agree"] == int(((canonical.teacher_to_student >= 0)
                                & (canonical.teacher_to_student == reference.teacher_to_student)).sum())
    for row in t2s["examples"]["only_a"]:
        assert canonical.teacher_to_student[row["id"]] == row["a"]["id"] >= 0
        assert reference.teacher_to_student[row["id"]] == -1 and row["token"] == teacher.raw[row["id"]]


# -- rendering through the presentation model -------------------------------------------------------------------


def test_diff_segments_flag_the_disagreeing_groups_on_both_alignments():
    from ctkd_inspect.render import diff_rows, diff_segments

    a = aligned(T8, S8, [[0], [1, 2], [3], [4, 5]], [[0, 1], [2], [3, 4], [5]])
    b = aligned(T8, S8, [[0], [1], [2], [3, 4, 5]], [[0, 1], [], [2], [3, 4, 5]])
    d = diff(a, b)
    # a: only A0 agrees (teacher token 0, student tokens 0 and 1)
    assert [c.disagree for c in diff_segments(a, d, "a", "teacher")] == [False, True, True, True, True, True]
    assert [c.disagree for c in diff_segments(a, d, "a", "student")] == [False, False, True, True, True, True]
    assert [(c.group, c.disagree) for c in diff_segments(b, d, "b", "teacher")] == [
        (0, False), (1, True), (2, True), (3, True), (3, True), (3, True)]
    # the cells are the plain view's cells, flag aside
    plain = [c for c in diff_segments(b, d, "b", "student")]
    from ctkd_inspect.render import segments

    assert [(c.tokens, c.group, c.status, c.palette) for c in plain] == [
        (c.tokens, c.group, c.status, c.palette) for c in segments(b, "student")]
    with pytest.raises(ValueError, match="groups"):
        diff_segments(a, diff(a, aligned(T8, S8, [[0, 1, 2, 3, 4, 5]], [[0, 1, 2, 3, 4, 5]])), "b", "teacher")
    rows = diff_rows(d)
    assert [(r["which"], r["group"], r["kind"]) for r in rows] == [
        ("a", 1, "split"), ("a", 2, "cross"), ("a", 3, "cross"), ("b", 1, "cross"), ("b", 2, "cross"),
        ("b", 3, "merge")]
    assert rows[0]["teacher"] == ["c", "d"] and rows[0]["student"] == ["cd"] and rows[0]["related"] == [1, 2]
    assert len(diff_rows(d, limit=2)) == 2


def test_rich_side_by_side_view():
    from rich.console import Console

    from ctkd_inspect.render import diff_segments
    from ctkd_inspect.rich_view import _AGREEING_STYLE, diff_ribbon, render_diff

    text = "The café 3.50€"
    a, b = align("llama3", "gemma2", text), align("llama3", "gemma2", text, engine="mined")
    d = diff(a, b)
    console = Console(width=100, color_system=None, record=True)
    render_diff(console, a, b, d)
    out = console.export_text()
    assert "a  span · llama3 → gemma2" in out and "b  mined · llama3 → gemma2" in out
    assert "«.»" in out and "«50»" in out  # llama3's "50" is one group with gemma2's 5 0 under span only
    assert f"precision {d.boundary_precision:.3f}" in out and "the alignments differ" in out
    ribbon = diff_ribbon(a, d, "a", "teacher")
    flagged = [cell for cell in diff_segments(a, d, "a", "teacher") if cell.disagree]
    styles = [str(span.style) for span in ribbon.spans]
    assert sum("underline" in s for s in styles) == len(flagged) > 0
    assert _AGREEING_STYLE in styles
    console = Console(width=100, color_system=None, record=True)
    render_diff(console, a, a, diff(a, a))
    out = console.export_text()
    ribbons = [line for line in out.splitlines() if line.startswith(("a <", "b <"))]
    assert len(ribbons) == 4 and not any("«" in line for line in ribbons) and "the same groups" in out


def test_mapping_specs_files_and_progress_stages(tmp_path):
    from ctkd_inspect.diffs import mapping_from_spec
    from ctkd_inspect.progress import reporting

    teacher = Vocabulary("t", "plain", ["the", "cat", "dogs", ""], ["the", "cat", "dogs", ""], np.zeros(4, bool))
    student = Vocabulary("s", "plain", ["the", "cats", "dog"], ["the", "cats", "dog"], np.zeros(3, bool))
    exact = mapping_from_spec("exact", teacher, student)
    assert exact.kind == "exact" and exact.teacher_to_student.tolist() == [0, -1, -1, -1]

    class Recorder:
        def __init__(self):
            self.events = []

        def start(self, stage):
            self.events.append(("start", stage.name))

        def update(self, stage):
            pass

        def finish(self, stage):
            self.events.append(("finish", stage.name, stage.completed, stage.total))

    recorder = Recorder()
    with reporting(recorder):
        mined = mapping_from_spec("mined:reference", teacher, student, cache_dir=tmp_path)
    assert (mined.kind, mined.mode) == ("mined", "reference")
    assert mined.teacher_to_student.tolist() == [0, 1, 2, -1]  # cat→cats, dogs→dog at distance 1
    names = [e[1] for e in recorder.events if e[0] == "start"]
    assert names == ["MinED vocabulary mapping teacher→student", "MinED vocabulary mapping student→teacher"]
    assert all(e[2] == e[3] == 3 for e in recorder.events if e[0] == "finish")
    saved = mined.save(tmp_path / "mined.json")
    again = mapping_from_spec(str(saved), teacher, student, option="--b")
    assert not vocab_diff(mined, again).differs
    d = vocab_diff(exact, again, teacher_vocab=teacher, student_vocab=student)
    assert d.directions["teacher_to_student"]["only_b"] == 2
    other = Vocabulary("o", "plain", ["x"], ["x"], np.zeros(1, bool))
    with pytest.raises(InputError, match=r"--b .*maps t \(4 ids\) to s \(3 ids\), not t \(4 ids\) to o \(1 ids\)"):
        mapping_from_spec(str(saved), teacher, other, option="--b")
    with pytest.raises(InputError, match="--a 'fuzzy': not a mapping spec"):
        mapping_from_spec("fuzzy", teacher, student, option="--a")
    with pytest.raises(InputError, match="--a: no such mapping file"):
        mapping_from_spec(str(tmp_path / "missing.npz"), teacher, student, option="--a")


@pytest.mark.slow
def test_invariants_on_the_whole_corpus(corpus):
    """Every text of the corpus: span vs mined (llama3 × gemma2) and two teachers (llama2, llama3 × gemma2)."""
    from ctkd_inspect.engines.dtw import MinedEngine
    from ctkd_inspect.engines.span import SpanEngine
    from ctkd_inspect.text import tokenize_corpus

    llama2, llama3, gemma2 = (tokenize_corpus(load_tokenizer(name), corpus) for name in ("llama2", "llama3", "gemma2"))
    span, mined = SpanEngine(), MinedEngine()
    for k in range(len(corpus)):
        a = span.align(llama3[k], gemma2[k])
        for b in (mined.align(llama3[k], gemma2[k]), span.align(llama2[k], gemma2[k])):
            d, reverse = diff(a, b), diff(b, a)
            assert d.agree + d.split + d.cross == len(a.groups)
            assert reverse.agree + reverse.split + reverse.cross == len(b.groups)
            assert d.boundary_precision == pytest.approx(reverse.boundary_recall)
            assert (d.agree, d.split, d.merge, d.differs) == (reverse.agree, reverse.merge, reverse.split,
                                                             reverse.differs)
        same = diff(a, a)
        assert same.agree == len(a.groups) and not same.differs and same.boundary_f1 == 1.0
