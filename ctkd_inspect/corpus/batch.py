"""The per-batch function of corpus runs: a batch of texts in, alignment rows and the batch's summary out.

:func:`align_batch` is the one function every backend runs: the local runner calls it in its worker processes,
the Ray backend hands it to Ray Data's ``map_batches``, and a 🤗 ``datasets`` user can pass it to
``Dataset.map(batched=True)`` (``input_columns``/``fn_kwargs``; see its docstring). It is a top-level function
that takes a :class:`~ctkd_inspect.corpus.spec.CorpusSpec` (names and options, picklable), loads the two
tokenizers once per process, and returns rows whose alignment columns are exactly those of
``columns.to_record_batch([ctkd_inspect.align(teacher, student, text, engine, **options), ...])``.

**The span engine's corpus path** does no per-text Python work for the alignment: both sides are tokenized in one
batched call each (:func:`ctkd_inspect.text.tokenize_corpus`), all texts are grouped in one compiled call
(:func:`ctkd_inspect.engines.span.span_groups_corpus`), and the columns, metrics and statistics are computed on the
concatenated arrays. Other engines align text by text through :func:`ctkd_inspect.align` (their alignments are
DP over each text or need model signals). The failure taxonomy (:mod:`ctkd_inspect.failures`) classifies groups
text by text in either case, on light views of the arrays.

**Response statistics** (prompt/response fields; ``response_start`` per text): a *response token* is a
non-special token whose span lies in the response (it starts at or after ``response_start`` and is not empty),
as the distillation losses define their target tokens (``ctkd_inspect.losses.data``); a token that straddles the
boundary is a prompt token. A *response group* is a group with at least one response token on either side; it
counts whole, so a group that straddles the boundary brings its prompt-side tokens with it. The response
alignment rate of a text is its exact 1:1 response groups over the non-special student tokens of its response
groups; with prompt/response fields every statistic of the summary (rates, shapes, length ratios, failures) is
taken over the response groups only. The alignment columns always hold the whole text.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from itertools import chain
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from ..text import Tokenization
from .spec import CorpusSpec, batch_schema
from .summary import SHAPES, CorpusSummary, shape_codes

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

__all__ = ["align_batch", "worker_tokenizers"]

_INT32_MAX = (1 << 31) - 1
_STATE: dict = {}


def _dumps(value) -> str:
    # the encoding of ctkd_inspect.columns (compact, NaN allowed), so the rows equal to_record_batch's
    return json.dumps(value, separators=(",", ":"), allow_nan=True)


def worker_tokenizers(spec: CorpusSpec) -> tuple:
    """The spec's teacher and student tokenizers, loaded once per process (a worker keeps them for every batch).

    Engines that need no model signals get the light Rust tokenizer (it tokenizes identically and loads faster);
    the others the transformers one their signals code expects.

    Raises:
        TokenizerNotFound / TokenizerLoadError: a name cannot be resolved or loaded.
    """
    from ..engines.base import engine_class
    from ..engines.options import uses_signals
    from ..sources import load_tokenizer

    backend = "transformers" if uses_signals(engine_class(spec.engine)) else "rust"
    key = (spec.teacher, spec.student, spec.cache_dir, backend)
    if key not in _STATE:
        _STATE.clear()
        _STATE[key] = (load_tokenizer(spec.teacher, cache_dir=spec.cache_dir, backend=backend),
                       load_tokenizer(spec.student, cache_dir=spec.cache_dir, backend=backend))
    return _STATE[key]


def _input(batch) -> tuple[list[str], np.ndarray, list, np.ndarray]:
    """(texts, index, source_line, response_start with -1 for none) from a pyarrow table/batch or a dict of lists."""
    import pyarrow as pa

    if isinstance(batch, pa.RecordBatch):
        batch = pa.Table.from_batches([batch])
    if isinstance(batch, pa.Table):
        names = batch.column_names

        def column(name):
            return batch.column(name).to_pylist() if name in names else None
    elif isinstance(batch, dict):
        def column(name):
            value = batch.get(name)
            return None if value is None else list(value)
    else:
        raise InputError(f"a batch must be a pyarrow Table or a dict of columns, not {type(batch).__name__}")
    texts = column("text")
    if texts is None:
        raise InputError("the batch has no 'text' column")
    if any(not isinstance(t, str) for t in texts):
        raise InputError("the batch's 'text' column must hold strings (no nulls)")
    n = len(texts)
    index = column("index")
    index = np.arange(n, dtype=np.int64) if index is None else np.asarray(index, dtype=np.int64)
    lines = column("source_line") or [None] * n
    starts = column("response_start")
    response = np.full(n, -1, np.int64) if starts is None else np.asarray(
        [-1 if s is None else int(s) for s in starts], dtype=np.int64)
    return texts, index, lines, response


# ---------------------------------------------------------------------------------------------------------------
# the batch as flat arrays


class _Side:
    """One side of a batch as concatenated arrays: token ``k`` of text ``i`` is at ``bounds[i] + k``."""

    def __init__(self, bounds, starts, ends, special, owner):
        self.bounds = np.asarray(bounds, np.int64)
        self.starts = np.asarray(starts, np.int64)
        self.ends = np.asarray(ends, np.int64)
        self.special = np.asarray(special, bool)
        self.owner = np.asarray(owner, np.int64)  # group index within its text, -1 for none
        self.text_of = np.repeat(np.arange(len(self.bounds) - 1), np.diff(self.bounds))

    def per_text(self, mask: np.ndarray) -> np.ndarray:
        return np.bincount(self.text_of[mask], minlength=len(self.bounds) - 1).astype(np.int64)


class _Facts:
    """Per-group facts of a whole batch, groups numbered across the batch (text by text)."""

    def __init__(self, teacher: _Side, student: _Side, n_groups: np.ndarray):
        self.n_groups = n_groups
        self.base = np.concatenate([[0], np.cumsum(n_groups)]).astype(np.int64)
        total = int(self.base[-1])
        self.text_of = np.repeat(np.arange(len(n_groups)), n_groups)
        self.size, self.member, self.where = {}, {}, {}
        start = np.full(total, np.iinfo(np.int64).max, np.int64)
        end = np.zeros(total, np.int64)
        for name, side in (("teacher", teacher), ("student", student)):
            listed = np.flatnonzero(side.owner >= 0)
            group = side.owner[listed] + self.base[side.text_of[listed]]
            self.where[name] = (listed, group)
            self.size[name] = np.bincount(group, minlength=total).astype(np.int64)
            member = np.full(total, -1, np.int64)
            member[group] = listed  # for groups of one token: that token
            self.member[name] = member
            np.minimum.at(start, group, side.starts[listed])
            np.maximum.at(end, group, side.ends[listed])
        start[start == np.iinfo(np.int64).max] = 0
        self.start, self.end = start, end
        t_size, s_size = self.size["teacher"], self.size["student"]
        self.one = (t_size == 1) & (s_size == 1)
        exact = np.zeros(total, bool)
        ones = np.flatnonzero(self.one)
        ti, sj = self.member["teacher"][ones], self.member["student"][ones]
        exact[ones] = ((teacher.starts[ti] == student.starts[sj]) & (teacher.ends[ti] == student.ends[sj])
                       & (teacher.ends[ti] > teacher.starts[ti]))
        self.exact = exact


def _covered(text_of: np.ndarray, starts: np.ndarray, ends: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Characters of each text covered by at least one of the given ``[start, end)`` spans (clipped to the text),
    per text: ``metrics.covered_characters`` for a whole batch at once."""
    n = len(lengths)
    if not len(text_of):
        return np.zeros(n, np.int64)
    length = lengths[text_of]
    a = np.clip(starts, 0, length)
    b = np.clip(ends, 0, length)
    # lay the texts end to end: spans of different texts cannot overlap, one sweep covers them all
    base = np.concatenate([[0], np.cumsum(lengths)])[:-1][text_of]
    a, b = a + base, b + base
    order = np.argsort(a, kind="stable")
    a, b, owner = a[order], b[order], text_of[order]
    reach = np.maximum.accumulate(b)
    before = np.concatenate([[0], reach[:-1]])
    gained = np.maximum(0, b - np.maximum(a, before))
    return np.bincount(owner, weights=gained, minlength=n).round().astype(np.int64)


def _ratio(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else float(numerator) / float(denominator)


def _metrics(lengths, teacher: _Side, student: _Side, facts: _Facts) -> list[dict]:
    """``ctkd_inspect.metrics.compute_metrics`` of every text of the batch, from the arrays (same keys, order and
    values)."""
    n = len(lengths)
    group_text = facts.text_of
    t_size, s_size = facts.size["teacher"], facts.size["student"]
    exact_count = np.bincount(group_text[facts.exact], minlength=n)
    shapes = np.bincount(group_text * len(SHAPES) + shape_codes(t_size, s_size),
                         minlength=n * len(SHAPES)).reshape(n, len(SHAPES)) if len(group_text) else \
        np.zeros((n, len(SHAPES)), np.int64)
    cover_one = _covered(group_text[facts.one], facts.start[facts.one], facts.end[facts.one], lengths)
    cover_exact = _covered(group_text[facts.exact], facts.start[facts.exact], facts.end[facts.exact], lengths)
    biggest = np.zeros(n, np.int64)
    if len(group_text):
        np.maximum.at(biggest, group_text, t_size + s_size)
    counts = {}
    for name, side, other in (("teacher", teacher, s_size), ("student", student, t_size)):
        listed, group = facts.where[name]
        lonely = listed[other[group] == 0]
        empty = side.ends[lonely] <= side.starts[lonely]
        text_of = side.text_of[lonely]
        counts[name] = {
            "special": side.per_text(side.special),
            "zero-width": np.bincount(text_of[empty], minlength=n),
            "no-partner": np.bincount(text_of[~empty], minlength=n),
            "all": np.diff(side.bounds),
            "non_special": side.per_text(~side.special)}
    rows = []
    lists = {name: {key: value.tolist() for key, value in c.items()} for name, c in counts.items()}
    shapes_list, exact_list = shapes.tolist(), exact_count.tolist()
    one_list, exact_cover = cover_one.tolist(), cover_exact.tolist()
    groups_list, biggest_list, length_list = facts.n_groups.tolist(), biggest.tolist(), lengths.tolist()
    t, s = lists["teacher"], lists["student"]
    for i in range(n):
        rows.append({
            "alignment_rate": _ratio(exact_list[i], s["non_special"][i]),
            "groups": groups_list[i],
            "shapes": dict(zip(SHAPES, shapes_list[i])),
            "exact_groups": exact_list[i],
            "text_coverage_1to1": _ratio(one_list[i], length_list[i]),
            "text_coverage_exact": _ratio(exact_cover[i], length_list[i]),
            "unmatched": {side: {"special": c["special"][i], "zero-width": c["zero-width"][i],
                                 "no-partner": c["no-partner"][i]} for side, c in (("teacher", t), ("student", s))},
            "tokens": {"teacher": {"all": t["all"][i], "non_special": t["non_special"][i]},
                       "student": {"all": s["all"][i], "non_special": s["non_special"][i]}},
            "fertility": _ratio(s["non_special"][i], t["non_special"][i]),
            "max_group_tokens": biggest_list[i],
        })
    return rows


class _VocabularyTable:
    """Per-vocabulary facts the failure taxonomy asks of every token, computed once per worker and tokenizer:
    each id's vocabulary string, the bytes it stands for, its readable piece, and whether its bytes leave a
    character unfinished (the start of a byte cluster)."""

    def __init__(self, tokenizer, scheme: str, continuation_prefix: str):
        import codecs

        from ..text import readable_piece, token_bytes

        strings = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        self.tokens = np.empty(len(strings), object)
        self.tokens[:] = [s if s is not None else "" for s in strings]
        raw = [token_bytes(s, scheme, continuation_prefix) for s in self.tokens.tolist()]
        self.bytes = np.empty(len(raw), object)
        self.bytes[:] = raw
        self.pieces = np.empty(len(raw), object)
        self.pieces[:] = [readable_piece(b) for b in raw]
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        pending = np.zeros(len(raw), bool)
        for k, value in enumerate(raw):
            decoder.reset()
            decoder.decode(value)
            pending[k] = bool(decoder.getstate()[0])
        self.pending = pending


def _vocabulary_table(tokenizer, scheme: str, continuation_prefix: str) -> _VocabularyTable:
    key = ("vocabulary", id(tokenizer), scheme, continuation_prefix)
    table = _STATE.get(key)
    if table is None:
        table = _STATE[key] = _VocabularyTable(tokenizer, scheme, continuation_prefix)
    return table


class _VocabularyTokenization(Tokenization):
    """A :class:`~ctkd_inspect.text.Tokenization` whose token bytes, pieces and byte clusters were looked up in a
    :class:`_VocabularyTable` instead of being decoded token by token (the same values: the tables apply the same
    functions to the same vocabulary strings)."""

    def token_bytes(self) -> list[bytes]:
        return self._raw


def _lookups(corpus, tokens: list[str], tokenizer):
    """(bytes per token, pieces per token, texts with a byte cluster) of a batch from the vocabulary table, or None
    when a token string is not its id's vocabulary string (then the views decode tokens themselves)."""
    table = _vocabulary_table(tokenizer, corpus.profile.scheme, corpus.profile.continuation_prefix)
    ids = corpus.ids
    if len(ids) and (int(ids.max()) >= len(table.tokens) or table.tokens[ids].tolist() != tokens):
        return None
    raw, pieces = table.bytes[ids], table.pieces[ids]
    for k in np.flatnonzero(corpus.special).tolist():  # special tokens stand for their name (Tokenization rules)
        raw[k] = tokens[k].encode("utf-8")
        pieces[k] = tokens[k]
    starts_cluster = table.pending[ids] & ~corpus.special
    owner = np.repeat(np.arange(len(corpus)), np.diff(corpus.bounds))
    clustered = np.bincount(owner[starts_cluster], minlength=len(corpus)) > 0
    return raw.tolist(), pieces.tolist(), clustered


def _view(corpus, i: int, lookups) -> Tokenization:
    tokens = corpus[i]
    if lookups is None:
        return tokens
    raw, pieces, clustered = lookups
    a, b = int(corpus.bounds[i]), int(corpus.bounds[i + 1])
    view = _VocabularyTokenization(**{f.name: getattr(tokens, f.name) for f in fields(Tokenization)})
    view._raw = raw[a:b]
    view._pieces = pieces[a:b]
    if not clustered[i]:
        view._clusters = []  # no token leaves a character unfinished: no byte cluster
    return view


def _list_column(pa, bounds: np.ndarray, values, value_type):
    if bounds[-1] > _INT32_MAX:
        raise InputError("too many tokens in one batch for Arrow list offsets; use smaller shards")
    return pa.ListArray.from_arrays(pa.array(bounds.astype(np.int32), pa.int32()), pa.array(values, value_type))


# ---------------------------------------------------------------------------------------------------------------
# the two paths


def _span_path(pa, spec: CorpusSpec, texts: list[str], teacher_tokenizer, student_tokenizer):
    """The compiled corpus path: (columns, the two sides as arrays, group facts, per-text alignment views)."""
    from ..alignment import SCHEMA_VERSION, Alignment
    from ..engines.span import span_groups_corpus
    from ..text import tokenize_corpus

    n = len(texts)
    corpora = {"teacher": tokenize_corpus(teacher_tokenizer, texts, name=spec.teacher,
                                          add_special_tokens=spec.add_special_tokens),
               "student": tokenize_corpus(student_tokenizer, texts, name=spec.student,
                                          add_special_tokens=spec.add_special_tokens)}
    found = span_groups_corpus(corpora["teacher"], corpora["student"])
    n_groups = np.diff(found.off_at) - 1
    sides = {}
    for name, offsets, indices, index_at in (("teacher", found.t_off, found.t_idx, found.t_at),
                                             ("student", found.s_off, found.s_idx, found.s_at)):
        corpus = corpora[name]
        end = int(found.off_at[-1])
        sizes = np.diff(offsets[:end])
        keep = np.ones(len(sizes), bool)
        keep[found.off_at[1:-1] - 1] = False  # the step from one text's last offset to the next text's first
        sizes = sizes[keep]
        members = int(index_at[-1])
        group = np.repeat(np.arange(len(sizes)), sizes)
        text_of_member = np.repeat(np.arange(n), np.diff(index_at))
        base = np.concatenate([[0], np.cumsum(n_groups)])
        owner = np.full(corpus.n_tokens, -1, np.int64)
        owner[indices[:members] + corpus.bounds[:-1][text_of_member]] = group - base[text_of_member]
        sides[name] = _Side(corpus.bounds, corpus.starts, corpus.ends, corpus.special, owner)

    columns: dict = {"text": pa.array(texts, pa.string()), "engine": pa.array([spec.engine] * n, pa.string())}
    lookups = {}
    for name in ("teacher", "student"):
        corpus, side = corpora[name], sides[name]
        columns[f"{name}_ids"] = _list_column(pa, corpus.bounds, corpus.ids, pa.int64())
        columns[f"{name}_group"] = _list_column(pa, corpus.bounds, side.owner.astype(np.int32), pa.int32())
        columns[f"{name}_name"] = pa.array([corpus.name] * n, pa.string())
        columns[f"{name}_scheme"] = pa.array([corpus.profile.scheme] * n, pa.string())
        columns[f"{name}_continuation_prefix"] = pa.array([corpus.profile.continuation_prefix] * n, pa.string())
        tokens = list(chain.from_iterable(corpus[i].tokens for i in range(n)))
        columns[f"{name}_tokens"] = _list_column(pa, corpus.bounds, tokens, pa.string())
        lookups[name] = _lookups(corpus, tokens, teacher_tokenizer if name == "teacher" else student_tokenizer)
        for key, values in (("starts", corpus.starts), ("ends", corpus.ends)):
            if len(values) and int(values.max()) > _INT32_MAX:
                raise InputError("a character offset beyond 2³¹ does not fit the int32 span columns")
            columns[f"{name}_{key}"] = _list_column(pa, corpus.bounds, values.astype(np.int32), pa.int32())
        columns[f"{name}_special"] = _list_column(pa, corpus.bounds, corpus.special, pa.bool_())
        source = None if corpus.source is None else _dumps(corpus.source)
        columns[f"{name}_source"] = pa.array([source] * n, pa.string())
        columns[f"{name}_pieces"] = pa.nulls(n, pa.list_(pa.string()))  # derived by readers, as to_record_batch
        columns[f"{name}_clusters"] = pa.nulls(n, pa.string())
    lengths = np.fromiter((len(t) for t in texts), np.int64, n)
    facts = _Facts(sides["teacher"], sides["student"], n_groups)
    metrics = _metrics(lengths, sides["teacher"], sides["student"], facts)
    columns["alignment_rate"] = pa.array([m["alignment_rate"] for m in metrics], pa.float64())
    columns["n_groups"] = pa.array(n_groups.astype(np.int32), pa.int32())
    columns["group_cost"] = pa.nulls(n, pa.list_(pa.float64()))
    columns["group_columns"] = pa.nulls(n, pa.string())
    columns["options"] = pa.array([_dumps({"add_special_tokens": spec.add_special_tokens, **spec.options})] * n,
                                  pa.string())
    columns["extra"] = pa.nulls(n, pa.string())
    columns["metrics"] = pa.array([_dumps(m) for m in metrics], pa.string())
    columns["alignment_schema"] = pa.array([SCHEMA_VERSION] * n, pa.string())

    def view(i: int) -> Alignment:
        return Alignment(_view(corpora["teacher"], i, lookups["teacher"]),
                         _view(corpora["student"], i, lookups["student"]), found[i], engine=spec.engine)

    return columns, sides, facts, view


def _line(line) -> str:
    return "" if line is None else f" (line {line} of the data)"


def _engine_path(pa, spec: CorpusSpec, texts: list[str], teacher_tokenizer, student_tokenizer, schema, index,
                 lines):
    """Any engine, text by text through ``ctkd_inspect.align``: (columns, sides, facts, alignment by position)."""
    from ..api import align
    from ..columns import to_record_batch
    from ..errors import CtkdError

    alignments = []
    for position, text in enumerate(texts):
        try:
            alignment = align(teacher_tokenizer, student_tokenizer, text, engine=spec.engine,
                              add_special_tokens=spec.add_special_tokens, **spec.options)
        except CtkdError as exc:  # say which text: the run stops here, its finished shards are kept
            raise type(exc)(f"row {int(index[position])}{_line(lines[position])}: {exc}") from exc
        alignment.teacher.name, alignment.student.name = spec.teacher, spec.student  # as the user named them
        alignments.append(alignment)
    names = _alignment_column_names()
    alignment_fields = [f for f in schema if f.name in names]
    record = to_record_batch(alignments, schema=pa.schema(alignment_fields, metadata=schema.metadata))
    columns = {name: record.column(name) for name in record.schema.names}
    sides = {}
    for name in ("teacher", "student"):
        tokens = [getattr(a, name) for a in alignments]
        lengths = np.fromiter((len(t) for t in tokens), np.int64, len(tokens))
        bounds = np.concatenate([[0], np.cumsum(lengths)])

        def joined(attribute, dtype, tokens=tokens):
            parts = [np.asarray(getattr(t, attribute), dtype) for t in tokens]
            return np.concatenate(parts) if parts else np.zeros(0, dtype)

        owners = [a.group_of(name) for a in alignments]
        owner = np.concatenate(owners) if owners else np.zeros(0, np.int64)
        sides[name] = _Side(bounds, joined("starts", np.int64), joined("ends", np.int64), joined("special", bool),
                            owner)
    n_groups = np.fromiter((len(a.table) for a in alignments), np.int64, len(alignments))
    facts = _Facts(sides["teacher"], sides["student"], n_groups)
    return columns, sides, facts, alignments.__getitem__


_ALIGNMENT_COLUMNS = None  # filled on first use: the names of the columns module's schema


def _alignment_column_names() -> frozenset[str]:
    global _ALIGNMENT_COLUMNS
    if _ALIGNMENT_COLUMNS is None:
        from ..columns import arrow_schema

        _ALIGNMENT_COLUMNS = frozenset(arrow_schema().names)
    return _ALIGNMENT_COLUMNS


# ---------------------------------------------------------------------------------------------------------------
# the per-batch function


def align_batch(batch, spec: CorpusSpec | dict) -> pa.Table:
    """Align a batch of texts and summarise it: the per-batch function of every corpus backend.

    Args:
        batch: a ``pyarrow.Table`` / ``RecordBatch`` (Ray Data's ``batch_format="pyarrow"``) or a dict of column
            lists (``datasets``' batched ``map``) with the columns ``text`` (strings), and optionally ``index``
            (each text's row in the output; default 0, 1, ...), ``source_line`` (its line or row number in the data)
            and ``response_start`` (with prompt/response fields: where the response starts in the text).
        spec: a :class:`~ctkd_inspect.corpus.spec.CorpusSpec` or its ``to_dict()``.

    Returns:
        A ``pyarrow.Table`` with one row per text, in order, of :func:`~ctkd_inspect.corpus.spec.batch_schema`:
        the alignment columns (equal to ``columns.to_record_batch`` of ``ctkd_inspect.align`` for each text), the
        corpus columns, ``index``, and ``batch_summary`` — the batch's
        :class:`~ctkd_inspect.corpus.summary.CorpusSummary` as JSON on the first row (null on the others), so
        summaries travel with the rows through any map framework.

    Raises:
        InputError: a batch without a ``text`` column of strings; an option the engine refuses.
        TokenizerNotFound / TokenizerLoadError: a tokenizer cannot be loaded in this process.
    """
    from ..extras import require

    require("parquet", feature="corpus batches (Arrow)")
    import pyarrow as pa

    spec = CorpusSpec.from_value(spec)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    texts, index, source_line, response_start = _input(batch)
    schema = batch_schema(spec)
    teacher_tokenizer, student_tokenizer = worker_tokenizers(spec)
    n = len(texts)
    if n == 0:
        return schema.empty_table()
    from ..engines.base import engine_class
    from ..engines.span import SpanEngine

    if engine_class(spec.engine) is SpanEngine and not spec.options:
        columns, sides, facts, view = _span_path(pa, spec, texts, teacher_tokenizer, student_tokenizer)
    else:
        columns, sides, facts, view = _engine_path(pa, spec, texts, teacher_tokenizer, student_tokenizer, schema,
                                                   index, source_line)
    summary = _summarise(spec, texts, index, source_line, response_start, sides, facts, view, columns,
                         vocab_size={"teacher": len(teacher_tokenizer), "student": len(student_tokenizer)})
    columns["source_line"] = pa.array(source_line, pa.int64())
    columns["index"] = pa.array(index, pa.int64())
    columns["batch_summary"] = pa.array([summary.to_json(indent=None)] + [None] * (n - 1), pa.string())
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def _summarise(spec, texts, index, source_line, response_start, sides, facts, view, columns, vocab_size):
    """The batch's summary; also fills the response columns of ``columns``."""
    import pyarrow as pa

    from ..failures import classify_groups

    teacher, student = sides["teacher"], sides["student"]
    n = len(texts)
    total_groups = int(facts.base[-1])
    has_response = response_start >= 0
    if spec.response_only or has_response.any():
        # response tokens: non-special, non-empty, starting at or after the response start (see the module doc)
        in_response = np.zeros(total_groups, bool)
        for name, side in (("teacher", teacher), ("student", student)):
            listed, group = facts.where[name]
            start = response_start[side.text_of[listed]]
            hit = (start >= 0) & (side.starts[listed] >= start) & (side.ends[listed] > side.starts[listed])
            in_response[group[hit]] = True
        response_counts = {}
        for name, side in (("teacher", teacher), ("student", student)):
            listed, group = facts.where[name]
            regular = ~side.special[listed]
            counted = listed[in_response[group] & regular]
            response_counts[name] = np.bincount(side.text_of[counted], minlength=n).astype(np.int64)
        response_exact = np.bincount(facts.text_of[facts.exact & in_response], minlength=n).astype(np.int64)
        rate = [None if not has_response[i] or not response_counts["student"][i] else
                float(response_exact[i]) / float(response_counts["student"][i]) for i in range(n)]
        columns["response_start"] = pa.array([int(r) if r >= 0 else None for r in response_start.tolist()],
                                             pa.int64())
        columns["response_alignment_rate"] = pa.array(rate, pa.float64())
        for name in ("teacher", "student"):
            columns[f"response_{name}_tokens"] = pa.array(
                [int(c) if h else None for c, h in zip(response_counts[name].tolist(), has_response.tolist())],
                pa.int64())
    else:
        in_response = None
        for name in ("response_start", "response_alignment_rate", "response_student_tokens",
                     "response_teacher_tokens"):
            columns[name] = pa.nulls(n, pa.float64() if name == "response_alignment_rate" else pa.int64())

    all_tokens = {name: np.diff(side.bounds) for name, side in sides.items()}
    if spec.response_only:
        counted_groups = in_response
        counted = response_counts
        exact = response_exact
        ratio = (response_counts["teacher"], response_counts["student"])
    else:
        counted_groups = np.ones(total_groups, bool)
        counted = {name: side.per_text(~side.special) for name, side in sides.items()}
        exact = np.bincount(facts.text_of[facts.exact], minlength=n).astype(np.int64)
        ratio = (all_tokens["teacher"], all_tokens["student"])
    summary = CorpusSummary(teacher=spec.teacher, student=spec.student, engine=spec.engine,
                            options={"add_special_tokens": spec.add_special_tokens, **spec.options},
                            response_only=spec.response_only, max_examples=spec.max_examples,
                            max_worst=spec.max_worst, vocab_size=vocab_size)
    summary.add_texts(index=index, texts=texts, source_line=source_line, teacher_tokens=all_tokens["teacher"],
                      student_tokens=all_tokens["student"], counted_teacher=counted["teacher"],
                      counted_student=counted["student"], exact=exact, ratio_teacher=ratio[0],
                      ratio_student=ratio[1], group_teacher_sizes=facts.size["teacher"][counted_groups],
                      group_student_sizes=facts.size["student"][counted_groups])
    failures = summary.failures
    failing = np.bincount(facts.text_of[~facts.exact & counted_groups], minlength=n)
    for i in range(n):
        alignment = None
        found = []
        if failing[i]:
            alignment = view(i)
            found = classify_groups(alignment)
            if spec.response_only:
                first = int(facts.base[i])
                found = [f for f in found if counted_groups[first + f.group]]
        if alignment is None:
            # a text without failing groups only adds counts; its unpaired special tokens still matter
            alignment = view(i)
        before = (failures.groups, failures.student_tokens, failures.characters)
        failures.add(alignment, int(index[i]), failures=found)
        if spec.response_only:  # count the response groups, their student tokens and the response's characters
            first, last = int(facts.base[i]), int(facts.base[i + 1])
            failures.groups = before[0] + int(counted_groups[first:last].sum())
            failures.student_tokens = before[1] + int(counted["student"][i])
            start = int(response_start[i])
            failures.characters = before[2] + (len(texts[i]) - start if start >= 0 else 0)
    return summary
