"""Classic DTW lifted to padded batches: one compiled call aligns every pair of a batch (numpy + numba, no torch).

This is the one implementation of the DTW path: :func:`ctkd_inspect.engines.dtw_core.dtw_path` (the inspection
engines ``mined`` and ``cdm``) runs it on a batch of one, the distillation losses on whole batches (MinED's path in
the data pipeline, CDM's entropy-weighted path inside the loss). Conventions (FuseLLM's ``simpledtw``): see
:mod:`ctkd_inspect.engines.dtw_core`. Series 1 (rows) is the teacher, series 2 (columns) the student.

Pair ``b`` uses ``costs[b, :n[b], :m[b]]``; cells beyond its lengths are never read (they may hold anything).

Memory: the costs are used in their own type when it is float64, float32 or an integer type (no float64 copy of
an integer matrix), and the DP needs one byte per cell of each pair for the backtrace plus two rows of
accumulated cost (:func:`dtw_memory`); callers check that against their memory budget before allocating the
costs (see :mod:`ctkd_inspect.memory`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_KERNEL = None


def _kernel():
    global _KERNEL
    if _KERNEL is None:
        from . import _dtw_kernel

        _KERNEL = _dtw_kernel
    return _KERNEL


@dataclass
class BatchedPaths:
    """Hard DTW paths of a batch.

    Attributes:
        paths: ``(B, N + M − 1, 2)`` int64 ``(teacher index, student index)`` cells from (0, 0) to each pair's last
            cell, then ``-1`` padding.
        steps: ``(B,)`` the number of cells of each path.
        totals: ``(B,)`` float64 accumulated cost at each pair's last cell.
        teacher_lengths, student_lengths: ``(B,)`` the pairs' lengths.
    """

    paths: np.ndarray
    steps: np.ndarray
    totals: np.ndarray
    teacher_lengths: np.ndarray
    student_lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)

    def path(self, b: int) -> np.ndarray:
        """Pair ``b``'s path, ``(steps, 2)``."""
        return self.paths[b, :int(self.steps[b])]

    def ranges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(t_first, t_last, s_first, s_last)``: for every teacher index the first and last student index its
        cells pair it with (``(B, N)``), and for every student index its first and last teacher index
        (``(B, M)``); ``-1`` beyond a pair's lengths. A monotone path pairs each index with a contiguous range, so
        student ``j`` is "1:1" in MinED's per-row sense exactly when ``s_first[b, j] == s_last[b, j]``."""
        B = len(self.steps)
        N = int(self.teacher_lengths.max(initial=0))
        M = int(self.student_lengths.max(initial=0))
        t_first = np.full((B, N), -1, np.int64)
        t_last = np.full((B, N), -1, np.int64)
        s_first = np.full((B, M), -1, np.int64)
        s_last = np.full((B, M), -1, np.int64)
        _kernel().path_ranges(self.paths, self.steps, self.teacher_lengths, self.student_lengths, t_first, t_last,
                              s_first, s_last)
        return t_first, t_last, s_first, s_last

    def cdm_groups(self) -> tuple[np.ndarray, np.ndarray]:
        """CDM's groups of every pair (see :func:`ctkd_inspect.engines.dtw_core.cdm_groups`) as ranges.

        Returns:
            ``(groups, counts)``: ``groups`` is ``(B, G, 4)`` int64 rows ``(student first, student last, teacher
            first, teacher last)`` (inclusive ranges; ``-1`` padding), ``counts`` the number of groups per pair.
        """
        t_first, t_last, s_first, s_last = self.ranges()
        B = len(self.steps)
        groups = np.full((B, max(t_first.shape[1], 1), 4), -1, np.int64)
        counts = np.zeros(B, np.int64)
        _kernel().cdm_group_ranges(t_first, t_last, s_first, s_last, self.teacher_lengths, groups, counts)
        return groups[:, :max(int(counts.max(initial=0)), 0)], counts


#: Bytes per DP cell the kernel allocates (the backtrace's direction codes), on top of the costs themselves.
DIRECTION_BYTES_PER_CELL = 1

def dtw_memory(teacher_lengths, student_lengths) -> int:
    """Bytes :func:`dtw_paths` allocates for pairs of these lengths, beyond the costs it is given: the direction
    codes (one byte per cell of every pair: an upper bound, since pairs run one after another on each thread),
    the accumulated rows and the padded path array.

    >>> dtw_memory([1000], [2000])  # 2 M cells
    2080024
    """
    n = np.asarray(teacher_lengths, dtype=np.int64).reshape(-1)
    m = np.asarray(student_lengths, dtype=np.int64).reshape(-1)
    if n.size == 0:
        return 0
    N, M = int(n.max()), int(m.max())
    cells = int((n * m).sum()) * DIRECTION_BYTES_PER_CELL
    rows = int(16 * (m + 1).sum())
    paths = len(n) * (N + M - 1) * 2 * 8 + len(n) * 24
    return cells + rows + paths


def _lengths(value, batch: int, limit: int, name: str) -> np.ndarray:
    if value is None:
        return np.full(batch, limit, np.int64)
    out = np.asarray(value, dtype=np.int64).reshape(-1)
    if out.shape != (batch,) or (out < 1).any() or (out > limit).any():
        raise ValueError(f"{name} must hold {batch} integers in [1, {limit}] (got {out.tolist()})")
    return out


def dtw_paths(costs, teacher_lengths=None, student_lengths=None) -> BatchedPaths:
    """Classic DTW of every pair of a padded batch of cost matrices, in one compiled call.

    Args:
        costs: ``(B, N, M)`` (or ``(N, M)``, a batch of one) costs, teacher rows × student columns; finite inside
            each pair's lengths.
        teacher_lengths, student_lengths: ``(B,)`` integer lengths (default: the full ``N`` / ``M``).

    Returns:
        A :class:`BatchedPaths`.

    Raises:
        ValueError: a shape that is not 2-D/3-D, an empty side, lengths out of range, non-finite costs inside a
            pair's lengths.
    """
    costs = np.asarray(costs)
    # float and integer costs are used as they are (an integer matrix is 1-8 bytes a cell, its float64 copy 8);
    # anything else (bool, float16, object) is converted
    native = (costs.dtype.kind == "f" and costs.dtype.itemsize in (4, 8)) or costs.dtype.kind in "iu"
    costs = np.ascontiguousarray(costs, dtype=costs.dtype if native else np.float64)
    if costs.ndim == 2:
        costs = costs[None]
    if costs.ndim != 3:
        raise ValueError(f"the cost matrices must be (B, N, M), got shape {costs.shape}")
    B, N, M = costs.shape
    if N == 0 or M == 0:
        raise ValueError(f"DTW needs at least one token on each side (got {N} teacher, {M} student)")
    n = _lengths(teacher_lengths, B, N, "teacher_lengths")
    m = _lengths(student_lengths, B, M, "student_lengths")
    kernel = _kernel()
    # checked in place (no mask or copy of the batch's size); integer costs are always finite
    if costs.dtype.kind == "f" and not kernel.all_finite(costs, n, m):
        raise ValueError("the cost matrix holds NaN or infinite values")
    paths = np.full((B, max(N + M - 1, 1), 2), -1, np.int64)
    steps = np.zeros(B, np.int64)
    totals = np.zeros(B, np.float64)
    work = int((n * m).sum())
    if B > 1 and work >= kernel.PARALLEL_MIN_CELLS:
        kernel.dtw_parallel(costs, n, m, paths, steps, totals)
    else:
        kernel.dtw_serial(costs, n, m, paths, steps, totals)
    return BatchedPaths(paths, steps, totals, n, m)
