"""Span-component engine (SeDi's bipartite alignment, AAAI 2026).

Tokens are nodes; an edge joins a teacher token and a student token whose half-open character spans overlap
(``a < d and c < b`` for ``[a, b)`` and ``[c, d)``: spans that only touch do not connect). The groups are the
connected components, so every shape appears: 1:1, 1:n, n:1 and n:m. No strings are compared, so markers, byte
fallback and normalisation do not matter; byte tokens of one character share its span and land in one group.

Policies where the paper is silent (each is tested):

- special tokens take no part: they are in no group and reported unmatched (reason ``special``);
- a non-special token with an empty span overlaps nothing: it forms a group with an empty partner side
  (unmatched, reason ``zero-width``) — unless it sits between two tokens of one group on its own side, in which
  case that group carries it, so groups stay contiguous;
- a token whose characters the other tokenizer covers with no token (BERT drops whitespace and control
  characters) is likewise alone in its group (unmatched, reason ``no-partner``);
- spans are taken as the tokenizers report them (with the leading space for byte-level BPE, without it for
  WordPiece); both conventions give the same groups whenever both sides cover the same characters.

The sweep: when each side's spans are sorted (starts and ends non-decreasing, true of every tokenizer in the
registry), the student tokens a teacher token overlaps form a contiguous index range whose two ends only move
forward, so one two-pointer pass over both lists finds every range, and components are runs of teachers whose
ranges chain: O(n + m), with no loop over token pairs. When no non-special token is empty either (the usual
case) that pass meets the groups in text order and writes them as they close. Other inputs fall back to a
union-find over the overlapping pairs and an ordering pass. All of it runs compiled (numba, cached on disk, in
``_span_kernel``): about a microsecond per text, plus about as much again for the call from Python.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..alignment import Alignment, GroupTable
from ..errors import EngineError
from ..metrics import compute_metrics
from ..text import Tokenization

# The compiled sweep lives in ._span_kernel, imported (with numba) on first use so that importing the engine stays
# cheap; its functions are module-level, so numba's on-disk cache serves them to every later process.
_KERNEL = None


def _load_kernel():
    global _KERNEL
    if _KERNEL is None:
        from . import _span_kernel

        _KERNEL = _span_kernel
    return _KERNEL


def _components(function, ts, te, ss, se):
    t_comp = np.full(len(ts), -1, np.int64)
    s_comp = np.full(len(ss), -1, np.int64)
    arrays = [np.asarray(a, np.int64) for a in (ts, te, ss, se)]
    count = function(*arrays, t_comp, s_comp)
    return t_comp, s_comp, count


def _components_sorted(ts, te, ss, se):
    """Component ids of sorted span lists (for tests): ``(teacher_component, student_component, count)``."""
    return _components(_load_kernel().components_sorted, ts, te, ss, se)


def _components_general(ts, te, ss, se):
    """Component ids of arbitrary span lists (for tests)."""
    return _components(_load_kernel().components_general, ts, te, ss, se)


def span_groups(teacher: Tokenization, student: Tokenization) -> GroupTable:
    """The span-component groups of two tokenizations of one text, ordered along the text.

    Raises:
        EngineError: the tokenizations are of different texts.
    """
    if teacher.text != student.text:
        raise EngineError("the teacher and student tokenizations are of different texts")
    # one compiled call fills one array; the four CSR arrays are views of it (the table keeps it alive)
    out, a, b, c, d, e, f, h = (_KERNEL or _load_kernel()).span_groups_arrays(
        teacher.starts, teacher.ends, teacher.special, student.starts, student.ends, student.special)
    return GroupTable.from_arrays(out[a:b], out[:c], out[d:e], out[f:h])


class CorpusGroups:
    """Span groups of a whole corpus in shared arrays; ``groups[i]`` is text ``i``'s :class:`GroupTable` (views).

    Offsets and token indices are local to each text, exactly as :func:`span_groups` returns them.
    """

    def __init__(self, t_off, t_idx, s_off, s_idx, off_at, t_at, s_at):
        self.t_off, self.t_idx, self.s_off, self.s_idx = t_off, t_idx, s_off, s_idx
        self.off_at, self.t_at, self.s_at = off_at, t_at, s_at

    def __len__(self) -> int:
        return len(self.off_at) - 1

    def __getitem__(self, i: int) -> GroupTable:
        o0, o1 = int(self.off_at[i]), int(self.off_at[i + 1])
        return GroupTable(self.t_off[o0:o1], self.t_idx[int(self.t_at[i]):int(self.t_at[i + 1])],
                          self.s_off[o0:o1], self.s_idx[int(self.s_at[i]):int(self.s_at[i + 1])])

    def group_counts(self) -> np.ndarray:
        """Number of groups of every text."""
        return np.diff(self.off_at) - 1


def span_groups_corpus(teacher, student) -> CorpusGroups:
    """Span groups for every text of two :class:`~ctkd_inspect.text.TokenizedCorpus` objects, in one compiled call.

    Raises:
        EngineError: the corpora hold different texts.
    """
    if len(teacher) != len(student) or teacher.texts != student.texts:
        raise EngineError("the teacher and student corpora hold different texts")
    return CorpusGroups(*_load_kernel().span_groups_many(teacher.starts, teacher.ends, teacher.special,
                                                         teacher.bounds, student.starts, student.ends,
                                                         student.special, student.bounds))


class SpanEngine:
    """SeDi's character-span bipartite components; needs no model and compares no strings."""

    name: ClassVar[str] = "span"
    description: ClassVar[str] = "character-span bipartite components (SeDi): tokens whose spans overlap"
    options: ClassVar[tuple] = ()
    requires_signals: ClassVar[frozenset[str]] = frozenset()
    optional_signals: ClassVar[frozenset[str]] = frozenset()
    differentiable: ClassVar[bool] = False
    # span_groups_corpus aligns a whole batch of texts in one compiled call (the losses' data pipeline uses it)
    batched: ClassVar[bool] = True

    @classmethod
    def warm_up(cls) -> None:
        """Load the compiled sweep (numba's import and its on-disk cache, about half a second) without aligning
        anything; front-ends run it in a thread while the tokenizers load, so the first answer does not wait."""
        empty = np.zeros(0, dtype=np.int64)
        _load_kernel().span_groups_arrays(empty, empty, np.zeros(0, dtype=bool), empty, empty,
                                          np.zeros(0, dtype=bool))

    def align(self, teacher: Tokenization, student: Tokenization, **options) -> Alignment:
        """Group tokens whose character spans overlap. Takes no options.

        Raises:
            EngineError: an option was given, or the tokenizations are of different texts.
        """
        if options:
            raise EngineError(f"the span engine takes no options (got {', '.join(sorted(options))})")
        alignment = Alignment(teacher, student, span_groups(teacher, student), engine=self.name)
        alignment.metrics = compute_metrics(alignment)
        return alignment
