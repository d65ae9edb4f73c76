"""The summary of a corpus run: distributions, group shapes, length ratios, failure taxonomy and worst texts.

A :class:`CorpusSummary` is built per batch by the workers and merged (in shard order) into the summary of the
whole run; everything in it is a counter, a fixed-bin histogram or a bounded reservoir, so its size does not grow
with the corpus and merging the summaries of any split of the corpus gives the summary of the whole.

Definitions (over the *counted* part of each text: the whole text, or with prompt/response fields the response
groups, see :mod:`ctkd_inspect.corpus.batch`):

- **alignment rate** of a text: the share of its counted non-special student tokens that sit in exact 1:1 groups
  (``metrics["alignment_rate"]`` for whole texts); undefined (not counted) for a text without such tokens. The
  corpus rate is token-weighted: exact 1:1 groups over all counted student tokens. Mean, min and max are exact;
  the median and percentiles come from a histogram of :data:`RATE_BINS` bins over [0, 1] (nearest rank, the
  bin's middle, clamped to [min, max]), so they are exact to half a bin (0.0005).
- **length ratio** of a text: teacher tokens / student tokens, all tokens including the special ones the
  tokenizers insert (the sequence lengths, which set the memory of each side's logits); over the response groups'
  non-special tokens with prompt/response fields. Percentiles from :data:`RATIO_BINS` log-spaced bins over
  [1/8, 8] (exact to 0.9%; values outside fall in an under- or overflow bin).
- **group shapes**: groups per shape (``1:1``, ``1:n``, ``n:1``, ``n:m``, ``unmatched``), and the sizes of the
  groups as a matrix of teacher tokens × student tokens (0-4, then 5 or more).
- **failure taxonomy**: a :class:`~ctkd_inspect.failures.FailureSummary` of the non-exact groups (counts by kind,
  a few examples per kind); **worst texts**: the texts with the largest share of counted student tokens outside
  exact 1:1 groups (ties: more such tokens, then the earlier row), with their row in the output file.
"""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..failures import FailureSummary

__all__ = ["RATE_BINS", "RATIO_BINS", "SHAPES", "CorpusSummary", "load_summary"]

RATE_BINS = 1000
RATIO_BINS = 240
RATIO_LOW, RATIO_HIGH = 1 / 8, 8.0
SHAPES = ("1:1", "1:n", "n:1", "n:m", "unmatched")
SIZE_CAP = 5  # group sizes 0..4 are counted apiece, 5 and more together
PERCENTILES = (1, 5, 10, 25, 50, 75, 90, 95, 99)
_PREVIEW = 160


def _ratio_edges() -> np.ndarray:
    return np.geomspace(RATIO_LOW, RATIO_HIGH, RATIO_BINS + 1)


def shape_codes(t_size: np.ndarray, s_size: np.ndarray) -> np.ndarray:
    """Index into :data:`SHAPES` of every group from its two sizes (``alignment.shape_of``, vectorised)."""
    code = np.where(t_size == 1, np.where(s_size == 1, 0, 1), np.where(s_size == 1, 2, 3))
    return np.where((t_size == 0) | (s_size == 0), 4, code)


def _percentiles(counts: np.ndarray, centres: np.ndarray, low: float, high: float) -> dict[str, float] | None:
    total = int(counts.sum())
    if not total:
        return None
    cumulative = np.cumsum(counts)
    out = {}
    for p in PERCENTILES:
        rank = max(1, math.ceil(p / 100 * total))  # nearest rank
        out[f"p{p}"] = float(min(max(centres[int(np.searchsorted(cumulative, rank))], low), high))
    return out


@dataclass
class CorpusSummary:
    """Mergeable statistics of a corpus run; see the module docstring for the definitions.

    Build one with :meth:`add_texts` (per-text and per-group arrays, what the workers do) and
    :attr:`failures`, combine with :meth:`merge`, read with :meth:`to_dict` (JSON-ready; :meth:`from_dict` reads it
    back) or as HTML (:meth:`_repr_html_`, the report's page). ``parquet`` (optional, not serialised) is the run's
    output file: the HTML view then expands each example into its two tokenizations.
    """

    teacher: str = ""
    student: str = ""
    engine: str = "span"
    options: dict = field(default_factory=dict)
    response_only: bool = False
    max_examples: int = 8
    max_worst: int = 10
    texts: int = 0
    characters: int = 0
    tokens: dict = field(default_factory=lambda: {"teacher": 0, "student": 0})
    counted_tokens: dict = field(default_factory=lambda: {"teacher": 0, "student": 0})
    exact_groups: int = 0
    groups: int = 0
    rate_counts: np.ndarray = field(default_factory=lambda: np.zeros(RATE_BINS, np.int64))
    rate_sum: float = 0.0
    rate_min: float | None = None
    rate_max: float | None = None
    rate_undefined: int = 0
    ratio_counts: np.ndarray = field(default_factory=lambda: np.zeros(RATIO_BINS + 2, np.int64))
    ratio_sum: float = 0.0
    ratio_min: float | None = None
    ratio_max: float | None = None
    shapes: dict = field(default_factory=lambda: dict.fromkeys(SHAPES, 0))
    group_sizes: np.ndarray = field(default_factory=lambda: np.zeros((SIZE_CAP + 1, SIZE_CAP + 1), np.int64))
    vocab_size: dict = field(default_factory=dict)
    failures: FailureSummary | None = None
    read: dict = field(default_factory=dict)
    run: dict = field(default_factory=dict)
    parquet: str | None = field(default=None, repr=False, compare=False)
    _worst: list = field(default_factory=list, repr=False)  # heap of (share, failed, -index, record)

    def __post_init__(self):
        if self.failures is None:
            self.failures = FailureSummary(max_examples=self.max_examples, max_worst=self.max_worst)

    # -- adding ---------------------------------------------------------------------------------------------

    def add_texts(self, *, index: np.ndarray, texts: Sequence[str], source_line: Sequence[int | None],
                  teacher_tokens: np.ndarray, student_tokens: np.ndarray, counted_teacher: np.ndarray,
                  counted_student: np.ndarray, exact: np.ndarray, ratio_teacher: np.ndarray,
                  ratio_student: np.ndarray, group_teacher_sizes: np.ndarray, group_student_sizes: np.ndarray) -> None:
        """Count a batch of texts.

        Args:
            index: each text's row in the output.
            texts: the texts (for their length and the worst texts' previews).
            source_line: each text's line (row) number in the data.
            teacher_tokens, student_tokens: all tokens per text (special ones included).
            counted_teacher, counted_student: the counted non-special tokens per text.
            exact: exact 1:1 groups among the counted groups, per text.
            ratio_teacher, ratio_student: the two lengths whose ratio is the text's length ratio.
            group_teacher_sizes, group_student_sizes: sizes of every counted group of the batch.
        """
        n = len(index)
        self.texts += n
        self.characters += sum(len(t) for t in texts)
        self.tokens["teacher"] += int(teacher_tokens.sum())
        self.tokens["student"] += int(student_tokens.sum())
        self.counted_tokens["teacher"] += int(counted_teacher.sum())
        self.counted_tokens["student"] += int(counted_student.sum())
        self.exact_groups += int(exact.sum())
        self.groups += len(group_teacher_sizes)

        defined = counted_student > 0
        self.rate_undefined += int(n - defined.sum())
        rate = exact[defined] / counted_student[defined]
        if len(rate):
            bins = np.minimum((rate * RATE_BINS).astype(np.int64), RATE_BINS - 1)
            self.rate_counts += np.bincount(bins, minlength=RATE_BINS)
            self.rate_sum += float(math.fsum(rate.tolist()))
            self.rate_min = float(rate.min()) if self.rate_min is None else min(self.rate_min, float(rate.min()))
            self.rate_max = float(rate.max()) if self.rate_max is None else max(self.rate_max, float(rate.max()))

        has_ratio = ratio_student > 0
        ratio = ratio_teacher[has_ratio] / ratio_student[has_ratio]
        if len(ratio):
            edges = _ratio_edges()
            # bin 0: below 1/8; bins 1..RATIO_BINS: the log-spaced bins; last: 8 and above
            where = np.searchsorted(edges, ratio, side="right")
            self.ratio_counts += np.bincount(where, minlength=RATIO_BINS + 2)
            self.ratio_sum += float(math.fsum(ratio.tolist()))
            self.ratio_min = float(ratio.min()) if self.ratio_min is None else min(self.ratio_min, float(ratio.min()))
            self.ratio_max = float(ratio.max()) if self.ratio_max is None else max(self.ratio_max, float(ratio.max()))

        if len(group_teacher_sizes):
            codes = shape_codes(group_teacher_sizes, group_student_sizes)
            for code, count in enumerate(np.bincount(codes, minlength=len(SHAPES)).tolist()):
                self.shapes[SHAPES[code]] += count
            t = np.minimum(group_teacher_sizes, SIZE_CAP)
            s = np.minimum(group_student_sizes, SIZE_CAP)
            self.group_sizes += np.bincount(t * (SIZE_CAP + 1) + s,
                                            minlength=(SIZE_CAP + 1) ** 2).reshape(SIZE_CAP + 1, SIZE_CAP + 1)

        # worst texts: only this batch's best candidates can enter the reservoir
        candidates = np.flatnonzero(defined)
        if len(candidates) and self.max_worst:
            failed = (counted_student - exact)[candidates]
            share = failed / counted_student[candidates]
            order = np.lexsort((index[candidates], -failed, -share))[:self.max_worst]
            for k in order.tolist():
                position = int(candidates[k])
                self._offer_worst({
                    "index": int(index[position]), "source_line": source_line[position],
                    "score": float(share[k]), "alignment_rate": float(exact[position] / counted_student[position]),
                    "student_tokens": int(counted_student[position]), "failed_student_tokens": int(failed[k]),
                    "teacher_tokens": int(counted_teacher[position]), "characters": len(texts[position]),
                    "preview": texts[position][:_PREVIEW]})

    def _offer_worst(self, record: dict) -> None:
        item = (record["score"], record["failed_student_tokens"], -record["index"], record)
        if len(self._worst) < self.max_worst:
            heapq.heappush(self._worst, item)
        elif item[:3] > self._worst[0][:3]:
            heapq.heapreplace(self._worst, item)

    def merge(self, other: CorpusSummary) -> CorpusSummary:
        """Add ``other`` (a summary of other texts of the same run) to this one, in place; returns self.

        Raises:
            ValueError: the summaries keep different numbers of examples or worst texts.
        """
        if (other.max_examples, other.max_worst) != (self.max_examples, self.max_worst):
            raise ValueError("summaries with different max_examples or max_worst cannot be merged")
        self.texts += other.texts
        self.characters += other.characters
        for side in ("teacher", "student"):
            self.tokens[side] += other.tokens[side]
            self.counted_tokens[side] += other.counted_tokens[side]
        self.exact_groups += other.exact_groups
        self.groups += other.groups
        self.rate_counts = self.rate_counts + other.rate_counts
        self.rate_sum += other.rate_sum
        self.rate_undefined += other.rate_undefined
        self.rate_min = _min(self.rate_min, other.rate_min)
        self.rate_max = _max(self.rate_max, other.rate_max)
        self.ratio_counts = self.ratio_counts + other.ratio_counts
        self.ratio_sum += other.ratio_sum
        self.ratio_min = _min(self.ratio_min, other.ratio_min)
        self.ratio_max = _max(self.ratio_max, other.ratio_max)
        for shape in SHAPES:
            self.shapes[shape] += other.shapes.get(shape, 0)
        self.group_sizes = self.group_sizes + other.group_sizes
        self.vocab_size = self.vocab_size or dict(other.vocab_size)
        self.failures.merge(other.failures)
        for item in other._worst:
            self._offer_worst(item[3])
        return self

    # -- reading --------------------------------------------------------------------------------------------

    @property
    def rated_texts(self) -> int:
        """Texts with a defined alignment rate."""
        return int(self.rate_counts.sum())

    def worst(self) -> list[dict]:
        """The worst texts, worst first."""
        return [item[3] for item in sorted(self._worst, key=lambda x: x[:3], reverse=True)]

    def rate_percentiles(self) -> dict[str, float] | None:
        centres = (np.arange(RATE_BINS) + 0.5) / RATE_BINS
        return _percentiles(self.rate_counts, centres, self.rate_min or 0.0, self.rate_max or 0.0)

    def ratio_percentiles(self) -> dict[str, float] | None:
        edges = _ratio_edges()
        centres = np.concatenate([[RATIO_LOW], np.sqrt(edges[:-1] * edges[1:]), [RATIO_HIGH]])
        return _percentiles(self.ratio_counts, centres, self.ratio_min or 0.0, self.ratio_max or 0.0)

    def to_dict(self) -> dict:
        """The summary as a JSON-ready dict (what ``--json`` prints and ``--summary`` writes); see the module
        docstring for the definitions. :meth:`from_dict` reads it back exactly."""
        rated = self.rated_texts
        rate_percentiles = self.rate_percentiles()
        ratio_percentiles = self.ratio_percentiles()
        ratio_n = int(self.ratio_counts.sum())
        failures = self.failures.to_dict()
        failures.pop("worst_texts", None)  # the corpus's own worst texts (response-aware) are below
        vocab = self.vocab_size
        texts = self.texts or 1
        logits = None
        if vocab.get("teacher") and vocab.get("student"):
            # float32 logits of every position of a text, both sides, averaged over texts
            logits = {"dtype": "float32", "mean_bytes_per_text": {
                side: 4 * vocab[side] * self.tokens[side] / texts for side in ("teacher", "student")}}
        return {
            "teacher": self.teacher, "student": self.student, "engine": self.engine, "options": self.options,
            "response_only": self.response_only,
            "texts": self.texts, "characters": self.characters, "tokens": dict(self.tokens),
            "counted_tokens": dict(self.counted_tokens), "groups": self.groups, "exact_groups": self.exact_groups,
            "alignment_rate": {
                "corpus": (self.exact_groups / self.counted_tokens["student"]
                           if self.counted_tokens["student"] else None),
                "mean": self.rate_sum / rated if rated else None,
                "median": rate_percentiles["p50"] if rate_percentiles else None,
                "min": self.rate_min, "max": self.rate_max, "percentiles": rate_percentiles,
                "texts": rated, "undefined_texts": self.rate_undefined, "sum": self.rate_sum,
                "histogram": {"edges": [k / RATE_BINS for k in range(RATE_BINS + 1)],
                              "counts": self.rate_counts.tolist()}},
            "length_ratio": {
                "definition": ("teacher / student non-special tokens of the response groups" if self.response_only
                               else "teacher / student tokens, special tokens included"),
                "corpus": (self.tokens["teacher"] / self.tokens["student"] if self.tokens["student"] else None)
                if not self.response_only else (self.counted_tokens["teacher"] / self.counted_tokens["student"]
                                                if self.counted_tokens["student"] else None),
                "mean": self.ratio_sum / ratio_n if ratio_n else None,
                "median": ratio_percentiles["p50"] if ratio_percentiles else None,
                "min": self.ratio_min, "max": self.ratio_max, "percentiles": ratio_percentiles, "texts": ratio_n,
                "sum": self.ratio_sum,
                "histogram": {"edges": _ratio_edges().tolist(), "counts": self.ratio_counts[1:-1].tolist(),
                              "below": int(self.ratio_counts[0]), "above": int(self.ratio_counts[-1])}},
            "shapes": dict(self.shapes),
            "group_sizes": {"labels": [str(k) for k in range(SIZE_CAP)] + [f"{SIZE_CAP}+"],
                            "matrix": self.group_sizes.tolist(),
                            "note": "rows: teacher tokens in the group, columns: student tokens"},
            "vocab_size": dict(vocab), "logits": logits,
            "failures": failures,
            "worst_texts": self.worst(),
            "settings": {"max_examples": self.max_examples, "max_worst": self.max_worst},
            "read": dict(self.read), "run": dict(self.run),
        }

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def from_dict(cls, data: dict) -> CorpusSummary:
        """Rebuild a summary from :meth:`to_dict` output (it can be merged further).

        Raises:
            ValueError: ``data`` is not a corpus summary (its histograms are missing or of another size).
        """
        try:
            settings = data.get("settings", {})
            summary = cls(teacher=data.get("teacher", ""), student=data.get("student", ""),
                          engine=data.get("engine", "span"), options=dict(data.get("options", {})),
                          response_only=bool(data.get("response_only", False)),
                          max_examples=int(settings.get("max_examples", 8)),
                          max_worst=int(settings.get("max_worst", 10)))
            summary.texts = int(data["texts"])
            summary.characters = int(data["characters"])
            summary.tokens = {k: int(v) for k, v in data["tokens"].items()}
            summary.counted_tokens = {k: int(v) for k, v in data["counted_tokens"].items()}
            summary.groups = int(data["groups"])
            summary.exact_groups = int(data["exact_groups"])
            rate = data["alignment_rate"]
            summary.rate_counts = np.asarray(rate["histogram"]["counts"], np.int64)
            summary.rate_sum = float(rate["sum"])
            summary.rate_min, summary.rate_max = rate["min"], rate["max"]
            summary.rate_undefined = int(rate["undefined_texts"])
            ratio = data["length_ratio"]
            summary.ratio_counts = np.asarray([ratio["histogram"]["below"], *ratio["histogram"]["counts"],
                                               ratio["histogram"]["above"]], np.int64)
            summary.ratio_sum = float(ratio["sum"])
            summary.ratio_min, summary.ratio_max = ratio["min"], ratio["max"]
            summary.shapes = {shape: int(data["shapes"].get(shape, 0)) for shape in SHAPES}
            summary.group_sizes = np.asarray(data["group_sizes"]["matrix"], np.int64)
            summary.vocab_size = dict(data.get("vocab_size") or {})
            failures = dict(data.get("failures") or {})
            failures["settings"] = {"max_examples": summary.max_examples, "max_worst": summary.max_worst,
                                    "seed": failures.get("settings", {}).get("seed", 0)}
            summary.failures = FailureSummary.from_dict(failures)
            for record in data.get("worst_texts", []):
                summary._offer_worst(record)
            summary.read = dict(data.get("read") or {})
            summary.run = dict(data.get("run") or {})
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a corpus summary (missing {exc})") from None
        if summary.rate_counts.shape != (RATE_BINS,) or summary.ratio_counts.shape != (RATIO_BINS + 2,):
            raise ValueError("not a corpus summary of this version (histograms of another size)")
        return summary

    # -- display --------------------------------------------------------------------------------------------

    def _repr_html_(self) -> str:
        from .report import report_fragment

        return report_fragment(self, parquet=self.parquet)

    def __repr__(self) -> str:
        rate = self.exact_groups / self.counted_tokens["student"] if self.counted_tokens["student"] else None
        shown = "n/a" if rate is None else f"{rate:.1%}"
        return (f"<CorpusSummary {self.teacher} → {self.student} ({self.engine}): {self.texts:,} texts, "
                f"alignment rate {shown}>")


def _min(a, b):
    return b if a is None else a if b is None else min(a, b)


def _max(a, b):
    return b if a is None else a if b is None else max(a, b)


def load_summary(path: str | Path, *, parquet: str | Path | None = None) -> CorpusSummary:
    """Read a summary written by ``ctkd-inspect corpus --summary`` (or :meth:`CorpusSummary.to_json`).

    Args:
        path: the JSON file.
        parquet: the run's output file, so the HTML view can expand examples (optional).

    Raises:
        InputError: the file is missing, not JSON, or not a corpus summary.
    """
    from ..errors import InputError

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not a readable JSON file ({exc})") from None
    try:
        summary = CorpusSummary.from_dict(data)
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None
    summary.parquet = None if parquet is None else str(parquet)
    return summary
