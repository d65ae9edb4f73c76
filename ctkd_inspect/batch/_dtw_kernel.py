"""Classic (hard) DTW over a padded batch of cost matrices, compiled (numba). Private: used through
:mod:`ctkd_inspect.batch.dtw`; importing this module imports numba.

The recursion and backtrace are FuseLLM's ``simpledtw`` conventions (see :mod:`ctkd_inspect.engines.dtw_core`):
``R[i,j] = C[i,j] + min(R[i−1,j−1], R[i−1,j], R[i,j−1])`` with infinite borders and ``R[0,0] = 0`` in padded
coordinates; the backtrace starts at the pair's last cell and takes the first minimum of ``[diag, up, left]``, so
ties go diagonal > up (teacher index − 1) > left (student index − 1); it always ends at (0, 0).

Memory: besides the costs it is given, a pair needs one byte per cell (the direction codes of the backtrace) and
two rows of accumulated cost; :func:`ctkd_inspect.batch.dtw.dtw_memory` states it. Costs may be float64, float32,
int64, int32 or unsigned integers (numba compiles one version per type); accumulation is in float64, so integer
costs give exactly the totals and paths of the same costs as float64.

Functions live at module level so numba's on-disk cache serves them to every later process.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

#: Batches with fewer DP cells than this (or with one pair) run the serial kernel (a parallel region costs more
#: than a small problem).
PARALLEL_MIN_CELLS = 1 << 16


@njit(cache=True)
def _one_pair(cost, b, n, m, paths, steps_out, totals):
    # Memory: one direction code per cell (1 byte) and two rows of accumulated cost, instead of the whole
    # float64 accumulated matrix: the backtrace only needs to know which neighbour each cell came from. The code
    # stored is the one the backtrace over the full matrix would pick (the first minimum of [diag, up, left]):
    # the forward pass compares the same three values with the same tie order.
    moves = np.empty((n, m), np.uint8)  # 0 diagonal, 1 up (teacher − 1), 2 left (student − 1)
    previous = np.full(m + 1, np.inf)  # accumulated row i − 1, padded: previous[j] = R[i−1, j−1]
    current = np.empty(m + 1)
    previous[0] = 0.0
    for i in range(1, n + 1):
        current[0] = np.inf
        for j in range(1, m + 1):
            best = previous[j - 1]
            move = 0
            if previous[j] < best:
                best = previous[j]
                move = 1
            if current[j - 1] < best:
                best = current[j - 1]
                move = 2
            current[j] = cost[b, i - 1, j - 1] + best
            moves[i - 1, j - 1] = move
        previous, current = current, previous
    # backtrace along the stored codes, from the last cell to (0, 0)
    i, j = n - 1, m - 1
    steps = 0
    while i > 0 or j > 0:
        paths[b, steps, 0] = i
        paths[b, steps, 1] = j
        steps += 1
        move = moves[i, j]
        if move == 0:
            i -= 1
            j -= 1
        elif move == 1:
            i -= 1
        else:
            j -= 1
    paths[b, steps, 0] = 0
    paths[b, steps, 1] = 0
    steps += 1
    # the path was written from the end: reverse it in place
    for k in range(steps // 2):
        a0, a1 = paths[b, k, 0], paths[b, k, 1]
        paths[b, k, 0] = paths[b, steps - 1 - k, 0]
        paths[b, k, 1] = paths[b, steps - 1 - k, 1]
        paths[b, steps - 1 - k, 0] = a0
        paths[b, steps - 1 - k, 1] = a1
    steps_out[b] = steps
    totals[b] = previous[m]


@njit(cache=True)
def all_finite(cost, n_lengths, m_lengths):
    """Whether every cost inside each pair's lengths is finite (no temporary array of the batch's size)."""
    for b in range(cost.shape[0]):
        for i in range(n_lengths[b]):
            for j in range(m_lengths[b]):
                if not np.isfinite(cost[b, i, j]):
                    return False
    return True


@njit(cache=True)
def dtw_serial(cost, n_lengths, m_lengths, paths, steps, totals):
    for b in range(cost.shape[0]):
        _one_pair(cost, b, n_lengths[b], m_lengths[b], paths, steps, totals)


@njit(cache=True, parallel=True)
def dtw_parallel(cost, n_lengths, m_lengths, paths, steps, totals):
    for b in prange(cost.shape[0]):
        _one_pair(cost, b, n_lengths[b], m_lengths[b], paths, steps, totals)


@njit(cache=True)
def path_ranges(paths, steps, n_lengths, m_lengths, t_first, t_last, s_first, s_last):
    """For every teacher index the first and last student index its path cells pair it with, and the converse
    (a monotone path pairs each index with a contiguous range); -1 beyond a pair's lengths."""
    for b in range(paths.shape[0]):
        for k in range(steps[b]):
            i = paths[b, k, 0]
            j = paths[b, k, 1]
            if t_first[b, i] < 0:
                t_first[b, i] = j
            t_last[b, i] = j
            if s_first[b, j] < 0:
                s_first[b, j] = i
            s_last[b, j] = i


@njit(cache=True)
def cdm_group_ranges(t_first, t_last, s_first, s_last, n_lengths, groups, counts):
    """CDM's groups of every pair: the distinct teacher→student lists in first-seen order. On a monotone path each
    list is a contiguous student range and equal lists belong to consecutive teachers, so a group is a run of
    teachers with the same range. ``groups[b, g] = (student first, student last, teacher first, teacher last)``:
    the teachers are those of the group's students, i.e. ``s_first[first] … s_last[last]``."""
    for b in range(t_first.shape[0]):
        g = 0
        previous_first = -1
        previous_last = -1
        for i in range(n_lengths[b]):
            first = t_first[b, i]
            last = t_last[b, i]
            if first == previous_first and last == previous_last:
                continue
            groups[b, g, 0] = first
            groups[b, g, 1] = last
            groups[b, g, 2] = s_first[b, first]
            groups[b, g, 3] = s_last[b, last]
            g += 1
            previous_first = first
            previous_last = last
        counts[b] = g
