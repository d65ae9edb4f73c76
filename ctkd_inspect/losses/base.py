"""What every distillation loss shares: the interface, the output type, divergences, masks and checks.

**Interface.** A loss is a ``torch.nn.Module`` called as ``loss(batch, student, teacher)`` with a collated
:class:`~ctkd_inspect.losses.data.DistillationBatch` and each model's :class:`ModelOutputs` (logits, and the final
hidden states and embedding table when the loss declares it needs them: :attr:`DistillationLoss.needs`). It owns
its trainable parts (projectors, scalings) as submodules, so ``loss.parameters()`` gives them to the optimiser and
``loss.state_dict()`` to the checkpoint. :meth:`DistillationLoss.step` runs the models itself (the teacher in
``eval`` mode under ``no_grad``); teacher outputs given to ``forward`` are detached, so no gradient ever reaches
the teacher.

**Reduction.** Every term is computed per example: a per-token term as its mean over the example's loss
positions, a per-sequence term (Soft-DTW divergences) divided by the example's number of loss positions. The
example's loss ``ℓ_b`` is the weighted sum of its terms; the batch loss is ``Σ_b n_b·ℓ_b / Σ_b n_b`` (``n_b`` the
example's student loss positions): the sum over all tokens divided by the batch's token count, as DSKD's trainer
does (``loss_denom``), while ``per_example`` stays independent of the other examples of the batch (the
batch-invariance the tests check). An example without loss positions weighs 0.

**Statistics.** Each loss reports, per batch, the statistics the papers compare methods by, computed from the
targets it really builds, as exact ``(numerator, denominator)`` counts (so that batches aggregate exactly):
``alignment_rate``, ``topk_mapping_coverage``, ``onehot_fallback_rate``, ``top1_accuracy`` (the target's top-1
equals the student's ground-truth next token, over all loss positions: a one-hot target counts as a hit, a position
without a target as a miss — SeDi's Top-1) and ``top1_accuracy_teacher`` (the same over positions whose target
comes from the teacher).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from ..errors import InputError, ModelError
from .data import IGNORE_INDEX, DistillationBatch

__all__ = ["DistillationLoss", "LossOutput", "ModelOutputs", "NonFiniteError", "divergence"]


class NonFiniteError(InputError):
    """A loss input or term holds NaN or infinite values; the message names the loss and the term."""


@dataclass
class ModelOutputs:
    """What a loss reads from one model's forward pass.

    Attributes:
        logits: ``(B, L, V)``; position ``t`` predicts token ``t + 1``.
        hidden_states: ``(B, L, D)`` final hidden states (the LM head's input), when asked for.
        embed_tokens: the model's input embedding module (``model.get_input_embeddings()``), when asked for.
        lm_head_weight: ``(V, D)`` the LM head's weight, when asked for.
    """

    logits: torch.Tensor
    hidden_states: torch.Tensor | None = None
    embed_tokens: nn.Module | None = None
    lm_head_weight: torch.Tensor | None = None

    @classmethod
    def from_model(cls, model, input_ids, attention_mask, *, hidden_states: bool = False,
                   embeddings: bool = False) -> ModelOutputs:
        """Run ``model`` (a transformers causal LM) and keep what a loss needs."""
        out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=hidden_states)
        head = model.get_output_embeddings() if embeddings else None
        return cls(out.logits, out.hidden_states[-1] if hidden_states else None,
                   model.get_input_embeddings() if embeddings else None,
                   head.weight if head is not None else None)

    def detached(self) -> ModelOutputs:
        """A copy whose tensors carry no gradient (for the teacher)."""
        return ModelOutputs(self.logits.detach(), None if self.hidden_states is None else self.hidden_states.detach(),
                            self.embed_tokens,
                            None if self.lm_head_weight is None else self.lm_head_weight.detach())


@dataclass
class LossOutput:
    """One batch's loss, its terms and statistics.

    Attributes:
        loss: the scalar to minimise (differentiable).
        per_example: ``(B,)`` each example's loss (differentiable; 0 for an example without loss positions).
        positions: ``(B,)`` each example's number of student loss positions (the reduction weights).
        terms: named terms, each ``(B,)`` per example, unweighted (as the loss adds them before its weights).
        weights: the weight of each term in ``per_example``.
        counts: statistic name → ``(numerator, denominator)`` over the batch.
    """

    loss: torch.Tensor
    per_example: torch.Tensor
    positions: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    counts: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def statistics(self) -> dict[str, float | None]:
        """Each statistic as a ratio (``None`` when its denominator is 0)."""
        return {k: (n / d if d else None) for k, (n, d) in self.counts.items()}

    def term_values(self) -> dict[str, float]:
        """Each term reduced over the batch like the loss (token-weighted mean of the per-example values)."""
        total = float(self.positions.sum())
        if total == 0:
            return {k: 0.0 for k in self.terms}
        return {k: float((v.detach() * self.positions).sum()) / total for k, v in self.terms.items()}

    def scalars(self) -> dict[str, float]:
        """Everything a trainer logs, as floats: ``loss``, ``term/<name>``, ``stat/<name>`` (statistics with a
        zero denominator are left out)."""
        out = {"loss": float(self.loss.detach())}
        out.update({f"term/{k}": v for k, v in self.term_values().items()})
        out.update({f"stat/{k}": v for k, v in self.statistics.items() if v is not None})
        return out


# ---------------------------------------------------------------------------------------------------------------
# divergences (DSKD's criterion family, per position, with temperature)


DIVERGENCES = ("forward_kl", "reverse_kl", "skewed_forward_kl", "skewed_reverse_kl", "js")


def _log_mixture(log_p: torch.Tensor, log_q: torch.Tensor, weight: float) -> torch.Tensor:
    """``log(weight·p + (1 − weight)·q)`` from log-probabilities (a weight of 0 or 1 picks one side)."""
    if weight <= 0:
        return log_q
    if weight >= 1:
        return log_p
    return torch.logaddexp(log_p + math.log(weight), log_q + math.log(1 - weight))


def divergence(kind: str, student_logits: torch.Tensor | None = None, teacher_logits: torch.Tensor | None = None,
               *, temperature: float = 1.0, teacher_temperature: float = 1.0, skew: float = 0.1,
               student_logp: torch.Tensor | None = None, target_logp: torch.Tensor | None = None) -> torch.Tensor:
    """Per-position divergence between a student and a target distribution over the same vocabulary (``(..., V)``
    logits → ``(...)``), as DSKD's ``VariousDivergence`` defines them: both logits divided by ``temperature``, the
    target's also by ``teacher_temperature``; no ``T²`` factor.

    - ``forward_kl``: ``KL(p_T ‖ p_S)``; ``reverse_kl``: ``KL(p_S ‖ p_T)``;
    - ``skewed_forward_kl``: ``KL(p_T ‖ λ·p_T + (1 − λ)·p_S)``; ``skewed_reverse_kl``: ``KL(p_S ‖ (1 − λ)·p_T +
      λ·p_S)`` (λ = ``skew``; DWA-KD uses the latter with 0.1);
    - ``js``: ``½·KL(p_T ‖ m) + ½·KL(p_S ‖ m)``, ``m = (p_T + p_S)/2``.

    ``student_logp`` / ``target_logp`` may be given instead of the logits: the log-probabilities already at the
    temperature (a loss that needs them elsewhere computes them once). Logits must be finite. Every divergence is
    one fused ``kl_div`` over the vocabulary (the full-vocabulary passes dominate a loss's cost).
    """
    from torch.nn import functional

    log_q = student_logp if student_logp is not None else torch.log_softmax(student_logits.float() / temperature, -1)
    log_p = target_logp if target_logp is not None else torch.log_softmax(
        teacher_logits.float() / (temperature * teacher_temperature), -1)

    def kl(log_a, log_b):  # KL(a ‖ b) from log-probabilities
        return functional.kl_div(log_b, log_a, reduction="none", log_target=True).sum(-1)

    if kind == "forward_kl":
        return kl(log_p, log_q)
    if kind == "reverse_kl":
        return kl(log_q, log_p)
    # mixtures in log space: log(a·p + b·q) = logaddexp(log a + log p, log b + log q), one fused pass instead of
    # two exponentials, a sum and a logarithm
    if kind in ("skewed_forward_kl", "skewed_reverse_kl"):
        reverse = kind == "skewed_reverse_kl"
        weight = (1 - skew) if reverse else skew  # the mixture's weight on the target
        if 0 < weight < 1 and not log_p.requires_grad:
            from .rowwise import skewed_kl

            return skewed_kl(log_q, log_p, skew, reverse=reverse)  # the same value, a few rows at a time
        mixture = _log_mixture(log_p, log_q, weight)
        return kl(log_q, mixture) if reverse else kl(log_p, mixture)
    if kind == "js":
        m = _log_mixture(log_p, log_q, 0.5)
        return 0.5 * kl(log_p, m) + 0.5 * kl(log_q, m)
    raise InputError(f"unknown divergence {kind!r}; use one of {', '.join(DIVERGENCES)}")


# ---------------------------------------------------------------------------------------------------------------
# the base class


class DistillationLoss(nn.Module):
    """Base of every loss (see the module docstring).

    Class attributes:
        name: the registry name.
        needs: what the loss reads from the model outputs: a subset of ``{"teacher", "hidden_states",
            "embeddings"}`` (logits are always read; ``teacher``: it needs the teacher at all).
        alignments: the per-example alignments the batch must carry (:data:`~ctkd_inspect.losses.data.ALIGNMENTS`).
        defaults: the paper defaults of the constructor's options (documented per loss).
    """

    name: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset({"teacher"})
    alignments: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, check_finite: bool = True):
        super().__init__()
        self.check_finite = check_finite

    # -- running the models -------------------------------------------------------------------------------------

    def model_outputs(self, batch: DistillationBatch, student_model, teacher_model=None
                      ) -> tuple[ModelOutputs, ModelOutputs | None]:
        """Run the student (with gradient) and, when the loss needs it, the teacher (``eval``, ``no_grad``)."""
        hidden = "hidden_states" in self.needs
        embeddings = "embeddings" in self.needs
        self._check_model("student", student_model, batch.student_input_ids, batch.student_vocab_size)
        if "teacher" in self.needs and teacher_model is not None:
            self._check_model("teacher", teacher_model, batch.teacher_input_ids, batch.teacher_vocab_size)
        student = ModelOutputs.from_model(student_model, batch.student_input_ids, batch.student_attention_mask,
                                          hidden_states=hidden, embeddings=embeddings)
        teacher = None
        if "teacher" in self.needs:
            if teacher_model is None:
                raise InputError(f"the {self.name} loss needs a teacher model (teacher_model=)")
            was_training = teacher_model.training
            teacher_model.eval()
            with torch.no_grad():
                teacher = ModelOutputs.from_model(teacher_model, batch.teacher_input_ids,
                                                  batch.teacher_attention_mask, hidden_states=hidden,
                                                  embeddings=embeddings)
            teacher_model.train(was_training)
        return student, teacher

    def step(self, batch: DistillationBatch, student_model, teacher_model=None) -> LossOutput:
        """Forward passes of the models, then the loss: what one training step computes before ``backward()``."""
        student, teacher = self.model_outputs(batch, student_model, teacher_model)
        return self(batch, student, teacher)

    def forward(self, batch: DistillationBatch, student: ModelOutputs, teacher: ModelOutputs | None = None
                ) -> LossOutput:
        self._check_inputs(batch, student, teacher)
        if teacher is not None:
            teacher = teacher.detached()
        return self.compute(batch, student, teacher)

    def compute(self, batch: DistillationBatch, student: ModelOutputs, teacher: ModelOutputs | None) -> LossOutput:
        raise NotImplementedError

    # -- checks ------------------------------------------------------------------------------------------------

    def _check_inputs(self, batch: DistillationBatch, student: ModelOutputs, teacher: ModelOutputs | None) -> None:
        missing = [a for a in self.alignments if not _has_alignment(batch, a)]
        if missing:
            raise InputError(f"the {self.name} loss needs the {', '.join(missing)} alignment(s) in the batch: build "
                             f"the examples with PairBuilder(alignments=...) including {', '.join(missing)}")
        if "teacher" in self.needs and teacher is None:
            raise InputError(f"the {self.name} loss needs the teacher's outputs")
        self._check_side("student", student, batch.student_input_ids, batch.student_vocab_size)
        if teacher is not None:
            self._check_side("teacher", teacher, batch.teacher_input_ids, batch.teacher_vocab_size)
        needs_hidden = "hidden_states" in self.needs
        needs_embeddings = "embeddings" in self.needs
        for side, outputs in (("student", student), ("teacher", teacher)):
            if outputs is None:
                continue
            if needs_hidden and outputs.hidden_states is None:
                raise InputError(f"the {self.name} loss needs the {side}'s final hidden states (run the model with "
                                 "output_hidden_states=True, or use loss.step())")
            if needs_embeddings and (outputs.embed_tokens is None or outputs.lm_head_weight is None):
                raise InputError(f"the {self.name} loss needs the {side}'s embedding table and LM head weight "
                                 "(ModelOutputs.from_model(..., embeddings=True), or use loss.step())")

    def _check_model(self, side: str, model, input_ids: torch.Tensor, vocab_size: int | None) -> None:
        """Refuse a model whose embedding table cannot hold the tokenizer's ids, before its forward pass."""
        embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
        rows = getattr(embeddings, "num_embeddings", None)
        if rows is None:
            return
        top = int(input_ids.max()) if input_ids.numel() else 0
        if (vocab_size is not None and rows < vocab_size) or top >= rows:
            raise ModelError(f"the {side} model has {rows} embedding rows but the {side} tokenizer has "
                             f"{vocab_size if vocab_size is not None else top + 1} ids: the model does not belong to "
                             "the tokenizer; pass the model trained with it")

    def _check_side(self, side: str, outputs: ModelOutputs, input_ids: torch.Tensor, vocab_size: int | None) -> None:
        logits = outputs.logits
        if logits.dim() != 3 or tuple(logits.shape[:2]) != tuple(input_ids.shape):
            raise InputError(f"the {self.name} loss: the {side} logits have shape {tuple(logits.shape)}, but the "
                             f"batch's {side} inputs are {tuple(input_ids.shape)} (batch, length): give the outputs "
                             f"of the {side} model on this batch")
        size = logits.shape[-1]
        if vocab_size is not None and size < vocab_size:
            raise ModelError(f"the {side} model predicts {size} tokens but the {side} tokenizer has {vocab_size}: "
                             "the model does not belong to the tokenizer; pass the model trained with it")
        top = int(input_ids.max()) if input_ids.numel() else 0
        if top >= size:
            raise ModelError(f"the {side} token ids go up to {top} but the {side} model predicts {size} tokens: the "
                             "model does not belong to the tokenizer")

    def finite(self, tensor: torch.Tensor, mask: torch.Tensor | None, what: str, term: str) -> None:
        """Raise :class:`NonFiniteError` when ``tensor`` holds NaN/inf where ``mask`` (``(B, L)``) is set."""
        if not self.check_finite:
            return
        values = tensor.detach()
        # one reduction instead of an elementwise test of the whole tensor: NaN and ±inf survive a sum (finite
        # logits cannot overflow one)
        depth = mask.dim() if mask is not None else 1
        while values.dim() > depth:
            values = values.float().sum(-1)
        bad = ~torch.isfinite(values)
        if mask is not None:
            bad = bad & mask.bool()
        if bool(bad.any()):
            where = torch.nonzero(bad)[0].tolist()
            raise NonFiniteError(f"the {self.name} loss cannot compute its {term!r} term: the {what} hold NaN or "
                                 f"infinite values ({int(bad.sum())} positions, first at example {where[0]}"
                                 f"{', position ' + str(where[1]) if len(where) > 1 else ''}); the model has "
                                 "probably diverged: lower the learning rate or check the inputs")

    # -- assembling ----------------------------------------------------------------------------------------------

    def finish(self, batch: DistillationBatch, terms: Mapping[str, torch.Tensor], weights: Mapping[str, float],
               counts: Mapping[str, tuple[float, float]] | None = None) -> LossOutput:
        """Combine per-example terms ``(B,)`` with their weights into a :class:`LossOutput` (see the module
        docstring), after checking every term is finite (the error names the term)."""
        positions = (batch.student_labels != IGNORE_INDEX).sum(-1)
        device = batch.student_labels.device
        per_example = torch.zeros(len(batch), device=device)
        for name, value in terms.items():
            if self.check_finite and not bool(torch.isfinite(value.detach()).all()):
                raise NonFiniteError(f"the {self.name} loss's {name!r} term is NaN or infinite (examples "
                                     f"{torch.nonzero(~torch.isfinite(value.detach())).view(-1).tolist()}); check "
                                     "the model outputs (a diverged model) and the inputs")
            if weights.get(name, 0.0):
                per_example = per_example + weights[name] * value.float()
        has = positions > 0
        per_example = torch.where(has, per_example, torch.zeros_like(per_example))
        total = positions.sum()
        # an empty batch still returns a differentiable zero, so a training loop needs no special case
        loss = per_example.sum() * 0.0 if int(total) == 0 else (per_example * positions).sum() / total
        return LossOutput(loss, per_example, positions, dict(terms), dict(weights), dict(counts or {}))


def _has_alignment(batch: DistillationBatch, name: str) -> bool:
    key = {"mined": "mined_teacher", "cdm": "cdm_teacher_index", "span": "sedi_query"}[name]
    return batch.has(key)


def loss_mask(labels: torch.Tensor) -> torch.Tensor:
    """``(B, L)`` bool: the loss positions (``labels != -100``)."""
    return labels != IGNORE_INDEX


def per_example_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, L)`` values → ``(B,)`` mean over each example's masked positions (0 when it has none)."""
    mask = mask.to(values.dtype)
    count = mask.sum(-1)
    return (values * mask).sum(-1) / count.clamp_min(1)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, log_probs: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """``(B, L)`` next-token cross-entropy at the loss positions (0 elsewhere); from ``log_probs`` (the logits'
    log-softmax) when the caller has them already."""
    if log_probs is None:
        from torch.nn import functional

        B, L, V = logits.shape
        return functional.cross_entropy(logits.float().reshape(B * L, V), labels.reshape(B * L),
                                        ignore_index=IGNORE_INDEX, reduction="none").view(B, L)
    mask = loss_mask(labels)
    nll = -log_probs.gather(-1, torch.where(mask, labels, 0).unsqueeze(-1)).squeeze(-1)
    return torch.where(mask, nll, torch.zeros_like(nll))


def entropy_from_logp(log_probs: torch.Tensor) -> torch.Tensor:
    """``−Σ p·log p`` over the last axis, from log-probabilities (no gradient; a few rows at a time, see
    :mod:`~ctkd_inspect.losses.rowwise`)."""
    from .rowwise import entropy_from_logp as rowwise_entropy

    return rowwise_entropy(log_probs)


def check_rate(name: str, value: float, low: float = 0.0, high: float = 1.0) -> float:
    """A finite weight in ``[low, high]``, or an :class:`InputError` naming the option."""
    if not isinstance(value, (int, float)) or not math.isfinite(float(value)) or not low <= float(value) <= high:
        raise InputError(f"{name} must be a number in [{low}, {high}] (got {value!r})")
    return float(value)


def check_positive(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or not math.isfinite(float(value)) or float(value) <= 0:
        raise InputError(f"{name} must be a finite number > 0 (got {value!r})")
    return float(value)


def gather_positions(values: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``values[b, positions[b, k]]`` for ``values`` ``(B, L, ...)`` and ``positions`` ``(B, K)`` (``-1`` reads
    position 0; mask the result yourself)."""
    index = positions.clamp_min(0)
    if values.dim() == 2:
        return values.gather(1, index)
    expanded = index.view(*index.shape, *([1] * (values.dim() - 2))).expand(*index.shape, *values.shape[2:])
    return values.gather(1, expanded)


def response_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss positions of every example packed to the front: ``(positions (B, R), lengths (B,))``, positions in
    increasing order and ``-1`` padded (``R`` the largest count). With labels ``[-100, -100, -100, 5, 6, -100]``
    the positions are ``[3, 4]``."""
    mask = loss_mask(labels)
    lengths = mask.sum(-1)
    R = max(int(lengths.max()) if lengths.numel() else 0, 1)
    order = torch.argsort((~mask).to(torch.int8), dim=-1, stable=True)[:, :R]
    keep = torch.arange(R, device=labels.device)[None, :] < lengths[:, None]
    return torch.where(keep, order, torch.full_like(order, -1)), lengths
