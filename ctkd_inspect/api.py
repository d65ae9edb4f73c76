"""The Python entry points: :func:`align` and :func:`tokenize_pair`.

:func:`align` knows no engine by name: it asks the engine's declaration (:mod:`ctkd_inspect.engines.options`)
which options it takes and which model signals it needs, validates every option before any tokenizer, model or
download is touched, computes the signals the engine needs, and hands the engine its inputs.
"""

from __future__ import annotations

from .alignment import Alignment
from .engines.base import AlignContext, engine_class
from .engines.options import uses_signals, validate_options
from .errors import InputError
from .sources import load_tokenizer
from .text import Tokenization, tokenize

__all__ = ["align", "check_request", "load_tokenizer", "tokenize_pair"]


def _check_side(side, keyword: str) -> None:
    if isinstance(side, (str, Tokenization)) or hasattr(side, "backend_tokenizer"):
        return
    raise InputError(f"{keyword} must be a tokenizer name, a fast tokenizer or a Tokenization "
                     f"(got {type(side).__name__})")


def _tokenizer_of(side):
    if isinstance(side, Tokenization):
        return None
    if isinstance(side, str):  # used internally only: the light Rust-backed tokenizer suffices
        return load_tokenizer(side, backend="rust")
    return side


def _as_tokenization(side, tokenizer, text: str, add_special_tokens: bool) -> Tokenization:
    if isinstance(side, Tokenization):
        if side.text != text:
            raise InputError("a pre-computed Tokenization was passed for a different text")
        return side
    return tokenize(tokenizer, text, name=side if isinstance(side, str) else None,
                    add_special_tokens=add_special_tokens)


def _check_common(text, add_special_tokens) -> None:
    if not isinstance(text, str):
        raise InputError(f"text must be a str, got {type(text).__name__}")
    if not isinstance(add_special_tokens, bool):
        raise InputError(f"add_special_tokens must be True or False, got {add_special_tokens!r}")


def tokenize_pair(teacher, student, text: str, *, add_special_tokens: bool = True
                  ) -> tuple[Tokenization, Tokenization]:
    """Tokenize one text with both tokenizers (names, tokenizer objects or ready Tokenizations).

    Raises:
        InputError: an argument of the wrong type, or a Tokenization of another text.
        TokenizerNotFound / TokenizerLoadError: a name cannot be resolved or loaded.
    """
    _check_common(text, add_special_tokens)
    _check_side(teacher, "teacher")
    _check_side(student, "student")
    return (_as_tokenization(teacher, _tokenizer_of(teacher), text, add_special_tokens),
            _as_tokenization(student, _tokenizer_of(student), text, add_special_tokens))


def default_model(side) -> str | None:
    """The model an alias names (smollm2, gemma3), when the side is given by such an alias (or by a tokenizer
    loaded from one)."""
    from .sources.registry import find_alias

    if isinstance(side, str):
        name = side
    else:  # a tokenizer loaded by name carries where it came from
        source = getattr(side, "ctkd_source", None)
        name = source.alias if source is not None and source.alias else None
    alias = find_alias(name) if name else None
    return alias.name if alias is not None and alias.model_file else None


def check_request(teacher, student, engine: str, options: dict, style: str = "python"
                  ) -> tuple[type, dict, dict[str, str | None]]:
    """Everything about an alignment request that can be checked before any tokenizer, model or download is
    touched: the engine exists, the sides have usable types, every option fits the engine's declaration, and the
    extras the request needs are installed (an alias's tokenizer may live in the same download as its model, so
    this must come before loading tokenizers). Front-ends call it first; :func:`align` calls it too.

    Returns:
        ``(engine class, validated options without the model options, {"teacher": model, "student": model})``
        — a side's model is the one given, else the alias's model when the engine needs one, else ``None``.

    Raises:
        EngineError: unknown engine or a bad option (the message names the keyword, or the flag with
            ``style="cli"``); ``options`` are already-typed values (see :func:`ctkd_inspect.engines.parse_options`
            for typed text).
        InputError: a side of the wrong type.
        MissingExtraError: the request needs model signals and torch (the ``models`` extra) is missing.
    """
    cls = engine_class(engine)
    _check_side(teacher, "teacher")
    _check_side(student, "student")
    settings = validate_options(cls, options, style)
    models = {"teacher": settings.pop("teacher_model", None), "student": settings.pop("student_model", None)}
    if uses_signals(cls):
        impl = cls()
        needs_model = getattr(impl, "needs_model", lambda side, given: bool(getattr(impl, "requires_signals", ())))
        for side, given in (("teacher", teacher), ("student", student)):
            if models[side] is None and needs_model(side, settings):
                models[side] = default_model(given)
        if any(models.values()):
            from .extras import require

            require("models", f"model signals for the {cls.name} engine")
    return cls, settings, models


def align(teacher, student, text: str, engine: str = "span", *, add_special_tokens: bool = True,
          **options) -> Alignment:
    """Align ``text`` as cut by a teacher and a student tokenizer.

    Args:
        teacher, student: a tokenizer name (alias, path or hub id — see :func:`load_tokenizer`), a transformers
            fast tokenizer, or a :class:`~ctkd_inspect.text.Tokenization` of ``text``.
        text: the text; empty text gives an alignment with no groups and ``None`` ratios.
        engine: a registered engine (``span``, ``mined``, ``cdm``, ``softdtw``, or a plugin's; see
            :func:`ctkd_inspect.engines.engine_names`).
        add_special_tokens: tokenize with each tokenizer's default special tokens (BOS, CLS/SEP, ...).
        **options: the engine's options, as its declaration lists them
            (``ctkd_inspect.engines.describe_engine(name)``): DTW engines ``mode``, ``vocab_mapping`` (and for
            ``cdm``: ``teacher_entropy``, ``student_entropy``); ``softdtw``: ``gamma``, ``band_width``,
            ``band_beta``, ``band_alpha``, ``band_penalty``, ``representation``, ``ridge``, ``fit_texts``,
            ``anchor_texts``. Engines that use model signals also take ``teacher_model`` / ``student_model`` (a
            model alias such as ``smollm2`` or ``gemma3``, a ``.gguf``, a folder or a hub id; the model must use
            the side's tokenizer; a side given by an alias that names a model uses that model when the engine
            needs one) and ``top_k`` (predictions kept per position).

    Returns:
        The :class:`~ctkd_inspect.alignment.Alignment`; ``to_dict()`` is the ``--json`` output.

    Raises:
        EngineError: unknown engine, or an option the engine does not declare or whose value it refuses — raised
            before any tokenizer, model or download is touched.
        InputError: ``text``, ``add_special_tokens``, ``teacher`` or ``student`` of the wrong type.
        TokenizerNotFound / TokenizerLoadError: a name cannot be resolved or loaded.
        ModelError: a model cannot be resolved or loaded, or does not fit its tokenizer.
        MissingExtraError: the engine needs model signals and torch is not installed (checked first).
        MemoryBudgetError: a quadratic engine (``mined``, ``cdm``, ``softdtw``) would need more memory than its
            budget (``max_memory``, default half of the available memory); raised before any model is loaded.
    """
    _check_common(text, add_special_tokens)
    cls, settings, models = check_request(teacher, student, engine, options)
    top_k = settings.pop("top_k", 100)
    impl = cls()

    teacher_tokenizer, student_tokenizer = _tokenizer_of(teacher), _tokenizer_of(student)
    teacher_tok = _as_tokenization(teacher, teacher_tokenizer, text, add_special_tokens)
    student_tok = _as_tokenization(student, student_tokenizer, text, add_special_tokens)
    # checks that need the token counts (e.g. a quadratic engine's memory) run before any model is loaded
    preflight = getattr(impl, "preflight", None)
    if preflight is not None:
        preflight(teacher_tok, student_tok, settings)
    if not uses_signals(cls):
        alignment = impl.align(teacher_tok, student_tok, **settings)
    else:
        sides = {"teacher": (teacher_tok, teacher_tokenizer), "student": (student_tok, student_tokenizer)}
        signals = _compute_signals(models, sides, top_k)
        prepare = getattr(impl, "prepare", None)
        if prepare is not None:
            context = AlignContext(teacher_tokenizer, student_tokenizer, models["teacher"], models["student"], top_k,
                                   add_special_tokens)
            settings = prepare(settings, context)
        alignment = impl.align(teacher_tok, student_tok, teacher_signals=signals.get("teacher"),
                               student_signals=signals.get("student"), teacher_tokenizer=teacher_tokenizer,
                               student_tokenizer=student_tokenizer, **settings)
        for side in ("teacher", "student"):
            if side in signals:
                alignment.options[f"{side}_model"] = signals[side].model
    alignment.options = {"add_special_tokens": add_special_tokens, **alignment.options}
    return alignment


def _compute_signals(models: dict, sides: dict, top_k: int) -> dict:
    """Signals of every side that has a model; both models are checked against their tokenizers and contexts
    before either forward pass runs, so a bad pair fails before minutes of work."""
    present = {side: model for side, model in models.items() if model is not None}
    if not present:
        return {}
    from .signals import check_signals_input, compute_signals

    for side, model in present.items():
        check_signals_input(model, sides[side][0].ids, tokenizer=sides[side][1], top_k=top_k)
    return {side: compute_signals(model, sides[side][0].ids, tokenizer=sides[side][1], top_k=top_k)
            for side, model in present.items()}
