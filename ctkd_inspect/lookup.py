"""Vocabulary lookup: where one token of a tokenizer pair lands in the other vocabulary.

Given both :class:`~ctkd_inspect.vocab.Vocabulary` objects of a pair, a side and a query (a token string or an
id), :meth:`VocabLookup.lookup` returns three answers at once:

- **exact** — the other vocabulary's token with the same canonical bytes (``Ġthe``, ``▁the`` and WordPiece ``the``
  are all ``b" the"``; :func:`ctkd_inspect.vocab.exact_mapping`), distance 0;
- **MinED** — the other vocabulary's token at the smallest Levenshtein distance over canonical strings, with that
  distance (:func:`ctkd_inspect.vocab.mined_mapping`; only when a MinED mapping is supplied, since the first one
  for a pair takes minutes);
- **nearest** — the top-K tokens of the other vocabulary by CDM's normalised edit distance
  ``d(a, b) = Lev(a′, b′) / (|a′| + |b′|)``, where ``′`` removes spaces (``research/methods.md`` §3.5; ``d = 0``
  when both are empty), over each token decoded on its own (undecodable byte fragments kept as distinct
  characters, as the canonical CDM mode does), ties broken by the lowest id. One rapidfuzz ``cdist`` row over the
  other vocabulary: tens of milliseconds for 256k tokens.

Queries typed by a person go through :func:`parse_query`: ``#123``, ``id:123`` or a bare integer is an id;
quotes make a literal token (``"123"`` is the token 123); anything else is a token, with the visible markers of
:func:`ctkd_inspect.render.visible` (``␣ ⏎ ⇥``) read back as the characters they stand for. A token string is
found by its raw vocabulary spelling (``Ġthe``, ``▁the``) or by the text it stands for (`` the``); a string that is
no token of the side still gets its exact counterpart (if any) and its nearest tokens.

No UI imports: the TUI and the notebook widgets both use this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .errors import InputError
from .text import readable_piece
from .vocab import UNMAPPED, VocabMapping, Vocabulary, _mappable, _preference_order, decoded_vocabulary, exact_mapping

__all__ = ["LookupResult", "Neighbour", "VocabLookup", "lookup", "normalised_distance", "parse_query"]

SIDES = ("teacher", "student")

# the markers ctkd_inspect.render.visible draws, read back (a person copies tokens from the screen)
_MARKERS = {"␣": " ", "⏎": "\n", "⇥": "\t", "␍": "\r", "␀": "\x00", "⍽": "\u00a0"}
_ID_QUERY = re.compile(r"^\s*(?:#|id:\s*)?(\d+)\s*$", re.IGNORECASE)


def parse_query(text: str) -> int | str:
    """A query typed by a person: an id (``int``) or a token string (``str``).

    >>> parse_query("#42"), parse_query("id:42"), parse_query(" 42 ")
    (42, 42, 42)
    >>> parse_query('"42"'), parse_query("␣the"), parse_query("'␣'")
    ('42', ' the', ' ')

    Raises:
        InputError: the query is empty.
    """
    if not isinstance(text, str):
        raise InputError(f"query must be a string, not {type(text).__name__}")
    if not text:
        raise InputError("the query is empty: type a token (e.g. ␣the) or an id (e.g. #1234)")
    match = _ID_QUERY.match(text)
    if match:
        return int(match.group(1))
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
    return "".join(_MARKERS.get(ch, ch) for ch in text)


def normalised_distance(a: str, b: str) -> float:
    """CDM's ``Lev(a′, b′) / (|a′| + |b′|)`` with ASCII spaces removed; 0.0 when both are empty.

    >>> normalised_distance(" cat", "cats"), normalised_distance("ab", "xy"), normalised_distance(" ", "")
    (0.14285714285714285, 0.5, 0.0)
    """
    from rapidfuzz.distance import Levenshtein

    a, b = a.replace(" ", ""), b.replace(" ", "")
    if not a and not b:
        return 0.0
    return Levenshtein.distance(a, b) / (len(a) + len(b))


@dataclass(frozen=True)
class Neighbour:
    """A token of the other vocabulary and how far it is.

    Attributes:
        id: its id.
        token: its raw vocabulary string (``convert_ids_to_tokens``).
        text: what it stands for, readable (bytes that complete no character as ``<0xNN>``).
        distance: 0 for the exact mapping, the Levenshtein distance for MinED, the normalised distance for the
            nearest tokens.
    """

    id: int
    token: str
    text: str
    distance: float

    def to_dict(self) -> dict:
        return {"id": self.id, "token": self.token, "text": self.text, "distance": self.distance}


@dataclass(frozen=True)
class LookupResult:
    """The answer of :meth:`VocabLookup.lookup`.

    Attributes:
        side: the side the query belongs to (``teacher`` or ``student``); the answers are tokens of the other.
        query: the query as given (id or string).
        id: the token's id on ``side``, or ``None`` when the string is no token of that vocabulary.
        token: the token's raw string (the query string itself when it is no token).
        text: what the token stands for, readable.
        special: the token is a special (control) token; such tokens are never mapped.
        exact: the exact counterpart, or ``None``.
        mined: the MinED counterpart with its edit distance; ``None`` when no MinED mapping was supplied
            (``mined_available`` False), the token is unmapped, or the query is no token.
        mined_available: whether a MinED mapping was supplied.
        nearest: the top-K tokens of the other vocabulary by normalised edit distance, nearest first.
    """

    side: str
    query: int | str
    id: int | None
    token: str
    text: str
    special: bool
    exact: Neighbour | None
    mined: Neighbour | None
    mined_available: bool
    nearest: tuple[Neighbour, ...]

    @property
    def other(self) -> str:
        """The side the answers belong to."""
        return "student" if self.side == "teacher" else "teacher"

    def to_dict(self) -> dict:
        return {"side": self.side, "query": self.query, "id": self.id, "token": self.token, "text": self.text,
                "special": self.special, "exact": self.exact.to_dict() if self.exact else None,
                "mined": self.mined.to_dict() if self.mined else None, "mined_available": self.mined_available,
                "nearest": [n.to_dict() for n in self.nearest]}


class _SideTables:
    """Per-vocabulary tables built on first use: raw and canonical string indexes, decoded strings, lengths."""

    def __init__(self, vocab: Vocabulary):
        self.vocab = vocab

    @cached_property
    def by_raw(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for index, token in enumerate(self.vocab.raw):
            if token:
                out.setdefault(token, index)
        return out

    @cached_property
    def by_canonical(self) -> dict[str, int]:
        """Canonical string -> id, regular pieces before byte-fallback pieces, then the lowest id (as the exact
        mapping resolves duplicates)."""
        out: dict[str, int] = {}
        for index in _preference_order(self.vocab, _mappable(self.vocab)):
            canonical = self.vocab.canonical[index]
            if canonical:
                out.setdefault(canonical, index)
        return out

    @cached_property
    def decoded(self) -> list[str]:
        """Each id decoded on its own, spaces removed, undecodable bytes kept distinct (CDM canonical mode)."""
        return decoded_vocabulary(self.vocab, remove_spaces=True, distinct_bytes=True)

    @cached_property
    def candidates(self) -> np.ndarray:
        """Ids that can be an answer: mappable (not special, not empty) and not empty once decoded."""
        ok = _mappable(self.vocab)
        decoded = self.decoded
        return np.asarray([i for i in np.flatnonzero(ok).tolist() if decoded[i] or self.vocab.canonical[i]],
                          dtype=np.int64)

    @cached_property
    def candidate_strings(self) -> list[str]:
        decoded = self.decoded
        return [decoded[i] for i in self.candidates.tolist()]

    @cached_property
    def candidate_lengths(self) -> np.ndarray:
        return np.fromiter((len(s) for s in self.candidate_strings), dtype=np.int64,
                           count=len(self.candidates))

    def text_of(self, index: int) -> str:
        vocab = self.vocab
        if vocab.special[index] or not vocab.canonical[index]:
            return vocab.raw[index]
        return readable_piece(vocab.canonical[index].encode("latin-1"))


class VocabLookup:
    """Look tokens of a pair up in the other vocabulary (see the module docstring).

    Args:
        teacher, student: the pair's vocabularies (:func:`ctkd_inspect.vocab.vocabulary`).
        exact: the exact mapping of the pair; computed on first use when not given (under a second for 128k ×
            256k vocabularies).
        mined: a MinED mapping of the pair (:func:`ctkd_inspect.vocab.mined_mapping`), or ``None``; it can be
            supplied later with :meth:`set_mined`.

    Raises:
        InputError: a mapping whose sizes do not fit the vocabularies.
    """

    def __init__(self, teacher: Vocabulary, student: Vocabulary, *, exact: VocabMapping | None = None,
                 mined: VocabMapping | None = None):
        self.teacher = teacher
        self.student = student
        self._tables = {"teacher": _SideTables(teacher), "student": _SideTables(student)}
        self._exact = None
        self._mined = None
        if exact is not None:
            self._check(exact, "exact")
            self._exact = exact
        if mined is not None:
            self.set_mined(mined)

    def _check(self, mapping: VocabMapping, keyword: str) -> None:
        sizes = (len(mapping.teacher_to_student), len(mapping.student_to_teacher))
        if sizes != (len(self.teacher), len(self.student)):
            raise InputError(f"{keyword}: the mapping covers {sizes[0]:,} teacher and {sizes[1]:,} student ids, but "
                             f"the vocabularies have {len(self.teacher):,} and {len(self.student):,}; it belongs to "
                             "another pair")

    @property
    def exact(self) -> VocabMapping:
        """The exact mapping (computed on first use)."""
        if self._exact is None:
            self._exact = exact_mapping(self.teacher, self.student)
        return self._exact

    @property
    def mined(self) -> VocabMapping | None:
        """The MinED mapping, when one was supplied."""
        return self._mined

    def set_mined(self, mapping: VocabMapping) -> None:
        """Supply (or replace) the MinED mapping.

        Raises:
            InputError: its sizes do not fit the vocabularies.
        """
        self._check(mapping, "mined")
        self._mined = mapping

    def vocab(self, side: str) -> Vocabulary:
        """The vocabulary of ``side``."""
        return self.teacher if _side(side) == "teacher" else self.student

    def resolve(self, side: str, query: int | str) -> int | None:
        """The id ``query`` names on ``side``: an id as is, a token string by its raw spelling, else by the bytes it
        stands for (regular pieces before byte-fallback pieces); ``None`` when the string is no token there.

        Raises:
            InputError: an unknown side, an id out of range, or a query that is neither an int nor a string.
        """
        vocab = self.vocab(side)
        if isinstance(query, (int, np.integer)) and not isinstance(query, bool):
            if not 0 <= int(query) < len(vocab):
                raise InputError(f"id {int(query)} is out of range: {vocab.name} has ids 0–{len(vocab) - 1:,}")
            return int(query)
        if not isinstance(query, str):
            raise InputError(f"query must be a token string or an id, not {type(query).__name__}")
        if not query:
            raise InputError("the query is empty: give a token (e.g. ' the') or an id")
        tables = self._tables[_side(side)]
        hit = tables.by_raw.get(query)
        if hit is not None:
            return hit
        return tables.by_canonical.get(_canonical(query))

    def lookup(self, side: str, query: int | str, *, k: int = 10) -> LookupResult:
        """The exact, MinED and ``k`` nearest tokens of the other vocabulary for ``query`` on ``side``.

        Args:
            side: ``teacher`` or ``student``: the vocabulary the query belongs to.
            query: an id, or a token string (see :meth:`resolve`; use :func:`parse_query` for typed text).
            k: how many nearest tokens (``k ≥ 1``; fewer when the other vocabulary is smaller).

        Raises:
            InputError: an unknown side, an id out of range, an empty query, or ``k < 1``.
        """
        side = _side(side)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}")
        other = "student" if side == "teacher" else "teacher"
        source, target = self._tables[side], self._tables[other]
        index = self.resolve(side, query)
        if index is None:
            token, text, special = str(query), str(query), False
            probe = str(query).replace(" ", "")
            exact_id = target.by_canonical.get(_canonical(str(query)))
            exact = self._neighbour(target, exact_id, 0) if exact_id is not None else None
            mined = None
        else:
            vocab = source.vocab
            token, text, special = vocab.raw[index], source.text_of(index), bool(vocab.special[index])
            probe = source.decoded[index]
            if special:  # a control token stands for no text: compare its name
                probe = vocab.raw[index].replace(" ", "")
            forward = self.exact.teacher_to_student if side == "teacher" else self.exact.student_to_teacher
            exact = self._neighbour(target, int(forward[index]), 0) if forward[index] != UNMAPPED else None
            mined = None
            if self._mined is not None:
                targets = self._mined.teacher_to_student if side == "teacher" else self._mined.student_to_teacher
                distances = self._mined.teacher_distance if side == "teacher" else self._mined.student_distance
                if targets[index] != UNMAPPED:
                    mined = self._neighbour(target, int(targets[index]), int(distances[index]))
        nearest = self._nearest(target, probe, int(k))
        return LookupResult(side, query, index, token, text, special, exact, mined, self._mined is not None, nearest)

    @staticmethod
    def _neighbour(tables: _SideTables, index: int, distance: float) -> Neighbour:
        return Neighbour(index, tables.vocab.raw[index], tables.text_of(index), distance)

    def _nearest(self, tables: _SideTables, probe: str, k: int) -> tuple[Neighbour, ...]:
        from rapidfuzz.distance import Levenshtein
        from rapidfuzz.process import cdist

        ids = tables.candidates
        if not len(ids):
            return ()
        raw = cdist([probe], tables.candidate_strings, scorer=Levenshtein.distance, dtype=np.int32, workers=1)[0]
        denominator = tables.candidate_lengths + len(probe)
        # both empty: distance 0 by definition (denominator 0)
        distance = np.divide(raw, denominator, out=np.zeros(len(ids), dtype=np.float64), where=denominator > 0)
        count = min(k, len(ids))
        # a partial sort keeps this O(V): everything at or below the k-th smallest distance, then exact order with
        # ties to the lowest id
        kth = np.partition(distance, count - 1)[count - 1]
        pool = np.flatnonzero(distance <= kth)
        order = pool[np.lexsort((ids[pool], distance[pool]))][:count]
        return tuple(self._neighbour(tables, int(ids[i]), float(distance[i])) for i in order)


def lookup(teacher: Vocabulary, student: Vocabulary, side: str, query: int | str, *, k: int = 10,
           exact: VocabMapping | None = None, mined: VocabMapping | None = None) -> LookupResult:
    """One lookup without keeping a :class:`VocabLookup` (which caches its tables: use it for many lookups).

    Raises:
        InputError: as :meth:`VocabLookup.lookup`, or a mapping that belongs to another pair.
    """
    return VocabLookup(teacher, student, exact=exact, mined=mined).lookup(side, query, k=k)


def _side(side: str) -> str:
    if side not in SIDES:
        raise InputError(f"side must be 'teacher' or 'student', not {side!r}")
    return side


def _canonical(text: str) -> str:
    """A typed string as a canonical vocabulary string: its UTF-8 bytes, one character per byte."""
    return text.encode("utf-8", "surrogateescape").decode("latin-1")
