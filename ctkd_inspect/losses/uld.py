"""``uld``: Universal Logit Distillation (Boizard et al., TMLR 2025): a closed-form 1-D Wasserstein distance between
the two models' *sorted* next-token distributions, which needs no vocabulary mapping.

Two groupings of the positions:

- ``grouping="position"`` (ULD as DSKD re-implements it, ``universal_logit_distillation.py``): the ``k``-th
  student loss position is paired with the ``k``-th teacher loss position (both sides left-aligned at their first
  response prediction), for ``k`` below the shorter count; no token alignment at all, so differently segmented
  responses drift apart. Per pair, ``Σ_v |sort(p_S)_v − sort(p_T)_v|`` with the smaller vocabulary padded with
  zeros, summed over pairs. Loss ``(1 − kd_rate)·CE + kd_rate·ULD`` (DSKD's script: ``kd_rate = 0.5``, no
  temperature).
- ``grouping="gold"`` (TRL GOLD's ``ULDLoss`` with ``use_extended_uld``): the target tokens of both sides are
  grouped where the two tokenizations share a boundary (GOLD walks byte offsets; here the span engine's components
  of the target tokens, identical except that GOLD may split inside one character when both tokenizers split its
  bytes at the same place); a group predicted at positions ``t_0 … t_k`` gets the distribution
  ``p_{t_0}(y)·Π_{i≥1} p_{t_i}(label[t_i])`` (the marginal of its first prediction times the probabilities of the
  group's actual later tokens: the chain rule for the real continuation), per side; the sorted L1 distance is
  averaged over the example's groups. GOLD's defaults: distillation weight 1, cross-entropy weight 0, both
  temperatures 1, the EOS group skipped.

Deviation from GOLD: GOLD multiplies ``p_{t_i}`` evaluated at the token *at* ``t_i`` (its own input token, one
position early: an off-by-one); here at ``labels[t_i]``, the token ``p_{t_i}`` predicts. GOLD averages its
per-example values over the batch with equal weights; here every example's value is divided by its number of
loss positions and weighted by it (the reduction of :mod:`ctkd_inspect.losses.base`), so the batch value weighs
examples by length. Statistics (gold): ``alignment_rate`` (loss positions whose target is alone in a 1:1 group).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from ..errors import InputError
from .base import (
    DistillationLoss,
    LossOutput,
    check_positive,
    check_rate,
    cross_entropy,
    gather_positions,
    loss_mask,
    response_positions,
)

GROUPINGS = ("position", "gold")


def sorted_l1(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``Σ_v |sort(p)_v − sort(q)_v|`` (descending sorts, the shorter vocabulary padded with zeros), per row."""
    a = p.sort(-1, descending=True).values
    b = q.sort(-1, descending=True).values
    width = max(a.shape[-1], b.shape[-1])
    a = torch.nn.functional.pad(a, (0, width - a.shape[-1]))
    b = torch.nn.functional.pad(b, (0, width - b.shape[-1]))
    return (a - b).abs().sum(-1)


class ULDLoss(DistillationLoss):
    """ULD (terms ``ce`` and ``uld``); see the module docstring.

    Args:
        grouping: ``"position"`` (ULD/DSKD) or ``"gold"`` (TRL GOLD's byte-offset groups).
        ce_weight, distill_weight: default ``0.5, 0.5`` (position) or ``0, 1`` (gold).
        student_temperature, teacher_temperature: of the two softmaxes (1, 1).
        skip_eos: leave out the group of the two EOS targets (gold; GOLD's default).
    """

    name: ClassVar[str] = "uld"

    def __init__(self, pair=None, *, grouping: str = "position", ce_weight: float | None = None,
                 distill_weight: float | None = None, student_temperature: float = 1.0,
                 teacher_temperature: float = 1.0, skip_eos: bool = True, check_finite: bool = True):
        super().__init__(check_finite=check_finite)
        if grouping not in GROUPINGS:
            raise InputError(f"grouping must be one of {', '.join(GROUPINGS)} (got {grouping!r})")
        self.grouping = grouping
        default_ce, default_distill = (0.5, 0.5) if grouping == "position" else (0.0, 1.0)
        self.ce_weight = check_rate("ce_weight", default_ce if ce_weight is None else ce_weight, 0.0, float("inf"))
        self.distill_weight = check_rate("distill_weight", default_distill if distill_weight is None
                                         else distill_weight, 0.0, float("inf"))
        self.student_temperature = check_positive("student_temperature", student_temperature)
        self.teacher_temperature = check_positive("teacher_temperature", teacher_temperature)
        self.skip_eos = bool(skip_eos)
        if grouping == "gold":
            self.alignments = frozenset({"span"})

    def compute(self, batch, student, teacher) -> LossOutput:
        labels = batch.student_labels
        s_mask = loss_mask(labels)
        t_mask = loss_mask(batch.teacher_labels)
        self.finite(student.logits, s_mask, "student logits", "ce")
        self.finite(teacher.logits, t_mask, "teacher logits", "uld")
        n = s_mask.sum(-1).clamp_min(1).float()
        ce = cross_entropy(student.logits, labels).sum(-1) / n
        counts = {}
        if self.grouping == "position":
            uld = self._by_position(batch, student, teacher) / n
        else:
            uld, counts = self._by_groups(batch, student, teacher)
        return self.finish(batch, {"ce": ce, "uld": uld}, {"ce": self.ce_weight, "uld": self.distill_weight},
                           counts)

    def _by_position(self, batch, student, teacher) -> torch.Tensor:
        s_pos, s_len = response_positions(batch.student_labels)
        t_pos, t_len = response_positions(batch.teacher_labels)
        width = min(s_pos.shape[1], t_pos.shape[1])
        s_pos, t_pos = s_pos[:, :width], t_pos[:, :width]
        both = torch.arange(width, device=s_len.device)[None, :] < torch.minimum(s_len, t_len)[:, None]
        p = torch.softmax(gather_positions(student.logits.float(), s_pos) / self.student_temperature, -1)
        q = torch.softmax(gather_positions(teacher.logits.float(), t_pos) / self.teacher_temperature, -1)
        return torch.where(both, sorted_l1(p, q), torch.zeros(1, device=p.device)).sum(-1)

    @staticmethod
    def merged(logits: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor, count: int, temperature: float):
        """GOLD's merged distribution of every group: ``(B, G, V)`` and whether the group exists ``(B, G)``."""
        B, L, _ = logits.shape
        in_group = groups >= 0
        index = groups.clamp_min(0)
        positions = torch.arange(L, device=logits.device).expand(B, L)
        first = torch.full((B, count), L, dtype=torch.long, device=logits.device)
        first = first.scatter_reduce(1, index, torch.where(in_group, positions, L), reduce="amin")
        exists = first < L
        log_p = torch.log_softmax(logits.float() / temperature, -1)
        chosen = log_p.gather(-1, torch.where(in_group, labels, 0).unsqueeze(-1)).squeeze(-1)
        later = in_group & (positions != first.gather(1, index))
        later_sum = torch.zeros(B, count, device=logits.device).scatter_add(1, index, torch.where(later, chosen, 0.0))
        marginal = gather_positions(log_p, first.clamp(max=L - 1)).exp()
        return marginal * later_sum.exp()[..., None], exists

    def _by_groups(self, batch, student, teacher):
        s_groups, t_groups = batch.gold_student_group, batch.gold_teacher_group
        if self.skip_eos:
            eos = batch.gold_eos_group[:, :1]
            s_groups = torch.where((s_groups == eos) & (eos >= 0), -1, s_groups)
            t_groups = torch.where((t_groups == eos) & (eos >= 0), -1, t_groups)
        count = int(max(s_groups.max(), t_groups.max(), -1)) + 1
        B = len(s_groups)
        if count == 0:
            zero = torch.zeros(B, device=s_groups.device)
            return zero, {"alignment_rate": (0.0, float(loss_mask(batch.student_labels).sum()))}
        p, p_exists = self.merged(student.logits, batch.student_labels, s_groups, count, self.student_temperature)
        q, q_exists = self.merged(teacher.logits, batch.teacher_labels, t_groups, count, self.teacher_temperature)
        both = p_exists & q_exists
        per_group = torch.where(both, sorted_l1(p, q), torch.zeros(1, device=p.device))
        uld = per_group.sum(-1) / both.sum(-1).clamp_min(1)
        sizes_s = torch.zeros(B, count, device=p.device).scatter_add(1, s_groups.clamp_min(0),
                                                                     (s_groups >= 0).float())
        sizes_t = torch.zeros(B, count, device=p.device).scatter_add(1, t_groups.clamp_min(0),
                                                                     (t_groups >= 0).float())
        one_to_one = (sizes_s == 1) & (sizes_t == 1) & both
        counts = {"alignment_rate": (float(one_to_one.sum()), float(loss_mask(batch.student_labels).sum()))}
        return uld, counts
