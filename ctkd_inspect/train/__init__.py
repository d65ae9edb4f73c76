"""Distillation runs: the losses of :mod:`ctkd_inspect.losses` trained on Accelerate (one CPU, one GPU, DDP, FSDP).

::

    from ctkd_inspect.train import load_config, run_distillation

    config = load_config("run.yaml", overrides={"max_steps": 20})
    result = run_distillation(config, log=print)          # checkpoints, TensorBoard, evaluation, exact resume
    result.history[-1]["loss"], result.evaluations[-1]["eval/rougeL"]

The command line is ``ctkd-inspect distill --config run.yaml [--key value ...]``; ``python -m ctkd_inspect.train``
is the same command for ``accelerate launch -m ctkd_inspect.train ...``; the packaged launch configurations are
listed by ``python -m ctkd_inspect.train.launch``. Modules: :mod:`~ctkd_inspect.train.config` (the keys),
:mod:`~ctkd_inspect.train.data` (records, templates, the held-out split, the resumable order),
:mod:`~ctkd_inspect.train.models` (loading, checks, LoRA, tiny models), :mod:`~ctkd_inspect.train.runner` (the
loop), :mod:`~ctkd_inspect.train.instructions` (the offline instruction data set).

Importing this package imports neither torch nor accelerate; :func:`run_distillation` does.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "DistillConfig": "ctkd_inspect.train.config",
    "load_config": "ctkd_inspect.train.config",
    "run_distillation": "ctkd_inspect.train.runner",
    "RunResult": "ctkd_inspect.train.runner",
    "TrainingError": "ctkd_inspect.train.runner",
    "TrainingInterrupted": "ctkd_inspect.train.runner",
    "latest_checkpoint": "ctkd_inspect.train.runner",
    "list_checkpoints": "ctkd_inspect.train.runner",
    "tiny_model": "ctkd_inspect.train.models",
    "instruction_dataset": "ctkd_inspect.train.instructions",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ctkd_inspect.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
