"""DWA-KD's adaptive soft band (methods.md §5.3, vector 10)."""

import math

import numpy as np
import pytest
import torch

from ctkd_inspect.batch.band import dwa_band


def test_vector10_one_hot_attention():
    attention = np.zeros((4, 20))
    attention[[0, 1, 2, 3], [0, 6, 12, 19]] = 1
    band, centers, widths = dwa_band(attention)
    assert np.allclose(centers, [0, 5.7, 11.4, 17.8]) and np.allclose(widths, 5)
    assert np.flatnonzero(band[0]).tolist() == list(range(6, 20))  # row 0 penalises j >= 6
    assert np.flatnonzero(band[3]).tolist() == list(range(0, 13))  # row 3 penalises j <= 12


def test_vector10_uniform_attention():
    band, centers, widths = dwa_band(np.full((4, 20), 1 / 20))
    assert np.allclose(widths, 5 + 2 * math.log(20)) and widths[0] == pytest.approx(10.99, abs=0.01)
    assert np.allclose(centers, [6.65, 8.15, 9.65, 11.15])
    assert np.argwhere(band > 0).tolist() == [[0, 18], [0, 19], [3, 0]]  # exactly three cells


def test_parameters_and_torch_input():
    attention = torch.softmax(torch.randn(2, 5, 9, generator=torch.Generator().manual_seed(0)), -1)
    band, centers, widths = dwa_band(attention, width=1.0, beta=0.0, alpha=1.0, penalty=3.0)
    assert isinstance(band, torch.Tensor) and band.dtype == attention.dtype
    assert set(band.unique().tolist()) <= {0.0, 3.0}
    assert torch.allclose(widths, torch.ones_like(widths))
    expected_centers = (attention * torch.arange(9)).sum(-1)
    assert torch.allclose(centers, expected_centers)


def test_ragged_rows_are_renormalised_and_padding_unpenalised():
    attention = np.full((2, 4, 10), 0.1)
    band, centers, _ = dwa_band(attention, student_lengths=[4, 2], teacher_lengths=[10, 5])
    single_band, single_centers, _ = dwa_band(np.full((2, 5), 0.2))
    assert np.allclose(band[1, :2, :5], single_band) and np.allclose(centers[1, :2], single_centers)
    assert band[1, 2:].sum() == 0 and band[1, :, 5:].sum() == 0 and centers[1, 2:].sum() == 0


@pytest.mark.parametrize(("kwargs", "message"), [({"alpha": 1.5}, "alpha"), ({"width": -1}, "width"),
                                                 ({"student_lengths": [9]}, "student_lengths")])
def test_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dwa_band(np.full((4, 6), 1 / 6), **kwargs)
    with pytest.raises(ValueError, match="attention"):
        dwa_band(np.zeros((3,)))
