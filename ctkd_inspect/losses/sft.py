"""``sft``: plain next-token cross-entropy on the response — the baseline every distillation method adds to.

Position semantics: the logits at student position ``t`` are scored against ``labels[t] = input_ids[t + 1]`` at
the loss positions (the last prompt token to the last response token, see :mod:`ctkd_inspect.losses.data`).
Needs no teacher. Statistics: none.
"""

from __future__ import annotations

from typing import ClassVar

from .base import DistillationLoss, LossOutput, cross_entropy, loss_mask, per_example_mean


class SFTLoss(DistillationLoss):
    """Cross-entropy only (term ``ce``, weight 1)."""

    name: ClassVar[str] = "sft"
    needs: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, check_finite: bool = True, pair=None):
        super().__init__(check_finite=check_finite)

    def compute(self, batch, student, teacher=None) -> LossOutput:
        mask = loss_mask(batch.student_labels)
        self.finite(student.logits, mask, "student logits", "ce")
        ce = per_example_mean(cross_entropy(student.logits, batch.student_labels), mask)
        return self.finish(batch, {"ce": ce}, {"ce": 1.0})
