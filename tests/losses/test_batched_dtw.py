"""The DTW lifted to padded batches: one compiled call must give, for every pair, exactly the path of a
straightforward Python DP written here from FuseLLM's ``simpledtw`` conventions, and CDM's groups as the Python
grouping of ``dtw_core`` builds them."""

from __future__ import annotations

import numpy as np
import pytest

from ctkd_inspect.batch.dtw import dtw_paths
from ctkd_inspect.engines.dtw_core import cdm_groups, dtw_path, edit_distance_matrix


def python_dtw(cost: np.ndarray):
    """simpledtw, as FuseLLM/CDM wrote it: a Python double loop and an argmin backtrace (ties diag > up > left)."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0
    for i in range(n):
        for j in range(m):
            acc[i + 1, j + 1] = cost[i, j] + min(acc[i, j + 1], acc[i + 1, j], acc[i, j])
    acc = acc[1:, 1:]
    i, j = n - 1, m - 1
    path = []
    while i > 0 or j > 0:
        path.append((i, j))
        options = [acc[i - 1, j - 1] if i > 0 and j > 0 else np.inf, acc[i - 1, j] if i > 0 else np.inf,
                   acc[i, j - 1] if j > 0 else np.inf]
        move = int(np.argmin(options))
        i, j = (i - 1, j - 1) if move == 0 else (i - 1, j) if move == 1 else (i, j - 1)
    path.append((0, 0))
    return path[::-1], acc[-1, -1]


def test_vector1_and_vector2_in_one_batch():
    """research/methods.md §9 vectors 1 and 2: the flat-factor path and the path with "of" uncertain."""
    lev = edit_distance_matrix(["The", "comfort", "of", "c", "ats"], ["The", "comfort", "of", "cats"]).astype(float)
    costs = np.stack([lev, lev * 9, lev * 3 * np.array([3, 3, 5, 3])[None, :]])
    out = dtw_paths(costs)
    assert out.path(0).tolist() == [[0, 0], [1, 1], [2, 2], [3, 2], [4, 3]] and out.totals[0] == 3
    assert out.totals[1] == 27
    assert out.path(2).tolist() == [[0, 0], [1, 1], [2, 2], [3, 3], [4, 3]] and out.totals[2] == 36
    _, _, s_first, s_last = out.ranges()
    assert s_first[0].tolist() == [0, 1, 2, 4] and s_last[0].tolist() == [0, 1, 3, 4]  # stu→tea [[0],[1],[2,3],[4]]


@pytest.mark.parametrize("seed", range(6))
def test_ragged_random_batches_equal_the_python_dp(seed):
    rng = np.random.default_rng(seed)
    B, N, M = 7, 9, 11
    # small integer costs make ties frequent, which is where the tie order shows
    costs = rng.integers(0, 3, size=(B, N, M)).astype(float)
    n = rng.integers(1, N + 1, size=B)
    m = rng.integers(1, M + 1, size=B)
    costs[0, n[0]:, :] = np.nan  # padding is never read
    out = dtw_paths(costs, n, m)
    for b in range(B):
        path, total = python_dtw(costs[b, :n[b], :m[b]])
        assert out.path(b).tolist() == [list(p) for p in path]
        assert out.totals[b] == total
        assert (out.paths[b, out.steps[b]:] == -1).all()


def test_cdm_groups_of_the_batch_equal_the_python_grouping():
    rng = np.random.default_rng(3)
    costs = rng.integers(0, 4, size=(5, 8, 10)).astype(float)
    n, m = np.array([8, 3, 1, 6, 5]), np.array([10, 7, 4, 1, 5])
    out = dtw_paths(costs, n, m)
    groups, counts = out.cdm_groups()
    for b in range(5):
        single = dtw_path(costs[b, :n[b], :m[b]])
        expected = cdm_groups(single.teacher_to_student, single.student_to_teacher)
        got = [{"teacher": list(range(t0, t1 + 1)), "student": list(range(s0, s1 + 1))}
               for s0, s1, t0, t1 in groups[b, :counts[b]].tolist()]
        assert got == expected


def test_the_engine_path_is_the_batched_kernel():
    """dtw_core.dtw_path (the inspection engines) and a batch of one give the same path and cost."""
    rng = np.random.default_rng(0)
    cost = rng.random((13, 17))
    single = dtw_path(cost)
    batched = dtw_paths(cost[None])
    assert single.path.tolist() == batched.path(0).tolist() and single.cost == batched.totals[0]


def test_parallel_and_serial_kernels_agree(monkeypatch):
    from ctkd_inspect.batch import _dtw_kernel

    rng = np.random.default_rng(1)
    costs = rng.integers(0, 2, size=(6, 40, 30)).astype(float)
    serial = dtw_paths(costs)
    monkeypatch.setattr(_dtw_kernel, "PARALLEL_MIN_CELLS", 1)
    parallel = dtw_paths(costs)
    assert np.array_equal(serial.paths, parallel.paths) and np.array_equal(serial.totals, parallel.totals)


@pytest.mark.parametrize(("costs", "kwargs", "message"), [
    (np.zeros((2, 0, 3)), {}, "at least one token"),
    (np.zeros((2, 3, 3)), {"teacher_lengths": [0, 3]}, "teacher_lengths"),
    (np.zeros((2, 3, 3)), {"student_lengths": [4, 3]}, "student_lengths"),
    (np.full((1, 2, 2), np.nan), {}, "NaN"),
    (np.zeros(3), {}, "must be"),
])
def test_clear_errors(costs, kwargs, message):
    with pytest.raises(ValueError, match=message):
        dtw_paths(costs, **kwargs)
