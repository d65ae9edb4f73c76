"""``sedi``: SeDi (Wang et al., AAAI 2026, "Bridging the Tokenizer Gap"): span groups, sliding-window re-encoding
of the teacher's top-K candidates into the student vocabulary, and entropy alignment (``research/methods.md`` §4).

**Alignment.** SeDi's bipartite span components of the whole sequence (the span engine's kernel, computed once per
example in the data pipeline), and over them SeDi's sliding windows (see
:func:`~ctkd_inspect.losses.data.sedi_windows`): for group ``g`` and the next group ``h``, when
``h`` has more than one teacher token the prefix is the text of ``h``'s teacher tokens but the last and ``q* =
t_{h,Q−2}``; otherwise there is no prefix and ``q* = t_{g,Q−1}``.

**Position semantics.** The teacher's logits at ``q*`` predict the token after ``q*``; each of its top-K
candidates ``v_j`` (probability ``p_j``) becomes the text ``w_j = prefix + decode_T(v_j)``, re-encoded with the
student tokenizer as a continuation (no special tokens, no dummy prefix) into ``ṽ_j``. ``p_j`` is written at
student position ``s_{g,R−1}`` (the last student token of ``g``, which predicts the first student token of what
follows), column ``ṽ_j[0]``, and at ``s_{h,l−1}``, column ``ṽ_j[l]``, for ``l = 1 … min(R_h − 1, |ṽ_j| − 1)``: the
student's own positions inside the next group, each predicting the next piece of the candidate. Nothing is
averaged.

**Choices where the paper is silent** (documented in the README):

- *values*: ``p_j`` is the teacher's probability (softmax of the full row at temperature ``T``), and the
  pseudo-logit of a column is the log of the summed probabilities of the candidates written there;
- *collisions* (many candidates share ``ṽ_j[0]``, e.g. " cats", " cows" → "▁c"): summed, i.e. the log-sum-exp of
  their logits — the student token gets the teacher's whole probability of continuing with it;
- *fill value*: a column no candidate writes gets the smallest probability of the teacher's row at ``q*`` (the
  teacher's floor, in logit terms its minimum logit): the pseudo target is a full distribution over the student
  vocabulary, exactly the teacher's on the written columns, so its entropy can be compared with the teacher's
  (with −∞ the entropy of a K-column target could never exceed log K);
- *last group*: it has no next group; its last student position is written from its last teacher token's top-K
  (the teacher's EOS maps to the student's EOS);
- *rows that receive nothing* (no candidate encodes to a long enough ``ṽ_j``, a position beyond the window, a
  token in no matched group): a one-hot target on the ground-truth next token, as MinED's fallback — counted in
  ``onehot_fallback_rate``;
- candidates whose bytes are not valid UTF-8 with their prefix (byte fragments) write nothing;
- ``Ada`` is one learnable scale per student vocabulary entry, initialised at 0 (the pseudo distribution starts
  as the teacher's), applied to the student's *detached* logits: ``z_pseudo = z̃ + Ada ⊙ sg(z_student)`` on the
  written columns; it is trained by both the KL and the entropy term;
- the KL is forward, ``KL(p_pseudo ‖ p_student)``; the entropy term compares ``H(p_pseudo)`` with the entropy of the
  teacher's full row at ``q*``, over the rows with a pseudo target, summed and divided by the number of loss
  positions (the paper's ``1/L_S``); the temperature is 1.

**Loss.** ``λ·CE + (1 − λ)·(KL + L_entropy)`` with λ = 0.5, K = 100 (paper defaults).

**Cost.** Windows without a prefix (most of them) read their candidates' encodings from a table of the whole
teacher vocabulary, built once per pair (:meth:`~ctkd_inspect.losses.data.TokenizerPair.reencoding_table`): a
gather on the device. Windows with a prefix need ``prefix + candidate`` encoded: one batched call of the Rust
tokenizer per step on the CPU, memoised per string (SeDi's paper notes the same CPU cost and the same cache).

**Statistics:** ``alignment_rate`` (student loss positions whose input token is in an exact 1:1 span group),
``topk_mapping_coverage`` (share of the windows' top-K candidates with a student encoding),
``onehot_fallback_rate`` (rows that receive nothing), ``top1_accuracy`` (the pseudo target's top-1 equals the
ground-truth next token; SeDi reports 95.27 for LLaMA2→GPT2 on Dolly), ``top1_accuracy_teacher``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

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
from .data import DEFAULT_WINDOW


@dataclass
class PseudoTargets:
    """SeDi's pseudo-probability targets in sparse form: the cell ``(rows[i], cols[i])`` (``rows`` flat over
    ``(B, Ls)``, ``b·Ls + position``; ``cols`` student ids) holds ``sums[i]``, the summed probability of the
    candidates written there, sorted by row then column, one entry per cell; every other cell is 0 (not written).
    ``window_of_row`` ``(B, Ls)``: the window that wrote each row (``-1``); ``teacher_entropy`` and ``floor``
    ``(B, G)``: the entropy and the smallest log-probability of the teacher's row at each window's ``q*``;
    ``covered``: the ``(numerator, denominator)`` of the top-K coverage."""

    rows: torch.Tensor
    cols: torch.Tensor
    sums: torch.Tensor
    window_of_row: torch.Tensor
    teacher_entropy: torch.Tensor
    floor: torch.Tensor
    covered: tuple[float, float]

    def top1(self, n_rows: int) -> torch.Tensor:
        """Per flat row, the column holding the most probability (the smallest such column on a tie; 0 for a row
        nothing was written into)."""
        device = self.sums.device
        best = torch.zeros(n_rows, device=device).scatter_reduce(0, self.rows, self.sums, "amax", include_self=False)
        at_best = self.sums == best[self.rows]
        top = torch.full((n_rows,), torch.iinfo(torch.long).max, dtype=torch.long, device=device)
        top = top.scatter_reduce(0, self.rows[at_best], self.cols[at_best], "amin")
        return torch.where(top == torch.iinfo(torch.long).max, 0, top)


class SeDiLoss(DistillationLoss):
    """SeDi's loss (terms ``ce``, ``kl``, ``entropy``); see the module docstring.

    Args:
        pair: the :class:`~ctkd_inspect.losses.data.TokenizerPair`.
        top_k: K candidates per window.
        ce_weight: λ.
        temperature: of the teacher's candidate probabilities and of the student in the KL.
        window: the most student positions one candidate writes (must match the
            :class:`~ctkd_inspect.losses.data.PairBuilder`'s).
    """

    name: ClassVar[str] = "sedi"
    alignments: ClassVar[frozenset[str]] = frozenset({"span"})

    def __init__(self, pair=None, *, top_k: int = 100, ce_weight: float = 0.5, temperature: float = 1.0,
                 window: int = DEFAULT_WINDOW, check_finite: bool = True):
        super().__init__(check_finite=check_finite)
        if pair is None:
            raise InputError("the sedi loss needs pair= (a TokenizerPair): it re-encodes teacher candidates with the "
                             "student tokenizer")
        if not isinstance(top_k, int) or top_k < 1:
            raise InputError(f"top_k must be a positive integer (got {top_k!r})")
        self.top_k = top_k
        self.ce_weight = check_rate("ce_weight", ce_weight)
        self.temperature = check_positive("temperature", temperature)
        self.window = window
        self.pair = pair
        ids, lengths = pair.reencoding_table(window)
        self.register_buffer("table_ids", torch.from_numpy(ids), persistent=False)
        self.register_buffer("table_lengths", torch.from_numpy(lengths), persistent=False)
        # SeDi's Ada: a learnable element-wise scaling of the (detached) student logits inside the pseudo target
        self.ada = nn.Parameter(torch.zeros(pair.student_vocab_size))
        self._teacher_bytes = pair.teacher_token_bytes

    def _encodings(self, batch, candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, G, K, W)`` student ids and ``(B, G, K)`` lengths of every window's candidates."""
        ids = candidates.clamp(0, len(self.table_ids) - 1)
        inside = candidates < len(self.table_ids)
        enc = torch.where(inside[..., None], self.table_ids[ids], -1)
        lengths = torch.where(inside, self.table_lengths[ids], 0)
        with_prefix = (batch.sedi_prefix >= 0).nonzero()
        if len(with_prefix):
            # windows with a prefix: prefix + candidate re-encoded on the CPU, in one batched call (memoised)
            where = with_prefix.cpu().numpy()
            prefix_index = batch.sedi_prefix[with_prefix[:, 0], with_prefix[:, 1]].cpu().numpy()
            chosen = candidates[with_prefix[:, 0], with_prefix[:, 1]].cpu().numpy()  # (N, K)
            texts, slots = [], []
            raw = self._teacher_bytes
            for n, ((b, _), p) in enumerate(zip(where.tolist(), prefix_index.tolist())):
                prefix = batch.prefixes[b][p]
                for k, v in enumerate(chosen[n].tolist()):
                    data = raw[v] if v < len(raw) else None
                    if data is not None:
                        texts.append(prefix + data)
                        slots.append((n, k))
            sub_ids = torch.full((len(where), chosen.shape[1], self.window), -1, dtype=torch.long)
            sub_len = torch.zeros((len(where), chosen.shape[1]), dtype=torch.long)
            if texts:
                got, got_len = self.pair.encode_continuations(texts, self.window)
                rows = torch.as_tensor(slots, dtype=torch.long)
                sub_ids[rows[:, 0], rows[:, 1]] = torch.from_numpy(got)
                sub_len[rows[:, 0], rows[:, 1]] = torch.from_numpy(got_len)
            enc[with_prefix[:, 0], with_prefix[:, 1]] = sub_ids.to(enc.device)
            lengths[with_prefix[:, 0], with_prefix[:, 1]] = sub_len.to(lengths.device)
        return enc, lengths

    def targets(self, batch, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> PseudoTargets:
        """The pseudo-probability rows SeDi builds, as the written cells only (see :class:`PseudoTargets`): a row
        writes at most K candidates into a vocabulary of tens of thousands, so the dense ``(B, Ls, V_S)`` form
        would be almost all zeros."""
        B, Ls, Vs = student_logits.shape
        device = student_logits.device
        q = batch.sedi_query
        W = batch.sedi_rows.shape[-1] if batch.sedi_rows.dim() == 3 else self.window
        if self.window != W:
            raise InputError(f"the batch's SeDi windows are {W} positions wide but the loss was built with "
                             f"window={self.window}; use the same window for PairBuilder and the loss")
        live = q >= 0
        window_of_row = torch.full((B, Ls), -1, dtype=torch.long, device=device)
        G = q.shape[1]
        if G == 0 or not bool(live.any()):
            zeros = torch.zeros(B, G, device=device)
            empty = torch.zeros(0, dtype=torch.long, device=device)
            return PseudoTargets(empty, empty, torch.zeros(0, device=device), window_of_row, zeros, zeros, (0.0, 0.0))
        rows_t = gather_positions(teacher_logits, q).float() / self.temperature  # (B, G, Vt)
        log_p = torch.log_softmax(rows_t, -1)
        teacher_entropy = -(log_p.exp() * log_p).sum(-1)
        floor = log_p.min(-1).values
        K = min(self.top_k, rows_t.shape[-1])
        top = torch.topk(log_p, K, dim=-1)
        candidates, probs = top.indices, top.values.exp()  # (B, G, K)
        enc, lengths = self._encodings(batch, candidates)
        rows = batch.sedi_rows  # (B, G, W)
        l_index = torch.arange(W, device=device)
        target_rows = rows[:, :, None, :].expand(B, G, K, W)
        valid = (live[:, :, None, None] & (target_rows >= 0) & (l_index < lengths[..., None]) & (enc >= 0)
                 & (enc < Vs))
        b_index = torch.arange(B, device=device).view(B, 1, 1, 1).expand_as(valid)
        values = probs[..., None].expand_as(valid)[valid].float()
        # candidates written into the same cell are summed (the collisions rule): one sum per distinct cell
        cells = (b_index[valid] * Ls + target_rows[valid]) * Vs + enc[valid]
        cells, slot = torch.unique(cells, sorted=True, return_inverse=True)
        sums = torch.zeros(len(cells), device=device).index_add_(0, slot, values)
        written = valid.any(2)  # (B, G, W): the window wrote that row
        g_index = torch.arange(G, device=device).view(1, G, 1).expand(B, G, W)
        window_of_row[b_index[:, :, 0, :][written], rows[written]] = g_index[written]
        covered = (float((live[..., None] & (lengths > 0)).sum()), float(live.sum()) * K)
        return PseudoTargets(torch.div(cells, Vs, rounding_mode="floor"), cells % Vs, sums, window_of_row,
                             teacher_entropy, floor, covered)

    def compute(self, batch, student, teacher) -> LossOutput:
        labels = batch.student_labels
        mask = loss_mask(labels)
        self.finite(student.logits, mask, "student logits", "ce")
        self.finite(gather_positions(teacher.logits, batch.sedi_query).float(), batch.sedi_query >= 0,
                    "teacher logits", "kl")
        z_s = student.logits.float()
        student_logp = torch.log_softmax(z_s / self.temperature, -1)
        ce = per_example_mean(cross_entropy(student.logits, labels, student_logp if self.temperature == 1 else None),
                              mask)
        pseudo = self.targets(batch, student.logits, teacher.logits)
        B, Ls, V = z_s.shape
        flat_mask = mask.reshape(-1)
        # a row has a pseudo target when some candidate wrote a positive probability into it
        positive = pseudo.sums > 0
        has_target = torch.zeros(B * Ls, dtype=torch.bool, device=z_s.device)
        has_target[pseudo.rows[positive]] = True
        has_target &= flat_mask
        chosen = torch.nonzero(has_target).view(-1)  # the rows the KL and entropy terms are computed on
        position = torch.full((B * Ls,), -1, dtype=torch.long, device=z_s.device)
        position[chosen] = torch.arange(len(chosen), device=z_s.device)
        row_window = pseudo.window_of_row.clamp_min(0)
        floor = pseudo.floor
        row_floor = (floor.gather(1, row_window) if floor.shape[1] else torch.zeros_like(z_s[..., 0])).reshape(-1)
        ada = torch.zeros(V, device=z_s.device, dtype=z_s.dtype)
        ada = torch.cat([self.ada[:V], ada[len(self.ada):]]) if len(self.ada) < V else self.ada[:V]
        # the pseudo logits of the chosen rows: the log of a written column's summed probability (never below the
        # teacher row's floor), the floor on the others (log 0 = −inf, clamped), plus Ada's share
        chosen_floor = row_floor[chosen]
        teacher_part = chosen_floor[:, None].expand(len(chosen), V).clone()
        cell = positive & has_target[pseudo.rows]
        at = position[pseudo.rows[cell]]
        teacher_part[at, pseudo.cols[cell]] = torch.maximum(pseudo.sums[cell].log(), chosen_floor[at])
        pseudo_logp = torch.log_softmax(torch.addcmul(teacher_part, ada, z_s.detach().reshape(-1, V)[chosen]), -1)
        from torch.nn import functional

        kl_chosen = functional.kl_div(student_logp.reshape(-1, V)[chosen], pseudo_logp, reduction="none",
                                      log_target=True).sum(-1)
        onehot = -student_logp.gather(-1, torch.where(mask, labels, 0).unsqueeze(-1)).squeeze(-1).reshape(-1)
        kl_pos = onehot.index_put((chosen,), kl_chosen).view(B, Ls)
        kl = per_example_mean(torch.where(mask, kl_pos, torch.zeros_like(kl_pos)), mask)
        pseudo_entropy = -(pseudo_logp.exp() * pseudo_logp).sum(-1)
        teacher_entropy = pseudo.teacher_entropy
        t_entropy = (teacher_entropy.gather(1, row_window) if teacher_entropy.shape[1] else
                     torch.zeros_like(z_s[..., 0])).reshape(-1)
        gap = torch.zeros(B * Ls, device=z_s.device).index_put((chosen,), (pseudo_entropy - t_entropy[chosen]) ** 2)
        entropy = per_example_mean(gap.view(B, Ls), mask)
        has_target = has_target.view(B, Ls)
        top1 = pseudo.top1(B * Ls).view(B, Ls)  # the column with the most teacher probability

        n = float(mask.sum())
        targets = float(has_target.sum())
        fallback = n - targets
        hits = float((has_target & (top1 == labels)).sum())
        counts = {"alignment_rate": (float((batch.span_exact & mask).sum()), n),
                  "topk_mapping_coverage": pseudo.covered,
                  "onehot_fallback_rate": (fallback, n),
                  "top1_accuracy": (hits + fallback, n),
                  "top1_accuracy_teacher": (hits, targets)}
        weight = 1 - self.ce_weight
        return self.finish(batch, {"ce": ce, "kl": kl, "entropy": entropy},
                           {"ce": self.ce_weight, "kl": weight, "entropy": weight}, counts)
