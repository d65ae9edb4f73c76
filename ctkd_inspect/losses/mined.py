"""``mined``: DSKD's on-the-fly MinED distillation (``min_edit_dis_kld.py``), the baseline SeDi and DWA-KD compare
against (``research/methods.md`` §2.3).

**Position semantics.** The DTW aligns the *input* tokens at the loss positions of both sides (MinED's
marker-stripped Levenshtein cost in ``reference`` mode, canonical bytes in ``canonical`` mode; computed once per
example in the data pipeline with the batched DTW kernel). Student position ``t`` keeps the teacher's distribution
of teacher position ``u`` (both predict the token after the aligned pair) when all three of DSKD's conditions
hold: ``t``'s DTW row holds exactly one teacher token ``u``; ``tea2stu[teacher id at u] == student id at t`` (the
vocabulary mapping); the projected row has a finite entry. Every other loss position gets a one-hot target on its
ground-truth next token ``labels[t]``.

**Projection.** The teacher's logits are carried into the student vocabulary through DSKD's inverse of
``tea2stu`` with ``max_align_num = 1``: each student id takes the logit of the *first* (lowest) teacher id that maps
to it; student ids no teacher id maps to are impossible (DSKD writes −1e5; here −∞, the same distribution).

**Loss.** ``(1 − kd_rate)·CE + kd_rate·KL(target ‖ student)``, both at temperature ``T`` (DSKD's
``compute_forward_kl_divergence``, no ``T²``), per token. Defaults (DSKD's ``minedit`` scripts): ``kd_rate = 0.5``,
``T = 2.0``, the MinED vocabulary mapping of the pair (FuseLLM's ``vocab_mapping.py`` in ``reference`` mode,
canonical bytes otherwise; ``vocab_mapping="exact"`` or a :class:`~ctkd_inspect.vocab.VocabMapping` instead).

Deviations from DSKD: the DTW runs in the data pipeline (compiled, batched) instead of a per-sample Python loop
in every forward pass; special tokens take no part in the DTW (their positions fall back to one-hot); positions
outside the response are masked instead of given the student's own logits (the same zero contribution).

**Statistics** (``LossOutput.counts``): ``alignment_rate`` (1:1 DTW rows with equal strings), ``onehot_fallback_
rate`` (SeDi's Table 1: 35 % for LLaMA2→GPT2 on Dolly), ``topk_mapping_coverage`` (share of the teacher's top-K ids
at kept positions that the projection keeps), ``top1_accuracy`` / ``top1_accuracy_teacher``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
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
    per_example_mean,
)


def dskd_inverse(teacher_to_student: np.ndarray, student_vocab: int) -> np.ndarray:
    """DSKD's ``stu2tea`` with ``max_align_num = 1``: for every student id the first (lowest) teacher id mapped to
    it, ``-1`` when none is.

    >>> dskd_inverse(np.array([2, -1, 2, 0]), 3).tolist()
    [3, -1, 0]
    """
    t2s = np.asarray(teacher_to_student, dtype=np.int64)
    out = np.full(student_vocab, -1, np.int64)
    mapped = np.flatnonzero((t2s >= 0) & (t2s < student_vocab))
    # assign in reverse so that the lowest teacher id is written last and wins
    out[t2s[mapped[::-1]]] = mapped[::-1]
    return out


class MinEDLoss(DistillationLoss):
    """DSKD's MinED KD (terms ``ce`` and ``kd``); see the module docstring.

    Args:
        pair: the :class:`~ctkd_inspect.losses.data.TokenizerPair` (needed unless ``vocab_mapping`` is a mapping).
        vocab_mapping: ``"mined"`` (default), ``"exact"``, or a :class:`~ctkd_inspect.vocab.VocabMapping`.
        kd_rate, temperature: the mix and the KD temperature.
        statistics_k: the K of ``topk_mapping_coverage``.
    """

    name: ClassVar[str] = "mined"
    alignments: ClassVar[frozenset[str]] = frozenset({"mined"})

    def __init__(self, pair=None, *, vocab_mapping="mined", kd_rate: float = 0.5, temperature: float = 2.0,
                 statistics_k: int = 100, check_finite: bool = True):
        super().__init__(check_finite=check_finite)
        self.kd_rate = check_rate("kd_rate", kd_rate)
        self.temperature = check_positive("temperature", temperature)
        if not isinstance(statistics_k, int) or statistics_k < 1:
            raise InputError(f"statistics_k must be a positive integer (got {statistics_k!r})")
        self.statistics_k = statistics_k
        if isinstance(vocab_mapping, str):
            if pair is None:
                raise InputError("the mined loss needs pair= (a TokenizerPair) to build its vocabulary mapping, or "
                                 "vocab_mapping= a VocabMapping")
            mapping = pair.vocab_mapping(vocab_mapping)
            student_vocab = pair.student_vocab_size
        else:
            mapping = vocab_mapping
            student_vocab = len(mapping.student_to_teacher)
        t2s = np.asarray(mapping.teacher_to_student, dtype=np.int64)
        # buffers follow the module to the device; derived data, so they stay out of the checkpoint
        self.register_buffer("tea2stu", torch.from_numpy(t2s), persistent=False)
        self.register_buffer("stu2tea", torch.from_numpy(dskd_inverse(t2s, student_vocab)), persistent=False)

    def compute(self, batch, student, teacher) -> LossOutput:
        labels = batch.student_labels
        mask = loss_mask(labels)
        self.finite(student.logits, mask, "student logits", "ce")
        ce = per_example_mean(cross_entropy(student.logits, labels), mask)

        aligned = batch.mined_teacher  # (B, Ls) teacher position or -1
        teacher_ids = gather_positions(batch.teacher_input_ids, aligned)
        t2s = self.tea2stu
        mapped = torch.where(teacher_ids < len(t2s), t2s[teacher_ids.clamp(0, len(t2s) - 1)], -1)
        keep = mask & (aligned >= 0) & (mapped == batch.student_input_ids)
        stu2tea = self.stu2tea
        V = student.logits.shape[-1]
        columns = torch.full((V,), -1, dtype=torch.long, device=stu2tea.device)
        columns[:min(V, len(stu2tea))] = stu2tea[:V]
        has_column = columns >= 0
        keep = keep & bool(has_column.any())  # DSKD's third condition: a finite entry in the projected row

        T = self.temperature
        student_logp = torch.log_softmax(student.logits.float() / T, -1)
        kd_pos = -student_logp.gather(-1, torch.where(mask, labels, 0).unsqueeze(-1)).squeeze(-1)  # one-hot
        counts = {}
        k_kept = int(keep.sum())
        hits_teacher = 0
        covered, slots = 0.0, 0.0
        if k_kept:
            rows = teacher.logits[keep.nonzero(as_tuple=True)[0], aligned[keep]]  # (N, V_T)
            self.finite(rows, None, "teacher logits", "kd")
            projected = torch.where(has_column, rows.float()[:, columns.clamp_min(0)],
                                    torch.full((1,), -torch.inf, device=rows.device))
            target_logp = torch.log_softmax(projected / T, -1)
            p = target_logp.exp()
            kl = torch.where(p > 0, p * (target_logp - student_logp[keep]), torch.zeros_like(p)).sum(-1)
            kd_pos = kd_pos.masked_scatter(keep, kl)
            hits_teacher = int((projected.argmax(-1) == labels[keep]).sum())
            top = torch.topk(rows, min(self.statistics_k, rows.shape[-1]), dim=-1).indices
            image = torch.where(top < len(t2s), t2s[top.clamp(max=len(t2s) - 1)], -1)
            back = torch.where((image >= 0) & (image < len(stu2tea)), stu2tea[image.clamp(0, len(stu2tea) - 1)], -1)
            covered, slots = float((back == top).sum()), float(top.numel())
        kd = per_example_mean(torch.where(mask, kd_pos, torch.zeros_like(kd_pos)), mask)
        n = float(mask.sum())
        fallback = n - k_kept
        counts["alignment_rate"] = (float((batch.mined_match & mask).sum()), n)
        counts["onehot_fallback_rate"] = (fallback, n)
        counts["topk_mapping_coverage"] = (covered, slots)
        counts["top1_accuracy"] = (fallback + hits_teacher, n)  # a one-hot target's top-1 is the ground truth
        counts["top1_accuracy_teacher"] = (float(hits_teacher), float(k_kept))
        return self.finish(batch, {"ce": ce, "kd": kd}, {"ce": 1 - self.kd_rate, "kd": self.kd_rate}, counts)
