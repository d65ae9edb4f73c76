"""Soft-DTW on the CPU: compiled forward and E-matrix backward (numba), parallel over the pairs of a batch.

Array conventions shared with the other back-ends (1-based DP coordinates inside padded arrays):

- ``D``: ``(B, N, M)`` costs; pair ``b`` uses ``D[b, :n[b], :m[b]]``;
- ``R``: ``(B, N + 2, M + 2)``; ``R[b, 0, 0] = 0``, the rest of row 0 and column 0 is ``+inf``;
  ``R[b, i, j]`` for ``1 ≤ i ≤ n[b]``, ``1 ≤ j ≤ m[b]`` is the soft-DTW recursion, and the value of the pair is
  ``R[b, n[b], m[b]]``. Cells beyond a pair's lengths are never read.
- ``E``: ``(B, N, M)``, ``E[b, i-1, j-1] = ∂R[b, n, m] / ∂D[b, i-1, j-1]`` (zero outside the pair's block): the
  expected alignment matrix.

The soft minimum is evaluated with the smallest argument factored out, ``softmin(a, b, c) = r − γ·log Σ
exp(−(v − r)/γ)`` with ``r = min(a, b, c)``, so it never overflows and an infinite argument contributes 0. The
backward exponents ``(R[succ] − R[cell] − D[succ])/γ`` are ≤ 0 in exact arithmetic (a soft minimum never exceeds
the minimum); they are clamped at 0 so that rounding noise divided by a tiny ``γ`` cannot overflow. float32 inputs
are computed with float64 intermediates and stored as float32; costs must be finite.
"""

from __future__ import annotations

import numpy as np

_KERNELS = None


def kernels():
    """``(forward, backward)`` compiled functions (compiled on first use, cached on disk)."""
    global _KERNELS
    if _KERNELS is None:
        from numba import njit, prange

        @njit(cache=True, parallel=True)
        def forward(D, n, m, gamma):
            B, N, M = D.shape
            # only the borders need initialising: every other cell read is written earlier in the sweep
            R = np.empty((B, N + 2, M + 2), dtype=D.dtype)
            inv = 1.0 / gamma
            for b in prange(B):
                R[b, 0, :] = np.inf
                R[b, :, 0] = np.inf
                R[b, 0, 0] = 0.0
                for i in range(1, n[b] + 1):
                    for j in range(1, m[b] + 1):
                        r0 = R[b, i - 1, j - 1]
                        r1 = R[b, i - 1, j]
                        r2 = R[b, i, j - 1]
                        # factor out the smallest argument: its exponential is 1, the other two are ≤ 1
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
            return R

        @njit(cache=True, parallel=True)
        def backward(D, R, n, m, gamma):
            B, N, M = D.shape
            E = np.zeros((B, N, M), dtype=D.dtype)
            inv = 1.0 / gamma
            for b in prange(B):
                nb, mb = n[b], m[b]
                # rows i + 1 and i of E (1-based, padded by one column on the right), swept bottom-up
                below = np.zeros(mb + 2, dtype=D.dtype)
                here = np.zeros(mb + 2, dtype=D.dtype)
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
                        elif i == nb and j == mb:  # the end cell: E = 1 (its sentinel successor)
                            total = 1.0
                        here[j] = total
                        E[b, i - 1, j - 1] = total
                    below, here = here, below
            return E

        _KERNELS = (forward, backward)
    return _KERNELS


def forward(D: np.ndarray, n: np.ndarray, m: np.ndarray, gamma: float) -> np.ndarray:
    """The padded ``R`` of every pair (see the module docstring)."""
    return kernels()[0](D, n.astype(np.int64), m.astype(np.int64), D.dtype.type(gamma))


def backward(D: np.ndarray, R: np.ndarray, n: np.ndarray, m: np.ndarray, gamma: float) -> np.ndarray:
    """``E = ∂value/∂D`` of every pair (see the module docstring)."""
    return kernels()[1](D, R, n.astype(np.int64), m.astype(np.int64), D.dtype.type(gamma))


def value_and_alignment(C: np.ndarray, gamma: float, penalty: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Soft-DTW value and expected alignment ``E`` of one ``(N, M)`` cost matrix, in numpy (no torch needed).

    Raises:
        ValueError: gamma ≤ 0 or an empty matrix.
    """
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0 (got {gamma})")
    D = np.ascontiguousarray(C, dtype=np.float64)
    if D.ndim != 2 or D.shape[0] == 0 or D.shape[1] == 0:
        raise ValueError(f"the cost matrix must be 2-D and non-empty (got shape {D.shape})")
    if penalty is not None:
        D = D + np.asarray(penalty, dtype=np.float64)
    D = D[None]
    n, m = np.array([D.shape[1]]), np.array([D.shape[2]])
    R = forward(D, n, m, gamma)
    E = backward(D, R, n, m, gamma)
    return float(R[0, D.shape[1], D.shape[2]]), E[0]
