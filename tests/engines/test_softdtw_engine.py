"""The softdtw inspection engine: projector fit, span-overlap attention, band, soft and hard alignment."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ctkd_inspect.engines.softdtw import SoftDTWEngine, fit_projector, overlap_attention
from ctkd_inspect.errors import EngineError
from ctkd_inspect.signals import Signals

from .helpers import assert_engine_invariants, from_spans


def signals_for(tokens, vectors):
    n = len(tokens)
    return Signals("synthetic", tokens.ids, np.zeros(n), np.zeros((n, 1), np.int64), np.ones((n, 1)),
                   np.asarray(vectors, float), np.asarray(vectors, float))


TEXT = "abcdefghij"
TEACHER = from_spans("t", TEXT, [(0, 0), (0, 2), (2, 4), (4, 5), (5, 6), (6, 8), (8, 10)],
                     special=[True] + [False] * 6)
STUDENT = from_spans("s", TEXT, [(0, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 8), (8, 10)])


def synthetic(seed=0, noise=0.0):
    """Student vectors are a linear map of the teacher vectors of the tokens covering the same characters."""
    rng = np.random.default_rng(seed)
    teacher = rng.normal(size=(len(TEACHER), 6))
    W = rng.normal(size=(6, 5))
    student = np.zeros((len(STUDENT), 5))
    for j in range(len(STUDENT)):
        covering = [i for i in range(1, len(TEACHER)) if TEACHER.starts[i] < STUDENT.ends[j]
                    and STUDENT.starts[j] < TEACHER.ends[i]]
        student[j] = teacher[covering].mean(0) @ W + 0.3 + noise * rng.normal(size=5)
    return signals_for(TEACHER, teacher), signals_for(STUDENT, student)


def test_fit_projector_recovers_a_linear_map():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 8))
    W, c = rng.normal(size=(8, 3)), rng.normal(size=3)
    projector, info = fit_projector(X, X @ W + c, ridge=1e-6)
    assert np.allclose(projector[:-1], W, atol=1e-3) and np.allclose(projector[-1], c, atol=1e-3)
    assert info["anchors"] == 200 and info["fit_r2"] > 0.999999
    with pytest.raises(EngineError, match="at least 2 anchor pairs"):
        fit_projector(X[:1], X[:1], 0.1)


def test_auto_ridge_is_chosen_by_leave_one_out_error():
    """Few anchors in many dimensions: a weak ridge reproduces the anchors (in-sample R² ≈ 1) but predicts held-out
    anchors badly; the automatic choice takes the ridge with the best leave-one-out error, and its reported
    leave-one-out R² matches a brute-force refit without each anchor."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(14, 64))
    Y = X @ rng.normal(size=(64, 5)) * 0.1 + rng.normal(size=(14, 5))  # mostly noise: nothing to transfer
    _, weak = fit_projector(X, Y, ridge=1e-4)
    _, auto = fit_projector(X, Y)
    assert weak["fit_r2"] > 0.99 and weak["loo_r2"] < auto["loo_r2"]
    assert auto["ridge"] > 1e-4
    _, info = fit_projector(X, Y, ridge=auto["ridge"])
    press = 0.0
    for i in range(len(X)):
        rest = np.arange(len(X)) != i
        # refit without anchor i, with the same absolute strength as the full fit
        Xr, Yr = X[rest] - X[rest].mean(0), Y[rest] - Y[rest].mean(0)
        W = np.linalg.solve(Xr.T @ Xr + info["ridge_strength"] * np.eye(64), Xr.T @ Yr)
        prediction = (X[i] - X[rest].mean(0)) @ W + Y[rest].mean(0)
        press += float(((Y[i] - prediction) ** 2).sum())
    assert info["loo_r2"] == pytest.approx(1 - press / float(((Y - Y.mean(0)) ** 2).sum()), rel=1e-8)
    # a clean linear relation with plenty of anchors: the automatic fit transfers almost perfectly
    X = rng.normal(size=(300, 8))
    _, clean = fit_projector(X, X @ rng.normal(size=(8, 3)) + 1.0)
    assert clean["loo_r2"] > 0.999


def test_overlap_attention_rows():
    s_idx, t_idx = np.arange(len(STUDENT)), np.arange(1, len(TEACHER))
    attention = overlap_attention(STUDENT, TEACHER, s_idx, t_idx)
    assert np.allclose(attention.sum(1), 1)
    # student token (2, 3) shares one character with teacher token (2, 4) only
    assert attention[1].tolist() == [0, 1, 0, 0, 0, 0]
    # student (0, 2) and teacher (0, 2) are the same characters
    assert attention[0, 0] == 1
    lonely = from_spans("s", TEXT, [(0, 0), (0, 10)])
    a = overlap_attention(lonely, TEACHER, np.array([0, 1]), t_idx)
    assert np.allclose(a.sum(1), 1) and a[0].argmax() == 0  # a zero-width token gets a Gaussian around its position


def most_probable_path(probabilities: np.ndarray) -> list[tuple[int, int]]:
    """The monotone path from (0, 0) to the last cell (steps (1, 1), (1, 0), (0, 1)) with the largest product of
    cell probabilities, by enumerating every path (small grids only)."""
    n, m = probabilities.shape
    logs = np.log(np.clip(probabilities, 1e-300, None)).tolist()
    best: tuple[float, list] = (-np.inf, [])

    def walk(i, j, total, path):
        nonlocal best
        total += logs[i][j]
        path.append((i, j))
        if (i, j) == (n - 1, m - 1):
            if total > best[0]:
                best = (total, list(path))
        else:
            for di, dj in ((1, 1), (1, 0), (0, 1)):
                if i + di < n and j + dj < m:
                    walk(i + di, j + dj, total, path)
        path.pop()

    walk(0, 0, 0.0, [])
    return best[1]


def test_engine_on_synthetic_signals():
    t_sig, s_sig = synthetic()
    result = SoftDTWEngine().align(TEACHER, STUDENT, teacher_signals=t_sig, student_signals=s_sig)
    assert_engine_invariants(result)
    soft = np.array(result.extra["soft_alignment"]["matrix"])
    assert soft.shape == (len(STUDENT), len(TEACHER) - 1)
    assert result.extra["soft_alignment"]["teacher_index"] == list(range(1, len(TEACHER)))
    # the hard groups follow the characters: teacher (2, 4) takes student (2, 3) and (3, 4)
    groups = [(g.teacher, g.student) for g in result.groups]
    assert ([2], [1, 2]) in groups and ([1], [0]) in groups
    # the hard path is the maximum-probability monotone path through the soft alignment: found here by trying
    # every monotone path of the 6 × 7 grid (teacher rows; 3653 of them), not by the DTW the engine uses
    best = most_probable_path(soft.T)
    assert result.extra["path"] == [[i + 1, j] for i, j in best]
    m = result.metrics
    assert m["anchors"] == 5 and np.isfinite(m["soft_dtw_divergence"])
    assert m["expected_path_length"] > 0 and m["soft_dtw"] <= m["path_cost"] + 1e-9
    json.dumps(result.to_dict())


def test_band_and_gamma_options_take_effect():
    t_sig, s_sig = synthetic(noise=0.5)
    engine = SoftDTWEngine()
    crisp = engine.align(TEACHER, STUDENT, teacher_signals=t_sig, student_signals=s_sig, gamma=0.01)
    smooth = engine.align(TEACHER, STUDENT, teacher_signals=t_sig, student_signals=s_sig, gamma=2.0)
    crisp_matrix = np.array(crisp.extra["soft_alignment"]["matrix"])
    smooth_matrix = np.array(smooth.extra["soft_alignment"]["matrix"])
    assert crisp_matrix.max(1).mean() > smooth_matrix.max(1).mean()  # a small gamma concentrates the alignment
    narrow = engine.align(TEACHER, STUDENT, teacher_signals=t_sig, student_signals=s_sig, band_width=0.0,
                          band_beta=0.0, band_penalty=5.0)
    assert narrow.extra["band"]["penalised_cells"] > crisp.extra["band"]["penalised_cells"]
    assert narrow.options["band_penalty"] == 5.0


def test_errors():
    t_sig, s_sig = synthetic()
    engine = SoftDTWEngine()
    with pytest.raises(EngineError, match="teacher_model"):
        engine.align(TEACHER, STUDENT)
    with pytest.raises(EngineError, match="the softdtw engine has no option band"):
        engine.align(TEACHER, STUDENT, teacher_signals=t_sig, student_signals=s_sig, band=3)
    for bad in ({"gamma": 0}, {"gamma": float("inf")}, {"band_alpha": 1.5}, {"band_penalty": -1},
                {"band_width": float("nan")}, {"ridge": 0}, {"ridge": "loo"}, {"representation": "logits"}):
        with pytest.raises(EngineError, match=next(iter(bad)).split("_")[-1]):
            engine.align(TEACHER, STUDENT, teacher_signals=t_sig, student_signals=s_sig, **bad)
    short = signals_for(from_spans("x", TEXT, [(0, 5), (5, 10)]), np.ones((2, 6)))
    with pytest.raises(EngineError, match="other token ids"):
        engine.align(TEACHER, STUDENT, teacher_signals=short, student_signals=s_sig)
    crossing = from_spans("s", TEXT, [(0, 3), (3, 10)])
    with pytest.raises(EngineError, match="anchor pairs"):
        engine.align(TEACHER, crossing, teacher_signals=t_sig, student_signals=signals_for(crossing, np.ones((2, 5))))


@pytest.mark.models
def test_with_the_two_real_models():
    from click.testing import CliRunner

    from ctkd_inspect import align
    from ctkd_inspect.cli import main

    text = "The capital of France is Paris. Naïve tokenizers split 🦙 into bytes."
    result = align("gemma3", "smollm2", text, engine="softdtw")
    assert_engine_invariants(result)
    assert result.options["teacher_model"] == "gemma3" and result.metrics["anchors"] >= 10
    assert result.metrics["alignment_rate"] > 0.5
    out = CliRunner().invoke(main, ["gemma3", "smollm2", text, "--engine", "softdtw", "--gamma", "0.05", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["engine"] == "softdtw" and data["options"]["gamma"] == 0.05 and data["soft_alignment"]["matrix"]
    out = CliRunner().invoke(main, ["llama3", "gemma2", text, "--engine", "span", "--gamma", "0.1"])
    assert out.exit_code == 2 and "--gamma" in out.output
