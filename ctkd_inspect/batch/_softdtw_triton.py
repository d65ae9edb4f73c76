"""Soft-DTW wavefront kernels in Triton: one launch for the forward sweep of a whole batch, one for the backward.

Layout of the work:

- **One program per pair.** Lane ``k`` of a program owns one row of the DP, so the cells of anti-diagonal ``t``
  (``i + j = t``) form one register vector over the lanes. The program walks the diagonals in a loop and keeps the
  previous diagonal (and the one neighbour it needs from the one before) in registers. The one-lane shift a cell
  needs (its upper neighbour lives on the lane one row up) is a ``tl.gather`` on that register vector, which the
  compiler turns into shared-memory / shuffle exchanges: one per step forward (the diagonal neighbour R[i−1, j−1]
  is the upper neighbour the same lane used one step earlier), three per step backward (R, C and E of the (i+1, j)
  successor; the (i+1, j+1) successor is the (i+1, j) successor of the step before). Nothing
  computed inside a sweep is re-read from global memory, except at strip boundaries (below).
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
#: The fewest lanes a program gets: below half a warp, lanes would idle anyway.
MIN_BLOCK = 16


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
        # diagonal t = i0 + 1 is the first with a cell of this strip. Carried state, per lane (row i):
        # `left` = R[i, j-1] (this lane's cell on diagonal t-1) and `diag` = R[i-1, j-1], which is the `up`
        # neighbour this lane used on diagonal t-1; before the first diagonal both are the +inf border, except
        # lane 0's diagonal neighbour R[i0-1, 0] (0 for the first strip).
        left = inf
        diag = tl.where(lane == 0, tl.load(r_pair + (i0 - 1) * stride_rn), inf)
        j = i0 + 1 - rows
        valid = in_strip & (j >= 1) & (j <= m)
        cost = tl.load(d_pair + (rows - 1) * stride_dn + (j - 1) * stride_dm, mask=valid, other=0.0)
        above = tl.load(r_pair + (i0 - 1) * stride_rn + stride_rm)  # lane 0's R[i0-1, j], j = 1 here
        for t in range(i0 + 1, last + m + 1):
            # prefetch diagonal t + 1 (independent of the soft-min chain below)
            j_next = t + 1 - rows
            valid_next = in_strip & (j_next >= 1) & (j_next <= m)
            cost_next = tl.load(d_pair + (rows - 1) * stride_dn + (j_next - 1) * stride_dm, mask=valid_next,
                                other=0.0)
            j0_next = t + 1 - i0
            above_next = tl.load(r_pair + (i0 - 1) * stride_rn + j0_next * stride_rm, mask=j0_next <= m,
                                 other=float("inf"))
            # R[i-1, j] is the left neighbour of the lane one row up (lane 0: the row above the strip): the only
            # cross-lane exchange of the step
            r_up = tl.where(lane == 0, above, tl.gather(left, up, 0))
            r_min = tl.minimum(diag, tl.minimum(r_up, left))
            finite = r_min < float("inf")
            shift = tl.where(finite, r_min, zero)
            total = (tl.exp((shift - diag) * inv_gamma) + tl.exp((shift - r_up) * inv_gamma)
                     + tl.exp((shift - left) * inv_gamma))
            soft = shift - gamma * tl.log(tl.where(finite, total, one))
            current = tl.where(valid & finite, cost + soft, inf)
            tl.store(r_pair + rows * stride_rn + j * stride_rm, current, mask=valid)
            diag = r_up
            left = current
            j = j_next
            valid = valid_next
            cost = cost_next
            above = above_next


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
        # A successor s of a cell h enters as E[s]·exp(((R[s] − R[h]) − C[s])/γ), evaluated in that order: R[s] and
        # R[h] are close, so their difference is exact, and C[s] is subtracted from a small number (forming
        # R[s] − C[s] first would round at the scale of |R| and cost float32 accuracy at small γ). Each cell
        # carries (R, C, E), −inf / 0 / 0 outside the pair. Per lane (row i, cell (i, j) on diagonal t):
        #   *_right = cell (i, j+1), this lane on diagonal t+1;
        #   *_dr    = cell (i+1, j+1), which was this lane's "down" successor on diagonal t+1.
        # The first diagonal is t = last + m (the strip's last cell (last, m)); nothing lies beyond it.
        r_right = neg_inf
        c_right = zero
        e_right = zero
        r_dr = neg_inf
        c_dr = zero
        e_dr = zero
        j = last + m - rows
        valid = in_strip & (j >= 1) & (j <= m)
        r_here = tl.load(r_pair + rows * stride_rn + j * stride_rm, mask=valid, other=0.0)
        c_here = tl.load(d_pair + (rows - 1) * stride_dn + (j - 1) * stride_dm, mask=valid, other=0.0)
        # the edge lane's successor (last+1, j) comes from the strip below (R row last+1; C and E row `last`,
        # 0-based); j = m on the first diagonal
        r_below = tl.load(r_pair + (last + 1) * stride_rn + m * stride_rm, mask=has_below, other=float("-inf"))
        c_below = tl.load(d_pair + last * stride_dn + (m - 1) * stride_dm, mask=has_below, other=0.0)
        e_below = tl.load(e_pair + last * stride_en + (m - 1) * stride_em, mask=has_below, other=0.0)
        for step in range(0, last + m - i0):
            t = last + m - step
            # prefetch diagonal t - 1 (independent of the E chain below)
            j_next = t - 1 - rows
            valid_next = in_strip & (j_next >= 1) & (j_next <= m)
            r_next = tl.load(r_pair + rows * stride_rn + j_next * stride_rm, mask=valid_next, other=0.0)
            c_next = tl.load(d_pair + (rows - 1) * stride_dn + (j_next - 1) * stride_dm, mask=valid_next, other=0.0)
            j_e = t - 1 - last
            ok = has_below & (j_e >= 1)
            r_below_next = tl.load(r_pair + (last + 1) * stride_rn + j_e * stride_rm, mask=ok, other=float("-inf"))
            c_below_next = tl.load(d_pair + last * stride_dn + (j_e - 1) * stride_dm, mask=ok, other=0.0)
            e_below_next = tl.load(e_pair + last * stride_en + (j_e - 1) * stride_em, mask=ok, other=0.0)
            # successor (i+1, j): this lane's neighbour one row down on diagonal t+1 (the edge lane: the strip
            # below). These gathers are the step's only cross-lane exchange.
            r_down = tl.where(edge, r_below, tl.gather(r_right, down, 0))
            c_down = tl.where(edge, c_below, tl.gather(c_right, down, 0))
            e_down = tl.where(edge, e_below, tl.gather(e_right, down, 0))
            # exponents are <= 0 exactly (clamped against rounding); -inf successors give exactly 0; invalid
            # lanes use r_here = 0, which keeps everything finite
            w_down = tl.exp(tl.minimum(((r_down - r_here) - c_down) * inv_gamma, 0.0))
            w_right = tl.exp(tl.minimum(((r_right - r_here) - c_right) * inv_gamma, 0.0))
            w_dr = tl.exp(tl.minimum(((r_dr - r_here) - c_dr) * inv_gamma, 0.0))
            e_here = e_down * w_down + e_right * w_right + e_dr * w_dr
            e_here = tl.where((rows == n) & (j == m), one, e_here)  # the end cell: dR[n,m]/dR[n,m] = 1
            e_here = tl.where(valid, e_here, zero)
            tl.store(e_pair + (rows - 1) * stride_en + (j - 1) * stride_em, e_here, mask=valid)
            r_dr = r_down
            c_dr = c_down
            e_dr = e_down
            r_right = tl.where(valid, r_here, neg_inf)
            c_right = tl.where(valid, c_here, zero)
            e_right = e_here
            j = j_next
            valid = valid_next
            r_here = r_next
            c_here = c_next
            r_below = r_below_next
            c_below = c_below_next
            e_below = e_below_next


def _block(lanes: int) -> int:
    """Lanes per program: the shorter side rounded up to a power of two, within [MIN_BLOCK, MAX_BLOCK]."""
    return min(MAX_BLOCK, max(MIN_BLOCK, triton.next_power_of_2(min(lanes, MAX_BLOCK))))


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
