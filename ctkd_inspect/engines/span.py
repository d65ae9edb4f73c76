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
union-find over the overlapping pairs and an ordering pass.

Two implementations of the sweep give one result (the same :class:`GroupTable`, array for array; the tests compare
them on the real corpus and on fuzzed spans):

- **compiled** (numba, cached on disk, in ``_span_kernel``): every input, about 2 µs per short text from Python
  and 6 ns per token, and whole corpora in one call (:func:`span_groups_corpus`: corpus mode, the preflight
  checks). Its price is paid once per process: importing numba (which pulls in scipy's BLAS check) and loading
  the cached machine code take about 0.4 s, as long as parsing the Llama 3 tokenizer;
- **vectorised numpy** (:func:`_sorted_groups_numpy`): the usual case only (sorted spans, no empty non-special
  token), about 30 µs per short text and 25 ns per token, with nothing to load. It exists for the front ends that
  align one text and exit or wait for the next (``ctkd-inspect TEACHER STUDENT TEXT``, the TUI, the widgets):
  the compiled path's load made ``ctkd-inspect llama3 gemma2 hi`` 0.4 s slower (``benchmarks/bench_startup.py``).

:func:`span_groups` uses the numpy form while the compiled kernel is not loaded and the time spent in it stays
below what loading the kernel costs (:data:`ONE_TEXT_BUDGET_S`); any other input, and every call once the kernel is
loaded (by a corpus call, :meth:`SpanEngine.warm_up`, an input the numpy form does not take, or that budget
spent), goes to the compiled kernel. So a one-text front end never imports numba, and a process that aligns text
after text one by one spends at most about twice what the better path alone would have cost (the ski-rental rule).
"""

from __future__ import annotations

import time
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


#: Seconds of the numpy path a process may spend before :func:`span_groups` loads the compiled kernel instead: about
#: what that load costs (numba's import and its cache, measured 0.35-0.45 s on two cores), so a process that aligns
#: text after text spends at most twice what the better path alone would have cost.
ONE_TEXT_BUDGET_S = 0.4
_one_text_spent = 0.0


def _wide_sorted(starts: np.ndarray, ends: np.ndarray, special: np.ndarray):
    """``(positions, starts, ends)`` of one side's non-special tokens, or ``None`` when one of them is empty (or
    reversed) or their spans are not sorted (starts and ends non-decreasing): the inputs only the compiled kernel
    takes. The same conditions as the kernel's ``gather_wide``, which picks its one-pass path on them."""
    kept = ~special
    if (kept & (ends <= starts)).any():
        return None
    positions = np.flatnonzero(kept)
    a, b = starts[positions], ends[positions]
    if len(positions) > 1 and ((a[1:] < a[:-1]).any() or (b[1:] < b[:-1]).any()):
        return None
    return positions, a, b


def _sorted_groups_numpy(t_starts, t_ends, t_special, s_starts, s_ends, s_special):
    """The compiled one-pass sweep (``_span_kernel.groups_sorted``) written with numpy, for one text: the CSR arrays
    ``(teacher_offsets, teacher_indices, student_offsets, student_indices)`` (int64) equal to the compiled
    kernel's, or ``None`` when the input is not of the usual case (see :func:`_wide_sorted`).

    For sorted spans the students that teacher ``i`` overlaps are ``[lo_i, hi_i)`` with ``lo_i`` the first student
    ending after the teacher starts and ``hi_i`` the first starting at or after it ends, both non-decreasing in
    ``i``; the kernel's two pointers are these two ``searchsorted`` calls. A teacher joins the previous teacher's
    group when both overlap students and its range starts before the previous one ends (the union of a run of such
    ranges is one contiguous student range: the component's students). Students in no such range are groups of
    their own; every group is placed by the first student index it could hold (a teacher group before a lone
    student at the same index, as the sweep writes them). Groups come out in text order with every token in order,
    so the index arrays are the positions of the non-special tokens themselves.
    """
    teacher = _wide_sorted(t_starts, t_ends, t_special)
    student = _wide_sorted(s_starts, s_ends, s_special) if teacher is not None else None
    if student is None:
        return None
    (t_pos, ts, te), (s_pos, ss, se) = teacher, student
    n, m = len(t_pos), len(s_pos)
    lo = np.searchsorted(se, ts, "right")
    hi = np.searchsorted(ss, te, "left")
    linked = hi > lo
    joins = np.zeros(n, dtype=bool)
    joins[1:] = linked[1:] & linked[:-1] & (lo[1:] < hi[:-1])
    first = np.flatnonzero(~joins)  # the first teacher of each teacher group
    after = np.empty_like(first)  # one past its last teacher
    after[:-1] = first[1:]
    after[-1:] = n
    g_lo = lo[first]
    g_hi = np.where(linked[first], hi[after - 1], g_lo)  # the group's students: [g_lo, g_hi)
    # the ranges are disjoint, so a student is in one exactly when the running count of opened ranges is not 0
    depth = np.cumsum(np.bincount(g_lo, minlength=m + 1) - np.bincount(g_hi, minlength=m + 1))
    alone = np.flatnonzero(depth[:m] == 0)
    teacher_at = np.arange(len(first)) + np.searchsorted(alone, g_lo, "left")
    alone_at = np.arange(len(alone)) + np.searchsorted(g_lo, alone, "right")
    t_off = np.zeros(len(first) + len(alone) + 1, dtype=np.int64)
    s_off = np.zeros_like(t_off)
    t_off[teacher_at + 1] = after - first
    s_off[teacher_at + 1] = g_hi - g_lo
    s_off[alone_at + 1] = 1
    np.cumsum(t_off, out=t_off)
    np.cumsum(s_off, out=s_off)
    return t_off, t_pos.astype(np.int64, copy=False), s_off, s_pos.astype(np.int64, copy=False)


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

    The same table from either path (see the module docstring): the numpy form while the compiled kernel is not
    loaded and :data:`ONE_TEXT_BUDGET_S` is not spent, for the inputs it takes; the compiled kernel otherwise.

    Raises:
        EngineError: the tokenizations are of different texts.
    """
    global _one_text_spent
    if teacher.text != student.text:
        raise EngineError("the teacher and student tokenizations are of different texts")
    if _KERNEL is None and _one_text_spent < ONE_TEXT_BUDGET_S:
        began = time.perf_counter()
        arrays = _sorted_groups_numpy(teacher.starts, teacher.ends, teacher.special, student.starts, student.ends,
                                      student.special)
        _one_text_spent += time.perf_counter() - began
        if arrays is not None:
            return GroupTable.from_arrays(*arrays)
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
        """Load the compiled sweep (numba's import and its on-disk cache, about 0.4 s) without aligning anything,
        so that every later :func:`span_groups` call takes it: for callers about to align many texts one by one.
        One-text front ends do not call it (the numpy form answers them without numba); nor does it help to run
        it in a thread while tokenizers load, since the tokenizers library holds the GIL while it parses."""
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
