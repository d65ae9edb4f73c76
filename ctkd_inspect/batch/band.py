"""DWA-KD's adaptive soft band for Soft-DTW, built from a student→teacher attention matrix.

For student row ``i`` (0-based, ``S`` student rows, ``T`` teacher columns) with attention row ``A_i`` (a
distribution over the teacher positions):

- centre ``c_i = α·Σ_j j·A_ij + (1 − α)·i·T/S`` — the attention's expected teacher position, pulled towards the
  diagonal;
- width ``w_i = b + β·H(A_i)`` with ``H`` the entropy in nats — an uncertain attention row gets a wider band;
- penalty ``λ`` on every cell with ``|j − c_i| > w_i``, added to the cost (a soft band: cells outside stay
  reachable, they just cost more).

Defaults are the paper's (Table 5) and its code's: ``b = 5``, ``β = 2.0``, ``α = 0.7``, ``λ = 1.0``. For ragged
batches each pair uses its own ``S`` and ``T``, and its attention rows are renormalised over its valid teacher
span; cells outside a pair's block get no penalty.

Works on numpy arrays (no torch needed) and on torch tensors (differentiable is not needed: the band is a
constant of the loss, so it is computed without gradient).
"""

from __future__ import annotations

import numpy as np

DEFAULTS = {"width": 5.0, "beta": 2.0, "alpha": 0.7, "penalty": 1.0}


def _band_numpy(attention: np.ndarray, s_len: np.ndarray, t_len: np.ndarray, width, beta, alpha, penalty):
    _, S, T = attention.shape
    rows = np.arange(S)[None, :, None]
    cols = np.arange(T)[None, None, :]
    valid_t = cols < t_len[:, None, None]
    valid_s = rows < s_len[:, None, None]
    a = np.where(valid_t, np.clip(attention, 0, None), 0.0)
    a = a / np.maximum(a.sum(-1, keepdims=True), np.finfo(np.float64).tiny)
    expected = (a * cols).sum(-1)
    diagonal = np.arange(S)[None, :] * (t_len / s_len)[:, None]
    centers = alpha * expected + (1 - alpha) * diagonal
    entropy = -(np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0)), 0.0)).sum(-1)
    widths = width + beta * entropy
    outside = np.abs(cols - centers[..., None]) > widths[..., None]
    band = np.where(outside & valid_t & valid_s, penalty, 0.0)
    return band, np.where(valid_s[..., 0], centers, 0.0), np.where(valid_s[..., 0], widths, 0.0)


def dwa_band(attention, *, width: float = 5.0, beta: float = 2.0, alpha: float = 0.7, penalty: float = 1.0,
             student_lengths=None, teacher_lengths=None):
    """The additive band penalty, the centres and the widths.

    Args:
        attention: ``(S, T)`` or ``(B, S, T)`` student→teacher attention, rows summing to 1 over the valid span
            (they are renormalised); numpy array or torch tensor.
        width, beta, alpha, penalty: ``b``, ``β``, ``α``, ``λ`` (see the module docstring).
        student_lengths, teacher_lengths: ``(B,)`` valid lengths for ragged batches.

    Returns:
        ``(band, centers, widths)``: ``band`` has the attention's shape (0 inside the band, ``penalty`` outside),
        ``centers``/``widths`` are ``(S,)``/``(B, S)``; same array type and dtype as ``attention``.

    Raises:
        ValueError: a wrong shape, negative width/beta, alpha outside [0, 1], lengths out of range.
    """
    is_torch = type(attention).__module__.startswith("torch")
    array = attention.detach().cpu().double().numpy() if is_torch else np.asarray(attention, dtype=np.float64)
    single = array.ndim == 2
    if single:
        array = array[None]
    if array.ndim != 3 or array.shape[1] == 0 or array.shape[2] == 0:
        raise ValueError(f"attention must be (S, T) or (B, S, T) with S, T > 0 (got shape {np.shape(attention)})")
    if width < 0 or beta < 0 or not 0 <= alpha <= 1:
        raise ValueError("band parameters: width and beta must be ≥ 0 and alpha in [0, 1]")
    B, S, T = array.shape

    def lengths(value, limit, name):
        if value is None:
            return np.full(B, limit, dtype=np.float64)
        out = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=np.float64).reshape(-1)
        if out.shape[0] != B or (out < 1).any() or (out > limit).any():
            raise ValueError(f"{name} must have {B} entries in [1, {limit}]")
        return out

    s_len = lengths(student_lengths, S, "student_lengths")
    t_len = lengths(teacher_lengths, T, "teacher_lengths")
    band, centers, widths = _band_numpy(array, s_len, t_len, width, beta, alpha, penalty)
    if single:
        band, centers, widths = band[0], centers[0], widths[0]
    if is_torch:
        import torch

        return tuple(torch.as_tensor(v, dtype=attention.dtype, device=attention.device)
                     for v in (band, centers, widths))
    return band, centers, widths
