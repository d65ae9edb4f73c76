"""Alignment engines behind one protocol (see :mod:`ctkd_inspect.engines.base`)."""

from .base import Engine, engine_names, get_engine, register_engine

__all__ = ["Engine", "engine_names", "get_engine", "register_engine"]
