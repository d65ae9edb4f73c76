"""Span-component engine (SeDi's bipartite alignment, AAAI 2026).

Tokens are nodes; an edge joins a teacher token and a student token whose half-open character spans overlap
(``a < d and c < b`` for ``[a, b)`` and ``[c, d)``: spans that only touch do not connect). The groups are the
connected components, so every shape appears: 1:1, 1:n, n:1 and n:m. No strings are compared, so markers, byte
fallback and normalisation do not matter; byte tokens of one character share its span and land in one group.

Policies where the paper is silent (each is tested):

- special tokens take no part: they are in no group and reported unmatched (reason ``special``);
- a non-special token with an empty span overlaps nothing: it forms a group with an empty partner side
  (unmatched, reason ``zero-width``) — unless it sits between two tokens of one group on its own side, in which
  case that group carries it, so groups stay contiguous;
- a token whose characters the other tokenizer covers with no token (BERT drops whitespace and control
  characters) is likewise alone in its group (unmatched, reason ``no-partner``);
- spans are taken as the tokenizers report them (with the leading space for byte-level BPE, without it for
  WordPiece); both conventions give the same groups whenever both sides cover the same characters.

The sweep: when each side's spans are sorted (starts and ends non-decreasing, true of every tokenizer in the
registry), the student tokens a teacher token overlaps form a contiguous index range found by two binary searches,
the ranges are monotone, and components are runs of teachers whose ranges chain; all of it is a handful of numpy
calls, no Python loop over tokens or pairs. Other inputs fall back to a compiled union-find over the overlapping
pairs.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..alignment import Alignment, GroupTable
from ..errors import EngineError
from ..metrics import compute_metrics
from ..text import Tokenization


def _is_sorted(values: np.ndarray) -> bool:
    return bool(np.all(values[1:] >= values[:-1])) if len(values) > 1 else True


def _components_sorted(ts, te, ss, se) -> tuple[np.ndarray, np.ndarray, int]:
    """Component ids for span lists whose starts and ends are each non-decreasing.

    Returns ``(teacher_component, student_component, count)``; -1 marks a token with no partner.
    """
    n, m = len(ts), len(ss)
    teacher_component = np.full(n, -1, dtype=np.int64)
    student_component = np.full(m, -1, dtype=np.int64)
    # student j overlaps teacher i  <=>  se[j] > ts[i] and ss[j] < te[i]; both conditions select a contiguous
    # range of j because se and ss are sorted: [lo, hi).
    lo = np.searchsorted(se, ts, side="right")
    hi = np.searchsorted(ss, te, side="left")
    linked = lo < hi
    if not linked.any():
        return teacher_component, student_component, 0
    lo_l, hi_l = lo[linked], hi[linked]
    # Ranges are monotone, so teacher i joins the previous component iff its range starts before the furthest
    # range end seen so far.
    reach = np.maximum.accumulate(hi_l)
    new = np.ones(len(lo_l), dtype=bool)
    new[1:] = lo_l[1:] >= reach[:-1]
    component = np.cumsum(new) - 1
    teacher_component[linked] = component
    firsts = np.flatnonzero(new)
    comp_lo = lo_l[firsts]
    comp_hi = np.maximum.reduceat(hi_l, firsts)
    j = np.arange(m)
    owner = np.searchsorted(comp_lo, j, side="right") - 1
    inside = (owner >= 0) & (j < comp_hi[np.maximum(owner, 0)])
    student_component[inside] = owner[inside]
    return teacher_component, student_component, len(firsts)


def _components_general(ts, te, ss, se) -> tuple[np.ndarray, np.ndarray, int]:
    """Component ids for arbitrary span lists (union-find over overlapping pairs, compiled)."""
    parent = _overlap_union_find(np.ascontiguousarray(ts), np.ascontiguousarray(te), np.ascontiguousarray(ss),
                                 np.ascontiguousarray(se))
    n, m = len(ts), len(ss)
    roots = parent.copy()
    for _ in range(64):  # path halving already ran; a few passes flatten any remaining chains
        nxt = roots[roots]
        if np.array_equal(nxt, roots):
            break
        roots = nxt
    has_partner = _has_partner(ts, te, ss, se)
    # number the components by first appearance (teacher order, then student order)
    keyed = np.where(np.concatenate(has_partner), roots, -1)
    unique, first_seen = np.unique(keyed[keyed >= 0], return_index=True)
    order = np.argsort(first_seen, kind="stable")
    renumber = np.full(n + m, -1, dtype=np.int64)
    renumber[unique[order]] = np.arange(len(unique))
    component = np.where(keyed >= 0, renumber[np.maximum(keyed, 0)], -1)
    return component[:n], component[n:], len(unique)


def _overlap_union_find(ts, te, ss, se):
    from numba import njit

    global _overlap_union_find_compiled
    if _overlap_union_find_compiled is None:
        @njit(cache=True)
        def union_find(ts, te, ss, se):
            n, m = len(ts), len(ss)
            parent = np.arange(n + m)
            order = np.argsort(ss, kind="mergesort")
            sorted_starts = ss[order]
            for i in range(n):
                # candidates: students whose start is before this teacher's end
                limit = np.searchsorted(sorted_starts, te[i])
                for k in range(limit):
                    j = order[k]
                    if se[j] > ts[i]:
                        a = i
                        while parent[a] != a:  # find with path halving
                            parent[a] = parent[parent[a]]
                            a = parent[a]
                        b = n + j
                        while parent[b] != b:
                            parent[b] = parent[parent[b]]
                            b = parent[b]
                        if a != b:
                            parent[a] = b
            return parent

        _overlap_union_find_compiled = union_find
    return _overlap_union_find_compiled(ts, te, ss, se)


_overlap_union_find_compiled = None


def _has_partner(ts, te, ss, se) -> tuple[np.ndarray, np.ndarray]:
    """For each token, whether any token of the other side overlaps it (by sorting, no pair loop)."""

    def side(a_start, a_end, b_start, b_end):
        # token x overlaps some y iff some y has start < x.end and end > x.start. Among ys with start < x.end,
        # the largest end decides.
        if len(b_start) == 0:
            return np.zeros(len(a_start), dtype=bool)
        order = np.argsort(b_start, kind="stable")
        prefix_max_end = np.maximum.accumulate(b_end[order])
        k = np.searchsorted(b_start[order], a_end, side="left")
        best = np.where(k > 0, prefix_max_end[np.maximum(k - 1, 0)], np.iinfo(np.int64).min)
        return best > a_start

    return side(ts, te, ss, se), side(ss, se, ts, te)


def span_groups(teacher: Tokenization, student: Tokenization) -> GroupTable:
    """The span-component groups of two tokenizations of one text, ordered along the text.

    Raises:
        EngineError: the tokenizations are of different texts.
    """
    if teacher.text != student.text:
        raise EngineError("the teacher and student tokenizations are of different texts")
    t_all = np.flatnonzero(~teacher.special)
    s_all = np.flatnonzero(~student.special)
    t_wide = t_all[teacher.ends[t_all] > teacher.starts[t_all]]
    s_wide = s_all[student.ends[s_all] > student.starts[s_all]]
    ts, te = teacher.starts[t_wide], teacher.ends[t_wide]
    ss, se = student.starts[s_wide], student.ends[s_wide]
    if all(map(_is_sorted, (ts, te, ss, se))):
        t_comp, s_comp, n_comp = _components_sorted(ts, te, ss, se)
    else:
        t_comp, s_comp, n_comp = _components_general(ts, te, ss, se)

    # Every token now belongs to a unit: a component (shared id < n_comp) or a singleton of its own.
    t_unit = np.full(len(teacher), -1, dtype=np.int64)
    s_unit = np.full(len(student), -1, dtype=np.int64)
    t_unit[t_wide] = t_comp
    s_unit[s_wide] = s_comp
    next_id = n_comp
    for unit, wide, comp in ((t_unit, t_wide, t_comp), (s_unit, s_wide, s_comp)):
        alone = wide[comp < 0]
        unit[alone] = np.arange(next_id, next_id + len(alone))
        next_id += len(alone)
    # zero-width tokens: carried by the group around them on their side, else singletons
    for unit, all_idx, wide in ((t_unit, t_all, t_wide), (s_unit, s_all, s_wide)):
        narrow = np.setdiff1d(all_idx, wide, assume_unique=True)
        if len(narrow) == 0:
            continue
        pos = np.searchsorted(wide, narrow)
        has_both = (pos > 0) & (pos < len(wide))
        prev_unit = np.where(has_both, unit[wide[np.maximum(pos - 1, 0)]], -1)
        next_unit = np.where(has_both, unit[wide[np.minimum(pos, len(wide) - 1)]], -2)
        inside = has_both & (prev_unit == next_unit)
        unit[narrow[inside]] = prev_unit[inside]
        lone = narrow[~inside]
        unit[lone] = np.arange(next_id, next_id + len(lone))
        next_id += len(lone)

    # Order units along the text: by the start of the characters they cover, then their end (an empty span
    # at a position comes before a group starting there), then side and token index for full determinism.
    big = np.iinfo(np.int64).max
    unit_start = np.full(next_id, big, dtype=np.int64)
    unit_end = np.full(next_id, big, dtype=np.int64)
    unit_first = np.full(next_id, big, dtype=np.int64)
    for unit, side, offset in ((t_unit, teacher, 0), (s_unit, student, len(teacher))):
        member = np.flatnonzero(unit >= 0)
        np.minimum.at(unit_start, unit[member], side.starts[member])
        np.minimum.at(unit_first, unit[member], member + offset)
    unit_end[:] = 0
    for unit, side in ((t_unit, teacher), (s_unit, student)):
        member = np.flatnonzero(unit >= 0)
        np.maximum.at(unit_end, unit[member], side.ends[member])
    order = np.lexsort((unit_first, unit_end, unit_start))
    rank = np.empty(next_id, dtype=np.int64)
    rank[order] = np.arange(next_id)

    def pack(unit):
        member = np.flatnonzero(unit >= 0)
        group = rank[unit[member]]
        by_group = np.argsort(group, kind="stable")  # stable: token order inside each group
        counts = np.bincount(group, minlength=next_id)
        return np.concatenate([[0], np.cumsum(counts)]), member[by_group]

    t_off, t_idx = pack(t_unit)
    s_off, s_idx = pack(s_unit)
    return GroupTable(t_off, t_idx, s_off, s_idx)


class SpanEngine:
    """SeDi's character-span bipartite components; needs no model and compares no strings."""

    name: ClassVar[str] = "span"
    needs_signals: ClassVar[bool] = False
    differentiable: ClassVar[bool] = False
    batched: ClassVar[bool] = False

    def align(self, teacher: Tokenization, student: Tokenization, **options) -> Alignment:
        """Group tokens whose character spans overlap. Takes no options.

        Raises:
            EngineError: an option was given, or the tokenizations are of different texts.
        """
        if options:
            raise EngineError(f"the span engine takes no options (got {', '.join(sorted(options))})")
        alignment = Alignment(teacher, student, span_groups(teacher, student), engine=self.name)
        alignment.metrics = compute_metrics(alignment)
        return alignment
