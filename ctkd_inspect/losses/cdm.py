"""``cdm``: Contextual Dynamic Mapping (Chen et al., Findings ACL 2025), batched (``research/methods.md`` §3).

**Alignment.** The input tokens at the loss positions of both sides (special tokens excluded) are aligned by
classic DTW with CDM's cost ``Lev(a, b)·f_teacher·f_student``: ``Lev`` over CDM's strings (each token decoded on
its own, spaces removed, in ``reference`` mode; canonical bytes otherwise; precomputed per example in the data
pipeline), ``f ∈ {3, 4, 5}`` from each side's min-max-scaled entropy of its own predictions at those positions
(:func:`~ctkd_inspect.engines.dtw_core.cdm_entropy_factors`; ``reference`` mode uses CDM's entropy with ``p +
1e-10`` and refuses a constant entropy — a one-token response — as the published code would compute garbage;
canonical gives every token 4). The path of every example comes from one call of the batched DTW kernel
(:mod:`ctkd_inspect.batch.dtw`).

**Groups and rows (position semantics).** As CDM's ``transform_step_logits_fast``: each student position ``j``
gets the mean of the logits of its DTW teachers; each distinct teacher→student list is a group, whose row is the
mean over its students of those teacher rows (teacher side) and of the students' own logits (student side). A
row therefore mixes predictions of different next tokens (SeDi's criticism), which is CDM's method.

**Mapping.** The top-K ids (K = 100) of each row, both sides, are mapped through CDM's context-aware dynamic
mapping (θ = 0.3) on top of the static exact mapping, in both directions (CDM's ``CDMKLD`` variant), each example
on its own (:func:`ctkd_inspect.vocab.cdm_slot_mapping`; ``reference`` mode: CDM's published mapper with its
matched-set subtraction).

**Loss.** Per row, the 2K slots of both directions form one distribution on each side: direction 1 pairs the
teacher's top-K logits (target) with the student's logits at their mapped ids (prediction), direction 2 the
teacher's logits at the mapped ids of the student's top-K (target) with those student logits (prediction);
unmapped slots are left out of both softmaxes. ``KD = KL(softmax(target/T) ‖ softmax(prediction/T))`` averaged over
an example's rows; ``loss = (1 − kd_rate)·CE + kd_rate·KD``. Defaults: ``K = 100``, ``θ = 0.3``, ``kd_rate = 0.5``
(the paper's α = 0.5; the code's default is 0.9), ``T = 0.8`` (the official script's ``kd_temperature``).

Deviations from the published code (documented in the README): batch size > 1 (every example's rows, path and
mapping are its own); the student side of the KD really comes from the student (one public copy gathers it from
the teacher tensor, so its KD term has no student gradient); in direction 2 the teacher is the target (the
``CDMKLD`` port puts the student's logits in the target slot, so its gradient also flows through the target);
unmapped slots are excluded instead of filled with −1e4 (which only adds a constant); the KL is the standard one
at temperature T (the published ``p_T·(T²·log p_T − log q)`` at a teacher temperature of 1 is not reproduced); the
dynamic pairs do not accumulate across training steps.

**Statistics:** ``alignment_rate`` (1:1 DTW rows with equal strings), ``topk_mapping_coverage`` (mapped slots of
both directions / 2·rows·K: CDM's logged coverage), ``onehot_fallback_rate`` (always 0: CDM has no one-hot
target), ``top1_accuracy`` (the teacher's top-1 of the row a position belongs to, mapped through the dynamic
mapping, equals the position's ground-truth next token; a position outside the DTW is a miss),
``top1_accuracy_teacher`` (the same over positions inside the DTW).
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
    entropy_from_logp,
    loss_mask,
    per_example_mean,
)


def entropy_of(logits: torch.Tensor, reference: bool, log_probs: torch.Tensor | None = None) -> torch.Tensor:
    """Per-position entropy (nats) of ``logits`` ``(..., V)``, float64. ``reference``: CDM's ``p + 1e-10``, computed
    in float64; canonical: the exact entropy in the logits' precision (from ``log_probs`` when given)."""
    if reference:
        log_p = torch.log_softmax(logits.detach().double(), -1)
        p = log_p.exp() + 1e-10
        return -(p * p.log()).sum(-1)
    if log_probs is None:
        log_probs = torch.log_softmax(logits.detach().float(), -1)
    return entropy_from_logp(log_probs).double()


def _expand_ranges(starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For inclusive ranges ``[starts[k], stops[k]]``: ``(owner k of every element, the element)``."""
    sizes = stops - starts + 1
    owner = np.repeat(np.arange(len(starts)), sizes)
    offsets = np.concatenate([[0], np.cumsum(sizes)])[:-1]
    return owner, starts[owner] + (np.arange(int(sizes.sum())) - offsets[owner])


class CDMLoss(DistillationLoss):
    """CDM's distillation loss (terms ``ce`` and ``kd``); see the module docstring.

    Args:
        pair: the :class:`~ctkd_inspect.losses.data.TokenizerPair` (its mode is the loss's mode).
        top_k: K of the dynamic mapping.
        threshold: θ.
        kd_rate, temperature: the mix and the KD temperature.
    """

    name: ClassVar[str] = "cdm"
    alignments: ClassVar[frozenset[str]] = frozenset({"cdm"})

    def __init__(self, pair=None, *, top_k: int = 100, threshold: float = 0.3, kd_rate: float = 0.5,
                 temperature: float = 0.8, check_finite: bool = True):
        super().__init__(check_finite=check_finite)
        if pair is None:
            raise InputError("the cdm loss needs pair= (a TokenizerPair): its dynamic mapping decodes both "
                             "vocabularies")
        if not isinstance(top_k, int) or top_k < 1:
            raise InputError(f"top_k must be a positive integer (got {top_k!r})")
        self.top_k = top_k
        self.threshold = check_rate("threshold", threshold)
        self.kd_rate = check_rate("kd_rate", kd_rate)
        self.temperature = check_positive("temperature", temperature)
        self.mode = pair.mode
        (self._t_decoded, self._s_decoded, self._t_coded, self._s_coded, self._static_t2s,
         self._static_s2t) = pair.cdm_tables()

    # -- the alignment --------------------------------------------------------------------------------------------

    def align(self, batch, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
              student_logp: torch.Tensor | None = None):
        """CDM's DTW paths: ``(live, paths)``, the examples with tokens on both sides and their
        :class:`~ctkd_inspect.batch.dtw.BatchedPaths`, from the models' entropies (``student_logp``: the student's
        log-softmax, when already computed) and the batch's precomputed costs."""
        from ..batch.dtw import dtw_paths
        from ..engines.dtw_core import cdm_entropy_factors

        reference = self.mode == "reference"
        t_index, s_index = batch.cdm_teacher_index, batch.cdm_student_index
        nt, ns = batch.cdm_teacher_lengths, batch.cdm_student_lengths
        t_entropy = entropy_of(teacher_logits, reference).gather(1, t_index.clamp_min(0)).cpu().numpy()
        s_entropy = entropy_of(student_logits, reference, student_logp).gather(1, s_index.clamp_min(0)).cpu().numpy()
        live = np.flatnonzero((nt > 0) & (ns > 0))
        try:
            f_t = cdm_entropy_factors(t_entropy[live], lengths=nt[live], guard_constant=not reference)
            f_s = cdm_entropy_factors(s_entropy[live], lengths=ns[live], guard_constant=not reference)
        except ValueError as exc:
            raise InputError(f"the cdm loss in reference mode: {exc} (batch example {_example_of(exc, live)}); the "
                             "canonical mode gives such tokens the middle factor 4") from None
        if len(live) == 0:
            return live, None
        cost = batch.cdm_cost[live] * f_t[:, :, None] * f_s[:, None, :]
        return live, dtw_paths(cost, nt[live], ns[live])

    def compute(self, batch, student, teacher) -> LossOutput:
        if batch.mode != self.mode:
            raise InputError(f"the batch was built in {batch.mode} mode but the cdm loss runs in {self.mode} mode; "
                             "use one TokenizerPair for both")
        labels = batch.student_labels
        mask = loss_mask(labels)
        device = student.logits.device
        self.finite(student.logits, mask, "student logits", "ce")
        self.finite(teacher.logits, loss_mask(batch.teacher_labels), "teacher logits", "kd")
        student_logp = torch.log_softmax(student.logits.float(), -1)
        ce = per_example_mean(cross_entropy(student.logits, labels, student_logp), mask)
        B, Ls, Vs = student.logits.shape
        Lt, Vt = teacher.logits.shape[1:]
        live, paths = self.align(batch, student.logits, teacher.logits, student_logp)
        kd = torch.zeros(B, device=device)
        n = float(mask.sum())
        counts = {"onehot_fallback_rate": (0.0, n)}
        if paths is None:
            counts.update(alignment_rate=(0.0, n), topk_mapping_coverage=(0.0, 0.0), top1_accuracy=(0.0, n),
                          top1_accuracy_teacher=(0.0, 0.0))
            return self.finish(batch, {"ce": ce, "kd": kd}, {"ce": 1 - self.kd_rate, "kd": self.kd_rate}, counts)

        groups, group_counts = paths.cdm_groups()
        _, _, s_first, s_last = paths.ranges()
        t_index = batch.cdm_teacher_index.cpu().numpy()
        s_index = batch.cdm_student_index.cpu().numpy()
        # every group row of the batch, example by example: (example, student first/last, teacher first/last)
        valid = np.arange(groups.shape[1])[None, :] < group_counts[:, None]
        row_example = np.repeat(live, group_counts)
        rows = groups[valid]  # (R, 4), local DTW indices
        R = len(rows)
        row_live = np.repeat(np.arange(len(live)), group_counts)
        segments = np.concatenate([[0], np.cumsum(group_counts)])

        # row weights as two sparse matrices over the flattened (B·L) positions
        s_owner, s_local = _expand_ranges(rows[:, 0], rows[:, 1])
        s_size = (rows[:, 1] - rows[:, 0] + 1).astype(np.float64)
        s_weight = 1.0 / s_size[s_owner]
        s_flat = row_example[s_owner] * Ls + s_index[row_example[s_owner], s_local]
        # teacher: each student of the group contributes the mean of its own DTW teachers
        first = s_first[row_live[s_owner], s_local]
        last = s_last[row_live[s_owner], s_local]
        pair_owner, t_local = _expand_ranges(first, last)
        t_weight = s_weight[pair_owner] / (last - first + 1)[pair_owner]
        t_rows = s_owner[pair_owner]
        t_flat = row_example[t_rows] * Lt + t_index[row_example[t_rows], t_local]

        def rows_of(logits, owners, flat, weights, length):
            index = torch.from_numpy(np.stack([owners, flat])).to(device)
            # the indices are built here and valid by construction: no invariant check needed
            matrix = torch.sparse_coo_tensor(index, torch.from_numpy(weights).to(device, logits.dtype),
                                             (R, B * length), check_invariants=False).coalesce()
            return torch.sparse.mm(matrix, logits.reshape(B * length, -1))

        z_t = rows_of(teacher.logits.float(), t_rows, t_flat, t_weight, Lt)  # (R, Vt), no gradient
        z_s = rows_of(student.logits.float(), s_owner, s_flat, s_weight, Ls)  # (R, Vs), differentiable
        K = min(self.top_k, z_t.shape[-1], z_s.shape[-1])
        t_top = torch.topk(z_t, K, dim=-1).indices
        s_top = torch.topk(z_s.detach(), K, dim=-1).indices
        from ..vocab import cdm_slot_mapping

        reference = self.mode == "reference"
        t2s, t_pairs = cdm_slot_mapping(t_top.cpu().numpy(), s_top.cpu().numpy(), segments, self._t_coded,
                                        self._s_coded, self._static_t2s, self.threshold, reference=reference,
                                        source_decoded=self._t_decoded, target_decoded=self._s_decoded)
        s2t, s_pairs = cdm_slot_mapping(s_top.cpu().numpy(), t_top.cpu().numpy(), segments, self._s_coded,
                                        self._t_coded, self._static_s2t, self.threshold, reference=reference,
                                        source_decoded=self._s_decoded, target_decoded=self._t_decoded)
        t2s = torch.from_numpy(np.where(t2s < Vs, t2s, -1)).to(device)
        s2t = torch.from_numpy(np.where(s2t < Vt, s2t, -1)).to(device)

        # the 2K slots: (target logit, prediction logit), unmapped ones left out of both softmaxes
        minus_inf = torch.tensor(-torch.inf, device=device)
        target = torch.cat([z_t.gather(1, t_top), z_t.gather(1, s2t.clamp_min(0))], 1)
        prediction = torch.cat([z_s.gather(1, t2s.clamp_min(0)), z_s.gather(1, s_top)], 1)
        present = torch.cat([t2s >= 0, s2t >= 0], 1)
        T = self.temperature
        target_logp = torch.log_softmax(torch.where(present, target / T, minus_inf), -1)
        prediction_logp = torch.log_softmax(torch.where(present, prediction / T, minus_inf), -1)
        p = target_logp.exp()
        row_kl = torch.where(present, p * (target_logp - prediction_logp), torch.zeros_like(p)).sum(-1)
        has_slot = present.any(-1)
        row_kl = torch.where(has_slot, row_kl, torch.zeros_like(row_kl))
        example_t = torch.from_numpy(row_example).to(device)
        kd_sum = torch.zeros(B, device=device).index_add(0, example_t, row_kl)
        row_count = torch.zeros(B, device=device).index_add(0, example_t, has_slot.float())
        kd = kd_sum / row_count.clamp_min(1)

        # statistics, over every student position inside a DTW (example k of `live`, local index j)
        labels_np = labels.cpu().numpy()
        m = batch.cdm_student_lengths[live]
        k_of, j_of = _expand_ranges(np.zeros(len(live), np.int64), m - 1)
        big = int(rows[:, 1].max(initial=0)) + 2
        # the first group whose student range reaches j holds j (groups are ordered along the path)
        owner = np.searchsorted(row_live * big + rows[:, 1], k_of * big + j_of, side="left")
        example = live[k_of]
        top1 = t2s[:, 0].cpu().numpy()
        hits = int((top1[owner] == labels_np[example, s_index[example, j_of]]).sum())
        dp_positions = len(j_of)
        single = s_first[k_of, j_of] == s_last[k_of, j_of]
        aligned_equal = int((single & (batch.cdm_cost[example, s_first[k_of, j_of], j_of] == 0)).sum())
        mapped = float((t2s >= 0).sum() + (s2t >= 0).sum())
        counts["alignment_rate"] = (float(aligned_equal), n)
        counts["topk_mapping_coverage"] = (mapped, float(2 * R * K))
        counts["top1_accuracy"] = (float(hits), n)
        counts["top1_accuracy_teacher"] = (float(hits), float(dp_positions))
        counts["dynamic_pairs"] = (float(t_pairs + s_pairs), float(len(live)))
        return self.finish(batch, {"ce": ce, "kd": kd}, {"ce": 1 - self.kd_rate, "kd": self.kd_rate}, counts)


def _example_of(exc: ValueError, live: np.ndarray) -> int:
    import re

    found = re.search(r"row (\d+)", str(exc))
    return int(live[int(found.group(1))]) if found and len(live) else -1
