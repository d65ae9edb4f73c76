"""The Python entry points: :func:`align` and :func:`load_tokenizer`."""

from __future__ import annotations

from .alignment import Alignment
from .engines.base import get_engine
from .errors import InputError
from .sources import load_tokenizer
from .text import Tokenization, tokenize

__all__ = ["align", "load_tokenizer", "tokenize_pair"]


def _as_tokenization(side, text: str, add_special_tokens: bool) -> Tokenization:
    if isinstance(side, Tokenization):
        if side.text != text:
            raise InputError("a pre-computed Tokenization was passed for a different text")
        return side
    if isinstance(side, str):
        return tokenize(load_tokenizer(side), text, name=side, add_special_tokens=add_special_tokens)
    return tokenize(side, text, add_special_tokens=add_special_tokens)


def tokenize_pair(teacher, student, text: str, *, add_special_tokens: bool = True
                  ) -> tuple[Tokenization, Tokenization]:
    """Tokenize one text with both tokenizers (names, tokenizer objects or ready Tokenizations)."""
    if not isinstance(text, str):
        raise InputError(f"text must be a str, got {type(text).__name__}")
    return (_as_tokenization(teacher, text, add_special_tokens),
            _as_tokenization(student, text, add_special_tokens))


def align(teacher, student, text: str, engine: str = "span", *, add_special_tokens: bool = True,
          **options) -> Alignment:
    """Align ``text`` as cut by a teacher and a student tokenizer.

    Args:
        teacher, student: a tokenizer name (alias, path or hub id — see :func:`load_tokenizer`), a transformers
            fast tokenizer, or a :class:`~ctkd_inspect.text.Tokenization` of ``text``.
        text: the text; empty text gives an alignment with no groups and ``None`` ratios.
        engine: a registered engine name (``span``; see :func:`ctkd_inspect.engines.engine_names`).
        add_special_tokens: tokenize with each tokenizer's default special tokens (BOS, CLS/SEP, ...).
        **options: engine options.

    Returns:
        The :class:`~ctkd_inspect.alignment.Alignment`; ``to_dict()`` is the ``--json`` output.

    Raises:
        TokenizerNotFound / TokenizerLoadError: a name cannot be resolved or loaded.
        EngineError: unknown engine or invalid options.
        InputError: ``text`` is not a string.
    """
    engine_impl = get_engine(engine)
    teacher_tok, student_tok = tokenize_pair(teacher, student, text, add_special_tokens=add_special_tokens)
    alignment = engine_impl.align(teacher_tok, student_tok, **options)
    alignment.options = {"add_special_tokens": add_special_tokens, **alignment.options}
    return alignment
