"""Engines declare themselves: typed, documented options and the model signals they need.

Every engine class carries ``options`` (a tuple of :class:`EngineOption`) and the signals it requires or can use.
Everything that handles engine options is derived from these declarations, never from the engine's name:
:func:`ctkd_inspect.align` validates keywords with them, the CLI builds its flags and ``--help`` from them, and the
TUI and the notebook widgets generate their option forms from them. A third-party engine registered with
:func:`ctkd_inspect.engines.register_engine` therefore appears everywhere with its options.

Validation happens before any tokenizer, model or download is touched; messages name the option the way the user
wrote it: the Python keyword (``band_width``) or the CLI flag (``--band-width``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import EngineError

__all__ = ["MODEL_OPTIONS", "SIGNALS", "EngineOption", "OptionError", "options_of", "parse_options",
           "unknown_option_message", "validate_options"]

def _model_name(value: str) -> str:
    """``teacher_model`` / ``student_model``: a non-empty name (what it names is resolved when the model loads)."""
    if not value.strip():
        raise ValueError("give a model alias (gemma3, smollm2), a .gguf file, a folder or a hub id (got an empty "
                         "name)")
    return value


#: Model-derived signals an engine can ask for (see :mod:`ctkd_inspect.signals`): per-token entropy, top-k
#: predictions, final hidden states, input embeddings, and a cross-model attention matrix.
SIGNALS = ("entropy", "topk", "hidden_states", "embeddings", "attention")


class OptionError(EngineError):
    """An engine option is unknown, of the wrong type or out of bounds.

    ``option`` is the declaration concerned (``None`` for an unknown name) and ``value`` the rejected value, so a
    front-end can restate the message in its own terms (:meth:`EngineOption.label`).
    """

    def __init__(self, message: str, option: EngineOption | None = None, value: Any = None):
        super().__init__(message)
        self.option = option
        self.value = value


@dataclass(frozen=True)
class EngineOption:
    """One option of an engine.

    Attributes:
        name: the Python keyword (``band_width``); the CLI flag is derived from it (``--band-width``).
        type: ``float``, ``int``, ``bool``, ``str``, or ``object`` for values that only the Python API can pass
            (arrays, mappings, lists of texts; such options are never CLI flags).
        default: the value used when the option is not given (``None``: the engine decides, e.g. "not used").
        help: one line for ``--help``, forms and tooltips.
        minimum, maximum: numeric bounds (inclusive unless ``exclusive_minimum`` / ``exclusive_maximum``).
        choices: the allowed values of a ``str`` option.
        also: extra values accepted besides the type's own (``ridge`` takes a number or ``"auto"``).
        cli: whether the option is offered as a CLI flag (and in forms).
        metavar: the placeholder shown in ``--help``.
        convert: turns an accepted value into what the engine receives (e.g. a path into a loaded mapping); it
            runs during validation, so a file is read before any tokenizer or model is loaded. It may raise
            :class:`ValueError` with a message, which becomes an :class:`OptionError`.
    """

    name: str
    type: type
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    choices: tuple[str, ...] | None = None
    also: tuple[Any, ...] = ()
    cli: bool = True
    metavar: str | None = None
    convert: Callable[[Any], Any] | None = field(default=None, compare=False, repr=False)

    @property
    def flag(self) -> str:
        """The CLI flag: ``--`` and the name with dashes."""
        return "--" + self.name.replace("_", "-")

    def label(self, style: str = "python") -> str:
        """How the user wrote the option: the keyword (``style="python"``) or the flag (``"cli"``)."""
        return self.flag if style == "cli" else self.name

    def bounds_text(self) -> str:
        """The bounds in words, e.g. ``> 0`` or ``in [0, 1]`` (empty when unbounded)."""
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            left = "(" if self.exclusive_minimum else "["
            right = ")" if self.exclusive_maximum else "]"
            return f"in {left}{_number(low)}, {_number(high)}{right}"
        if low is not None:
            return f"{'>' if self.exclusive_minimum else '≥'} {_number(low)}"
        if high is not None:
            return f"{'<' if self.exclusive_maximum else '≤'} {_number(high)}"
        return ""

    def describe(self) -> str:
        """The help line with the default, bounds and choices, for ``--help`` and forms."""
        parts = [self.help.rstrip(".")]
        if self.choices:
            parts.append("one of " + ", ".join(self.choices))
        bounds = self.bounds_text()
        if bounds:
            parts.append(bounds)
        if self.default is not None and self.type is not object:
            parts.append(f"default {self.default}")
        return "; ".join(parts) + "."

    def validate(self, value: Any, style: str = "python") -> Any:
        """Check ``value`` against the declaration and return what the engine receives.

        ``style`` picks how the message names the option (keyword or flag). ``None`` means "not given" and is
        returned as is.

        Raises:
            OptionError: the value has the wrong type, is not finite, is out of bounds, is not one of the
                choices, or ``convert`` refused it.
        """
        if value is None:
            return None
        label = self.label(style)
        if value in self.also and not isinstance(value, bool):
            return value
        checked = self._typed(value, label)
        if self.choices is not None and checked not in self.choices:
            raise OptionError(f"{label} must be one of {', '.join(self.choices)} (got {value!r})", self, value)
        if self.type in (int, float):
            self._check_bounds(checked, label)
        if self.convert is not None:
            try:
                checked = self.convert(checked)
            except (ValueError, TypeError) as exc:  # a value of a type ``convert`` cannot take is refused too
                raise OptionError(f"{label}: {exc}", self, value) from None
        return checked

    def parse(self, text: str, style: str = "cli") -> Any:
        """Turn a command-line string into a value of the declared type, then :meth:`validate` it.

        Raises:
            OptionError: the text is not a value of the type (``--gamma abc``) or fails validation.
        """
        label = self.label(style)
        for alternative in self.also:
            if text == str(alternative):
                return self.validate(alternative, style)
        try:
            if self.type is int:
                value: Any = int(text)
            elif self.type is float:
                value = float(text)
            elif self.type is bool:
                lowered = text.strip().lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                value = lowered in ("true", "1", "yes")
            else:
                value = text
        except ValueError:
            kind = {int: "an integer", float: "a number", bool: "true or false"}[self.type]
            alternatives = "".join(f" or {a!r}" for a in self.also)
            raise OptionError(f"{label} must be {kind}{alternatives} (got {text!r})", self, text) from None
        return self.validate(value, style)

    def _typed(self, value: Any, label: str) -> Any:
        alternatives = "".join(f" or {a!r}" for a in self.also)
        if self.type is bool:
            if isinstance(value, bool):
                return value
            raise OptionError(f"{label} must be True or False (got {value!r})", self, value)
        if self.type is int:
            if isinstance(value, numbers.Integral) and not isinstance(value, bool):
                return int(value)
            raise OptionError(f"{label} must be an integer{alternatives} (got {value!r})", self, value)
        if self.type is float:
            if isinstance(value, numbers.Real) and not isinstance(value, bool):
                if not math.isfinite(float(value)):
                    raise OptionError(f"{label} must be a finite number (got {value!r})", self, value)
                return float(value)
            raise OptionError(f"{label} must be a number{alternatives} (got {value!r})", self, value)
        if self.type is str:
            if isinstance(value, str):
                return value
            raise OptionError(f"{label} must be a string (got {type(value).__name__})", self, value)
        return value  # object: the engine (or ``convert``) checks it

    def _check_bounds(self, value: float, label: str) -> None:
        low, high = self.minimum, self.maximum
        too_low = low is not None and (value <= low if self.exclusive_minimum else value < low)
        too_high = high is not None and (value >= high if self.exclusive_maximum else value > high)
        if too_low or too_high:
            raise OptionError(f"{label} must be {self.bounds_text()} (got {_number(value)})", self, value)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


#: Options every engine that uses model signals accepts (the models themselves, and how many predictions to keep).
MODEL_OPTIONS: tuple[EngineOption, ...] = (
    EngineOption("teacher_model", str, None, "Teacher causal LM for the model signals: an alias (gemma3, smollm2), a "
                 ".gguf, a folder or a hub id. Default: the model the teacher alias names", metavar="MODEL",
                 convert=_model_name),
    EngineOption("student_model", str, None, "Student causal LM, as teacher_model", metavar="MODEL",
                 convert=_model_name),
    EngineOption("top_k", int, 100, "Predictions kept per position in the model signals", minimum=1),
)


def uses_signals(engine) -> bool:
    """Whether an engine (class or instance) needs or can use model signals, and so takes the model options."""
    return bool(getattr(engine, "requires_signals", frozenset()) or getattr(engine, "optional_signals", frozenset()))


def options_of(engine) -> tuple[EngineOption, ...]:
    """Every option an engine (class or instance) accepts: its own, then the model options when it uses signals."""
    own = tuple(getattr(engine, "options", ()))
    return own + (MODEL_OPTIONS if uses_signals(engine) else ())


def validate_options(engine, given: dict[str, Any], style: str = "python", *,
                     model_options: bool = True) -> dict[str, Any]:
    """Validate the options ``given`` for ``engine`` against its declaration; returns the converted values of the
    options that were given (``None`` values count as not given and are dropped). ``model_options=False`` leaves
    out :data:`MODEL_OPTIONS` (for an engine's own ``align``, which receives signals rather than models).

    Raises:
        OptionError: an option the engine does not declare (the message names the engines that do, when one does),
            or a value its declaration refuses.
    """
    available = options_of(engine) if model_options else tuple(getattr(engine, "options", ()))
    declared = {option.name: option for option in available}
    out = {}
    for name, value in given.items():
        if value is None:
            continue
        option = declared.get(name)
        if option is None:
            raise OptionError(unknown_option_message(engine, name, style), None, value)
        out[name] = option.validate(value, style)
    return out


def parse_options(engine, given: dict[str, Any], style: str = "cli") -> dict[str, Any]:
    """Like :func:`validate_options` for values typed by a person (CLI flags, form fields): strings are parsed into
    the declared type first (``"0.1"`` → 0.1, ``"auto"`` where the declaration also accepts it); other values are
    validated as they are. Empty strings count as not given.

    Raises:
        OptionError: an option the engine does not take, text that is not a value of the type, or a value the
            declaration refuses (the message names the flag with ``style="cli"``).
    """
    declared = {option.name: option for option in options_of(engine)}
    out = {}
    for name, value in given.items():
        if value is None or (isinstance(value, str) and value == ""):
            continue
        option = declared.get(name)
        if option is None:
            raise OptionError(unknown_option_message(engine, name, style), None, value)
        out[name] = option.parse(value, style) if isinstance(value, str) and option.type is not str \
            else option.validate(value, style)
    return out


def unknown_option_message(engine, name: str, style: str) -> str:
    from .base import engine_classes

    label = "--" + name.replace("_", "-") if style == "cli" else name
    owners = [other for other, cls in engine_classes().items()
              if any(option.name == name for option in options_of(cls))]
    engine_name = getattr(engine, "name", "?")
    if owners:
        where = " or ".join(f"--engine {o}" if style == "cli" else f"engine={o!r}" for o in owners)
        return f"{label} applies to {where}, not to the {engine_name} engine"
    known = ", ".join(option.label(style) for option in options_of(engine)) or "none"
    return f"the {engine_name} engine has no option {label} (its options: {known})"


def declared_names(engines: Iterable) -> list[str]:
    """The option names of several engines, each once, in first-seen order."""
    seen: dict[str, None] = {}
    for engine in engines:
        for option in options_of(engine):
            seen.setdefault(option.name, None)
    return list(seen)


def merged_declarations(engines: Sequence) -> dict[str, EngineOption]:
    """One declaration per option name across engines (the first engine's), for building shared CLI flags."""
    out: dict[str, EngineOption] = {}
    for engine in engines:
        for option in options_of(engine):
            out.setdefault(option.name, option)
    return out
