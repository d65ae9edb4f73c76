"""Building tokenizations by hand and checking the invariants every engine must keep."""

from __future__ import annotations

import numpy as np

from ctkd_inspect.alignment import Alignment
from ctkd_inspect.text import Tokenization


def from_pieces(name: str, pieces: list[str], *, strip_leading_space: bool = False,
                special: list[bool] | None = None) -> Tokenization:
    """A tokenization whose tokens are consecutive pieces of ``"".join(pieces)``."""
    text = "".join(pieces)
    starts, ends, position = [], [], 0
    for piece in pieces:
        start = position + (1 if strip_leading_space and piece.startswith(" ") else 0)
        starts.append(start)
        position += len(piece)
        ends.append(position)
    return from_spans(name, text, list(zip(starts, ends)), tokens=pieces, special=special)


def from_spans(name: str, text: str, spans: list[tuple[int, int]], *, tokens: list[str] | None = None,
               special: list[bool] | None = None) -> Tokenization:
    tokens = tokens or [text[a:b] for a, b in spans]
    n = len(spans)
    return Tokenization(name=name, text=text, ids=np.arange(n), tokens=list(tokens), _pieces=list(tokens),
                        starts=np.array([a for a, _ in spans], dtype=np.int64),
                        ends=np.array([b for _, b in spans], dtype=np.int64),
                        special=np.array(special or [False] * n, dtype=bool))


#: Engines whose groups promise that both sides cover the same text. The span engine builds groups from overlapping
#: character spans, so it does. The DTW engines (mined, cdm) and softdtw do not: they pair tokens along a path of
#: string (or vector) similarity, and a group may join tokens of different characters (MinED's "▁c" on "of" in
#: research/methods.md §9, vector 1); for them only the partition and order invariants hold.
SAME_TEXT_ENGINES = frozenset({"span"})


def covered(tokens, indices) -> set[int]:
    """The character positions the given tokens cover."""
    chars: set[int] = set()
    for i in indices:
        chars.update(range(int(tokens.starts[i]), int(tokens.ends[i])))
    return chars


def assert_sides_cover_the_same_text(alignment: Alignment) -> None:
    """Both sides of every group cover the same characters, except characters the other tokenizer covers with no
    token at all (BERT drops whitespace and control characters): a one-sided group covers only such characters."""
    t, s = alignment.teacher, alignment.student
    t_cover = covered(t, np.flatnonzero(~t.special))
    s_cover = covered(s, np.flatnonzero(~s.special))
    for g in range(len(alignment.table)):
        teacher_chars = covered(t, alignment.table.teacher(g))
        student_chars = covered(s, alignment.table.student(g))
        assert teacher_chars & s_cover == student_chars & t_cover, f"group {g} covers different text on each side"


def assert_engine_invariants(alignment: Alignment) -> None:
    """Partition, order and type invariants shared by every engine (see ctkd_inspect.alignment), and, for the
    engines in :data:`SAME_TEXT_ENGINES`, that both sides of each group cover the same text."""
    for side in ("teacher", "student"):
        tokens = getattr(alignment, side)
        owner = alignment.group_of(side)
        indices = getattr(alignment.table, f"{side}_indices")
        # every non-special token is in exactly one group; special tokens in none
        assert len(indices) == len(np.unique(indices))
        assert np.array_equal(np.sort(indices), np.flatnonzero(~tokens.special))
        assert np.all(owner[tokens.special] == -1)
        # monotone: along the groups that have this side, indices increase strictly
        previous_max = -1
        for g in range(len(alignment.table)):
            members = getattr(alignment.table, side)(g)
            if len(members):
                assert np.all(np.diff(members) > 0)
                assert members[0] > previous_max, f"{side} group {g} is out of order"
                previous_max = members[-1]
    for g in range(len(alignment.table)):
        assert len(alignment.table.teacher(g)) + len(alignment.table.student(g)) > 0
    if alignment.engine in SAME_TEXT_ENGINES:
        assert_sides_cover_the_same_text(alignment)
