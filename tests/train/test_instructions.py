"""The offline instruction data set: deterministic, every evals record passes the corpus filters (checked here
independently), no left-out set appears, HumanEval complete, documentation continuations split inside one
paragraph, and the JSONL it writes trains through the run's own reader."""

from __future__ import annotations

import gzip
import json

import pytest

from ctkd_inspect.sources.assets import EVALS_INSTRUCTION_SETS, asset_path
from ctkd_inspect.train.instructions import DOCS_INSTRUCTION, instruction_dataset


@pytest.fixture(scope="module")
def records():
    return instruction_dataset()


def test_the_three_parts_and_their_sizes(records):
    kinds = [r["source"].split("/")[0] for r in records]
    assert kinds == sorted(kinds, key=["evals", "humaneval", "docs"].index)  # the documented order
    assert kinds.count("humaneval") == 164 and kinds.count("docs") == 200
    assert 300 <= kinds.count("evals") <= 600
    assert instruction_dataset(sources=("humaneval",), max_docs=5) == [r for r in records
                                                                       if r["source"].startswith("humaneval")]
    assert instruction_dataset() == records  # deterministic


def test_every_evals_record_passes_the_filters(records):
    evals = [r for r in records if r["source"].startswith("evals/")]
    per_file: dict[str, int] = {}
    for record in evals:
        text = record["prompt"] + record["response"]
        assert record["prompt"].startswith("Instruction: ") and record["prompt"].endswith("\n\nResponse:")
        assert 200 <= len(text) <= 2500
        assert len(text.encode("ascii", "ignore")) >= 0.98 * len(text)  # ASCII characters are one byte each
        assert sum(1 for ch in text if ch.isalpha() or ch == " ") >= 0.78 * len(text)
        assert len(record["response"].split()) >= 6
        assert record["source"].split("/")[1] in EVALS_INSTRUCTION_SETS
        per_file[record["source"]] = per_file.get(record["source"], 0) + 1
    assert max(per_file.values()) == 40
    for dropped in ("rot13", "vigenere", "raven-matrices", "sql", "manga-translation", "GOL"):
        assert not any(f"/{dropped}/" in r["source"] for r in evals)


def test_humaneval_is_complete(records):
    with gzip.open(asset_path("instructions", "humaneval/HumanEval.jsonl.gz"), "rt") as handle:
        problems = [json.loads(line) for line in handle if line.strip()]
    mine = [r for r in records if r["source"].startswith("humaneval/")]
    assert [(r["prompt"], r["response"]) for r in mine] == [(p["prompt"], p["canonical_solution"]) for p in problems]


def test_documentation_continuations(records):
    docs = [r for r in records if r["source"].startswith("docs/")]
    for record in docs:
        first = record["prompt"][len(DOCS_INSTRUCTION) + 1:-len("\n\nResponse:")]
        second = record["response"][1:]
        assert record["prompt"].startswith(DOCS_INSTRUCTION + "\n") and record["response"].startswith(" ")
        assert first[-1] in ".!?" and len(first) >= 60 and len(second) >= 60


def test_the_written_file_is_training_data(tmp_path, tok):
    from ctkd_inspect.train.config import load_config
    from ctkd_inspect.train.data import load_pairs

    path = tmp_path / "instructions.jsonl"
    written = instruction_dataset(path, sources=("evals",))
    config = load_config(None, {"teacher": "gemma3", "student": "smollm2", "data": str(path), "eval_size": 10})
    train, heldout, report = load_pairs(config, tok("smollm2"), tok("gemma3"))
    assert len(train) + len(heldout) == len(written) and len(heldout) == 10 and not report.skipped
    assert set(train) | set(heldout) == {(r["prompt"], r["response"]) for r in written}
