"""The alignment schema in columns: one Arrow row per text, a lossless round trip, versioned.

An :class:`~ctkd_inspect.alignment.Alignment` becomes one row of flat Arrow columns, so corpus runs write Parquet,
reports and front-ends read it (with pyarrow, datasets, DuckDB, polars...), and a row converts back into the same
``Alignment``: ``from_arrow(to_arrow(a)).to_dict() == a.to_dict()`` for every engine's output.

**Columns** (per-token columns are lists, one entry per token, special tokens included)::

    text                      string        the aligned text
    engine                    string        engine name (per row: one file may mix engines)
    teacher_ids, student_ids  list<int64>   vocabulary ids
    teacher_group             list<int32>   group index of each teacher token, -1 for a token in no group
    student_group             list<int32>   the same for the student
    alignment_rate            double        metrics["alignment_rate"] (null when undefined)
    n_groups                  int32         number of groups (a group may have one empty side)
    teacher_name, student_name, teacher_scheme, student_scheme,
    teacher_continuation_prefix, student_continuation_prefix        string
    teacher_tokens, student_tokens          list<string>  raw vocabulary strings
    teacher_starts, teacher_ends, student_starts, student_ends      list<int32>  [start, end) character spans
    teacher_special, student_special        list<bool>
    teacher_source, student_source          string  JSON of where the tokenizer came from (null when unknown)
    teacher_pieces, student_pieces          list<string>  readable pieces; null when they are the ones the
                                                          tokens give (always, unless asked for or hand-set)
    teacher_clusters, student_clusters      string  JSON byte clusters; null when derived from the tokens
    group_cost                list<double>  per-group ``cost`` (DTW engines), null when the engine gives none
    group_columns             string        JSON: every per-group column in order, ``null`` for the ones stored
                                            typed (``cost``); null when the groups carry no values
    options, extra, metrics   string        JSON of the engine's options, its extra output (``path``,
                                            ``cdm_groups``, ``dynamic_mapping``, ``soft_alignment``...), metrics
    alignment_schema          string        the ``Alignment`` JSON schema version of the row

Everything else of the JSON form (group shapes, spans and exactness, unmatched tokens, byte clusters, pieces) is
derived from these on the way back, exactly as :meth:`Alignment.to_dict` derives it. The groups are rebuilt from
the per-token group columns and ``n_groups``: group ``g`` holds the tokens whose group is ``g``, in token order.
That is exact for every alignment whose groups list each token at most once and in ascending order (the schema's
invariant; :func:`to_arrow` refuses others), including groups with an empty side.

**Schema metadata**: ``ctkd_inspect.schema_version`` (the version of these columns, :data:`COLUMNS_VERSION`;
readers refuse a newer major version), ``ctkd_inspect.engines`` (JSON list of the engines in the file) and
``ctkd_inspect.options`` (JSON: per engine, the options every row of that engine shares; per-row options are in
the ``options`` column). A minor version adds columns; a major version changes the meaning of an existing one.

pyarrow is imported inside the functions (the ``parquet`` extra), so importing this module costs nothing.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .alignment import Alignment, GroupTable, _json_default
from .errors import InputError, OutputError
from .text import Tokenization, byte_clusters, readable_piece, token_bytes

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

__all__ = [
    "COLUMNS_VERSION", "AlignmentParquetWriter", "alignments_from_arrow", "arrow_schema", "check_columns_version",
    "from_arrow", "iter_alignments", "read_parquet", "read_parquet_row", "read_table", "to_arrow",
    "to_record_batch", "write_parquet",
]

#: Version of the column layout (not of the JSON schema, which is ``alignment.SCHEMA_VERSION``).
COLUMNS_VERSION = "1.0"
VERSION_KEY = b"ctkd_inspect.schema_version"
ENGINES_KEY = b"ctkd_inspect.engines"
OPTIONS_KEY = b"ctkd_inspect.options"

# Columns the reader needs; later minor versions may add more (readers ignore columns they do not know).
REQUIRED_COLUMNS = (
    "text", "engine", "teacher_ids", "student_ids", "teacher_group", "student_group", "alignment_rate", "n_groups",
    "teacher_name", "student_name", "teacher_scheme", "student_scheme", "teacher_continuation_prefix",
    "student_continuation_prefix", "teacher_tokens", "student_tokens", "teacher_starts", "teacher_ends",
    "student_starts", "student_ends", "teacher_special", "student_special", "teacher_source", "student_source",
    "teacher_pieces", "student_pieces", "teacher_clusters", "student_clusters", "group_cost", "group_columns",
    "options", "extra", "metrics", "alignment_schema",
)

# A record batch holds at most this many rows or text characters, so list and string offsets (int32) never
# overflow; to_arrow returns a table of several batches beyond that.
_BATCH_ROWS = 8192
_BATCH_CHARACTERS = 1 << 28
_INT32_MAX = (1 << 31) - 1


def _pyarrow():
    from .extras import require

    require("parquet", feature="Arrow/Parquet columns")
    import pyarrow as pa

    return pa


def arrow_schema(*, engines: Sequence[str] = (), options: dict | None = None) -> pa.Schema:
    """The ``pyarrow.Schema`` of alignment rows (see the module docstring), with its metadata.

    Use it to write batches incrementally (``pyarrow.parquet.ParquetWriter(path, arrow_schema(...))`` and
    :func:`to_record_batch`), or through :class:`AlignmentParquetWriter`, which does both atomically.

    Args:
        engines: the engine names the file will hold (metadata ``ctkd_inspect.engines``).
        options: per engine, the options shared by its rows (metadata ``ctkd_inspect.options``).

    Raises:
        MissingExtraError: pyarrow is not installed.
    """
    pa = _pyarrow()
    ids, group, offsets = pa.list_(pa.int64()), pa.list_(pa.int32()), pa.list_(pa.int32())
    strings, flags = pa.list_(pa.string()), pa.list_(pa.bool_())
    fields = [
        pa.field("text", pa.string(), nullable=False),
        pa.field("engine", pa.string(), nullable=False),
        pa.field("teacher_ids", ids, nullable=False),
        pa.field("student_ids", ids, nullable=False),
        pa.field("teacher_group", group, nullable=False),
        pa.field("student_group", group, nullable=False),
        pa.field("alignment_rate", pa.float64()),
        pa.field("n_groups", pa.int32(), nullable=False),
    ]
    for side in ("teacher", "student"):
        fields += [pa.field(f"{side}_name", pa.string(), nullable=False),
                   pa.field(f"{side}_scheme", pa.string(), nullable=False),
                   pa.field(f"{side}_continuation_prefix", pa.string(), nullable=False)]
    for side in ("teacher", "student"):
        fields += [pa.field(f"{side}_tokens", strings, nullable=False),
                   pa.field(f"{side}_starts", offsets, nullable=False),
                   pa.field(f"{side}_ends", offsets, nullable=False),
                   pa.field(f"{side}_special", flags, nullable=False),
                   pa.field(f"{side}_source", pa.string()),
                   pa.field(f"{side}_pieces", strings),
                   pa.field(f"{side}_clusters", pa.string())]
    fields += [
        pa.field("group_cost", pa.list_(pa.float64())),
        pa.field("group_columns", pa.string()),
        pa.field("options", pa.string(), nullable=False),
        pa.field("extra", pa.string()),
        pa.field("metrics", pa.string(), nullable=False),
        pa.field("alignment_schema", pa.string(), nullable=False),
    ]
    metadata = {VERSION_KEY: COLUMNS_VERSION.encode(),
                ENGINES_KEY: json.dumps(list(engines)).encode(),
                OPTIONS_KEY: _dumps(options or {}).encode()}
    return pa.schema(fields, metadata=metadata)


# ---------------------------------------------------------------------------------------------------------------
# writing


def _dumps(value) -> str:
    # ASCII escapes keep any string (even one with a lone surrogate) valid UTF-8 for Arrow
    return json.dumps(value, separators=(",", ":"), default=_json_default, allow_nan=True)


def _group_column(pa, rows: Sequence[Alignment], side: str):
    """The ``{side}_group`` list column of a batch: each token's group index (-1 for none), for all rows in a few
    array operations, checked to rebuild every table's groups exactly (see the module docstring)."""
    tokens = [a.teacher if side == "teacher" else a.student for a in rows]
    tables = [a.table for a in rows]
    n_tokens = np.fromiter((len(t) for t in tokens), np.int64, len(rows))
    n_groups = np.fromiter((len(t) for t in tables), np.int64, len(rows))
    token_base = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(n_tokens, out=token_base[1:])
    if token_base[-1] > _INT32_MAX:
        raise InputError("too many tokens in one record batch for Arrow list offsets; write fewer rows at a time")
    owner = np.full(int(token_base[-1]), -1, dtype=np.int32)
    offsets = [getattr(t, f"{side}_offsets") for t in tables]
    indices_per_row = [getattr(t, f"{side}_indices") for t in tables]
    counts = np.fromiter((len(i) for i in indices_per_row), np.int64, len(rows))
    if len(rows) and int(counts.sum()):
        sizes = np.concatenate([np.diff(o) for o in offsets])  # tokens per group, all groups of the batch in order
        ends = np.fromiter((int(o[-1]) if len(o) else 0 for o in offsets), np.int64, len(rows))
        indices = np.concatenate(indices_per_row).astype(np.int64, copy=False)
        row_of = np.repeat(np.arange(len(rows)), counts)
        bad = np.flatnonzero((ends != counts)[row_of] | (indices < 0) | (indices >= n_tokens[row_of]))
        if len(bad):
            raise InputError(f"cannot store alignment {int(row_of[bad[0]])} in columns: a {side} group lists a "
                             "token index outside its tokens")
        group_of = np.repeat(np.arange(len(sizes)), sizes)  # batch-wide group of each listed token
        local = group_of - np.repeat(np.concatenate([[0], np.cumsum(n_groups)[:-1]]), n_groups)[group_of]
        flat = indices + token_base[:-1][row_of]
        owner[flat] = local
        # exact iff no token is listed twice and every group lists its tokens in ascending order
        descending = np.flatnonzero((group_of[1:] == group_of[:-1]) & (np.diff(flat) <= 0))
        if np.count_nonzero(owner >= 0) != len(flat) or len(descending):
            if len(descending):
                row = int(row_of[descending[0] + 1])
            else:  # the row of the first token listed twice
                twice = int(np.flatnonzero(np.bincount(flat, minlength=len(owner)) > 1)[0])
                row = int(np.searchsorted(token_base, twice, side="right") - 1)
            raise InputError(f"cannot store alignment {row} ({rows[row].engine}) in columns: its {side} groups "
                             "list a token twice or out of ascending order (the schema's groups partition the "
                             "tokens, each group in token order)")
    return pa.ListArray.from_arrays(pa.array(token_base.astype(np.int32), type=pa.int32()),
                                    pa.array(owner, type=pa.int32()))


def _derived_pieces(tokens: Tokenization) -> list[str]:
    raw = [t.encode("utf-8") if sp else token_bytes(t, tokens.scheme, tokens.continuation_prefix)
           for t, sp in zip(tokens.tokens, tokens.special.tolist())]
    return [t if sp else readable_piece(b) for t, b, sp in zip(tokens.tokens, raw, tokens.special.tolist())]


def _stored_pieces(tokens: Tokenization, always: bool) -> list[str] | None:
    """The pieces to store: all when asked, else only pieces that differ from what the tokens give (hand-set)."""
    if always:
        return tokens.pieces
    given = tokens._pieces
    if given is None:  # never computed: the reader derives the same ones (the usual case in corpus mode)
        return None
    return None if given == _derived_pieces(tokens) else list(given)


def _stored_clusters(tokens: Tokenization) -> str | None:
    given = tokens._clusters
    if given is None:
        return None
    derived = byte_clusters(tokens.token_bytes(), tokens.special)
    if [tuple(c) for c in given] == derived:
        return None
    return _dumps([list(c) for c in given])


def _group_columns(table: GroupTable) -> tuple[np.ndarray | None, str | None]:
    """(``cost`` as float64 when it is a float column, JSON of every per-group column in order)."""
    if not table.columns:
        return None, None
    cost = table.columns.get("cost")
    typed = cost is not None and cost.dtype.kind == "f" and cost.ndim == 1
    described = {name: None if (name == "cost" and typed) else values.tolist()
                 for name, values in table.columns.items()}
    return (np.asarray(cost, dtype=np.float64) if typed else None), _dumps(described)


def _common_options(alignments: Sequence[Alignment]) -> dict[str, dict]:
    """Per engine, the option items every row of that engine shares (the file's run configuration)."""
    out: dict[str, dict] = {}
    for alignment in alignments:
        shared = out.get(alignment.engine)
        if shared is None:
            out[alignment.engine] = dict(alignment.options)
        else:
            for key in [k for k, v in shared.items() if k not in alignment.options or alignment.options[k] != v]:
                del shared[key]
    return out


def _list_array(pa, arrays: Sequence, value_type, dtype=None, valid: Sequence[bool] | None = None):
    """A list column from one sequence (numpy array, list or None) per row: one concatenation, no per-element
    Python objects for numeric values."""
    lengths = np.fromiter((0 if x is None else len(x) for x in arrays), dtype=np.int64, count=len(arrays))
    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] > _INT32_MAX:
        raise InputError("too many tokens in one record batch for Arrow list offsets; write fewer rows at a time")
    present = [x for x in arrays if x is not None]
    if dtype is None:  # strings
        values = pa.array(list(chain.from_iterable(present)), type=value_type)
    else:
        values = pa.array(np.concatenate(present).astype(dtype, copy=False) if present else np.zeros(0, dtype),
                          type=value_type)
    mask = None if valid is None or all(valid) else pa.array([not v for v in valid], type=pa.bool_())
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32), type=pa.int32()), values, mask=mask)


def _rows(alignments) -> list[Alignment]:
    if not isinstance(alignments, Alignment) and (isinstance(alignments, (str, bytes, dict))
                                                  or not hasattr(alignments, "__iter__")):
        from .errors import InputTypeError

        raise InputTypeError(f"alignments must be an Alignment or an iterable of them, got "
                             f"{type(alignments).__name__}")
    rows = [alignments] if isinstance(alignments, Alignment) else list(alignments)
    for position, row in enumerate(rows):
        if not isinstance(row, Alignment):
            raise InputError(f"alignments[{position}] is a {type(row).__name__}, not an Alignment")
    return rows


def _default_schema(rows: Sequence[Alignment]) -> pa.Schema:
    return arrow_schema(engines=list(dict.fromkeys(a.engine for a in rows)), options=_common_options(rows))


def to_record_batch(alignments: Alignment | Iterable[Alignment], *, schema: pa.Schema | None = None,
                    pieces: bool = False) -> pa.RecordBatch:
    """One ``pyarrow.RecordBatch``, one row per alignment (for ``ParquetWriter.write_batch``).

    Args:
        alignments: an :class:`Alignment` or any iterable of them (engines may be mixed).
        schema: the schema to use (default: :func:`arrow_schema` with these alignments' engines and shared
            options). Pass the writer's schema when writing batches to an open ``ParquetWriter``.
        pieces: also store every token's readable piece (by default pieces are stored only where they are not
            the ones the tokens give, since the reader derives them).

    Raises:
        InputError: an alignment's groups list a token twice or out of order (see the module docstring), a value
            is not JSON-serialisable, or the batch is too large for Arrow's int32 offsets.
        MissingExtraError: pyarrow is not installed.
    """
    pa = _pyarrow()
    rows = _rows(alignments)
    if schema is None:
        schema = _default_schema(rows)
    columns: dict[str, object] = {}
    try:
        columns["text"] = pa.array([a.text for a in rows], type=pa.string())
        columns["engine"] = pa.array([a.engine for a in rows], type=pa.string())
        for side in ("teacher", "student"):
            sides = [a.teacher if side == "teacher" else a.student for a in rows]
            columns[f"{side}_ids"] = _list_array(pa, [t.ids for t in sides], pa.int64(), np.int64)
            columns[f"{side}_group"] = _group_column(pa, rows, side)
            columns[f"{side}_name"] = pa.array([t.name for t in sides], type=pa.string())
            columns[f"{side}_scheme"] = pa.array([t.scheme for t in sides], type=pa.string())
            columns[f"{side}_continuation_prefix"] = pa.array([t.continuation_prefix for t in sides], pa.string())
            columns[f"{side}_tokens"] = _list_array(pa, [t.tokens for t in sides], pa.string())
            for name in ("starts", "ends"):
                arrays = [getattr(t, name) for t in sides]
                if any(len(x) and int(x.max()) > _INT32_MAX for x in arrays):
                    raise InputError("a character offset beyond 2³¹ does not fit the int32 span columns")
                columns[f"{side}_{name}"] = _list_array(pa, arrays, pa.int32(), np.int32)
            columns[f"{side}_special"] = _list_array(pa, [t.special for t in sides], pa.bool_(), np.bool_)
            columns[f"{side}_source"] = pa.array([_dumps(t.source) if t.source is not None else None
                                                  for t in sides], type=pa.string())
            stored = [_stored_pieces(t, pieces) for t in sides]
            columns[f"{side}_pieces"] = _list_array(pa, stored, pa.string(), valid=[p is not None for p in stored])
            columns[f"{side}_clusters"] = pa.array([_stored_clusters(t) for t in sides], type=pa.string())
        rates = [a.metrics.get("alignment_rate") for a in rows]
        columns["alignment_rate"] = pa.array([None if r is None else float(r) for r in rates], type=pa.float64())
        columns["n_groups"] = pa.array(np.fromiter((len(a.table) for a in rows), np.int32, len(rows)), pa.int32())
        described = [_group_columns(a.table) for a in rows]
        columns["group_cost"] = _list_array(pa, [c for c, _ in described], pa.float64(), np.float64,
                                            valid=[c is not None for c, _ in described])
        columns["group_columns"] = pa.array([d for _, d in described], type=pa.string())
        columns["options"] = pa.array([_dumps(a.options) for a in rows], type=pa.string())
        columns["extra"] = pa.array([_dumps(a.extra) if a.extra else None for a in rows], type=pa.string())
        columns["metrics"] = pa.array([_dumps(a.metrics) for a in rows], type=pa.string())
        columns["alignment_schema"] = pa.array([a.schema_version for a in rows], type=pa.string())
    except (TypeError, ValueError) as exc:  # json: a value that is not JSON-ready; a circular structure
        if isinstance(exc, InputError):
            raise
        raise InputError(f"cannot store the alignment in columns: {exc}") from None
    missing = [f.name for f in schema if f.name not in columns]
    if missing:
        raise InputError(f"schema has columns this version does not write: {', '.join(missing)}")
    return pa.RecordBatch.from_arrays([columns[f.name] for f in schema], schema=schema)


def _chunks(rows: Sequence[Alignment]) -> Iterator[Sequence[Alignment]]:
    """Consecutive slices of ``rows`` small enough for one record batch (bounded rows and characters)."""
    start, characters = 0, 0
    for position, row in enumerate(rows):
        if position > start and (position - start >= _BATCH_ROWS or characters + len(row.text) > _BATCH_CHARACTERS):
            yield rows[start:position]
            start, characters = position, 0
        characters += len(row.text)
    if start < len(rows):
        yield rows[start:]


def to_arrow(alignments: Alignment | Iterable[Alignment], *, pieces: bool = False) -> pa.Table:
    """A ``pyarrow.Table`` with one row per alignment (an :class:`Alignment` gives a one-row table).

    The schema metadata names the engines and the options their rows share (see the module docstring). Large
    inputs become several record batches (bounded rows and characters per batch), read back the same way.

    Raises:
        InputError / MissingExtraError: see :func:`to_record_batch`.
    """
    pa = _pyarrow()
    rows = _rows(alignments)
    schema = _default_schema(rows)
    batches = [to_record_batch(chunk, schema=schema, pieces=pieces) for chunk in _chunks(rows)]
    return pa.Table.from_batches(batches, schema=schema)


# ---------------------------------------------------------------------------------------------------------------
# reading


def check_columns_version(schema: pa.Schema) -> str:
    """The columns version of ``schema``; refuses a table that is not ours or that a newer major version wrote.

    Raises:
        InputError: no ``ctkd_inspect.schema_version`` in the metadata, a newer (or unknown) major version, or
            required columns missing.
    """
    metadata = schema.metadata or {}
    raw = metadata.get(VERSION_KEY)
    if raw is None:
        raise InputError("not an alignment table written by ctkd-inspect: its schema metadata has no "
                         "ctkd_inspect.schema_version (write it with ctkd_inspect.columns.to_arrow or keep the "
                         "schema metadata when transforming it)")
    version = raw.decode("utf-8", "replace")
    major = version.split(".")[0]
    ours = COLUMNS_VERSION.split(".")[0]
    if not major.isdigit() or int(major) > int(ours):
        raise InputError(f"this alignment table has columns version {version}, newer than this ctkd-inspect reads "
                         f"({COLUMNS_VERSION}); upgrade ctkd-inspect to read it")
    if int(major) < int(ours):
        raise InputError(f"this alignment table has columns version {version}, which this ctkd-inspect "
                         f"({COLUMNS_VERSION}) no longer reads; rewrite it from the alignments")
    missing = [name for name in REQUIRED_COLUMNS if name not in schema.names]
    if missing:
        raise InputError(f"this alignment table lacks the columns {', '.join(missing)} (columns version "
                         f"{version}); was it cut down after writing?")
    return version


def _batches(data) -> Iterator:
    pa = _pyarrow()
    if isinstance(data, pa.RecordBatch):
        check_columns_version(data.schema)
        yield data
    elif isinstance(data, pa.Table):
        check_columns_version(data.schema)
        for batch in data.to_batches():
            if batch.num_rows:
                yield batch
    else:
        raise InputError(f"data must be a pyarrow Table or RecordBatch of alignment rows, not "
                         f"{type(data).__name__}")


def _list_parts(column, dtype=None):
    """(offsets from 0, flat values) of a list column: one writable numpy array (or one Python list for strings)
    for the whole batch, so rows are views of it."""
    offsets = column.offsets.to_numpy().astype(np.int64)
    start, stop = int(offsets[0]), int(offsets[-1])
    values = column.values.slice(start, stop - start)
    # numeric values: one copy per batch, so rows are writable views that own no Arrow buffer
    flat = values.to_pylist() if dtype is None else np.array(values.to_numpy(zero_copy_only=False), dtype=dtype)
    return offsets - start, flat


def _cut(parts: tuple, row: int):
    offsets, flat = parts
    return flat[offsets[row]:offsets[row + 1]]


def _loads(value):
    return None if value is None else json.loads(value)


def _rebuild_table(t_owner: np.ndarray, s_owner: np.ndarray, n_groups: int, row: int) -> GroupTable:
    arrays = []
    for owner in (t_owner, s_owner):
        assigned = owner >= 0
        count = int(np.count_nonzero(assigned))
        if count and int(owner.max()) >= n_groups:
            raise InputError(f"row {row}: a token's group index is beyond n_groups ({n_groups}); the file is "
                             "damaged")
        indices = np.argsort(owner, kind="stable")[len(owner) - count:].astype(np.int64)
        sizes = np.bincount(owner[assigned], minlength=n_groups)
        offsets = np.zeros(n_groups + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        arrays.append((offsets, indices))
    return GroupTable.from_arrays(arrays[0][0], arrays[0][1], arrays[1][0], arrays[1][1])


def _alignments_of_batch(batch) -> Iterator[Alignment]:
    column = batch.column
    n = batch.num_rows
    texts = column("text").to_pylist()
    engines = column("engine").to_pylist()
    n_groups = column("n_groups").to_numpy(zero_copy_only=False).tolist()
    sides = {}
    for side in ("teacher", "student"):
        parts = {"ids": _list_parts(column(f"{side}_ids"), np.int64),
                 "group": _list_parts(column(f"{side}_group"), np.int64),
                 "tokens": _list_parts(column(f"{side}_tokens")),
                 "starts": _list_parts(column(f"{side}_starts"), np.int64),
                 "ends": _list_parts(column(f"{side}_ends"), np.int64),
                 "special": _list_parts(column(f"{side}_special"), np.bool_),
                 "pieces": _list_parts(column(f"{side}_pieces"))}
        scalars = {name: column(f"{side}_{name}").to_pylist()
                   for name in ("name", "scheme", "continuation_prefix", "source", "clusters")}
        sides[side] = (parts, scalars, column(f"{side}_pieces").is_null().to_pylist())
    cost_offsets, cost_values = _list_parts(column("group_cost"), np.float64)
    cost_null = column("group_cost").is_null().to_pylist()
    described = column("group_columns").to_pylist()
    options, extra, metrics = (column(name).to_pylist() for name in ("options", "extra", "metrics"))
    versions = column("alignment_schema").to_pylist()
    for row in range(n):
        tokenizations, owners = {}, {}
        for side, (parts, scalars, pieces_null) in sides.items():
            cut = {name: _cut(part, row) for name, part in parts.items()}
            clusters = _loads(scalars["clusters"][row])
            tokenizations[side] = Tokenization(
                name=scalars["name"][row], text=texts[row], ids=cut["ids"], tokens=cut["tokens"],
                starts=cut["starts"], ends=cut["ends"], special=cut["special"], scheme=scalars["scheme"][row],
                source=_loads(scalars["source"][row]), continuation_prefix=scalars["continuation_prefix"][row],
                _pieces=None if pieces_null[row] else cut["pieces"],
                _clusters=None if clusters is None else [tuple(c) for c in clusters])
            owners[side] = cut["group"]
            if len(owners[side]) != len(tokenizations[side]):
                raise InputError(f"row {row}: {side}_group has {len(owners[side])} entries for "
                                 f"{len(tokenizations[side])} tokens; the file is damaged")
        table = _rebuild_table(owners["teacher"], owners["student"], int(n_groups[row]), row)
        names = _loads(described[row])
        if names:
            cost = None if cost_null[row] else cost_values[cost_offsets[row]:cost_offsets[row + 1]]
            table.columns = {name: (np.asarray(cost) if values is None else np.asarray(values))
                             for name, values in names.items()}
        yield Alignment(tokenizations["teacher"], tokenizations["student"], table, engine=engines[row],
                        options=_loads(options[row]), extra=_loads(extra[row]), metrics=_loads(metrics[row]),
                        schema_version=versions[row])


def iter_alignments(data: pa.Table | pa.RecordBatch) -> Iterator[Alignment]:
    """The alignments of every row, in order, converted one record batch at a time.

    Raises:
        InputError: ``data`` is not an alignment table of a version this one reads, or a row is damaged.
    """
    for batch in _batches(data):
        yield from _alignments_of_batch(batch)


def alignments_from_arrow(data: pa.Table | pa.RecordBatch) -> list[Alignment]:
    """Every row of an alignment table as an :class:`Alignment` (see :func:`iter_alignments`)."""
    return list(iter_alignments(data))


def from_arrow(data: pa.Table | pa.RecordBatch, index: int | None = None) -> Alignment:
    """One row of an alignment table as an :class:`Alignment`, without converting the other rows.

    Args:
        data: a table or record batch of alignment rows (from :func:`to_arrow`, Parquet, ...).
        index: the row (negative counts from the end); ``None`` requires a table of exactly one row.

    Raises:
        InputError: ``index`` is out of range, or ``None`` with a table of several rows; ``data`` is not an
            alignment table this version reads.
    """
    pa = _pyarrow()
    if not isinstance(data, (pa.Table, pa.RecordBatch)):
        raise InputError(f"data must be a pyarrow Table or RecordBatch of alignment rows, not {type(data).__name__}")
    rows = data.num_rows
    if index is None:
        if rows != 1:
            raise InputError(f"data has {rows} rows: pass index= to pick one, or use alignments_from_arrow for all")
        index = 0
    return next(iter_alignments(data.slice(_position(index, rows, "table"), 1)))


def _position(index, rows: int, what: str) -> int:
    """The row ``index`` names (negative counts from the end), or an InputError."""
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise InputError(f"index must be an int, not {type(index).__name__}")
    position = int(index) + rows if index < 0 else int(index)
    if not 0 <= position < rows:
        raise InputError(f"index {index} is out of range for a {what} of {rows} rows")
    return position


# ---------------------------------------------------------------------------------------------------------------
# Parquet


def write_parquet(alignments: Alignment | Iterable[Alignment], path: str | os.PathLike, *, overwrite: bool = False,
                  pieces: bool = False, compression: str = "zstd") -> Path:
    """Write alignments to a Parquet file, one row each, atomically (a failure leaves any previous file intact).

    Args:
        alignments: an :class:`Alignment` or an iterable of them.
        path: a ``.parquet`` file.
        overwrite: replace an existing file.
        pieces, compression: see :func:`to_record_batch`; any Parquet codec pyarrow knows.

    Raises:
        OutputError: the path cannot be written (checked before any conversion), or exists without ``overwrite``.
        InputError / MissingExtraError: see :func:`to_record_batch`.
    """
    from .extras import require
    from .outputs import atomic_path, check_output_path

    require("parquet", feature="Parquet output")
    target = check_output_path(path, suffixes=(".parquet",), overwrite=overwrite, option="path")
    table = to_arrow(alignments, pieces=pieces)
    import pyarrow.parquet as pq

    with atomic_path(target) as temporary:
        pq.write_table(table, temporary, compression=compression)
    return target


class AlignmentParquetWriter:
    """Write alignment rows to a Parquet file batch by batch (corpus runs), atomically.

    ::

        with AlignmentParquetWriter("runs/span.parquet", engines=["span"]) as writer:
            for chunk in chunks:
                writer.write([align(...) for text in chunk])

    The file appears at ``path`` only when the block ends without an exception; until then rows go to a temporary
    file beside it, removed on failure. Each :meth:`write` call becomes at least one row group.

    Args:
        path: a ``.parquet`` file, checked when the writer is created.
        overwrite: replace an existing file.
        engines, options: the schema metadata (see :func:`arrow_schema`); the schema is fixed before any row.
        pieces, compression: see :func:`write_parquet`.

    Raises:
        OutputError: the path cannot be written, or exists without ``overwrite``.
    """

    def __init__(self, path: str | os.PathLike, *, overwrite: bool = False, engines: Sequence[str] = (),
                 options: dict | None = None, pieces: bool = False, compression: str = "zstd"):
        from .extras import require
        from .outputs import check_output_path

        require("parquet", feature="Parquet output")
        self.path = check_output_path(path, suffixes=(".parquet",), overwrite=overwrite, option="path")
        self.schema = arrow_schema(engines=engines, options=options)
        self.pieces = pieces
        self.compression = compression
        self.rows = 0
        self._context = None
        self._writer = None

    def __enter__(self) -> AlignmentParquetWriter:
        import pyarrow.parquet as pq

        from .outputs import atomic_path

        self._context = atomic_path(self.path)
        temporary = self._context.__enter__()
        try:
            self._writer = pq.ParquetWriter(temporary, self.schema, compression=self.compression)
        except BaseException:
            self._context.__exit__(*sys.exc_info())
            raise
        return self

    def write(self, alignments: Alignment | Iterable[Alignment]) -> int:
        """Append rows; returns the number written by this call.

        Raises:
            OutputError: the writer is not open (use it in a ``with`` block).
        """
        if self._writer is None:
            raise OutputError("AlignmentParquetWriter.write called outside its with block")
        rows = _rows(alignments)
        for chunk in _chunks(rows):
            self._writer.write_batch(to_record_batch(chunk, schema=self.schema, pieces=self.pieces))
        self.rows += len(rows)
        return len(rows)

    def __exit__(self, kind, value, traceback) -> None:
        writer, context = self._writer, self._context
        self._writer = self._context = None
        try:
            if writer is not None:
                writer.close()
        except BaseException:
            context.__exit__(*sys.exc_info())
            raise
        context.__exit__(kind, value, traceback)


def read_table(path: str | os.PathLike) -> pa.Table:
    """A Parquet file of alignment rows as a ``pyarrow.Table``, its columns version checked.

    Raises:
        InputError: the file is missing, not Parquet, or not an alignment table this version reads.
        MissingExtraError: pyarrow is not installed.
    """
    from .arguments import check_path

    check_path(path, "path")
    _pyarrow()
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not a readable Parquet file ({exc})") from None
    check_columns_version(table.schema)
    return table


def read_parquet(path: str | os.PathLike) -> list[Alignment]:
    """Every alignment of a Parquet file written by :func:`write_parquet` (or by a ``ParquetWriter`` with
    :func:`arrow_schema`).

    Raises:
        InputError / MissingExtraError: see :func:`read_table`.
    """
    return alignments_from_arrow(read_table(path))


def read_parquet_row(path: str | os.PathLike, index: int) -> Alignment:
    """One alignment of a Parquet file, reading only the row group that holds it.

    Raises:
        InputError: ``index`` is out of range; see also :func:`read_table`.
    """
    _pyarrow()
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path)
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not a readable Parquet file ({exc})") from None
    check_columns_version(handle.schema_arrow)
    rows = handle.metadata.num_rows
    position = _position(index, rows, "file")
    first = 0
    for group in range(handle.num_row_groups):
        size = handle.metadata.row_group(group).num_rows
        if position < first + size:
            table = handle.read_row_group(group)
            table = table.replace_schema_metadata(handle.schema_arrow.metadata)
            return from_arrow(table, position - first)
        first += size
    raise InputError(f"index {index} is out of range for a file of {rows} rows")  # pragma: no cover
