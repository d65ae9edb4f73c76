"""Reading the user's texts: JSONL, plain text, Parquet or a local 🤗 datasets folder, streamed one text at a time.

:func:`read_texts` returns a :class:`TextReader`, an iterator of strings that reads lazily (a corpus larger than
memory streams through it) and keeps a :class:`ReadReport` of what it skipped. Formats, chosen by the path:

- **JSONL** (``.jsonl``, ``.ndjson``, also ``.json`` holding one object per line, any of them ``.gz``): one JSON
  object per line. The text is ``record[field]`` (default ``text``; when ``field`` is not given and records have no
  ``text`` but a ``messages`` list, the messages are used). A chat ``messages`` list (``[{"role", "content"}]``)
  is rendered as ``role: content`` lines. With ``prompt_field``/``response_field`` the text is the rendered
  prompt, ``separator``, the rendered response (e.g. OpenAI evals' ``input``/``ideal``). A ``.json`` file holding
  one JSON array of such objects (or of strings) is read too.
- **Plain text** (any other suffix, also ``.gz``): one text per line, or one per paragraph (blocks separated by
  blank lines) with ``split_paragraphs=True``. Invalid UTF-8 is replaced by U+FFFD and counted.
- **Parquet** (``.parquet``; the ``parquet`` extra): the ``field`` column, read in record batches.
- **A dataset folder** written by ``datasets.Dataset.save_to_disk`` (the ``corpus`` extra): the ``field`` column
  of the dataset, or of ``split`` for a ``DatasetDict`` (default ``train`` when there is one).

Bad input: a JSONL line that is not valid JSON, not an object, or whose text is not a string is skipped and
counted (the first line numbers are kept), or raises with ``strict=True``; a ``field`` the *first* record lacks is
a usage error naming the fields found (a later record without it is skipped like a malformed line); empty texts
are skipped and counted; with ``max_text_bytes`` a longer text is skipped and counted too (or raises with
``strict=True``). Every problem raises :class:`~ctkd_inspect.errors.InputError` (exit 2 in the CLI).

:meth:`TextReader.records` yields the same texts as :class:`TextRecord` objects, with the line (or row) number
each came from and, with prompt/response fields, the offset where the response starts (corpus runs keep both).
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError

__all__ = ["ReadReport", "TextReader", "TextRecord", "read_texts", "render_messages"]

_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
_KEEP_LINE_NUMBERS = 5


@dataclass
class ReadReport:
    """What a :class:`TextReader` read and skipped so far.

    Attributes:
        texts: texts yielded.
        records: records (lines, rows) seen, including skipped ones.
        skipped: records skipped as malformed (invalid JSON, not an object, a text that is not a string, a
            record without the field).
        skipped_lines: the first line numbers (1-based; row numbers for Parquet and datasets) of skipped records.
        empty: empty texts skipped.
        replaced_lines: text lines with invalid UTF-8 (replaced by U+FFFD).
        reasons: skipped records by reason.
        too_long: texts skipped for being longer than the reader's ``max_text_bytes`` (UTF-8 bytes).
        too_long_lines: the first line (row) numbers of those texts.
        max_text_bytes: the reader's limit, when it has one.
    """

    texts: int = 0
    records: int = 0
    skipped: int = 0
    skipped_lines: list[int] = field(default_factory=list)
    empty: int = 0
    replaced_lines: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    too_long: int = 0
    too_long_lines: list[int] = field(default_factory=list)
    max_text_bytes: int | None = None

    def skip(self, line: int, reason: str) -> None:
        self.skipped += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        if len(self.skipped_lines) < _KEEP_LINE_NUMBERS:
            self.skipped_lines.append(line)

    def summary(self) -> str | None:
        """One sentence for people about what was skipped, or ``None`` when nothing was."""
        parts = []
        if self.skipped:
            lines = ", ".join(str(n) for n in self.skipped_lines)
            more = ", ..." if self.skipped > len(self.skipped_lines) else ""
            why = "; ".join(f"{reason}: {count}" for reason, count in self.reasons.items())
            parts.append(f"skipped {self.skipped} malformed line{'s' if self.skipped != 1 else ''} "
                         f"(line{'s' if self.skipped != 1 else ''} {lines}{more}; {why})")
        if self.empty:
            parts.append(f"skipped {self.empty} empty text{'s' if self.empty != 1 else ''}")
        if self.too_long:
            lines = ", ".join(str(n) for n in self.too_long_lines)
            more = ", ..." if self.too_long > len(self.too_long_lines) else ""
            parts.append(f"skipped {self.too_long} text{'s' if self.too_long != 1 else ''} longer than "
                         f"{self.max_text_bytes:,} bytes (line{'s' if self.too_long != 1 else ''} {lines}{more}; "
                         "raise --max-text-bytes to align them)")
        if self.replaced_lines:
            parts.append(f"replaced invalid UTF-8 in {self.replaced_lines} line"
                         f"{'s' if self.replaced_lines != 1 else ''}")
        return "; ".join(parts) or None

    def to_dict(self) -> dict:
        return {"texts": self.texts, "records": self.records, "skipped": self.skipped,
                "skipped_lines": list(self.skipped_lines), "empty": self.empty,
                "replaced_lines": self.replaced_lines, "reasons": dict(self.reasons), "too_long": self.too_long,
                "too_long_lines": list(self.too_long_lines), "max_text_bytes": self.max_text_bytes}


@dataclass(frozen=True)
class TextRecord:
    """One text and where it came from (:meth:`TextReader.records`).

    Attributes:
        text: the text; with prompt/response fields the rendered prompt, the separator and the rendered response.
        number: the record's 1-based line number (JSONL; plain text: the line, or a paragraph's first line), item
            number (JSON arrays) or row number (Parquet, datasets): the numbers skipped records are reported by.
        response_start: with prompt/response fields, the character offset in ``text`` where the response starts
            (right after the separator, which ends the prompt); ``None`` otherwise.
    """

    text: str
    number: int
    response_start: int | None = None


def render_messages(messages: list) -> str:
    """A chat ``messages`` list as ``role: content`` lines.

    Content that is a list of parts (``[{"type": "text", "text": ...}]``) contributes its text parts.

    Raises:
        ValueError: ``messages`` is not a list of objects with a string ``role`` and text content.
    """
    lines = []
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ValueError("a message is not an object with a string 'role'")
        content = message.get("content", "")
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise ValueError("a message's content is not text")
        lines.append(f"{message['role']}: {content}")
    return "\n".join(lines)


def _render(value) -> str:
    """A record value as text: a string as is, a messages list rendered; ValueError otherwise."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and (not value or isinstance(value[0], dict)):
        return render_messages(value)
    raise ValueError(f"the value is a {type(value).__name__}, not text or a messages list")


def _check_reader_arguments(path, field, format, split_paragraphs, strict, limit, prompt_field, response_field,
                            separator, split, max_text_bytes) -> None:
    """Wrong argument types (Python callers only: the CLI passes strings) fail naming the keyword."""
    import numbers

    from .arguments import check_bool, check_path, check_str, type_name
    from .errors import InputTypeError

    check_path(path, "path")
    for name, value in (("field", field), ("format", format), ("prompt_field", prompt_field),
                        ("response_field", response_field), ("split", split)):
        if value is not None:
            check_str(value, name)
    check_str(separator, "separator")
    check_bool(split_paragraphs, "split_paragraphs")
    check_bool(strict, "strict")
    for name, value in (("limit", limit), ("max_text_bytes", max_text_bytes)):
        # the value itself (at least 1) is checked by the reader with its own message
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
            raise InputTypeError(f"{name} must be an integer, got {type_name(value)}")


class TextReader:
    """An iterator over the texts of a file or folder; see :func:`read_texts` and the module docstring.

    Iterating twice reads the file twice (the report then counts the second pass).

    Attributes:
        path: the path read.
        format: ``jsonl``, ``json``, ``text``, ``parquet`` or ``dataset``.
        report: the :class:`ReadReport`, updated while iterating.
    """

    def __init__(self, path: str | Path, *, field: str | None = None, format: str | None = None,
                 split_paragraphs: bool = False, strict: bool = False, limit: int | None = None,
                 prompt_field: str | None = None, response_field: str | None = None, separator: str = "\n",
                 split: str | None = None, option: str = "--data", field_option: str = "--field",
                 max_text_bytes: int | None = None):
        _check_reader_arguments(path, field, format, split_paragraphs, strict, limit, prompt_field, response_field,
                                separator, split, max_text_bytes)
        self.path = Path(path).expanduser()
        self.max_text_bytes = max_text_bytes
        self.field = field
        self.split_paragraphs = split_paragraphs
        self.strict = strict
        self.limit = limit
        self.prompt_field, self.response_field, self.separator = prompt_field, response_field, separator
        self.split = split
        self.option, self.field_option = option, field_option
        if limit is not None and limit < 1:
            raise InputError(f"the text limit must be at least 1, got {limit}")
        if max_text_bytes is not None and max_text_bytes < 1:
            raise InputError(f"the text size limit must be at least 1 byte, got {max_text_bytes}")
        if (prompt_field is None) != (response_field is None):
            raise InputError("give both prompt_field and response_field (--prompt-field, --response-field), or "
                             "neither")
        if prompt_field is not None and field is not None:
            raise InputError(f"give either {field_option} or the prompt and response fields, not both")
        if not self.path.exists():
            raise InputError(f"{option} {path}: no such file or folder")
        self.format = format or self._detect()
        if self.format == "folder":
            raise InputError(f"{option} {path} is a folder but not a saved dataset (no dataset_info.json, "
                             "dataset_dict.json or state.json); name a file, or a folder written by save_to_disk")
        if self.format not in ("jsonl", "json", "text", "parquet", "dataset"):
            raise InputError(f"unknown data format {self.format!r}: use jsonl, json, text, parquet or dataset")
        if self.format == "dataset" and not self.path.is_dir():
            raise InputError(f"{option} {path}: a dataset must be a folder written by datasets' save_to_disk")
        if self.format != "dataset" and self.path.is_dir():
            raise InputError(f"{option} {path} is a folder; the {self.format} format reads a file")
        if self.format == "text" and (field is not None or prompt_field is not None):
            raise InputError(f"{option} {path} is read as plain text (one text per line), which has no fields; "
                             f"drop {field_option}, or give a .jsonl/.parquet file")
        self.report = ReadReport()

    # -- format detection ---------------------------------------------------------------------------------

    def _detect(self) -> str:
        path = self.path
        if path.is_dir():
            if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists() \
                    or (path / "state.json").exists():
                return "dataset"
            return "folder"
        suffixes = [s.lower() for s in path.suffixes]
        if suffixes and suffixes[-1] == ".gz":
            suffixes = suffixes[:-1]
        last = suffixes[-1] if suffixes else ""
        if last == ".parquet":
            return "parquet"
        if last in _JSONL_SUFFIXES:
            if last == ".json" and self._starts_with_array():
                return "json"
            return "jsonl"
        return "text"

    def _open(self):
        """The file as a binary stream, gunzipped when its name ends in ``.gz``."""
        if self.path.suffix.lower() == ".gz":
            return gzip.open(self.path, "rb")
        return open(self.path, "rb")  # the callers' with-blocks close it

    def _starts_with_array(self) -> bool:
        try:
            with self._open() as handle:
                head = handle.read(4096).lstrip()
        except (OSError, EOFError) as exc:
            raise self._unreadable(exc) from None
        return head.startswith(b"[")

    def _unreadable(self, exc: BaseException) -> InputError:
        """A file that cannot be read as it claims to be (a damaged or mislabelled ``.gz``, an I/O error)."""
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return InputError(f"{self.option} {self.path}: cannot be read ({reason}); check that the file is complete "
                          "and of the type its name says")

    # -- iteration ----------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[str]:
        records = self.records()
        try:
            for record in records:
                yield record.text
        finally:
            records.close()

    def _guarded(self, source: Iterator[TextRecord]) -> Iterator[TextRecord]:
        try:
            yield from source
        except (OSError, EOFError) as exc:  # gzip raises BadGzipFile (an OSError) or EOFError for damaged files
            raise self._unreadable(exc) from None
        finally:
            source.close()

    def records(self) -> Iterator[TextRecord]:
        """The texts as :class:`TextRecord` objects (with their line or row numbers and, with prompt/response
        fields, where the response starts); the same texts, skips, limit and report as iterating the reader.

        A text longer than ``max_text_bytes`` UTF-8 bytes is skipped and counted (``report.too_long``), or raises
        :class:`~ctkd_inspect.errors.InputError` with ``strict``.
        """
        self.report = ReadReport(max_text_bytes=self.max_text_bytes)
        source = {"jsonl": self._jsonl, "json": self._json_array, "text": self._text_lines,
                  "parquet": self._parquet, "dataset": self._dataset}[self.format]()
        limit = self.max_text_bytes
        source = self._guarded(source)
        try:
            for record in source:
                text = record.text
                if not text:
                    self.report.empty += 1
                    continue
                # a str of n code points is at most 4n UTF-8 bytes: most texts need no encoding to be checked
                if limit is not None and len(text) * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit:
                    self._too_long(record.number, len(text.encode("utf-8", "surrogatepass")))
                    continue
                self.report.texts += 1
                yield record
                if self.limit is not None and self.report.texts >= self.limit:
                    return
        finally:
            source.close()  # closes the file now, also when the caller stops early

    def _too_long(self, number: int, size: int) -> None:
        if self.strict:
            raise InputError(f"{self.option} {self.path}, line {number}: the text is {size:,} bytes, longer than "
                             f"--max-text-bytes {self.max_text_bytes:,}; raise --max-text-bytes to align it "
                             "(without --strict such texts are skipped and counted)")
        self.report.too_long += 1
        if len(self.report.too_long_lines) < _KEEP_LINE_NUMBERS:
            self.report.too_long_lines.append(number)

    def _fields_of(self, record: dict, number: int, first: bool) -> TextRecord | None:
        """The text of one record, or None (skipped) — the first record decides whether the field exists."""
        try:
            if self.prompt_field is not None:
                missing = [f for f in (self.prompt_field, self.response_field) if f not in record]
                if missing:
                    raise KeyError(missing[0])
                prompt = _render(record[self.prompt_field]) + self.separator
                return TextRecord(prompt + _render(record[self.response_field]), number, len(prompt))
            name = self.field
            if name is None:
                name = "text" if "text" in record or "messages" not in record else "messages"
            if name not in record:
                raise KeyError(name)
            return TextRecord(_render(record[name]), number)
        except KeyError as exc:
            wanted = exc.args[0]
            if first:
                found = ", ".join(repr(k) for k in record) or "none"
                option = self.field_option if self.prompt_field is None else "--prompt-field/--response-field"
                raise InputError(f"{self.option} {self.path}: the records have no field {wanted!r} (fields "
                                 f"found: {found}); choose one with {option}") from None
            return self._bad(number, f"no field {wanted!r}")
        except ValueError:
            return self._bad(number, "not text")

    def _bad(self, number: int, reason: str) -> None:
        if self.strict:
            raise InputError(f"{self.option} {self.path}, line {number}: {reason} (without --strict such lines "
                             "are skipped and counted)")
        self.report.skip(number, reason)
        return None

    def _jsonl(self) -> Iterator[TextRecord]:
        first = True
        with self._open() as raw:
            for number, line in enumerate(raw, start=1):
                self.report.records += 1
                if not line.strip():
                    self.report.records -= 1  # blank lines are not records
                    continue
                try:
                    record = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    self._bad(number, "not valid JSON")
                    continue
                if not isinstance(record, dict):
                    self._bad(number, "not a JSON object")
                    continue
                text = self._fields_of(record, number, first)
                first = False
                if text is not None:
                    yield text

    def _json_array(self) -> Iterator[TextRecord]:
        with self._open() as raw:
            try:
                items = json.load(io.TextIOWrapper(raw, encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InputError(f"{self.option} {self.path}: not valid JSON ({exc})") from None
        if not isinstance(items, list):
            raise InputError(f"{self.option} {self.path}: a .json file must hold an array of objects or strings, "
                             "or one object per line")
        first = True
        for number, item in enumerate(items, start=1):
            self.report.records += 1
            if isinstance(item, str) and self.field is None and self.prompt_field is None:
                yield TextRecord(item, number)
                continue
            if not isinstance(item, dict):
                self._bad(number, "not a JSON object")
                continue
            text = self._fields_of(item, number, first)
            first = False
            if text is not None:
                yield text

    def _text_lines(self) -> Iterator[TextRecord]:
        with self._open() as raw:
            if self.split_paragraphs:
                paragraph: list[str] = []
                first_line = 0
                for number, line in enumerate(raw, start=1):
                    text = self._decode_line(line)
                    if text.strip():
                        if not paragraph:
                            first_line = number
                        paragraph.append(text)
                    elif paragraph:
                        self.report.records += 1
                        yield TextRecord("".join(paragraph).rstrip("\r\n"), first_line)
                        paragraph = []
                if paragraph:
                    self.report.records += 1
                    yield TextRecord("".join(paragraph).rstrip("\r\n"), first_line)
                return
            for number, line in enumerate(raw, start=1):
                self.report.records += 1
                yield TextRecord(self._decode_line(line).rstrip("\r\n"), number)

    def _decode_line(self, line: bytes) -> str:
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError:
            self.report.replaced_lines += 1
            return line.decode("utf-8", "replace")

    def _column_name(self, names: list[str]) -> str:
        if self.prompt_field is not None:
            raise InputError(f"{self.option} {self.path}: prompt/response fields are read from JSONL; for "
                             f"{self.format} data give one text column with {self.field_option}")
        name = self.field or ("text" if "text" in names or "messages" not in names else "messages")
        if name not in names:
            found = ", ".join(repr(n) for n in names) or "none"
            raise InputError(f"{self.option} {self.path}: no column {name!r} (columns found: {found}); choose one "
                             f"with {self.field_option}")
        return name

    def _rows(self, values) -> Iterator[TextRecord]:
        for value in values:
            self.report.records += 1
            number = self.report.records
            if value is None:
                self._bad(number, "no value")
                continue
            try:
                text = _render(value)
            except ValueError:
                self._bad(number, "not text")
                continue
            yield TextRecord(text, number)

    def _parquet(self) -> Iterator[TextRecord]:
        from .extras import require

        require("parquet", feature=f"reading Parquet data ({self.option})")
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(self.path)
        except Exception as exc:  # pyarrow raises its own error types for corrupt files
            raise InputError(f"{self.option} {self.path}: not a readable Parquet file ({exc})") from None
        name = self._column_name(parquet.schema_arrow.names)
        for batch in parquet.iter_batches(columns=[name], batch_size=1024):
            yield from self._rows(batch.column(0).to_pylist())

    def _dataset(self) -> Iterator[TextRecord]:
        from .extras import require

        require("corpus", feature=f"reading a dataset folder ({self.option})")
        import datasets

        try:
            loaded = datasets.load_from_disk(str(self.path))
        except Exception as exc:  # datasets raises FileNotFoundError or its own errors for other folders
            raise InputError(f"{self.option} {self.path}: not a dataset saved with save_to_disk ({exc})") from None
        if isinstance(loaded, datasets.DatasetDict):
            splits = list(loaded)
            split = self.split or ("train" if "train" in loaded else None)
            if split is None or split not in loaded:
                raise InputError(f"{self.option} {self.path} holds the splits {', '.join(splits)}; choose one with "
                                 "--split")
            loaded = loaded[split]
        name = self._column_name(list(loaded.column_names))
        for start in range(0, len(loaded), 1024):
            yield from self._rows(loaded[start:start + 1024][name])


def read_texts(path: str | Path, *, field: str | None = None, format: str | None = None,
               split_paragraphs: bool = False, strict: bool = False, limit: int | None = None,
               prompt_field: str | None = None, response_field: str | None = None, separator: str = "\n",
               split: str | None = None, max_text_bytes: int | None = None) -> TextReader:
    """Open a data file or dataset folder for reading texts (see the module docstring for the formats).

    Args:
        path: a ``.jsonl``/``.ndjson``/``.json`` file, a plain text file, a ``.parquet`` file (any of them may
            be gzipped, except Parquet), or a folder saved by ``datasets``.
        field: the record field or column holding the text (default ``text``, falling back to ``messages``).
        format: force a format (``jsonl``, ``json``, ``text``, ``parquet``, ``dataset``) instead of the suffix.
        split_paragraphs: plain text: one text per paragraph instead of per line.
        strict: raise on the first malformed record instead of skipping it.
        limit: stop after this many texts.
        prompt_field, response_field, separator: build each text from two fields (JSONL and JSON arrays).
        split: the split of a ``DatasetDict`` folder.
        max_text_bytes: skip (and count) texts longer than this many UTF-8 bytes; raise with ``strict``.

    Returns:
        A :class:`TextReader`: iterate it for the texts; its ``report`` says what was skipped.

    Raises:
        InputError: the path does not exist, the options contradict each other, or (while iterating) the first
            record lacks the field, a file is not readable in its format, or ``strict`` meets a malformed record.
        MissingExtraError: Parquet without pyarrow, a dataset folder without datasets.
    """
    return TextReader(path, field=field, format=format, split_paragraphs=split_paragraphs, strict=strict,
                      limit=limit, prompt_field=prompt_field, response_field=response_field, separator=separator,
                      split=split, max_text_bytes=max_text_bytes)
