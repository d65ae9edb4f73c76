"""Soft-DTW wavefront kernels in Triton: one launch for the forward sweep of a whole batch, one for the backward.

Layout of the work:

- **One program per pair.** Lane ``k`` of a program owns one row of the DP, so the cells of anti-diagonal ``t``
  (``i + j = t``) form one register vector over the lanes. The program walks the diagonals in a loop and keeps the
  two previous diagonals in registers; the one-lane shift a cell needs (its upper neighbours live on the lane one
  row up) is a ``tl.gather`` on that register vector, which the compiler turns into warp shuffles / shared memory.
  Nothing computed inside a sweep is re-read from global memory, except at strip boundaries (below).
- **Lanes along the shorter side.** Soft-DTW is symmetric under transposition (``R(Cᵀ) = R(C)ᵀ``, same three
  neighbours), so when the padded first length exceeds the second the kernels run on the transposed problem
  through swapped strides (no copy); the lanes then cover the shorter sequence.
- **Strips for long sequences.** A program handles at most :data:`MAX_BLOCK` rows at a time. Longer sides are cut
  into strips of ``MAX_BLOCK`` rows swept one after another inside the same launch: a strip reads the last row of
  the strip above it (forward) or the first row of the strip below it (backward) back from global memory, where
  the previous strip wrote it, after a block barrier. Any length works; the longest dependency chain is
  ``strips × (MAX_BLOCK + m − 1)`` steps instead of ``n + m − 1``.
- **Cost read in diagonal order.** Each step loads the cost (and, backward, ``R``) of the next anti-diagonal while
  the current one is computed (a one-step software prefetch), so the load latency overlaps the soft-min chain.
  Global traffic per cell is one read of the cost and one write of ``R`` (forward), or one read of the cost and
  ``R`` and one write of ``E`` (backward).

Numerics: ``γ`` is passed as a one-element tensor of the cost's dtype, because Triton types a Python ``float``
argument as float32, which would silently round ``γ`` for float64 inputs. The soft minimum factors out the smallest
argument, so it never overflows; an infinite argument contributes 0; masked lanes never compute ``inf − inf`` or
``0 · inf``. The backward exponents ``(R[succ] − R[cell] − C[succ])/γ`` are ≤ 0 in exact arithmetic (a soft
minimum never exceeds the minimum); they are clamped at 0 so that float rounding at tiny ``γ`` cannot overflow.

Array conventions are those of :mod:`ctkd_inspect.batch._softdtw_cpu` (padded ``R`` of shape ``(B, N + 2, M + 2)``
with ``+inf`` borders and ``R[:, 0, 0] = 0``; ``E`` of shape ``(B, N, M)``). Costs must be finite. Needs Triton
≥ 3.3 (``tl.gather``). With ``TRITON_INTERPRET=1`` set before this module is imported the kernels run on CPU
tensors in Triton's interpreter (slow, about 5 ms per anti-diagonal; used by the tests).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

#: The most rows (lanes) one program sweeps at a time; longer sides are processed as strips of this many rows.
MAX_BLOCK = 1024


@triton.jit
def _forward_kernel(D, R, N_LEN, M_LEN, GAMMA, stride_db, stride_dn, stride_dm, stride_rb, stride_rn, stride_rm,
                    BLOCK: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    n = tl.load(N_LEN + b)
    m = tl.load(M_LEN + b)
    gamma = tl.load(GAMMA)
    inv_gamma = 1.0 / gamma
    d_pair = D + b * stride_db
    r_pair = R + b * stride_rb
    lane = tl.arange(0, BLOCK)
    up = tl.maximum(lane - 1, 0)
    zero = tl.zeros([BLOCK], dtype=D.dtype.element_ty)
    inf = zero + float("inf")
    one = zero + 1.0
    strips = (n + BLOCK - 1) // BLOCK
    for s in range(0, strips):
        i0 = 1 + s * BLOCK  # first row (1-based) of this strip
        rows = i0 + lane
        last = tl.minimum(i0 + BLOCK - 1, n)
        in_strip = rows <= last
        # the previous strip wrote row i0 - 1 of R (row 0 is the border): make its stores visible to every lane
        tl.debug_barrier()
        # diagonal i0 + 1 is the first with a cell of this strip; before it, both carried diagonals are +inf
        prev2 = inf
        prev1 = inf
        j = i0 + 1 - rows
        valid = in_strip & (j >= 1) & (j <= m)
        cost = tl.load(d_pair + (rows - 1) * stride_dn + (j - 1) * stride_dm, mask=valid, other=0.0)
        # lane 0 reads its upper neighbours from row i0 - 1: R[i0-1, j0] (up) and R[i0-1, j0-1] (diagonal), with
        # j0 = t - i0 = 1 on the first diagonal
        above_diag = tl.load(r_pair + (i0 - 1) * stride_rn)
        above_up = tl.load(r_pair + (i0 - 1) * stride_rn + stride_rm)
        for t in range(i0 + 1, last + m + 1):
            # prefetch diagonal t + 1 (independent of the soft-min chain below)
            j_next = t + 1 - rows
            valid_next = in_strip & (j_next >= 1) & (j_next <= m)
            cost_next = tl.load(d_pair + (rows - 1) * stride_dn + (j_next - 1) * stride_dm, mask=valid_next,
                                other=0.0)
            j0_next = t + 1 - i0
            above_next = tl.load(r_pair + (i0 - 1) * stride_rn + j0_next * stride_rm, mask=j0_next <= m,
                                 other=float("inf"))
            # neighbours: R[i-1, j-1] and R[i-1, j] sit one lane up (lane 0: the row above the strip), R[i, j-1]
            # on this lane
            r_diag = tl.where(lane == 0, above_diag, tl.gather(prev2, up, 0))
            r_up = tl.where(lane == 0, above_up, tl.gather(prev1, up, 0))
            r_left = prev1
            r_min = tl.minimum(r_diag, tl.minimum(r_up, r_left))
            finite = r_min < float("inf")
            shift = tl.where(finite, r_min, zero)
            total = (tl.exp((shift - r_diag) * inv_gamma) + tl.exp((shift - r_up) * inv_gamma)
                     + tl.exp((shift - r_left) * inv_gamma))
            soft = shift - gamma * tl.log(tl.where(finite, total, one))
            current = tl.where(valid & finite, cost + soft, inf)
            tl.store(r_pair + rows * stride_rn + j * stride_rm, current, mask=valid)
            prev2 = prev1
            prev1 = current
            j = j_next
            valid = valid_next
            cost = cost_next
            above_diag = above_up
            above_up = above_next


@triton.jit
def _backward_kernel(D, R, E, N_LEN, M_LEN, GAMMA, stride_db, stride_dn, stride_dm, stride_rb, stride_rn,
                     stride_rm, stride_eb, stride_en, stride_em, BLOCK: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    n = tl.load(N_LEN + b)
    m = tl.load(M_LEN + b)
    gamma = tl.load(GAMMA)
    inv_gamma = 1.0 / gamma
    d_pair = D + b * stride_db
    r_pair = R + b * stride_rb
    e_pair = E + b * stride_eb
    lane = tl.arange(0, BLOCK)
    down = tl.minimum(lane + 1, BLOCK - 1)
    zero = tl.zeros([BLOCK], dtype=D.dtype.element_ty)
    neg_inf = zero - float("inf")
    one = zero + 1.0
    strips = (n + BLOCK - 1) // BLOCK
    for s in range(0, strips):
        i0 = 1 + (strips - 1 - s) * BLOCK  # strips from the bottom up
        rows = i0 + lane
        last = tl.minimum(i0 + BLOCK - 1, n)
        in_strip = rows <= last
        edge = lane == last - i0  # the lane whose lower successors lie in row last + 1 (the strip below)
        has_below = last < n
        # the strip below wrote row last + 1 of E: make its stores visible to every lane
        tl.debug_barrier()
        # carried diagonals t + 1 and t + 2: (R, E, cost) of their cells, -inf / 0 / 0 outside the pair
        r_next1 = neg_inf
        e_next1 = zero
        c_next1 = zero
        r_next2 = neg_inf
        e_next2 = zero
        c_next2 = zero
        # the first diagonal is t = last + m (the strip's last cell, (last, m))
        j = last + m - rows
        valid = in_strip & (j >= 1) & (j <= m)
        r_here = tl.load(r_pair + rows * stride_rn + j * stride_rm, mask=valid, other=0.0)
        c_here = tl.load(d_pair + (rows - 1) * stride_dn + (j - 1) * stride_dm, mask=valid, other=0.0)
        # the edge lane's successors (last+1, j) ("a") and (last+1, j+1) ("c") come from the strip below; on the
        # first diagonal the edge cell is (last, m), so (last+1, m+1) is outside the pair
        r_below_a = tl.load(r_pair + (last + 1) * stride_rn + m * stride_rm, mask=has_below, other=float("-inf"))
        e_below_a = tl.load(e_pair + last * stride_en + (m - 1) * stride_em, mask=has_below, other=0.0)
        c_below_a = tl.load(d_pair + last * stride_dn + (m - 1) * stride_dm, mask=has_below, other=0.0)
        r_below_c = tl.min(neg_inf, 0)  # scalars of the cost's dtype (loop-carried types must not change)
        e_below_c = tl.min(zero, 0)
        c_below_c = tl.min(zero, 0)
        for step in range(0, last + m - i0):
            t = last + m - step
            # prefetch diagonal t - 1 (independent of the E chain below)
            j_next = t - 1 - rows
            valid_next = in_strip & (j_next >= 1) & (j_next <= m)
            r_here_next = tl.load(r_pair + rows * stride_rn + j_next * stride_rm, mask=valid_next, other=0.0)
            c_here_next = tl.load(d_pair + (rows - 1) * stride_dn + (j_next - 1) * stride_dm, mask=valid_next,
                                  other=0.0)
            j_e_next = t - 1 - last
            ok_next = has_below & (j_e_next >= 1)
            r_below_next = tl.load(r_pair + (last + 1) * stride_rn + j_e_next * stride_rm, mask=ok_next,
                                   other=float("-inf"))
            e_below_next = tl.load(e_pair + last * stride_en + (j_e_next - 1) * stride_em, mask=ok_next, other=0.0)
            c_below_next = tl.load(d_pair + last * stride_dn + (j_e_next - 1) * stride_dm, mask=ok_next, other=0.0)
            # successors: (i+1, j) and (i+1, j+1) one lane down (the edge lane: the strip below), (i, j+1) on
            # this lane
            r_a = tl.where(edge, r_below_a, tl.gather(r_next1, down, 0))
            e_a = tl.where(edge, e_below_a, tl.gather(e_next1, down, 0))
            c_a = tl.where(edge, c_below_a, tl.gather(c_next1, down, 0))
            r_c = tl.where(edge, r_below_c, tl.gather(r_next2, down, 0))
            e_c = tl.where(edge, e_below_c, tl.gather(e_next2, down, 0))
            c_c = tl.where(edge, c_below_c, tl.gather(c_next2, down, 0))
            # exponents are <= 0 exactly; -inf successors give 0; invalid lanes use r_here = 0 (finite)
            w_a = tl.exp(tl.minimum((r_a - r_here - c_a) * inv_gamma, 0.0))
            w_b = tl.exp(tl.minimum((r_next1 - r_here - c_next1) * inv_gamma, 0.0))
            w_c = tl.exp(tl.minimum((r_c - r_here - c_c) * inv_gamma, 0.0))
            e_here = e_a * w_a + e_next1 * w_b + e_c * w_c
            e_here = tl.where((rows == n) & (j == m), one, e_here)  # the end cell: dR[n,m]/dR[n,m] = 1
            e_here = tl.where(valid, e_here, zero)
            tl.store(e_pair + (rows - 1) * stride_en + (j - 1) * stride_em, e_here, mask=valid)
            r_next2 = r_next1
            e_next2 = e_next1
            c_next2 = c_next1
            r_next1 = tl.where(valid, r_here, neg_inf)
            e_next1 = e_here
            c_next1 = tl.where(valid, c_here, zero)
            j = j_next
            valid = valid_next
            r_here = r_here_next
            c_here = c_here_next
            r_below_c = r_below_a
            e_below_c = e_below_a
            c_below_c = c_below_a
            r_below_a = r_below_next
            e_below_a = e_below_next
            c_below_a = c_below_next


def _block(lanes: int) -> int:
    """Lanes per program: the shorter side rounded up to a power of two, at most :data:`MAX_BLOCK`."""
    return max(16, triton.next_power_of_2(min(lanes, MAX_BLOCK)))


def _warps(block: int) -> int:
    # about 4 cells per thread: enough independent work per thread to hide the exp/log latency, and few enough
    # warps that the per-diagonal exchange stays cheap
    return max(1, min(8, block // 128))


def _oriented(D: torch.Tensor, other: torch.Tensor, n: torch.Tensor, m: torch.Tensor):
    """The problem with the shorter side along the lanes: transposed views when the first side is the longer."""
    if D.shape[1] <= D.shape[2]:
        return D, other, n, m
    return D.transpose(1, 2), other.transpose(1, 2), m, n


def _gamma(D: torch.Tensor, gamma: float) -> torch.Tensor:
    return torch.full((1,), gamma, dtype=D.dtype, device=D.device)


def forward(D: torch.Tensor, n: torch.Tensor, m: torch.Tensor, gamma: float) -> torch.Tensor:
    """The padded ``R`` of every pair (conventions of ``_softdtw_cpu``), computed in one launch.

    Args:
        D: ``(B, N, M)`` float32/float64 costs on a CUDA device (or the CPU under ``TRITON_INTERPRET=1``).
        n, m: ``(B,)`` integer lengths, ``1 ≤ n[b] ≤ N``, ``1 ≤ m[b] ≤ M`` (validated by the caller).
        gamma: smoothing, > 0.
    """
    B, N, M = D.shape
    # only the borders need initialising: every other cell a sweep reads was written earlier in the same sweep
    R = torch.empty((B, N + 2, M + 2), dtype=D.dtype, device=D.device)
    R[:, 0, :] = math.inf
    R[:, :, 0] = math.inf
    R[:, 0, 0] = 0
    Dk, Rk, nk, mk = _oriented(D, R, n, m)
    block = _block(min(N, M))
    _forward_kernel[(B,)](Dk, Rk, nk.to(torch.int32).contiguous(), mk.to(torch.int32).contiguous(), _gamma(D, gamma),
                          *Dk.stride(), *Rk.stride(), BLOCK=block, num_warps=_warps(block))
    return R


def backward(D: torch.Tensor, R: torch.Tensor, n: torch.Tensor, m: torch.Tensor, gamma: float) -> torch.Tensor:
    """``E = ∂value/∂D`` of every pair, ``(B, N, M)``, zero outside each pair's block, computed in one launch.

    ``R`` is the output of :func:`forward` for the same ``D``, ``n``, ``m`` and ``gamma``.
    """
    B, N, M = D.shape
    # zero-filled: the kernel writes only the cells inside each pair's block (testing for raggedness first would
    # cost a device-to-host synchronisation)
    E = torch.zeros((B, N, M), dtype=D.dtype, device=D.device)
    Dk, Ek, nk, mk = _oriented(D, E, n, m)
    Rk = R if Dk is D else R.transpose(1, 2)
    block = _block(min(N, M))
    _backward_kernel[(B,)](Dk, Rk, Ek, nk.to(torch.int32).contiguous(), mk.to(torch.int32).contiguous(),
                           _gamma(D, gamma), *Dk.stride(), *Rk.stride(), *Ek.stride(), BLOCK=block,
                           num_warps=_warps(block))
    return E


def interpreted() -> bool:
    """Whether the kernels were built for Triton's CPU interpreter (``TRITON_INTERPRET=1`` at import time)."""
    return type(_forward_kernel).__name__ == "InterpretedFunction"
