"""The real pair: Gemma-3-270M (teacher) → SmolLM2-135M-Instruct (student), both from the offline sources, trained
with SeDi for a few steps on the CPU through ``ctkd-inspect distill``. On a fixed batch with a fixed seed the
distillation term (SeDi's KL to its pseudo targets) and the loss fall from the first steps to the last, and the
student, prompted through its own chat template, answers a held-out question close to the reference (Rouge-L)."""

from __future__ import annotations

import json

import pytest

from .conftest import metrics, run_cli, scalars

pytestmark = [pytest.mark.slow, pytest.mark.models]

TRAIN = [{"prompt": "Name the largest planet in the solar system.",
          "response": "Jupiter is the largest planet in the solar system."},
         {"prompt": "What do bees make?", "response": "Bees make honey and beeswax."}]
HELD_OUT = {"prompt": "What is the capital of France?", "response": "The capital of France is Paris."}


def test_gemma3_to_smollm2_lowers_the_distillation_loss(tmp_path):
    import yaml

    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in TRAIN), encoding="utf-8")
    (tmp_path / "eval.jsonl").write_text(json.dumps(HELD_OUT) + "\n", encoding="utf-8")
    config = {"teacher": "gemma3", "student": "smollm2", "data": str(tmp_path / "train.jsonl"),
              "eval_data": str(tmp_path / "eval.jsonl"), "loss": "sedi", "prompt_response_as_chat": True,
              "max_length": 96, "per_device_batch_size": 2, "max_steps": 6, "learning_rate": 5e-5,
              "lr_scheduler": "constant", "seed": 0, "eval_steps": 0, "eval_generate": 1, "max_new_tokens": 12,
              "save_checkpoints": False, "save_final_model": False, "output_dir": str(tmp_path / "run")}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = run_cli("distill", "--config", str(tmp_path / "run.yaml"), "-q")
    assert result.exit_code == 0, result.output

    rows = metrics(tmp_path / "run")
    assert [row["step"] for row in rows] == [1, 2, 3, 4, 5, 6]
    # one batch (both examples) at every step: the curves compare like with like
    assert len({row["tokens"] for row in rows}) == 1

    def mean(key, part):
        values = [row[key] for row in part]
        return sum(values) / len(values)

    assert mean("term/kl", rows[-2:]) < 0.8 * mean("term/kl", rows[:2])
    assert mean("loss", rows[-2:]) < mean("loss", rows[:2])
    assert 0.0 < rows[0]["stat/span_alignment_rate"] < 1.0  # two real tokenizers that cut the text differently

    evaluation = metrics(tmp_path / "run", "eval")[-1]
    assert evaluation["eval/rougeL"] > 0.3, evaluation
    sample = json.loads((tmp_path / "run" / "samples" / "step-6.jsonl").read_text().splitlines()[0])
    assert "Paris" in sample["generation"]
    assert {"term/kl", "term/ce", "term/entropy", "stat/alignment_rate"} <= set(scalars(tmp_path / "run"))
