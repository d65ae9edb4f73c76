"""Soft-DTW on the CPU: compiled forward and E-matrix backward (numba), parallel over the pairs of a batch.

Array conventions shared with the other back-ends (1-based DP coordinates inside padded arrays):

- ``D``: ``(B, N, M)`` costs; pair ``b`` uses ``D[b, :n[b], :m[b]]``;
- ``R``: ``(B, N + 2, M + 2)`` (float64 here, the costs' dtype in the other back-ends); ``R[b, 0, 0] = 0``, the
  rest of row 0 and column 0 is ``+inf``;
  ``R[b, i, j]`` for ``1 ≤ i ≤ n[b]``, ``1 ≤ j ≤ m[b]`` is the soft-DTW recursion, and the value of the pair is
  ``R[b, n[b], m[b]]``. Cells beyond a pair's lengths are never written nor read (they hold garbage).
- ``E``: ``(B, N, M)``, ``E[b, i-1, j-1] = ∂R[b, n, m] / ∂D[b, i-1, j-1]`` (zero outside the pair's block): the
  expected alignment matrix.

The soft minimum is evaluated with the smallest argument factored out, ``softmin(a, b, c) = r − γ·log Σ
exp(−(v − r)/γ)`` with ``r = min(a, b, c)``, so it never overflows and an infinite argument contributes 0 (two
exponentials per cell: the smallest argument's is 1). The backward exponents ``(R[succ] − R[cell] − D[succ])/γ``
are ≤ 0 in exact arithmetic (a soft minimum never exceeds the minimum); they are clamped at 0 so that rounding
noise divided by a tiny ``γ`` cannot overflow. ``R`` is always float64, also for float32 costs: the E recursion
divides differences of ``R`` by ``γ``, so float32 rounding of ``R`` (about 1e-7·|R|) would swamp ``E`` once ``γ``
gets near it, while in float64 ``E`` stays exact down to ``γ`` ≈ 1e-12·|R|. ``E`` has the costs' dtype. Costs must
be finite.

Each kernel exists twice, parallel over the pairs (``prange``) and serial: a parallel region costs tens of
microseconds to milliseconds of thread wake-up (more on a loaded machine), which dominates small problems, so the
serial one runs when the batch has one pair or little work (:data:`PARALLEL_MIN_CELLS`). Compiled on first use and
cached on disk (``cache=True``). This module needs numpy and numba only (no torch).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

#: Batches with fewer DP cells than this (or with one pair) run the serial kernels.
PARALLEL_MIN_CELLS = 1 << 16


@njit(cache=True)
def _forward_pair(D, R, b, nb, mb, gamma):
    inv = 1.0 / gamma
    R[b, 0, :] = np.inf
    R[b, :, 0] = np.inf
    R[b, 0, 0] = 0.0
    for i in range(1, nb + 1):
        for j in range(1, mb + 1):
            r0 = R[b, i - 1, j - 1]
            r1 = R[b, i - 1, j]
            r2 = R[b, i, j - 1]
            # factor out the smallest argument: its exponential is 1, the other two are <= 1
            if r0 <= r1 and r0 <= r2:
                rmin, o1, o2 = r0, r1, r2
            elif r1 <= r2:
                rmin, o1, o2 = r1, r0, r2
            else:
                rmin, o1, o2 = r2, r0, r1
            if rmin == np.inf:
                R[b, i, j] = np.inf
                continue
            total = 1.0 + np.exp((rmin - o1) * inv) + np.exp((rmin - o2) * inv)
            R[b, i, j] = D[b, i - 1, j - 1] + rmin - gamma * np.log(total)


@njit(cache=True)
def _backward_pair(D, R, E, b, nb, mb, gamma):
    inv = 1.0 / gamma
    # rows i + 1 ("below") and i ("here") of E, 1-based columns, swept bottom-up
    below = np.zeros(mb + 2, dtype=E.dtype)
    here = np.zeros(mb + 2, dtype=E.dtype)
    for i in range(nb, 0, -1):
        here[mb + 1] = 0.0
        for j in range(mb, 0, -1):
            r = R[b, i, j]
            total = 0.0
            if i < nb:  # successor (i + 1, j)
                total += below[j] * np.exp(min((R[b, i + 1, j] - r - D[b, i, j - 1]) * inv, 0.0))
            if j < mb:  # successor (i, j + 1)
                total += here[j + 1] * np.exp(min((R[b, i, j + 1] - r - D[b, i - 1, j]) * inv, 0.0))
            if i < nb and j < mb:  # successor (i + 1, j + 1)
                total += below[j + 1] * np.exp(min((R[b, i + 1, j + 1] - r - D[b, i, j]) * inv, 0.0))
            elif i == nb and j == mb:  # the end cell: dR[n, m]/dR[n, m] = 1
                total = 1.0
            here[j] = total
            E[b, i - 1, j - 1] = total
        below, here = here, below


@njit(cache=True, parallel=True)
def _forward_parallel(D, n, m, gamma):
    B, N, M = D.shape
    R = np.empty((B, N + 2, M + 2), dtype=np.float64)
    for b in prange(B):
        _forward_pair(D, R, b, n[b], m[b], gamma)
    return R


@njit(cache=True)
def _forward_serial(D, n, m, gamma):
    B, N, M = D.shape
    R = np.empty((B, N + 2, M + 2), dtype=np.float64)
    for b in range(B):
        _forward_pair(D, R, b, n[b], m[b], gamma)
    return R


@njit(cache=True, parallel=True)
def _backward_parallel(D, R, n, m, gamma):
    E = np.zeros(D.shape, dtype=D.dtype)
    for b in prange(D.shape[0]):
        _backward_pair(D, R, E, b, n[b], m[b], gamma)
    return E


@njit(cache=True)
def _backward_serial(D, R, n, m, gamma):
    E = np.zeros(D.shape, dtype=D.dtype)
    for b in range(D.shape[0]):
        _backward_pair(D, R, E, b, n[b], m[b], gamma)
    return E


def _parallel(n: np.ndarray, m: np.ndarray) -> bool:
    return len(n) > 1 and int(np.dot(n.astype(np.int64), m.astype(np.int64))) >= PARALLEL_MIN_CELLS


def forward(D: np.ndarray, n: np.ndarray, m: np.ndarray, gamma: float) -> np.ndarray:
    """The padded float64 ``R`` of every pair (see the module docstring).

    Args:
        D: ``(B, N, M)`` float32/float64 costs (any strides); ``n``, ``m``: ``(B,)`` integer lengths in
            ``[1, N]``/``[1, M]`` (validated by the caller); ``gamma`` > 0.
    """
    n = np.ascontiguousarray(n, dtype=np.int64)
    m = np.ascontiguousarray(m, dtype=np.int64)
    kernel = _forward_parallel if _parallel(n, m) else _forward_serial
    return kernel(D, n, m, float(gamma))


def backward(D: np.ndarray, R: np.ndarray, n: np.ndarray, m: np.ndarray, gamma: float) -> np.ndarray:
    """``E = ∂value/∂D`` of every pair (see the module docstring); ``R`` is :func:`forward`'s output."""
    n = np.ascontiguousarray(n, dtype=np.int64)
    m = np.ascontiguousarray(m, dtype=np.int64)
    kernel = _backward_parallel if _parallel(n, m) else _backward_serial
    return kernel(D, R, n, m, float(gamma))


def value_and_alignment(C: np.ndarray, gamma: float, penalty: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Soft-DTW value and expected alignment ``E`` of one ``(N, M)`` cost matrix, in float64 numpy (no torch).

    Args:
        C: ``(N, M)`` finite costs; ``gamma``: a finite number > 0; ``penalty``: an optional additive ``(N, M)``
            penalty (e.g. the band of :func:`ctkd_inspect.batch.band.dwa_band_numpy`).

    Raises:
        ValueError: gamma ≤ 0 or not finite, an empty or non-2-D matrix, a penalty of another shape.
    """
    if not (isinstance(gamma, (int, float, np.integer, np.floating)) and math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be a finite number > 0 (got {gamma!r})")
    D = np.ascontiguousarray(C, dtype=np.float64)
    if D.ndim != 2 or D.shape[0] == 0 or D.shape[1] == 0:
        raise ValueError(f"the cost matrix must be 2-D and non-empty (got shape {D.shape})")
    if penalty is not None:
        P = np.asarray(penalty, dtype=np.float64)
        if P.shape != D.shape:
            raise ValueError(f"the penalty must have the cost matrix's shape {D.shape} (got {P.shape})")
        D = D + P
    D = D[None]
    n, m = np.array([D.shape[1]]), np.array([D.shape[2]])
    R = forward(D, n, m, float(gamma))
    E = backward(D, R, n, m, float(gamma))
    return float(R[0, D.shape[1], D.shape[2]]), E[0]
