"""The documented ``accelerate launch`` command with the packaged DDP configuration for CPUs runs two processes
(gloo) and takes the same steps as one process with the doubled batch, and as one process with two accumulated
micro-batches: equal losses, terms, statistics, gradient norms and evaluations to float tolerance (the reduction
divides the summed token losses by the global token count of the step, see ctkd_inspect.train.runner)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import metrics, run_cli, write_config

COMPARED = ("loss", "term/ce", "term/t2s_ce", "term/t2s_kd", "term/s2t_kd", "stat/t2s_accuracy",
            "stat/span_alignment_rate", "grad_norm", "tokens")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _assert_close(rows, expected):
    assert [row["step"] for row in rows] == [row["step"] for row in expected]
    for row, want in zip(rows, expected):
        for key in row:
            if key.startswith(("eval/", "term/", "stat/")) or key in COMPARED:
                assert row[key] == pytest.approx(want[key], rel=2e-5, abs=1e-6), (row["step"], key)


@pytest.mark.slow  # two launcher processes and three training runs (about a minute on two cores)
def test_two_gloo_processes_take_the_steps_of_one_process_with_the_doubled_batch(tiny, data_file, tmp_path):
    settings = {"loss": "dskd", "max_steps": 3, "save_steps": 0, "eval_steps": 2, "eval_generate": 2,
                "eval_size": 3}
    launch_config = subprocess.run([sys.executable, "-m", "ctkd_inspect.train.launch", "multi_cpu"],
                                   capture_output=True, text=True, check=True).stdout.strip()
    assert Path(launch_config).is_file()
    ddp = write_config(tmp_path / "ddp.yaml", tiny, data_file, per_device_batch_size=1,
                       output_dir=str(tmp_path / "ddp"), **settings)
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [str(accelerate), "launch", "--config_file", launch_config, "--num_processes", "2",
               "--main_process_port", str(_free_port()), "-m", "ctkd_inspect.train", "--config", str(ddp)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, CTKD_INSPECT_QUIET="1"))
    assert done.returncode == 0, done.stderr[-3000:]

    single = write_config(tmp_path / "single.yaml", tiny, data_file, per_device_batch_size=2,
                          output_dir=str(tmp_path / "single"), **settings)
    assert run_cli("distill", "--config", str(single), "-q").exit_code == 0
    accumulated = write_config(tmp_path / "accumulated.yaml", tiny, data_file, per_device_batch_size=1,
                               gradient_accumulation_steps=2, output_dir=str(tmp_path / "accumulated"), **settings)
    assert run_cli("distill", "--config", str(accumulated), "-q").exit_code == 0

    ddp_rows = metrics(tmp_path / "ddp")
    assert [row["step"] for row in ddp_rows] == [1, 2, 3]
    for other in ("single", "accumulated"):
        _assert_close(ddp_rows, metrics(tmp_path / other))
        _assert_close(metrics(tmp_path / "ddp", "eval"), metrics(tmp_path / other, "eval"))
    # the checkpoint of a DDP run records its processes; both ranks' random states are saved
    checkpoint = tmp_path / "ddp" / "checkpoints" / "checkpoint-3"
    assert (checkpoint / "random_states_0.pkl").is_file() and (checkpoint / "random_states_1.pkl").is_file()
