"""The span engine's compiled sweep (numba). Private: imported by :mod:`ctkd_inspect.engines.span` on first use.

Every jitted function lives at module level, so numba's on-disk cache (``cache=True``) finds the compiled code
again in the next process; functions defined inside a closure get a new cache entry every run. Importing this
module imports numba; importing the engine does not.

Sorted spans with no empty non-special token (every registered tokenizer on almost every text) take a one-pass
path (:func:`groups_sorted`); other inputs go through components, unit ids with keys, and an ordering pass. All
scratch space of one alignment is carved out of one int64 work array and the groups are written into one output
array, so a call allocates two arrays (the fallbacks for unsorted spans or units out of key order allocate more).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_BIG = np.iinfo(np.int64).max


@njit(cache=True, inline="always")
def advance_range(start, end, ss, se, lo, hi):
    """Move ``[lo, hi)`` forward to the students overlapping the teacher span ``[start, end)``.

    Student ``j`` overlaps it when ``se[j] > start`` and ``ss[j] < end``; with sorted student spans and teachers
    visited in order, both ends of that range only move forward, which makes the sweep O(n + m).
    """
    m = len(ss)
    while lo < m and se[lo] <= start:
        lo += 1
    if hi < lo:
        hi = lo
    while hi < m and ss[hi] < end:
        hi += 1
    return lo, hi


@njit(cache=True)
def gather_wide(starts, ends, special, wide_starts, wide_ends, wide_positions):
    """Copy the spans and positions of the non-special, non-empty tokens; return their number, whether they are
    sorted (starts and ends both non-decreasing) and how many non-special tokens are empty."""
    w = 0
    ordered = True
    empty = 0
    for k in range(len(starts)):
        if special[k]:
            continue
        a = starts[k]
        b = ends[k]
        if b <= a:
            empty += 1
            continue
        if w > 0 and (a < wide_starts[w - 1] or b < wide_ends[w - 1]):
            ordered = False
        wide_starts[w] = a
        wide_ends[w] = b
        wide_positions[w] = k
        w += 1
    return w, ordered, empty


@njit(cache=True)
def components_sorted(ts, te, ss, se, t_comp, s_comp):
    """Component id of every teacher and student span (``t_comp``/``s_comp`` come filled with -1 and keep it for
    spans that overlap nothing); returns the number of components. Needs sorted spans."""
    # student j overlaps teacher i  <=>  se[j] > ts[i] and ss[j] < te[i]; with both lists sorted these
    # j form a range [lo, hi) whose ends only move forward, so two pointers find every range in one pass.
    # A component's students are one range too; it is labelled as it grows.
    n = len(ts)
    lo = 0
    hi = 0
    reach = 0  # furthest range end so far (the end of the current component's student range); all below labelled
    count = 0
    for i in range(n):
        lo, hi = advance_range(ts[i], te[i], ss, se, lo, hi)
        if lo < hi:
            if count == 0 or lo >= reach:  # no overlap with the previous component's students: a new component
                count += 1
                reach = lo
            for j in range(reach, hi):
                s_comp[j] = count - 1
            t_comp[i] = count - 1
            if hi > reach:
                reach = hi
    return count


@njit(cache=True)
def find(parent, x):
    while parent[x] != x:
        parent[x] = parent[parent[x]]  # path halving
        x = parent[x]
    return x


@njit(cache=True)
def components_general(ts, te, ss, se, t_comp, s_comp):
    """As :func:`components_sorted`, for spans in any order (union-find over every overlapping pair)."""
    # candidates are found through the students sorted by start
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
def assign_units(starts, ends, special, wide_comp, next_id, unit, unit_start, unit_end, unit_first, first_base):
    """Unit id per token (-1 for special tokens): its component, a fresh singleton, or (zero-width inside a unit)
    that unit; updates the units' keys (start, end, first member) and returns the next free unit id.

    Keys of the component units ``0..count-1`` must be initialised by the caller; fresh units are initialised
    here. The first member of teacher token k is k, of student token k ``n_teacher + k`` (``first_base``).
    """
    size = len(starts)
    w = 0
    zero_width = 0
    for k in range(size):
        if special[k]:
            unit[k] = -1
            continue
        a = starts[k]
        b = ends[k]
        if b <= a:
            zero_width += 1
            continue
        u = wide_comp[w]
        w += 1
        if u < 0:
            u = next_id
            next_id += 1
            unit_start[u] = _BIG
            unit_end[u] = 0
            unit_first[u] = _BIG
        if a < unit_start[u]:
            unit_start[u] = a
        if b > unit_end[u]:
            unit_end[u] = b
        if first_base + k < unit_first[u]:
            unit_first[u] = first_base + k
        unit[k] = u
    if zero_width == 0:
        return next_id
    # zero-width tokens: carried by the unit around them on their side (the units of the nearest non-special,
    # non-empty tokens before and after are the same), else singletons. Backwards: the unit that follows.
    following = -2
    for k in range(size - 1, -1, -1):
        if special[k]:
            continue
        if ends[k] > starts[k]:
            following = unit[k]
        else:
            unit[k] = following
    previous = -1
    for k in range(size):
        if special[k]:
            continue
        if ends[k] > starts[k]:
            previous = unit[k]
            continue
        if previous >= 0 and previous == unit[k]:
            u = previous
        else:
            u = next_id
            next_id += 1
            unit[k] = u
            unit_start[u] = _BIG
            unit_end[u] = 0
            unit_first[u] = _BIG
        if starts[k] < unit_start[u]:
            unit_start[u] = starts[k]
        if ends[k] > unit_end[u]:
            unit_end[u] = ends[k]
        if first_base + k < unit_first[u]:
            unit_first[u] = first_base + k
    return next_id


@njit(cache=True)
def key_less(a, b, unit_start, unit_end, unit_first):
    if unit_start[a] != unit_start[b]:
        return unit_start[a] < unit_start[b]
    if unit_end[a] != unit_end[b]:
        return unit_end[a] < unit_end[b]
    return unit_first[a] < unit_first[b]


@njit(cache=True)
def merge_order(t_unit, s_unit, unit_start, unit_end, unit_first, rank):
    """Rank of every unit in (start, end, first) order, found by merging the two sides' token sequences, O(n).
    ``rank`` comes filled with -1, one entry per unit.

    Valid when each side meets its units in key order (always, for sorted spans); the order is checked as it is
    made and False is returned as soon as it is broken, so the caller sorts instead.
    """
    count = 0
    i = 0
    j = 0
    previous = -1
    n_t, n_s = len(t_unit), len(s_unit)
    while True:
        while i < n_t and (t_unit[i] < 0 or rank[t_unit[i]] >= 0):
            i += 1
        while j < n_s and (s_unit[j] < 0 or rank[s_unit[j]] >= 0):
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
        if previous >= 0 and key_less(u, previous, unit_start, unit_end, unit_first):
            return False
        rank[u] = count
        count += 1
        previous = u
    return count == len(rank)


@njit(cache=True)
def pack(unit, rank, n_units, offsets, members, cursor):
    """CSR of the tokens by group: ``offsets[:n_units + 1]`` and ``members``; tokens in order, so members of a
    group stay ascending. Returns the number of members. ``cursor``: scratch, one entry per unit."""
    offsets[:n_units + 1] = 0
    count = 0
    last = -1
    in_order = True  # groups met in rank order along the tokens: the members are the tokens in order
    for k in range(len(unit)):
        if unit[k] >= 0:
            r = rank[unit[k]]
            offsets[r + 1] += 1
            members[count] = k
            count += 1
            if r < last:
                in_order = False
            last = r
    for g in range(1, n_units + 1):
        offsets[g] += offsets[g - 1]
    if not in_order:
        cursor[:n_units] = offsets[:n_units]
        for k in range(len(unit)):
            if unit[k] >= 0:
                g = rank[unit[k]]
                members[cursor[g]] = k
                cursor[g] += 1
    return count


@njit(cache=True)
def groups_sorted(ts, te, t_pos, ss, se, s_pos, t_off, t_idx, s_off, s_idx):
    """The groups in one pass, for sorted spans when every non-special token is non-empty (the usual case).

    The two-pointer sweep of :func:`components_sorted` meets the units in key order: teachers in order, each a
    singleton or the first of a component (the teachers whose student ranges chain); the students before a unit's
    range overlap no teacher and all come before it. So groups are written as they close, with no unit ids, keys
    or ordering pass; the result equals the general path's (tests/engines/test_span.py compares them).
    """
    n, m = len(ts), len(ss)
    g = 0
    nt = 0
    ns = 0
    done = 0  # students below this are written
    lo = 0
    hi = 0
    t_off[0] = 0
    s_off[0] = 0
    i = 0
    while i < n:
        lo, hi = advance_range(ts[i], te[i], ss, se, lo, hi)
        for j in range(done, lo):  # students that overlap no teacher: singletons
            s_idx[ns] = s_pos[j]
            ns += 1
            g += 1
            t_off[g] = nt
            s_off[g] = ns
        t_idx[nt] = t_pos[i]
        nt += 1
        i += 1
        first = lo
        reach = hi
        if lo < hi:  # a component: the following teachers whose ranges start before its students end
            while i < n:
                lo, hi = advance_range(ts[i], te[i], ss, se, lo, hi)
                if lo >= hi or lo >= reach:
                    break
                t_idx[nt] = t_pos[i]
                nt += 1
                i += 1
                if hi > reach:
                    reach = hi
            for j in range(first, reach):
                s_idx[ns] = s_pos[j]
                ns += 1
        g += 1
        t_off[g] = nt
        s_off[g] = ns
        done = reach
    for j in range(done, m):
        s_idx[ns] = s_pos[j]
        ns += 1
        g += 1
        t_off[g] = nt
        s_off[g] = ns
    return g, nt, ns


@njit(cache=True)
def work_size(n, m):
    """Length of the work array :func:`groups_into` needs for ``n`` teacher and ``m`` student tokens."""
    return 10 * (n + m)


@njit(cache=True)
def groups_into(t_starts, t_ends, t_special, s_starts, s_ends, s_special, t_off, t_idx, s_off, s_idx, work):
    """The span groups of one text, written as CSR: ``t_off[:g + 1]``, ``t_idx[:nt]``, ``s_off[:g + 1]``,
    ``s_idx[:ns]``; returns ``(g, nt, ns)``.

    Capacities: ``t_off`` and ``s_off`` ``n + m + 1`` entries, ``t_idx`` ``n``, ``s_idx`` ``m``; ``work`` at least
    ``work_size(n, m)``.
    """
    n, m = len(t_starts), len(s_starts)
    size = n + m
    ts = work[0:n]
    te = work[n:2 * n]
    ss = work[2 * n:2 * n + m]
    se = work[2 * n + m:2 * size]
    t_comp = work[2 * size:2 * size + n]
    s_comp = work[2 * size + n:3 * size]
    t_unit = work[3 * size:3 * size + n]
    s_unit = work[3 * size + n:4 * size]
    unit_start = work[4 * size:5 * size]
    unit_end = work[5 * size:6 * size]
    unit_first = work[6 * size:7 * size]
    rank = work[7 * size:8 * size]
    cursor = work[8 * size:9 * size]
    t_pos = work[9 * size:9 * size + n]
    s_pos = work[9 * size + n:10 * size]

    n_tw, t_ordered, t_empty = gather_wide(t_starts, t_ends, t_special, ts, te, t_pos)
    n_sw, s_ordered, s_empty = gather_wide(s_starts, s_ends, s_special, ss, se, s_pos)
    ts, te, ss, se = ts[:n_tw], te[:n_tw], ss[:n_sw], se[:n_sw]
    if t_ordered and s_ordered and t_empty == 0 and s_empty == 0:
        return groups_sorted(ts, te, t_pos[:n_tw], ss, se, s_pos[:n_sw], t_off, t_idx, s_off, s_idx)
    t_comp = t_comp[:n_tw]
    s_comp = s_comp[:n_sw]
    t_comp[:] = -1
    s_comp[:] = -1
    if t_ordered and s_ordered:
        count = components_sorted(ts, te, ss, se, t_comp, s_comp)
    else:
        count = components_general(ts, te, ss, se, t_comp, s_comp)
    # unit keys, for ordering units along the text: the start of what they cover, then the end (an empty span at
    # a position comes before a group starting there), then the first member (teacher before student)
    unit_start[:count] = _BIG
    unit_end[:count] = 0
    unit_first[:count] = _BIG
    next_id = assign_units(t_starts, t_ends, t_special, t_comp, count, t_unit, unit_start, unit_end, unit_first, 0)
    next_id = assign_units(s_starts, s_ends, s_special, s_comp, next_id, s_unit, unit_start, unit_end, unit_first,
                           n)
    rank = rank[:next_id]
    rank[:] = -1
    if not merge_order(t_unit, s_unit, unit_start, unit_end, unit_first, rank):
        # the two sides' units were not each in key order: sort instead
        first = unit_first[:next_id]
        end = unit_end[:next_id]
        start = unit_start[:next_id]
        order = np.argsort(first, kind="mergesort")
        order = order[np.argsort(end[order], kind="mergesort")]
        order = order[np.argsort(start[order], kind="mergesort")]
        for r in range(next_id):
            rank[order[r]] = r
    nt = pack(t_unit, rank, next_id, t_off, t_idx, cursor)
    ns = pack(s_unit, rank, next_id, s_off, s_idx, cursor)
    return next_id, nt, ns


@njit(cache=True)
def span_groups_arrays(t_starts, t_ends, t_special, s_starts, s_ends, s_special):
    """:func:`groups_into` for one text, into one fresh output array ``out``. Returns ``out`` and the bounds of the
    four CSR arrays in it, ready for slicing: ``(out, t_off_start, t_off_stop, t_idx_stop, s_off_start, s_off_stop,
    s_idx_start, s_idx_stop)`` (``t_idx`` starts at 0)."""
    n, m = len(t_starts), len(s_starts)
    size = n + m
    out = np.empty(3 * size + 2, np.int64)
    work = np.empty(work_size(n, m), np.int64)
    g, nt, ns = groups_into(t_starts, t_ends, t_special, s_starts, s_ends, s_special, out[size:2 * size + 1],
                            out[:n], out[2 * size + 1:], out[n:size], work)
    return out, size, size + g + 1, nt, 2 * size + 1, 2 * size + g + 2, n, n + ns


@njit(cache=True)
def span_groups_many(t_starts, t_ends, t_special, t_bounds, s_starts, s_ends, s_special, s_bounds):
    """The groups of many texts given as concatenated arrays; ``*_bounds[p]:*_bounds[p+1]`` is text p.

    Returns the concatenated outputs (offsets relative to each text) and, per text, where its offsets and
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
    largest = 0
    for p in range(pairs):
        largest = max(largest, work_size(t_bounds[p + 1] - t_bounds[p], s_bounds[p + 1] - s_bounds[p]))
    work = np.empty(largest, np.int64)
    for p in range(pairs):
        a, b = t_bounds[p], t_bounds[p + 1]
        c, d = s_bounds[p], s_bounds[p + 1]
        o = off_at[p]
        # each text writes at most (its tokens + 1) offsets
        g, nt, ns = groups_into(t_starts[a:b], t_ends[a:b], t_special[a:b], s_starts[c:d], s_ends[c:d],
                                s_special[c:d], t_off_all[o:], t_idx_all[t_at[p]:], s_off_all[o:],
                                s_idx_all[s_at[p]:], work)
        off_at[p + 1] = o + g + 1
        t_at[p + 1] = t_at[p] + nt
        s_at[p + 1] = s_at[p] + ns
    return t_off_all, t_idx_all, s_off_all, s_idx_all, off_at, t_at, s_at
