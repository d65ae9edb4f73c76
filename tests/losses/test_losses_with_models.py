"""Every loss with tiny random models (``from_config``) over the real Llama 2 (teacher) and GPT-2 (student)
vocabularies, so the alignments are real: forward and backward, where the gradients go, batch invariance, and the
bad inputs of the issue (an empty and a one-token response, very different lengths, NaN logits, a model that
does not belong to its tokenizer)."""

from __future__ import annotations

import pytest
import torch

from ctkd_inspect.errors import InputError, ModelError
from ctkd_inspect.losses import Collator, PairBuilder, get_loss, loss_names
from ctkd_inspect.losses.base import ModelOutputs, NonFiniteError

from .helpers import EXAMPLES, tiny_model

CROSS = ["mined", "cdm", "sedi", "dskd", "dwa", "uld", "uld-gold"]


def make_loss(name, pair, student, teacher, **extra):
    options = {"mined": {"pair": pair, "vocab_mapping": "exact"}, "cdm": {"pair": pair}, "sedi": {"pair": pair},
               "dskd": {"student_dim": student, "teacher_dim": teacher},
               "dwa": {"student_dim": student, "teacher_dim": teacher}, "uld": {}, "uld-gold": {"grouping": "gold"},
               "kd": {}, "sft": {}}[name]
    return get_loss("uld" if name == "uld-gold" else name, **options, **extra)


@pytest.fixture(scope="module")
def models():
    return tiny_model(50257, seed=1), tiny_model(32000, hidden=48, seed=2)


@pytest.fixture(scope="module")
def builder(pair):
    return PairBuilder(pair, max_length=40)  # short sequences keep the full-vocabulary work small


@pytest.fixture(scope="module")
def examples(builder):
    return builder.build_many(EXAMPLES)


@pytest.fixture(scope="module")
def batch(builder, examples):
    return Collator(builder)(examples)


def test_the_registry_lists_every_method():
    assert set(loss_names()) == {"mined", "cdm", "sedi", "dwa", "dskd", "uld", "kd", "sft"}
    with pytest.raises(InputError, match="unknown loss"):
        get_loss("nope")
    with pytest.raises(InputError, match="unexpected keyword"):
        get_loss("sft", kd_rate=0.3)


@pytest.mark.parametrize("name", [*CROSS, "sft"])
def test_forward_backward_and_gradient_routing(name, pair, batch, models):
    student, teacher = models
    student.zero_grad(set_to_none=True)
    teacher.zero_grad(set_to_none=True)
    loss = make_loss(name, pair, student, teacher)
    out = loss.step(batch, student, teacher)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert out.per_example.shape == (len(batch),) and (out.positions > 0).all()
    out.loss.backward()
    # the student always learns: its head's gradient is non-zero
    head = student.get_output_embeddings().weight.grad
    assert head is not None and head.abs().sum() > 0
    # the projectors and scalings the method owns (and only those) are the loss's parameters; all get gradients
    owned = dict(loss.named_parameters())
    expected = {"dskd": {"cma."}, "dwa": {"cma.", "dtw_embed_t2s."}, "sedi": {"ada"}}.get(name, set())
    assert {next((p for p in expected if k.startswith(p)), k) for k in owned} == expected
    for key, parameter in owned.items():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, key
    # never the teacher
    assert all(p.grad is None for p in teacher.parameters())
    scalars = out.scalars()
    assert set(scalars) >= {"loss"} | {f"term/{t}" for t in out.terms}


def test_dwa_trains_the_student_embeddings_through_the_dtw(pair, batch, models):
    student, teacher = models
    student.zero_grad(set_to_none=True)
    loss = make_loss("dwa", pair, student, teacher, ce_rate=0.0, kd_rate=0.0)  # the DTW term alone
    loss.step(batch, student, teacher).loss.backward()
    embeddings = student.get_input_embeddings().weight.grad
    assert embeddings is not None and embeddings.abs().sum() > 0
    assert loss.dtw_embed_t2s.weight.grad.abs().sum() > 0 and loss.cma.t2s.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", CROSS)
def test_teacher_outputs_are_detached(name, pair, batch, models):
    student, teacher = models
    teacher.zero_grad(set_to_none=True)
    loss = make_loss(name, pair, student, teacher)
    hidden = "hidden_states" in loss.needs
    embeddings = "embeddings" in loss.needs
    s_out = ModelOutputs.from_model(student, batch.student_input_ids, batch.student_attention_mask,
                                    hidden_states=hidden, embeddings=embeddings)
    t_out = ModelOutputs.from_model(teacher, batch.teacher_input_ids, batch.teacher_attention_mask,
                                    hidden_states=hidden, embeddings=embeddings)  # built with gradients on
    assert t_out.logits.requires_grad
    loss(batch, s_out, t_out).loss.backward()
    assert all(p.grad is None for p in teacher.parameters())


@pytest.mark.parametrize("name", [*CROSS, "sft"])
def test_batch_invariance(name, pair, builder, examples, models):
    """Each example's loss alone (B = 1) equals its loss inside a padded batch of four."""
    student, teacher = models
    loss = make_loss(name, pair, student, teacher)
    collate = Collator(builder)
    chosen = [examples[4], examples[0], examples[2], examples[1]]  # long, medium, empty, unicode
    with torch.no_grad():
        together = loss.step(collate(chosen), student, teacher).per_example
        for k, example in enumerate(chosen):
            alone = loss.step(collate([example]), student, teacher).per_example[0]
            assert torch.allclose(alone.double(), together[k].double(), rtol=1e-5, atol=1e-5), (k, alone, together)


def test_statistics_are_exact_counts_over_the_batch(pair, builder, examples, models):
    student, teacher = models
    loss = make_loss("mined", pair, student, teacher)
    collate = Collator(builder)
    with torch.no_grad():
        whole = loss.step(collate(examples), student, teacher).counts
        parts = [loss.step(collate([e]), student, teacher).counts for e in examples]
    for key, (numerator, denominator) in whole.items():
        assert numerator == pytest.approx(sum(p[key][0] for p in parts))
        assert denominator == pytest.approx(sum(p[key][1] for p in parts))


@pytest.mark.parametrize(("name", "side", "term"), [("mined", "student", "ce"), ("mined", "teacher", "kd"),
                                                    ("cdm", "teacher", "kd"), ("sedi", "teacher", "kl"),
                                                    ("dskd", "teacher", "s2t_kd"), ("dwa", "student", "ce"),
                                                    ("uld", "teacher", "uld"), ("sft", "student", "ce")])
def test_nan_logits_raise_an_error_naming_the_term(name, side, term, pair, batch, models):
    student, teacher = models
    loss = make_loss(name, pair, student, teacher)
    with torch.no_grad():
        s_out, t_out = loss.model_outputs(batch, student, teacher if name != "sft" else None)
    target = s_out if side == "student" else t_out
    labels = batch.student_labels if side == "student" else batch.teacher_labels
    b, t = 0, int((labels[0] != -100).nonzero()[-1])  # the last loss position of the first example
    logits = target.logits.clone()
    logits[b, t, 3] = float("nan")
    target.logits = logits
    with pytest.raises(NonFiniteError, match=rf"{name} loss.*'{term}'"):
        loss(batch, s_out, t_out)


def test_nan_in_padding_is_ignored(pair, batch, models):
    student, teacher = models
    loss = make_loss("mined", pair, student, teacher)
    with torch.no_grad():
        s_out, t_out = loss.model_outputs(batch, student, teacher)
        shortest = int(batch.student_attention_mask.sum(-1).argmin())
        s_out.logits[shortest, -1] = float("nan")  # a padded position
        assert torch.isfinite(loss(batch, s_out, t_out).loss)


def test_a_model_that_does_not_match_its_tokenizer_is_refused(pair, batch, models):
    _, teacher = models
    wrong = tiny_model(32000, seed=5)  # Llama 2's vocabulary size as the GPT-2 student
    loss = make_loss("sft", pair, wrong, teacher)
    with pytest.raises(ModelError, match="does not belong to the tokenizer"):
        loss.step(batch, wrong, teacher)


def test_a_batch_without_the_alignment_is_refused(pair, models):
    student, teacher = models
    builder = PairBuilder(pair, alignments=["span"])
    batch = Collator(builder)(builder.build_many(EXAMPLES[:2]))
    with pytest.raises(InputError, match="mined alignment"):
        make_loss("mined", pair, student, teacher).step(batch, student, teacher)


def test_losses_need_the_teacher(pair, batch, models):
    student, _ = models
    with pytest.raises(InputError, match="needs a teacher model"):
        make_loss("sedi", pair, student, None).step(batch, student, None)


def test_a_batch_of_empty_responses_gives_a_zero_loss_with_a_graph(pair, models):
    student, teacher = models
    builder = PairBuilder(pair)
    pair_without_eos = builder.build("Prompt only:", "")
    batch = Collator(builder)([pair_without_eos])
    batch.student_labels[:] = -100
    batch.teacher_labels[:] = -100
    for name in ("sft", "mined", "sedi", "dwa"):
        out = make_loss(name, pair, student, teacher).step(batch, student, teacher)
        assert float(out.loss.detach()) == 0.0 and out.loss.requires_grad
        out.loss.backward()


@pytest.mark.triton_interpret
def test_dwa_on_the_triton_soft_dtw_kernels(pair, builder, examples, models):
    """The Triton kernels (here in Triton's CPU interpreter) give the DTW terms of the numba kernels."""
    from ctkd_inspect.batch.softdtw import triton_available

    if not triton_available():
        pytest.skip("triton is not importable")
    from ctkd_inspect.batch import _softdtw_triton

    if not _softdtw_triton.interpreted() and not torch.cuda.is_available():
        pytest.skip("TRITON_INTERPRET was not set before triton compiled the kernels")
    student, teacher = models
    batch = Collator(builder)(examples[:2])
    numba_loss = make_loss("dwa", pair, student, teacher, softdtw_backend="numba")
    triton_loss = make_loss("dwa", pair, student, teacher, softdtw_backend="triton")
    triton_loss.load_state_dict(numba_loss.state_dict())
    a = numba_loss.step(batch, student, teacher)
    b = triton_loss.step(batch, student, teacher)
    for term in ("dtw_hidden", "dtw_embed"):
        assert torch.allclose(a.terms[term], b.terms[term], rtol=1e-4, atol=1e-5)
    b.loss.backward()
    assert triton_loss.dtw_embed_t2s.weight.grad.abs().sum() > 0


def test_same_tokenizer_kd_with_models(models):
    """kd (one tokenizer on both sides): forward/backward, gradients to the student only, batch invariance."""
    from ctkd_inspect.losses import TokenizerPair

    student, _ = models
    teacher = tiny_model(50257, hidden=40, seed=6)  # a GPT-2-vocabulary teacher
    builder = PairBuilder(TokenizerPair("gpt2", "gpt2"), max_length=40, alignments=())
    examples = builder.build_many(EXAMPLES)
    collate = Collator(builder)
    loss = get_loss("kd")
    student.zero_grad(set_to_none=True)
    out = loss.step(collate(examples), student, teacher)
    out.loss.backward()
    assert student.get_output_embeddings().weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters()) and not list(loss.parameters())
    with torch.no_grad():
        together = loss.step(collate(examples[:4]), student, teacher).per_example
        for k in range(4):
            alone = loss.step(collate([examples[k]]), student, teacher).per_example[0]
            assert torch.allclose(alone, together[k], rtol=1e-5, atol=1e-5)
