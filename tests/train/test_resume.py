"""Exact resume, interrupts and NaN: a run killed (SIGKILL) or interrupted (SIGINT) after a known step and resumed
gives bitwise the losses, terms, statistics and evaluations of the uninterrupted run, with every step logged once
(metrics.jsonl and TensorBoard); NaN logits stop the run naming the step and the term, and leave the last good
checkpoint as it was. The loss is DSKD: its projectors start from random values and are trained, so the loss's
own state must survive the resume too; sampled generations at the evaluations exercise the random state."""

from __future__ import annotations

import re
import shutil

import pytest

from .conftest import metrics, run_cli, run_subprocess, scalars, write_config

STEPS = 7
SETTINGS = {"loss": "dskd", "max_steps": STEPS, "save_steps": 3, "eval_steps": 3, "eval_generate": 1,
            "do_sample": True, "max_new_tokens": 3}
COMPARED = ("loss", "term/ce", "term/t2s_ce", "term/t2s_kd", "term/s2t_kd", "stat/t2s_accuracy",
            "stat/span_alignment_rate", "grad_norm", "lr", "epoch")


@pytest.fixture(scope="module")
def reference(tiny, data_file, tmp_path_factory):
    """The uninterrupted run."""
    folder = tmp_path_factory.mktemp("reference")
    config = write_config(folder / "run.yaml", tiny, data_file, **SETTINGS)
    result = run_cli("distill", "--config", str(config), "-q")
    assert result.exit_code == 0, result.output
    return folder / "run"


def assert_same_run(run, reference):
    rows, expected = metrics(run), metrics(reference)
    assert [row["step"] for row in rows] == list(range(1, STEPS + 1))  # every step once
    for row, want in zip(rows, expected):
        for key in COMPARED:
            assert row[key] == want[key], (row["step"], key)  # bitwise (JSON keeps every bit of a float)
    assert metrics(run, "eval") == metrics(reference, "eval")
    events, wanted = scalars(run), scalars(reference)
    for tag in ("loss", "term/t2s_kd", "stat/t2s_accuracy"):
        assert events[tag] == wanted[tag], tag  # one point per step, purged of the killed run's extra points


def test_a_killed_run_resumes_exactly(reference, tiny, data_file, tmp_path):
    config = write_config(tmp_path / "run.yaml", tiny, data_file, **SETTINGS)
    killed = run_subprocess("distill", "--config", str(config), env={"CTKD_INSPECT_TRAIN_KILL_AFTER_STEP": "5"})
    assert killed.returncode == -9, killed.stderr
    run = tmp_path / "run"
    assert [row["step"] for row in metrics(run)] == [1, 2, 3, 4, 5]  # logged before the kill, then lost
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["checkpoint-3"]

    resumed = run_cli("distill", "--config", str(config))
    assert resumed.exit_code == 0, resumed.output
    assert "resuming from" in resumed.stderr and "checkpoint-3 (step 3 of 7" in resumed.stderr
    assert_same_run(run, reference)


@pytest.mark.slow  # a second training subprocess; the kill test above covers resume in the default run
def test_ctrl_c_saves_a_checkpoint_exits_130_and_resumes_exactly(reference, tiny, data_file, tmp_path):
    config = write_config(tmp_path / "run.yaml", tiny, data_file, **SETTINGS)
    env = {"CTKD_INSPECT_TRAIN_KILL_AFTER_STEP": "4", "CTKD_INSPECT_TRAIN_KILL_SIGNAL": "INT"}
    interrupted = run_subprocess("distill", "--config", str(config), env=env)
    assert interrupted.returncode == 130, interrupted.stderr
    assert "interrupted" in interrupted.stderr and "step 4" in interrupted.stderr
    run = tmp_path / "run"
    # step 4 is not a save step: the interrupt saved it
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["checkpoint-3", "checkpoint-4"]
    assert "Traceback" not in interrupted.stderr

    resumed = run_cli("distill", "--config", str(config), "-q")
    assert resumed.exit_code == 0, resumed.output
    assert_same_run(run, reference)


def test_nan_logits_stop_the_run_naming_the_step_and_term_and_keep_the_last_good_checkpoint(reference, tiny,
                                                                                          data_file, tmp_path):
    config = write_config(tmp_path / "run.yaml", tiny, data_file, **SETTINGS)
    failed = run_cli("distill", "--config", str(config), "-q", "--debug-nan-step", "5")
    assert failed.exit_code == 1
    message = failed.stderr
    assert "step 5:" in message and re.search(r"'(ce|t2s_ce|t2s_kd|s2t_kd)' term", message), message
    assert "NaN" in message and "checkpoint-3" in message and "Traceback" not in message
    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["checkpoint-3"]
    # the checkpoint is the good state of step 3, byte for byte the uninterrupted run's
    for part in ("model.safetensors", "optimizer.bin", "scheduler.bin"):
        assert (run / "checkpoints/checkpoint-3" / part).read_bytes() == \
            (reference / "checkpoints/checkpoint-3" / part).read_bytes(), part
    assert [row["step"] for row in metrics(run)] == [1, 2, 3, 4]

    # the cause removed, the run continues from the good checkpoint exactly
    resumed = run_cli("distill", "--config", str(config), "-q")
    assert resumed.exit_code == 0, resumed.output
    assert_same_run(run, reference)


def test_resume_refuses_a_changed_run_and_a_fresh_start_over_a_previous_run(reference, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    config = run / "config.yaml"
    changed = run_cli("distill", "--config", str(config), "--output-dir", str(run), "--learning-rate", "0.5")
    assert changed.exit_code == 2
    assert "learning_rate: 0.001 → 0.5" in changed.stderr
    fresh = run_cli("distill", "--config", str(config), "--output-dir", str(run), "--resume", "never")
    assert fresh.exit_code == 2 and "holds a previous run" in fresh.stderr and "--overwrite-output-dir" in fresh.stderr
    missing = run_cli("distill", "--config", str(config), "--output-dir", str(run), "--resume", str(tmp_path))
    assert missing.exit_code == 2 and "not a complete checkpoint" in missing.stderr
    other = tmp_path / "other.jsonl"
    other.write_text('{"prompt": "A:", "response": " b"}\n' * 12, encoding="utf-8")
    moved = run_cli("distill", "--config", str(config), "--output-dir", str(run), "--data", str(other))
    assert moved.exit_code == 2 and "the training examples differ" in moved.stderr
    # nothing of the previous run was touched by the refusals
    assert [row["step"] for row in metrics(run)] == list(range(1, STEPS + 1))
    assert len(list((run / "checkpoints").iterdir())) == 3
