"""Model signals from the two real small LMs (SmolLM2-135M, Gemma-3-270M, GGUFs from PyPI) and the cdm engine."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ctkd_inspect import Alignment, align
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


#: The models' published output sizes (rows of the LM head): SmolLM2-135M 49,152, Gemma-3-270M 262,144.
VOCAB = {"smollm2": 49_152, "gemma3": 262_144}


def entropy_bounds(top_probs: np.ndarray, vocab: int) -> tuple[np.ndarray, np.ndarray]:
    """Bounds on the entropy of a distribution over ``vocab`` ids from its top-k probabilities alone: at least the
    top-k terms −Σ p·log p (the others are ≥ 0), at most that plus the rest r = 1 − Σ p spread evenly over the
    other ids, r·log((vocab − k)/r) (the grouping property of entropy)."""
    p = np.asarray(top_probs, dtype=np.float64)
    head = -(p * np.log(np.clip(p, 1e-300, None))).sum(-1)
    rest = np.clip(1 - p.sum(-1), 0, None)
    tail = np.where(rest > 0, rest * np.log((vocab - p.shape[-1]) / np.where(rest > 0, rest, 1)), 0.0)
    return head, head + tail


def test_shapes_and_values(signals):
    values, _ = signals
    for name, dim in (("smollm2", 576), ("gemma3", 640)):
        s = values[name]
        n = len(s.ids)
        assert s.entropy.shape == (n,) and s.topk_ids.shape == (n, 20)
        assert np.all(np.diff(s.topk_probs, axis=1) <= 1e-6)
        assert s.input_embeddings.shape == (n, dim) and s.hidden_states.shape == (n, dim)
        # every position's entropy is the entropy of the distribution its top-20 belong to
        low, high = entropy_bounds(s.topk_probs, VOCAB[name])
        assert np.all(s.entropy >= low - 1e-4) and np.all(s.entropy <= high + 1e-4)


def test_predictions_make_sense(signals, tok):
    """Position t predicts token t + 1: after 'The capital of France is', both models rank ' Paris' high."""
    values, _ = signals
    for name in ("smollm2", "gemma3"):
        s = values[name]
        tokens = [s.id_to_token(i) for i in s.ids]
        before_paris = next(k for k, t in enumerate(tokens) if "Paris" in t) - 1
        top = [s.id_to_token(i) for i in s.topk_ids[before_paris][:10]]
        assert any("Paris" in t for t in top), (name, top)
        # a confident position: most of the mass is in the top 20, so the bounds pin its entropy down closely
        low, high = entropy_bounds(s.topk_probs[before_paris:before_paris + 1], VOCAB[name])
        assert low[0] - 1e-4 <= s.entropy[before_paris] <= high[0] + 1e-4
        assert s.topk_probs[before_paris].sum() > 0.5


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


def rows_of(result) -> dict[int, list[int]]:
    """For each student token index, the teacher token indices its DTW path cells pair it with."""
    rows: dict[int, list[int]] = {}
    for i, j in result.extra["path"]:
        rows.setdefault(j, []).append(i)
    return rows


def test_cdm_with_the_two_real_models(tok):
    """The metrics by their definitions, recomputed here from the path, the tokens and the models' predictions."""
    from ctkd_inspect.engines.dtw import canonical_string
    from ctkd_inspect.vocab import canonical_bytes

    result = align("gemma3", "smollm2", TEXT, engine="cdm")
    assert result.options["teacher_model"] == "gemma3" and result.options["student_model"] == "smollm2"
    assert set(result.options["teacher_factors"]) <= {3, 4, 5} and len(set(result.options["teacher_factors"])) > 1
    t, s = result.teacher, result.student
    rows = rows_of(result)
    students = [j for j in range(len(s)) if not s.special[j]]
    # CDM's sequence alignment rate: a student token whose row is one teacher token with the same string
    same = [len(rows[j]) == 1 and canonical_string(t, rows[j][0]) == canonical_string(s, j) for j in students]
    assert result.metrics["sequence_alignment_rate"] == pytest.approx(sum(same) / len(students))
    # SeDi's Top-1: at student positions with a next token, the 1:1 teacher's top prediction equals that next token
    teacher_top1 = compute_signals("gemma3", t.ids, tokenizer=tok("gemma3")).topk_ids[:, 0]
    gemma_tokens = tok("gemma3").convert_ids_to_tokens(list(range(len(tok("gemma3")))))
    hits = total = 0
    for j in students:
        if j + 1 >= len(s) or s.special[j + 1]:
            continue
        total += 1
        if len(rows[j]) == 1 and int(teacher_top1[rows[j][0]]) < len(gemma_tokens):
            predicted = canonical_bytes(gemma_tokens[int(teacher_top1[rows[j][0]])], t.scheme)
            hits += predicted == canonical_bytes(s.tokens[j + 1], s.scheme)
    assert total == len(students) - 1 and result.metrics["top1_accuracy"] == pytest.approx(hits / total)
    assert hits > 0  # the models agree on some next tokens of this plain sentence


def test_cli_cdm_offline():
    from click.testing import CliRunner

    from ctkd_inspect.cli import main

    out = CliRunner().invoke(main, ["gemma3", "smollm2", TEXT, "--engine", "cdm", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    # the CLI prints exactly what the API computes
    assert data == json.loads(json.dumps(align("gemma3", "smollm2", TEXT, engine="cdm").to_dict()))
    # CDM's groups by their definition: each distinct list of students a teacher is paired with, in order, with
    # the teachers of those students
    t2s: dict[int, list[int]] = {}
    for i, j in data["path"]:
        t2s.setdefault(i, []).append(j)
    expected, seen = [], set()
    for i in sorted(t2s):
        key = tuple(t2s[i])
        if key not in seen:
            seen.add(key)
            expected.append({"teacher": sorted({a for a, b in data["path"] if b in key}), "student": list(key)})
    assert data["cdm_groups"] == expected
    # MinED without a mapping: the one-hot fallback is the share of student tokens without an equal 1:1 row
    out = CliRunner().invoke(main, ["llama3", "gemma2", TEXT, "--engine", "mined", "--json"])
    assert out.exit_code == 0
    mined = Alignment.from_dict(json.loads(out.stdout))
    rows = rows_of(mined)
    from ctkd_inspect.engines.dtw import canonical_string

    students = [j for j in range(len(mined.student)) if not mined.student.special[j]]
    kept = sum(len(rows[j]) == 1 and canonical_string(mined.teacher, rows[j][0]) == canonical_string(mined.student, j)
               for j in students)
    assert mined.metrics["onehot_fallback_rate"] == pytest.approx(1 - kept / len(students))
    assert 0 < kept < len(students)
    out = CliRunner().invoke(main, ["llama3", "gemma2", TEXT, "--engine", "cdm"])
    assert out.exit_code == 2 and "teacher_model" in out.output
