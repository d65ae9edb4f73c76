"""What a corpus worker needs to align a batch, as plain data: names and options, never loaded objects.

A :class:`CorpusSpec` travels to every worker (a local process, a Ray task on another machine) as a small
JSON-ready dict; the worker loads the tokenizers it names once per process. :func:`output_schema` is the Arrow
schema of the rows a corpus run writes: the alignment columns of :mod:`ctkd_inspect.columns` followed by the
corpus columns (:data:`CORPUS_FIELDS`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

__all__ = ["CORPUS_FIELDS", "CORPUS_KEY", "INTERNAL_FIELDS", "CorpusSpec", "output_schema"]

#: Schema metadata key holding the run's description (teacher, student, engine, options, response mode).
CORPUS_KEY = b"ctkd_inspect.corpus"

#: The columns a corpus run adds after the alignment columns, with what they hold:
#:
#: - ``source_line``: the text's 1-based line number in the data (JSONL, plain text: a paragraph's first line) or
#:   row number (Parquet, dataset folders);
#: - ``response_start``: with prompt/response fields, the character offset where the response starts (after the
#:   separator); null otherwise;
#: - ``response_alignment_rate``, ``response_student_tokens``, ``response_teacher_tokens``: the response statistics
#:   (see :mod:`ctkd_inspect.corpus.batch`); null without prompt/response fields.
CORPUS_FIELDS = ("source_line", "response_start", "response_alignment_rate", "response_student_tokens",
                 "response_teacher_tokens")

#: Columns the per-batch function returns besides the output columns; the runner removes them before writing:
#: ``index`` (the row's position in the output) and ``batch_summary`` (the batch's summary as JSON, on the batch's
#: first row only, null elsewhere).
INTERNAL_FIELDS = ("index", "batch_summary")


@dataclass(frozen=True)
class CorpusSpec:
    """The alignment a corpus run performs, as plain, picklable data.

    Attributes:
        teacher, student: tokenizer names as the user gave them (aliases, paths, hub ids); the rows record them.
        engine: a registered engine name.
        options: the engine's options, already validated and typed (JSON-ready values).
        add_special_tokens: tokenize with each tokenizer's BOS/EOS/CLS/SEP.
        cache_dir: the tokenizer cache the workers use (``None``: the default one).
        response_only: statistics over the response only (prompt/response fields).
        max_examples, max_worst: failure examples kept per kind, worst texts kept.
    """

    teacher: str
    student: str
    engine: str = "span"
    options: dict[str, Any] = field(default_factory=dict)
    add_special_tokens: bool = True
    cache_dir: str | None = None
    response_only: bool = False
    max_examples: int = 8
    max_worst: int = 10

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_value(cls, value: CorpusSpec | dict) -> CorpusSpec:
        """A spec from itself or from :meth:`to_dict` output (what Ray and the process pool carry).

        Raises:
            InputError: a dict with unknown keys or without the tokenizer names.
        """
        if isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            raise InputError(f"spec must be a CorpusSpec or its dict, not {type(value).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(value) - known)
        if unknown or "teacher" not in value or "student" not in value:
            raise InputError(f"not a corpus spec: unknown keys {unknown}" if unknown else
                             "not a corpus spec: teacher and student are required")
        return cls(**value)

    def key(self) -> dict:
        """The parts of the spec that decide the rows (the resumable run's key; the cache folder does not)."""
        data = self.to_dict()
        data.pop("cache_dir")
        return data


def _json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def output_schema(spec: CorpusSpec | dict) -> pa.Schema:
    """The Arrow schema of the rows a corpus run writes for ``spec``.

    The alignment columns and metadata of :func:`ctkd_inspect.columns.arrow_schema` (engine list ``[engine]``, the
    shared options ``{"add_special_tokens": ..., **options}``), then :data:`CORPUS_FIELDS`, and the metadata key
    ``ctkd_inspect.corpus`` describing the run. Every shard of a run, on every backend, has exactly this schema.

    Raises:
        MissingExtraError: pyarrow is not installed.
    """
    from ..columns import arrow_schema

    spec = CorpusSpec.from_value(spec)
    import pyarrow as pa

    shared = {"add_special_tokens": spec.add_special_tokens, **spec.options}
    base = arrow_schema(engines=[spec.engine], options={spec.engine: shared})
    extra = [pa.field("source_line", pa.int64()), pa.field("response_start", pa.int64()),
             pa.field("response_alignment_rate", pa.float64()), pa.field("response_student_tokens", pa.int64()),
             pa.field("response_teacher_tokens", pa.int64())]
    metadata = dict(base.metadata)
    metadata[CORPUS_KEY] = _json({"teacher": spec.teacher, "student": spec.student, "engine": spec.engine,
                                  "options": shared, "response_only": spec.response_only}).encode()
    return pa.schema(list(base) + extra, metadata=metadata)


def batch_schema(spec: CorpusSpec | dict) -> pa.Schema:
    """:func:`output_schema` plus the :data:`INTERNAL_FIELDS` the per-batch function returns."""
    import pyarrow as pa

    schema = output_schema(spec)
    internal = [pa.field("index", pa.int64(), nullable=False), pa.field("batch_summary", pa.string())]
    return pa.schema([*schema, *internal], metadata=schema.metadata)
