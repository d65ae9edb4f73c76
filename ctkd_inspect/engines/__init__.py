"""Alignment engines behind one protocol (see :mod:`ctkd_inspect.engines.base`), each declaring its options and
the model signals it needs (:mod:`ctkd_inspect.engines.options`)."""

from .base import (
                   AlignContext,
                   Engine,
                   describe_engine,
                   engine_class,
                   engine_classes,
                   engine_names,
                   get_engine,
                   register_engine,
)
from .options import MODEL_OPTIONS, SIGNALS, EngineOption, OptionError, options_of, validate_options

__all__ = ["MODEL_OPTIONS", "SIGNALS", "AlignContext", "Engine", "EngineOption", "OptionError", "describe_engine",
           "engine_class", "engine_classes", "engine_names", "get_engine", "options_of", "register_engine",
           "validate_options"]
