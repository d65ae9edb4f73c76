"""Every loss trains through ``ctkd-inspect distill`` with tiny random models over real vocabularies (Llama 2 →
GPT-2; GPT-2 → GPT-2 for same-tokenizer KD): a few steps each, a checkpoint and TensorBoard events written, every
loss term and the alignment statistics read back from the event files with one point per logged step, and the
logged loss equal to the weighted sum of its logged terms (the losses' documented weights)."""

from __future__ import annotations

import json
import math

import pytest

from .conftest import metrics, run_cli, scalars, write_config

#: loss → (config overrides, term → weight as each loss documents its defaults, statistics it reports)
LOSSES = {
    "mined": ({"loss_options": {"vocab_mapping": "exact"}}, {"ce": 0.5, "kd": 0.5},
              {"alignment_rate", "onehot_fallback_rate", "topk_mapping_coverage", "top1_accuracy"}),
    "cdm": ({}, {"ce": 0.5, "kd": 0.5}, {"alignment_rate", "topk_mapping_coverage", "top1_accuracy"}),
    "sedi": ({}, {"ce": 0.5, "kl": 0.5, "entropy": 0.5},
             {"alignment_rate", "topk_mapping_coverage", "onehot_fallback_rate", "top1_accuracy"}),
    "dskd": ({}, {"ce": 0.5, "t2s_ce": 0.5, "t2s_kd": 0.5, "s2t_kd": 0.5}, {"t2s_accuracy", "top1_accuracy"}),
    "dwa": ({}, {"ce": 0.5, "t2s_ce": 0.5, "t2s_kd": 0.5, "s2t_kd": 0.5, "dtw_hidden": 0.2, "dtw_embed": 0.2},
            {"t2s_accuracy", "gate", "top1_accuracy"}),
    "uld": ({"loss_options": {"grouping": "gold"}}, {"ce": 0.0, "uld": 1.0}, {"alignment_rate"}),
    "kd": ({"teacher_tokenizer": "gpt2"}, {"ce": 0.5, "kd": 0.5}, {"top1_accuracy"}),
    "sft": ({}, {"ce": 1.0}, set()),
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_loss_trains_through_the_command(name, tiny, data_file, eval_file, tmp_path):
    overrides, weights, stats = LOSSES[name]
    if name == "kd":
        overrides = {**overrides, "teacher": str(tiny["gpt2_teacher"])}
    # every step's batch holds all nine records: an empty and a one-token response, one cut at max_length, a chat
    config = write_config(tmp_path / "run.yaml", tiny, data_file, loss=name, max_steps=2, save_steps=2,
                          eval_steps=0, eval_generate=1, eval_data=str(eval_file), per_device_batch_size=9,
                          **overrides)
    result = run_cli("distill", "--config", str(config), "-q")
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    report = json.loads((run / "data_report.json").read_text())
    assert (report["train"], report["heldout"], report["empty_responses"], report["truncated"]) == (9, 2, 1, 1)

    # a complete checkpoint of step 2: model (student + the loss's projectors), optimizer, scheduler, RNG, run state
    checkpoint = run / "checkpoints" / "checkpoint-2"
    for part in ("model.safetensors", "optimizer.bin", "scheduler.bin", "random_states_0.pkl",
                 "custom_checkpoint_0.pkl", "trainer_state.json"):
        assert (checkpoint / part).is_file(), part

    # TensorBoard: every term and every statistic, one point per logged step, equal to metrics.jsonl
    rows = metrics(run)
    assert [row["step"] for row in rows] == [1, 2]
    events = scalars(run)
    expected = {"loss", "lr", "grad_norm", "stat/span_alignment_rate"} | {f"term/{t}" for t in weights} \
        | {f"stat/{s}" for s in stats}
    assert expected <= set(events), sorted(expected - set(events))
    for tag in expected:
        assert [step for step, _ in events[tag]] == [1, 2], tag
        for (step, value), row in zip(events[tag], rows):
            assert value == pytest.approx(row[tag], rel=1e-6, abs=1e-7), (tag, step)  # stored as float32
    for tag in expected:
        if tag.startswith("stat/"):
            assert all(0.0 <= value <= 1.0 for _, value in events[tag]), tag

    # the logged loss is the weighted sum of the logged terms (both token-weighted; float32 per example)
    for row in rows:
        assert math.isfinite(row["loss"])
        assert row["loss"] == pytest.approx(sum(w * row[f"term/{t}"] for t, w in weights.items()), rel=1e-6)

    # the end-of-run evaluation on the held-out examples
    evaluation = metrics(run, "eval")
    assert [row["step"] for row in evaluation] == [2]
    assert {"eval/loss", "eval/rougeL", "eval/stat/span_alignment_rate"} <= set(evaluation[0])
    assert {f"eval/{tag}" for tag in expected if tag.startswith(("term/", "stat/"))} <= set(evaluation[0])
    assert (run / "samples" / "step-2.jsonl").is_file()


def test_span_alignment_rate_is_logged_for_every_loss(tiny, data_file, tmp_path):
    """The span alignment rate is a property of the two tokenizations, logged even for SFT: one tokenizer aligns
    nearly every token 1:1, Llama 2 and GPT-2 far fewer."""
    same = write_config(tmp_path / "same.yaml", tiny, data_file, loss="sft", teacher=str(tiny["gpt2_teacher"]),
                        teacher_tokenizer="gpt2", max_steps=1, save_steps=0, eval_size=0, per_device_batch_size=9,
                        output_dir=str(tmp_path / "same"))
    cross = write_config(tmp_path / "cross.yaml", tiny, data_file, loss="sft", max_steps=1, save_steps=0,
                         eval_size=0, per_device_batch_size=9, output_dir=str(tmp_path / "cross"))
    for config in (same, cross):
        result = run_cli("distill", "--config", str(config), "-q", "--json")
        assert result.exit_code == 0
        summary = json.loads(result.stdout)  # --json: the run's summary on stdout
        assert summary["step"] == 1 and summary["last"]["step"] == 1 and summary["data"]["train"] == 9
    same_rate = metrics(tmp_path / "same")[0]["stat/span_alignment_rate"]
    cross_rate = metrics(tmp_path / "cross")[0]["stat/span_alignment_rate"]
    # one tokenizer pairs every token with itself, except the byte pieces of one character (🦙, €, ï: 3:3 groups)
    assert 0.9 <= same_rate < 1.0
    assert 0.3 < cross_rate < same_rate
