"""The protocol every alignment engine implements, and the engine registry.

An engine turns two :class:`~ctkd_inspect.text.Tokenization` objects of the same text into an
:class:`~ctkd_inspect.alignment.Alignment`. It *declares* itself (see :mod:`ctkd_inspect.engines.options`): its
options, the model signals it requires or can use, and capability flags; every front-end derives its option
handling from those declarations, so nothing outside an engine's module branches on its name.

Engines are registered by name; :func:`get_engine` imports an engine's module only when it is first asked for,
so ``import ctkd_inspect`` stays cheap and torch-free. Third-party engines register with :func:`register_engine`
(at run time) or through the ``ctkd_inspect.engines`` entry-point group of their package (``name =
"package.module:Class"``), and then appear in ``align()``, the CLI, the TUI and the widgets with their options.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from ..alignment import Alignment
from ..errors import EngineError
from ..text import Tokenization
from .options import EngineOption, options_of, uses_signals

__all__ = ["AlignContext", "Engine", "describe_engine", "engine_class", "engine_classes", "engine_names",
           "get_engine", "register_engine"]


@runtime_checkable
class Engine(Protocol):
    """An alignment engine.

    Class attributes:
        name: the registry name (``span``, ``mined``, ``cdm``, ``softdtw``, or a plugin's).
        description: one line for ``--help``, engine pickers and docs.
        options: the engine's own options (:class:`~ctkd_inspect.engines.options.EngineOption`); engines that use
            model signals also accept :data:`~ctkd_inspect.engines.options.MODEL_OPTIONS`.
        requires_signals: signals (names from :data:`~ctkd_inspect.engines.options.SIGNALS`) without which the
            engine cannot run; ``align()`` then computes them from the models.
        optional_signals: signals the engine uses when models are given (e.g. top-k for the Top-1 accuracy).
        differentiable: True when the engine has a differentiable form (usable inside a loss).
        batched: True when the engine has a batched, device-resident form.

    Engines that use signals receive ``teacher_signals``, ``student_signals`` (or ``None``), ``teacher_tokenizer``
    and ``student_tokenizer`` as keywords besides their options. An engine may define
    ``prepare(options, context) -> options`` to turn high-level options into inputs with the help of the tokenizers
    and models (:class:`AlignContext`), ``needs_model(side, options) -> bool`` when a required signal can also be
    supplied without a model, and ``preflight(teacher, student, options) -> None`` for checks that need the
    tokenizations but no model (a quadratic engine's memory budget); :func:`ctkd_inspect.align` calls it right after
    tokenizing, before any model is loaded; and a classmethod ``warm_up()`` that loads what its first call would load
    (compiled kernels), for callers about to align many texts.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    options: ClassVar[tuple[EngineOption, ...]]
    requires_signals: ClassVar[frozenset[str]]
    optional_signals: ClassVar[frozenset[str]]
    differentiable: ClassVar[bool]
    batched: ClassVar[bool]

    def align(self, teacher: Tokenization, student: Tokenization, **options) -> Alignment:
        """Align two tokenizations of the same text.

        Raises:
            EngineError: unknown or invalid options, or inputs the engine cannot handle.
        """
        ...


@dataclass
class AlignContext:
    """What :func:`ctkd_inspect.align` hands an engine's ``prepare`` hook: the tokenizers, the models (names or
    ``None``), how many predictions to keep, the special-token setting, and ``signals_for(side, tokenization)``,
    which computes a side's model signals for another text (one forward pass each)."""

    teacher_tokenizer: Any
    student_tokenizer: Any
    teacher_model: str | None
    student_model: str | None
    top_k: int
    add_special_tokens: bool

    def signals_for(self, side: str, tokenization: Tokenization, top_k: int | None = None):
        """Model signals of ``side``'s model for ``tokenization``.

        Raises:
            EngineError: that side has no model.
        """
        from ..signals import compute_signals

        model = self.teacher_model if side == "teacher" else self.student_model
        if model is None:
            raise EngineError(f"no {side} model: pass {side}_model=")
        tokenizer = self.teacher_tokenizer if side == "teacher" else self.student_tokenizer
        return compute_signals(model, tokenization.ids, tokenizer=tokenizer, top_k=top_k or self.top_k)


# name -> "module:Class" (imported on first use) or the class itself
_REGISTRY: dict[str, str | type] = {
    "span": "ctkd_inspect.engines.span:SpanEngine",
    "mined": "ctkd_inspect.engines.dtw:MinedEngine",
    "cdm": "ctkd_inspect.engines.dtw:CdmEngine",
    "softdtw": "ctkd_inspect.engines.softdtw:SoftDTWEngine",
}
_ENTRY_POINTS_LOADED = False


def register_engine(name: str, target: str | type) -> None:
    """Register an engine under ``name``: a class, or its dotted path ``"package.module:Class"`` (imported when
    first needed). A later registration of the same name replaces the earlier one.

    Raises:
        EngineError: the name is empty or the target is neither a class nor a ``module:Class`` path.
    """
    if not isinstance(name, str) or not name.strip():
        raise EngineError(f"an engine name must be a non-empty string (got {name!r})")
    if not (isinstance(target, type) or (isinstance(target, str) and target.count(":") == 1)):
        raise EngineError(f"register_engine({name!r}, ...): give the engine class or 'package.module:Class' "
                          f"(got {target!r})")
    _REGISTRY[name] = target


def _load_entry_points() -> None:
    """Engines that installed packages declare in the ``ctkd_inspect.engines`` entry-point group (once)."""
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    from importlib.metadata import entry_points

    for point in entry_points(group="ctkd_inspect.engines"):
        _REGISTRY.setdefault(point.name, point.value)


def engine_names() -> list[str]:
    """The names of every registered engine, built-in ones first."""
    _load_entry_points()
    return list(_REGISTRY)


def engine_class(name: str) -> type:
    """The class registered as ``name`` (its module is imported on first use).

    Raises:
        EngineError: no engine has that name, or its class cannot be imported.
    """
    _load_entry_points()
    if not isinstance(name, str):
        raise EngineError(f"engine must be the name of a registered engine (a str such as 'span'), got "
                          f"{type(name).__name__}; available: {', '.join(_REGISTRY)}")
    target = _REGISTRY.get(name)
    if target is None:
        raise EngineError(f"unknown engine {name!r}; available: {', '.join(_REGISTRY)}")
    if isinstance(target, str):
        module_name, class_name = target.split(":")
        try:
            target = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise EngineError(f"engine {name!r} ({_REGISTRY[name]}) cannot be imported: {exc}") from exc
        _REGISTRY[name] = target
    return target


def engine_classes() -> dict[str, type]:
    """Every registered engine's class by name (engines that fail to import are left out)."""
    out = {}
    for name in engine_names():
        try:
            out[name] = engine_class(name)
        except EngineError:
            continue
    return out


def get_engine(name: str) -> Engine:
    """An instance of the engine registered as ``name``.

    Raises:
        EngineError: no engine has that name.
    """
    return engine_class(name)()


def describe_engine(name: str) -> dict:
    """A JSON-ready description of an engine's declaration: name, description, capabilities, signals, options
    (for front-ends that render forms and for ``--help``)."""
    cls = engine_class(name)
    return {
        "name": name,
        "description": getattr(cls, "description", ""),
        "requires_signals": sorted(getattr(cls, "requires_signals", ())),
        "optional_signals": sorted(getattr(cls, "optional_signals", ())),
        "uses_models": uses_signals(cls),
        "differentiable": bool(getattr(cls, "differentiable", False)),
        "batched": bool(getattr(cls, "batched", False)),
        "options": [{"name": o.name, "flag": o.flag, "type": o.type.__name__, "default": o.default, "help": o.help,
                     "minimum": o.minimum, "maximum": o.maximum, "choices": list(o.choices) if o.choices else None,
                     "also": list(o.also), "cli": o.cli} for o in options_of(cls)],
    }
