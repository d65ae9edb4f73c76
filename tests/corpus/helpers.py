"""Shared by the corpus tests: data files and running the command in a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def write_jsonl(path: Path, texts, key: str = "text") -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for text in texts:
            handle.write(json.dumps({key: text}) + "\n")
    return path


def command(*args) -> list[str]:
    return [sys.executable, "-m", "ctkd_inspect", "corpus", *map(str, args)]


def environment() -> dict:
    """The environment of a real `ctkd-inspect` process: offline, no terminal (progress as one line per stage)."""
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "COLUMNS": "200"})
    env.pop("CTKD_INSPECT_QUIET", None)
    return env


def run_cli(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), capture_output=True, text=True, env=environment(), timeout=timeout)
