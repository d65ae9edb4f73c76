"""The statistics the CTKD papers compare methods by, for a data set and two real models, without training.

:func:`target_statistics` runs both models (no gradient) over a data set and lets each method build its targets
exactly as its loss does in training (the same :mod:`ctkd_inspect.losses` modules), then aggregates, over every
student loss position of the data set, the counts the losses report: ``alignment_rate``,
``topk_mapping_coverage``, ``onehot_fallback_rate`` and ``top1_accuracy`` (SeDi's Top-1: the target's top-1 equals
the student's ground-truth next token; a one-hot target counts as a hit, a position without a target as a miss) and
``top1_accuracy_teacher`` (over the positions whose target comes from the teacher). With the small real models
(Gemma-3-270M → SmolLM2-135M by default) users can compare the methods on their data before they train.

Methods with statistics from their targets: ``mined``, ``cdm``, ``sedi`` (and ``uld`` with GOLD groups:
alignment rate only). DSKD and DWA-KD build their targets with trained projectors, so their statistics only mean
something during training (their losses report ``t2s_accuracy``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..errors import InputError

STATISTIC_METHODS = ("mined", "cdm", "sedi")
STATISTICS = ("alignment_rate", "topk_mapping_coverage", "onehot_fallback_rate", "top1_accuracy",
              "top1_accuracy_teacher")


def _pairs(data) -> list[tuple[str, str]]:
    """(prompt, response) pairs from pairs, plain texts (the whole text is the response), chats (message lists)
    or :class:`ctkd_inspect.data.TextRecord` objects (split at ``response_start``)."""
    from .data import format_chat

    out = []
    for k, item in enumerate(data):
        if isinstance(item, str):
            out.append(("", item))
        elif isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(x, str) for x in item):
            out.append((item[0], item[1]))
        elif isinstance(item, list) and item and all(isinstance(m, dict) for m in item):
            out.append(format_chat(item))
        elif hasattr(item, "text") and hasattr(item, "response_start"):
            start = item.response_start or 0
            out.append((item.text[:start], item.text[start:]))
        else:
            raise InputError(f"data item {k}: give a text, a (prompt, response) pair or a chat (list of messages)")
    return out


def target_statistics(data: Iterable, teacher: str = "gemma3", student: str = "smollm2", *,
                      methods: Sequence[str] = STATISTIC_METHODS, teacher_model: str | None = None,
                      student_model: str | None = None, mode: str = "canonical", max_length: int = 128,
                      batch_size: int = 2, vocab_mapping: str = "mined", top_k: int = 100,
                      cache_dir: str | None = None) -> dict:
    """Each method's target statistics over ``data`` (see the module docstring).

    Args:
        data: texts, (prompt, response) pairs, chats, or :class:`ctkd_inspect.data.TextRecord` objects.
        teacher, student: tokenizer names (aliases, paths, hub ids).
        methods: any of ``mined``, ``cdm``, ``sedi``.
        teacher_model, student_model: model names (default: the tokenizer names, i.e. the aliases' models).
        mode: ``canonical`` or ``reference`` (the engines' modes).
        max_length: tokens per side per example (longer responses are cut at one character for both sides).
        batch_size: examples per forward pass.
        vocab_mapping: MinED's vocabulary mapping, ``mined`` (the paper's; computed once and cached) or ``exact``.
        top_k: K of CDM's and SeDi's candidates and of MinED's coverage.

    Returns:
        ``{"teacher", "student", "teacher_model", "student_model", "mode", "examples", "positions",
        "methods": {method: {statistic: value or None}}, "counts": {method: {statistic: [numerator,
        denominator]}}}``.

    Raises:
        InputError: an unknown method, no data, bad options. ModelError: a model that cannot be loaded or does not
        belong to its tokenizer. MissingExtraError: torch is not installed.
    """
    from ..extras import require

    unknown = [m for m in methods if m not in STATISTIC_METHODS]
    if unknown or not methods:
        raise InputError(f"methods must be chosen from {', '.join(STATISTIC_METHODS)} (got {list(methods)})")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer (got {batch_size!r})")
    require("models", "target statistics (model forward passes)")
    pairs = _pairs(data)
    if not pairs:
        raise InputError("no examples to compute statistics on")

    import torch

    from ..progress import stage
    from ..signals import check_signals_input, load_model, resolve_model
    from . import get_loss
    from .base import ModelOutputs
    from .data import Collator, PairBuilder, TokenizerPair

    pair = TokenizerPair(teacher, student, mode=mode)
    alignments = {"mined": "mined", "cdm": "cdm", "sedi": "span"}
    builder = PairBuilder(pair, max_length=max_length, alignments=sorted({alignments[m] for m in methods}))
    examples = builder.build_many(pairs)
    teacher_model = teacher_model or teacher
    student_model = student_model or student
    # both models checked against their tokenizers before either forward pass
    check_signals_input(teacher_model, examples[0].teacher_ids, tokenizer=pair.teacher, cache_dir=cache_dir,
                        use_disk_cache=False)
    check_signals_input(student_model, examples[0].student_ids, tokenizer=pair.student, cache_dir=cache_dir,
                        use_disk_cache=False)
    t_net = load_model(resolve_model(teacher_model, cache_dir=cache_dir))
    s_net = load_model(resolve_model(student_model, cache_dir=cache_dir))
    options = {"mined": {"vocab_mapping": vocab_mapping, "statistics_k": top_k}, "cdm": {"top_k": top_k},
               "sedi": {"top_k": top_k, "window": builder.window}}
    losses = {m: get_loss(m, pair=pair, **options[m]) for m in methods}
    counts = {m: {} for m in methods}
    collate = Collator(builder)
    positions = 0
    with stage("target statistics", total=len(examples), unit="texts") as bar, torch.no_grad():
        for start in range(0, len(examples), batch_size):
            chunk = examples[start:start + batch_size]
            batch = collate(chunk)
            student_out = ModelOutputs.from_model(s_net, batch.student_input_ids, batch.student_attention_mask)
            teacher_out = ModelOutputs.from_model(t_net, batch.teacher_input_ids, batch.teacher_attention_mask)
            positions += int((batch.student_labels != -100).sum())
            for method, loss in losses.items():
                out = loss(batch, student_out, teacher_out)
                for key, (numerator, denominator) in out.counts.items():
                    total = counts[method].setdefault(key, [0.0, 0.0])
                    total[0] += numerator
                    total[1] += denominator
            bar.advance(len(chunk))
    return {"teacher": teacher, "student": student, "teacher_model": teacher_model, "student_model": student_model,
            "mode": mode, "examples": len(examples), "positions": positions,
            "methods": {m: {k: (n / d if d else None) for k, (n, d) in counts[m].items() if k in STATISTICS}
                        for m in methods},
            "counts": counts}
