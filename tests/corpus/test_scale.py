"""Corpus runs at scale, as real processes: 12,984 real texts through the command with progress, reloaded and
checked against per-text align(); runs killed with SIGINT and SIGKILL midway and resumed give the uninterrupted
run's file; the Ray backend gives the local backend's file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from ctkd_inspect import align, load_tokenizer
from ctkd_inspect.columns import from_arrow
from ctkd_inspect.corpus.runner import run_corpus, work_folder_of
from ctkd_inspect.sources.corpus import llama_cpp_paragraphs

from .helpers import command, environment, run_cli, write_jsonl


@pytest.fixture(scope="module")
def paragraphs():
    texts = llama_cpp_paragraphs()
    assert len(texts) >= 10_000
    return texts


def _flat(column) -> np.ndarray:
    return column.combine_chunks().flatten().to_numpy(zero_copy_only=False)


@pytest.mark.slow
def test_ten_thousand_real_texts_through_the_command(tmp_path, paragraphs):
    data = write_jsonl(tmp_path / "docs.jsonl", paragraphs)
    out = tmp_path / "docs.parquet"
    proc = run_cli("llama3", "gemma2", data, "-o", out, "--workers", 2, "--summary", tmp_path / "s.json")
    assert proc.returncode == 0, proc.stderr
    # progress off a terminal: one line per stage
    lines = proc.stderr.splitlines()
    assert f"ctkd-inspect: aligning llama3 → gemma2 ({len(paragraphs):,} texts) ..." in lines
    assert any(line.startswith("ctkd-inspect: writing docs.parquet (") for line in lines)
    assert "alignment rate" in proc.stdout

    table = pq.read_table(out)
    assert table.num_rows == len(paragraphs)
    assert table.column("text").to_pylist() == paragraphs
    # every row's ids, against transformers' own batched encoding (another code path than the run's)
    for side, name in (("teacher", "llama3"), ("student", "gemma2")):
        encoded = load_tokenizer(name)(paragraphs)["input_ids"]
        assert np.array_equal(_flat(table.column(f"{side}_ids")), np.concatenate(encoded).astype(np.int64))
    # every row's groups, against per-text align()
    alignments = [align("llama3", "gemma2", text) for text in paragraphs]
    for side in ("teacher", "student"):
        expected = np.concatenate([a.group_of(side) for a in alignments])
        assert np.array_equal(_flat(table.column(f"{side}_group")), expected)
    rates = table.column("alignment_rate").to_pylist()
    assert rates == [a.metrics["alignment_rate"] for a in alignments]
    # a sample of whole rows: the reloaded Alignment equals align()
    for row in np.random.default_rng(0).choice(len(paragraphs), 60, replace=False).tolist():
        assert from_arrow(table, row).to_dict() == alignments[row].to_dict()
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["texts"] == len(paragraphs)
    assert summary["run"]["shards"] == -(-len(paragraphs) // 2048)  # 2048 texts per shard by default


@pytest.fixture(scope="module")
def kill_run(tmp_path_factory, paragraphs):
    """2000 real texts, 50 shards of 40, and the file of an uninterrupted run (one process)."""
    folder = tmp_path_factory.mktemp("kill")
    data = write_jsonl(folder / "data.jsonl", paragraphs[:2000])
    reference = folder / "reference.parquet"
    proc = run_cli("llama3", "gemma2", data, "-o", reference, "--workers", 1, "--shard-size", 40)
    assert proc.returncode == 0, proc.stderr
    return folder, data, pq.read_table(reference)


def _start_and_wait_for_shards(data, out, shards: int) -> subprocess.Popen:
    """Start a run (2 workers) in its own process group and return once ``shards`` shards are journaled."""
    process = subprocess.Popen(command("llama3", "gemma2", data, "-o", out, "--workers", 2, "--shard-size", 40),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment(),
                               start_new_session=True)
    journal = work_folder_of(out) / "done.jsonl"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if journal.exists() and len(journal.read_text().splitlines()) >= shards:
            return process
        if process.poll() is not None:
            raise AssertionError(f"the run ended before {shards} shards were done: {process.stderr.read()}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError("no shard finished")


@pytest.mark.slow
def test_ctrl_c_midway_then_the_same_command_equals_an_uninterrupted_run(kill_run):
    folder, data, reference = kill_run
    out = folder / "sigint.parquet"
    process = _start_and_wait_for_shards(data, out, 3)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted:" in stderr and "run the same command again to continue" in stderr
    assert not out.exists()
    done = len((work_folder_of(out) / "done.jsonl").read_text().splitlines())
    assert 3 <= done < 50
    again = run_cli("llama3", "gemma2", data, "-o", out, "--workers", 2, "--shard-size", 40)
    assert again.returncode == 0, again.stderr
    assert f"resuming: {done} shard(s)" in again.stderr
    assert pq.read_table(out).equals(reference, check_metadata=True)
    assert not work_folder_of(out).exists()


@pytest.mark.slow
def test_sigkill_midway_then_the_same_command_equals_an_uninterrupted_run(kill_run):
    import psutil

    folder, data, reference = kill_run
    out = folder / "sigkill.parquet"
    process = _start_and_wait_for_shards(data, out, 4)
    workers = psutil.Process(process.pid).children(recursive=True)
    os.kill(process.pid, signal.SIGKILL)  # the main process only, as an OOM killer would
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    # its workers notice and end instead of waiting forever
    _, alive = psutil.wait_procs(workers, timeout=60)
    assert not alive
    done = [json.loads(line)["shard"] for line in (work_folder_of(out) / "done.jsonl").read_text().splitlines()]
    assert 4 <= len(done) < 50
    again = run_cli("llama3", "gemma2", data, "-o", out, "--workers", 2, "--shard-size", 40)
    assert again.returncode == 0, again.stderr
    assert "resuming:" in again.stderr
    assert pq.read_table(out).equals(reference, check_metadata=True)


@pytest.mark.slow
def test_ray_backend_writes_the_local_backends_file(tmp_path, paragraphs):
    import ray

    data = write_jsonl(tmp_path / "data.jsonl", paragraphs[5000:6000])
    local = run_corpus("llama3", "gemma2", data, tmp_path / "local.parquet", workers=1, shard_texts=250)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        distributed = run_corpus("llama3", "gemma2", data, tmp_path / "ray.parquet", backend="ray", workers=2,
                                 shard_texts=250)
    finally:
        ray.shutdown()
    assert pq.read_table(tmp_path / "ray.parquet").equals(pq.read_table(tmp_path / "local.parquet"),
                                                          check_metadata=True)
    a, b = local.summary.to_dict(), distributed.summary.to_dict()
    assert a.pop("run")["backend"] == "local" and b.pop("run")["backend"] == "ray"
    assert a == b and a["texts"] == 1000
