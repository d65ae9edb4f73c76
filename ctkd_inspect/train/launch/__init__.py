"""Packaged Accelerate launch configurations for distillation runs.

``python -m ctkd_inspect.train.launch`` lists them; ``python -m ctkd_inspect.train.launch NAME`` prints the path of
one, for ``accelerate launch --config_file $(python -m ctkd_inspect.train.launch multi_gpu) -m ctkd_inspect.train
--config run.yaml``:

- ``single_gpu``: one process on one GPU, bf16 autocast;
- ``multi_gpu``: DDP over the GPUs of a machine (``--num_processes N``), bf16 autocast;
- ``fsdp``: FSDP 2 with transformer-layer wrapping, bf16 autocast;
- ``multi_cpu``: DDP over CPU processes with gloo (what the tests run).
"""

from __future__ import annotations

import difflib
from pathlib import Path

from ...errors import InputError

__all__ = ["CONFIGS", "config_path"]

#: name -> what it runs
CONFIGS: dict[str, str] = {
    "single_gpu": "one process on one GPU, bf16 autocast",
    "multi_gpu": "DDP over the GPUs of one machine (--num_processes N), bf16 autocast",
    "fsdp": "FSDP 2, each decoder layer of the student sharded, bf16 autocast",
    "multi_cpu": "DDP over CPU processes with gloo (--num_processes N)",
}


def config_path(name: str) -> Path:
    """The path of a packaged launch configuration (``single_gpu``, ``multi_gpu``, ``fsdp``, ``multi_cpu``; a
    ``.yaml`` suffix is accepted).

    Raises:
        InputError: an unknown name (with the closest).
    """
    key = name.removesuffix(".yaml").replace("-", "_")
    if key not in CONFIGS:
        close = difflib.get_close_matches(key, list(CONFIGS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError(f"unknown launch configuration {name!r}{hint} (packaged: {', '.join(CONFIGS)})")
    return Path(__file__).resolve().parent / f"{key}.yaml"
