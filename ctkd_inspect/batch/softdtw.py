"""Soft-DTW (Cuturi & Blondel 2017) in torch: batched, ragged, differentiable, on CPU and GPU.

Definitions (the tests check them against the project's oracle values):

- **Recursion.** ``R[0,0] = 0``, ``R[i,0] = R[0,j] = +∞``, ``R[i,j] = C[i,j] + softmin_γ(R[i−1,j−1], R[i−1,j],
  R[i,j−1])`` with ``softmin_γ(a) = −γ·log Σ exp(−a/γ)``; the value of a pair of lengths (n, m) is ``R[n,m]``.
  γ must be > 0 (as γ → 0 the value tends to hard DTW with the same cost).
- **Gradient.** ``∂R[n,m]/∂C = E``, the expected alignment matrix, computed by the E-matrix recursion of the paper
  (Algorithm 2), not by differentiating through the DP; ``E`` is returned on request.
- **Costs.** ``"sqeuclidean"`` is the *full* squared Euclidean distance ``‖x_i − y_j‖²`` (the convention of
  tslearn, the original Cython code and pysdtw; the google-research divergence code uses half of it);
  ``"cosine"`` is ``1 − cos(x_i, y_j)``, clamped to [0, 2] (DWA-KD). Both are computed with matrix products
  (``‖x‖² + ‖y‖² − 2·XYᵀ``, clamped at 0), never as a B × N × M × d tensor.
- **Divergence.** ``D(x, y) = sdtw(x, y) − ½·(sdtw(x, x) + sdtw(y, y))`` (Blondel, Mensch & Vert 2021), for ragged
  pairs in one batched call of 3B soft-DTW problems. A band penalty applies to the cross term only, as DWA-KD
  adds it (the self terms compare a sequence with itself, where the band has no meaning).
- **Ragged batches.** ``x_lengths``/``y_lengths`` (or ``lengths`` for a cost matrix) give each pair's true lengths;
  cells beyond them are ignored (they never influence ``R[n,m]``) and get zero gradient.
- **dtype.** float32 and float64; the result has the input's dtype (a float64 input is never computed or returned
  in float32).

Back-ends: ``numba`` (CPU; compiled, parallel over the batch), ``triton`` (CUDA; one kernel launch for the whole
wavefront of every pair in the batch, forward and backward; also runs under ``TRITON_INTERPRET=1``), ``torch``
(a vectorised anti-diagonal loop; any device). ``backend="auto"`` picks triton for CUDA tensors when triton is
installed, numba on the CPU.
"""

from __future__ import annotations

import math
import os

import torch

BACKENDS = ("auto", "numba", "torch", "triton")
COSTS = ("sqeuclidean", "cosine")


# ---------------------------------------------------------------------------------------------------------------
# costs


def pairwise_cost(x: torch.Tensor, y: torch.Tensor, cost: str = "sqeuclidean") -> torch.Tensor:
    """``(B, N, M)`` cost between ``x (B, N, D)`` and ``y (B, M, D)``; see the module docstring for the conventions.

    Raises:
        ValueError: an unknown cost.
    """
    if cost == "sqeuclidean":
        xx = (x * x).sum(-1, keepdim=True)
        yy = (y * y).sum(-1).unsqueeze(-2)
        return (xx + yy - 2 * torch.bmm(x, y.transpose(1, 2))).clamp_min(0)
    if cost == "cosine":
        eps = torch.finfo(x.dtype).eps
        xn = x / x.norm(dim=-1, keepdim=True).clamp_min(eps)
        yn = y / y.norm(dim=-1, keepdim=True).clamp_min(eps)
        return (1 - torch.bmm(xn, yn.transpose(1, 2))).clamp(0, 2)
    raise ValueError(f"unknown cost {cost!r}; use one of {', '.join(COSTS)}")


# ---------------------------------------------------------------------------------------------------------------
# back-ends on the padded-array conventions of _softdtw_cpu


def _torch_forward(D: torch.Tensor, n: torch.Tensor, m: torch.Tensor, gamma: float) -> torch.Tensor:
    """Anti-diagonal sweep: every cell of diagonal i + j = d at once, for every pair."""
    B, N, M = D.shape
    R = torch.full((B, N + 2, M + 2), math.inf, dtype=D.dtype, device=D.device)
    R[:, 0, 0] = 0
    for d in range(2, N + M + 1):
        i = torch.arange(max(1, d - M), min(N, d - 1) + 1, device=D.device)
        j = d - i
        stacked = torch.stack([R[:, i - 1, j - 1], R[:, i - 1, j], R[:, i, j - 1]], dim=0)
        rmin = stacked.min(dim=0).values
        finite = torch.isfinite(rmin)
        safe = torch.where(finite, rmin, torch.zeros_like(rmin))
        total = torch.exp(-(stacked - safe) / gamma).sum(dim=0)
        soft = torch.where(finite, safe - gamma * torch.log(total), rmin)
        R[:, i, j] = D[:, i - 1, j - 1] + soft
    return R


def _torch_backward(D: torch.Tensor, R: torch.Tensor, n: torch.Tensor, m: torch.Tensor, gamma: float) -> torch.Tensor:
    """E-matrix recursion swept backwards over anti-diagonals, with each pair's own end cell."""
    B, N, M = D.shape
    device = D.device
    rows = torch.arange(N + 2, device=device).view(1, -1, 1)
    cols = torch.arange(M + 2, device=device).view(1, 1, -1)
    nb, mb = n.view(-1, 1, 1), m.view(-1, 1, 1)
    inside = (rows >= 1) & (rows <= nb) & (cols >= 1) & (cols <= mb)
    r = torch.where(inside, R, torch.full_like(R, -math.inf))
    batch = torch.arange(B, device=device)
    r[batch, n + 1, m + 1] = R[batch, n, m]
    d = torch.zeros((B, N + 2, M + 2), dtype=D.dtype, device=device)
    d[:, 1:N + 1, 1:M + 1] = D
    d = torch.where(inside, d, torch.zeros_like(d))
    e = torch.zeros_like(r)
    e[batch, n + 1, m + 1] = 1
    for s in range(N + M, 1, -1):
        i = torch.arange(max(1, s - M), min(N, s - 1) + 1, device=device)
        j = s - i
        here = r[:, i, j]
        a = torch.exp((r[:, i + 1, j] - here - d[:, i + 1, j]) / gamma)
        b = torch.exp((r[:, i, j + 1] - here - d[:, i, j + 1]) / gamma)
        c = torch.exp((r[:, i + 1, j + 1] - here - d[:, i + 1, j + 1]) / gamma)
        value = e[:, i + 1, j] * a + e[:, i, j + 1] * b + e[:, i + 1, j + 1] * c
        # outside a pair's block keep what is there: zeros, and the pair's end sentinel (n+1, m+1)
        e[:, i, j] = torch.where(inside[:, i, j], value, e[:, i, j])
    return torch.where(inside, e, torch.zeros_like(e))[:, 1:N + 1, 1:M + 1].contiguous()


def _numba_forward(D, n, m, gamma):
    from . import _softdtw_cpu

    R = _softdtw_cpu.forward(D.detach().cpu().numpy(), n.cpu().numpy(), m.cpu().numpy(), gamma)
    return torch.from_numpy(R).to(D.device)


def _numba_backward(D, R, n, m, gamma):
    from . import _softdtw_cpu

    E = _softdtw_cpu.backward(D.detach().cpu().numpy(), R.detach().cpu().numpy(), n.cpu().numpy(), m.cpu().numpy(),
                              gamma)
    return torch.from_numpy(E).to(D.device)


def _triton_forward(D, n, m, gamma):
    from . import _softdtw_triton

    return _softdtw_triton.forward(D, n, m, gamma)


def _triton_backward(D, R, n, m, gamma):
    from . import _softdtw_triton

    return _softdtw_triton.backward(D, R, n, m, gamma)


_IMPLEMENTATIONS = {"numba": (_numba_forward, _numba_backward), "torch": (_torch_forward, _torch_backward),
                    "triton": (_triton_forward, _triton_backward)}


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str, device: torch.device) -> str:
    """The back-end ``auto`` means for tensors on ``device`` (see the module docstring).

    Raises:
        ValueError: an unknown back-end, or triton asked for but not installed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend == "auto":
        if device.type == "cuda" and triton_available():
            return "triton"
        return "numba" if device.type == "cpu" else "torch"
    if backend == "triton":
        if not triton_available():
            raise ValueError("backend 'triton' needs the triton package (pip install triton)")
        if device.type != "cuda" and os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
            raise ValueError("backend 'triton' runs on CUDA tensors (or on the CPU under TRITON_INTERPRET=1)")
    return backend


class _SoftDTW(torch.autograd.Function):
    """Soft-DTW values of a batch of cost matrices; the backward pass is the E-matrix recursion."""

    @staticmethod
    def forward(ctx, D, n, m, gamma, backend):
        forward_impl, _ = _IMPLEMENTATIONS[backend]
        R = forward_impl(D.detach(), n, m, gamma)
        ctx.save_for_backward(D, R, n, m)
        ctx.gamma, ctx.backend = gamma, backend
        batch = torch.arange(D.shape[0], device=D.device)
        return R[batch, n, m]

    @staticmethod
    def backward(ctx, grad_output):
        D, R, n, m = ctx.saved_tensors
        _, backward_impl = _IMPLEMENTATIONS[ctx.backend]
        E = backward_impl(D.detach(), R, n, m, ctx.gamma)
        return E * grad_output.view(-1, 1, 1), None, None, None, None


# ---------------------------------------------------------------------------------------------------------------
# validation helpers


def _check_gamma(gamma) -> float:
    gamma = float(gamma)
    if not gamma > 0 or not math.isfinite(gamma):
        raise ValueError(f"gamma must be a finite number > 0 (got {gamma}); as gamma → 0 soft-DTW tends to hard "
                         "DTW, use a small gamma such as 1e-3 for that")
    return gamma


def _lengths(value, batch: int, limit: int, name: str, device) -> torch.Tensor:
    if value is None:
        return torch.full((batch,), limit, dtype=torch.int64, device=device)
    lengths = torch.as_tensor(value, dtype=torch.int64, device=device).reshape(-1)
    if lengths.shape[0] != batch:
        raise ValueError(f"{name} has {lengths.shape[0]} entries for a batch of {batch}")
    if bool((lengths < 1).any()) or bool((lengths > limit).any()):
        raise ValueError(f"{name} must lie in [1, {limit}] (got {lengths.tolist()})")
    return lengths


def _as_batch(t: torch.Tensor, name: str, ndim: int) -> tuple[torch.Tensor, bool]:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor, got {type(t).__name__}")
    if not t.is_floating_point() or t.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{name} must be float32 or float64 (got {t.dtype})")
    if t.dim() == ndim - 1:
        return t.unsqueeze(0), True
    if t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim - 1} or {ndim} dimensions (got shape {tuple(t.shape)})")
    return t, False


def _masked(t: torch.Tensor, n: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Zero the cells of a (B, N, M) tensor beyond each pair's lengths (padding may hold anything, even NaN)."""
    rows = torch.arange(t.shape[1], device=t.device).view(1, -1, 1)
    cols = torch.arange(t.shape[2], device=t.device).view(1, 1, -1)
    inside = (rows < n.view(-1, 1, 1)) & (cols < m.view(-1, 1, 1))
    return torch.where(inside, t, torch.zeros((), dtype=t.dtype, device=t.device))


# ---------------------------------------------------------------------------------------------------------------
# public API


def soft_dtw_from_cost(C: torch.Tensor, gamma: float = 1.0, lengths=None, penalty: torch.Tensor | None = None,
                       return_alignment: bool = False, backend: str = "auto"):
    """Soft-DTW of precomputed cost matrices.

    Args:
        C: ``(N, M)`` or ``(B, N, M)`` costs (float32/float64), differentiable.
        gamma: smoothing, > 0.
        lengths: ``None`` (every pair uses the full matrix) or ``(n_lengths, m_lengths)``, each ``(B,)``.
        penalty: an additive penalty of the same shape as ``C`` (e.g. a soft band); no gradient flows into it.
        return_alignment: also return the expected alignment ``E = ∂value/∂C`` (same shape as ``C``).
        backend: ``auto``, ``numba``, ``torch`` or ``triton``.

    Returns:
        The values, shape ``(B,)`` (a scalar for an unbatched ``C``), and ``E`` when asked.

    Raises:
        ValueError: gamma ≤ 0, an empty dimension, lengths out of range, mismatched shapes, unknown back-end.
    """
    gamma = _check_gamma(gamma)
    C, single = _as_batch(C, "C", 3)
    B, N, M = C.shape
    if N == 0 or M == 0:
        raise ValueError(f"soft-DTW needs non-empty sequences (cost matrix of shape {tuple(C.shape)})")
    n_lengths, m_lengths = (None, None) if lengths is None else lengths
    n = _lengths(n_lengths, B, N, "the first lengths", C.device)
    m = _lengths(m_lengths, B, M, "the second lengths", C.device)
    if penalty is not None:
        penalty = torch.as_tensor(penalty, dtype=C.dtype, device=C.device)
        if penalty.shape != C.shape:
            penalty = penalty.reshape(C.shape) if penalty.numel() == C.numel() else None
            if penalty is None:
                raise ValueError("the penalty must have the shape of the cost matrix")
        C = C + penalty.detach()
    C = _masked(C, n, m)
    chosen = resolve_backend(backend, C.device)
    values = _SoftDTW.apply(C, n, m, gamma, chosen)
    if return_alignment:
        forward_impl, backward_impl = _IMPLEMENTATIONS[chosen]
        with torch.no_grad():
            R = forward_impl(C.detach(), n, m, gamma)
            E = backward_impl(C.detach(), R, n, m, gamma)
        return (values[0], E[0]) if single else (values, E)
    return values[0] if single else values


def _prepare(x, y, x_lengths, y_lengths):
    x, single_x = _as_batch(x, "x", 3)
    y, single_y = _as_batch(y, "y", 3)
    if single_x != single_y:
        raise ValueError("x and y must both be batched (B, L, D) or both unbatched (L, D)")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y have different batch sizes ({x.shape[0]} and {y.shape[0]})")
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"x and y have different feature sizes ({x.shape[-1]} and {y.shape[-1]})")
    if x.dtype != y.dtype:
        raise ValueError(f"x and y have different dtypes ({x.dtype} and {y.dtype})")
    if x.shape[1] == 0 or y.shape[1] == 0:
        raise ValueError("soft-DTW needs non-empty sequences")
    n = _lengths(x_lengths, x.shape[0], x.shape[1], "x_lengths", x.device)
    m = _lengths(y_lengths, y.shape[0], y.shape[1], "y_lengths", y.device)
    return x, y, n, m, single_x


def soft_dtw(x: torch.Tensor, y: torch.Tensor, gamma: float = 1.0, cost: str = "sqeuclidean", band=None,
             x_lengths=None, y_lengths=None, return_alignment: bool = False, backend: str = "auto"):
    """Soft-DTW between sequences of vectors.

    Args:
        x, y: ``(N, D)``/``(M, D)`` or batched ``(B, N, D)``/``(B, M, D)``, same dtype (float32/float64).
        gamma: smoothing, > 0.
        cost: ``"sqeuclidean"`` (full ``‖x − y‖²``) or ``"cosine"`` (``1 − cos``, clamped to [0, 2]).
        band: an additive penalty ``(N, M)`` / ``(B, N, M)`` added to the cost, e.g. from
            :func:`ctkd_inspect.batch.band.dwa_band`.
        x_lengths, y_lengths: ``(B,)`` true lengths of ragged batches (default: full lengths).
        return_alignment: also return the expected alignment matrix ``E``.
        backend: ``auto``, ``numba``, ``torch`` or ``triton``.

    Returns:
        Values ``(B,)`` (scalar when unbatched), differentiable w.r.t. ``x`` and ``y``; and ``E`` when asked.

    Raises:
        ValueError: see :func:`soft_dtw_from_cost`, plus mismatched feature sizes, batch sizes or dtypes.
    """
    x, y, n, m, single = _prepare(x, y, x_lengths, y_lengths)
    C = pairwise_cost(x, y, cost)
    out = soft_dtw_from_cost(C, gamma, (n, m), band, return_alignment, backend)
    if single:
        return (out[0][0], out[1][0]) if return_alignment else out[0]
    return out


def soft_dtw_divergence(x: torch.Tensor, y: torch.Tensor, gamma: float = 1.0, cost: str = "sqeuclidean",
                        band=None, x_lengths=None, y_lengths=None, return_alignment: bool = False,
                        backend: str = "auto"):
    """The soft-DTW divergence ``sdtw(x, y) − ½(sdtw(x, x) + sdtw(y, y))`` for (ragged) batches, in one batched
    soft-DTW call; the band penalty applies to the cross term only. Arguments as :func:`soft_dtw`;
    ``return_alignment`` returns the cross term's ``E``.
    """
    gamma = _check_gamma(gamma)
    x, y, n, m, single = _prepare(x, y, x_lengths, y_lengths)
    B, N, _ = x.shape
    M = y.shape[1]
    L = max(N, M)

    def pad(c: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(c, (0, L - c.shape[2], 0, L - c.shape[1]))

    cross = pairwise_cost(x, y, cost)
    if band is not None:
        cross = cross + torch.as_tensor(band, dtype=x.dtype, device=x.device).reshape(cross.shape).detach()
    stacked = torch.cat([pad(cross), pad(pairwise_cost(x, x, cost)), pad(pairwise_cost(y, y, cost))], dim=0)
    first = torch.cat([n, n, m])
    second = torch.cat([m, n, m])
    values = soft_dtw_from_cost(stacked, gamma, (first, second), None, False, backend)
    divergence = values[:B] - 0.5 * (values[B:2 * B] + values[2 * B:])
    if return_alignment:
        with torch.no_grad():
            _, E = soft_dtw_from_cost(cross.detach(), gamma, (n, m), None, True, backend)
        return (divergence[0], E[0]) if single else (divergence, E)
    return divergence[0] if single else divergence
