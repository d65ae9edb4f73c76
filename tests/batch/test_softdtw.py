"""Soft-DTW: oracle values and gradients, brute force, gradcheck, divergence properties, ragged batches, back-ends."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ctkd_inspect.batch.softdtw import (
    pairwise_cost,
    resolve_backend,
    soft_dtw,
    soft_dtw_divergence,
    soft_dtw_from_cost,
    triton_available,
)


def _oracle():
    """The soft-DTW oracle values of the project's DTW research (float64; independent implementations agree to
    1e-14), copied into tests/data."""
    return json.loads((Path(__file__).resolve().parents[1] / "data" / "dtw_oracle.json").read_text())


ORACLE = _oracle()
BACKENDS = ["numba", "torch", "triton"]
SETS = ["legacy", "default_rng"]
GAMMAS = ["1.0", "0.1"]


def xy(name, dtype=torch.float64, grad=False):
    x = torch.tensor(ORACLE[name]["x"], dtype=dtype, requires_grad=grad)
    y = torch.tensor(ORACLE[name]["y"], dtype=dtype, requires_grad=grad)
    return x, y


@pytest.fixture(params=BACKENDS)
def backend(request):
    if request.param == "triton" and not triton_available():
        pytest.skip("triton is not installed (it is in the gpu extra; CI installs it)")
    return request.param


# --------------------------------------------------------------------------------------------------------------
# oracle values (research/dtw_oracle.json, float64 to 1e-9)


@pytest.mark.parametrize("name", SETS)
@pytest.mark.parametrize("gamma", GAMMAS)
def test_oracle_float64(backend, name, gamma):
    o = ORACLE[name][f"gamma={gamma}"]
    g = float(gamma)
    x, y = xy(name, grad=True)
    value, E = soft_dtw(x, y, gamma=g, backend=backend, return_alignment=True)
    assert value.dtype == torch.float64
    assert value.item() == pytest.approx(o["sdtw_ref"], abs=1e-9)
    assert soft_dtw(x, x, gamma=g, backend=backend).item() == pytest.approx(o["sdtw_xx"], abs=1e-9)
    assert soft_dtw(y, y, gamma=g, backend=backend).item() == pytest.approx(o["sdtw_yy"], abs=1e-9)
    assert soft_dtw_divergence(x, y, gamma=g, backend=backend).item() == pytest.approx(o["div_ref"], abs=1e-9)
    assert np.allclose(E.sum(1).numpy(), o["E_rowsum"], atol=1e-9, rtol=0)
    assert E.sum().item() == pytest.approx(o["E_sum"], abs=1e-9)
    (grad_x,) = torch.autograd.grad(soft_dtw(x, y, gamma=g, backend=backend), x)
    assert np.allclose(grad_x.numpy(), o["grad_x"], atol=1e-9, rtol=0)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_oracle_gradients_of_value_and_divergence(backend, gamma):
    o = ORACLE["legacy_grads_tslearn_torch_backend"][f"gamma={gamma}"]
    x, y = xy("legacy", grad=True)
    gx, gy = torch.autograd.grad(soft_dtw(x, y, gamma=float(gamma), backend=backend), (x, y))
    assert np.allclose(gx.numpy(), o["grad_sdtw_x"], atol=1e-9, rtol=0)
    assert np.allclose(gy.numpy(), o["grad_sdtw_y"], atol=1e-9, rtol=0)
    gx, gy = torch.autograd.grad(soft_dtw_divergence(x, y, gamma=float(gamma), backend=backend), (x, y))
    assert np.allclose(gx.numpy(), o["grad_div_x"], atol=1e-9, rtol=0)
    assert np.allclose(gy.numpy(), o["grad_div_y"], atol=1e-9, rtol=0)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_oracle_float32(backend, gamma):
    """float32 tolerance from dtw.md: values ≈1e-6 relative, gradients ≈1e-4 absolute at γ ≥ 0.1."""
    o = ORACLE["legacy"][f"gamma={gamma}"]
    x, y = xy("legacy", dtype=torch.float32, grad=True)
    value = soft_dtw(x, y, gamma=float(gamma), backend=backend)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(o["sdtw_ref"], rel=1e-6)
    (grad_x,) = torch.autograd.grad(value, x)
    assert np.allclose(grad_x.numpy(), o["grad_x"], atol=1e-4, rtol=0)


def test_hard_dtw_limit():
    x, y = xy("legacy")
    assert soft_dtw(x, y, gamma=1e-3).item() == pytest.approx(ORACLE["legacy"]["dtw_hard_sqeuclid"], abs=1e-6)


# --------------------------------------------------------------------------------------------------------------
# brute force, gradcheck, identities


def all_paths(n, m):
    """Every monotone alignment path of an n × m grid (as lists of cells)."""

    def walk(i, j):
        if (i, j) == (n - 1, m - 1):
            yield [(i, j)]
            return
        for di, dj in ((1, 0), (0, 1), (1, 1)):
            if i + di < n and j + dj < m:
                for rest in walk(i + di, j + dj):
                    yield [(i, j), *rest]

    return list(walk(0, 0))


@pytest.mark.parametrize(("n", "m"), [(1, 1), (1, 4), (3, 3), (2, 5), (4, 3)])
@pytest.mark.parametrize("gamma", [1.0, 0.1])
def test_brute_force_path_enumeration(backend, n, m, gamma):
    C = torch.rand(n, m, dtype=torch.float64, generator=torch.Generator().manual_seed(n * 10 + m))
    costs = [sum(C[i, j].item() for i, j in path) for path in all_paths(n, m)]
    lowest = min(costs)
    expected = lowest - gamma * math.log(sum(math.exp(-(c - lowest) / gamma) for c in costs))
    value, E = soft_dtw_from_cost(C, gamma, backend=backend, return_alignment=True)
    assert value.item() == pytest.approx(expected, abs=1e-12)
    # E is the probability that a cell lies on the path under the Gibbs distribution over paths
    weights = np.array([math.exp(-(c - lowest) / gamma) for c in costs])
    weights /= weights.sum()
    expected_E = np.zeros((n, m))
    for w, path in zip(weights, all_paths(n, m)):
        for i, j in path:
            expected_E[i, j] += w
    assert np.allclose(E.numpy(), expected_E, atol=1e-12)


def test_gradcheck_inputs_and_cost():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch.randn(2, 5, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    for backend in ("numba", "torch"):
        def value(a, b, backend=backend):
            return soft_dtw(a, b, gamma=0.7, backend=backend)

        def cosine(a, b, backend=backend):
            return soft_dtw(a, b, gamma=0.7, cost="cosine", backend=backend)

        def divergence(a, b, backend=backend):
            return soft_dtw_divergence(a, b, gamma=0.5, backend=backend)

        def from_cost(c, backend=backend):
            return soft_dtw_from_cost(c, 0.3, backend=backend)

        def ragged(c, backend=backend):
            return soft_dtw_from_cost(c, 0.3, (torch.tensor([4, 2]), torch.tensor([3, 6])), backend=backend)

        assert torch.autograd.gradcheck(value, (x, y))
        assert torch.autograd.gradcheck(cosine, (x, y))
        assert torch.autograd.gradcheck(divergence, (x, y))
        C = torch.rand(2, 4, 6, dtype=torch.float64, generator=gen, requires_grad=True)
        assert torch.autograd.gradcheck(from_cost, (C,))
        assert torch.autograd.gradcheck(ragged, (C,))


def test_gradcheck_triton():
    if not triton_available():
        pytest.skip("triton is not installed")
    gen = torch.Generator().manual_seed(1)
    C = torch.rand(2, 3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    lengths = (torch.tensor([3, 2]), torch.tensor([4, 3]))
    assert torch.autograd.gradcheck(lambda c: soft_dtw_from_cost(c, 0.5, lengths, backend="triton"), (C,))


def test_divergence_is_zero_on_itself_and_non_negative():
    gen = torch.Generator().manual_seed(3)
    for _ in range(20):
        n, m, d = (int(v) for v in torch.randint(1, 9, (3,), generator=gen))
        x = torch.randn(n, d, dtype=torch.float64, generator=gen)
        y = torch.randn(m, d, dtype=torch.float64, generator=gen)
        for gamma in (0.1, 1.0):
            assert abs(soft_dtw_divergence(x, x, gamma=gamma).item()) < 1e-10
            assert soft_dtw_divergence(x, y, gamma=gamma).item() >= -1e-10


def test_half_cost_identity():
    """sdtw(C/2, γ) = ½·sdtw(C, 2γ) (research/dtw.md)."""
    C = torch.rand(5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    assert soft_dtw_from_cost(C / 2, 0.3).item() == pytest.approx(0.5 * soft_dtw_from_cost(C, 0.6).item(), abs=1e-12)


# --------------------------------------------------------------------------------------------------------------
# methods.md §9 vector 9


def test_vector9_values():
    assert soft_dtw_from_cost(torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64), 1.0).item() == \
        pytest.approx(-math.log(1 + 2 * math.exp(-1)), abs=1e-12)
    assert soft_dtw_from_cost(torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float64), 1.0).item() == \
        pytest.approx(0.6, abs=1e-12)


@pytest.mark.parametrize(("gamma", "expected"), [(2.0, (-2.5177, -1.5888, -4.5723, 0.5628)), (0.8, (None, None,
                                                 None, 0.3017)), (0.1, (None, None, None, 0.2313))])
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


# --------------------------------------------------------------------------------------------------------------
# ragged batches and back-end agreement


def ragged_batch(dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 9, 5, dtype=dtype, generator=gen)
    y = torch.randn(4, 11, 5, dtype=dtype, generator=gen)
    return x, y, torch.tensor([9, 3, 6, 1]), torch.tensor([11, 7, 2, 1])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ragged_batch_equals_per_pair_and_backends_agree(dtype):
    x, y, n, m = ragged_batch(dtype)
    x = x.requires_grad_(True)
    results = {}
    names = ["numba", "torch"] + (["triton"] if triton_available() else [])
    for backend in names:
        value, E = soft_dtw(x, y, 0.5, x_lengths=n, y_lengths=m, backend=backend, return_alignment=True)
        (grad,) = torch.autograd.grad(value.sum(), x)
        results[backend] = (value.detach(), E, grad)
        for b in range(4):
            single = soft_dtw(x[b, :n[b]].detach(), y[b, :m[b]], 0.5, backend=backend)
            assert single.item() == pytest.approx(value[b].item(), rel=1e-6 if dtype == torch.float32 else 1e-12)
        # no gradient leaks into padding
        assert grad[1, 3:].abs().max().item() == 0 and E[2, :, 2:].abs().max().item() == 0
    tol = 2e-4 if dtype == torch.float32 else 1e-10  # float32 rounding (dtw.md: gradients ≈1e-4 at γ ≥ 0.1)
    for backend in names[1:]:
        for ours, theirs in zip(results[backend], results["numba"]):
            assert torch.allclose(ours, theirs, atol=tol, rtol=tol)


def test_divergence_of_ragged_pairs_in_one_call():
    x, y, n, m = ragged_batch(torch.float64, seed=1)
    batched = soft_dtw_divergence(x, y, 1.0, x_lengths=n, y_lengths=m)
    for b in range(4):
        single = soft_dtw_divergence(x[b, :n[b]], y[b, :m[b]], 1.0)
        assert single.item() == pytest.approx(batched[b].item(), abs=1e-10)


def test_padding_may_hold_nan():
    x, y, n, m = ragged_batch(torch.float64, seed=2)
    clean = soft_dtw(x, y, 1.0, x_lengths=n, y_lengths=m)
    x = x.clone()
    x[1, 3:] = float("nan")
    assert torch.allclose(soft_dtw(x, y, 1.0, x_lengths=n, y_lengths=m), clean)


def test_band_penalty_only_raises_the_value_and_applies_to_the_cross_term():
    x, y, _, _ = ragged_batch(torch.float64, seed=4)
    band = torch.zeros(4, 9, 11, dtype=torch.float64)
    band[:, :, 6:] = 1.0
    assert (soft_dtw(x, y, 1.0, band=band) >= soft_dtw(x, y, 1.0) - 1e-12).all()
    plain = soft_dtw_divergence(x, y, 1.0)
    banded = soft_dtw_divergence(x, y, 1.0, band=band)
    cross_shift = soft_dtw(x, y, 1.0, band=band) - soft_dtw(x, y, 1.0)
    assert torch.allclose(banded - plain, cross_shift, atol=1e-10)


def test_long_sequences_on_the_cpu():
    gen = torch.Generator().manual_seed(7)
    C = torch.rand(1, 4096, 300, dtype=torch.float32, generator=gen)
    value = soft_dtw_from_cost(C, 1.0)
    assert torch.isfinite(value).all()


# --------------------------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize(("call", "message"), [
    (lambda: soft_dtw(torch.zeros(3, 2, dtype=torch.float64), torch.zeros(4, 2, dtype=torch.float64), 0.0), "gamma"),
    (lambda: soft_dtw(torch.zeros(3, 2, dtype=torch.float64), torch.zeros(4, 2, dtype=torch.float64), -1), "gamma"),
    (lambda: soft_dtw(torch.zeros(3, 2, dtype=torch.float64), torch.zeros(4, 3, dtype=torch.float64)), "feature"),
    (lambda: soft_dtw(torch.zeros(0, 2, dtype=torch.float64), torch.zeros(4, 2, dtype=torch.float64)), "non-empty"),
    (lambda: soft_dtw(torch.zeros(2, 3, 2, dtype=torch.float64), torch.zeros(2, 4, 2, dtype=torch.float64),
                      x_lengths=[3, 4]), "x_lengths"),
    (lambda: soft_dtw(torch.zeros(2, 3, 2, dtype=torch.float64), torch.zeros(2, 4, 2, dtype=torch.float64),
                      y_lengths=[0, 4]), "y_lengths"),
    (lambda: soft_dtw(torch.zeros(3, 2, dtype=torch.int64), torch.zeros(4, 2, dtype=torch.int64)), "float32"),
    (lambda: soft_dtw(torch.zeros(3, 2, dtype=torch.float64), torch.zeros(4, 2, dtype=torch.float64),
                      cost="manhattan"), "unknown cost"),
    (lambda: soft_dtw_from_cost(torch.zeros(3, 4, dtype=torch.float64), 1.0, backend="cuda"), "unknown backend"),
    (lambda: soft_dtw_from_cost(torch.zeros(3, 4, dtype=torch.float64), 1.0, penalty=torch.zeros(2)), "penalty"),
])
def test_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_auto_backend():
    assert resolve_backend("auto", torch.device("cpu")) == "numba"
    assert resolve_backend("torch", torch.device("cpu")) == "torch"
