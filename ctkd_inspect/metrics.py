"""Alignment metrics shared by every engine.

Definitions (all over non-special tokens; a ratio whose denominator is zero is ``None``):

- ``alignment_rate``: share of student tokens that sit in an exact 1:1 group, i.e. a group of one teacher and one
  student token covering exactly the same characters.
- ``shapes``: number of groups per shape (``1:1``, ``1:n``, ``n:1``, ``n:m``, teacher first; ``unmatched`` for
  groups with one empty side).
- ``text_coverage_1to1`` / ``text_coverage_exact``: share of the text's characters inside 1:1 groups / exact 1:1
  groups.
- ``unmatched``: per side, counts of tokens without a partner by reason (``special``, ``zero-width``,
  ``no-partner``).
- ``tokens``: per side, all tokens and non-special tokens; ``fertility``: student / teacher non-special tokens.
- ``max_group_tokens``: the largest group (teacher + student tokens).
"""

from __future__ import annotations

import numpy as np

from .alignment import Alignment


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else float(numerator) / float(denominator)


def covered_characters(spans: np.ndarray, length: int) -> int:
    """Number of characters in ``[0, length)`` covered by at least one ``[start, end)`` span."""
    if length == 0 or len(spans) == 0:
        return 0
    delta = np.zeros(length + 1, dtype=np.int64)
    np.add.at(delta, np.clip(spans[:, 0], 0, length), 1)
    np.add.at(delta, np.clip(spans[:, 1], 0, length), -1)
    return int(np.count_nonzero(np.cumsum(delta[:-1]) > 0))


def compute_metrics(alignment: Alignment) -> dict:
    """The metric dict described in this module's docstring.

    Raises:
        InputError: ``alignment`` is not an :class:`~ctkd_inspect.alignment.Alignment`.
    """
    from .arguments import check_alignment

    check_alignment(alignment)
    table = alignment.table
    t_sizes, s_sizes = table.teacher_sizes, table.student_sizes
    exact = alignment.exact_mask()
    one_to_one = (t_sizes == 1) & (s_sizes == 1)
    student_nonspecial = int(np.count_nonzero(~alignment.student.special))
    teacher_nonspecial = int(np.count_nonzero(~alignment.teacher.special))
    spans = alignment.group_spans()
    length = len(alignment.text)
    shapes = {"1:1": 0, "1:n": 0, "n:1": 0, "n:m": 0, "unmatched": 0}
    for name in alignment.shapes():
        shapes[name] += 1
    unmatched = {}
    for side, records in alignment.unmatched().items():
        counts = {"special": 0, "zero-width": 0, "no-partner": 0}
        for record in records:
            counts[record["reason"]] += 1
        unmatched[side] = counts
    return {
        "alignment_rate": _ratio(int(exact.sum()), student_nonspecial),
        "groups": len(table),
        "shapes": shapes,
        "exact_groups": int(exact.sum()),
        "text_coverage_1to1": _ratio(covered_characters(spans[one_to_one], length), length),
        "text_coverage_exact": _ratio(covered_characters(spans[exact], length), length),
        "unmatched": unmatched,
        "tokens": {"teacher": {"all": len(alignment.teacher), "non_special": teacher_nonspecial},
                   "student": {"all": len(alignment.student), "non_special": student_nonspecial}},
        "fertility": _ratio(student_nonspecial, teacher_nonspecial),
        "max_group_tokens": int((t_sizes + s_sizes).max()) if len(table) else 0,
    }
