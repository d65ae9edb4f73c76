"""Differences between two alignments of one text, and between two vocabulary mappings of one pair.

:func:`diff` compares two :class:`~ctkd_inspect.alignment.Alignment` objects of the same text, ``a`` being the
reference: two engines on one pair (``span`` vs ``mined``), or the same engine and student with two teachers.
It is a pure function; its result (:class:`AlignmentDiff`) is JSON-ready data that every front-end renders through
the presentation model (:func:`ctkd_inspect.render.diff_segments`).

**Definitions** (a group is its two token sets, teacher and student):

- ``agree``: a group of ``a`` with the same teacher and student token sets in ``b``;
- ``split``: a group of ``a``, not agreeing, that is exactly the union of two or more groups of ``b``;
- ``merge``: a group of ``b``, not agreeing, that is exactly the union of two or more groups of ``a``;
- ``cross``: every other group of ``a`` that does not agree and is not split — so
  ``agree + split + cross == len(a.groups)``; a group of ``a`` that is one part of a merge counts as ``cross``
  (it is not itself a union of groups of ``b``). The groups of ``b`` that neither agree nor merge are counted as
  ``cross_b`` (they include the parts of each split);
- boundaries: on each side, the positions ``i`` such that tokens ``i`` and ``i + 1`` of that side are both
  non-special and lie in different groups (a group with an empty side counts as a group; a token in no group
  counts as group -1). ``B_a`` and ``B_b`` are these positions tagged by side (``("teacher", i)``,
  ``("student", j)``); ``boundary_precision = |B_a ∩ B_b| / |B_b|``, ``boundary_recall = |B_a ∩ B_b| / |B_a|``,
  ``boundary_f1`` their harmonic mean. A ratio whose denominator is zero is 1.0 when both sets are empty and 0.0
  otherwise, so ``boundary_f1`` is 1.0 when both sets are empty and 0.0 when exactly one is;
- ``differs``: some group of ``a`` does not agree, or the two alignments have different numbers of groups
  (equivalently: the two partitions of the tokens differ).

**Identifying tokens.** On a side where both alignments have the same tokenization (same ids, character spans and
special flags), a token is its index. Where they differ (two teachers, same student), tokens cannot be compared by
index: a token is identified by its character span ``[start, end)``, its occurrence number among the tokens of
that side with the same span (byte tokens of one character share its span) and its bytes — two teachers' tokens
are the same token only when all three match. Boundaries on such a side are compared by character offset: the
boundary after token ``i`` is ``ends[i]`` (several boundaries at one offset, around zero-width tokens, count
once). The two alignments must share at least one tokenization.

:func:`vocab_diff` compares two :class:`~ctkd_inspect.vocab.VocabMapping` objects of one tokenizer pair (exact vs
MinED, reference vs canonical, a saved file vs a fresh one), per direction.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from .alignment import Alignment, shape_of
from .errors import InputError
from .text import Tokenization

__all__ = ["MAPPING_SPECS", "AlignmentDiff", "DisagreeingGroup", "VocabMappingDiff", "diff", "mapping_from_spec",
           "same_tokenization", "vocab_diff"]

SIDES = ("teacher", "student")


def same_tokenization(x: Tokenization, y: Tokenization) -> bool:
    """Whether two tokenizations cut a text identically: same ids, character spans and special flags."""
    return (len(x) == len(y) and np.array_equal(x.ids, y.ids) and np.array_equal(x.starts, y.starts)
            and np.array_equal(x.ends, y.ends) and np.array_equal(x.special, y.special))


def _ratio(numerator: int, denominator: int, both_empty: bool) -> float:
    if denominator == 0:
        return 1.0 if both_empty else 0.0
    return numerator / denominator


# ---------------------------------------------------------------------------------------------------------------
# result


@dataclass(frozen=True)
class DisagreeingGroup:
    """A group of one alignment that does not agree with the other.

    Attributes:
        which: ``"a"`` or ``"b"``: the alignment the group belongs to.
        group: its index in that alignment's groups.
        kind: ``split`` or ``cross`` for a group of ``a``; ``merge`` or ``cross`` for a group of ``b``.
        related: the groups of the other alignment that share a token with it, ascending.
        teacher, student: the group's token indices, each ``(index, piece, start, end)``.
        start, end: the characters the group covers (the hull of its tokens' spans).
    """

    which: str
    group: int
    kind: str
    related: tuple[int, ...]
    teacher: tuple[tuple[int, str, int, int], ...]
    student: tuple[tuple[int, str, int, int], ...]
    start: int
    end: int

    @property
    def shape(self) -> str:
        return shape_of(len(self.teacher), len(self.student))

    def to_dict(self) -> dict:
        def tokens(entries):
            return [{"index": i, "piece": p, "start": s, "end": e} for i, p, s, e in entries]

        return {"group": self.group, "kind": self.kind, "shape": self.shape, "related": list(self.related),
                "start": self.start, "end": self.end, "teacher": tokens(self.teacher),
                "student": tokens(self.student)}


def _frozen(mapping: dict) -> Mapping:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class AlignmentDiff:
    """What :func:`diff` finds (definitions in the module docstring). ``to_dict()`` is the ``diff --json`` output.

    Attributes:
        agree, split, merge, cross: the counts; ``cross_b``: groups of ``b`` that neither agree nor merge.
        boundary_precision, boundary_recall, boundary_f1: the boundary figures.
        differs: the two partitions differ.
        groups_a, groups_b: the numbers of groups.
        boundaries_a, boundaries_b: per side (``teacher``, ``student``), the sorted boundary positions: token
            indices, or character offsets on a side whose tokenizations differ (see ``basis``).
        basis: per side, ``index`` or ``offset``.
        disagreeing_a, disagreeing_b: the groups that do not agree, in group order.
        label_a, label_b: engine, teacher and student names of each alignment.
        alignment_a, alignment_b: the two alignments compared (kept for the notebook view, which draws their
            ribbons; not part of ``to_dict()`` or of equality), ``None`` for a diff built by hand.
    """

    agree: int
    split: int
    merge: int
    cross: int
    cross_b: int
    boundary_precision: float
    boundary_recall: float
    boundary_f1: float
    differs: bool
    groups_a: int
    groups_b: int
    boundaries_a: Mapping[str, tuple[int, ...]]
    boundaries_b: Mapping[str, tuple[int, ...]]
    basis: Mapping[str, str]
    disagreeing_a: tuple[DisagreeingGroup, ...]
    disagreeing_b: tuple[DisagreeingGroup, ...]
    label_a: Mapping[str, str] = field(default_factory=lambda: _frozen({}))
    label_b: Mapping[str, str] = field(default_factory=lambda: _frozen({}))
    alignment_a: Alignment | None = field(default=None, compare=False, repr=False)
    alignment_b: Alignment | None = field(default=None, compare=False, repr=False)

    def disagreeing(self, which: str) -> dict[int, DisagreeingGroup]:
        """The disagreeing groups of ``a`` or ``b`` by group index."""
        if which not in ("a", "b"):
            raise InputError(f"which must be 'a' or 'b', not {which!r}")
        records = self.disagreeing_a if which == "a" else self.disagreeing_b
        return {record.group: record for record in records}

    def to_dict(self) -> dict:
        """JSON-ready: counts, boundary figures and sets, the disagreeing groups of each side, the labels."""
        return {
            "differs": self.differs,
            "agree": self.agree, "split": self.split, "merge": self.merge, "cross": self.cross,
            "cross_b": self.cross_b,
            "groups": {"a": self.groups_a, "b": self.groups_b},
            "boundary_precision": self.boundary_precision,
            "boundary_recall": self.boundary_recall,
            "boundary_f1": self.boundary_f1,
            "boundaries": {"basis": dict(self.basis),
                           "a": {side: list(v) for side, v in self.boundaries_a.items()},
                           "b": {side: list(v) for side, v in self.boundaries_b.items()}},
            "a": dict(self.label_a), "b": dict(self.label_b),
            "disagreeing": {"a": [r.to_dict() for r in self.disagreeing_a],
                            "b": [r.to_dict() for r in self.disagreeing_b]},
        }

    def _repr_html_(self) -> str:
        """The notebook view: both alignments' ribbons with the disagreeing groups highlighted, the counts and
        boundary figures, the disagreeing groups (:func:`ctkd_inspect.html.diff_html`)."""
        from .html import diff_html, diff_summary_html  # deferred: only notebooks and reports need it

        if self.alignment_a is not None and self.alignment_b is not None:
            return diff_html(self.alignment_a, self.alignment_b, self)
        return diff_summary_html(self)


# ---------------------------------------------------------------------------------------------------------------
# the comparison


def _token_keys(tokens: Tokenization) -> list[tuple]:
    """(start, end, occurrence number among the tokens with this span, bytes) for every token."""
    seen: dict[tuple[int, int], int] = {}
    keys = []
    for start, end, raw in zip(tokens.starts.tolist(), tokens.ends.tolist(), tokens.token_bytes()):
        span = (start, end)
        occurrence = seen.get(span, 0)
        seen[span] = occurrence + 1
        keys.append((start, end, occurrence, raw))
    return keys


def _shared_ids(x: Tokenization, y: Tokenization, same: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """Token ids in one space shared by both tokenizations of a side: (ids of x's tokens, of y's, size)."""
    if same:
        ids = np.arange(len(x), dtype=np.int64)
        return ids, ids, len(x)
    numbering: dict[tuple, int] = {}
    x_ids = np.fromiter((numbering.setdefault(k, len(numbering)) for k in _token_keys(x)), np.int64, len(x))
    y_ids = np.fromiter((numbering.setdefault(k, len(numbering)) for k in _token_keys(y)), np.int64, len(y))
    return x_ids, y_ids, len(numbering)


def _owner_in_space(alignment: Alignment, side: str, ids: np.ndarray, size: int) -> np.ndarray:
    owner = np.full(size, -1, dtype=np.int64)
    owner[ids] = alignment.group_of(side)
    return owner


def _classify(x: Alignment, x_ids: dict, y: Alignment, y_owner: dict) -> tuple[list[str], list[np.ndarray]]:
    """For each group of ``x``: ``agree``, ``union`` (exactly the union of two or more groups of ``y``) or
    ``other``, and the groups of ``y`` that share a token with it (ascending). Array operations over all groups.

    Why sizes decide: ``y``'s groups are disjoint, so when every token of an x-group lies in some y-group, the
    y-groups it touches cover it, and they hold nothing else exactly when their sizes add up to the x-group's.
    """
    table = x.table
    count = len(table)
    t_sizes, s_sizes = table.teacher_sizes, table.student_sizes
    y_t, y_s = y.table.teacher_sizes, y.table.student_sizes
    y_total = y_t + y_s
    # one entry per token of every x-group: the x-group and the y-group holding that token (-1: none)
    groups = np.concatenate([np.repeat(np.arange(count), t_sizes), np.repeat(np.arange(count), s_sizes)])
    owners = np.concatenate([y_owner["teacher"][x_ids["teacher"][table.teacher_indices]],
                             y_owner["student"][x_ids["student"][table.student_indices]]])
    # a token the other alignment groups nowhere (or, across teachers, lacks) rules out agree and union
    missing = np.bincount(groups[owners < 0], minlength=count) > 0
    held = owners >= 0
    width = len(y_total) + 1
    pairs = np.unique(groups[held] * width + owners[held])  # distinct (x-group, y-group), sorted by both
    pair_x, pair_y = pairs // width, pairs % width
    linked = np.bincount(pair_x, minlength=count)
    covered = np.bincount(pair_x, weights=y_total[pair_y], minlength=count) if len(pairs) else np.zeros(count)
    size = t_sizes + s_sizes
    agree = np.zeros(count, dtype=bool)
    single = np.flatnonzero(~missing & (linked == 1))
    if len(single):
        only = pair_y[np.searchsorted(pair_x, single)]  # the one y-group of each such x-group
        agree[single] = (y_t[only] == t_sizes[single]) & (y_s[only] == s_sizes[single])
    # a group with no token at all (not a valid group) agrees with such a group of y, as sets do
    agree[size == 0] = bool(np.any(y_total == 0))
    union = ~missing & (linked >= 2) & (covered == size)
    kinds = np.where(agree, "agree", np.where(union, "union", "other")).tolist()
    related = np.split(pair_y, np.cumsum(linked)[:-1]) if count else []
    return kinds, related


def _boundaries(alignment: Alignment, side: str, basis: str) -> tuple[int, ...]:
    tokens = alignment.teacher if side == "teacher" else alignment.student
    if len(tokens) < 2:
        return ()
    owner = alignment.group_of(side)
    special = tokens.special
    positions = np.flatnonzero(~special[:-1] & ~special[1:] & (owner[:-1] != owner[1:]))
    if basis == "offset":
        return tuple(sorted(set(tokens.ends[positions].tolist())))
    return tuple(positions.tolist())


def _record(alignment: Alignment, which: str, g: int, kind: str, related: np.ndarray,
            spans: np.ndarray) -> DisagreeingGroup:
    entries = {}
    for side in SIDES:
        tokens = alignment.teacher if side == "teacher" else alignment.student
        members = getattr(alignment.table, side)(g).tolist()
        entries[side] = tuple((i, tokens.pieces[i], int(tokens.starts[i]), int(tokens.ends[i])) for i in members)
    return DisagreeingGroup(which, g, kind, tuple(int(h) for h in related), entries["teacher"], entries["student"],
                            int(spans[g][0]), int(spans[g][1]))


def _label(alignment: Alignment) -> Mapping[str, str]:
    return _frozen({"engine": alignment.engine, "teacher": alignment.teacher.name,
                    "student": alignment.student.name})


def diff(a: Alignment, b: Alignment) -> AlignmentDiff:
    """Compare two alignments of the same text, ``a`` being the reference (definitions in the module docstring).

    Args:
        a: the reference alignment.
        b: the other alignment: same text, and the same teacher or the same student tokenization (or both).

    Returns:
        An :class:`AlignmentDiff` (frozen; ``to_dict()`` is JSON-ready).

    Raises:
        InputError: ``a`` or ``b`` is not an Alignment, ``b`` aligns another text, or the two alignments differ
            in both tokenizations.
    """
    for name, value in (("a", a), ("b", b)):
        if not isinstance(value, Alignment):
            raise InputError(f"{name} must be an Alignment, not {type(value).__name__}")
    if a.text != b.text:
        raise InputError("b aligns a different text than a; diff compares two alignments of the same text")
    same = {side: same_tokenization(getattr(a, side), getattr(b, side)) for side in SIDES}
    if not any(same.values()):
        raise InputError(f"a and b differ in both tokenizations (teacher {a.teacher.name} vs {b.teacher.name}, "
                         f"student {a.student.name} vs {b.student.name}); diff compares alignments that share the "
                         "teacher or the student tokenization: two engines on one pair, or two teachers of one "
                         "student")
    a_ids, b_ids, a_owner, b_owner = {}, {}, {}, {}
    for side in SIDES:
        a_ids[side], b_ids[side], size = _shared_ids(getattr(a, side), getattr(b, side), same[side])
        a_owner[side] = _owner_in_space(a, side, a_ids[side], size)
        b_owner[side] = _owner_in_space(b, side, b_ids[side], size)
    a_kinds, a_related = _classify(a, a_ids, b, b_owner)
    b_kinds, b_related = _classify(b, b_ids, a, a_owner)
    agree = a_kinds.count("agree")
    split = a_kinds.count("union")
    merge = b_kinds.count("union")
    basis = {side: "index" if same[side] else "offset" for side in SIDES}
    bounds_a = {side: _boundaries(a, side, basis[side]) for side in SIDES}
    bounds_b = {side: _boundaries(b, side, basis[side]) for side in SIDES}
    size_a = sum(len(v) for v in bounds_a.values())
    size_b = sum(len(v) for v in bounds_b.values())
    common = sum(len(set(bounds_a[side]) & set(bounds_b[side])) for side in SIDES)
    both_empty = size_a == 0 and size_b == 0
    precision = _ratio(common, size_b, both_empty)
    recall = _ratio(common, size_a, both_empty)
    f1 = 1.0 if both_empty else (2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    names_a = {"agree": "agree", "union": "split", "other": "cross"}
    names_b = {"agree": "agree", "union": "merge", "other": "cross"}
    spans_a, spans_b = a.group_spans(), b.group_spans()
    disagreeing_a = tuple(_record(a, "a", g, names_a[k], a_related[g], spans_a)
                          for g, k in enumerate(a_kinds) if k != "agree")
    disagreeing_b = tuple(_record(b, "b", g, names_b[k], b_related[g], spans_b)
                          for g, k in enumerate(b_kinds) if k != "agree")
    return AlignmentDiff(
        agree=agree, split=split, merge=merge, cross=len(a_kinds) - agree - split,
        cross_b=b_kinds.count("other"), boundary_precision=precision, boundary_recall=recall, boundary_f1=f1,
        differs=agree < len(a_kinds) or len(a_kinds) != len(b_kinds), groups_a=len(a_kinds), groups_b=len(b_kinds),
        boundaries_a=_frozen(bounds_a), boundaries_b=_frozen(bounds_b), basis=_frozen(basis),
        disagreeing_a=disagreeing_a, disagreeing_b=disagreeing_b, label_a=_label(a), label_b=_label(b),
        alignment_a=a, alignment_b=b)


# ---------------------------------------------------------------------------------------------------------------
# vocabulary mappings

DIRECTIONS = ("teacher_to_student", "student_to_teacher")
CATEGORIES = ("agree", "differ", "only_a", "only_b")


@dataclass(frozen=True)
class VocabMappingDiff:
    """What :func:`vocab_diff` finds; ``to_dict()`` is the ``vocab-diff --json`` output.

    Attributes:
        label_a, label_b: kind, mode, teacher and student of each mapping.
        coverage_a, coverage_b: each mapping's :meth:`~ctkd_inspect.vocab.VocabMapping.coverage`.
        directions: per direction (``teacher_to_student``, ``student_to_teacher``): counts of source ids whose
            entries ``agree`` (both mapped to the same target), ``differ`` (both mapped, to different targets),
            exist in ``a`` only (``only_a``: mapped in ``a``, unmapped in ``b``), in ``b`` only (``only_b``), or
            in ``neither``; and ``examples`` of each of the first four categories.
        differs: some entry differs or exists on one side only.
    """

    label_a: Mapping[str, str]
    label_b: Mapping[str, str]
    coverage_a: Mapping
    coverage_b: Mapping
    directions: Mapping[str, Mapping]
    differs: bool

    def to_dict(self) -> dict:
        def plain(value):
            if isinstance(value, Mapping):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            return value

        return {"differs": self.differs, "a": plain(self.label_a), "b": plain(self.label_b),
                "coverage": {"a": plain(self.coverage_a), "b": plain(self.coverage_b)},
                "directions": plain(self.directions)}

    def _repr_html_(self) -> str:
        """The notebook view (:func:`ctkd_inspect.html.vocab_diff_html`)."""
        from .html import vocab_diff_html  # deferred: only notebooks and reports need it

        return vocab_diff_html(self)


def _spread(ids: np.ndarray, limit: int) -> np.ndarray:
    """Up to ``limit`` ids spread evenly over ``ids`` (deterministic; the first and the last included)."""
    if len(ids) <= limit:
        return ids
    if limit <= 0:
        return ids[:0]
    return ids[np.unique(np.linspace(0, len(ids) - 1, limit).round().astype(np.int64))]


def vocab_diff(a, b, *, teacher_vocab=None, student_vocab=None, limit: int = 10) -> VocabMappingDiff:
    """Compare two :class:`~ctkd_inspect.vocab.VocabMapping` objects of one tokenizer pair, per direction.

    Args:
        a, b: the mappings (``a`` is the reference); both directions of each are compared.
        teacher_vocab, student_vocab: the :class:`~ctkd_inspect.vocab.Vocabulary` of each tokenizer, to show the
            examples' token strings (ids only without them).
        limit: examples per category and direction (spread over the ids of the category).

    Raises:
        InputError: an argument is not a mapping; the mappings (or a mapping and a vocabulary) are of different
            vocabulary sizes, so not of one tokenizer pair; ``limit`` is negative.
    """
    from .vocab import VocabMapping

    for name, value in (("a", a), ("b", b)):
        if not isinstance(value, VocabMapping):
            raise InputError(f"{name} must be a VocabMapping, not {type(value).__name__}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InputError(f"limit must be an int ≥ 0, not {limit!r}")
    for side, direction in (("teacher", "teacher_to_student"), ("student", "student_to_teacher")):
        size_a, size_b = len(getattr(a, direction)), len(getattr(b, direction))
        if size_a != size_b:
            raise InputError(f"b maps a {side} vocabulary of {size_b:,} ids and a one of {size_a:,} ids: the two "
                             f"mappings are of different tokenizer pairs ({a.teacher} → {a.student} vs {b.teacher} "
                             f"→ {b.student}); compare mappings of one pair")
    vocabs = {"teacher": teacher_vocab, "student": student_vocab}
    for side, vocab in vocabs.items():
        expected = len(a.teacher_to_student) if side == "teacher" else len(a.student_to_teacher)
        if vocab is not None and len(vocab) != expected:
            raise InputError(f"{side}_vocab has {len(vocab):,} ids but the mappings' {side} vocabulary has "
                             f"{expected:,}: pass the vocabulary of the mappings' {side}")

    def token(side: str, index: int) -> str | None:
        vocab = vocabs[side]
        return None if vocab is None or index < 0 else vocab.raw[index]

    directions = {}
    any_difference = False
    for direction, source, target in (("teacher_to_student", "teacher", "student"),
                                      ("student_to_teacher", "student", "teacher")):
        x, y = np.asarray(getattr(a, direction)), np.asarray(getattr(b, direction))
        dx = np.asarray(getattr(a, f"{source}_distance"))
        dy = np.asarray(getattr(b, f"{source}_distance"))
        masks = {"agree": (x >= 0) & (x == y), "differ": (x >= 0) & (y >= 0) & (x != y),
                 "only_a": (x >= 0) & (y < 0), "only_b": (x < 0) & (y >= 0)}
        counts = {name: int(mask.sum()) for name, mask in masks.items()}
        counts["neither"] = int(((x < 0) & (y < 0)).sum())
        any_difference |= bool(counts["differ"] or counts["only_a"] or counts["only_b"])
        examples = {}
        for name, mask in masks.items():
            rows = []
            for i in _spread(np.flatnonzero(mask), limit).tolist():
                rows.append({"id": i, "token": token(source, i),
                             "a": {"id": int(x[i]), "token": token(target, int(x[i])), "distance": int(dx[i])},
                             "b": {"id": int(y[i]), "token": token(target, int(y[i])), "distance": int(dy[i])}})
            examples[name] = tuple(rows)
        directions[direction] = {**counts, "examples": examples}
    return VocabMappingDiff(
        label_a={"kind": a.kind, "mode": a.mode, "teacher": a.teacher, "student": a.student},
        label_b={"kind": b.kind, "mode": b.mode, "teacher": b.teacher, "student": b.student},
        coverage_a=a.coverage(), coverage_b=b.coverage(), directions=directions, differs=any_difference)


#: Mapping specs :func:`mapping_from_spec` computes (``kind`` or ``kind:mode``); anything else is a saved file.
MAPPING_SPECS = ("exact", "mined", "exact:canonical", "mined:canonical", "exact:reference", "mined:reference")
MAPPING_SUFFIXES = (".json", ".npz", ".parquet")


class _DirectionStages:
    """A ``mined_mapping`` progress callback that reports one :mod:`ctkd_inspect.progress` stage per direction."""

    def __init__(self, stack: ExitStack):
        self._stack = stack
        self._direction: str | None = None
        self._inner: ExitStack | None = None
        self._bar = None

    def __call__(self, direction: str, done: int, total: int) -> None:
        from .progress import stage

        if direction != self._direction:
            if self._inner is not None:
                self._inner.close()
            self._inner = self._stack.enter_context(ExitStack())
            self._bar = self._inner.enter_context(stage(f"MinED vocabulary mapping {direction}", total=total,
                                                        unit="tokens"))
            self._direction = direction
        self._bar.update(completed=done, total=total)


def mapping_from_spec(spec: str, teacher_vocab, student_vocab, *, cache_dir: str | os.PathLike | None = None,
                      option: str = "spec"):
    """A :class:`~ctkd_inspect.vocab.VocabMapping` of one pair, from a spec.

    Args:
        spec: ``exact`` or ``mined`` (canonical mode), ``exact:reference`` / ``mined:reference`` (FuseLLM's
            marker replacement on raw strings), ``exact:canonical`` / ``mined:canonical``, or the path of a mapping
            saved by ``ctkd-inspect vocab --out`` (``.json``, ``.npz``, ``.parquet``).
        teacher_vocab, student_vocab: the pair's :class:`~ctkd_inspect.vocab.Vocabulary` objects.
        cache_dir: where MinED mappings are cached (default: the tool's cache); a cached one is a file read, a new
            one takes a minute or two and reports progress stages.
        option: the flag or keyword that gave the spec, for messages (``--a``).

    Raises:
        InputError: an unknown spec, a file that cannot be read as a mapping, or a saved mapping of other
            vocabulary sizes than the pair's.
    """
    from .vocab import VocabMapping, exact_mapping, mined_mapping

    text = str(spec).strip()
    if text.lower() in MAPPING_SPECS:
        kind, _, mode = text.lower().partition(":")
        mode = mode or "canonical"
        if kind == "exact":
            return exact_mapping(teacher_vocab, student_vocab, mode)
        with ExitStack() as stack:
            return mined_mapping(teacher_vocab, student_vocab, mode, cache_dir=cache_dir,
                                 progress=_DirectionStages(stack))
    if os.path.splitext(text)[1].lower() not in MAPPING_SUFFIXES:
        raise InputError(f"{option} {spec!r}: not a mapping spec; use one of {', '.join(MAPPING_SPECS)} or a mapping "
                         f"file saved by `ctkd-inspect vocab --out` ({', '.join(MAPPING_SUFFIXES)})")
    try:
        mapping = VocabMapping.load(text)
    except InputError as exc:
        raise InputError(f"{option}: {exc}") from None
    sizes = (len(mapping.teacher_to_student), len(mapping.student_to_teacher))
    expected = (len(teacher_vocab), len(student_vocab))
    if sizes != expected:
        raise InputError(f"{option} {text}: the saved mapping maps {mapping.teacher} ({sizes[0]:,} ids) to "
                         f"{mapping.student} ({sizes[1]:,} ids), not {teacher_vocab.name} ({expected[0]:,} ids) to "
                         f"{student_vocab.name} ({expected[1]:,} ids); save a mapping of this pair with "
                         "`ctkd-inspect vocab TEACHER STUDENT --out FILE`")
    return mapping
