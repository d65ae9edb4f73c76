"""``dskd``: Dual-Space KD with cross-model attention (Zhang et al., EMNLP 2024; DSKD's
``dual_space_kd_with_cross_model_attention.py``), the base DWA-KD extends (``research/methods.md`` §5.1).

**Cross-model attention (CMA)**, over the loss positions of both sides (everything else is masked with DSKD's
additive −1e5, so padding gets exactly zero weight):

- query ``Q = P_query([e_in; e_tgt]_S)`` from the student's (detached) embeddings of its input token and of its
  target token (``labels[t]``, the token position ``t`` predicts); key ``K = [e_in; e_tgt]_T / std``;
- ``A = softmax(QKᵀ/√(2·d_T))`` over the teacher positions: student position ``t`` attends to the teacher
  positions whose (input, target) pair resembles its own;
- value ``V = P_t2s(h_T/std + e_tgt,T/std)``; ``t2s logits = (A·V)·W_head,Sᵀ`` (the student's head, detached):
  the teacher's knowledge in the student space at student position ``t``, predicting ``t + 1``;
- mirror: ``s2t logits = softmax(Aᵀ)·P_s2t(h_S)·W_head,Tᵀ`` at every teacher position.

**Loss.** ``(1 − kd_rate)·CE + kd_rate·(CE(t2s) + D(p_S, sg(p_t2s))·[t2s top-1 correct] + KL(p_T ‖ p_s2t))`` — every
term summed over tokens and divided by the example's number of student loss positions (DSKD's ``loss_denom``); the
``t2s`` cross-entropy also trains the projectors. Defaults (DSKD's ``dskd_cma`` scripts): ``kd_rate = 0.5``, ``T =
2.0``, forward KL, teacher temperature 1. The projectors are submodules (``query``: ``2d_S → 2d_T``, ``t2s``:
``d_T → d_S``, ``s2t``: ``d_S → d_T``, linear), so the optimiser and the checkpoint see them.

Deviation from DSKD: the ``std`` normalisations are taken per example over its loss positions (DSKD takes one
standard deviation over the whole padded batch tensor, padding included, so an example's loss depends on the other
examples of its batch and on the padding). Statistics: ``t2s_accuracy`` (the t2s logits' top-1 equals the
ground-truth next token) and ``top1_accuracy`` (the same: the t2s distribution is DSKD's teacher target).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..errors import InputError
from .base import (
    DIVERGENCES,
    DistillationLoss,
    LossOutput,
    check_positive,
    check_rate,
    cross_entropy,
    divergence,
    loss_mask,
)
from .data import IGNORE_INDEX


def masked_std(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, 1, 1)`` standard deviation (unbiased, as ``torch.std``) of each example's ``(L, D)`` values over its
    masked positions and all features (1 when it has fewer than two values)."""
    m = mask.to(values.dtype)[..., None]
    count = m.sum((1, 2)) * values.shape[-1]
    mean = (values * m).sum((1, 2)) / count.clamp_min(1)
    var = (((values - mean[:, None, None]) ** 2) * m).sum((1, 2)) / (count - 1).clamp_min(1)
    return torch.where(count > 1, var.sqrt(), torch.ones_like(var)).clamp_min(1e-12)[:, None, None]


def _dims(model_or_dim, name: str) -> int:
    if isinstance(model_or_dim, int) and model_or_dim > 0:
        return model_or_dim
    config = getattr(model_or_dim, "config", None)
    if config is not None:
        config = config.get_text_config() if hasattr(config, "get_text_config") else config
        if getattr(config, "hidden_size", None):
            return int(config.hidden_size)
    raise InputError(f"{name} must be the hidden size (a positive integer) or the model")


@dataclass
class CMAOutput:
    """What cross-model attention computes (see the module docstring); ``attention`` is ``A`` ``(B, Ls, Lt)``."""

    attention: torch.Tensor
    t2s_logits: torch.Tensor
    s2t_logits: torch.Tensor
    student_mask: torch.Tensor
    teacher_mask: torch.Tensor


class CrossModelAttention(nn.Module):
    """DSKD's projectors and cross-model attention."""

    def __init__(self, student_dim: int, teacher_dim: int):
        super().__init__()
        self.query = nn.Linear(2 * student_dim, 2 * teacher_dim)
        self.t2s = nn.Linear(teacher_dim, student_dim)
        self.s2t = nn.Linear(student_dim, teacher_dim)

    def forward(self, batch, student, teacher) -> CMAOutput:
        s_mask = loss_mask(batch.student_labels)
        t_mask = loss_mask(batch.teacher_labels)

        dtype = self.query.weight.dtype  # the projectors' dtype (float32 unless the loss was converted)

        def embed(outputs, ids, mask):
            return outputs.embed_tokens(torch.where(mask, ids, torch.zeros_like(ids))).detach().to(dtype)

        s_in = embed(student, batch.student_input_ids, s_mask)
        s_tgt = embed(student, batch.student_labels, s_mask)
        t_in = embed(teacher, batch.teacher_input_ids, t_mask)
        t_tgt = embed(teacher, batch.teacher_labels, t_mask)
        t_index = torch.cat([t_in, t_tgt], -1)
        t_hidden = teacher.hidden_states.to(dtype)
        key = t_index / masked_std(t_index, t_mask)
        value = self.t2s(t_hidden / masked_std(t_hidden, t_mask) + t_tgt / masked_std(t_tgt, t_mask))
        query = self.query(torch.cat([s_in, s_tgt], -1))
        scores = query @ key.transpose(-1, -2) / math.sqrt(2 * t_hidden.shape[-1])
        both = s_mask.float()[..., None] * t_mask.float()[:, None, :]
        scores = scores + (1.0 - both) * -1e5  # DSKD's additive mask: exactly zero weight after the softmax
        attention = torch.softmax(scores, -1)
        s_head = student.lm_head_weight.detach().to(dtype)
        t_head = teacher.lm_head_weight.detach().to(dtype)
        t2s_logits = (attention @ value) @ s_head.T
        s2t_hidden = self.s2t(student.hidden_states.to(dtype))
        s2t_logits = (torch.softmax(scores.transpose(-1, -2), -1) @ s2t_hidden) @ t_head.T
        return CMAOutput(attention, t2s_logits, s2t_logits, s_mask, t_mask)


class DSKDLoss(DistillationLoss):
    """DSKD with cross-model attention (terms ``ce``, ``t2s_ce``, ``t2s_kd``, ``s2t_kd``).

    Args:
        student_dim, teacher_dim: the hidden sizes, or the models themselves.
        kd_rate, temperature, objective, teacher_temperature, skew: DSKD's criterion options.
    """

    name: ClassVar[str] = "dskd"
    needs: ClassVar[frozenset[str]] = frozenset({"teacher", "hidden_states", "embeddings"})

    def __init__(self, student_dim=None, teacher_dim=None, *, student_model=None, teacher_model=None,
                 kd_rate: float = 0.5, temperature: float = 2.0, objective: str = "forward_kl",
                 teacher_temperature: float = 1.0, skew: float = 0.1, check_finite: bool = True, pair=None):
        super().__init__(check_finite=check_finite)
        if objective not in DIVERGENCES:
            raise InputError(f"objective must be one of {', '.join(DIVERGENCES)} (got {objective!r})")
        self.kd_rate = check_rate("kd_rate", kd_rate)
        self.temperature = check_positive("temperature", temperature)
        self.teacher_temperature = check_positive("teacher_temperature", teacher_temperature)
        self.skew = check_rate("skew", skew)
        self.objective = objective
        self.cma = CrossModelAttention(_dims(student_dim or student_model, "student_dim"),
                                       _dims(teacher_dim or teacher_model, "teacher_dim"))

    def kd_terms(self, batch, student, teacher, cma: CMAOutput):
        """DSKD's per-position pieces: ``(t2s_ce (B, Ls), t2s_kd (B, Ls), s2t_kd (B, Lt), t2s_correct (B, Ls),
        t2s log-probabilities at temperature 1)`` (every full-vocabulary softmax computed once)."""
        labels = batch.student_labels
        t2s_logp = torch.log_softmax(cma.t2s_logits, -1)
        t2s_ce = cross_entropy(cma.t2s_logits, labels, t2s_logp)
        t2s_correct = (cma.t2s_logits.detach().argmax(-1) == labels) & cma.student_mask
        T = self.temperature
        t2s_kd = divergence(self.objective, student_logp=torch.log_softmax(student.logits.float() / T, -1),
                            target_logp=torch.log_softmax(cma.t2s_logits.detach() / (T * self.teacher_temperature),
                                                          -1), skew=self.skew)
        V = cma.s2t_logits.shape[-1]
        s2t_kd = divergence("forward_kl", student_logp=torch.log_softmax(cma.s2t_logits / T, -1),
                            target_logp=torch.log_softmax(teacher.logits[..., :V].float() / T, -1))
        return t2s_ce, t2s_kd, s2t_kd, t2s_correct, t2s_logp

    def _checks(self, batch, student, teacher):
        s_mask = loss_mask(batch.student_labels)
        t_mask = loss_mask(batch.teacher_labels)
        self.finite(student.logits, s_mask, "student logits", "ce")
        self.finite(student.hidden_states, s_mask, "student hidden states", "s2t_kd")
        self.finite(teacher.logits, t_mask, "teacher logits", "s2t_kd")
        self.finite(teacher.hidden_states, t_mask, "teacher hidden states", "t2s_ce")
        return s_mask, t_mask

    def compute(self, batch, student, teacher) -> LossOutput:
        s_mask, t_mask = self._checks(batch, student, teacher)
        n = s_mask.sum(-1).clamp_min(1).float()
        cma = self.cma(batch, student, teacher)
        t2s_ce, t2s_kd, s2t_kd, correct, _ = self.kd_terms(batch, student, teacher, cma)
        ce = cross_entropy(student.logits, batch.student_labels).sum(-1) / n
        terms = {"ce": ce,
                 "t2s_ce": t2s_ce.sum(-1) / n,
                 "t2s_kd": torch.where(correct, t2s_kd, torch.zeros_like(t2s_kd)).sum(-1) / n,
                 "s2t_kd": torch.where(t_mask, s2t_kd, torch.zeros_like(s2t_kd)).sum(-1) / n}
        r = self.kd_rate
        hits = float(correct.sum())
        total = float(s_mask.sum())
        counts = {"t2s_accuracy": (hits, total), "top1_accuracy": (hits, total),
                  "top1_accuracy_teacher": (hits, total)}
        return self.finish(batch, terms, {"ce": 1 - r, "t2s_ce": r, "t2s_kd": r, "s2t_kd": r}, counts)


__all__ = ["IGNORE_INDEX", "CMAOutput", "CrossModelAttention", "DSKDLoss", "masked_std"]
