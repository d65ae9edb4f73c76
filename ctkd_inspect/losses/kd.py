"""``kd``: same-tokenizer knowledge distillation (Hinton et al.), the reference point of the cross-tokenizer
methods: DSKD's ``various_divergence`` criterion with its vanilla-KD defaults.

Position semantics: teacher and student read the same tokens, so student position ``t`` is compared with teacher
position ``t``; both predict token ``t + 1``. Loss: ``(1 − kd_rate)·CE + kd_rate·D(p_S, p_T)`` at the loss
positions, ``D`` one of :data:`~ctkd_inspect.losses.base.DIVERGENCES` at temperature ``T`` (no ``T²`` factor, as
DSKD). Defaults (DSKD's ``vanilla_kd`` scripts): ``kd_rate = 0.5``, ``temperature = 2.0``, forward KL.

Raises :class:`~ctkd_inspect.errors.InputError` when the two sides are not tokenized alike (use a cross-tokenizer
loss then). Statistics: ``top1_accuracy`` (the teacher's top-1 equals the ground-truth next token).
"""

from __future__ import annotations

from typing import ClassVar

import torch

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
    per_example_mean,
)


class KDLoss(DistillationLoss):
    """Same-tokenizer KD (terms ``ce`` and ``kd``)."""

    name: ClassVar[str] = "kd"

    def __init__(self, *, kd_rate: float = 0.5, temperature: float = 2.0, objective: str = "forward_kl",
                 teacher_temperature: float = 1.0, skew: float = 0.1, check_finite: bool = True,
                 pair=None):
        super().__init__(check_finite=check_finite)
        if objective not in DIVERGENCES:
            raise InputError(f"objective must be one of {', '.join(DIVERGENCES)} (got {objective!r})")
        self.kd_rate = check_rate("kd_rate", kd_rate)
        self.temperature = check_positive("temperature", temperature)
        self.teacher_temperature = check_positive("teacher_temperature", teacher_temperature)
        self.skew = check_rate("skew", skew)
        self.objective = objective

    def compute(self, batch, student, teacher) -> LossOutput:
        if (batch.student_input_ids.shape != batch.teacher_input_ids.shape
                or not torch.equal(batch.student_input_ids, batch.teacher_input_ids)):
            raise InputError("the kd loss needs the same tokenization on both sides (one tokenizer); for two "
                             "tokenizers use a cross-tokenizer loss (mined, cdm, sedi, dskd, dwa, uld)")
        mask = loss_mask(batch.student_labels)
        self.finite(student.logits, mask, "student logits", "ce")
        self.finite(teacher.logits, mask, "teacher logits", "kd")
        vocab = min(student.logits.shape[-1], teacher.logits.shape[-1])  # padded embedding rows differ by model
        ce = per_example_mean(cross_entropy(student.logits, batch.student_labels), mask)
        kd_pos = divergence(self.objective, student.logits[..., :vocab], teacher.logits[..., :vocab],
                            temperature=self.temperature, teacher_temperature=self.teacher_temperature,
                            skew=self.skew)
        kd = per_example_mean(kd_pos, mask)
        labels = batch.student_labels
        hits = (teacher.logits[..., :vocab].argmax(-1) == labels) & mask
        counts = {"top1_accuracy": (float(hits.sum()), float(mask.sum())),
                  "top1_accuracy_teacher": (float(hits.sum()), float(mask.sum()))}
        return self.finish(batch, {"ce": ce, "kd": kd}, {"ce": 1 - self.kd_rate, "kd": self.kd_rate}, counts)
