"""MinED's nearest target by Levenshtein distance, compiled (numba). Private: used by
:func:`ctkd_inspect.vocab.nearest_by_edit_distance` for the sources without an exact match.

Strings come as dense character ids (``codes[offsets[i]:offsets[i + 1]]``). Each character occurrence of a string
is an *item* ``(c, j)``: the ``j``-th occurrence of character ``c``; two strings share as many items as their
character multisets have in common, and

    Lev(a, b) ≥ max(|a|, |b|) − common(a, b)

(an alignment matches at most ``common`` positions; every other position of the longer string costs an edit),
with equality when they share nothing (substitute, then insert or delete). Targets are kept in *rank* order, by
(length, position), so each length is one contiguous rank range; the index lists, for every item, the ranks of
the targets that hold it, and for the items most targets hold also a bitset over ranks.

For one source of length L the rounds use bounds k = 1, 2, 4, … capped by the best distance found so far (at
first ``max(L, shortest target)``, which every shortest target reaches). A round counts, for every target of the
length window L ± k, its exact ``common`` with the source: bit-sliced counters (bit b of the counts of 64
targets in one word per slice), each item added as a bitset (frequent items) or rank by rank (rare ones). Then,
per length m:

- the first target sharing nothing is at exactly max(L, m), and no later one of that length can beat it;
- a target that shares something is computed only when ``max(L, m) − common`` can still reach k and tie or beat the
  best so far, so the count filter tightens as the best improves.

After a round whose best distance is ≤ k the answer is final: every target that could tie or beat it was in the
window and passed the filter. Ties go to the lowest target position throughout (a candidate replaces the best
when it is closer, or as close at a lower position). Exact distances use Hyyrö's bit-vector algorithm with the
source as the pattern (up to 64 characters) or a two-row DP.

Every jitted function lives at module level, so numba's on-disk cache serves later processes. :func:`nearest_batch`
releases the GIL, so the caller runs batches on threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_ZERO = np.uint64(0)
_ONE = np.uint64(1)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_DEBRUIJN_TABLE = np.array([0, 1, 48, 2, 57, 49, 28, 3, 61, 58, 50, 42, 38, 29, 17, 4, 62, 55, 59, 36, 53, 51, 43, 22,
                            45, 39, 33, 30, 24, 18, 12, 5, 63, 47, 56, 27, 60, 41, 37, 16, 54, 35, 52, 21, 44, 32, 23,
                            11, 46, 26, 40, 15, 34, 20, 31, 10, 25, 14, 19, 9, 13, 8, 7, 6], np.int64)


@njit(cache=True, inline="always")
def _lowest_bit(x):
    """Index of the lowest set bit of a non-zero uint64 (de Bruijn multiplication)."""
    return _DEBRUIJN_TABLE[((x & (~x + _ONE)) * _DEBRUIJN) >> np.uint64(58)]


@njit(cache=True)
def occurrence_numbers(codes, offsets, counter):
    """For every character of every string, its occurrence number within its string (1 for the first ``c``, 2 for
    the second, …). ``counter`` is zeros with one slot per character id (left zero on return)."""
    out = np.empty(len(codes), np.int64)
    for i in range(len(offsets) - 1):
        for p in range(offsets[i], offsets[i + 1]):
            counter[codes[p]] += 1
            out[p] = counter[codes[p]]
        for p in range(offsets[i], offsets[i + 1]):
            counter[codes[p]] = 0
    return out


@njit(cache=True)
def fill_bitsets(postings, item_start, dense_items, bits):
    """``bits[r]`` gets the rank bitset of item ``dense_items[r]`` (``bits`` zeroed, one uint64 per 64 ranks)."""
    for r in range(len(dense_items)):
        q = dense_items[r]
        for e in range(item_start[q], item_start[q + 1]):
            rank = postings[e]
            bits[r, rank >> 6] |= _ONE << np.uint64(rank & 63)


@njit(cache=True, inline="always")
def _first_at_least(values, lo, hi, x):
    """The first index in ``values[lo:hi]`` (ascending) whose value is ≥ x (``hi`` if none)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if values[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _levenshtein_bits(peq, length, t_codes, t0, t1):
    """Hyyrö's bit-vector edit distance between the pattern whose match masks are in ``peq`` (1 ≤ ``length`` ≤ 64)
    and ``t_codes[t0:t1]``. Bits above the pattern only carry upwards, so they need no mask."""
    vp = _ALL
    vn = _ZERO
    top = _ONE << np.uint64(length - 1)
    score = length
    for p in range(t0, t1):
        eq = peq[t_codes[p]]
        d0 = (((eq & vp) + vp) ^ vp) | eq | vn
        hp = vn | ~(d0 | vp)
        hn = d0 & vp
        if hp & top:
            score += 1
        elif hn & top:
            score -= 1
        hp = (hp << _ONE) | _ONE
        hn = hn << _ONE
        vp = hn | ~(d0 | hp)
        vn = d0 & hp
    return score


@njit(cache=True)
def _levenshtein_rows(s_codes, s0, s1, t_codes, t0, t1, row):
    """Two-row DP edit distance (patterns longer than 64); ``row`` has at least |t| + 1 slots."""
    n, m = s1 - s0, t1 - t0
    if n == 0:
        return m
    if m == 0:
        return n
    for j in range(m + 1):
        row[j] = j
    for i in range(1, n + 1):
        diagonal = row[0]
        row[0] = i
        ca = s_codes[s0 + i - 1]
        for j in range(1, m + 1):
            above = row[j]
            best = diagonal + (0 if ca == t_codes[t0 + j - 1] else 1)
            if above + 1 < best:
                best = above + 1
            if row[j - 1] + 1 < best:
                best = row[j - 1] + 1
            row[j] = best
            diagonal = above
    return row[m]


@njit(cache=True, inline="always")
def _distance(s_codes, s0, s1, peq, t_codes, t_offsets, t, row):
    length = s1 - s0
    t0, t1 = t_offsets[t], t_offsets[t + 1]
    if length == 0:
        return t1 - t0
    if length <= 64:
        return _levenshtein_bits(peq, length, t_codes, t0, t1)
    return _levenshtein_rows(s_codes, s0, s1, t_codes, t0, t1, row)


@njit(cache=True, inline="always")
def _add_word(slices, base, carry):
    """Add one bit per target (``carry``) to the bit-sliced counters of one word."""
    b = 0
    while carry != _ZERO:
        low = slices[base + b] & carry
        slices[base + b] ^= carry
        carry = low
        b += 1


@njit(cache=True, nogil=True)
def nearest_batch(s_codes, s_offsets, s_occurrence, sources, t_codes, t_offsets, item_base, item_count, postings,
                  item_start, dense_row, dense_bits, by_length, length_start, out_position, out_distance):
    """Nearest target (position, distance) of each source in ``sources``; see the module docstring.

    Args:
        s_codes, s_offsets, s_occurrence: the source strings as character ids, and each character's occurrence
            number within its string.
        sources: int64 indices into ``s_offsets``; ``out_position[k]`` and ``out_distance[k]`` receive the
            result for ``sources[k]``.
        t_codes, t_offsets: the target strings in position order (the tie order).
        item_base, item_count: per character id, its first item id and how many occurrence numbers the targets
            reach (``0``: no target holds it); item ``(c, j)`` is ``item_base[c] + j − 1``.
        postings, item_start: the ranks holding item ``q`` are ``postings[item_start[q]:item_start[q + 1]]``,
            ascending.
        dense_row, dense_bits: ``dense_bits[dense_row[q]]`` is item ``q``'s rank bitset (``dense_row[q] < 0``:
            none).
        by_length, length_start: the target position at each rank; length ``m`` owns the ranks
            ``length_start[m]:length_start[m + 1]``.
    """
    n_targets = len(by_length)
    n_words = (n_targets + 63) >> 6
    max_length = len(length_start) - 2
    shortest = 0
    while length_start[shortest + 1] == length_start[shortest]:
        shortest += 1
    longest_source = 1
    for k in range(len(sources)):
        i = sources[k]
        longest_source = max(longest_source, s_offsets[i + 1] - s_offsets[i])
    n_slices = 1
    while (1 << n_slices) <= longest_source:
        n_slices += 1
    slices = np.zeros(n_words * n_slices, np.uint64)
    peq = np.zeros(max(len(item_base), 1), np.uint64)
    row = np.empty(max_length + 2, np.int64)
    items = np.empty(longest_source, np.int64)
    for k in range(len(sources)):
        i = sources[k]
        s0, s1 = s_offsets[i], s_offsets[i + 1]
        length = s1 - s0
        if length <= 64:
            for p in range(s0, s1):
                peq[s_codes[p]] |= _ONE << np.uint64(p - s0)
        n_items = 0
        for p in range(s0, s1):
            c = s_codes[p]
            if s_occurrence[p] <= item_count[c]:  # items no target holds add nothing
                items[n_items] = item_base[c] + s_occurrence[p] - 1
                n_items += 1
        nb = 1  # counts reach at most n_items ≤ L < 2^nb
        while (1 << nb) <= length:
            nb += 1
        best_d = max(length, shortest)
        best_p = n_targets
        bound = 1
        while True:
            bound = min(bound, best_d)
            m_lo = max(length - bound, 0)
            m_hi = min(length + bound, max_length)
            if m_lo > m_hi:  # every target is shorter than L − bound
                bound *= 2
                continue
            r0, r1 = length_start[m_lo], length_start[m_hi + 1]
            w0, w1 = r0 >> 6, (r1 + 63) >> 6
            slices[w0 * nb:w1 * nb] = _ZERO
            for q in range(n_items):
                item = items[q]
                e0 = _first_at_least(postings, item_start[item], item_start[item + 1], r0)
                e1 = _first_at_least(postings, e0, item_start[item + 1], r1)
                if dense_row[item] >= 0 and e1 - e0 > w1 - w0:
                    bits = dense_bits[dense_row[item]]
                    for w in range(w0, w1):  # ranks just outside the window get counts nobody reads
                        _add_word(slices, w * nb, bits[w])
                else:
                    for e in range(e0, e1):
                        rank = postings[e]
                        _add_word(slices, (rank >> 6) * nb, _ONE << np.uint64(rank & 63))
            for m in range(m_lo, m_hi + 1):
                rs, re = length_start[m], length_start[m + 1]
                if rs == re:
                    continue
                big = max(m, length)
                zero_open = big <= best_d  # the first target of this length sharing nothing is still to be seen
                for w in range(rs >> 6, (re + 63) >> 6):
                    mask = _ALL
                    if rs > w << 6:
                        mask &= _ALL << np.uint64(rs - (w << 6))
                    if re < (w + 1) << 6:
                        mask &= (_ONE << np.uint64(re - (w << 6))) - _ONE
                    base = w * nb
                    if zero_open:
                        shared = _ZERO
                        for b in range(nb):
                            shared |= slices[base + b]
                        free = mask & ~shared
                        if free != _ZERO:
                            t = by_length[(w << 6) + _lowest_bit(free)]
                            if big < best_d or (big == best_d and t < best_p):
                                best_d, best_p = big, t
                            zero_open = False
                    # verify targets whose bound big − common can reach this round's bound and tie or beat the
                    # best; positions grow with rank within a length, so past best_p a tie no longer helps
                    need = big - min(bound, best_d)
                    if by_length[max(rs, w << 6)] > best_p:
                        need = max(need, big - best_d + 1)
                    need = max(need, 1)
                    if need >= 1 << nb:
                        continue
                    ge = _ZERO  # counts ≥ need, compared bit-sliced from the top bit down
                    eq = _ALL
                    for b in range(nb - 1, -1, -1):
                        if (need >> b) & 1:
                            eq &= slices[base + b]
                        else:
                            ge |= eq & slices[base + b]
                    ge = (ge | eq) & mask
                    while ge != _ZERO:
                        bit = _lowest_bit(ge)
                        ge &= ge - _ONE
                        t = by_length[(w << 6) + bit]
                        common = 0
                        for b in range(nb):
                            common += int((slices[base + b] >> np.uint64(bit)) & _ONE) << b
                        lower = big - common
                        if lower > best_d or (lower == best_d and t > best_p):
                            continue
                        d = _distance(s_codes, s0, s1, peq, t_codes, t_offsets, t, row)
                        if d < best_d or (d == best_d and t < best_p):
                            best_d, best_p = d, t
            if best_d <= bound:
                break
            bound *= 2
        out_position[k] = best_p
        out_distance[k] = best_d
        if length <= 64:
            for p in range(s0, s1):
                peq[s_codes[p]] = _ZERO


def _code_points(strings):
    """``(codes, offsets)``: every string's code points, string ``i`` being ``codes[offsets[i]:offsets[i + 1]]``
    (lone surrogates count as one code point each, as ``len`` does)."""
    codes = np.frombuffer("".join(strings).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    offsets = np.zeros(len(strings) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, strings), np.int64, len(strings)), out=offsets[1:])
    return codes, offsets


def prepare(sources, targets) -> tuple:
    """The arrays :func:`nearest_batch` takes after ``sources`` (all but the batch and the outputs), for strings
    ``sources`` and ``targets`` (not empty)."""
    s_points, s_offsets = _code_points(sources)
    t_points, t_offsets = _code_points(targets)
    alphabet, dense = np.unique(np.concatenate([s_points, t_points]), return_inverse=True)
    dense = dense.astype(np.int32)
    s_codes, t_codes = dense[:len(s_points)], dense[len(s_points):]
    counter = np.zeros(len(alphabet), np.int64)
    s_occurrence = occurrence_numbers(s_codes, s_offsets, counter)
    t_occurrence = occurrence_numbers(t_codes, t_offsets, counter)
    item_count = np.zeros(len(alphabet), np.int64)
    np.maximum.at(item_count, t_codes, t_occurrence)
    item_base = np.zeros(len(alphabet), np.int64)
    np.cumsum(item_count[:-1], out=item_base[1:])
    # targets by (length, position): a length is one rank range, and ranks of one length keep the position order
    n_targets = len(targets)
    t_length = np.diff(t_offsets)
    by_length = np.argsort(t_length, kind="stable")
    rank = np.empty(n_targets, np.int64)
    rank[by_length] = np.arange(n_targets)
    item = item_base[t_codes] + t_occurrence - 1
    n_items = int(item_count.sum())
    postings = (np.sort(item * n_targets + np.repeat(rank, t_length)) % n_targets).astype(np.int32)
    sizes = np.bincount(item, minlength=n_items)
    item_start = np.zeros(n_items + 1, np.int64)
    np.cumsum(sizes, out=item_start[1:])
    # items held by at least 1 target in 32 also get a bitset (at most 32 × the total characters, in bits)
    dense_items = np.flatnonzero(sizes * 32 >= n_targets)
    dense_row = np.full(n_items, -1, np.int64)
    dense_row[dense_items] = np.arange(len(dense_items))
    dense_bits = np.zeros((len(dense_items), (n_targets + 63) >> 6), np.uint64)
    fill_bitsets(postings, item_start, dense_items, dense_bits)
    length_start = np.zeros(int(t_length.max()) + 2, np.int64)
    np.cumsum(np.bincount(t_length), out=length_start[1:])
    return (s_codes, s_offsets, s_occurrence, t_codes, t_offsets, item_base, item_count, postings, item_start,
            dense_row, dense_bits, by_length.astype(np.int32), length_start)


def nearest(sources, targets, *, workers: int = 1, chunk: int = 512, on_batch=None):
    """For every source string, ``(position, distance)`` of the nearest target string (ties: lowest position).

    Args:
        sources, targets: sequences of ``str`` (``targets`` not empty); distances count code points.
        workers: threads running batches at once (the compiled batches release the GIL).
        chunk: sources per batch.
        on_batch: called with the number of sources of each finished batch, from the calling thread.

    Returns:
        Two int64 arrays over ``sources``.
    """
    from concurrent.futures import ThreadPoolExecutor

    (s_codes, s_offsets, s_occurrence, t_codes, t_offsets, item_base, item_count, postings, item_start, dense_row,
     dense_bits, by_length, length_start) = prepare(sources, targets)
    position = np.full(len(sources), -1, np.int64)
    distance = np.full(len(sources), -1, np.int64)
    chunk = max(1, chunk)

    def run(start: int) -> int:
        stop = min(start + chunk, len(sources))
        nearest_batch(s_codes, s_offsets, s_occurrence, np.arange(start, stop, dtype=np.int64), t_codes, t_offsets,
                      item_base, item_count, postings, item_start, dense_row, dense_bits, by_length, length_start,
                      position[start:stop], distance[start:stop])
        return stop - start

    starts = range(0, len(sources), chunk)
    if workers <= 1 or len(starts) <= 1:
        done = map(run, starts)
    else:
        pool = ThreadPoolExecutor(workers)
        done = pool.map(run, starts)
    try:
        for count in done:
            if on_batch is not None:
                on_batch(count)
    finally:
        if workers > 1 and len(starts) > 1:
            pool.shutdown(cancel_futures=True)
    # every source reaches some target (the shortest ones are within max(L, shortest)); say so loudly if not
    if len(sources) and (position.min() < 0 or position.max() >= len(targets)):
        raise RuntimeError("MinED search left a source without a target (an internal error; please report it)")
    return position, distance
