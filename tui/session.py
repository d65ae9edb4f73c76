"""What the app computes, without any UI: tokenizers, alignments, diffs, vocabulary lookups, data sets.

Everything here is plain Python over :mod:`ctkd_inspect` (no textual import), called from the app's worker threads.
The app keeps one :class:`Session` and shows what it returns; errors are this package's
:class:`~ctkd_inspect.errors.CtkdError` subclasses, whose messages the app puts on screen as they are.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ctkd_inspect.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from ctkd_inspect.alignment import Alignment
    from ctkd_inspect.lookup import VocabLookup
    from ctkd_inspect.vocab import VocabMapping

#: The text the app opens with when none is given.
DEFAULT_TEXT = "The café costs 3.50€ 🦙 — naïve\tcode: x+=1"


@dataclass
class Prepared:
    """An alignment with everything the screens draw from it, computed in the worker that aligned it, so a long
    text costs the UI thread nothing: the group table's rows (:func:`ctkd_inspect.render.group_rows`), both
    ribbons' cells (:func:`ctkd_inspect.render.segments`) and why each group is not exact
    (:func:`ctkd_inspect.failures.classify_groups`)."""

    alignment: Alignment
    rows: list[dict]
    cells: dict[str, list]
    failures: list

    @property
    def failure_by_group(self) -> dict[int, object]:
        return {failure.group: failure for failure in self.failures}


def prepare(alignment: Alignment) -> Prepared:
    """The :class:`Prepared` form of ``alignment``."""
    from ctkd_inspect.failures import classify_groups
    from ctkd_inspect.render import group_rows, segments

    return Prepared(alignment, group_rows(alignment), {side: segments(alignment, side) for side in
                                                       ("teacher", "student")}, classify_groups(alignment))


class Session:
    """Loaded tokenizers and the pair's vocabulary tables, shared by every screen (thread-safe).

    Args:
        cache_dir: the cache folder (``--cache-dir``), or ``None`` for the default.
    """

    def __init__(self, cache_dir: str | None = None):
        self.cache_dir = cache_dir
        self._lock = threading.Lock()
        self._tokenizers: dict[str, object] = {}
        self._vocabularies: dict[str, object] = {}
        self._lookups: dict[tuple[str, str], VocabLookup] = {}

    def tokenizer(self, name: str):
        """The tokenizer ``name`` resolves to (the light Rust backend: no transformers import).

        Raises:
            TokenizerNotFound / TokenizerLoadError / FetchError: as :func:`ctkd_inspect.load_tokenizer`.
        """
        with self._lock:
            if name in self._tokenizers:
                return self._tokenizers[name]
        from ctkd_inspect.sources import load_tokenizer

        loaded = load_tokenizer(name, cache_dir=self.cache_dir, backend="rust")
        with self._lock:
            self._tokenizers[name] = loaded
        return loaded

    def align(self, teacher: str, student: str, text: str, engine: str, options: dict) -> Alignment:
        """Align ``text`` with the named tokenizers (already-validated ``options``).

        Raises:
            as :func:`ctkd_inspect.align`.
        """
        from ctkd_inspect.api import align

        return align(self.tokenizer(teacher), self.tokenizer(student), text, engine=engine, **options)

    def vocabulary(self, name: str):
        """The :class:`~ctkd_inspect.vocab.Vocabulary` of a tokenizer (built once)."""
        with self._lock:
            if name in self._vocabularies:
                return self._vocabularies[name]
        from ctkd_inspect.vocab import vocabulary

        built = vocabulary(self.tokenizer(name), name)
        with self._lock:
            self._vocabularies[name] = built
        return built

    def lookup(self, teacher: str, student: str) -> VocabLookup:
        """The pair's :class:`~ctkd_inspect.lookup.VocabLookup` (its exact mapping computed here, once)."""
        key = (teacher, student)
        with self._lock:
            if key in self._lookups:
                return self._lookups[key]
        from ctkd_inspect.lookup import VocabLookup

        built = VocabLookup(self.vocabulary(teacher), self.vocabulary(student))
        built.exact  # noqa: B018 - computed now, in the worker, rather than on the first keypress
        with self._lock:
            self._lookups[key] = built
        return built

    def mined(self, teacher: str, student: str) -> VocabMapping:
        """The pair's MinED mapping (from the disk cache, or computed: minutes the first time; reports progress)."""
        from ctkd_inspect.vocab import mined_mapping

        return mined_mapping(self.vocabulary(teacher), self.vocabulary(student), cache_dir=self.cache_dir)


# ---------------------------------------------------------------------------------------------------------------
# data sets: a corpus report (Parquet alignment rows) or a file of texts


@dataclass(frozen=True)
class RowSummary:
    """What the data tables show of one row without loading its alignment."""

    index: int
    rate: float  # NaN when not (yet) known
    groups: int  # -1 when not (yet) known
    characters: int
    preview: str


class ReportSource:
    """A corpus report: a Parquet file of alignment rows (:mod:`ctkd_inspect.columns`).

    Opening reads the schema and the few summary columns (milliseconds for tens of thousands of rows); the full rows
    are read once, on the first :meth:`alignment` call or by :meth:`load` in a worker.

    Raises:
        InputError: the file is missing, not Parquet, or not an alignment table this version reads.
        MissingExtraError: pyarrow is not installed.
    """

    kind = "report"

    def __init__(self, path: str | Path):
        from ctkd_inspect.columns import _pyarrow, check_columns_version

        self.path = Path(path)
        pa = _pyarrow()
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(self.path)
            check_columns_version(schema)
            summary = pq.read_table(self.path, columns=["text", "alignment_rate", "n_groups", "engine",
                                                       "teacher_name", "student_name"])
        except FileNotFoundError:
            raise InputError(f"no such report file: {self.path}") from None
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise InputError(f"{self.path} is not a readable corpus report (a Parquet file of alignment rows): "
                             f"{exc}") from None
        self.texts: list[str] = summary.column("text").to_pylist()
        rates = summary.column("alignment_rate").to_numpy(zero_copy_only=False)
        self.rates = np.asarray([np.nan if r is None else r for r in rates], dtype=np.float64) \
            if rates.dtype == object else rates.astype(np.float64)
        self.groups = summary.column("n_groups").to_numpy(zero_copy_only=False).astype(np.int64)
        self.engines = sorted(set(summary.column("engine").to_pylist()))
        self.teachers = sorted(set(summary.column("teacher_name").to_pylist()))
        self.students = sorted(set(summary.column("student_name").to_pylist()))
        self._table = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def label(self) -> str:
        return f"report {self.path.name}"

    def summary(self, index: int) -> RowSummary:
        text = self.texts[index]
        return RowSummary(index, float(self.rates[index]), int(self.groups[index]), len(text), text[:200])

    def load(self) -> None:
        """Read the full rows (once; later calls return at once).

        Raises:
            InputError: the file cannot be read in full (truncated, damaged).
        """
        with self._lock:
            if self._table is None:
                from ctkd_inspect.columns import read_table

                self._table = read_table(self.path)

    def alignment(self, index: int, session: Session | None = None, engine: str | None = None,
                  options: dict | None = None) -> Alignment:
        """The stored alignment of row ``index`` (the session and engine are not needed: the row has it).

        Raises:
            InputError: the row is damaged or the file cannot be read.
        """
        from ctkd_inspect.columns import from_arrow

        self.load()
        return from_arrow(self._table, int(index))

    def iter_alignments(self) -> Iterator[tuple[int, Alignment]]:
        """Every row's alignment, in order (for corpus summaries)."""
        from ctkd_inspect.columns import iter_alignments

        self.load()
        yield from enumerate(iter_alignments(self._table))


class TextSource:
    """A file of texts (``--data``), aligned lazily as rows are opened (and all at once by the app's background
    pass for engines that need no model).

    The formats are those of :func:`ctkd_inspect.data.read_texts`: JSONL (a ``text`` field, or chat ``messages``),
    plain text with one text per line, Parquet (a ``text`` column), a saved dataset folder. ``note`` says what the
    reader skipped (malformed lines, empty texts), or is ``None``.

    Raises:
        InputError: the file is missing or unreadable, or holds no text.
    """

    kind = "data"
    #: Alignments kept in memory (the least recently opened ones are dropped; rates and group counts are kept).
    CACHE_SIZE = 512

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.texts, self.note = read_texts(self.path)
        if not self.texts:
            raise InputError(f"{self.path} holds no text")
        self.rates = np.full(len(self.texts), np.nan)
        self.groups = np.full(len(self.texts), -1, dtype=np.int64)
        self._alignments: OrderedDict[tuple, Alignment] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def label(self) -> str:
        return f"data {self.path.name}"

    def summary(self, index: int) -> RowSummary:
        text = self.texts[index]
        return RowSummary(index, float(self.rates[index]), int(self.groups[index]), len(text), text[:200])

    def load(self) -> None:
        """Nothing to read beyond the texts (kept for the report's interface)."""

    def record(self, index: int, alignment: Alignment, key: tuple | None = None) -> None:
        """Keep a computed alignment of row ``index`` (and its rate and group count)."""
        rate = alignment.metrics.get("alignment_rate")
        self.rates[index] = np.nan if rate is None else rate
        self.groups[index] = len(alignment.table)
        if key is not None:
            with self._lock:
                self._alignments[key] = alignment
                self._alignments.move_to_end(key)
                while len(self._alignments) > self.CACHE_SIZE:
                    self._alignments.popitem(last=False)

    def alignment(self, index: int, session: Session, teacher: str, student: str, engine: str,
                  options: dict) -> Alignment:
        """Row ``index`` aligned with the app's pair and engine (computed on first use).

        Raises:
            as :meth:`Session.align`.
        """
        key = (index, teacher, student, engine, json.dumps(options, sort_keys=True, default=str))
        with self._lock:
            cached = self._alignments.get(key)
        if cached is not None:
            return cached
        result = session.align(teacher, student, self.texts[index], engine, options)
        self.record(index, result, key)
        return result


def read_texts(path: Path) -> tuple[list[str], str | None]:
    """The texts of a data file, read by :func:`ctkd_inspect.data.read_texts` (JSONL, plain text, Parquet, a
    dataset folder), with its note on what was skipped (``None`` when nothing was).

    Raises:
        InputError: the file is missing or unreadable in its format.
    """
    from ctkd_inspect.data import read_texts as open_texts

    reader = open_texts(path)
    texts = list(reader)
    return texts, reader.report.summary()
