"""DWA-KD's adaptive soft band for Soft-DTW, built from a student→teacher attention matrix.

For student row ``i`` (0-based, ``S`` student rows, ``T`` teacher columns, both the pair's true lengths) with
attention row ``A_i`` (a distribution over the teacher positions ``j = 0 … T−1``):

- centre ``c_i = α·Σ_j j·A_ij + (1 − α)·i·T/S``: the attention's expected teacher position, blended with the
  proportional diagonal;
- width ``w_i = b + β·H(A_i)`` with ``H`` the entropy in nats (``0·log 0 = 0``): an uncertain attention row gets a
  wider band;
- penalty ``λ`` on every cell with ``|j − c_i| > w_i`` (strictly), 0 elsewhere, to be **added** to the cross cost
  (a soft band: cells outside stay reachable, they just cost more; see ``band=`` of
  :func:`ctkd_inspect.batch.softdtw.soft_dtw_divergence`, which applies it to the cross term only).

Defaults are the paper's (Table 5) and its code's: ``b = 5``, ``β = 2.0``, ``α = 0.7``, ``λ = 1.0``.

Attention rows are clipped at 0 and renormalised over the pair's valid teacher span (so a full-width softmax that
leaked mass onto padding is handled); a row with no mass on the valid span is treated as uniform over it (no
information: the widest band). For ragged batches each pair uses its own ``S`` and ``T``; cells outside a pair's
block get no penalty and padded rows get centre and width 0.

Two implementations with identical results: :func:`dwa_band_numpy` (numpy only; this module never imports torch
at import time, so the inspection engine can build bands without torch) and :func:`dwa_band_torch` (on the
attention's device, without gradient: the band is a constant of the loss). :func:`dwa_band` dispatches on the
input type.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULTS = {"width": 5.0, "beta": 2.0, "alpha": 0.7, "penalty": 1.0}


def _check_parameters(width, beta, alpha, penalty) -> None:
    for name, value in (("width", width), ("beta", beta), ("alpha", alpha), ("penalty", penalty)):
        if not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(float(value)):
            raise ValueError(f"band parameter {name} must be a finite number (got {value!r})")
    if width < 0 or beta < 0 or penalty < 0 or not 0 <= alpha <= 1:
        raise ValueError(f"band parameters: width, beta and penalty must be ≥ 0 and alpha in [0, 1] (got width="
                         f"{width}, beta={beta}, penalty={penalty}, alpha={alpha})")


def _check_lengths(values: np.ndarray, batch: int, limit: int, name: str) -> np.ndarray:
    if values.shape[0] != batch or (values < 1).any() or (values > limit).any() or (values != np.round(values)).any():
        raise ValueError(f"{name} must hold {batch} integers in [1, {limit}] (got {values.tolist()})")
    return values


def _batched_shape(shape, name="attention"):
    if len(shape) not in (2, 3) or shape[-1] == 0 or shape[-2] == 0 or (len(shape) == 3 and shape[0] == 0):
        raise ValueError(f"{name} must be (S, T) or (B, S, T) with B, S, T > 0 (got shape {tuple(shape)})")


def dwa_band_numpy(attention, *, width: float = 5.0, beta: float = 2.0, alpha: float = 0.7, penalty: float = 1.0,
                   student_lengths=None, teacher_lengths=None):
    """The DWA-KD band in numpy (imports no torch).

    Args:
        attention: ``(S, T)`` or ``(B, S, T)`` array-like of non-negative student→teacher attention weights
            (rows are renormalised over the valid teacher span, see the module docstring); finite on the valid
            block, anything (even NaN) in the padding.
        width, beta, alpha, penalty: ``b``, ``β``, ``α``, ``λ``.
        student_lengths, teacher_lengths: ``(B,)`` integer valid lengths for ragged batches (default: full).

    Returns:
        ``(band, centers, widths)``: ``band`` has the attention's shape (0 inside the band, ``penalty`` outside,
        0 in the padding); ``centers`` and ``widths`` are ``(S,)`` or ``(B, S)``. float64, or the attention's
        floating dtype.

    Raises:
        ValueError: a wrong shape; a non-finite or negative parameter, ``alpha`` outside [0, 1]; lengths out of
            range; non-finite attention values inside the valid block.
    """
    _check_parameters(width, beta, alpha, penalty)
    source = np.asarray(attention)
    _batched_shape(source.shape)
    out_dtype = source.dtype if source.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    a = source.astype(np.float64)
    single = a.ndim == 2
    if single:
        a = a[None]
    B, S, T = a.shape
    s_len = np.full(B, S) if student_lengths is None else _check_lengths(
        np.asarray(student_lengths, dtype=np.float64).reshape(-1), B, S, "student_lengths")
    t_len = np.full(B, T) if teacher_lengths is None else _check_lengths(
        np.asarray(teacher_lengths, dtype=np.float64).reshape(-1), B, T, "teacher_lengths")
    s_len = s_len.astype(np.int64)
    t_len = t_len.astype(np.int64)
    rows = np.arange(S)[None, :, None]
    cols = np.arange(T)[None, None, :]
    valid_t = cols < t_len[:, None, None]
    valid_s = rows < s_len[:, None, None]
    valid = valid_s & valid_t
    if not np.isfinite(a[np.broadcast_to(valid, a.shape)]).all():
        raise ValueError("attention holds non-finite values inside the valid block")
    a = np.where(valid_t, np.clip(np.where(valid_t, a, 0.0), 0.0, None), 0.0)
    mass = a.sum(-1, keepdims=True)
    uniform = valid_t / t_len[:, None, None]
    a = np.where(mass > 0, a / np.where(mass > 0, mass, 1.0), uniform)
    expected = (a * cols).sum(-1)
    diagonal = np.arange(S)[None, :] * (t_len / s_len)[:, None]
    centers = alpha * expected + (1 - alpha) * diagonal
    entropy = -np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0)), 0.0).sum(-1)
    widths = width + beta * entropy
    outside = np.abs(cols - centers[..., None]) > widths[..., None]
    band = np.where(outside & valid, float(penalty), 0.0)
    centers = np.where(valid_s[..., 0], centers, 0.0)
    widths = np.where(valid_s[..., 0], widths, 0.0)
    if single:
        band, centers, widths = band[0], centers[0], widths[0]
    return band.astype(out_dtype), centers.astype(out_dtype), widths.astype(out_dtype)


def dwa_band_torch(attention, *, width: float = 5.0, beta: float = 2.0, alpha: float = 0.7, penalty: float = 1.0,
                   student_lengths=None, teacher_lengths=None):
    """The DWA-KD band computed with torch on the attention's device, without gradient.

    Same contract as :func:`dwa_band_numpy`; ``attention`` is a floating torch tensor and the outputs are tensors
    of its dtype on its device (lengths may be tensors or sequences). The validation of lengths and of
    finiteness costs one device-to-host synchronisation each.
    """
    import torch

    _check_parameters(width, beta, alpha, penalty)
    if not isinstance(attention, torch.Tensor) or not attention.is_floating_point():
        raise ValueError("dwa_band_torch needs a floating-point torch tensor")
    _batched_shape(tuple(attention.shape))
    device, out_dtype = attention.device, attention.dtype
    with torch.no_grad():
        # float64 for the centres/entropies: a band edge must not move with the attention's dtype
        a = attention.detach().to(torch.float64)
        single = a.dim() == 2
        if single:
            a = a.unsqueeze(0)
        B, S, T = a.shape

        def lengths(value, limit, name):
            if value is None:
                return torch.full((B,), limit, dtype=torch.int64, device=device)
            v = torch.as_tensor(value, device=device)
            checked = _check_lengths(v.detach().cpu().to(torch.float64).reshape(-1).numpy(), B, limit, name)
            return torch.as_tensor(checked, dtype=torch.int64, device=device)

        s_len = lengths(student_lengths, S, "student_lengths")
        t_len = lengths(teacher_lengths, T, "teacher_lengths")
        rows = torch.arange(S, device=device).view(1, -1, 1)
        cols = torch.arange(T, device=device).view(1, 1, -1)
        valid_t = cols < t_len.view(-1, 1, 1)
        valid_s = rows < s_len.view(-1, 1, 1)
        valid = valid_s & valid_t
        if not bool(torch.isfinite(torch.where(valid, a, 0.0)).all()):
            raise ValueError("attention holds non-finite values inside the valid block")
        a = torch.where(valid_t, a, 0.0).clamp_min(0)
        mass = a.sum(-1, keepdim=True)
        uniform = valid_t.to(torch.float64) / t_len.view(-1, 1, 1)
        a = torch.where(mass > 0, a / torch.where(mass > 0, mass, 1.0), uniform)
        colsf = cols.to(torch.float64)
        expected = (a * colsf).sum(-1)
        diagonal = torch.arange(S, device=device, dtype=torch.float64).view(1, -1) * (t_len / s_len).view(-1, 1)
        centers = alpha * expected + (1 - alpha) * diagonal
        entropy = -torch.where(a > 0, a * torch.log(torch.where(a > 0, a, 1.0)), 0.0).sum(-1)
        widths = width + beta * entropy
        outside = (colsf - centers.unsqueeze(-1)).abs() > widths.unsqueeze(-1)
        band = torch.where(outside & valid, float(penalty), 0.0)
        centers = torch.where(valid_s[..., 0], centers, 0.0)
        widths = torch.where(valid_s[..., 0], widths, 0.0)
        if single:
            band, centers, widths = band[0], centers[0], widths[0]
        return band.to(out_dtype), centers.to(out_dtype), widths.to(out_dtype)


def dwa_band(attention, *, width: float = 5.0, beta: float = 2.0, alpha: float = 0.7, penalty: float = 1.0,
             student_lengths=None, teacher_lengths=None):
    """The additive band penalty, the centres and the widths (see the module docstring).

    Dispatches on the input: a torch tensor goes to :func:`dwa_band_torch` (outputs on its device, its dtype),
    anything else to :func:`dwa_band_numpy` (torch is not imported). Arguments, returns and errors as those.
    """
    kwargs = {"width": width, "beta": beta, "alpha": alpha, "penalty": penalty, "student_lengths": student_lengths,
              "teacher_lengths": teacher_lengths}
    if type(attention).__module__.startswith("torch"):
        return dwa_band_torch(attention, **kwargs)
    return dwa_band_numpy(attention, **kwargs)
