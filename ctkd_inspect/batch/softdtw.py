"""Soft-DTW (Cuturi & Blondel 2017) in torch: batched, ragged, differentiable, on CPU and GPU.

Definitions (the tests check them against the project's oracle values and a brute-force path enumeration):

- **Recursion.** ``R[0,0] = 0``, ``R[i,0] = R[0,j] = +∞`` (the border sentinel is a true infinity, not a large
  finite number such as 1e10 or DBL_MAX, so it can never collide with a real cost), ``R[i,j] = C[i,j] +
  softmin_γ(R[i−1,j−1], R[i−1,j], R[i,j−1])`` with ``softmin_γ(a) = −γ·log Σ exp(−a/γ)``; the value of a pair of
  lengths ``(n, m)`` is ``R[n,m]``. The soft minimum is evaluated with its smallest argument factored out
  (``r − γ·log Σ exp(−(a − r)/γ)``, ``r = min a``, i.e. a max-shifted log-sum-exp), so it never overflows, an
  infinite argument contributes exactly 0 and no ``inf − inf`` is ever formed: finite costs give finite values
  and gradients for every ``γ > 0``.
- **γ.** ``γ`` must be a finite number > 0; ``γ ≤ 0`` raises ``InputError``, a ``ValueError`` (there is no
  ``γ = 0`` special case, unlike tslearn). As ``γ → 0`` the value tends to hard DTW with the same cost (from
  below, by at most ``γ·log(#paths)``) and ``E`` to the indicator of the optimal path; small values such as
  ``1e-4`` work in float64 and float32 without overflow (the tests check it).
- **Gradient.** ``∂R[n,m]/∂C = E``, the expected alignment matrix, computed by the E-matrix recursion of the paper
  (Algorithm 2), not by differentiating through the DP; ``E`` is returned on request. Its entries lie in [0, 1],
  its rows sum to ≥ 1 and its total (the expected path length) lies between ``max(n, m)`` and ``n + m − 1``.
- **Costs.** ``"sqeuclidean"`` is the *full* squared Euclidean distance ``‖x_i − y_j‖²`` (the convention of
  tslearn, the original Cython code and pysdtw, and of the project's oracle; the google-research divergence code
  uses half of it: ``sdtw(C/2, γ) = ½·sdtw(C, 2γ)``); ``"cosine"`` is ``1 − cos(x_i, y_j)``, clamped to [0, 2]
  (DWA-KD's convention; a zero vector has cosine 0 with everything). Both are computed with matrix products
  (``‖x‖² + ‖y‖² − 2·XYᵀ``, clamped at 0), never as a ``B × N × M × d`` tensor.
- **Divergence.** ``D(x, y) = sdtw(x, y) − ½·(sdtw(x, x) + sdtw(y, y))`` (Blondel, Mensch & Vert 2021), for ragged
  pairs in ONE batched soft-DTW call over 3B problems (three calls when padding the three to one size would
  more than double the work, i.e. for very different lengths). A band penalty applies to the **cross term only**, as
  DWA-KD adds it (the self terms compare a sequence with itself, where a student→teacher band has no meaning); so
  with a band ``D(x, x)`` is no longer 0, and the band's contribution to ``D`` is exactly the increase of the cross
  term.
- **Ragged batches.** ``x_lengths``/``y_lengths`` (or ``lengths`` for a cost matrix) give each pair's true lengths;
  cells beyond them are ignored (they never influence ``R[n,m]``, may hold anything, even NaN) and get zero
  gradient.
- **dtype.** float32 and float64; values, ``E`` and gradients have the input's dtype (a float64 input is never
  computed or returned in float32). Expected float32 error against the float64 oracle: about 1e-6 relative on
  values and 1e-4 absolute on gradients at ``γ ≥ 0.1``. The numba back-end keeps ``R`` in float64 for float32
  costs, so its float32 gradients stay accurate down to tiny ``γ``; the torch and triton back-ends keep ``R`` in
  float32, whose rounding (≈1e-7·|R|) enters the E recursion divided by ``γ``: their float32 gradients degrade
  (stay finite, lose mass) once ``γ`` falls below about 1e-4·|R|. Use float64 there for smaller ``γ``.

Back-ends: ``numba`` (CPU; compiled, parallel over the batch; CUDA tensors are copied to the host and back),
``triton`` (CUDA; one kernel launch for the whole wavefront of every pair in the batch, forward and, separately,
backward; also runs on CPU tensors when ``TRITON_INTERPRET=1`` is set before triton compiles the kernels), ``torch``
(a vectorised anti-diagonal loop; any device). ``backend="auto"`` picks triton for CUDA tensors when triton ≥ 3.3
imports (the torch loop otherwise), numba on the CPU. Triton is imported only when the triton back-end is used or
``auto`` meets a CUDA tensor.
"""

from __future__ import annotations

import math
import os

import torch

from ..errors import InputError, InputTypeError

BACKENDS = ("auto", "numba", "torch", "triton")
COSTS = ("sqeuclidean", "cosine")


# ---------------------------------------------------------------------------------------------------------------
# costs


def pairwise_cost(x: torch.Tensor, y: torch.Tensor, cost: str = "sqeuclidean") -> torch.Tensor:
    """``(B, N, M)`` cost between ``x (B, N, D)`` and ``y (B, M, D)``, differentiable.

    ``"sqeuclidean"``: ``‖x_i − y_j‖²`` (full, not halved) as ``‖x_i‖² + ‖y_j‖² − 2·x_i·y_j`` clamped at 0;
    ``"cosine"``: ``1 − cos(x_i, y_j)`` clamped to [0, 2]. Memory is ``O(B·N·M)``.

    Raises:
        ValueError: an unknown cost.
    """
    if cost == "sqeuclidean":
        xx = (x * x).sum(-1, keepdim=True)
        yy = (y * y).sum(-1).unsqueeze(-2)
        return (xx + yy - 2 * torch.bmm(x, y.transpose(1, 2))).clamp_min(0)
    if cost == "cosine":
        # eps keeps a zero vector finite (its cosine with anything is 0, its cost 1)
        eps = torch.finfo(x.dtype).eps
        xn = x / x.norm(dim=-1, keepdim=True).clamp_min(eps)
        yn = y / y.norm(dim=-1, keepdim=True).clamp_min(eps)
        return (1 - torch.bmm(xn, yn.transpose(1, 2))).clamp(0, 2)
    raise InputError(f"unknown cost {cost!r}; use one of {', '.join(COSTS)}")


# ---------------------------------------------------------------------------------------------------------------
# back-ends, on the padded-array conventions of _softdtw_cpu: R is (B, N+2, M+2) with +inf borders and R[:,0,0] = 0,
# E is (B, N, M) and zero outside each pair's block


def _torch_forward(D: torch.Tensor, n: torch.Tensor, m: torch.Tensor, gamma: float) -> torch.Tensor:
    """Anti-diagonal sweep: every cell of diagonal ``i + j = t`` at once, for every pair (n + m − 1 steps)."""
    B, N, M = D.shape
    R = torch.full((B, N + 2, M + 2), math.inf, dtype=D.dtype, device=D.device)
    R[:, 0, 0] = 0
    for t in range(2, N + M + 1):
        i = torch.arange(max(1, t - M), min(N, t - 1) + 1, device=D.device)
        j = t - i
        stacked = torch.stack([R[:, i - 1, j - 1], R[:, i - 1, j], R[:, i, j - 1]], dim=0)
        rmin = stacked.min(dim=0).values
        finite = torch.isfinite(rmin)
        shift = torch.where(finite, rmin, torch.zeros_like(rmin))
        total = torch.exp(-(stacked - shift) / gamma).sum(dim=0)
        soft = shift - gamma * torch.log(torch.where(finite, total, torch.ones_like(total)))
        R[:, i, j] = torch.where(finite, D[:, i - 1, j - 1] + soft, rmin)
    return R


def _torch_backward(D: torch.Tensor, R: torch.Tensor, n: torch.Tensor, m: torch.Tensor, gamma: float) -> torch.Tensor:
    """E-matrix recursion swept backwards over anti-diagonals, with each pair's own end cell.

    Cells outside a pair's block get ``R = −inf`` (so their weight is exactly 0) and ``E = 0``; the exponents are
    ≤ 0 in exact arithmetic and clamped at 0 against rounding.
    """
    B, N, M = D.shape
    device = D.device
    rows = torch.arange(N + 2, device=device).view(1, -1, 1)
    cols = torch.arange(M + 2, device=device).view(1, 1, -1)
    inside = (rows >= 1) & (rows <= n.view(-1, 1, 1)) & (cols >= 1) & (cols <= m.view(-1, 1, 1))
    r = torch.where(inside, R, torch.full_like(R, -math.inf))
    # the cell under evaluation is read through `here`, which must be finite wherever `inside` is false too
    here_all = torch.where(inside, R, torch.zeros_like(R))
    d = torch.zeros((B, N + 2, M + 2), dtype=D.dtype, device=device)
    d[:, 1:N + 1, 1:M + 1] = D
    d = torch.where(inside, d, torch.zeros_like(d))
    e = torch.zeros_like(r)
    batch = torch.arange(B, device=device)
    is_end = torch.zeros_like(inside)
    is_end[batch, n, m] = True
    for t in range(N + M, 1, -1):
        i = torch.arange(max(1, t - M), min(N, t - 1) + 1, device=device)
        j = t - i
        here = here_all[:, i, j]
        a = torch.exp(((r[:, i + 1, j] - here - d[:, i + 1, j]) / gamma).clamp_max(0))
        b = torch.exp(((r[:, i, j + 1] - here - d[:, i, j + 1]) / gamma).clamp_max(0))
        c = torch.exp(((r[:, i + 1, j + 1] - here - d[:, i + 1, j + 1]) / gamma).clamp_max(0))
        value = e[:, i + 1, j] * a + e[:, i, j + 1] * b + e[:, i + 1, j + 1] * c
        value = torch.where(is_end[:, i, j], torch.ones_like(value), value)
        e[:, i, j] = torch.where(inside[:, i, j], value, torch.zeros_like(value))
    return e[:, 1:N + 1, 1:M + 1].contiguous()


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
    """Whether a usable triton imports: version 3.3 or later, which has ``tl.gather`` (triton is imported here, and
    only here or in the triton back-end)."""
    try:
        import triton.language as tl
    except ImportError:
        return False
    return hasattr(tl, "gather")


def resolve_backend(backend: str, device: torch.device) -> str:
    """The back-end ``backend`` means for tensors on ``device`` (see the module docstring).

    Raises:
        ValueError: an unknown back-end; triton asked for but not installed; triton asked for on CPU tensors
            without Triton's interpreter (``TRITON_INTERPRET=1`` set before the kernels were compiled).
    """
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend == "auto":
        if device.type == "cuda":
            return "triton" if triton_available() else "torch"
        return "numba" if device.type == "cpu" else "torch"
    if backend == "triton":
        if not triton_available():
            raise InputError("backend 'triton' needs the triton package, version 3.3 or later (pip install "
                             "'triton>=3.3')")
        if device.type != "cuda":
            from . import _softdtw_triton

            if not _softdtw_triton.interpreted():
                state = os.environ.get("TRITON_INTERPRET", "unset")
                raise InputError("backend 'triton' runs on CUDA tensors, or on CPU tensors under Triton's "
                                 "interpreter: set TRITON_INTERPRET=1 before ctkd_inspect.batch._softdtw_triton is "
                                 f"imported (TRITON_INTERPRET is {state!r} and the kernels are compiled)")
    return backend


class _NoSecondDerivative(torch.autograd.Function):
    """Passes ``E`` through in a graph built for a second derivative, and refuses to be differentiated.

    The E-matrix backward treats ``E`` as a constant of the cost; a double backward through it would silently
    drop ``∂E/∂C``. Attaching this node makes such a call fail loudly instead.
    """

    @staticmethod
    def forward(ctx, E, D):
        return E.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("soft-DTW has no second derivative here: its backward (the E-matrix recursion) treats E "
                           "as a constant of the cost; do not differentiate the gradient (create_graph=True)")


class _SoftDTW(torch.autograd.Function):
    """Soft-DTW values (and, when asked, ``E``) of a batch of cost matrices; backward = the E-matrix recursion.

    With ``want_alignment`` the E matrix is computed once in the forward pass, returned, and reused by the
    backward pass (which then needs no saved ``R``); otherwise ``R`` is saved and ``E`` computed on backward.
    First derivatives only: a double backward raises (see :class:`_NoSecondDerivative`).
    """

    @staticmethod
    def forward(ctx, D, n, m, gamma, backend, want_alignment):
        forward_impl, backward_impl = _IMPLEMENTATIONS[backend]
        R = forward_impl(D.detach(), n, m, gamma)
        batch = torch.arange(D.shape[0], device=D.device)
        values = R[batch, n, m].to(D.dtype)  # the numba back-end keeps R in float64 (see _softdtw_cpu)
        ctx.gamma, ctx.backend = gamma, backend
        if want_alignment:
            E = backward_impl(D.detach(), R, n, m, gamma)
            ctx.save_for_backward(D, E)
            ctx.has_alignment = True
        else:
            E = D.new_zeros(0)
            ctx.save_for_backward(D, R, n, m)
            ctx.has_alignment = False
        ctx.mark_non_differentiable(E)
        return values, E

    @staticmethod
    def backward(ctx, grad_values, grad_alignment):
        if ctx.has_alignment:
            D, E = ctx.saved_tensors
        else:
            D, R, n, m = ctx.saved_tensors
            E = _IMPLEMENTATIONS[ctx.backend][1](D.detach(), R, n, m, ctx.gamma)
        if torch.is_grad_enabled() and D.requires_grad:  # create_graph=True: a second derivative may follow
            E = _NoSecondDerivative.apply(E, D)
        return E * grad_values.view(-1, 1, 1), None, None, None, None, None


# ---------------------------------------------------------------------------------------------------------------
# validation helpers


def _check_gamma(gamma) -> float:
    try:
        gamma = float(gamma)
    except (TypeError, ValueError):
        raise InputError(f"gamma must be a finite number > 0 (got {gamma!r})") from None
    if not gamma > 0 or not math.isfinite(gamma):
        raise InputError(f"gamma must be a finite number > 0 (got {gamma}); as gamma → 0 soft-DTW tends to hard "
                         "DTW, use a small gamma such as 1e-3 for that")
    return gamma


def _lengths(value, batch: int, limit: int, name: str, device) -> torch.Tensor:
    if value is None:
        return torch.full((batch,), limit, dtype=torch.int64, device=device)
    try:
        lengths = torch.as_tensor(value, device=device)
    except (TypeError, ValueError, RuntimeError):
        raise InputTypeError(f"{name} must be a sequence or tensor of integers, got {type(value).__name__}") from None
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise InputError(f"{name} must hold integers (got {lengths.dtype})")
    lengths = lengths.to(torch.int64).reshape(-1)
    if lengths.shape[0] != batch:
        raise InputError(f"{name} has {lengths.shape[0]} entries for a batch of {batch}")
    if bool((lengths < 1).any()) or bool((lengths > limit).any()):
        raise InputError(f"{name} must lie in [1, {limit}] (got {lengths.tolist()}); empty sequences have no "
                         "soft-DTW value")
    return lengths


def _as_batch(t: torch.Tensor, name: str, ndim: int) -> tuple[torch.Tensor, bool]:
    if not isinstance(t, torch.Tensor):
        raise InputTypeError(f"{name} must be a torch tensor, got {type(t).__name__}")
    if t.dtype not in (torch.float32, torch.float64):
        raise InputError(f"{name} must be float32 or float64 (got {t.dtype})")
    if t.dim() == ndim - 1:
        return t.unsqueeze(0), True
    if t.dim() != ndim:
        raise InputError(f"{name} must have {ndim - 1} or {ndim} dimensions (got shape {tuple(t.shape)})")
    return t, False


def _inside(shape, n: torch.Tensor, m: torch.Tensor, device) -> torch.Tensor:
    rows = torch.arange(shape[1], device=device).view(1, -1, 1)
    cols = torch.arange(shape[2], device=device).view(1, 1, -1)
    return (rows < n.view(-1, 1, 1)) & (cols < m.view(-1, 1, 1))


def _masked(t: torch.Tensor, n: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Zero the cells of a (B, N, M) tensor beyond each pair's lengths (padding may hold anything, even NaN)."""
    return torch.where(_inside(t.shape, n, m, t.device), t, torch.zeros((), dtype=t.dtype, device=t.device))


def _penalty(penalty, shape: torch.Size, dtype: torch.dtype, device) -> torch.Tensor:
    """The additive penalty as a ``(1 or B, N, M)`` constant (no gradient flows into it)."""
    if isinstance(penalty, torch.Tensor):
        p = penalty.detach().to(dtype=dtype, device=device)
    else:
        p = torch.as_tensor(penalty, dtype=dtype, device=device)
    if p.dim() == 2:
        p = p.unsqueeze(0)
    if p.dim() != 3 or tuple(p.shape[1:]) != tuple(shape[1:]) or p.shape[0] not in (1, shape[0]):
        raise InputError(f"the penalty (band) must have shape {tuple(shape[1:])} or {tuple(shape)} like the cost "
                         f"matrix (got {tuple(p.shape)})")
    return p


# ---------------------------------------------------------------------------------------------------------------
# public API


def soft_dtw_from_cost(C: torch.Tensor, gamma: float = 1.0, lengths=None, penalty=None,
                       return_alignment: bool = False, backend: str = "auto"):
    """Soft-DTW of precomputed cost matrices.

    Args:
        C: ``(N, M)`` or ``(B, N, M)`` finite costs, float32 or float64, on any device; differentiable.
        gamma: smoothing, a finite number > 0.
        lengths: ``None`` (every pair uses the full matrix) or ``(n_lengths, m_lengths)``, each ``(B,)`` integers
            (or ``None`` for full length) with ``1 ≤ n_b ≤ N`` and ``1 ≤ m_b ≤ M``.
        penalty: an additive penalty ``(N, M)`` or ``(B, N, M)`` (tensor or numpy array; e.g. a soft band from
            :func:`ctkd_inspect.batch.band.dwa_band`), added to ``C`` as a constant: no gradient flows into it.
        return_alignment: also return the expected alignment ``E = ∂value/∂(C + penalty)`` (shape of ``C``, zero
            outside each pair's block). It is computed once and reused by the backward pass.
        backend: ``auto``, ``numba``, ``torch`` or ``triton`` (see the module docstring).

    Returns:
        The values ``(B,)`` in ``C``'s dtype (a 0-d tensor for an unbatched ``C``), and ``E`` when asked.

    Raises:
        InputError (a ``ValueError``): gamma ≤ 0 (or not finite); an empty dimension; lengths out of range or of
            the wrong size; a penalty of the wrong shape; NaN or infinite costs inside the pairs' lengths; a dtype
            other than float32/float64; an unknown or unavailable back-end.
        InputTypeError (an ``InputError`` and a ``TypeError``): ``C`` is not a tensor.
    """
    gamma = _check_gamma(gamma)
    C, single = _as_batch(C, "C", 3)
    B, N, M = C.shape
    if B == 0 or N == 0 or M == 0:
        raise InputError(f"soft-DTW needs a non-empty batch of non-empty sequences (cost shape {tuple(C.shape)})")
    n_lengths, m_lengths = (None, None) if lengths is None else lengths
    n = _lengths(n_lengths, B, N, "the first lengths", C.device)
    m = _lengths(m_lengths, B, M, "the second lengths", C.device)
    chosen = resolve_backend(backend, C.device)
    if penalty is not None:
        C = C + _penalty(penalty, C.shape, C.dtype, C.device)
    if lengths is not None:
        C = _masked(C, n, m)
    # one reduction (and, on a GPU, one synchronisation): a NaN would otherwise come out as NaN or +inf
    # depending on the back-end, and an infinity breaks the E recursion
    if not bool(torch.isfinite(C.detach()).all()):
        raise InputError("the cost (with the penalty) holds NaN or infinite values inside the pairs' lengths; "
                         "soft-DTW needs finite costs (use a large finite penalty for a hard band)")
    values, E = _SoftDTW.apply(C, n, m, gamma, chosen, bool(return_alignment))
    if return_alignment:
        return (values[0], E[0]) if single else (values, E)
    return values[0] if single else values


def _prepare(x, y, x_lengths, y_lengths):
    x, single_x = _as_batch(x, "x", 3)
    y, single_y = _as_batch(y, "y", 3)
    if single_x != single_y:
        raise InputError("x and y must both be batched (B, L, D) or both unbatched (L, D)")
    if x.shape[0] != y.shape[0]:
        raise InputError(f"x and y have different batch sizes ({x.shape[0]} and {y.shape[0]})")
    if x.shape[-1] != y.shape[-1]:
        raise InputError(f"x and y have different feature sizes ({x.shape[-1]} and {y.shape[-1]})")
    if x.dtype != y.dtype:
        raise InputError(f"x and y have different dtypes ({x.dtype} and {y.dtype})")
    if x.device != y.device:
        raise InputError(f"x and y are on different devices ({x.device} and {y.device})")
    if x.shape[0] == 0 or x.shape[1] == 0 or y.shape[1] == 0:
        raise InputError(f"soft-DTW needs non-empty sequences (shapes {tuple(x.shape)} and {tuple(y.shape)})")
    n = _lengths(x_lengths, x.shape[0], x.shape[1], "x_lengths", x.device)
    m = _lengths(y_lengths, y.shape[0], y.shape[1], "y_lengths", y.device)
    # zero the padded rows so that whatever they hold (even NaN) reaches neither the costs nor the gradients
    if x_lengths is not None:
        x = torch.where((torch.arange(x.shape[1], device=x.device) < n.view(-1, 1)).unsqueeze(-1), x, 0.0)
    if y_lengths is not None:
        y = torch.where((torch.arange(y.shape[1], device=y.device) < m.view(-1, 1)).unsqueeze(-1), y, 0.0)
    ragged = x_lengths is not None or y_lengths is not None
    return x, y, n, m, single_x, ragged


def soft_dtw(x: torch.Tensor, y: torch.Tensor, gamma: float = 1.0, cost: str = "sqeuclidean", band=None,
             x_lengths=None, y_lengths=None, return_alignment: bool = False, backend: str = "auto"):
    """Soft-DTW between sequences of vectors.

    Args:
        x, y: ``(N, D)``/``(M, D)`` or batched ``(B, N, D)``/``(B, M, D)`` tensors, same dtype (float32/float64)
            and device; differentiable.
        gamma: smoothing, a finite number > 0.
        cost: ``"sqeuclidean"`` (full ``‖x − y‖²``) or ``"cosine"`` (``1 − cos``, clamped to [0, 2]).
        band: an additive penalty ``(N, M)`` or ``(B, N, M)`` added to the cost as a constant, e.g. the first
            output of :func:`ctkd_inspect.batch.band.dwa_band`.
        x_lengths, y_lengths: ``(B,)`` true lengths of ragged batches (default: full lengths); padded rows may hold
            anything, even NaN.
        return_alignment: also return the expected alignment matrix ``E`` (``(B, N, M)`` or ``(N, M)``).
        backend: ``auto``, ``numba``, ``torch`` or ``triton``.

    Returns:
        Values ``(B,)`` (0-d when unbatched) in the inputs' dtype, differentiable w.r.t. ``x`` and ``y``; and ``E``
        when asked.

    Raises:
        InputError (a ``ValueError``): see :func:`soft_dtw_from_cost`, plus mismatched feature sizes, batch sizes,
            dtypes or devices, mixed batched/unbatched inputs and an unknown cost.
    """
    gamma = _check_gamma(gamma)
    x, y, n, m, single, ragged = _prepare(x, y, x_lengths, y_lengths)
    C = pairwise_cost(x, y, cost)
    out = soft_dtw_from_cost(C, gamma, (n, m) if ragged else None, band, return_alignment, backend)
    if single:
        return (out[0][0], out[1][0]) if return_alignment else out[0]
    return out


def soft_dtw_divergence(x: torch.Tensor, y: torch.Tensor, gamma: float = 1.0, cost: str = "sqeuclidean",
                        band=None, x_lengths=None, y_lengths=None, return_alignment: bool = False,
                        backend: str = "auto"):
    """The soft-DTW divergence ``sdtw(x, y) − ½·(sdtw(x, x) + sdtw(y, y))`` of (ragged) pairs.

    The 3B soft-DTW problems (cross, x-self, y-self) are padded to one ``(3B, L, L)`` batch, ``L = max(N, M)``, and
    solved in ONE batched call (one kernel launch per direction on the GPU), each with its own lengths — unless
    that padding would more than double the cells to compute (very different ``N`` and ``M``), in which case the
    three terms are solved as three batched calls. The band
    penalty applies to the cross term only (DWA-KD); without a band, ``D(x, x) = 0`` and, for the squared
    Euclidean cost, ``D ≥ 0`` (Blondel et al. 2021 prove it for costs whose Gibbs kernel is positive definite;
    the tests check it on random inputs).

    Arguments, returns and errors as :func:`soft_dtw`; ``return_alignment`` returns the cross term's ``E``
    (``(B, N, M)``, with the band included in its cost).
    """
    gamma = _check_gamma(gamma)
    x, y, n, m, single, _ = _prepare(x, y, x_lengths, y_lengths)
    B, N, _ = x.shape
    M = y.shape[1]
    L = max(N, M)

    def pad(c: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(c, (0, L - c.shape[2], 0, L - c.shape[1]))

    cross = pairwise_cost(x, y, cost)
    if band is not None:
        cross = cross + _penalty(band, cross.shape, cross.dtype, cross.device)
    if 3 * L * L <= 2 * (N * M + N * N + M * M):
        stacked = torch.cat([pad(cross), pad(pairwise_cost(x, x, cost)), pad(pairwise_cost(y, y, cost))], dim=0)
        out = soft_dtw_from_cost(stacked, gamma, (torch.cat([n, n, m]), torch.cat([m, n, m])), None,
                                 return_alignment, backend)
        values = out[0] if return_alignment else out
        cross_value, x_self, y_self = values[:B], values[B:2 * B], values[2 * B:]
    else:
        out = soft_dtw_from_cost(cross, gamma, (n, m), None, return_alignment, backend)
        cross_value = out[0] if return_alignment else out
        x_self = soft_dtw_from_cost(pairwise_cost(x, x, cost), gamma, (n, n), None, False, backend)
        y_self = soft_dtw_from_cost(pairwise_cost(y, y, cost), gamma, (m, m), None, False, backend)
    divergence = cross_value - 0.5 * (x_self + y_self)
    if return_alignment:
        E = out[1][:B, :N, :M]
        return (divergence[0], E[0]) if single else (divergence, E)
    return divergence[0] if single else divergence
