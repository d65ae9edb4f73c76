"""Full-vocabulary passes done a few rows at a time: entropies and the skewed KL divergences.

A loss's cost on the CPU is dominated by elementwise passes over ``(B, L, V)`` tensors (8 × 128 × 50,257 floats
are 206 MB): each unfused torch operation writes a new tensor of that size, which the allocator maps and the kernel
faults in page by page, and autograd keeps several of them for the backward pass. The functions here walk the rows
in chunks of about :data:`CHUNK_ELEMENTS` values, so every intermediate stays small and in cache, and keep for the
backward pass one tensor at most (the gradient, computed in the same walk). They compute the same quantities as the
plain formulas in :mod:`ctkd_inspect.losses.base` (the tests compare both, values and gradients).
"""

from __future__ import annotations

import math

import torch

#: Values per chunk (2 MB of float32): small enough to stay in a core's cache, large enough that the per-chunk
#: overhead of a few torch calls is a small share of the work.
CHUNK_ELEMENTS = 1 << 19


def _chunks(rows: int, width: int):
    step = max(1, CHUNK_ELEMENTS // max(width, 1))
    return ((start, min(start + step, rows)) for start in range(0, rows, step))


def entropy_from_logp(log_probs: torch.Tensor) -> torch.Tensor:
    """``−Σ p·log p`` over the last axis from log-probabilities ``(..., V)`` → ``(...)``, without gradient."""
    flat = log_probs.detach().reshape(-1, log_probs.shape[-1])
    out = torch.empty(flat.shape[0], dtype=flat.dtype, device=flat.device)
    for a, b in _chunks(*flat.shape):
        chunk = flat[a:b]
        out[a:b] = -(chunk.exp() * chunk).sum(-1)
    return out.view(log_probs.shape[:-1])


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """The entropy of ``softmax(logits)`` over the last axis (float32 at least), without gradient: the
    log-softmax is computed chunk by chunk and never held whole."""
    flat = logits.detach().reshape(-1, logits.shape[-1])
    dtype = torch.promote_types(flat.dtype, torch.float32)
    out = torch.empty(flat.shape[0], dtype=dtype, device=flat.device)
    for a, b in _chunks(*flat.shape):
        chunk = torch.log_softmax(flat[a:b].to(dtype), -1)
        out[a:b] = -(chunk.exp() * chunk).sum(-1)
    return out.view(logits.shape[:-1])


class _SkewedKL(torch.autograd.Function):
    """Per-row skewed KL from log-probabilities, gradient with respect to the student's log-probabilities only.

    With ``q`` the student's and ``p`` the target's distribution, the mixture ``m = a·p + (1 − a)·q`` and
    ``r = q/m = exp(log q − log m)``:

    - reverse (``KL(q ‖ m)``): ``D = Σ q·(log q − log m)``, ``∂D/∂log q = q·(log q − log m + 1 − (1 − a)·r)``;
    - forward (``KL(p ‖ m)``): ``D = Σ p·(log p − log m)``, ``∂D/∂log q = −(1 − a)·p·r``.

    ``log m = logaddexp(log a + log p, log(1 − a) + log q)``, in log space as the plain formula, so that tokens whose
    probabilities underflow give 0, never 0/0.
    """

    @staticmethod
    def forward(ctx, log_q, log_p, weight_on_target: float, reverse: bool):
        shape = log_q.shape
        q_rows = log_q.detach().reshape(-1, shape[-1])
        p_rows = log_p.detach().reshape(-1, shape[-1])
        a = weight_on_target
        log_a, log_b = math.log(a), math.log1p(-a)
        values = torch.empty(q_rows.shape[0], dtype=q_rows.dtype, device=q_rows.device)
        grad = torch.empty_like(q_rows) if ctx.needs_input_grad[0] else None
        for start, end in _chunks(*q_rows.shape):
            lq, lp = q_rows[start:end], p_rows[start:end]
            log_m = torch.logaddexp(lp + log_a, lq + log_b)
            if reverse:
                diff = lq - log_m  # log q − log m
                q = lq.exp()
                values[start:end] = (q * diff).sum(-1)
                if grad is not None:
                    r = diff.exp()
                    grad[start:end] = q * (diff + 1.0 - (1.0 - a) * r)
            else:
                p = lp.exp()
                values[start:end] = (p * (lp - log_m)).sum(-1)
                if grad is not None:
                    grad[start:end] = (lq - log_m).exp_().mul_(p).mul_(-(1.0 - a))
        if grad is not None:
            ctx.save_for_backward(grad)
        ctx.shape = shape
        return values.view(shape[:-1])

    @staticmethod
    def backward(ctx, grad_values):
        (grad,) = ctx.saved_tensors
        return (grad * grad_values.reshape(-1, 1)).view(ctx.shape), None, None, None


def skewed_kl(log_q: torch.Tensor, log_p: torch.Tensor, skew: float, *, reverse: bool) -> torch.Tensor:
    """DSKD's skewed KL divergences per position from log-probabilities ``(..., V)`` → ``(...)``:
    ``reverse``: ``KL(q ‖ (1 − skew)·p + skew·q)``; otherwise ``KL(p ‖ skew·p + (1 − skew)·q)`` (``q`` the
    student's, ``p`` the target's). The gradient reaches ``log_q``; ``log_p`` must not need one (the target is
    detached in every loss; :func:`~ctkd_inspect.losses.base.divergence` takes the plain formula otherwise).
    """
    weight_on_target = (1.0 - skew) if reverse else skew
    return _SkewedKL.apply(log_q, log_p, weight_on_target, reverse)


__all__ = ["CHUNK_ELEMENTS", "entropy_from_logits", "entropy_from_logp", "skewed_kl"]
