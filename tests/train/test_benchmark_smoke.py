"""benchmarks/run_real_distillation.py --smoke: the longer GPU run's script works end to end on a CPU (tiny random
models on the Gemma 3 and SmolLM2 vocabularies, the offline instruction data, two steps a method) and writes the
result JSON the README's figures will come from."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "run_real_distillation.py"


@pytest.mark.slow  # three short runs over 262k- and 49k-token vocabularies
def test_the_real_run_script_works_in_smoke_mode(tmp_path):
    output = tmp_path / "distill.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--methods", "sft,sedi,dskd",
                           "--work-dir", str(tmp_path / "runs"), "--output", str(output)], capture_output=True,
                          text=True, timeout=1200, env=dict(os.environ, CTKD_INSPECT_QUIET="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(output.read_text())
    assert result["smoke"] is True and set(result["methods"]) == {"sft", "sedi", "dskd"}
    assert result["settings"]["teacher_tokenizer"] == "gemma3" and result["settings"]["student_tokenizer"] == "smollm2"
    for method in result["methods"].values():
        assert method["steps"] == [1, 2]
        assert len(method["curves"]["loss"]) == 2 and all(math.isfinite(v) for v in method["curves"]["loss"])
        assert "stat/span_alignment_rate" in method["curves"]
        assert math.isfinite(method["eval_loss"]) and 0.0 <= method["rougeL"] <= 1.0
        assert method["seconds"] > 0 and method["peak_memory_bytes"] > 0
    assert set(result["methods"]["sedi"]["curves"]) >= {"term/kl", "term/entropy", "stat/alignment_rate"}
    assert f"sedi      loss {result['methods']['sedi']['curves']['loss'][0]:.4f}" in done.stdout
