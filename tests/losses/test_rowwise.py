"""The row-chunked full-vocabulary passes equal the plain formulas, values and gradients."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from ctkd_inspect.losses import rowwise  # noqa: E402
from ctkd_inspect.losses.base import divergence  # noqa: E402


def plain_skewed(log_q, log_p, skew, reverse):
    """The textbook formula with the mixture in probability space (no log-space tricks)."""
    q, p = log_q.exp(), log_p.exp()
    if reverse:
        m = (1 - skew) * p + skew * q
        return (q * (log_q - m.log())).sum(-1)
    m = skew * p + (1 - skew) * q
    return (p * (log_p - m.log())).sum(-1)


def logits(shape, scale=3.0, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=dtype) * scale


@pytest.mark.parametrize("reverse", [True, False], ids=["reverse", "forward"])
@pytest.mark.parametrize("skew", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("shape", [(3, 5, 7), (2, 40, 20_000), (0, 11), (1, 1)])
def test_skewed_kl_values_and_gradients_equal_the_plain_formula(shape, skew, reverse, monkeypatch):
    monkeypatch.setattr(rowwise, "CHUNK_ELEMENTS", 50_000)  # several chunks, one not full
    student = logits(shape, seed=1).requires_grad_(True)
    target = logits(shape, seed=2)
    log_q, log_p = torch.log_softmax(student, -1), torch.log_softmax(target, -1)
    ours = rowwise.skewed_kl(log_q, log_p, skew, reverse=reverse)
    weights = logits(shape[:-1], seed=3)  # a downstream weighting, as the losses apply
    (grad_ours,) = torch.autograd.grad((ours * weights).sum(), student, retain_graph=True)
    reference = plain_skewed(log_q, log_p, skew, reverse)
    (grad_reference,) = torch.autograd.grad((reference * weights).sum(), student)
    assert ours.shape == shape[:-1]
    assert torch.allclose(ours, reference, rtol=1e-10, atol=1e-12)
    assert torch.allclose(grad_ours, grad_reference, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("reverse", [True, False], ids=["reverse", "forward"])
def test_skewed_kl_passes_gradcheck(reverse):
    student = logits((2, 3, 9), seed=4).requires_grad_(True)
    target = torch.log_softmax(logits((2, 3, 9), seed=5), -1)

    def function(x):
        return rowwise.skewed_kl(torch.log_softmax(x, -1), target, 0.1, reverse=reverse)

    assert torch.autograd.gradcheck(function, (student,))


@pytest.mark.parametrize("reverse", [True, False], ids=["reverse", "forward"])
def test_skewed_kl_stays_finite_where_probabilities_underflow(reverse):
    """Logits a few thousand apart: most probabilities are exactly 0 in float32; the log-space mixture gives 0
    for those tokens (never 0/0), like the logaddexp formula of ``divergence``'s plain path."""
    student = (logits((4, 300), scale=2000.0, seed=6, dtype=torch.float32)).requires_grad_(True)
    target = logits((4, 300), scale=2000.0, seed=7, dtype=torch.float32)
    log_q, log_p = torch.log_softmax(student, -1), torch.log_softmax(target, -1)
    ours = rowwise.skewed_kl(log_q, log_p, 0.1, reverse=reverse)
    (grad,) = torch.autograd.grad(ours.sum(), student)
    assert torch.isfinite(ours).all() and torch.isfinite(grad).all()
    weight = 0.9 if reverse else 0.1
    log_m = torch.logaddexp(log_p + math.log(weight), log_q + math.log(1 - weight))
    a, b = (log_q, log_m) if reverse else (log_p, log_m)
    plain = torch.nn.functional.kl_div(b, a, reduction="none", log_target=True).sum(-1)
    assert torch.allclose(ours, plain, rtol=1e-5, atol=1e-4)


def test_divergence_takes_the_chunked_path_only_where_it_applies():
    """A skew strictly inside (0, 1) and a target without gradient go to the chunked function; a target that
    needs a gradient (it gets one from the plain formula) and the degenerate skews keep the plain formula."""
    student = logits((2, 4, 30), seed=8).requires_grad_(True)
    target = logits((2, 4, 30), seed=9).requires_grad_(True)
    log_q, log_p = torch.log_softmax(student, -1), torch.log_softmax(target, -1)
    chunked = divergence("skewed_reverse_kl", student_logp=log_q, target_logp=log_p.detach(), skew=0.1)
    assert chunked.grad_fn is not None and "SkewedKL" in type(chunked.grad_fn).__name__
    plain = divergence("skewed_reverse_kl", student_logp=log_q, target_logp=log_p, skew=0.1)
    assert "SkewedKL" not in type(plain.grad_fn).__name__
    assert torch.allclose(chunked, plain, rtol=1e-10)
    (grad,) = torch.autograd.grad(plain.sum(), target)
    assert grad.abs().sum() > 0
    # skew 1 on the reverse divergence: the mixture is the student itself, KL = 0
    assert torch.allclose(divergence("skewed_reverse_kl", student_logp=log_q, target_logp=log_p.detach(), skew=1.0),
                          torch.zeros(2, 4, dtype=torch.float64), atol=1e-12)
    # skew 0 on the forward one: plain forward KL
    assert torch.allclose(divergence("skewed_forward_kl", student_logp=log_q, target_logp=log_p.detach(), skew=0.0),
                          divergence("forward_kl", student_logp=log_q, target_logp=log_p.detach()), rtol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_entropies_equal_the_plain_formula(dtype, monkeypatch):
    monkeypatch.setattr(rowwise, "CHUNK_ELEMENTS", 1000)
    values = logits((3, 7, 333), seed=10, dtype=torch.float64).to(dtype).requires_grad_(dtype != torch.bfloat16)
    reference_logp = torch.log_softmax(values.detach().double(), -1)
    reference = -(reference_logp.exp() * reference_logp).sum(-1)
    from_logits = rowwise.entropy_from_logits(values)
    assert from_logits.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert not from_logits.requires_grad and from_logits.shape == (3, 7)
    tolerance = {torch.float32: 1e-5, torch.float64: 1e-12, torch.bfloat16: 1e-5}[dtype]
    assert torch.allclose(from_logits.double(), reference, rtol=tolerance, atol=tolerance)
    from_logp = rowwise.entropy_from_logp(torch.log_softmax(values.detach().double(), -1))
    assert torch.allclose(from_logp, reference, rtol=1e-12)


def test_sedi_sparse_targets_pick_the_most_probable_column_per_row():
    """SeDi's pseudo targets are kept as written cells only; the top-1 of a row is its most probable written
    column (the smallest on a tie, as a dense argmax's first maximum), 0 for a row nothing was written into."""
    from ctkd_inspect.losses.sedi import PseudoTargets

    rows = torch.tensor([0, 0, 0, 2, 2, 3])
    cols = torch.tensor([4, 7, 9, 1, 5, 8])
    sums = torch.tensor([0.2, 0.5, 0.3, 0.4, 0.4, 0.1])
    pseudo = PseudoTargets(rows, cols, sums, torch.zeros(1, 5, dtype=torch.long), torch.zeros(1, 0),
                           torch.zeros(1, 0), (0.0, 0.0))
    assert pseudo.top1(5).tolist() == [7, 0, 1, 8, 0]
    dense = torch.zeros(5, 10)
    dense[rows, cols] = sums
    written = dense.max(-1).values > 0
    assert torch.equal(pseudo.top1(5)[written], dense.argmax(-1)[written])


def test_sedi_takes_student_logits_that_are_not_contiguous(pair):
    """The sparse SeDi path flattens rows; logits handed over as a transposed view give the same loss and a finite
    gradient."""
    from ctkd_inspect.losses import Collator, PairBuilder, get_loss
    from ctkd_inspect.losses.base import ModelOutputs

    builder = PairBuilder(pair, max_length=32)
    batch = Collator(builder)(builder.build_many([("Question: what is it", " It is a small cat, café 🦙."),
                                                  ("Hi", " there friend")]))
    loss = get_loss("sedi", pair=pair)
    B, Ls = batch.student_input_ids.shape
    generator = torch.Generator().manual_seed(0)
    stored = torch.randn(Ls, B, pair.student_vocab_size, generator=generator).requires_grad_(True)
    student_logits = stored.transpose(0, 1)
    assert not student_logits.is_contiguous()
    teacher_logits = torch.randn(B, batch.teacher_input_ids.shape[1], pair.teacher_vocab_size, generator=generator)
    out = loss(batch, ModelOutputs(student_logits, None, None, None), ModelOutputs(teacher_logits, None, None, None))
    out.loss.backward()
    same = loss(batch, ModelOutputs(student_logits.detach().contiguous(), None, None, None),
                ModelOutputs(teacher_logits, None, None, None))
    assert torch.allclose(out.loss.detach(), same.loss, rtol=1e-6)
    assert torch.isfinite(stored.grad).all() and stored.grad.abs().sum() > 0
