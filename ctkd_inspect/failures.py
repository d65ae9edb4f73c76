"""Failure taxonomy: why a group of an :class:`~ctkd_inspect.alignment.Alignment` is not an exact 1:1 pair.

Every group that is not exact (one teacher token and one student token covering the same, non-empty characters —
:meth:`~ctkd_inspect.alignment.Alignment.exact_mask`) is classified from the tokens and the text alone (no model)
into one or more **kinds**. Definitions, for a group whose tokens cover the characters ``[a, b)`` (its hull):

``special``
    A special (control) token with a non-empty span overlaps ``[a, b)`` on either side: special-token text typed
    in the data (``<|eot_id|>``) that one tokenizer parses as one control token and the other cuts as text.
    Special tokens with empty spans (BOS/EOS/CLS/SEP that a post-processor inserts) belong to no group; the
    ones only one side adds are counted per side by :class:`FailureSummary` (``unpaired_specials``).
``unknown-token``
    A token of the group is an unknown token (``[UNK]``, ``<unk>``, or an id passed as ``unknown_ids``).
``normalisation``
    A side's tokens do not stand for the text verbatim: a token (or byte cluster) whose bytes differ from the
    characters it spans (lower-casing, accent stripping, NFC/NFKC — :func:`text_transformation` names the
    change), a non-whitespace character of ``[a, b)`` that no token of a side covers, or a group with an empty side
    whose characters the other tokenizer dropped (WordPiece drops whitespace and control characters: reason
    ``no-partner``), or a zero-width token that stands for text that is not in the input.
``byte-split``
    A token of the group is part of a byte cluster on its side: a character split across byte tokens (byte-level
    ``ĠðŁ ¦ Ļ`` for " 🦙", SentencePiece byte fallback ``<0xF0> <0x9F> <0xA6> <0x99>``); see
    :attr:`~ctkd_inspect.text.Tokenization.clusters`.
``digit-run``
    The two sides cut a run of digits differently: a cut point inside ``(a, b)`` that only one side has lies
    between two decimal digits (Llama 3 groups up to three digits, ``123|45``; Gemma and SmolLM2 cut every digit).
``whitespace-run``
    A cut point only one side has lies between two whitespace characters (runs of spaces, tabs or newlines cut
    differently: ``ĠĠ|Ġ`` against ``▁▁▁``, ``ĊĊ|Ċ`` against ``\\n\\n\\n``).
``leading-space``
    A cut point only one side has lies between a whitespace and a non-whitespace character (a word-initial space
    attached to the word on one side and standing alone on the other, ``Ġ|Ġb`` against ``▁▁|b``, ``⇥code``
    against ``⇥|code``), or a token carries a space that is not in the text (a SentencePiece dummy prefix ``▁``).
``merge-mismatch``
    The rest: a cut point only one side has between two other characters (ordinary words merged differently,
    ``Ġnaï|ve`` against ``▁naïve``), or a non-exact group none of the rules above explains.

Cut points are the starts and ends of each side's units inside ``(a, b)``, where a unit is a token, or a whole byte
cluster (the tokens of one split character report that character's span, so they cut nothing between them).

Each group also gets a **primary** kind: the first of its kinds in :data:`KINDS`, which runs from the causes that
change what the text *is* on one side (special, unknown, normalisation) through the tokenizer mechanics that force
a cut (byte splits) and the specific run patterns (digits, whitespace, leading spaces) to the residue. Counts by
primary kind partition the failing groups; counts by any kind overlap.

:func:`classify_groups` classifies one alignment; :class:`FailureSummary` aggregates any number of alignments with
mergeable counters and bounded example reservoirs (bottom-k by a hash of the example's position, so merging the
summaries of a split corpus keeps the same examples as one summary of the whole), plus the worst texts.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .alignment import Alignment
from .text import Tokenization

__all__ = ["KINDS", "FailureSummary", "GroupFailure", "classify_groups", "summarize_failures",
           "text_transformation"]

#: The failure kinds in precedence order (the first kind a group has is its primary kind).
KINDS: tuple[str, ...] = ("special", "unknown-token", "normalisation", "byte-split", "digit-run", "whitespace-run",
                          "leading-space", "merge-mismatch")
_RANK = {kind: rank for rank, kind in enumerate(KINDS)}

#: Token strings taken as unknown tokens in every scheme (WordPiece, SentencePiece, a few byte-level vocabularies).
UNKNOWN_TOKENS = frozenset({"[UNK]", "<unk>", "<UNK>", "<|unk|>"})


# ---------------------------------------------------------------------------------------------------------------
# naming a text change


def _strip_accents(text: str) -> str:
    return unicodedata.normalize("NFC", "".join(ch for ch in unicodedata.normalize("NFD", text)
                                                if unicodedata.category(ch) != "Mn"))


def _drop_controls(text: str) -> str:
    # Cc and Cf minus the whitespace controls (tab, newline...), which "whitespace" covers
    return "".join(ch for ch in text if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf"))


def _drop_whitespace(text: str) -> str:
    return "".join(ch for ch in text if not ch.isspace())


# Applied in this order; "NFKC" subsumes "NFC", so a subset never needs both.
_TRANSFORMS: tuple[tuple[str, object], ...] = (
    ("NFC", lambda s: unicodedata.normalize("NFC", s)),
    ("NFKC", lambda s: unicodedata.normalize("NFKC", s)),
    ("case", str.lower),
    ("accents", _strip_accents),
    ("control characters", _drop_controls),
    ("whitespace", _drop_whitespace),
)
_SUBSETS = [subset for size in range(1, len(_TRANSFORMS) + 1)
            for subset in itertools.combinations(range(len(_TRANSFORMS)), size)
            if not {0, 1} <= set(subset)]


def text_transformation(original: str, produced: str) -> str | None:
    """Name what turned ``original`` into ``produced``; ``None`` when they are equal.

    The name is the smallest combination (joined by ``+``) of ``NFC``, ``NFKC``, ``case`` (lower-casing),
    ``accents`` (stripped), ``control characters`` (dropped) and ``whitespace`` (added, removed or changed) under
    which both strings become equal; ``replacement characters`` when ``produced`` holds U+FFFD that ``original``
    does not (bytes lost in decoding); ``unknown tokens`` when it holds ``[UNK]``/``<unk>`` that ``original`` does
    not; ``other`` when nothing explains it.

    >>> text_transformation("Café  Noir", "cafe noir")
    'case+accents+whitespace'
    >>> text_transformation("e\\u0301", "é")
    'NFC'
    """
    if original == produced:
        return None
    if "\ufffd" in produced and "\ufffd" not in original:
        return "replacement characters"
    for subset in _SUBSETS:
        a, b = original, produced
        for index in subset:
            function = _TRANSFORMS[index][1]
            a, b = function(a), function(b)
        if a == b:
            return "+".join(_TRANSFORMS[index][0] for index in subset)
    if any(token in produced and token not in original for token in UNKNOWN_TOKENS):
        return "unknown tokens"
    return "other"


# ---------------------------------------------------------------------------------------------------------------
# one alignment


@dataclass(frozen=True)
class GroupFailure:
    """The classification of one non-exact group.

    Attributes:
        group: the group's index in the alignment.
        primary: the first of ``kinds`` in :data:`KINDS` order.
        kinds: every kind the group has, in :data:`KINDS` order.
        start, end: the characters the group's tokens cover (its hull).
        text: ``text[start:end]``.
        teacher, student: the group's token indices on each side.
        detail: for ``normalisation``, what changed (see :func:`text_transformation`, or ``dropped by <side>``);
            otherwise empty.
    """

    group: int
    primary: str
    kinds: tuple[str, ...]
    start: int
    end: int
    text: str
    teacher: tuple[int, ...]
    student: tuple[int, ...]
    detail: str = ""

    def to_dict(self) -> dict:
        return {"group": self.group, "primary": self.primary, "kinds": list(self.kinds), "start": self.start,
                "end": self.end, "text": self.text, "teacher": list(self.teacher), "student": list(self.student),
                "detail": self.detail}


class _Side:
    """Per-side lookups built once per alignment: units (tokens or whole byte clusters), special spans."""

    def __init__(self, tokens: Tokenization, unknown_ids: frozenset[int]):
        self.tokens = tokens
        self.starts = tokens.starts.tolist()
        self.ends = tokens.ends.tolist()
        self.special = tokens.special.tolist()
        self.cluster_of: dict[int, int] = {}
        self.clusters = tokens.clusters
        for number, (first, last, _) in enumerate(self.clusters):
            for index in range(first, last + 1):
                self.cluster_of[index] = number
        self.special_spans = [(s, e) for s, e, sp in zip(self.starts, self.ends, self.special) if sp and e > s]
        # characters some token of this side covers (any group, special or not): the others the tokenizer dropped
        length = len(tokens.text)
        delta = np.zeros(length + 1, dtype=np.int64)
        np.add.at(delta, np.clip(tokens.starts, 0, length), 1)
        np.add.at(delta, np.clip(tokens.ends, 0, length), -1)
        self.covered_anywhere = np.cumsum(delta[:-1]) > 0
        ids = tokens.ids.tolist()
        self.unknown = {i for i, (token, sp) in enumerate(zip(tokens.tokens, self.special))
                        if not sp and (token in UNKNOWN_TOKENS or ids[i] in unknown_ids)}
        self._bytes: list[bytes] | None = None

    def token_text(self, index: int) -> str:
        if self._bytes is None:
            self._bytes = self.tokens.token_bytes()
        return self._bytes[index].decode("utf-8", "replace")

    def unit_span(self, index: int) -> tuple[int, int]:
        number = self.cluster_of.get(index)
        if number is None:
            return self.starts[index], self.ends[index]
        first, last, _ = self.clusters[number]
        return (min(self.starts[first:last + 1]), max(self.ends[first:last + 1]))

    def cuts(self, indices: Sequence[int], a: int, b: int) -> set[int]:
        """Unit starts and ends strictly inside ``(a, b)``."""
        out = set()
        for index in indices:
            if self.special[index]:
                continue
            start, end = self.unit_span(index)
            if end <= start:
                continue
            if a < start < b:
                out.add(start)
            if a < end < b:
                out.add(end)
        return out

    def covered(self, indices: Sequence[int], a: int, b: int) -> np.ndarray:
        """Which characters of ``[a, b)`` the tokens ``indices`` or the side's special tokens cover (a special
        token's characters are accounted for by the ``special`` kind, not dropped)."""
        mask = np.zeros(max(b - a, 0), dtype=bool)
        spans = [(self.starts[index], self.ends[index]) for index in indices] + self.special_spans
        for start, end in spans:
            start, end = max(start, a), min(end, b)
            if end > start:
                mask[start - a:end - a] = True
        return mask

    def overlaps_special(self, a: int, b: int) -> bool:
        return any(s < b and a < e for s, e in self.special_spans)


def _token_verbatim(side: _Side, indices: Sequence[int], text: str) -> tuple[set[str], str]:
    """Kinds from comparing each unit's bytes with the characters it spans, and the normalisation detail."""
    kinds: set[str] = set()
    detail = ""
    seen_clusters = set()
    for index in indices:
        if side.special[index] or index in side.unknown:
            continue
        number = side.cluster_of.get(index)
        if number is not None:
            if number in seen_clusters:
                continue
            seen_clusters.add(number)
            first, _, produced = side.clusters[number]
            start, end = side.unit_span(first)
        else:
            produced = side.token_text(index)
            start, end = side.starts[index], side.ends[index]
        source = text[start:end]
        if produced == source:
            continue
        if produced == " " + source or (not source and produced.isspace()):
            kinds.add("leading-space")  # a marker space with no source character (dummy prefix)
            continue
        kinds.add("normalisation")
        if not detail:
            detail = text_transformation(source, produced) or ""
    return kinds, detail


def classify_groups(alignment: Alignment, *, unknown_ids: Iterable[int] = ()) -> list[GroupFailure]:
    """Classify every group of ``alignment`` that is not an exact 1:1 group (see the module docstring).

    Args:
        alignment: any engine's alignment.
        unknown_ids: token ids to treat as unknown tokens besides the usual strings (``[UNK]``, ``<unk>``); the id
            is the same on both sides only if the vocabularies agree, so pass it when one side's unknown token
            has another spelling.

    Returns:
        One :class:`GroupFailure` per non-exact group, in group order (empty when every group is exact).

    Raises:
        InputError: ``alignment`` is not an Alignment, or ``unknown_ids`` is not an iterable of integers.
    """
    from .arguments import check_alignment

    check_alignment(alignment)
    table = alignment.table
    if len(table) == 0:
        return []
    exact = alignment.exact_mask()
    failing = np.flatnonzero(~exact).tolist()
    if not failing:
        return []
    text = alignment.text
    try:
        unknown = frozenset(int(i) for i in unknown_ids)
    except (TypeError, ValueError):
        from .errors import InputTypeError

        raise InputTypeError(f"unknown_ids must be an iterable of token ids (integers), got {unknown_ids!r}"[:200]) \
            from None
    teacher, student = _Side(alignment.teacher, unknown), _Side(alignment.student, unknown)
    names = {"teacher": alignment.teacher.name, "student": alignment.student.name}
    spans = alignment.group_spans().tolist()
    out = []
    for g in failing:
        t_idx = table.teacher(g).tolist()
        s_idx = table.student(g).tolist()
        a, b = spans[g]
        kinds: set[str] = set()
        detail = ""
        if teacher.overlaps_special(a, b) or student.overlaps_special(a, b):
            kinds.add("special")
        if any(i in teacher.unknown for i in t_idx) or any(j in student.unknown for j in s_idx):
            kinds.add("unknown-token")
        if any(i in teacher.cluster_of for i in t_idx) or any(j in student.cluster_of for j in s_idx):
            kinds.add("byte-split")
        for side, indices in ((teacher, t_idx), (student, s_idx)):
            found, what = _token_verbatim(side, indices, text)
            kinds |= found
            detail = detail or what
        if not t_idx or not s_idx:
            # one side has no token here: the other tokenizer dropped these characters (or the present token is
            # zero-width); typed special text is explained by "special" alone
            present = teacher if t_idx else student
            indices = t_idx or s_idx
            if b > a and "special" not in kinds:
                kinds.add("normalisation")
                absent = names["student" if t_idx else "teacher"]
                detail = detail or f"dropped by {absent}"
            elif b <= a and not any(present.token_text(i).isspace() for i in indices) and "special" not in kinds:
                kinds.add("normalisation")
        else:
            for side, indices in ((teacher, t_idx), (student, s_idx)):
                covered = side.covered(indices, a, b)
                if len(covered) and not covered.all():
                    # characters of the hull no token of this side covers anywhere were dropped by its tokenizer
                    # (characters that another group's tokens cover are a cut mismatch, found below: DTW groups
                    # may pair tokens that cover different characters)
                    gaps = [text[a + k] for k in np.flatnonzero(~covered).tolist()
                            if not side.covered_anywhere[a + k]]
                    if any(not ch.isspace() for ch in gaps):
                        kinds.add("normalisation")
                        detail = detail or "dropped characters"
            for p in sorted(teacher.cuts(t_idx, a, b) ^ student.cuts(s_idx, a, b)):
                left, right = text[p - 1], text[p]
                if left.isdecimal() and right.isdecimal():
                    kinds.add("digit-run")
                elif left.isspace() and right.isspace():
                    kinds.add("whitespace-run")
                elif left.isspace() != right.isspace():
                    kinds.add("leading-space")
                else:
                    kinds.add("merge-mismatch")
        if not kinds:
            kinds.add("merge-mismatch")
        ordered = tuple(sorted(kinds, key=_RANK.__getitem__))
        out.append(GroupFailure(g, ordered[0], ordered, a, b, text[a:b], tuple(t_idx), tuple(s_idx),
                                detail if "normalisation" in kinds else ""))
    return out


def _special_layout(tokens: Tokenization) -> tuple[list, list, list]:
    """``(name, start, end)`` of the special tokens before the first regular token, between regular tokens, and
    after the last one (all of them are leading when the text has no regular token)."""
    special = tokens.special.tolist()
    records = [(tokens.tokens[i], int(tokens.starts[i]), int(tokens.ends[i])) for i in range(len(special))]
    regular = [i for i, sp in enumerate(special) if not sp]
    if not regular:
        return [records[i] for i in range(len(special))], [], []
    first, last = regular[0], regular[-1]
    leading = [records[i] for i in range(first)]
    inline = [records[i] for i in range(first, last + 1) if special[i]]
    trailing = [records[i] for i in range(last + 1, len(special))]
    return leading, inline, trailing


def unpaired_specials(alignment: Alignment) -> dict[str, list[tuple[str, int, int]]]:
    """Special tokens one side has where the other has none, per side as ``(name, start, end)``.

    Leading and trailing specials (BOS/EOS/CLS/SEP that a post-processor adds, all with the span ``(0, 0)``) are
    paired by count at each end: a surplus on one side is unpaired (Gemma 3 adds ``<bos>``, SmolLM2 nothing).
    Inline specials (special-token text typed in the data) are paired when the other side has a special token
    with the same span.
    """
    t_lead, t_in, t_trail = _special_layout(alignment.teacher)
    s_lead, s_in, s_trail = _special_layout(alignment.student)
    out = {}
    for side, (lead, inline, trail), (o_lead, o_in, o_trail) in (
            ("teacher", (t_lead, t_in, t_trail), (s_lead, s_in, s_trail)),
            ("student", (s_lead, s_in, s_trail), (t_lead, t_in, t_trail))):
        other_spans = {(start, end) for _, start, end in o_in}
        surplus = lead[len(o_lead):] + trail[:max(len(trail) - len(o_trail), 0)]
        out[side] = surplus + [record for record in inline if (record[1], record[2]) not in other_spans]
    return out


# ---------------------------------------------------------------------------------------------------------------
# aggregation


def _priority(seed: int, text_index: int, group: int, kind: str) -> int:
    digest = hashlib.blake2b(f"{seed}\0{text_index}\0{group}\0{kind}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass
class FailureSummary:
    """Failure counts over one or many alignments, mergeable across workers.

    Counters (all plain ints, summed by :meth:`merge`):

    - ``texts``, ``groups``, ``failed_groups``; ``primary[kind]`` (groups by primary kind: they sum to
      ``failed_groups``) and ``kinds[kind]`` (groups having the kind);
    - ``student_tokens`` (non-special) and ``student_tokens_failed`` (in non-exact groups);
      ``student_tokens_by_kind[kind]`` (in groups whose *primary* kind it is, so they sum to
      ``student_tokens_failed``); ``characters`` and ``characters_by_kind[kind]`` (hull characters of groups
      having the kind);
    - ``unpaired_specials[side]``: special tokens only that side has (see :func:`unpaired_specials`).

    Examples: for each kind at most ``max_examples`` groups having it, chosen as the bottom-k of a hash of
    ``(seed, text_index, group, kind)``: deterministic, independent of the order texts arrive in, and merging two
    summaries keeps exactly the examples one summary over all texts would. Each example records ``text_index``,
    ``group``, ``start``/``end``, ``text``, both sides' token indices and readable pieces, ``kinds``, ``detail``.
    Unpaired special tokens appear under ``special`` with ``group`` -1.

    Worst texts: the ``max_worst`` texts with the largest share of student tokens in non-exact groups.
    """

    max_examples: int = 8
    max_worst: int = 10
    seed: int = 0
    texts: int = 0
    groups: int = 0
    failed_groups: int = 0
    student_tokens: int = 0
    student_tokens_failed: int = 0
    characters: int = 0
    primary: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    student_tokens_by_kind: Counter = field(default_factory=Counter)
    characters_by_kind: Counter = field(default_factory=Counter)
    unpaired_specials: Counter = field(default_factory=Counter)
    _examples: dict = field(default_factory=dict, repr=False)  # kind -> list of (-priority, example) heaps
    _worst: list = field(default_factory=list, repr=False)  # heap of (score, failed, -text_index, record)

    # -- adding ---------------------------------------------------------------------------------------------

    def _offer(self, kind: str, priority: int, example: dict) -> None:
        heap = self._examples.setdefault(kind, [])
        item = (-priority, example["text_index"], example["group"], example.get("position", 0), example)
        if len(heap) < self.max_examples:
            heapq.heappush(heap, item)
        elif item[:4] > heap[0][:4]:
            heapq.heapreplace(heap, item)

    def _offer_worst(self, record: dict) -> None:
        item = (record["score"], record["failed_student_tokens"], -record["text_index"], record)
        if len(self._worst) < self.max_worst:
            heapq.heappush(self._worst, item)
        elif item[:3] > self._worst[0][:3]:
            heapq.heapreplace(self._worst, item)

    def add(self, alignment: Alignment, text_index: int | None = None,
            failures: list[GroupFailure] | None = None, *, unknown_ids: Iterable[int] = ()) -> list[GroupFailure]:
        """Count one alignment; returns its classified groups.

        Args:
            alignment: the alignment to count.
            text_index: the text's position in the corpus (examples and worst texts refer to it); default: the
                number of texts counted so far. Give global indices when summaries of corpus parts are merged.
            failures: the result of :func:`classify_groups` when the caller has it already.
            unknown_ids: passed to :func:`classify_groups`.
        """
        index = self.texts if text_index is None else int(text_index)
        if failures is None:
            failures = classify_groups(alignment, unknown_ids=unknown_ids)
        t_pieces, s_pieces = alignment.teacher.pieces, alignment.student.pieces
        self.texts += 1
        self.groups += len(alignment.table)
        self.failed_groups += len(failures)
        n_student = int(np.count_nonzero(~alignment.student.special))
        self.student_tokens += n_student
        self.characters += len(alignment.text)
        failed_tokens = 0
        for failure in failures:
            self.primary[failure.primary] += 1
            self.student_tokens_by_kind[failure.primary] += len(failure.student)
            failed_tokens += len(failure.student)
            example = {"text_index": index, "group": failure.group, "start": failure.start, "end": failure.end,
                       "text": failure.text, "teacher": list(failure.teacher), "student": list(failure.student),
                       "teacher_pieces": [t_pieces[i] for i in failure.teacher],
                       "student_pieces": [s_pieces[j] for j in failure.student],
                       "kinds": list(failure.kinds), "primary": failure.primary, "detail": failure.detail}
            for kind in failure.kinds:
                self.kinds[kind] += 1
                self.characters_by_kind[kind] += failure.end - failure.start
                self._offer(kind, _priority(self.seed, index, failure.group, kind), example)
        self.student_tokens_failed += failed_tokens
        # positions run on across both sides: a teacher and a student special of one text never share one
        # (equal positions gave equal heap keys, and the heap then compared the example dicts)
        position = -1
        for side, records in unpaired_specials(alignment).items():
            self.unpaired_specials[side] += len(records)
            for name, start, end in records:
                position += 1
                example = {"text_index": index, "group": -1, "position": position, "side": side, "token": name,
                           "start": start, "end": end, "text": alignment.text[start:end], "teacher": [],
                           "student": [], "teacher_pieces": [name] if side == "teacher" else [],
                           "student_pieces": [name] if side == "student" else [], "kinds": ["special"],
                           "primary": "special", "detail": f"{name} only on the {side} side"}
                # position keeps distinct names of one text apart; -1 - position never collides with a group
                self._offer("special", _priority(self.seed, index, -1 - position, "special"), example)
        if n_student:
            self._offer_worst({"text_index": index, "score": failed_tokens / n_student,
                               "student_tokens": n_student, "failed_student_tokens": failed_tokens,
                               "failed_groups": len(failures),
                               "primary": dict(Counter(f.primary for f in failures)),
                               "preview": alignment.text[:120]})
        return failures

    def merge(self, other: FailureSummary) -> FailureSummary:
        """Add ``other``'s counts, examples and worst texts to this summary (in place; returns self).

        Raises:
            ValueError: the two summaries keep different numbers of examples or use different seeds.
        """
        if (other.max_examples, other.seed, other.max_worst) != (self.max_examples, self.seed, self.max_worst):
            raise ValueError("summaries with different max_examples, max_worst or seed cannot be merged")
        for name in ("texts", "groups", "failed_groups", "student_tokens", "student_tokens_failed", "characters"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("primary", "kinds", "student_tokens_by_kind", "characters_by_kind", "unpaired_specials"):
            getattr(self, name).update(getattr(other, name))
        for kind, heap in other._examples.items():
            for item in heap:
                self._offer(kind, -item[0], item[4])
        for item in other._worst:
            self._offer_worst(item[3])
        return self

    # -- reading --------------------------------------------------------------------------------------------

    def examples(self, kind: str) -> list[dict]:
        """The kept examples of ``kind``, in corpus order (text index, then group)."""
        return [item[4] for item in sorted(self._examples.get(kind, []), key=lambda x: (x[1], x[2], x[3]))]

    def worst(self) -> list[dict]:
        """The worst texts, worst first (share of student tokens in non-exact groups, then their number)."""
        return [item[3] for item in sorted(self._worst, key=lambda x: x[:3], reverse=True)]

    def token_share(self, kind: str | None = None) -> float | None:
        """Share of student tokens in non-exact groups (of primary ``kind``, or of any kind); ``None`` if none."""
        if not self.student_tokens:
            return None
        part = self.student_tokens_failed if kind is None else self.student_tokens_by_kind.get(kind, 0)
        return part / self.student_tokens

    def character_share(self, kind: str) -> float | None:
        """Share of the characters of all texts that lie in groups having ``kind``; ``None`` for no text."""
        return self.characters_by_kind.get(kind, 0) / self.characters if self.characters else None

    def to_dict(self) -> dict:
        """A JSON-ready dict; :meth:`from_dict` reads it back (examples and worst texts included)."""
        return {
            "texts": self.texts, "groups": self.groups, "failed_groups": self.failed_groups,
            "student_tokens": self.student_tokens, "student_tokens_failed": self.student_tokens_failed,
            "student_token_share_failed": self.token_share(), "characters": self.characters,
            "kinds": {kind: {"primary_groups": self.primary.get(kind, 0), "groups": self.kinds.get(kind, 0),
                             "student_tokens": self.student_tokens_by_kind.get(kind, 0),
                             "student_token_share": self.token_share(kind),
                             "characters": self.characters_by_kind.get(kind, 0),
                             "character_share": self.character_share(kind)} for kind in KINDS},
            "unpaired_specials": {"teacher": self.unpaired_specials.get("teacher", 0),
                                  "student": self.unpaired_specials.get("student", 0)},
            "examples": {kind: self.examples(kind) for kind in KINDS if self._examples.get(kind)},
            "worst_texts": self.worst(),
            "settings": {"max_examples": self.max_examples, "max_worst": self.max_worst, "seed": self.seed},
        }

    @classmethod
    def from_dict(cls, data: dict) -> FailureSummary:
        """Rebuild a summary from :meth:`to_dict` output (it can then be merged further)."""
        settings = data.get("settings", {})
        summary = cls(max_examples=settings.get("max_examples", 8), max_worst=settings.get("max_worst", 10),
                      seed=settings.get("seed", 0))
        for name in ("texts", "groups", "failed_groups", "student_tokens", "student_tokens_failed", "characters"):
            setattr(summary, name, int(data.get(name, 0)))
        for kind, record in data.get("kinds", {}).items():
            for counter, key in ((summary.primary, "primary_groups"), (summary.kinds, "groups"),
                                 (summary.student_tokens_by_kind, "student_tokens"),
                                 (summary.characters_by_kind, "characters")):
                if record.get(key):
                    counter[kind] = int(record[key])
        summary.unpaired_specials.update({k: int(v) for k, v in data.get("unpaired_specials", {}).items() if v})
        for kind, examples in data.get("examples", {}).items():
            for example in examples:
                group = example["group"]
                if group < 0:  # unpaired special: its priority used its position among the text's names
                    position = int(example.get("position", 0))
                    summary._offer(kind, _priority(summary.seed, example["text_index"], -1 - position, kind),
                                   example)
                else:
                    summary._offer(kind, _priority(summary.seed, example["text_index"], group, kind), example)
        for record in data.get("worst_texts", []):
            summary._offer_worst(record)
        return summary


def summarize_failures(alignments: Iterable[Alignment], *, max_examples: int = 8, max_worst: int = 10,
                       seed: int = 0, unknown_ids: Iterable[int] = ()) -> FailureSummary:
    """A :class:`FailureSummary` of several alignments (text indices are their positions in ``alignments``)."""
    summary = FailureSummary(max_examples=max_examples, max_worst=max_worst, seed=seed)
    unknown = tuple(unknown_ids)
    for index, alignment in enumerate(alignments):
        summary.add(alignment, index, unknown_ids=unknown)
    return summary
