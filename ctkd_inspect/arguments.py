"""Checks of public-API arguments: a wrong type raises the package's :class:`~ctkd_inspect.errors.InputError`
naming the argument, instead of a ``TypeError`` or ``AttributeError`` from deep inside.

The error raised for a wrong *type* is :class:`~ctkd_inspect.errors.InputTypeError`, which is both an
``InputError`` (exit code 2 in the CLI) and a ``TypeError`` (what Python code that predates these checks may
catch). Light on purpose: imports nothing heavy, so every core module can use it.
"""

from __future__ import annotations

import math
import numbers
import os
from typing import Any

from .errors import InputError, InputTypeError

__all__ = ["check_alignment", "check_bool", "check_path", "check_positive_number", "check_str", "type_name"]


def type_name(value: Any) -> str:
    """The type of ``value`` for messages (``ndarray of shape (2, 2)`` for arrays)."""
    shape = getattr(value, "shape", None)
    name = type(value).__name__
    return f"{name} of shape {tuple(shape)}" if shape is not None and not isinstance(value, (str, bytes)) else name


def check_str(value: Any, name: str, what: str = "a string", *, empty: bool = True) -> str:
    """``value`` when it is a ``str`` (non-empty unless ``empty``).

    Raises:
        InputTypeError: not a ``str``. InputError: empty where that is not allowed.
    """
    if not isinstance(value, str):
        raise InputTypeError(f"{name} must be {what}, got {type_name(value)}")
    if not empty and not value.strip():
        raise InputError(f"{name} must be {what}, got an empty string")
    return value


def check_bool(value: Any, name: str) -> bool:
    """``value`` when it is ``True`` or ``False`` (numpy booleans too; not 0/1 or strings).

    Raises:
        InputTypeError: anything else.
    """
    if isinstance(value, bool):
        return value
    if type(value).__name__ == "bool_":  # numpy.bool_, without importing numpy
        return bool(value)
    raise InputTypeError(f"{name} must be True or False, got {value!r}" if isinstance(value, (int, float, str))
                         else f"{name} must be True or False, got {type_name(value)}")


def check_path(value: Any, name: str, *, optional: bool = False):
    """``value`` when it is a file system path (``str`` or ``os.PathLike``; ``None`` when ``optional``).

    Raises:
        InputTypeError: anything else (bytes paths included: the package names files by text).
    """
    if value is None and optional:
        return None
    if isinstance(value, (str, os.PathLike)):
        return value
    raise InputTypeError(f"{name} must be a file path (a str or a pathlib.Path), got {type_name(value)}")


def check_positive_number(value: Any, name: str, *, integer: bool = False) -> float | int:
    """``value`` when it is a finite number > 0 (an integer when ``integer``).

    Raises:
        InputTypeError: not a number. InputError: not finite or not > 0.
    """
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise InputTypeError(f"{name} must be {'an integer' if integer else 'a number'} > 0, got "
                             f"{type_name(value)}")
    if not math.isfinite(float(value)) or value <= 0:
        raise InputError(f"{name} must be {'an integer' if integer else 'a finite number'} > 0, got {value!r}")
    return int(value) if integer else value


def check_alignment(value: Any, name: str = "alignment"):
    """``value`` when it is an :class:`~ctkd_inspect.alignment.Alignment`.

    Raises:
        InputTypeError: anything else (a dict from ``to_dict()`` is pointed to ``Alignment.from_dict``).
    """
    from .alignment import Alignment

    if isinstance(value, Alignment):
        return value
    hint = "; turn a dict from to_dict() or --json back with Alignment.from_dict" if isinstance(value, dict) else ""
    raise InputTypeError(f"{name} must be an Alignment (from ctkd_inspect.align), got {type_name(value)}{hint}")
