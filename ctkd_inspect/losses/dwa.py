"""``dwa``: DWA-KD, dual-space weighting and time-warped alignment (arXiv 2602.21669; the authors' DSKD fork
``code/criterions/dwa_kd.py``), ``research/methods.md`` §5.

**Dual-space weighting** on top of DSKD's cross-model attention (:mod:`ctkd_inspect.losses.dskd`):

- student weights ``w_s,t = H_s,t · n / Σ H_s`` (the student's entropy at its loss positions, detached, rescaled to
  sum to the number ``n`` of loss positions; +1e-9 in the denominator, as the code);
- gate ``g_t = max softmax(t2s logits_t)`` (the projected teacher's peak confidence, at temperature 1);
- teacher weights ``w_t,u = c_u · n_T / Σ c`` with ``c_u = clamp(1 − H_T,u / log V_T, 0, 1)``;
- ``KD = CE(t2s) + Σ_t D(p_S, sg(p_t2s))·g_t·w_s,t + Σ_u KL(p_T ‖ p_s2t)·w_t,u`` with ``D`` DWA-KD's skewed reverse KL
  (λ = 0.1) at ``T = 2``.

**Time-warped alignment.** Two band Soft-DTW divergences per example over the **response** positions (the loss
positions: with labels ``[-100, -100, -100, 5, 6, -100]`` the positions 3 and 4):

- target-token embeddings: the student's (with gradient) against the teacher's (detached) through a new projector
  ``dtw_embed_t2s`` (``d_T → d_S``);
- final hidden states: the student's against the teacher's raw hidden states through DSKD's shared ``t2s``
  projector;
- cost ``clamp(1 − cos, 0, 2)``; the cross cost gets DWA-KD's adaptive soft band (:func:`ctkd_inspect.batch.band.
  dwa_band_torch`, built from the CMA attention restricted to the response positions; b = 5, β = 2, α = 0.7, λ =
  1); divergence ``s(C̃_st) − ½(s(C_ss) + s(C_tt))`` with γ = 2 (:func:`ctkd_inspect.soft_dtw_divergence`: every
  pair of the batch in one batched call, numba on the CPU, Triton on CUDA);
- ``DTW = nDTW_hidden + nDTW_embed`` (the unused 0.7/0.3 weights of the code are not applied, as there).

**Loss.** ``0.5·CE + 0.5·KD + 0.2·DTW`` (the gpt2 scripts' ce/kd/dtw rates). Every token-level sum and each
example's DTW divergence are divided by the example's number of student loss positions, which over a batch
reproduces DWA-KD's sums divided by DSKD's token count.

Deviations from the authors' code: the DTW takes the response positions (the code slices the *first* ``s_len``
positions, mostly the prompt, and the embeddings of token id 0: ``research/methods.md`` §5.4); std normalisations
per example (see :mod:`~ctkd_inspect.losses.dskd`); a NaN/inf pair raises an error naming the term instead of
being skipped silently; the soft band takes the attention rows renormalised over the valid teacher span by the
shared band kernel (the code adds 1e-9 before renormalising); the entropies are exact (the code writes
``p·log(p + 1e-9)``; they come here from the log-softmax the cross-entropy needs anyway); no KD warm-up and no γ
annealing (both off by default in the code); examples without a response on a side get no DTW term.

**Statistics:** ``t2s_accuracy``/``top1_accuracy`` (as DSKD), ``gate`` (the mean gate), ``band_outside`` (share of
cross-cost cells penalised by the band).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from ..errors import InputError
from .base import (
    LossOutput,
    check_positive,
    check_rate,
    cross_entropy,
    entropy_from_logp,
    gather_positions,
    response_positions,
)
from .dskd import DSKDLoss
from .rowwise import entropy_from_logits


def normalised_weights(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """DWA-KD's rescaling: ``values`` masked, then scaled so each example's weights sum to its number of masked
    positions (``+1e-9`` in the denominator, as the code)."""
    m = mask.float()
    v = values.detach().float() * m
    return v * (m.sum(-1, keepdim=True).clamp_min(1.0) / (v.sum(-1, keepdim=True) + 1e-9))


class DWALoss(DSKDLoss):
    """DWA-KD (terms ``ce``, ``t2s_ce``, ``t2s_kd``, ``s2t_kd``, ``dtw_hidden``, ``dtw_embed``).

    Args:
        student_dim, teacher_dim: the hidden sizes, or the models themselves.
        ce_rate, kd_rate, dtw_rate: the three weights.
        temperature, objective, skew, teacher_temperature: the KD divergence.
        gamma: Soft-DTW's smoothing; band_width, band_beta, band_alpha, band_penalty: the soft band.
        softdtw_backend: ``auto``, ``numba``, ``torch`` or ``triton``.
    """

    name: ClassVar[str] = "dwa"

    def __init__(self, student_dim=None, teacher_dim=None, *, student_model=None, teacher_model=None,
                 ce_rate: float = 0.5, kd_rate: float = 0.5, dtw_rate: float = 0.2, temperature: float = 2.0,
                 objective: str = "skewed_reverse_kl", skew: float = 0.1, teacher_temperature: float = 1.0,
                 gamma: float = 2.0, band_width: float = 5.0, band_beta: float = 2.0, band_alpha: float = 0.7,
                 band_penalty: float = 1.0, softdtw_backend: str = "auto", check_finite: bool = True, pair=None):
        super().__init__(student_dim, teacher_dim, student_model=student_model, teacher_model=teacher_model,
                         kd_rate=kd_rate, temperature=temperature, objective=objective,
                         teacher_temperature=teacher_temperature, skew=skew, check_finite=check_finite)
        self.ce_rate = check_rate("ce_rate", ce_rate, 0.0, math.inf)
        self.kd_rate = check_rate("kd_rate", kd_rate, 0.0, math.inf)
        self.dtw_rate = check_rate("dtw_rate", dtw_rate, 0.0, math.inf)
        self.gamma = check_positive("gamma", gamma)
        self.band = {"width": check_rate("band_width", band_width, 0.0, math.inf),
                     "beta": check_rate("band_beta", band_beta, 0.0, math.inf),
                     "alpha": check_rate("band_alpha", band_alpha),
                     "penalty": check_rate("band_penalty", band_penalty, 0.0, math.inf)}
        from ..batch.softdtw import BACKENDS

        if softdtw_backend not in BACKENDS:
            raise InputError(f"softdtw_backend must be one of {', '.join(BACKENDS)} (got {softdtw_backend!r})")
        self.softdtw_backend = softdtw_backend
        student_size = self.cma.t2s.out_features
        teacher_size = self.cma.t2s.in_features
        self.dtw_embed_t2s = nn.Linear(teacher_size, student_size)

    def dtw_terms(self, batch, student, teacher, attention: torch.Tensor):
        """The two band Soft-DTW divergences per example over the response positions: ``(hidden (B,), embed (B,),
        band_outside (numerator, denominator))``."""
        from ..batch.band import dwa_band_torch
        from ..batch.softdtw import soft_dtw_divergence

        s_pos, s_len = response_positions(batch.student_labels)
        t_pos, t_len = response_positions(batch.teacher_labels)
        live = (s_len > 0) & (t_len > 0)
        B = len(s_len)
        zero = torch.zeros(B, device=s_len.device)
        if not bool(live.any()):
            return zero, zero, (0.0, 0.0)
        # examples without a response on a side get length 1 (any finite row) and their divergence zeroed
        n = torch.where(live, s_len, torch.ones_like(s_len))
        m = torch.where(live, t_len, torch.ones_like(t_len))
        rows = gather_positions(attention.detach(), s_pos)  # (B, R_S, Lt)
        rows = rows.gather(2, t_pos.clamp_min(0)[:, None, :].expand(-1, rows.shape[1], -1))  # (B, R_S, R_T)
        band, _, _ = dwa_band_torch(rows, student_lengths=n, teacher_lengths=m, **self.band)
        valid_cells = (torch.arange(rows.shape[1], device=n.device)[None, :, None] < n[:, None, None]) & \
            (torch.arange(rows.shape[2], device=n.device)[None, None, :] < m[:, None, None]) & live[:, None, None]
        outside = (float(((band > 0) & valid_cells).sum()), float(valid_cells.sum()))

        dtype = self.dtw_embed_t2s.weight.dtype  # the projectors' dtype
        s_hidden = gather_positions(student.hidden_states.to(dtype), s_pos)
        t_hidden = self.cma.t2s(gather_positions(teacher.hidden_states.to(dtype), t_pos))
        s_mask = torch.arange(s_pos.shape[1], device=n.device)[None, :] < s_len[:, None]
        t_mask = torch.arange(t_pos.shape[1], device=n.device)[None, :] < t_len[:, None]
        s_target = torch.where(s_mask, gather_positions(batch.student_labels, s_pos), 0)
        t_target = torch.where(t_mask, gather_positions(batch.teacher_labels, t_pos), 0)
        s_embed = student.embed_tokens(s_target).to(dtype)  # with gradient, as DWA-KD
        t_embed = self.dtw_embed_t2s(teacher.embed_tokens(t_target).detach().to(dtype))
        self.finite(s_hidden, s_mask, "student hidden states (response positions)", "dtw_hidden")
        self.finite(t_hidden, t_mask, "projected teacher hidden states (response positions)", "dtw_hidden")
        self.finite(s_embed, s_mask, "student target embeddings", "dtw_embed")
        self.finite(t_embed, t_mask, "projected teacher target embeddings", "dtw_embed")

        def divergence_of(x, y):
            values = soft_dtw_divergence(x, y, gamma=self.gamma, cost="cosine", band=band, x_lengths=n, y_lengths=m,
                                         backend=self.softdtw_backend)
            return torch.where(live, values, torch.zeros_like(values))

        return divergence_of(s_hidden, t_hidden), divergence_of(s_embed, t_embed), outside

    def compute(self, batch, student, teacher) -> LossOutput:
        s_mask, t_mask = self._checks(batch, student, teacher)
        n = s_mask.sum(-1).clamp_min(1).float()
        cma = self.cma(batch, student, teacher)
        t2s_ce, t2s_kd, s2t_kd, correct, t2s_logp = self.kd_terms(batch, student, teacher, cma)
        student_logp = torch.log_softmax(student.logits.float(), -1)  # the CE's, reused for the weights
        w_s = normalised_weights(entropy_from_logp(student_logp), s_mask)
        teacher_entropy = entropy_from_logits(teacher.logits)
        certainty = (1.0 - teacher_entropy / (math.log(teacher.logits.shape[-1]) + 1e-9)).clamp(0, 1)
        w_t = normalised_weights(certainty, t_mask)
        gate = t2s_logp.detach().max(-1).values.exp() * s_mask.float()  # the peak of softmax(t2s logits)
        hidden, embed, outside = self.dtw_terms(batch, student, teacher, cma.attention)
        ce = cross_entropy(student.logits, batch.student_labels, student_logp).sum(-1) / n
        terms = {"ce": ce,
                 "t2s_ce": t2s_ce.sum(-1) / n,
                 "t2s_kd": (t2s_kd * gate * w_s).sum(-1) / n,
                 "s2t_kd": torch.where(t_mask, s2t_kd * w_t, torch.zeros_like(s2t_kd)).sum(-1) / n,
                 "dtw_hidden": hidden / n,
                 "dtw_embed": embed / n}
        hits = float(correct.sum())
        total = float(s_mask.sum())
        counts = {"t2s_accuracy": (hits, total), "top1_accuracy": (hits, total),
                  "top1_accuracy_teacher": (hits, total), "gate": (float(gate.sum()), total),
                  "band_outside": outside}
        weights = {"ce": self.ce_rate, "t2s_ce": self.kd_rate, "t2s_kd": self.kd_rate, "s2t_kd": self.kd_rate,
                   "dtw_hidden": self.dtw_rate, "dtw_embed": self.dtw_rate}
        return self.finish(batch, terms, weights, counts)
