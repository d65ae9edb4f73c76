"""Classic DTW over token strings, as MinED (FuseLLM/DSKD) and CDM use it — vectorised cost, compiled DP.

The conventions are the published ones (``simpledtw``): ``R[i,j] = cost(i,j) + min(R[i-1,j-1], R[i-1,j],
R[i,j-1])`` with infinite borders and ``R[-1,-1] = 0``; the backtrace starts at the last cell, takes at each
cell the first minimum of ``[diag, up, left]`` over the accumulated matrix (numpy's argmin keeps the first, so
ties go diagonal > up (teacher index − 1) > left (student index − 1)), stops at (0, 0) and always includes it:
both ends are forced to align. Series 1 is the teacher, series 2 the student.

The cost matrix comes from one vectorised call (rapidfuzz ``cdist``), the recursion and the backtrace run
compiled (numba, cached on disk): no Python loop per cell. The DP itself is the batched kernel of
:mod:`ctkd_inspect.batch.dtw` (here on a batch of one), which the distillation losses call on whole batches.
"""

from __future__ import annotations

import numpy as np


def edit_distance_matrix(teacher: list[str], student: list[str], *, normalized: bool = False,
                         workers: int = 1) -> np.ndarray:
    """Levenshtein distance between every teacher and student string, ``(n, m)``.

    ``normalized=True`` gives CDM's ``Lev(a, b) / (|a| + |b|)`` (0 when both are empty) as float64; otherwise
    int32 distances. Callers strip markers or spaces first; nothing is stripped here.
    """
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cdist

    if not teacher or not student:
        return np.zeros((len(teacher), len(student)), dtype=np.float64 if normalized else np.int32)
    # Token sequences repeat strings a lot (spaces, punctuation, common words): compute each distinct pair once.
    t_unique, t_inverse = np.unique(np.asarray(teacher, dtype=object), return_inverse=True)
    s_unique, s_inverse = np.unique(np.asarray(student, dtype=object), return_inverse=True)
    distinct = cdist(t_unique.tolist(), s_unique.tolist(), scorer=Levenshtein.distance, dtype=np.int32,
                     workers=workers)
    distance = distinct.take(t_inverse, axis=0).take(s_inverse, axis=1)
    if not normalized:
        return distance
    total = (np.fromiter(map(len, teacher), np.int64, len(teacher))[:, None]
             + np.fromiter(map(len, student), np.int64, len(student))[None, :])
    return np.divide(distance, total, out=np.zeros(distance.shape, dtype=np.float64), where=total > 0)


def normalized_edit_distance(a: str, b: str) -> float:
    """CDM's ``d(a, b) = Lev(a, b) / (|a| + |b|)``, 0 when both are empty (callers remove spaces first).

    >>> normalized_edit_distance("cat", "cats")
    0.14285714285714285
    """
    from rapidfuzz.distance import Levenshtein

    total = len(a) + len(b)
    return 0.0 if total == 0 else Levenshtein.distance(a, b) / total


def cdm_entropy_factors(entropy: np.ndarray, *, guard_constant: bool = True, lengths=None) -> np.ndarray:
    """CDM's weight factors ``int(3 + 3·σ(4e − 2))`` ∈ {3, 4, 5}, with ``e`` the entropy min-max scaled within
    the sequence (cut points at e ≈ 0.327 and e ≈ 0.673).

    The reference code divides by ``max − min`` unguarded: a constant entropy (one token, for instance) makes
    ``e`` NaN and the integer cast produces garbage. ``guard_constant=True`` (canonical) gives every token 4 (the
    middle factor, i.e. no token is preferred); ``False`` raises ``ValueError`` instead of computing garbage.

    ``entropy`` is one sequence ``(n,)``, or a padded batch ``(B, N)`` with ``lengths`` ``(B,)`` (each row scaled
    within its own first ``lengths[b]`` values; padding gets factor 0; the error names the first constant row).

    >>> cdm_entropy_factors(np.array([1.0, 2.0, 3.0])).tolist()
    [3, 4, 5]
    """
    entropy = np.asarray(entropy, dtype=np.float64)
    if entropy.ndim == 2:
        B, N = entropy.shape
        n = np.full(B, N, np.int64) if lengths is None else np.asarray(lengths, dtype=np.int64).reshape(-1)
        if n.shape != (B,) or (n < 0).any() or (n > N).any():
            raise ValueError(f"lengths must hold {B} integers in [0, {N}]")
        valid = np.arange(N)[None, :] < n[:, None]
        if not np.all(np.isfinite(entropy[valid])):
            raise ValueError("entropy holds NaN or infinite values")
        low = np.where(valid, entropy, np.inf).min(axis=1, initial=np.inf)
        high = np.where(valid, entropy, -np.inf).max(axis=1, initial=-np.inf)
        constant = (n > 0) & (high == low)
        if constant.any() and not guard_constant:
            raise ValueError(f"constant entropy in row {int(np.flatnonzero(constant)[0])} (e.g. a one-token "
                             "sequence): the reference CDM weights are undefined (0/0 in the min-max scaling); use "
                             "the canonical mode")
        span = np.where(high > low, high - low, 1.0)
        scaled = (entropy - np.where(np.isfinite(low), low, 0.0)[:, None]) / span[:, None]
        factors = (3 + 3 / (1 + np.exp(-(4 * scaled - 2)))).astype(np.int64)
        factors = np.where(constant[:, None], 4, factors)
        return np.where(valid, factors, 0)
    if entropy.ndim != 1:
        raise ValueError("entropy must be one value per token")
    if len(entropy) == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.all(np.isfinite(entropy)):
        raise ValueError("entropy holds NaN or infinite values")
    low, high = float(entropy.min()), float(entropy.max())
    if high == low:
        if not guard_constant:
            raise ValueError("constant entropy: the reference CDM weights are undefined (0/0 in the min-max "
                             "scaling); use the canonical mode")
        return np.full(len(entropy), 4, dtype=np.int64)
    scaled = (entropy - low) / (high - low)
    return (3 + 3 / (1 + np.exp(-(4 * scaled - 2)))).astype(np.int64)


class DTWResult:
    """A hard DTW alignment.

    Attributes:
        path: ``(L, 2)`` int array of ``(teacher i, student j)`` cells, from (0, 0) to (n−1, m−1).
        cost: the accumulated cost at the last cell.
        teacher_to_student: for each teacher index, the student indices it is paired with (ascending).
        student_to_teacher: for each student index, the teacher indices it is paired with (ascending).
    """

    def __init__(self, path: np.ndarray, cost: float, n: int, m: int):
        self.path = path
        self.cost = cost
        self._shape = (n, m)
        self._t2s: list[list[int]] | None = None
        self._s2t: list[list[int]] | None = None

    def _mappings(self) -> None:
        n, m = self._shape
        t2s: list[list[int]] = [[] for _ in range(n)]
        s2t: list[list[int]] = [[] for _ in range(m)]
        for i, j in self.path.tolist():
            t2s[i].append(j)
            s2t[j].append(i)
        self._t2s, self._s2t = t2s, s2t

    @property
    def teacher_to_student(self) -> list[list[int]]:
        if self._t2s is None:
            self._mappings()
        return self._t2s

    @property
    def student_to_teacher(self) -> list[list[int]]:
        if self._s2t is None:
            self._mappings()
        return self._s2t


def dtw_path(cost: np.ndarray) -> DTWResult:
    """Classic DTW over a cost matrix (teacher rows, student columns); see the module docstring.

    Raises:
        ValueError: an empty side, a matrix that is not 2-D, or non-finite costs.
    """
    from ..batch.dtw import dtw_paths

    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"the cost matrix must be 2-D, got shape {cost.shape}")
    n, m = cost.shape
    # one implementation of the DP serves the engines and the losses: the batched kernel, on a batch of one
    batch = dtw_paths(cost[None])
    return DTWResult(batch.path(0).copy(), float(batch.totals[0]), n, m)


def path_components(path: np.ndarray) -> list[tuple[list[int], list[int]]]:
    """Connected components of a monotone DTW path, in order.

    Consecutive path cells share a row or a column unless the step is diagonal, so a component ends exactly at
    each diagonal step.

    >>> path_components(np.array([[0, 0], [1, 1], [2, 2], [3, 2], [4, 3]]))
    [([0], [0]), ([1], [1]), ([2, 3], [2]), ([4], [3])]
    """
    if len(path) == 0:
        return []
    diagonal = np.flatnonzero((np.diff(path[:, 0]) > 0) & (np.diff(path[:, 1]) > 0)) + 1
    out = []
    for piece in np.split(path, diagonal):
        out.append((np.unique(piece[:, 0]).tolist(), np.unique(piece[:, 1]).tolist()))
    return out


def cdm_groups(teacher_to_student: list[list[int]], student_to_teacher: list[list[int]]) -> list[dict]:
    """CDM's own grouping (``transform_step_logits_fast``): each distinct ``teacher_to_student`` list, in first-seen
    order, is one group of student positions; its teacher rows are the teachers of those students (the rows CDM
    averages). On n:m paths groups can overlap; this is kept as published, for fidelity.
    """
    seen: dict[tuple[int, ...], int] = {}
    groups: list[dict] = []
    for students in teacher_to_student:
        key = tuple(students)
        if key in seen:
            continue
        seen[key] = len(groups)
        teachers = sorted({i for j in students for i in student_to_teacher[j]})
        groups.append({"teacher": teachers, "student": list(students)})
    return groups
