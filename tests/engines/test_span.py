"""The span-component engine: hand vectors, the sweep against networkx, and properties on real tokenizers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctkd_inspect import align
from ctkd_inspect.alignment import GroupTable
from ctkd_inspect.engines import span
from ctkd_inspect.engines.span import (
    SpanEngine,
    _components_general,
    _components_sorted,
    _load_kernel,
    _sorted_groups_numpy,
    span_groups,
)
from ctkd_inspect.errors import EngineError

from .helpers import assert_engine_invariants, from_pieces, from_spans

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from two_pointer import two_pointer_groups


def groups_of(alignment):
    return [(list(g.teacher), list(g.student)) for g in alignment.groups]


# --------------------------------------------------------------------------------------------------------------
# hand vectors (research/methods.md §9)


@pytest.mark.parametrize("strip", [False, True])
def test_sedi_clowder_groups(strip):
    """Vector 5: 'A group of cats is called a clowder.' (the expected groups, written teacher first)."""
    teacher = from_pieces("t", ["A", " group", " of", " cats", " is", " call", "ed", " a", " cl", "owder", "."],
                          strip_leading_space=strip)
    student = from_pieces("s", ["A", " group", " of", " c", "ats", " is", " called", " a", " c", "low", "der", "."],
                          strip_leading_space=strip)
    result = SpanEngine().align(teacher, student)
    assert groups_of(result) == [([0], [0]), ([1], [1]), ([2], [2]), ([3], [3, 4]), ([4], [5]), ([5, 6], [6]),
                                 ([7], [7]), ([8, 9], [8, 9, 10]), ([10], [11])]
    assert result.shapes() == ["1:1", "1:1", "1:1", "1:n", "1:1", "n:1", "1:1", "n:m", "1:1"]
    assert_engine_invariants(result)


def test_crossing_characters_make_one_group():
    """Vector 3: teacher ab|c, student a|bc -> one 2:2 group (DTW would report two 1:1 pairs)."""
    result = SpanEngine().align(from_pieces("t", ["ab", "c"]), from_pieces("s", ["a", "bc"]))
    assert groups_of(result) == [([0, 1], [0, 1])]
    assert result.metrics["alignment_rate"] == 0.0


def test_touching_spans_do_not_connect_and_zero_width_is_alone():
    """Vector 6: (0,3) and (3,5) only touch; a zero-width token at 5 forms a group with no partner."""
    teacher = from_spans("t", "abcde", [(0, 3), (3, 5), (5, 5)])
    student = from_spans("s", "abcde", [(0, 3), (3, 5)])
    result = SpanEngine().align(teacher, student)
    assert groups_of(result) == [([0], [0]), ([1], [1]), ([2], [])]
    assert result.unmatched()["teacher"] == [{"index": 2, "reason": "zero-width"}]
    assert result.metrics["unmatched"]["teacher"]["zero-width"] == 1
    assert_engine_invariants(result)


def test_zero_width_between_groups_comes_before_the_group_starting_there():
    teacher = from_spans("t", "abcde", [(0, 3), (3, 5)])
    student = from_spans("s", "abcde", [(0, 3), (3, 3), (3, 5)])
    result = SpanEngine().align(teacher, student)
    assert groups_of(result) == [([0], [0]), ([], [1]), ([1], [2])]
    assert_engine_invariants(result)


def test_zero_width_inside_a_group_is_carried_by_it():
    teacher = from_spans("t", "abcdef", [(0, 3), (3, 3), (3, 6)])
    student = from_spans("s", "abcdef", [(0, 6)])
    assert groups_of(SpanEngine().align(teacher, student)) == [([0, 1, 2], [0])]


def test_special_tokens_are_in_no_group():
    teacher = from_spans("t", "hello", [(0, 0), (0, 5)], special=[True, False])
    student = from_spans("s", "hello", [(0, 2), (2, 5), (0, 0)], special=[False, False, True])
    result = SpanEngine().align(teacher, student)
    assert groups_of(result) == [([1], [0, 1])]
    assert result.unmatched() == {"teacher": [{"index": 0, "reason": "special"}],
                                  "student": [{"index": 2, "reason": "special"}]}


def test_uncovered_characters_leave_tokens_without_partner():
    """BERT drops whitespace: the teacher's space token has no student partner."""
    teacher = from_spans("t", "a b", [(0, 1), (1, 2), (2, 3)])
    student = from_spans("s", "a b", [(0, 1), (2, 3)])
    result = SpanEngine().align(teacher, student)
    assert groups_of(result) == [([0], [0]), ([1], []), ([2], [1])]
    assert result.unmatched()["teacher"] == [{"index": 1, "reason": "no-partner"}]


def test_engine_rejects_options_and_mismatched_texts():
    t = from_pieces("t", ["ab"])
    with pytest.raises(EngineError, match="no options"):
        SpanEngine().align(t, t, band=3)
    with pytest.raises(EngineError, match="different texts"):
        span_groups(t, from_pieces("s", ["ac"]))


def test_empty_text_gives_no_groups_and_none_rates():
    result = align("llama3", "gemma2", "")
    assert len(result.table) == 0
    assert result.metrics["alignment_rate"] is None and result.metrics["text_coverage_1to1"] is None
    assert result.unmatched()["teacher"] == [{"index": 0, "reason": "special"}]  # <|begin_of_text|>


# --------------------------------------------------------------------------------------------------------------
# the sweep against networkx on fuzzed spans


def networkx_partition(ts, te, ss, se):
    graph = nx.Graph()
    graph.add_nodes_from([("t", i) for i in range(len(ts))] + [("s", j) for j in range(len(ss))])
    graph.add_edges_from((("t", i), ("s", j)) for i in range(len(ts)) for j in range(len(ss))
                         if ts[i] < se[j] and ss[j] < te[i])
    return {frozenset(c) for c in nx.connected_components(graph)}


def our_partition(t_comp, s_comp):
    parts: dict = {}
    singles = set()
    for side, comp in (("t", t_comp), ("s", s_comp)):
        for k, c in enumerate(comp):
            if c < 0:
                singles.add(frozenset([(side, k)]))
            else:
                parts.setdefault(c, set()).add((side, k))
    return {frozenset(p) for p in parts.values()} | singles


@st.composite
def sorted_spans(draw, length):
    """Spans as real tokenizers produce them: a left-to-right cut, with gaps, shared byte spans, overlaps."""
    spans, position = [], 0
    while position < length:
        step = draw(st.integers(1, 4))
        kind = draw(st.sampled_from(["token", "token", "token", "gap", "bytes", "prefix"]))
        end = min(length, position + step)
        if kind == "gap":
            pass
        elif kind == "bytes":  # several tokens sharing one character's span
            spans += [(position, position + 1)] * draw(st.integers(2, 4))
            end = position + 1
        elif kind == "prefix":  # a lone marker token overlapping the next token (Llama 2's leading space)
            spans += [(position, position + 1), (position, end)]
        else:
            spans.append((position, end))
        position = end
    return spans


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_sorted_sweep_equals_networkx(data):
    length = data.draw(st.integers(1, 40))
    t = data.draw(sorted_spans(length))
    s = data.draw(sorted_spans(length))
    ts, te = (np.array([a for a, _ in t], dtype=np.int64), np.array([b for _, b in t], dtype=np.int64))
    ss, se = (np.array([a for a, _ in s], dtype=np.int64), np.array([b for _, b in s], dtype=np.int64))
    expected = networkx_partition(ts, te, ss, se)
    t_comp, s_comp, _ = _components_sorted(ts, te, ss, se)
    assert our_partition(t_comp, s_comp) == expected
    t_comp, s_comp, _ = _components_general(ts, te, ss, se)
    assert our_partition(t_comp, s_comp) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(1, 8)), max_size=25),
       st.lists(st.tuples(st.integers(0, 30), st.integers(1, 8)), max_size=25))
def test_general_union_find_equals_networkx_on_unsorted_spans(t, s):
    ts = np.array([a for a, _ in t], dtype=np.int64)
    te = ts + np.array([w for _, w in t], dtype=np.int64)
    ss = np.array([a for a, _ in s], dtype=np.int64)
    se = ss + np.array([w for _, w in s], dtype=np.int64)
    t_comp, s_comp, _ = _components_general(ts, te, ss, se)
    assert our_partition(t_comp, s_comp) == networkx_partition(ts, te, ss, se)


# --------------------------------------------------------------------------------------------------------------
# the whole grouping against a plain-Python statement of the rules, on every path of the kernel


def reference_groups(teacher, student):
    """The span groups by definition, slowly: components of the overlap graph of the non-special, non-empty
    tokens; an empty token joins the unit of the nearest non-empty tokens before and after it on its side when
    they share one, else stands alone; units ordered by (start, end, first member, teachers before students)."""
    sides = {"t": teacher, "s": student}
    parent: dict = {}

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    def wide(x, k):
        return not x.special[k] and x.ends[k] > x.starts[k]

    for side, x in sides.items():
        parent.update({(side, k): (side, k) for k in range(len(x.starts)) if wide(x, k)})
    for i in range(len(teacher.starts)):
        for j in range(len(student.starts)):
            if wide(teacher, i) and wide(student, j) and teacher.starts[i] < student.ends[j] \
                    and student.starts[j] < teacher.ends[i]:
                parent[find(("t", i))] = find(("s", j))
    unit = {}
    for side, x in sides.items():
        size = len(x.starts)
        for k in range(size):
            if x.special[k]:
                continue
            if wide(x, k):
                unit[(side, k)] = find((side, k))
                continue
            before = [find((side, q)) for q in range(k - 1, -1, -1) if wide(x, q)][:1]
            after = [find((side, q)) for q in range(k + 1, size) if wide(x, q)][:1]
            unit[(side, k)] = before[0] if before and before == after else (side, k)
    members: dict = {}
    for (side, k), u in unit.items():
        members.setdefault(u, []).append((side, k))
    n = len(teacher.starts)

    def key(u):
        spans = [(int(sides[side].starts[k]), int(sides[side].ends[k])) for side, k in members[u]]
        first = min(k if side == "t" else n + k for side, k in members[u])
        return min(a for a, _ in spans), max(b for _, b in spans), first

    return [(sorted(k for side, k in members[u] if side == "t"), sorted(k for side, k in members[u] if side == "s"))
            for u in sorted(members, key=key)]


def table_groups(table):
    return [(table.teacher(g).tolist(), table.student(g).tolist()) for g in range(len(table))]


@st.composite
def token_spans(draw, length):
    """One side's spans: sorted as tokenizers make them (then the one-pass path runs), with empty or reversed
    tokens added (sorted path with unit keys), or in any order (union-find); special tokens anywhere. No end is
    negative (an offset never is)."""
    kind = draw(st.sampled_from(["sorted", "sorted", "with-empty", "any"]))
    if kind == "any":
        spans = draw(st.lists(st.tuples(st.integers(0, length), st.integers(-1, 5)).map(
            lambda p: (p[0], max(0, p[0] + p[1]))), max_size=16))
    else:
        spans = draw(sorted_spans(length))
        if kind == "with-empty":
            for _ in range(draw(st.integers(1, 3))):
                at = draw(st.integers(0, len(spans)))
                position = draw(st.integers(0, length))
                spans.insert(at, (position, max(0, position - draw(st.integers(0, 1)))))
    special = draw(st.lists(st.sampled_from([False] * 6 + [True]), min_size=len(spans), max_size=len(spans)))
    return spans, special


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_groups_equal_the_rules_on_every_path(data):
    from ctkd_inspect.engines._span_kernel import span_groups_many

    pairs = []
    for _ in range(data.draw(st.integers(1, 3))):
        length = data.draw(st.integers(1, 30))
        text = "x" * length
        (t, t_special), (s, s_special) = data.draw(token_spans(length)), data.draw(token_spans(length))
        teacher = from_spans("t", text, t, special=t_special)
        student = from_spans("s", text, s, special=s_special)
        table = span_groups(teacher, student)
        assert table_groups(table) == reference_groups(teacher, student)
        assert table.teacher_indices.dtype == table.student_offsets.dtype == np.int64
        pairs.append((teacher, student, table))
    # corpus mode, on the same pairs concatenated, gives the same tables
    cat = {field: [np.concatenate([getattr(p[side], field) for p in pairs]) for side in (0, 1)]
           for field in ("starts", "ends", "special")}
    bounds = [np.cumsum([0] + [len(p[side].starts) for p in pairs]) for side in (0, 1)]
    t_off, t_idx, s_off, s_idx, off_at, t_at, s_at = span_groups_many(
        cat["starts"][0], cat["ends"][0], cat["special"][0], bounds[0],
        cat["starts"][1], cat["ends"][1], cat["special"][1], bounds[1])
    for i, (_, _, table) in enumerate(pairs):
        assert np.array_equal(t_off[off_at[i]:off_at[i + 1]], table.teacher_offsets)
        assert np.array_equal(s_off[off_at[i]:off_at[i + 1]], table.student_offsets)
        assert np.array_equal(t_idx[t_at[i]:t_at[i + 1]], table.teacher_indices)
        assert np.array_equal(s_idx[s_at[i]:s_at[i + 1]], table.student_indices)


# --------------------------------------------------------------------------------------------------------------
# the numpy form of the one-pass sweep against the compiled kernel


def compiled_arrays(teacher, student):
    """The compiled kernel's four CSR arrays for one text, whatever path span_groups would take."""
    out, a, b, c, d, e, f, h = _load_kernel().span_groups_arrays(teacher.starts, teacher.ends, teacher.special,
                                                                 student.starts, student.ends, student.special)
    return out[a:b], out[:c], out[d:e], out[f:h]


def usual_case(tokens) -> bool:
    """Whether one side is what the numpy form takes, stated in plain Python: every non-special token non-empty,
    and their starts and ends each non-decreasing."""
    spans = [(int(a), int(b)) for a, b, sp in zip(tokens.starts, tokens.ends, tokens.special) if not sp]
    return (all(b > a for a, b in spans) and all(x[0] <= y[0] for x, y in pairwise(spans))
            and all(x[1] <= y[1] for x, y in pairwise(spans)))


def assert_numpy_form_matches(teacher, student) -> bool:
    """The numpy form gives the compiled kernel's arrays exactly (values and int64) on the usual case and declines
    every other input; returns whether it answered."""
    arrays = _sorted_groups_numpy(teacher.starts, teacher.ends, teacher.special, student.starts, student.ends,
                                  student.special)
    if not (usual_case(teacher) and usual_case(student)):
        assert arrays is None
        return False
    assert arrays is not None
    for name, ours, theirs in zip(("t_off", "t_idx", "s_off", "s_idx"), arrays, compiled_arrays(teacher, student)):
        assert ours.dtype == theirs.dtype == np.int64, name
        assert ours.tolist() == theirs.tolist(), name
    return True


@pytest.mark.parametrize("special", [True, False], ids=["with-special", "without-special"])
@pytest.mark.parametrize(("teacher", "student"), [("llama3", "gemma2"), ("gemma3", "smollm2"), ("bert", "llama3"),
                                                  ("llama2", "mistral")])
def test_numpy_form_equals_the_compiled_kernel_on_the_corpus(teacher, student, special, corpus, tok):
    from ctkd_inspect.text import tokenize_corpus

    texts = [*corpus, "", "hi", " ", "\n\n", "🦙🦙", "a  b"]
    t_corpus = tokenize_corpus(tok(teacher), texts, add_special_tokens=special)
    s_corpus = tokenize_corpus(tok(student), texts, add_special_tokens=special)
    answered = sum(assert_numpy_form_matches(t_corpus[i], s_corpus[i]) for i in range(len(texts)))
    assert answered >= 0.9 * len(texts)  # the usual case is the usual one: the numpy form is what runs


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_numpy_form_equals_the_compiled_kernel_on_fuzzed_spans(data):
    """Sorted cuts with touching spans, byte tokens sharing a span, gaps (tokens with no partner), marker tokens,
    special tokens anywhere, one side empty; and inputs the numpy form must decline (empty or unsorted spans)."""
    length = data.draw(st.integers(0, 40))
    text = "x" * length
    sides = []
    for _ in range(2):
        if length == 0 or data.draw(st.integers(0, 9)) == 0:
            spans, special = [], []
        elif data.draw(st.booleans()):
            spans = data.draw(sorted_spans(length))
            special = data.draw(st.lists(st.sampled_from([False] * 6 + [True]), min_size=len(spans),
                                         max_size=len(spans)))
        else:
            spans, special = data.draw(token_spans(length))
        if data.draw(st.booleans()):  # a BOS-like special token with an empty span in front
            spans, special = [(0, 0), *spans], [True, *special]
        sides.append(from_spans("t", text, spans, special=special))
    teacher, student = sides
    if assert_numpy_form_matches(teacher, student):
        table = GroupTable.from_arrays(*_sorted_groups_numpy(teacher.starts, teacher.ends, teacher.special,
                                                             student.starts, student.ends, student.special))
        assert table_groups(table) == reference_groups(teacher, student)


def test_span_groups_uses_numpy_until_the_kernel_is_loaded_or_the_budget_spent(monkeypatch):
    """One definition of the result, two paths: while the kernel is not loaded the numpy form answers (and its
    time is counted); with the budget spent, or the kernel loaded, the compiled kernel does; an input the numpy
    form declines goes to the kernel too."""
    calls = []

    def counted(*arrays):
        calls.append(len(arrays[0]))
        return _sorted_groups_numpy(*arrays)

    teacher = from_pieces("t", ["A", " group", " of", " cats"])
    student = from_pieces("s", ["A", " gr", "oup", " of cats"])
    expected = [([0], [0]), ([1], [1, 2]), ([2, 3], [3])]
    monkeypatch.setattr(span, "_sorted_groups_numpy", counted)
    monkeypatch.setattr(span, "_KERNEL", None)
    monkeypatch.setattr(span, "_one_text_spent", 0.0)
    assert table_groups(span_groups(teacher, student)) == expected
    assert calls == [4] and span._KERNEL is None and span._one_text_spent > 0
    # an empty token between two groups: alone, before the group starting where it stands (the kernel's rules)
    declined = from_spans("s", teacher.text, [(0, 1), (1, 1), (1, 15)])
    assert table_groups(span_groups(teacher, declined)) == [([0], [0]), ([], [1]), ([1, 2, 3], [2])]
    assert len(calls) == 2 and span._KERNEL is not None
    assert table_groups(span_groups(teacher, student)) == expected  # the kernel is loaded now
    assert len(calls) == 2
    monkeypatch.setattr(span, "_KERNEL", None)
    monkeypatch.setattr(span, "_one_text_spent", span.ONE_TEXT_BUDGET_S)  # budget spent: the kernel is loaded
    assert table_groups(span_groups(teacher, student)) == expected
    assert len(calls) == 2 and span._KERNEL is not None


def test_span_groups_builds_the_table_worked_out_by_hand():
    """span_groups builds its table with GroupTable.from_arrays (no re-checking: the constructor costs more than
    the sweep); its arrays must be the CSR table worked out by hand, with the constructor's int64 types.

    Teacher "A" (0, 1), " group" (1, 7), " of" (7, 10), " cats" (10, 15); student "A" (0, 1), " gr" (1, 4),
    "oup" (4, 7), " of cats" (7, 15): groups {A | A}, {␣group | ␣gr, oup}, {␣of, ␣cats | ␣of cats}."""
    teacher = from_pieces("t", ["A", " group", " of", " cats"])
    student = from_pieces("s", ["A", " gr", "oup", " of cats"])
    fast = span_groups(teacher, student)
    expected = {"teacher_offsets": [0, 1, 2, 4], "teacher_indices": [0, 1, 2, 3],
                "student_offsets": [0, 1, 3, 4], "student_indices": [0, 1, 2, 3]}
    assert type(fast) is GroupTable and fast.columns == {}
    for slot, values in expected.items():
        array = getattr(fast, slot)
        assert array.dtype == np.int64 and array.tolist() == values, slot


CACHE_PROBE = """
import json, numpy as np
from ctkd_inspect.engines import _span_kernel as kernel
from ctkd_inspect.text import Tokenization

def tokens(spans):
    n = len(spans)
    return Tokenization(name="x", text="abcdef", ids=np.arange(n), tokens=["?"] * n,
                        starts=np.array([a for a, _ in spans], dtype=np.int64),
                        ends=np.array([b for _, b in spans], dtype=np.int64), special=np.zeros(n, dtype=bool))

t, s = tokens([(0, 2), (2, 6)]), tokens([(0, 3), (3, 6)])
kernel.span_groups_arrays(t.starts, t.ends, t.special, s.starts, s.ends, s.special)  # span_groups may take numpy
kernel.span_groups_many(t.starts, t.ends, t.special, np.array([0, 2]), s.starts, s.ends, s.special, np.array([0, 2]))
stats = {name: getattr(kernel, name).stats for name in ("span_groups_arrays", "span_groups_many")}
print(json.dumps({name: [sum(st.cache_hits.values()), sum(st.cache_misses.values())] for name, st in stats.items()}))
"""


def test_a_second_process_loads_the_kernel_from_numbas_cache():
    """The kernel is compiled once and then loaded from disk: a second process has cache hits and no misses
    (kernels defined in a closure missed, and recompiled for seconds, in every process)."""
    env = {**os.environ, "NUMBA_DISABLE_JIT": "0"}
    runs = [subprocess.run([sys.executable, "-c", CACHE_PROBE], capture_output=True, text=True, env=env, timeout=600)
            for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    second = json.loads(runs[1].stdout.strip().splitlines()[-1])
    for name, (hits, misses) in second.items():
        assert hits >= 1 and misses == 0, f"{name}: {hits} cache hits, {misses} misses in the second process"


# --------------------------------------------------------------------------------------------------------------
# real tokenizer pairs and random Unicode

PAIRS = [("llama3", "gemma2"), ("gemma3", "smollm2"), ("llama2", "qwen2"), ("mistral", "gpt2"), ("xlm-r", "bert"),
         ("phi3", "llama3"), ("tekken", "gemma3")]
TRICKY = ["🦙", "👩‍👩‍👧‍👦", "é", "e\u0301", "\u200b", "\t", "\n", "  ", "\x00", "مرحبا", "日本語", "ﬁ", "Ⅻ",
          "\u00a0", "🇩🇪", "ẞ", "İ", "\ufeff", "\r\n", "𝔘", "ǅ", "a" * 120]
text_strategy = st.lists(st.one_of(st.text(max_size=12), st.sampled_from(TRICKY)), max_size=8).map("".join)


def check_real_alignment(result):
    # the shared invariants, "both sides of a group cover the same text" included (the span engine promises it)
    assert_engine_invariants(result)
    t, s = result.teacher, result.student
    # the sweep equals networkx components over the same tokens
    t_idx = np.flatnonzero(~t.special & (t.ends > t.starts))
    s_idx = np.flatnonzero(~s.special & (s.ends > s.starts))
    expected = networkx_partition(t.starts[t_idx], t.ends[t_idx], s.starts[s_idx], s.ends[s_idx])
    relabel = {("t", int(k)): ("t", n) for n, k in enumerate(t_idx)}
    relabel.update({("s", int(k)): ("s", n) for n, k in enumerate(s_idx)})
    ours = set()
    for group in result.groups:
        members = [("t", i) for i in group.teacher] + [("s", j) for j in group.student]
        ours.add(frozenset(relabel[m] for m in members if m in relabel))
    assert ours - {frozenset()} == expected


@pytest.mark.parametrize(("teacher", "student"), PAIRS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=text_strategy)
def test_properties_on_real_pairs_and_random_unicode(teacher, student, text):
    check_real_alignment(align(teacher, student, text))


@pytest.mark.parametrize(("teacher", "student"), PAIRS)
def test_properties_on_the_real_corpus(teacher, student, corpus):
    for text in corpus[::25]:
        check_real_alignment(align(teacher, student, text))


@pytest.mark.parametrize(("teacher", "student"), [("llama3", "gemma2"), ("gemma3", "smollm2"), ("mistral", "qwen2")])
def test_two_pointer_oracle_agrees_on_full_coverage_pairs(teacher, student, corpus):
    """TRL GOLD / tokenkit style two-pointer grouping equals the components when both sides cover every
    character."""
    for text in corpus[::10]:
        result = align(teacher, student, text)
        t, s = result.teacher, result.student
        t_idx = np.flatnonzero(~t.special & (t.ends > t.starts))
        s_idx = np.flatnonzero(~s.special & (s.ends > s.starts))
        walked = two_pointer_groups(t.starts[t_idx].tolist(), t.ends[t_idx].tolist(), s.starts[s_idx].tolist(),
                                    s.ends[s_idx].tolist())
        expected = [(t_idx[a].tolist(), s_idx[b].tolist()) for a, b in walked]
        assert groups_of(result) == expected


def test_corpus_mode_equals_per_text(corpus):
    from ctkd_inspect import load_tokenizer
    from ctkd_inspect.engines.span import span_groups_corpus
    from ctkd_inspect.text import tokenize, tokenize_corpus

    texts = [*corpus[:300], "", "x", "🦙🦙"]
    teacher = tokenize_corpus(load_tokenizer("llama3"), texts)
    student = tokenize_corpus(load_tokenizer("bert"), texts)
    groups = span_groups_corpus(teacher, student)
    assert len(groups) == len(texts)
    for i in (0, 7, 150, 299, 300, 301, 302):
        one = tokenize(load_tokenizer("llama3"), texts[i])
        assert np.array_equal(teacher[i].starts, one.starts) and teacher[i].tokens == one.tokens
        expected = span_groups(teacher[i], student[i])
        got = groups[i]
        assert np.array_equal(got.teacher_offsets, expected.teacher_offsets)
        assert np.array_equal(got.teacher_indices, expected.teacher_indices)
        assert np.array_equal(got.student_offsets, expected.student_offsets)
        assert np.array_equal(got.student_indices, expected.student_indices)
    with pytest.raises(EngineError):
        span_groups_corpus(teacher, tokenize_corpus(load_tokenizer("bert"), texts[:-1]))
