"""CDM's dynamic top-K mapping as one compiled pass (numba). Private: used by
:func:`ctkd_inspect.vocab.cdm_dynamic_mapping` when both vocabularies come as
:class:`~ctkd_inspect.vocab.CodedStrings`.

The mapping is computed every training step, over every aligned row, and its per-row work is tiny (at most
K × K Levenshtein distances between tokens of a few characters), so a Python loop spends its time on calls, not on
distances. Here the rows, the distances (a two-row Levenshtein DP on code points), the first-minimum choice and the
sequential "already mapped" bookkeeping all run compiled, with exactly the semantics of the Python path (a
length bound skips candidates that can neither be the first minimum nor pass θ, which changes no result).
Functions live at module level so numba's on-disk cache serves them to later processes; importing this module
imports numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _levenshtein(codes, a0, a1, b_codes, b0, b1, scratch):
    """Edit distance between ``codes[a0:a1]`` and ``b_codes[b0:b1]`` (unit costs), with ``scratch`` ≥ |b| + 1."""
    n, m = a1 - a0, b1 - b0
    if n == 0:
        return m
    if m == 0:
        return n
    for j in range(m + 1):
        scratch[j] = j
    for i in range(1, n + 1):
        diagonal = scratch[0]
        scratch[0] = i
        ca = codes[a0 + i - 1]
        for j in range(1, m + 1):
            above = scratch[j]
            best = diagonal + (0 if ca == b_codes[b0 + j - 1] else 1)
            if above + 1 < best:
                best = above + 1
            if scratch[j - 1] + 1 < best:
                best = scratch[j - 1] + 1
            scratch[j] = best
            diagonal = above
    return scratch[m]


@njit(cache=True)
def one_direction(source_topk, target_topk, source_codes, source_offsets, target_codes, target_offsets, done,
                  threshold):
    """Map the open ids of every source row to the other side's candidates of the same row.

    Args:
        source_topk, target_topk: ``(rows, K)`` int64 ids; ``-1`` marks a slot without a string.
        source_codes/offsets, target_codes/offsets: each vocabulary's strings (spaces removed) as code points,
            id ``i`` being ``codes[offsets[i]:offsets[i + 1]]``.
        done: uint8 per source id, 1 when already mapped (static); updated in place as rows map ids.
        threshold: θ; a pair is accepted when ``Lev / (|a| + |b|) < θ`` (0 when both are empty).

    Returns:
        ``(pairs, mapped)``: the accepted ``(source id, target id)`` rows in acceptance order, and the number of
        source slots mapped (already, or in this pass).
    """
    rows, k = source_topk.shape
    longest = 1
    for r in range(rows):
        for c in range(k):
            j = target_topk[r, c]
            if j >= 0 and target_offsets[j + 1] - target_offsets[j] + 1 > longest:
                longest = target_offsets[j + 1] - target_offsets[j] + 1
    scratch = np.empty(longest, np.int64)
    pairs = np.empty((rows * k, 2), np.int64)
    count = 0
    mapped = 0
    for r in range(rows):
        for c in range(k):
            i = source_topk[r, c]
            if i < 0:
                continue
            if done[i]:
                mapped += 1
                continue
            a0, a1 = source_offsets[i], source_offsets[i + 1]
            best = np.inf
            best_id = -1
            for cc in range(k):
                j = target_topk[r, cc]
                if j < 0:
                    continue
                b0, b1 = target_offsets[j], target_offsets[j + 1]
                total = (a1 - a0) + (b1 - b0)
                scale = total if total > 0 else 1
                # Lev ≥ the length difference: a candidate whose bound already reaches the best so far cannot be
                # the first minimum, and one whose bound reaches θ cannot be accepted (the result is unchanged)
                if abs((a1 - a0) - (b1 - b0)) / scale >= min(best, threshold):
                    continue
                distance = _levenshtein(source_codes, a0, a1, target_codes, b0, b1, scratch)
                normalized = distance / scale
                if normalized < best:  # strict: the first minimum, i.e. the higher-ranked candidate, wins
                    best = normalized
                    best_id = j
                    if distance == 0:  # nothing can be smaller
                        break
            if best_id >= 0 and best < threshold:
                pairs[count, 0] = i
                pairs[count, 1] = best_id
                count += 1
                done[i] = 1
                mapped += 1
    return pairs[:count], mapped


@njit(cache=True)
def slot_mapping(source_topk, target_topk, segment_starts, source_codes, source_offsets, target_codes,
                 target_offsets, static, threshold, out):
    """The mapped target id of every top-K slot, each segment of rows (one example) on its own.

    Within a segment the rows are visited in order and an id without a static mapping is mapped at the first row
    where a candidate passes θ (exactly :func:`one_direction`); the segment's final mapping is then applied to all
    of its slots, earlier rows included. Nothing carries over from one segment to the next, so an example's targets
    do not depend on the other examples of its batch.

    Args:
        source_topk, target_topk: ``(rows, K)`` int64 ids (``-1``: no string).
        segment_starts: ``(S + 1,)`` row offsets of the segments.
        static: int64 per source id, the static target id or ``-1``.
        out: ``(rows, K)`` int64, filled with the target id of each slot or ``-1``.

    Returns:
        The number of dynamic pairs found (summed over segments).
    """
    rows, k = source_topk.shape
    longest = 1
    for r in range(rows):
        for c in range(k):
            j = target_topk[r, c]
            if j >= 0 and target_offsets[j + 1] - target_offsets[j] + 1 > longest:
                longest = target_offsets[j + 1] - target_offsets[j] + 1
    scratch = np.empty(longest, np.int64)
    dynamic = np.full(len(source_offsets) - 1, -1, np.int64)
    touched = np.empty(rows * k, np.int64)
    pairs = 0
    for s in range(len(segment_starts) - 1):
        r0, r1 = segment_starts[s], segment_starts[s + 1]
        count = 0
        for r in range(r0, r1):
            for c in range(k):
                i = source_topk[r, c]
                if i < 0 or (i < len(static) and static[i] >= 0) or dynamic[i] >= 0:
                    continue
                a0, a1 = source_offsets[i], source_offsets[i + 1]
                best = np.inf
                best_id = -1
                for cc in range(k):
                    j = target_topk[r, cc]
                    if j < 0:
                        continue
                    b0, b1 = target_offsets[j], target_offsets[j + 1]
                    total = (a1 - a0) + (b1 - b0)
                    scale = total if total > 0 else 1
                    if abs((a1 - a0) - (b1 - b0)) / scale >= min(best, threshold):
                        continue
                    distance = _levenshtein(source_codes, a0, a1, target_codes, b0, b1, scratch)
                    normalized = distance / scale
                    if normalized < best:
                        best = normalized
                        best_id = j
                        if distance == 0:
                            break
                if best_id >= 0 and best < threshold:
                    dynamic[i] = best_id
                    touched[count] = i
                    count += 1
        for r in range(r0, r1):
            for c in range(k):
                i = source_topk[r, c]
                if i < 0:
                    out[r, c] = -1
                elif i < len(static) and static[i] >= 0:
                    out[r, c] = static[i]
                else:
                    out[r, c] = dynamic[i]
        pairs += count
        for t in range(count):  # reset this segment's additions
            dynamic[touched[t]] = -1
    return pairs
