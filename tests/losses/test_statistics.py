"""Target statistics without training: the core function and the ``targets`` command, with the real small models
(Gemma-3-270M → SmolLM2-135M) on a few real texts (slow), and their bad input (fast)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ctkd_inspect.cli import main
from ctkd_inspect.errors import InputError
from ctkd_inspect.losses.statistics import _pairs, target_statistics

TEXTS = [
    ("Q: What is the capital of France?\n", " The capital of France is Paris."),
    ("Translate to French:\n", " The cat sleeps on the naïve café's terrace."),
    ("Complete:\n", " for i in range(10): print(i ** 2)"),
]


def test_data_items_become_prompt_response_pairs():
    from ctkd_inspect.data import TextRecord

    chat = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]
    record = TextRecord("Q?\nA.", 1, response_start=3)
    assert _pairs(["plain", ("p", " r"), chat, record]) == [("", "plain"), ("p", " r"),
                                                            ("user: Hi?\nassistant:", " Hello."), ("Q?\n", "A.")]
    with pytest.raises(InputError, match="data item 0"):
        _pairs([3])


def test_bad_options_are_refused_before_any_model_loads():
    with pytest.raises(InputError, match="methods"):
        target_statistics(TEXTS, methods=["dwa"])
    with pytest.raises(InputError, match="no examples"):
        target_statistics([])
    with pytest.raises(InputError, match="batch_size"):
        target_statistics(TEXTS, batch_size=0)


def test_cli_usage_errors():
    runner = CliRunner()
    out = runner.invoke(main, ["targets", "gemma3", "smollm2", "--methods", "mined,nope"])
    assert out.exit_code == 2 and "choose from mined, cdm, sedi" in out.output
    out = runner.invoke(main, ["targets", "gemma3", "smollm2", "--prompt-field", "q"])
    assert out.exit_code == 2 and "together" in out.output


def test_a_tokenizer_without_a_model_is_a_clear_error():
    out = CliRunner().invoke(main, ["targets", "llama2", "gpt2", "--limit", "1"])
    assert out.exit_code == 3 and "names a tokenizer but no model" in out.output


@pytest.mark.slow
@pytest.mark.models
def test_real_models_statistics_and_the_command(tmp_path):
    result = target_statistics(TEXTS, "gemma3", "smollm2", max_length=32, vocab_mapping="exact", top_k=20)
    assert result["examples"] == 3 and result["positions"] > 20
    stats, counts = result["methods"], result["counts"]
    for method in ("mined", "cdm", "sedi"):
        for key, value in stats[method].items():
            assert value is None or 0.0 <= value <= 1.0, (method, key)
        # every rate over positions counts each student loss position once
        assert counts[method]["top1_accuracy"][1] == result["positions"]
    # MinED: a one-hot target's top-1 is the ground truth, the others are the teacher's
    fallback, kept = counts["mined"]["onehot_fallback_rate"][0], counts["mined"]["top1_accuracy_teacher"][1]
    assert fallback + kept == result["positions"]
    assert counts["mined"]["top1_accuracy"][0] == fallback + counts["mined"]["top1_accuracy_teacher"][0]
    assert stats["cdm"]["onehot_fallback_rate"] == 0.0  # CDM has no one-hot target
    assert stats["sedi"]["onehot_fallback_rate"] < stats["mined"]["onehot_fallback_rate"]
    # the command gives the same numbers on the same data, read from JSONL with prompt/response fields
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"q": p.rstrip("\n"), "a": r}) + "\n" for p, r in TEXTS), encoding="utf-8")
    out = CliRunner().invoke(main, ["targets", "gemma3", "smollm2", "--data", str(data), "--prompt-field", "q",
                                    "--response-field", "a", "--max-length", "32", "--vocab-mapping", "exact",
                                    "--top-k", "20", "--json"])
    assert out.exit_code == 0, out.output
    from_cli = json.loads(out.stdout)
    assert from_cli["examples"] == 3 and from_cli["methods"] == stats
    table = CliRunner().invoke(main, ["targets", "gemma3", "smollm2", "--data", str(data), "--prompt-field", "q",
                                      "--response-field", "a", "--max-length", "32", "--vocab-mapping", "exact",
                                      "--methods", "sedi", "--top-k", "20"])
    assert table.exit_code == 0 and "sedi" in table.stdout and "Top-1" in table.stdout
