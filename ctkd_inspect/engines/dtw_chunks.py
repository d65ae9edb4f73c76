"""Chunked DTW for long texts: where to cut, and how much memory each piece needs.

DTW's cost and backtrace matrices grow with the product of the two token counts (a 100k-character text is about
26k × 32k tokens for Llama 3 × Gemma 2: 850 M cells). The chunked mode cuts the token sequences into pieces at
points where both tokenizations agree and runs DTW on each piece independently; the pieces' paths are joined
end to end. Memory then grows with the largest piece instead of the whole text.

Cut points (``chunking``):

``anchors``
    right after an **exact 1:1 span anchor**: a teacher token and a student token that cover exactly the same
    characters and overlap no other token (an exact 1:1 group of the span engine). Each piece ends on such a pair
    and the next piece starts right after it on both sides.
``paragraphs``
    at **paragraph boundaries**: after a run of whitespace holding two or more newlines, at the first offset
    inside it where both tokenizations have a token boundary (every non-special token ends at or before it, or
    starts at or after it). A paragraph longer than ``chunk_tokens`` stays one piece.

Pieces are formed greedily: each piece takes the furthest cut point that keeps it within ``chunk_tokens``
non-special tokens on each side; when no cut point lies within that window, the piece runs to the next cut point
(and is larger). DTW forces both ends of each piece to align, so the joined path passes through every cut; the
unchunked path need not, which is the whole difference between the two (measured on the real corpus by
``benchmarks/bench_dtw_chunked.py``; figures in the README).
"""

from __future__ import annotations

import re

import numpy as np

from ..text import Tokenization

CHUNKING = ("off", "anchors", "paragraphs")
#: Default largest piece, in non-special tokens per side.
DEFAULT_CHUNK_TOKENS = 2048

_BLANK_LINE = re.compile(r"\n\s*\n")


def anchor_splits(teacher: Tokenization, student: Tokenization, t_idx: np.ndarray,
                  s_idx: np.ndarray) -> np.ndarray:
    """Split points after every exact 1:1 span anchor: ``(K, 2)`` int64 rows ``(a, b)`` meaning "the next piece
    starts at non-special teacher position ``a`` and student position ``b``" (positions index ``t_idx`` /
    ``s_idx``), strictly increasing in both columns, ``0 < a < len(t_idx)`` and ``0 < b < len(s_idx)``."""
    from .span import span_groups

    table = span_groups(teacher, student)
    one = (table.teacher_sizes == 1) & (table.student_sizes == 1)
    ti = table.teacher_indices[table.teacher_offsets[:-1][one]]
    sj = table.student_indices[table.student_offsets[:-1][one]]
    exact = ((teacher.starts[ti] == student.starts[sj]) & (teacher.ends[ti] == student.ends[sj])
             & (teacher.ends[ti] > teacher.starts[ti]))
    a = np.searchsorted(t_idx, ti[exact]) + 1
    b = np.searchsorted(s_idx, sj[exact]) + 1
    return _valid(np.stack([a, b], axis=1), len(t_idx), len(s_idx))


def _boundary(starts: np.ndarray, ends: np.ndarray, offset: int) -> int | None:
    """How many of these (sorted) tokens lie before ``offset``, when ``offset`` is a clean boundary between
    tokens (none crosses it); ``None`` otherwise."""
    k = int(np.searchsorted(starts, offset, side="left"))
    if k > 0 and ends[k - 1] > offset:
        return None
    return k


def paragraph_splits(teacher: Tokenization, student: Tokenization, t_idx: np.ndarray,
                     s_idx: np.ndarray) -> np.ndarray:
    """Split points at paragraph boundaries (see the module docstring), in the form of :func:`anchor_splits`.
    Tokenizations whose spans are not sorted (no registered tokenizer) give no split points."""
    sides = []
    for tokens, idx in ((teacher, t_idx), (student, s_idx)):
        starts, ends = tokens.starts[idx], tokens.ends[idx]
        if np.any(np.diff(starts) < 0) or np.any(np.diff(ends) < 0):
            return np.zeros((0, 2), np.int64)
        sides.append((starts, ends))
    rows = []
    for match in _BLANK_LINE.finditer(teacher.text):
        # the start of the next paragraph first, then the start of the blank run, then just after each of its
        # first newlines (a long run of blank lines is not searched offset by offset)
        inside = [match.start() + k + 1 for k, c in enumerate(teacher.text[match.start():match.end()][:64])
                  if c == "\n"]
        for offset in (match.end(), match.start(), *inside):
            a = _boundary(*sides[0], offset)
            b = _boundary(*sides[1], offset) if a is not None else None
            if a is not None and b is not None:
                rows.append((a, b))
                break
    return _valid(np.asarray(rows, np.int64).reshape(-1, 2), len(t_idx), len(s_idx))


def _valid(splits: np.ndarray, n: int, m: int) -> np.ndarray:
    """Keep split points strictly inside both sequences and strictly increasing in both columns."""
    splits = splits[(splits[:, 0] > 0) & (splits[:, 0] < n) & (splits[:, 1] > 0) & (splits[:, 1] < m)]
    keep, last_a, last_b = [], 0, 0
    for a, b in splits.tolist():
        if a > last_a and b > last_b:
            keep.append((a, b))
            last_a, last_b = a, b
    return np.asarray(keep, np.int64).reshape(-1, 2)


def plan_chunks(splits: np.ndarray, n: int, m: int, size: int) -> list[tuple[int, int, int, int]]:
    """Pieces ``(t0, t1, s0, s1)`` (half-open ranges of non-special positions) covering ``n`` × ``m`` tokens,
    cut at ``splits`` greedily (see the module docstring); every piece has at least one token on each side.

    >>> plan_chunks(np.array([[2, 2], [4, 5], [6, 7]]), 8, 9, 4)
    [(0, 2, 0, 2), (2, 4, 2, 5), (4, 8, 5, 9)]
    """
    chunks: list[tuple[int, int, int, int]] = []
    p = q = 0
    A, B = splits[:, 0], splits[:, 1]
    while True:
        if n - p <= size and m - q <= size:
            break
        lo = int(np.searchsorted(A, p, side="right"))  # the first split after the current start
        if lo >= len(A):
            break
        hi = min(int(np.searchsorted(A, p + size, side="right")), int(np.searchsorted(B, q + size, side="right")))
        k = hi - 1 if hi > lo else lo
        a, b = int(A[k]), int(B[k])
        chunks.append((p, a, q, b))
        p, q = a, b
    chunks.append((p, n, q, m))
    return chunks


def chunk_splits(chunking: str, teacher: Tokenization, student: Tokenization, t_idx: np.ndarray,
                 s_idx: np.ndarray) -> np.ndarray:
    """The split points of a chunking mode (``off``: none)."""
    if chunking == "anchors":
        return anchor_splits(teacher, student, t_idx, s_idx)
    if chunking == "paragraphs":
        return paragraph_splits(teacher, student, t_idx, s_idx)
    return np.zeros((0, 2), np.int64)
