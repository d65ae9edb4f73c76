"""The protocol every alignment engine implements, and the engine registry.

An engine turns two :class:`~ctkd_inspect.text.Tokenization` objects of the same text into an
:class:`~ctkd_inspect.alignment.Alignment`. Capability flags tell front-ends what an engine needs and offers
without running it. Engines are registered by name; :func:`get_engine` imports an engine's module only when it is
first asked for, so ``import ctkd_inspect`` stays cheap and torch-free.
"""

from __future__ import annotations

import importlib
from typing import ClassVar, Protocol, runtime_checkable

from ..alignment import Alignment
from ..errors import EngineError
from ..text import Tokenization


@runtime_checkable
class Engine(Protocol):
    """An alignment engine.

    Class attributes:
        name: the registry name (``span``, ``mined``, ``cdm``, ``softdtw``).
        needs_signals: True when the engine needs model-derived signals (entropy, hidden states).
        differentiable: True when the engine has a differentiable form (usable inside a loss).
        batched: True when the engine has a batched, device-resident form.
    """

    name: ClassVar[str]
    needs_signals: ClassVar[bool]
    differentiable: ClassVar[bool]
    batched: ClassVar[bool]

    def align(self, teacher: Tokenization, student: Tokenization, **options) -> Alignment:
        """Align two tokenizations of the same text.

        Raises:
            EngineError: unknown or invalid options, or inputs the engine cannot handle.
        """
        ...


# name -> "module:Class"; modules are imported on first use
_REGISTRY: dict[str, str] = {
    "span": "ctkd_inspect.engines.span:SpanEngine",
    "mined": "ctkd_inspect.engines.dtw:MinedEngine",
    "cdm": "ctkd_inspect.engines.dtw:CdmEngine",
    "softdtw": "ctkd_inspect.engines.softdtw:SoftDTWEngine",
}


def register_engine(name: str, target: str) -> None:
    """Register an engine class by dotted path (``"package.module:Class"``), e.g. from a plugin."""
    _REGISTRY[name] = target


def engine_names() -> list[str]:
    return list(_REGISTRY)


def get_engine(name: str) -> Engine:
    """An instance of the engine registered as ``name``.

    Raises:
        EngineError: no engine has that name.
    """
    target = _REGISTRY.get(name)
    if target is None:
        raise EngineError(f"unknown engine {name!r}; available: {', '.join(_REGISTRY)}")
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)()
