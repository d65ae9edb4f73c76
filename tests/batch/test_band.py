"""DWA-KD's adaptive soft band (methods.md §5.3, §9 vector 10): numpy and torch implementations."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from ctkd_inspect.batch.band import dwa_band, dwa_band_numpy, dwa_band_torch


def reference_band(attention, width=5.0, beta=2.0, alpha=0.7, penalty=1.0):
    """The band of one (S, T) attention, cell by cell from the paper's formulas."""
    S, T = attention.shape
    band = np.zeros((S, T))
    centers, widths = [], []
    for i in range(S):
        row = attention[i] / attention[i].sum()
        center = alpha * sum(j * row[j] for j in range(T)) + (1 - alpha) * i * T / S
        w = width + beta * -sum(p * math.log(p) for p in row if p > 0)
        centers.append(center)
        widths.append(w)
        for j in range(T):
            if abs(j - center) > w:
                band[i, j] = penalty
    return band, np.array(centers), np.array(widths)


@pytest.mark.parametrize("implementation", [dwa_band_numpy, lambda a, **k: dwa_band_torch(torch.as_tensor(a), **k)])
def test_vector10_one_hot_attention(implementation):
    attention = np.zeros((4, 20))
    attention[[0, 1, 2, 3], [0, 6, 12, 19]] = 1
    band, centers, widths = (np.asarray(v) for v in implementation(attention))
    assert np.allclose(centers, [0, 5.7, 11.4, 17.8]) and np.allclose(widths, 5)
    assert np.flatnonzero(band[0]).tolist() == list(range(6, 20))  # row 0 penalises j >= 6
    assert np.flatnonzero(band[3]).tolist() == list(range(0, 13))  # row 3 penalises j <= 12


@pytest.mark.parametrize("implementation", [dwa_band_numpy, lambda a, **k: dwa_band_torch(torch.as_tensor(a), **k)])
def test_vector10_uniform_attention(implementation):
    band, centers, widths = (np.asarray(v) for v in implementation(np.full((4, 20), 1 / 20)))
    assert np.allclose(widths, 5 + 2 * math.log(20)) and widths[0] == pytest.approx(10.99, abs=0.01)
    assert np.allclose(centers, [6.65, 8.15, 9.65, 11.15])
    assert np.argwhere(band > 0).tolist() == [[0, 18], [0, 19], [3, 0]]  # exactly three cells


def test_random_attention_matches_the_cell_by_cell_reference():
    gen = np.random.default_rng(0)
    for _ in range(10):
        S, T = (int(v) for v in gen.integers(1, 30, 2))
        attention = gen.dirichlet(np.full(T, 0.3), size=S)
        params = {"width": float(gen.uniform(0, 4)), "beta": float(gen.uniform(0, 3)),
                  "alpha": float(gen.uniform(0, 1)), "penalty": float(gen.uniform(0.5, 2))}
        expected = reference_band(attention, **params)
        for ours in (dwa_band_numpy(attention, **params), dwa_band_torch(torch.as_tensor(attention), **params)):
            for got, want in zip(ours, expected):
                assert np.allclose(np.asarray(got), want, atol=1e-12)


def test_parameters_and_torch_input():
    attention = torch.softmax(torch.randn(2, 5, 9, generator=torch.Generator().manual_seed(0)), -1)
    band, centers, widths = dwa_band(attention, width=1.0, beta=0.0, alpha=1.0, penalty=3.0)
    assert isinstance(band, torch.Tensor) and band.dtype == attention.dtype == centers.dtype
    assert band.device == attention.device
    assert set(band.unique().tolist()) <= {0.0, 3.0}
    assert torch.allclose(widths, torch.ones_like(widths))
    expected_centers = (attention * torch.arange(9)).sum(-1)
    assert torch.allclose(centers, expected_centers)


def test_torch_and_numpy_agree_on_ragged_batches():
    gen = torch.Generator().manual_seed(4)
    attention = torch.softmax(torch.randn(3, 7, 12, dtype=torch.float64, generator=gen) * 3, -1)
    kwargs = {"student_lengths": torch.tensor([7, 2, 5]), "teacher_lengths": [12, 4, 9]}
    t_band, t_centers, t_widths = dwa_band(attention, **kwargs)
    n_band, n_centers, n_widths = dwa_band(attention.numpy(), student_lengths=[7, 2, 5], teacher_lengths=[12, 4, 9])
    assert isinstance(n_band, np.ndarray) and n_band.dtype == np.float64
    assert np.array_equal(t_band.numpy(), n_band)
    assert np.allclose(t_centers.numpy(), n_centers, atol=1e-12) and np.allclose(t_widths.numpy(), n_widths)
    for b, (s, t) in enumerate([(7, 12), (2, 4), (5, 9)]):
        single = dwa_band_numpy(attention[b, :s, :t].numpy())
        assert np.array_equal(n_band[b, :s, :t], single[0]) and np.allclose(n_centers[b, :s], single[1])
        assert n_band[b, s:].sum() == 0 and n_band[b, :, t:].sum() == 0 and n_centers[b, s:].sum() == 0


def test_ragged_rows_are_renormalised_and_padding_unpenalised():
    attention = np.full((2, 4, 10), 0.1)
    attention[1, :, 5:] = np.nan  # padding may hold anything
    band, centers, _ = dwa_band(attention, student_lengths=[4, 2], teacher_lengths=[10, 5])
    single_band, single_centers, _ = dwa_band(np.full((2, 5), 0.2))
    assert np.allclose(band[1, :2, :5], single_band) and np.allclose(centers[1, :2], single_centers)
    assert band[1, 2:].sum() == 0 and band[1, :, 5:].sum() == 0 and centers[1, 2:].sum() == 0


def test_a_row_without_mass_counts_as_uniform():
    attention = np.zeros((3, 8))
    attention[0, 2] = 1.0
    attention[2, 5] = 4.0  # unnormalised rows are renormalised
    band, centers, widths = dwa_band(attention)
    uniform_band, uniform_centers, uniform_widths = dwa_band(np.full((3, 8), 1 / 8))
    assert widths[1] == pytest.approx(uniform_widths[1]) and centers[1] == pytest.approx(uniform_centers[1])
    assert np.array_equal(band[1], uniform_band[1])
    assert centers[2] == pytest.approx(0.7 * 5 + 0.3 * 2 * 8 / 3)


def test_float32_keeps_its_dtype():
    band, centers, widths = dwa_band(np.full((3, 4), 0.25, dtype=np.float32))
    assert band.dtype == centers.dtype == widths.dtype == np.float32
    t_band, _, _ = dwa_band(torch.full((3, 4), 0.25))
    assert t_band.dtype == torch.float32


def test_band_feeds_the_divergence():
    from ctkd_inspect.batch.softdtw import soft_dtw_divergence

    gen = torch.Generator().manual_seed(1)
    student = torch.randn(2, 6, 4, dtype=torch.float64, generator=gen)
    teacher = torch.randn(2, 9, 4, dtype=torch.float64, generator=gen)
    attention = torch.softmax(student @ teacher.transpose(1, 2), -1)
    band, _, _ = dwa_band(attention, width=1.0, beta=0.5)
    assert band.shape == (2, 6, 9) and band.sum() > 0
    plain = soft_dtw_divergence(student, teacher, 2.0, cost="cosine")
    banded = soft_dtw_divergence(student, teacher, 2.0, cost="cosine", band=band)
    assert (banded >= plain - 1e-12).all()
    numpy_banded = soft_dtw_divergence(student, teacher, 2.0, cost="cosine", band=band.numpy())
    assert torch.allclose(banded, numpy_banded)


def test_numpy_band_imports_no_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import numpy as np\n"
            "from ctkd_inspect.batch.band import dwa_band\n"
            "band, centers, widths = dwa_band(np.full((4, 20), 1 / 20))\n"
            "print(int((band > 0).sum()))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"alpha": 1.5}, "alpha"), ({"width": -1}, "width"), ({"beta": -0.1}, "beta"), ({"penalty": -1}, "penalty"),
    ({"penalty": float("inf")}, "penalty"), ({"student_lengths": [9]}, "student_lengths"),
    ({"teacher_lengths": [0]}, "teacher_lengths"), ({"teacher_lengths": [2.5]}, "teacher_lengths"),
])
def test_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dwa_band(np.full((4, 6), 1 / 6), **kwargs)
    with pytest.raises(ValueError, match=message):
        dwa_band(torch.full((4, 6), 1 / 6), **kwargs)


def test_shape_and_value_errors():
    for bad in (np.zeros((3,)), np.zeros((0, 4)), np.zeros((2, 3, 0)), np.zeros((1, 2, 3, 4))):
        with pytest.raises(ValueError, match="attention"):
            dwa_band(bad)
    with pytest.raises(ValueError, match="non-finite"):
        dwa_band(np.array([[0.5, np.nan]]))
    with pytest.raises(ValueError, match="non-finite"):
        dwa_band(torch.tensor([[0.5, float("inf")]]))
    with pytest.raises(ValueError, match="floating"):
        dwa_band_torch(torch.ones(2, 3, dtype=torch.int64))
