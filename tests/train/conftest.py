"""Fixtures of the training tests: tiny random models (``from_config``) over real tokenizers' vocabularies (Llama 2
teacher, GPT-2 student: SeDi's main pair, both offline aliases), a small JSONL data set with the issue's bad inputs,
and helpers that run ``ctkd-inspect distill`` in this process or in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: (prompt, response): very different lengths, an empty and a one-token response, one longer than max_length
PAIRS = [
    ("Q: What is a group of cats called?\nA:", " A group of cats is called a clowder."),
    ("Translate:", " naïve café costs 3.50€ 🦙"),
    ("Say nothing:", ""),
    ("One word:", " Yes"),
    ("Write a long answer about tokenizers.\n", " Tokenizers split text into pieces; byte-level BPE, SentencePiece "
     "and WordPiece disagree on spaces, digits (3.14159) and emoji (🦙🐈), so a student and a teacher rarely see "
     "the same tokens, which is why cross-tokenizer distillation needs an alignment of the two."),
    ("Name a colour:", " Blue."),
    ("Add 2 and 3:", " 5"),
    ("What is the capital of France?", " Paris is the capital of France."),
]
CHAT = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there!"}]}


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """Tiny model folders: ``teacher`` (Llama 2 vocabulary), ``student`` (GPT-2), ``gpt2_teacher`` (GPT-2, wider:
    the teacher of same-tokenizer KD)."""
    from ctkd_inspect.train.models import tiny_model

    root = tmp_path_factory.mktemp("tiny-models")
    return {"teacher": tiny_model(root / "teacher", "llama2", hidden=48, seed=2),
            "student": tiny_model(root / "student", "gpt2", hidden=32, seed=1),
            "gpt2_teacher": tiny_model(root / "gpt2-teacher", "gpt2", hidden=48, seed=3)}


@pytest.fixture(scope="session")
def eval_file(tmp_path_factory):
    """Two held-out records (a separate file, so that every training record stays in the training set)."""
    path = tmp_path_factory.mktemp("eval") / "heldout.jsonl"
    rows = [{"prompt": "Q: What colour is the sky?\nA:", "response": " The sky is blue."},
            {"messages": [{"role": "user", "content": "Count to three."},
                          {"role": "assistant", "content": "1, 2, 3"}]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for prompt, response in PAIRS:
            handle.write(json.dumps({"prompt": prompt, "response": response}, ensure_ascii=False) + "\n")
        handle.write(json.dumps(CHAT) + "\n")
    return path


def write_config(path: Path, tiny: dict, data_file: Path, **values) -> Path:
    """A run.yaml for the tiny pair (values override the base keys)."""
    import yaml

    config = {"teacher": str(tiny["teacher"]), "student": str(tiny["student"]), "teacher_tokenizer": "llama2",
              "student_tokenizer": "gpt2", "data": str(data_file), "loss": "sedi", "max_length": 48, "eval_size": 2,
              "max_steps": 4, "per_device_batch_size": 2, "save_steps": 2, "eval_steps": 0, "eval_generate": 1,
              "max_new_tokens": 4, "learning_rate": 1e-3, "save_final_model": False,
              "output_dir": str(path.parent / "run")}
    config.update(values)
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run_cli(*args: str):
    """``ctkd-inspect ARGS`` in this process (click's runner); the result has exit_code, stdout and stderr."""
    from click.testing import CliRunner

    from ctkd_inspect.cli import common, main

    common._QUIET = False  # --quiet of an earlier in-process run must not silence this one
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def run_subprocess(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m ctkd_inspect.cli ARGS`` in a new process."""
    full_env = dict(os.environ, CTKD_INSPECT_QUIET="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "ctkd_inspect", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def metrics(run_dir: Path, kind: str = "train") -> list[dict]:
    """The rows of a run's metrics.jsonl: training rows (``loss``) or evaluation rows (``eval/loss``)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    key = "loss" if kind == "train" else "eval/loss"
    return [row for row in rows if key in row]


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the run's TensorBoard events, read back with TensorBoard's own reader: tag → [(step,
    value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}
