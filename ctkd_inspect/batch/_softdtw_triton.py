"""Soft-DTW wavefront kernels in Triton: one launch for the forward sweep, one for the backward, whole batch.

One program per pair. Lane ``i`` of a program owns row ``i`` of the DP, so anti-diagonal ``d`` is one vector
``R[i, d − i]`` over the lanes; the program walks the ``n + m − 1`` diagonals in a loop and keeps the last two
diagonals in registers. The neighbours a cell needs from the previous diagonals sit on the same lane or on the
lane one row up; that one-lane shift is a ``tl.gather`` on the register vector (warp shuffles / shared memory
on a GPU), so nothing is re-read from global memory inside the sweep: global traffic is one read of the cost
(diagonal order) and one write of ``R`` (forward) or ``E`` (backward) per cell.

Array conventions are those of :mod:`ctkd_inspect.batch._softdtw_cpu`. Lengths are limited by the lane count:
up to 8191 rows (the longest supported first sequence); longer inputs raise ``ValueError`` (use the torch
back-end). Set ``TRITON_INTERPRET=1`` to run these kernels on CPU tensors (slow; used by the tests).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

MAX_ROWS = 8191


@triton.jit
def _forward_kernel(D, R, N_LEN, M_LEN, stride_db, stride_dn, stride_dm, stride_rb, stride_rn, stride_rm, gamma,
                    BLOCK: tl.constexpr):
    b = tl.program_id(0)
    n = tl.load(N_LEN + b)
    m = tl.load(M_LEN + b)
    lane = tl.arange(0, BLOCK)
    up = tl.maximum(lane - 1, 0)
    inf = float("inf")
    zero = tl.zeros([BLOCK], dtype=D.dtype.element_ty)
    # diagonal 0 holds only R[0, 0] = 0; diagonal 1 only borders (+inf)
    prev2 = tl.where(lane == 0, zero, zero + inf)
    prev1 = zero + inf
    inv_gamma = 1.0 / gamma
    for d in range(2, n + m + 1):
        j = d - lane
        valid = (lane >= 1) & (lane <= n) & (j >= 1) & (j <= m)
        r_diag = tl.gather(prev2, up, 0)  # R[i-1, j-1]
        r_up = tl.gather(prev1, up, 0)  # R[i-1, j]
        r_left = prev1  # R[i, j-1]
        r_min = tl.minimum(r_diag, tl.minimum(r_up, r_left))
        finite = r_min < inf
        shift = tl.where(finite, r_min, zero)
        total = (tl.exp((shift - r_diag) * inv_gamma) + tl.exp((shift - r_up) * inv_gamma)
                 + tl.exp((shift - r_left) * inv_gamma))
        soft = tl.where(finite, shift - gamma * tl.log(total), zero + inf)
        cost = tl.load(D + b * stride_db + (lane - 1) * stride_dn + (j - 1) * stride_dm, mask=valid, other=0.0)
        current = tl.where(valid, cost + soft, zero + inf)
        tl.store(R + b * stride_rb + lane * stride_rn + j * stride_rm, current, mask=valid)
        prev2 = prev1
        prev1 = current


@triton.jit
def _backward_kernel(D, R, E, N_LEN, M_LEN, stride_db, stride_dn, stride_dm, stride_rb, stride_rn, stride_rm,
                     stride_eb, stride_en, stride_em, gamma, BLOCK: tl.constexpr):
    b = tl.program_id(0)
    n = tl.load(N_LEN + b)
    m = tl.load(M_LEN + b)
    lane = tl.arange(0, BLOCK)
    down = tl.minimum(lane + 1, BLOCK - 1)
    zero = tl.zeros([BLOCK], dtype=D.dtype.element_ty)
    neg_inf = zero - float("inf")
    inv_gamma = 1.0 / gamma
    r_end = tl.load(R + b * stride_rb + n * stride_rn + m * stride_rm)
    # diagonal n+m+2: the end sentinel (n+1, m+1) with E = 1, R = R[n, m], D = 0; diagonal n+m+1: borders
    is_end = lane == n + 1
    r_next2 = tl.where(is_end, zero + r_end, neg_inf)
    e_next2 = tl.where(is_end, zero + 1.0, zero)
    d_next2 = zero
    r_next1 = neg_inf
    e_next1 = zero
    d_next1 = zero
    for step in range(0, n + m - 1):
        s = n + m - step
        j = s - lane
        valid = (lane >= 1) & (lane <= n) & (j >= 1) & (j <= m)
        r_here = tl.load(R + b * stride_rb + lane * stride_rn + j * stride_rm, mask=valid, other=0.0)
        d_here = tl.load(D + b * stride_db + (lane - 1) * stride_dn + (j - 1) * stride_dm, mask=valid, other=0.0)
        # successors: (i+1, j) and (i+1, j+1) sit one lane down, (i, j+1) on this lane
        r_a = tl.gather(r_next1, down, 0)
        d_a = tl.gather(d_next1, down, 0)
        e_a = tl.gather(e_next1, down, 0)
        r_c = tl.gather(r_next2, down, 0)
        d_c = tl.gather(d_next2, down, 0)
        e_c = tl.gather(e_next2, down, 0)
        a = tl.exp((r_a - r_here - d_a) * inv_gamma)
        bb = tl.exp((r_next1 - r_here - d_next1) * inv_gamma)
        c = tl.exp((r_c - r_here - d_c) * inv_gamma)
        e_here = tl.where(valid, e_a * a + e_next1 * bb + e_c * c, zero)
        tl.store(E + b * stride_eb + (lane - 1) * stride_en + (j - 1) * stride_em, e_here, mask=valid)
        r_next2 = r_next1
        e_next2 = e_next1
        d_next2 = d_next1
        r_next1 = tl.where(valid, r_here, neg_inf)
        e_next1 = e_here
        d_next1 = tl.where(valid, d_here, zero)


def _block(rows: int) -> int:
    if rows > MAX_ROWS:
        raise ValueError(f"the triton soft-DTW kernel supports first sequences of up to {MAX_ROWS} items "
                         f"(got {rows}); use backend='torch' or 'numba'")
    return max(16, triton.next_power_of_2(rows + 2))


def _warps(block: int) -> int:
    return max(1, min(32, block // 256))


def forward(D: torch.Tensor, n: torch.Tensor, m: torch.Tensor, gamma: float) -> torch.Tensor:
    """The padded ``R`` of every pair (conventions of ``_softdtw_cpu``), computed in one launch."""
    D = D.contiguous()
    B, N, M = D.shape
    R = torch.full((B, N + 2, M + 2), math.inf, dtype=D.dtype, device=D.device)
    R[:, 0, 0] = 0
    block = _block(N)
    _forward_kernel[(B,)](D, R, n.to(torch.int32).contiguous(), m.to(torch.int32).contiguous(), *D.stride(),
                          *R.stride(), float(gamma), BLOCK=block, num_warps=_warps(block))
    return R


def backward(D: torch.Tensor, R: torch.Tensor, n: torch.Tensor, m: torch.Tensor, gamma: float) -> torch.Tensor:
    """``E = ∂value/∂D`` of every pair, computed in one launch."""
    D = D.contiguous()
    R = R.contiguous()
    B, N, _ = D.shape
    E = torch.zeros_like(D)
    block = _block(N)
    _backward_kernel[(B,)](D, R, E, n.to(torch.int32).contiguous(), m.to(torch.int32).contiguous(), *D.stride(),
                           *R.stride(), *E.stride(), float(gamma), BLOCK=block, num_warps=_warps(block))
    return E
