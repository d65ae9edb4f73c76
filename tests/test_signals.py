"""Model signals from the two real small LMs (SmolLM2-135M, Gemma-3-270M, GGUFs from PyPI) and the cdm engine."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ctkd_inspect import align
from ctkd_inspect.errors import InputError, ModelError
from ctkd_inspect.signals import compute_signals, resolve_model

pytestmark = pytest.mark.models

TEXT = "The capital of France is Paris. Knowledge distillation needs aligned tokens."


@pytest.fixture(scope="module")
def signals(tok, tmp_path_factory):
    cache = tmp_path_factory.mktemp("signals")
    out = {}
    for name in ("smollm2", "gemma3"):
        ids = tok(name)(TEXT)["input_ids"]
        out[name] = compute_signals(name, ids, tokenizer=tok(name), top_k=20, cache_dir=cache)
    return out, cache


def test_shapes_and_values(signals):
    values, _ = signals
    for name, dim in (("smollm2", 576), ("gemma3", 640)):
        s = values[name]
        n = len(s.ids)
        assert s.entropy.shape == (n,) and np.all(s.entropy >= 0)
        assert s.topk_ids.shape == (n, 20) and np.all(np.diff(s.topk_probs, axis=1) <= 1e-6)
        assert np.all(s.topk_probs.sum(axis=1) <= 1 + 1e-5)
        assert s.input_embeddings.shape == (n, dim) and s.hidden_states.shape == (n, dim)


def test_predictions_make_sense(signals, tok):
    """Position t predicts token t + 1: after 'The capital of France is', both models rank ' Paris' high."""
    values, _ = signals
    for name in ("smollm2", "gemma3"):
        s = values[name]
        tokens = [s.id_to_token(i) for i in s.ids]
        before_paris = next(k for k, t in enumerate(tokens) if "Paris" in t) - 1
        top = [s.id_to_token(i) for i in s.topk_ids[before_paris][:10]]
        assert any("Paris" in t for t in top), (name, top)
        # entropy is the entropy of the full next-token distribution: a confident position is below a vague one
        assert s.entropy[before_paris] < s.entropy.max()


def test_signals_are_cached_on_disk(signals, tok):
    from ctkd_inspect import signals as module

    values, cache = signals
    ids = tok("smollm2")(TEXT)["input_ids"]
    module._MEMORY.clear()
    loaded = dict(module._MODELS)
    module._MODELS.clear()  # a disk hit must not need the model
    try:
        again = compute_signals("smollm2", ids, tokenizer=tok("smollm2"), top_k=20, cache_dir=cache)
        assert not module._MODELS
    finally:
        module._MODELS.update(loaded)
    assert np.allclose(again.entropy, values["smollm2"].entropy)
    assert np.array_equal(again.topk_ids, values["smollm2"].topk_ids)


def test_mismatched_vocabulary_and_context_are_refused(tok, tmp_path):
    gemma_ids = tok("gemma3")("Paris, naïve café")["input_ids"]
    assert max(gemma_ids) >= 49152
    with pytest.raises(ModelError, match="do not match"):
        compute_signals("smollm2", gemma_ids, cache_dir=tmp_path)
    with pytest.raises(ModelError, match="longer than model"):
        compute_signals("smollm2", np.ones(8193, dtype=np.int64), cache_dir=tmp_path)
    with pytest.raises(InputError):
        compute_signals("smollm2", [], cache_dir=tmp_path)


def test_a_model_of_another_tokenizer_is_refused_before_any_forward_pass(tok, tmp_path, monkeypatch):
    """Llama 3's ids all fit Gemma-3-270M's 262k-row embedding, so only the model's own vocabulary (its GGUF
    header) shows that they name other tokens; align() checks both sides before the first forward pass."""
    from click.testing import CliRunner

    from ctkd_inspect import signals as module
    from ctkd_inspect.cli import main

    llama = tok("llama3")
    with pytest.raises(ModelError, match="does not belong to this tokenizer"):
        compute_signals("gemma3", llama("Hello world")["input_ids"], tokenizer=llama, cache_dir=tmp_path)
    forwards = []
    monkeypatch.setattr(module, "_forward", lambda *args: forwards.append(args) or pytest.fail("forward ran"))
    with pytest.raises(ModelError, match="does not belong"):
        align("llama3", "smollm2", "Hello world, this is a test.", engine="cdm", teacher_model="gemma3")
    assert forwards == []
    out = CliRunner().invoke(main, ["llama3", "smollm2", "Hello world.", "--engine", "cdm", "--teacher-model",
                                    "gemma3"])
    assert out.exit_code == 3 and "does not belong" in out.output and "Traceback" not in out.output


def test_chunked_distributions_equal_the_full_logits(tok, monkeypatch):
    """Entropy and top-k come from the final hidden states a few positions at a time; they must equal what the
    model's own full logits give."""
    import torch

    from ctkd_inspect import signals as module

    monkeypatch.setattr(module, "CHUNK", 5)
    ids = np.asarray(tok("gemma3")(TEXT)["input_ids"])
    source = resolve_model("gemma3")
    model = module.load_model(source)
    chunked = module._forward(model, source, ids, 10, None)
    with torch.no_grad():
        log_probs = torch.log_softmax(model(input_ids=torch.from_numpy(ids)[None]).logits[0].float(), -1)
    assert np.allclose(chunked.entropy, -(log_probs.exp() * log_probs).sum(-1).double().numpy(), atol=1e-4)
    assert np.array_equal(chunked.topk_ids[:, :3], torch.topk(log_probs, 3, -1).indices.numpy())


def test_model_resolution_errors(tmp_path):
    with pytest.raises(ModelError, match="names a tokenizer but no model"):
        resolve_model("llama3")
    with pytest.raises(ModelError, match="unknown model"):
        resolve_model("no-such-model")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(ModelError, match="is not a model"):
        resolve_model(str(tmp_path / "x.txt"))


def test_cdm_with_the_two_real_models():
    result = align("gemma3", "smollm2", TEXT, engine="cdm")
    assert result.options["teacher_model"] == "gemma3" and result.options["student_model"] == "smollm2"
    assert set(result.options["teacher_factors"]) <= {3, 4, 5} and len(set(result.options["teacher_factors"])) > 1
    assert 0 <= result.metrics["top1_accuracy"] <= 1
    assert result.metrics["sequence_alignment_rate"] > 0.5


def test_cli_cdm_offline():
    from click.testing import CliRunner

    from ctkd_inspect.cli import main

    out = CliRunner().invoke(main, ["gemma3", "smollm2", TEXT, "--engine", "cdm", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["engine"] == "cdm" and data["path"] and data["cdm_groups"]
    assert "top1_accuracy" in data["metrics"]
    out = CliRunner().invoke(main, ["llama3", "gemma2", TEXT, "--engine", "mined", "--json"])
    assert out.exit_code == 0 and json.loads(out.stdout)["metrics"]["onehot_fallback_rate"] is not None
    out = CliRunner().invoke(main, ["llama3", "gemma2", TEXT, "--engine", "cdm"])
    assert out.exit_code == 2 and "teacher_model" in out.output
