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
registry), the student tokens a teacher token overlaps form a contiguous index range whose two ends only move
forward, so one two-pointer pass over both lists finds every range, and components are runs of teachers whose
ranges chain: O(n + m), with no loop over token pairs. Other inputs fall back to a union-find over the
overlapping pairs. Both run compiled (numba, cached on disk), a few microseconds per text.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..alignment import Alignment, GroupTable
from ..errors import EngineError
from ..metrics import compute_metrics
from ..text import Tokenization

# The kernel is compiled with numba on first use (cached on disk), so importing the engine stays cheap.
_KERNEL = None


def _compile_kernel():
    from numba import njit

    @njit(cache=True)
    def is_sorted(values):
        for k in range(1, len(values)):  # noqa: SIM110 - a compiled loop; all() over a generator is not
            if values[k] < values[k - 1]:
                return False
        return True

    @njit(cache=True)
    def components_sorted(ts, te, ss, se, t_comp, s_comp):
        # student j overlaps teacher i  <=>  se[j] > ts[i] and ss[j] < te[i]; with both lists sorted these
        # j form a range [lo, hi) whose ends only move forward, so two pointers find every range in one pass.
        n, m = len(ts), len(ss)
        lo = 0
        hi = 0
        reach = -1  # furthest range end of the current component
        count = 0
        comp_lo = np.empty(n, np.int64)
        comp_hi = np.empty(n, np.int64)
        for i in range(n):
            while lo < m and se[lo] <= ts[i]:
                lo += 1
            if hi < lo:
                hi = lo
            while hi < m and ss[hi] < te[i]:
                hi += 1
            if lo < hi:
                if lo >= reach:  # no overlap with the previous component's students: a new component
                    comp_lo[count] = lo
                    comp_hi[count] = hi
                    count += 1
                elif hi > comp_hi[count - 1]:
                    comp_hi[count - 1] = hi
                t_comp[i] = count - 1
                if hi > reach:
                    reach = hi
        for c in range(count):
            for j in range(comp_lo[c], comp_hi[c]):
                s_comp[j] = c
        return count

    @njit(cache=True)
    def find(parent, x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving
            x = parent[x]
        return x

    @njit(cache=True)
    def components_general(ts, te, ss, se, t_comp, s_comp):
        # union-find over every overlapping pair; candidates are found through the students sorted by start
        n, m = len(ts), len(ss)
        parent = np.arange(n + m)
        order = np.argsort(ss, kind="mergesort")
        sorted_starts = ss[order]
        linked = np.zeros(n + m, np.bool_)
        for i in range(n):
            limit = np.searchsorted(sorted_starts, te[i])
            for k in range(limit):
                j = order[k]
                if se[j] > ts[i]:
                    linked[i] = True
                    linked[n + j] = True
                    a = find(parent, i)
                    b = find(parent, n + j)
                    if a != b:
                        parent[a] = b
        label = np.full(n + m, -1, np.int64)
        count = 0
        for x in range(n + m):  # number components by first appearance (teachers, then students)
            if linked[x]:
                root = find(parent, x)
                if label[root] < 0:
                    label[root] = count
                    count += 1
                if x < n:
                    t_comp[x] = label[root]
                else:
                    s_comp[x - n] = label[root]
        return count

    @njit(cache=True)
    def assign_units(starts, ends, special, wide_comp, next_id):
        """Unit id per token: its component, a fresh singleton, or (zero-width inside a unit) that unit."""
        size = len(starts)
        unit = np.full(size, -1, np.int64)
        w = 0
        for k in range(size):
            if special[k] or ends[k] <= starts[k]:
                continue
            c = wide_comp[w]
            if c >= 0:
                unit[k] = c
            else:
                unit[k] = next_id
                next_id += 1
            w += 1
        # zero-width tokens: carried by the unit around them on their side, else singletons
        previous = -1
        for k in range(size):
            if special[k]:
                continue
            if ends[k] > starts[k]:
                previous = unit[k]
                continue
            following = -2
            for q in range(k + 1, size):
                if not special[q] and ends[q] > starts[q]:
                    following = unit[q]
                    break
            if previous >= 0 and previous == following:
                unit[k] = previous
            else:
                unit[k] = next_id
                next_id += 1
        return unit, next_id

    @njit(cache=True)
    def pack(unit, rank, n_units):
        counts = np.zeros(n_units + 1, np.int64)
        for k in range(len(unit)):
            if unit[k] >= 0:
                counts[rank[unit[k]] + 1] += 1
        offsets = np.cumsum(counts)
        cursor = offsets[:-1].copy()
        members = np.empty(offsets[-1], np.int64)
        for k in range(len(unit)):  # tokens in order, so members of a group stay ascending
            if unit[k] >= 0:
                g = rank[unit[k]]
                members[cursor[g]] = k
                cursor[g] += 1
        return offsets, members

    @njit(cache=True)
    def key_less(a, b, unit_start, unit_end, unit_first):
        if unit_start[a] != unit_start[b]:
            return unit_start[a] < unit_start[b]
        if unit_end[a] != unit_end[b]:
            return unit_end[a] < unit_end[b]
        return unit_first[a] < unit_first[b]

    @njit(cache=True)
    def merge_order(t_unit, s_unit, unit_start, unit_end, unit_first, n_units):
        """Units in (start, end, first) order by merging the two sides' token sequences, O(n).

        Valid when each side meets its units in key order (always, for sorted spans); the result is checked
        and an empty array is returned when it is not in key order, so the caller sorts instead.
        """
        emitted = np.zeros(n_units, np.bool_)
        order = np.empty(n_units, np.int64)
        count = 0
        i = 0
        j = 0
        n_t, n_s = len(t_unit), len(s_unit)
        while True:
            while i < n_t and (t_unit[i] < 0 or emitted[t_unit[i]]):
                i += 1
            while j < n_s and (s_unit[j] < 0 or emitted[s_unit[j]]):
                j += 1
            if i >= n_t and j >= n_s:
                break
            if i >= n_t:
                u = s_unit[j]
            elif j >= n_s:
                u = t_unit[i]
            elif key_less(s_unit[j], t_unit[i], unit_start, unit_end, unit_first):
                u = s_unit[j]
            else:
                u = t_unit[i]
            emitted[u] = True
            order[count] = u
            count += 1
        for r in range(1, count):
            if key_less(order[r], order[r - 1], unit_start, unit_end, unit_first):
                return order[:0]
        return order[:count]

    @njit(cache=True)
    def kernel(t_starts, t_ends, t_special, s_starts, s_ends, s_special):
        t_wide = np.flatnonzero(~t_special & (t_ends > t_starts))
        s_wide = np.flatnonzero(~s_special & (s_ends > s_starts))
        ts, te = t_starts[t_wide], t_ends[t_wide]
        ss, se = s_starts[s_wide], s_ends[s_wide]
        t_comp = np.full(len(t_wide), -1, np.int64)
        s_comp = np.full(len(s_wide), -1, np.int64)
        if is_sorted(ts) and is_sorted(te) and is_sorted(ss) and is_sorted(se):
            count = components_sorted(ts, te, ss, se, t_comp, s_comp)
        else:
            count = components_general(ts, te, ss, se, t_comp, s_comp)
        t_unit, next_id = assign_units(t_starts, t_ends, t_special, t_comp, count)
        s_unit, next_id = assign_units(s_starts, s_ends, s_special, s_comp, next_id)
        # order units along the text: by the start of what they cover, then the end (an empty span at a
        # position comes before a group starting there), then the first member (teacher before student)
        big = np.iinfo(np.int64).max
        unit_start = np.full(next_id, big, np.int64)
        unit_end = np.zeros(next_id, np.int64)
        unit_first = np.full(next_id, big, np.int64)
        n_t = len(t_starts)
        for k in range(n_t):
            u = t_unit[k]
            if u >= 0:
                unit_start[u] = min(unit_start[u], t_starts[k])
                unit_end[u] = max(unit_end[u], t_ends[k])
                unit_first[u] = min(unit_first[u], k)
        for k in range(len(s_starts)):
            u = s_unit[k]
            if u >= 0:
                unit_start[u] = min(unit_start[u], s_starts[k])
                unit_end[u] = max(unit_end[u], s_ends[k])
                unit_first[u] = min(unit_first[u], n_t + k)
        order = merge_order(t_unit, s_unit, unit_start, unit_end, unit_first, next_id)
        if len(order) != next_id:  # the two sides' units were not each in key order: sort instead
            order = np.argsort(unit_first, kind="mergesort")
            order = order[np.argsort(unit_end[order], kind="mergesort")]
            order = order[np.argsort(unit_start[order], kind="mergesort")]
        rank = np.empty(next_id, np.int64)
        for r in range(next_id):
            rank[order[r]] = r
        t_off, t_idx = pack(t_unit, rank, next_id)
        s_off, s_idx = pack(s_unit, rank, next_id)
        return t_off, t_idx, s_off, s_idx

    @njit(cache=True)
    def kernel_many(t_starts, t_ends, t_special, t_bounds, s_starts, s_ends, s_special, s_bounds):
        """``kernel`` for many pairs given as concatenated arrays; ``*_bounds[p]:*_bounds[p+1]`` is pair p.

        Returns the concatenated outputs (offsets relative to each pair) and, per pair, where its offsets and
        index lists start in them.
        """
        pairs = len(t_bounds) - 1
        off_capacity = len(t_starts) + len(s_starts) + pairs
        t_off_all = np.empty(off_capacity, np.int64)
        s_off_all = np.empty(off_capacity, np.int64)
        t_idx_all = np.empty(len(t_starts), np.int64)
        s_idx_all = np.empty(len(s_starts), np.int64)
        off_at = np.zeros(pairs + 1, np.int64)
        t_at = np.zeros(pairs + 1, np.int64)
        s_at = np.zeros(pairs + 1, np.int64)
        for p in range(pairs):
            a, b = t_bounds[p], t_bounds[p + 1]
            c, d = s_bounds[p], s_bounds[p + 1]
            t_off, t_idx, s_off, s_idx = kernel(t_starts[a:b], t_ends[a:b], t_special[a:b], s_starts[c:d],
                                                s_ends[c:d], s_special[c:d])
            o = off_at[p]
            t_off_all[o:o + len(t_off)] = t_off
            s_off_all[o:o + len(s_off)] = s_off
            off_at[p + 1] = o + len(t_off)
            t_idx_all[t_at[p]:t_at[p] + len(t_idx)] = t_idx
            t_at[p + 1] = t_at[p] + len(t_idx)
            s_idx_all[s_at[p]:s_at[p] + len(s_idx)] = s_idx
            s_at[p + 1] = s_at[p] + len(s_idx)
        return t_off_all, t_idx_all, s_off_all, s_idx_all, off_at, t_at, s_at

    return kernel, components_sorted, components_general, kernel_many


def _kernels():
    global _KERNEL
    if _KERNEL is None:
        _KERNEL = _compile_kernel()
    return _KERNEL


def _components(which: int, ts, te, ss, se):
    t_comp = np.full(len(ts), -1, np.int64)
    s_comp = np.full(len(ss), -1, np.int64)
    arrays = [np.asarray(a, np.int64) for a in (ts, te, ss, se)]
    count = _kernels()[which](*arrays, t_comp, s_comp)
    return t_comp, s_comp, count


def _components_sorted(ts, te, ss, se):
    """Component ids of sorted span lists (for tests): ``(teacher_component, student_component, count)``."""
    return _components(1, ts, te, ss, se)


def _components_general(ts, te, ss, se):
    """Component ids of arbitrary span lists (for tests)."""
    return _components(2, ts, te, ss, se)


def span_groups(teacher: Tokenization, student: Tokenization) -> GroupTable:
    """The span-component groups of two tokenizations of one text, ordered along the text.

    Raises:
        EngineError: the tokenizations are of different texts.
    """
    if teacher.text != student.text:
        raise EngineError("the teacher and student tokenizations are of different texts")
    arrays = _kernels()[0](teacher.starts, teacher.ends, teacher.special, student.starts, student.ends,
                           student.special)
    return GroupTable(*arrays)


class CorpusGroups:
    """Span groups of a whole corpus in shared arrays; ``groups[i]`` is text ``i``'s :class:`GroupTable` (views).

    Offsets and token indices are local to each text, exactly as :func:`span_groups` returns them.
    """

    def __init__(self, t_off, t_idx, s_off, s_idx, off_at, t_at, s_at):
        self.t_off, self.t_idx, self.s_off, self.s_idx = t_off, t_idx, s_off, s_idx
        self.off_at, self.t_at, self.s_at = off_at, t_at, s_at

    def __len__(self) -> int:
        return len(self.off_at) - 1

    def __getitem__(self, i: int) -> GroupTable:
        o0, o1 = int(self.off_at[i]), int(self.off_at[i + 1])
        return GroupTable(self.t_off[o0:o1], self.t_idx[int(self.t_at[i]):int(self.t_at[i + 1])],
                          self.s_off[o0:o1], self.s_idx[int(self.s_at[i]):int(self.s_at[i + 1])])

    def group_counts(self) -> np.ndarray:
        """Number of groups of every text."""
        return np.diff(self.off_at) - 1


def span_groups_corpus(teacher, student) -> CorpusGroups:
    """Span groups for every text of two :class:`~ctkd_inspect.text.TokenizedCorpus` objects, in one compiled call.

    Raises:
        EngineError: the corpora hold different texts.
    """
    if len(teacher) != len(student) or teacher.texts != student.texts:
        raise EngineError("the teacher and student corpora hold different texts")
    return CorpusGroups(*_kernels()[3](teacher.starts, teacher.ends, teacher.special, teacher.bounds,
                                       student.starts, student.ends, student.special, student.bounds))


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
