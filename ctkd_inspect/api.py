"""The Python entry points: :func:`align` and :func:`load_tokenizer`."""

from __future__ import annotations

from .alignment import Alignment
from .engines.base import get_engine
from .errors import EngineError, InputError
from .sources import load_tokenizer
from .text import Tokenization, tokenize

__all__ = ["align", "load_tokenizer", "tokenize_pair"]


def _tokenizer_of(side):
    if isinstance(side, Tokenization):
        return None
    if isinstance(side, str):
        return load_tokenizer(side)
    return side


def _as_tokenization(side, tokenizer, text: str, add_special_tokens: bool) -> Tokenization:
    if isinstance(side, Tokenization):
        if side.text != text:
            raise InputError("a pre-computed Tokenization was passed for a different text")
        return side
    return tokenize(tokenizer, text, name=side if isinstance(side, str) else None,
                    add_special_tokens=add_special_tokens)


def tokenize_pair(teacher, student, text: str, *, add_special_tokens: bool = True
                  ) -> tuple[Tokenization, Tokenization]:
    """Tokenize one text with both tokenizers (names, tokenizer objects or ready Tokenizations)."""
    if not isinstance(text, str):
        raise InputError(f"text must be a str, got {type(text).__name__}")
    return (_as_tokenization(teacher, _tokenizer_of(teacher), text, add_special_tokens),
            _as_tokenization(student, _tokenizer_of(student), text, add_special_tokens))


def _default_model(side) -> str | None:
    """The model an alias names (smollm2, gemma3), when the side is given by such an alias."""
    from .sources.registry import find_alias

    if isinstance(side, str):
        name = side
    else:  # a tokenizer loaded by name carries where it came from
        source = getattr(side, "ctkd_source", None)
        name = source.alias if source is not None and source.alias else None
    alias = find_alias(name) if name else None
    return alias.name if alias is not None and alias.model_file else None


def align(teacher, student, text: str, engine: str = "span", *, add_special_tokens: bool = True,
          teacher_model: str | None = None, student_model: str | None = None, top_k: int = 100,
          anchor_texts: list[str] | None = None, **options) -> Alignment:
    """Align ``text`` as cut by a teacher and a student tokenizer.

    Args:
        teacher, student: a tokenizer name (alias, path or hub id — see :func:`load_tokenizer`), a transformers
            fast tokenizer, or a :class:`~ctkd_inspect.text.Tokenization` of ``text``.
        text: the text; empty text gives an alignment with no groups and ``None`` ratios.
        engine: ``span`` (character-span components), ``mined`` or ``cdm`` (DTW over token strings).
        add_special_tokens: tokenize with each tokenizer's default special tokens (BOS, CLS/SEP, ...).
        teacher_model, student_model: causal LMs whose signals (entropy, top-k) feed the ``cdm`` weights and the
            Top-1 accuracy metric: a model alias (``smollm2``, ``gemma3``), a ``.gguf``, a folder or a hub id.
            The model must use the side's tokenizer. With ``cdm``, a side given by an alias that names a model
            uses that model when none is passed.
        top_k: predictions kept per position in the signals.
        anchor_texts: ``softdtw`` only — more texts whose exact 1:1 span groups join the anchors of the
            teacher→student projector fit (each costs a forward pass of both models).
        **options: engine options — DTW engines: ``mode`` (``canonical``/``reference``), ``teacher_entropy``,
            ``student_entropy`` (arrays, one value per token), ``vocab_mapping``; ``softdtw``: ``gamma``,
            ``band_width``, ``band_beta``, ``band_alpha``, ``band_penalty``, ``representation``, ``ridge``.

    Returns:
        The :class:`~ctkd_inspect.alignment.Alignment`; ``to_dict()`` is the ``--json`` output.

    Raises:
        TokenizerNotFound / TokenizerLoadError: a name cannot be resolved or loaded.
        ModelError: a model cannot be resolved or loaded, or does not fit its tokenizer.
        EngineError: unknown engine or invalid options.
        InputError: ``text`` is not a string.
    """
    engine_impl = get_engine(engine)
    if not isinstance(text, str):
        raise InputError(f"text must be a str, got {type(text).__name__}")
    teacher_tokenizer, student_tokenizer = _tokenizer_of(teacher), _tokenizer_of(student)
    teacher_tok = _as_tokenization(teacher, teacher_tokenizer, text, add_special_tokens)
    student_tok = _as_tokenization(student, student_tokenizer, text, add_special_tokens)
    if engine_impl.name == "span":
        if teacher_model or student_model:
            raise EngineError("the span engine uses no model; drop teacher_model/student_model")
        alignment = engine_impl.align(teacher_tok, student_tok, **options)
    else:
        unknown = set(options) - set(engine_impl.OPTIONS)
        if unknown:
            raise EngineError(f"unknown options for the {engine_impl.name} engine: {', '.join(sorted(unknown))}")
        if anchor_texts and engine_impl.name != "softdtw":
            raise EngineError("anchor_texts apply to the softdtw engine only")
        check_options = getattr(engine_impl, "check_options", None)
        if check_options is not None:  # fail on a bad option before minutes of model loading
            check_options(**{k: v for k, v in options.items() if k != "anchor_pairs"})
        from .signals import check_signals_input, compute_signals

        models = {}
        sides = {"teacher": (teacher_tok, teacher_tokenizer), "student": (student_tok, student_tokenizer)}
        for side, model, given in (("teacher", teacher_model, options.get("teacher_entropy")),
                                   ("student", student_model, options.get("student_entropy"))):
            if model is None and engine_impl.needs_signals and given is None:
                model = _default_model(teacher if side == "teacher" else student)
            if model is not None:
                models[side] = model
        # both models are checked against their tokenizers and contexts before either forward pass runs
        for side, model in models.items():
            check_signals_input(model, sides[side][0].ids, tokenizer=sides[side][1], top_k=top_k)
        signals = {side: compute_signals(model, sides[side][0].ids, tokenizer=sides[side][1], top_k=top_k)
                   for side, model in models.items()}
        extra = {}
        if anchor_texts:
            if len(models) != 2:
                raise EngineError("anchor_texts need both models")
            pairs = []
            for other in anchor_texts:
                t_other = tokenize(teacher_tokenizer, other, add_special_tokens=add_special_tokens)
                s_other = tokenize(student_tokenizer, other, add_special_tokens=add_special_tokens)
                pairs.append((t_other, s_other,
                              compute_signals(models["teacher"], t_other.ids, tokenizer=teacher_tokenizer, top_k=1),
                              compute_signals(models["student"], s_other.ids, tokenizer=student_tokenizer, top_k=1)))
            extra["anchor_pairs"] = pairs
        alignment = engine_impl.align(teacher_tok, student_tok, teacher_signals=signals.get("teacher"),
                                      student_signals=signals.get("student"), teacher_tokenizer=teacher_tokenizer,
                                      student_tokenizer=student_tokenizer, **extra, **options)
        for side in ("teacher", "student"):
            if side in signals:
                alignment.options[f"{side}_model"] = signals[side].model
    alignment.options = {"add_special_tokens": add_special_tokens, **alignment.options}
    return alignment
