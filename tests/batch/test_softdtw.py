"""Soft-DTW: oracle values and gradients, brute force, gradcheck, divergence properties, γ → 0, ragged batches,
back-end agreement (numba, torch loop, Triton interpreter), errors, and GPU checks (skipped without CUDA)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ctkd_inspect.batch import softdtw as sdtw_module
from ctkd_inspect.batch.softdtw import (
    pairwise_cost,
    resolve_backend,
    soft_dtw,
    soft_dtw_divergence,
    soft_dtw_from_cost,
    triton_available,
)


def _oracle():
    """The soft-DTW oracle of the project's DTW research (research/dtw_oracle.json, float64; tslearn, the original
    Cython code, an independent recursion and path enumeration agree to 1e-14), copied into tests/data."""
    return json.loads((Path(__file__).resolve().parents[1] / "data" / "dtw_oracle.json").read_text())


ORACLE = _oracle()
SETS = ["legacy", "default_rng"]


def _triton_skip_reason():
    if not triton_available():
        return "triton is not importable (it is in the gpu extra; CI installs it)"
    from ctkd_inspect.batch import _softdtw_triton

    if not _softdtw_triton.interpreted():
        return "the Triton kernels are compiled for CUDA here (TRITON_INTERPRET unset); see the gpu tests"
    return None


TRITON_SKIP = _triton_skip_reason()
TRITON = pytest.param("triton", marks=[pytest.mark.triton_interpret,
                                       pytest.mark.skipif(TRITON_SKIP is not None, reason=TRITON_SKIP or "")])
BACKENDS = ["numba", "torch", TRITON]
needs_interpreter = pytest.mark.skipif(TRITON_SKIP is not None, reason=TRITON_SKIP or "")


def xy(name, dtype=torch.float64, grad=False):
    x = torch.tensor(ORACLE[name]["x"], dtype=dtype, requires_grad=grad)
    y = torch.tensor(ORACLE[name]["y"], dtype=dtype, requires_grad=grad)
    return x, y


def hard_dtw(C: np.ndarray) -> float:
    """Classic DTW with the soft-DTW steps (diagonal, down, right), in plain Python."""
    n, m = C.shape
    R = np.full((n + 1, m + 1), np.inf)
    R[0, 0] = 0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            R[i, j] = C[i - 1, j - 1] + min(R[i - 1, j - 1], R[i - 1, j], R[i, j - 1])
    return float(R[n, m])


def all_paths(n, m):
    """Every monotone alignment path of an n × m grid (as lists of cells), by recursive enumeration."""

    def walk(i, j):
        if (i, j) == (n - 1, m - 1):
            yield [(i, j)]
            return
        for di, dj in ((1, 0), (0, 1), (1, 1)):
            if i + di < n and j + dj < m:
                for rest in walk(i + di, j + dj):
                    yield [(i, j), *rest]

    return list(walk(0, 0))


# --------------------------------------------------------------------------------------------------------------
# oracle values (research/dtw_oracle.json): float64 to 1e-9, float32 to dtw.md's tolerance


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", SETS)
@pytest.mark.parametrize("gamma", ["1.0", "0.1", "0.01"])
def test_oracle_float64(backend, name, gamma):
    o = ORACLE[name][f"gamma={gamma}"]
    g = float(gamma)
    x, y = xy(name, grad=True)
    value, E = soft_dtw(x, y, gamma=g, backend=backend, return_alignment=True)
    assert value.dtype == torch.float64 and E.dtype == torch.float64
    assert value.item() == pytest.approx(o["sdtw_ref"], abs=1e-9)
    assert soft_dtw(x, x, gamma=g, backend=backend).item() == pytest.approx(o["sdtw_xx"], abs=1e-9)
    assert soft_dtw(y, y, gamma=g, backend=backend).item() == pytest.approx(o["sdtw_yy"], abs=1e-9)
    assert soft_dtw_divergence(x, y, gamma=g, backend=backend).item() == pytest.approx(o["div_ref"], abs=1e-9)
    assert np.allclose(E.sum(1).detach().numpy(), o["E_rowsum"], atol=1e-9, rtol=0)
    assert E.sum().item() == pytest.approx(o["E_sum"], abs=1e-9)
    (grad_x,) = torch.autograd.grad(value, x)
    assert grad_x.dtype == torch.float64
    assert np.allclose(grad_x.numpy(), o["grad_x"], atol=1e-9, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("gamma", ["1.0", "0.1"])
def test_oracle_gradients_of_value_and_divergence(backend, gamma):
    o = ORACLE["legacy_grads_tslearn_torch_backend"][f"gamma={gamma}"]
    x, y = xy("legacy", grad=True)
    gx, gy = torch.autograd.grad(soft_dtw(x, y, gamma=float(gamma), backend=backend), (x, y))
    assert np.allclose(gx.numpy(), o["grad_sdtw_x"], atol=1e-9, rtol=0)
    assert np.allclose(gy.numpy(), o["grad_sdtw_y"], atol=1e-9, rtol=0)
    gx, gy = torch.autograd.grad(soft_dtw_divergence(x, y, gamma=float(gamma), backend=backend), (x, y))
    assert np.allclose(gx.numpy(), o["grad_div_x"], atol=1e-9, rtol=0)
    assert np.allclose(gy.numpy(), o["grad_div_y"], atol=1e-9, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", SETS)
@pytest.mark.parametrize("gamma", ["1.0", "0.1"])
def test_oracle_float32(backend, name, gamma):
    """float32 tolerance from dtw.md: values ≈1e-6 relative, gradients ≈1e-4 absolute at γ ≥ 0.1."""
    o = ORACLE[name][f"gamma={gamma}"]
    x, y = xy(name, dtype=torch.float32, grad=True)
    value, E = soft_dtw(x, y, gamma=float(gamma), backend=backend, return_alignment=True)
    assert value.dtype == torch.float32 and E.dtype == torch.float32
    assert value.item() == pytest.approx(o["sdtw_ref"], rel=1e-6)
    assert soft_dtw_divergence(x, y, gamma=float(gamma), backend=backend).item() == pytest.approx(o["div_ref"],
                                                                                                  rel=1e-6)
    assert np.allclose(E.sum(1).detach().numpy(), o["E_rowsum"], atol=1e-4, rtol=0)
    (grad_x,) = torch.autograd.grad(value, x)
    assert grad_x.dtype == torch.float32
    assert np.allclose(grad_x.numpy(), o["grad_x"], atol=1e-4, rtol=0)


# --------------------------------------------------------------------------------------------------------------
# γ → 0: inf borders with a max-shifted soft-min never produce NaN; the value approaches hard DTW from below


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_small_gamma_is_finite_and_tends_to_hard_dtw(backend, dtype):
    x, y = xy("legacy", dtype=dtype, grad=True)
    hard = ORACLE["legacy"]["dtw_hard_sqeuclid"]
    bound = math.log(len(all_paths(5, 7)))  # 0 ≤ hard − soft ≤ γ·log(#paths)
    for gamma in (1e-2, 1e-4, 1e-7):
        value, E = soft_dtw(x, y, gamma, backend=backend, return_alignment=True)
        (grad,) = torch.autograd.grad(value, x)
        assert torch.isfinite(value) and torch.isfinite(E).all() and torch.isfinite(grad).all()
        slack = 1e-9 if dtype == torch.float64 else 1e-5 * hard
        assert hard - gamma * bound - slack <= value.item() <= hard + slack
        assert (E >= 0).all() and (E <= 1 + 1e-5).all()
    # at γ = 1e-7 E is the optimal path's indicator: a 0/1 matrix with max(n, m) … n + m − 1 ones. float32 R (torch
    # and triton back-ends) cannot resolve differences of 1e-7 (module docstring): there E only stays finite
    if dtype == torch.float64 or backend == "numba":
        assert torch.allclose(E, E.round(), atol=1e-4)
        assert 7 <= E.sum().item() <= 11
    div = soft_dtw_divergence(x, y, 1e-7, backend=backend)
    assert div.item() == pytest.approx(hard, rel=1e-6)


def test_the_half_cost_identity():
    """sdtw(C/2, γ) = ½·sdtw(C, 2γ) (research/dtw.md), which links this convention to the halved one."""
    C = torch.rand(5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    assert soft_dtw_from_cost(C / 2, 0.3).item() == pytest.approx(0.5 * soft_dtw_from_cost(C, 0.6).item(), abs=1e-12)
    x, y = xy("legacy")
    half = soft_dtw_from_cost(pairwise_cost(x[None], y[None])[0] / 2, 1.0).item()
    assert half == pytest.approx(ORACLE["legacy"]["gamma=1.0"]["sdtw_halfsq"], abs=1e-9)


# --------------------------------------------------------------------------------------------------------------
# brute force over every alignment path


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("n", "m"), [(1, 1), (1, 4), (3, 3), (2, 5), (4, 3), (4, 5)])
@pytest.mark.parametrize("gamma", [1.0, 0.1])
def test_brute_force_path_enumeration(backend, n, m, gamma):
    """value = −γ·log Σ_paths exp(−cost(path)/γ) and E[i, j] = P(cell (i, j) on the path) under the Gibbs
    distribution over paths, with and without an additive penalty."""
    gen = torch.Generator().manual_seed(n * 10 + m)
    C = torch.rand(n, m, dtype=torch.float64, generator=gen)
    P = (torch.rand(n, m, dtype=torch.float64, generator=gen) > 0.5).to(torch.float64)
    paths = all_paths(n, m)
    for penalty in (None, P):
        full = C if penalty is None else C + penalty
        costs = np.array([sum(full[i, j].item() for i, j in path) for path in paths])
        lowest = costs.min()
        weights = np.exp(-(costs - lowest) / gamma)
        expected = lowest - gamma * math.log(weights.sum())
        expected_E = np.zeros((n, m))
        for w, path in zip(weights / weights.sum(), paths):
            for i, j in path:
                expected_E[i, j] += w
        value, E = soft_dtw_from_cost(C, gamma, penalty=penalty, backend=backend, return_alignment=True)
        assert value.item() == pytest.approx(expected, abs=1e-12)
        assert np.allclose(E.numpy(), expected_E, atol=1e-12)


def test_brute_force_path_count_of_the_oracle_grid():
    assert len(all_paths(5, 7)) == 1289  # the Delannoy number D(4, 6), as research/dtw.md counts


# --------------------------------------------------------------------------------------------------------------
# gradcheck (float64)


def test_gradcheck_inputs_and_cost_numba():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch.randn(2, 5, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    C = torch.rand(2, 4, 6, dtype=torch.float64, generator=gen, requires_grad=True)
    lengths = (torch.tensor([4, 2]), torch.tensor([3, 6]))
    assert torch.autograd.gradcheck(lambda a, b: soft_dtw(a, b, gamma=0.7, backend="numba"), (x, y))
    assert torch.autograd.gradcheck(lambda a, b: soft_dtw(a, b, gamma=0.7, cost="cosine", backend="numba"), (x, y))
    assert torch.autograd.gradcheck(lambda a, b: soft_dtw_divergence(a, b, gamma=0.5, backend="numba"), (x, y))
    assert torch.autograd.gradcheck(
        lambda a, b: soft_dtw_divergence(a, b, 0.5, x_lengths=[3, 4], y_lengths=[5, 2], backend="numba"), (x, y))
    assert torch.autograd.gradcheck(lambda c: soft_dtw_from_cost(c, 0.3, backend="numba"), (C,))
    assert torch.autograd.gradcheck(lambda c: soft_dtw_from_cost(c, 0.3, lengths, backend="numba"), (C,))
    # the alignment is returned as a constant; the value's gradient is unchanged when it is asked for
    assert torch.autograd.gradcheck(lambda c: soft_dtw_from_cost(c, 0.3, lengths, return_alignment=True,
                                                                 backend="numba")[0], (C,))


@pytest.mark.parametrize("backend", ["torch", TRITON])
def test_gradcheck_cost_other_backends(backend):
    gen = torch.Generator().manual_seed(1)
    C = torch.rand(2, 3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    lengths = (torch.tensor([3, 2]), torch.tensor([4, 3]))
    assert torch.autograd.gradcheck(lambda c: soft_dtw_from_cost(c, 0.5, lengths, backend=backend), (C,))
    x = torch.randn(3, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch.randn(2, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: soft_dtw(a, b, 0.5, backend=backend), (x, y))


# --------------------------------------------------------------------------------------------------------------
# divergence and E properties


@pytest.mark.parametrize("backend", BACKENDS)
def test_divergence_is_zero_on_itself_and_non_negative(backend):
    gen = torch.Generator().manual_seed(3)
    for _ in range(15):
        n, m, d = (int(v) for v in torch.randint(1, 9, (3,), generator=gen))
        x = torch.randn(n, d, dtype=torch.float64, generator=gen)
        y = torch.randn(m, d, dtype=torch.float64, generator=gen)
        for gamma in (0.1, 1.0, 5.0):
            assert abs(soft_dtw_divergence(x, x, gamma=gamma, backend=backend).item()) < 1e-10
            assert soft_dtw_divergence(x, y, gamma=gamma, backend=backend).item() >= -1e-10


def test_expected_alignment_properties():
    """E ∈ [0, 1], rows sum to ≥ 1, the total (expected path length) lies in [max(n, m), n + m − 1]."""
    gen = torch.Generator().manual_seed(11)
    for _ in range(10):
        n, m = (int(v) for v in torch.randint(1, 12, (2,), generator=gen))
        C = torch.rand(n, m, dtype=torch.float64, generator=gen) * 3
        for gamma in (0.05, 1.0, 10.0):
            _, E = soft_dtw_from_cost(C, gamma, return_alignment=True)
            assert (E >= 0).all() and (E <= 1 + 1e-12).all()
            assert (E.sum(1) >= 1 - 1e-12).all() and (E.sum(0) >= 1 - 1e-12).all()
            assert max(n, m) - 1e-9 <= E.sum().item() <= n + m - 1 + 1e-9
            assert E[0, 0].item() == pytest.approx(1) and E[-1, -1].item() == pytest.approx(1)


# --------------------------------------------------------------------------------------------------------------
# methods.md §9 vector 9


@pytest.mark.parametrize("backend", BACKENDS)
def test_vector9_values(backend):
    assert soft_dtw_from_cost(torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64), 1.0,
                              backend=backend).item() == pytest.approx(-math.log(1 + 2 * math.exp(-1)), abs=1e-12)
    assert soft_dtw_from_cost(torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float64), 1.0,
                              backend=backend).item() == pytest.approx(0.6, abs=1e-12)
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    assert soft_dtw_divergence(x, x, 1.0, cost="cosine", backend=backend).item() == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("gamma", "expected"), [(2.0, (-2.5177, -1.5888, -4.5723, 0.5628)),
                                                 (0.8, (None, None, None, 0.3017)),
                                                 (0.1, (None, None, None, 0.2313))])
def test_vector9_cosine_divergence_table(backend, gamma, expected):
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    assert np.allclose(pairwise_cost(x[None], y[None], "cosine")[0].numpy(), [[0, 0.2929, 1], [1, 0.2929, 0]],
                       atol=1e-4)
    s_xy, s_xx, s_yy, div = expected
    if s_xy is not None:
        assert soft_dtw(x, y, gamma, cost="cosine", backend=backend).item() == pytest.approx(s_xy, abs=1e-4)
        assert soft_dtw(x, x, gamma, cost="cosine", backend=backend).item() == pytest.approx(s_xx, abs=1e-4)
        assert soft_dtw(y, y, gamma, cost="cosine", backend=backend).item() == pytest.approx(s_yy, abs=1e-4)
    assert soft_dtw_divergence(x, y, gamma, cost="cosine", backend=backend).item() == pytest.approx(div, abs=1e-4)
    assert soft_dtw_divergence(x, x, gamma, cost="cosine", backend=backend).item() == pytest.approx(0, abs=1e-12)


def test_cosine_cost_is_clamped_and_handles_zero_vectors():
    x = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]], dtype=torch.float64)
    y = torch.tensor([[[-1.0, 0.0], [1.0, 0.0]]], dtype=torch.float64)
    C = pairwise_cost(x, y, "cosine")[0]
    assert torch.allclose(C, torch.tensor([[2.0, 0.0], [1.0, 1.0]], dtype=torch.float64))
    assert ((C >= 0) & (C <= 2)).all()


# --------------------------------------------------------------------------------------------------------------
# ragged batches and back-end agreement


def ragged_batch(dtype, seed=0, N=9, M=11):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(4, N, 5, dtype=dtype, generator=gen)
    y = torch.randn(4, M, 5, dtype=dtype, generator=gen)
    return x, y, torch.tensor([N, 3, 6, 1]), torch.tensor([M, 7, 2, 1])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ragged_batch_equals_per_pair(backend, dtype):
    x, y, n, m = ragged_batch(dtype)
    x = x.requires_grad_(True)
    value, E = soft_dtw(x, y, 0.5, x_lengths=n, y_lengths=m, backend=backend, return_alignment=True)
    (grad,) = torch.autograd.grad(value.sum(), x)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    for b in range(4):
        xb = x[b, :n[b]].detach().requires_grad_(True)
        single, E_single = soft_dtw(xb, y[b, :m[b]], 0.5, backend=backend, return_alignment=True)
        (grad_single,) = torch.autograd.grad(single, xb)
        assert single.item() == pytest.approx(value[b].item(), rel=tol, abs=tol)
        assert torch.allclose(E_single, E[b, :n[b], :m[b]], atol=10 * tol)
        assert torch.allclose(grad_single, grad[b, :n[b]], atol=100 * tol)
    # nothing leaks into the padding
    assert grad[1, 3:].abs().max().item() == 0 and E[2, :, 2:].abs().max().item() == 0
    assert E[1, 3:].abs().max().item() == 0


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(9, 11), (11, 9)])
def test_backends_agree(dtype, shape):
    x, y, n, m = ragged_batch(dtype, seed=5, N=shape[0], M=shape[1])
    n, m = torch.tensor([shape[0], 3, 6, 1]), torch.tensor([shape[1], 7, 2, 1])
    names = ["numba", "torch"] + (["triton"] if TRITON_SKIP is None else [])
    results = {}
    for backend in names:
        xg = x.clone().requires_grad_(True)
        value, E = soft_dtw(xg, y, 0.5, x_lengths=n, y_lengths=m, backend=backend, return_alignment=True)
        (grad,) = torch.autograd.grad(value.sum(), xg)
        div = soft_dtw_divergence(x, y, 0.5, x_lengths=n, y_lengths=m, backend=backend)
        results[backend] = (value.detach(), E, grad, div)
    tol = 2e-4 if dtype == torch.float32 else 1e-10  # float32 rounding (dtw.md: gradients ≈1e-4 at γ ≥ 0.1)
    for backend in names[1:]:
        for ours, reference in zip(results[backend], results["numba"]):
            assert torch.allclose(ours, reference, atol=tol, rtol=tol)


@pytest.mark.triton_interpret
@needs_interpreter
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(11, 13), (13, 11)])
def test_triton_strips_and_orientation(monkeypatch, dtype, shape):
    """Long sides are swept as strips of MAX_BLOCK rows (forced to 4 here so that 11–13 rows make 3–4 strips,
    the last one partial), and the lanes run along the shorter side (the (13, 11) case is transposed)."""
    from ctkd_inspect.batch import _softdtw_triton

    monkeypatch.setattr(_softdtw_triton, "MAX_BLOCK", 4)
    monkeypatch.setattr(_softdtw_triton, "MIN_BLOCK", 4)
    assert _softdtw_triton._block(11) == 4
    gen = torch.Generator().manual_seed(sum(shape))
    C = torch.rand(4, *shape, dtype=dtype, generator=gen)
    lengths = (torch.tensor([shape[0], 4, 9, 1]), torch.tensor([shape[1], shape[1], 2, 1]))
    ours, E = soft_dtw_from_cost(C, 0.7, lengths, backend="triton", return_alignment=True)
    reference, E_reference = soft_dtw_from_cost(C, 0.7, lengths, backend="numba", return_alignment=True)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert torch.allclose(ours, reference, rtol=tol, atol=tol)
    assert torch.allclose(E, E_reference, atol=10 * tol)


@pytest.mark.triton_interpret
@needs_interpreter
def test_triton_gamma_is_not_rounded_to_float32():
    """Triton types a Python float argument as float32; γ travels as a tensor of the cost's dtype instead."""
    C = torch.rand(1, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    gamma = 0.1 + 1e-9  # not representable in float32
    ours = soft_dtw_from_cost(C, gamma, backend="triton")
    assert ours.item() == pytest.approx(soft_dtw_from_cost(C, gamma, backend="numba").item(), abs=1e-14)


def test_divergence_of_ragged_pairs_in_one_batched_call(monkeypatch):
    x, y, n, m = ragged_batch(torch.float64, seed=1)
    calls = []
    original = sdtw_module._SoftDTW.apply

    def counting(*args):
        calls.append(args[0].shape)
        return original(*args)

    monkeypatch.setattr(sdtw_module._SoftDTW, "apply", counting)
    batched = soft_dtw_divergence(x, y, 1.0, x_lengths=n, y_lengths=m)
    assert calls == [torch.Size([12, 11, 11])]  # 3B problems, one call
    monkeypatch.undo()
    for b in range(4):
        single = soft_dtw_divergence(x[b, :n[b]], y[b, :m[b]], 1.0)
        assert single.item() == pytest.approx(batched[b].item(), abs=1e-10)


def test_second_derivatives_are_refused_not_wrong():
    """The backward pass treats E as a constant, so double backward must raise rather than drop the E term."""
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(5, 3, dtype=torch.float64)
    (grad,) = torch.autograd.grad(soft_dtw(x, y, 1.0), x, create_graph=True)
    with pytest.raises(RuntimeError, match="no second derivative"):
        torch.autograd.grad(grad.sum(), x)
    # a single backward with create_graph=True still gives the right first derivative
    (plain,) = torch.autograd.grad(soft_dtw(x, y, 1.0), x)
    assert torch.allclose(grad, plain)


def test_divergence_of_very_different_lengths_equals_the_definition(monkeypatch):
    """Lengths 3 and 40: padding the three terms to 40 × 40 would waste most of the work, so they are three calls;
    the result (and its gradient) is still sdtw(x, y) − ½(sdtw(x, x) + sdtw(y, y))."""
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(2, 3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch.randn(2, 40, 4, dtype=torch.float64, generator=gen)
    shapes = []
    original = sdtw_module._SoftDTW.apply
    monkeypatch.setattr(sdtw_module._SoftDTW, "apply", lambda *args: shapes.append(args[0].shape) or original(*args))
    divergence = soft_dtw_divergence(x, y, 0.5)
    assert shapes == [torch.Size([2, 3, 40]), torch.Size([2, 3, 3]), torch.Size([2, 40, 40])]
    monkeypatch.undo()
    expected = soft_dtw(x, y, 0.5) - 0.5 * (soft_dtw(x, x, 0.5) + soft_dtw(y, y, 0.5))
    assert torch.allclose(divergence, expected, atol=1e-12)
    (ours,) = torch.autograd.grad(divergence.sum(), x)
    (reference,) = torch.autograd.grad(expected.sum(), x)
    assert torch.allclose(ours, reference, atol=1e-12)


def test_padding_may_hold_nan():
    x, y, n, m = ragged_batch(torch.float64, seed=2)
    clean = soft_dtw(x, y, 1.0, x_lengths=n, y_lengths=m)
    x = x.clone()
    x[1, 3:] = float("nan")
    x.requires_grad_(True)
    dirty = soft_dtw(x, y, 1.0, x_lengths=n, y_lengths=m)
    assert torch.allclose(dirty, clean)
    (grad,) = torch.autograd.grad(soft_dtw_divergence(x, y, 1.0, x_lengths=n, y_lengths=m).sum(), x)
    assert torch.isfinite(grad).all() and grad[1, 3:].abs().max().item() == 0
    C = torch.full((2, 3, 4), float("nan"), dtype=torch.float64)
    C[0, :2, :3] = 1.0
    C[1] = 2.0
    assert torch.isfinite(soft_dtw_from_cost(C, 1.0, (torch.tensor([2, 3]), torch.tensor([3, 4])))).all()


def test_band_applies_to_the_cross_term_only_and_broadcasts():
    x, y, _, _ = ragged_batch(torch.float64, seed=4)
    band = torch.zeros(9, 11, dtype=torch.float64)
    band[:, 6:] = 1.0
    plain_value = soft_dtw(x, y, 1.0)
    banded_value = soft_dtw(x, y, 1.0, band=band)  # (N, M) band broadcast over the batch
    assert torch.allclose(banded_value, soft_dtw(x, y, 1.0, band=band.expand(4, 9, 11).numpy()))
    assert (banded_value >= plain_value - 1e-12).all()
    banded, E = soft_dtw_divergence(x, y, 1.0, band=band, return_alignment=True)
    assert torch.allclose(banded - soft_dtw_divergence(x, y, 1.0), banded_value - plain_value, atol=1e-10)
    _, E_cross = soft_dtw(x, y, 1.0, band=band, return_alignment=True)
    assert torch.allclose(E, E_cross, atol=1e-12)
    assert soft_dtw_divergence(x[0], x[0], 1.0, band=torch.ones(9, 9, dtype=torch.float64) * 0).item() == \
        pytest.approx(0, abs=1e-12)
    # the band is a constant: no gradient flows into it
    band_param = band.clone().requires_grad_(True)
    x_param = x.clone().requires_grad_(True)
    soft_dtw(x_param, y, 1.0, band=band_param).sum().backward()
    assert band_param.grad is None and x_param.grad is not None


def test_long_sequences_on_the_cpu():
    gen = torch.Generator().manual_seed(7)
    C = torch.rand(2, 4096, 300, dtype=torch.float32, generator=gen, requires_grad=True)
    value = soft_dtw_from_cost(C, 1.0)
    value.sum().backward()
    assert torch.isfinite(value).all() and torch.isfinite(C.grad).all()
    assert C.grad[0].sum().item() == pytest.approx(soft_dtw_from_cost(C[0].detach(), 1.0, return_alignment=True)[1]
                                                   .sum().item(), rel=1e-5)


def test_tiny_problems_run_the_serial_kernels_and_big_ones_the_parallel():
    from ctkd_inspect.batch import _softdtw_cpu

    assert not _softdtw_cpu._parallel(np.array([5]), np.array([7]))
    assert not _softdtw_cpu._parallel(np.array([5, 5]), np.array([7, 7]))
    assert _softdtw_cpu._parallel(np.array([512, 512]), np.array([512, 1]))
    C = torch.rand(3, 200, 200, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    batched = soft_dtw_from_cost(C, 0.5)
    assert torch.allclose(batched, torch.stack([soft_dtw_from_cost(c, 0.5) for c in C]), rtol=0, atol=1e-12)


def test_numpy_entry_point_used_by_the_inspection_engine():
    from ctkd_inspect.batch import _softdtw_cpu

    x, y = xy("legacy")
    C = pairwise_cost(x[None], y[None])[0].numpy()
    value, E = _softdtw_cpu.value_and_alignment(C, 1.0)
    assert value == pytest.approx(ORACLE["legacy"]["gamma=1.0"]["sdtw_ref"], abs=1e-9)
    assert np.allclose(E.sum(1), ORACLE["legacy"]["gamma=1.0"]["E_rowsum"], atol=1e-9)
    with pytest.raises(ValueError, match="penalty"):
        _softdtw_cpu.value_and_alignment(C, 1.0, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="gamma"):
        _softdtw_cpu.value_and_alignment(C, 0.0)


# --------------------------------------------------------------------------------------------------------------
# errors and back-end selection


F64 = torch.float64


@pytest.mark.parametrize(("call", "message"), [
    (lambda: soft_dtw(torch.zeros(3, 2, dtype=F64), torch.zeros(4, 2, dtype=F64), 0.0), "gamma"),
    (lambda: soft_dtw(torch.zeros(3, 2, dtype=F64), torch.zeros(4, 2, dtype=F64), -1), "gamma"),
    (lambda: soft_dtw(torch.zeros(3, 2, dtype=F64), torch.zeros(4, 2, dtype=F64), float("nan")), "gamma"),
    (lambda: soft_dtw_divergence(torch.zeros(3, 2, dtype=F64), torch.zeros(4, 2, dtype=F64), float("inf")), "gamma"),
    (lambda: soft_dtw_from_cost(torch.zeros(3, 4, dtype=F64), 0), "gamma"),
    (lambda: soft_dtw(torch.zeros(3, 2, dtype=F64), torch.zeros(4, 3, dtype=F64)), "feature"),
    (lambda: soft_dtw(torch.zeros(2, 3, 2, dtype=F64), torch.zeros(3, 4, 2, dtype=F64)), "batch sizes"),
    (lambda: soft_dtw(torch.zeros(2, 3, 2, dtype=F64), torch.zeros(4, 2, dtype=F64)), "batched"),
    (lambda: soft_dtw(torch.zeros(3, 2, dtype=F64), torch.zeros(4, 2)), "dtypes"),
    (lambda: soft_dtw(torch.zeros(0, 2, dtype=F64), torch.zeros(4, 2, dtype=F64)), "non-empty"),
    (lambda: soft_dtw_divergence(torch.zeros(3, 2, dtype=F64), torch.zeros(0, 2, dtype=F64)), "non-empty"),
    (lambda: soft_dtw_from_cost(torch.zeros(3, 0, dtype=F64)), "non-empty"),
    (lambda: soft_dtw(torch.zeros(2, 3, 2, dtype=F64), torch.zeros(2, 4, 2, dtype=F64), x_lengths=[3, 4]),
     "x_lengths"),
    (lambda: soft_dtw(torch.zeros(2, 3, 2, dtype=F64), torch.zeros(2, 4, 2, dtype=F64), y_lengths=[0, 4]),
     "y_lengths"),
    (lambda: soft_dtw(torch.zeros(2, 3, 2, dtype=F64), torch.zeros(2, 4, 2, dtype=F64), y_lengths=[4]),
     "y_lengths"),
    (lambda: soft_dtw(torch.zeros(2, 3, 2, dtype=F64), torch.zeros(2, 4, 2, dtype=F64), x_lengths=[1.5, 2.0]),
     "integers"),
    (lambda: soft_dtw(torch.zeros(3, 2, dtype=torch.int64), torch.zeros(4, 2, dtype=torch.int64)), "float32"),
    (lambda: soft_dtw(torch.zeros(3, 2, dtype=torch.float16), torch.zeros(4, 2, dtype=torch.float16)), "float32"),
    (lambda: soft_dtw(torch.zeros(3, 2, dtype=F64), torch.zeros(4, 2, dtype=F64), cost="manhattan"),
     "unknown cost"),
    (lambda: soft_dtw_from_cost(torch.zeros(3, 4, dtype=F64), 1.0, backend="cuda"), "unknown backend"),
    (lambda: soft_dtw_from_cost(torch.zeros(3, 4, dtype=F64), 1.0, penalty=torch.zeros(2)), "penalty"),
    (lambda: soft_dtw(torch.zeros(2, 3, 2, dtype=F64), torch.zeros(2, 4, 2, dtype=F64), band=torch.zeros(3, 3, 4)),
     "penalty"),
    (lambda: soft_dtw(torch.tensor([[0.0, float("nan")], [1.0, 1.0]], dtype=F64), torch.zeros(4, 2, dtype=F64)),
     "NaN or infinite"),
    (lambda: soft_dtw_from_cost(torch.tensor([[0.0, float("inf")]], dtype=F64)), "NaN or infinite"),
    (lambda: soft_dtw_from_cost(torch.zeros(2, 3, dtype=F64), penalty=torch.full((2, 3), float("inf"))),
     "NaN or infinite"),
])
def test_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_auto_backend():
    assert resolve_backend("auto", torch.device("cpu")) == "numba"
    assert resolve_backend("torch", torch.device("cpu")) == "torch"
    assert resolve_backend("auto", torch.device("cuda")) == ("triton" if triton_available() else "torch")
    assert resolve_backend("auto", torch.device("meta")) == "torch"


def _run(code: str, **env) -> subprocess.CompletedProcess:
    import os

    environment = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment)


def test_softdtw_imports_triton_lazily():
    code = ("import sys, torch\n"
            "from ctkd_inspect.batch.softdtw import soft_dtw\n"
            "soft_dtw(torch.rand(3, 2, dtype=torch.float64), torch.rand(4, 2, dtype=torch.float64))\n"
            "print('triton' in sys.modules)\n")
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.mark.skipif(not triton_available(), reason="triton is not importable")
@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device exists: CPU tensors are the error case here")
def test_triton_on_cpu_tensors_without_the_interpreter_is_a_clear_error():
    code = ("import torch\n"
            "from ctkd_inspect.batch.softdtw import soft_dtw_from_cost\n"
            "try:\n"
            "    soft_dtw_from_cost(torch.rand(3, 4), 1.0, backend='triton')\n"
            "except ValueError as error:\n"
            "    print('ValueError', error)\n")
    out = _run(code, TRITON_INTERPRET="0")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ValueError") and "TRITON_INTERPRET" in out.stdout


# --------------------------------------------------------------------------------------------------------------
# GPU (skipped without a CUDA device): the compiled Triton kernels against the CPU reference


gpu = pytest.mark.skipif(not torch.cuda.is_available() or not triton_available(), reason="needs CUDA and triton")


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gpu_triton_matches_numba(dtype):
    gen = torch.Generator().manual_seed(0)
    C = torch.rand(6, 700, 530, dtype=dtype, generator=gen)
    lengths = (torch.tensor([700, 512, 5, 1, 699, 300]), torch.tensor([530, 513, 530, 1, 2, 301]))
    ours, E = soft_dtw_from_cost(C.cuda(), 0.3, lengths, backend="triton", return_alignment=True)
    reference, E_reference = soft_dtw_from_cost(C, 0.3, lengths, backend="numba", return_alignment=True)
    assert ours.dtype == dtype and ours.device.type == "cuda"
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    assert torch.allclose(ours.cpu(), reference, rtol=tol, atol=tol)
    assert torch.allclose(E.cpu(), E_reference, atol=10 * tol)
    x, y = xy("legacy")
    assert soft_dtw(x.cuda(), y.cuda(), 0.1).item() == pytest.approx(ORACLE["legacy"]["gamma=0.1"]["sdtw_ref"],
                                                                     abs=1e-9)


@pytest.mark.gpu
@gpu
def test_gpu_long_sequences_use_strips():
    gen = torch.Generator().manual_seed(1)
    C = torch.rand(2, 4500, 4200, dtype=torch.float32, generator=gen)
    lengths = (torch.tensor([4500, 4097]), torch.tensor([4200, 1100]))
    ours, E = soft_dtw_from_cost(C.cuda(), 1.0, lengths, backend="triton", return_alignment=True)
    reference, E_reference = soft_dtw_from_cost(C, 1.0, lengths, backend="numba", return_alignment=True)
    assert torch.allclose(ours.cpu(), reference, rtol=1e-5)
    assert torch.allclose(E.cpu(), E_reference, atol=1e-3)


@pytest.mark.gpu
@gpu
def test_gpu_gradcheck_and_divergence():
    gen = torch.Generator(device="cuda").manual_seed(2)
    C = torch.rand(2, 3, 4, dtype=torch.float64, device="cuda", generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c: soft_dtw_from_cost(c, 0.5, backend="triton"), (C,))
    x, y = xy("legacy")
    div = soft_dtw_divergence(x.cuda(), y.cuda(), 1.0)
    assert div.item() == pytest.approx(ORACLE["legacy"]["gamma=1.0"]["div_ref"], abs=1e-9)


@pytest.mark.triton_interpret
@needs_interpreter
def test_triton_agrees_with_numba_on_a_larger_ragged_batch():
    """Many diagonals, a one-row pair and pairs shorter than the padding (interpreter mode on the CPU)."""
    gen = torch.Generator().manual_seed(0)
    C = torch.rand(3, 64, 50, dtype=torch.float64, generator=gen)
    lengths = (torch.tensor([64, 33, 1]), torch.tensor([50, 50, 7]))
    ours, E = soft_dtw_from_cost(C, 0.3, lengths, return_alignment=True, backend="triton")
    reference, E_reference = soft_dtw_from_cost(C, 0.3, lengths, return_alignment=True, backend="numba")
    assert torch.allclose(ours, reference, atol=1e-12) and torch.allclose(E, E_reference, atol=1e-12)
