"""Optional dependencies ("extras"): detect a missing one before any expensive work, and say how to install it.

Features that need an extra call :func:`require` first, before any download, model load or long computation, so
a user without torch learns it in a second instead of after fetching hundreds of megabytes. Detection uses
``importlib.util.find_spec``, which does not import the package (importing torch alone takes seconds).

The install commands are the README's (run in the project folder, where the README installs from): torch always
first from its CPU build, since anything that depends on torch would otherwise pull the newest CUDA build
(gigabytes).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from .errors import MissingExtraError

__all__ = ["EXTRAS", "Extra", "install_command", "missing", "require"]


@dataclass(frozen=True)
class Extra:
    """One optional feature set: its extra name in ``pyproject.toml`` and the modules it provides."""

    name: str
    modules: tuple[str, ...]
    needs_torch: bool = False


#: The extras of ``pyproject.toml`` that features check for, by extra name.
EXTRAS: dict[str, Extra] = {
    "models": Extra("models", ("torch", "accelerate", "gguf"), needs_torch=True),
    "parquet": Extra("parquet", ("pyarrow",)),
    "corpus": Extra("corpus", ("datasets", "pyarrow", "matplotlib")),
    "ray": Extra("ray", ("ray",)),
    "tui": Extra("tui", ("textual",)),
    "notebook": Extra("notebook", ("ipywidgets", "matplotlib")),
    "train": Extra("train", ("torch", "accelerate", "peft", "tensorboard", "yaml", "rouge_score"), needs_torch=True),
}

# module name -> the distribution pip installs it from, where the two differ
_DISTRIBUTIONS = {"yaml": "pyyaml", "rouge_score": "rouge-score"}


def install_command(extra: str) -> str:
    """The exact command the README gives to install ``extra`` into an existing installation."""
    spec = EXTRAS[extra]
    command = f'pip install -e ".[{extra}]"'
    return f"pip install torch==2.13.0 && {command}" if spec.needs_torch else command


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here (without importing any of them)."""
    out = []
    for module in EXTRAS[extra].modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a broken or half-removed installation counts as missing
            found = False
        if not found:
            out.append(_DISTRIBUTIONS.get(module, module))
    return out


def require(extra: str, feature: str) -> None:
    """Refuse to start ``feature`` when a module of ``extra`` is missing.

    Args:
        extra: a key of :data:`EXTRAS`.
        feature: what the user asked for, in their words (``"--engine cdm"``, ``"Parquet output"``).

    Raises:
        MissingExtraError: naming the missing modules and the install command.
    """
    absent = missing(extra)
    if absent:
        raise MissingExtraError(f"{feature} needs {', '.join(absent)}, which {'is' if len(absent) == 1 else 'are'} "
                                f"not installed: {install_command(extra)}", extra=extra, modules=absent)
