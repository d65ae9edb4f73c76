"""Training data of a distillation run: records → (prompt, response) pairs → paired examples, the held-out split,
and the seeded, resumable order in which examples are visited.

**Records.** A JSONL/JSON file (optionally ``.gz``), a Parquet file or a folder written by ``datasets``'
``save_to_disk`` (the formats and the format detection of :mod:`ctkd_inspect.data`'s reader, whose malformed-line
accounting is reused). A record is used in one of two forms:

- **prompt/response** (``prompt_field``, ``response_field``): the text is ``prompt + response`` verbatim (put the
  separating whitespace at the start of the response: a token that straddles the boundary belongs to the prompt),
  or, with ``prompt_response_as_chat``, a one-turn chat (user prompt, assistant response) rendered by the chat
  template. A prompt that is itself a messages list (OpenAI evals' ``input``) is a chat whose answer is the
  response. A response given as a list (several acceptable answers) uses the first.
- **chat** (``messages_field``): ``[{"role", "content"}, ...]``; the last message is the response and must be the
  assistant's.

**Chat templates.** Both tokenizers must cut the *same* text (the alignments pair characters), so a chat is rendered
once: with the student tokenizer's chat template (``chat_template: auto`` when it has one, or ``student``), the
teacher's (``teacher``), or the plain template of :func:`ctkd_inspect.losses.format_chat` (``plain``, and ``auto``
when the student has no template): ``"role: content"`` lines, ``"assistant:"``, then the response after a space.
With a tokenizer's template the prompt is the template applied to all messages but the last with the generation
prompt, and the response is the rest of the template applied to all messages; a trailing end-of-sequence token
string (SmolLM2's ``<|im_end|>``) is dropped from the response, because every side appends its own EOS token.

**Bad input.** Records without the fields, with a chat whose last message is not the assistant's, or with
non-text values are skipped and counted (the first record decides whether the fields exist: a missing field there
is an error naming the fields found); a prompt that leaves no room for a response token within ``max_length`` is
skipped and counted; responses longer than ``max_length`` are cut at one character for both sides
(:class:`~ctkd_inspect.losses.PairBuilder`) and counted. :meth:`DataReport.notes` says all of it.

**Order.** :class:`EpochSampler` maps a global example position ``p`` to an example: position ``p`` is item ``p mod
n`` of epoch ``p // n``'s permutation, seeded by ``(seed, epoch)``. A run's data position is the number of examples
it has consumed, so resuming at any step continues with exactly the examples the uninterrupted run would have
used; :func:`step_indices` spreads one optimizer step over processes and micro-batches so that the union of a step's
examples does not depend on the number of processes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import ReadReport, TextReader
from ..errors import InputError

__all__ = ["DataReport", "EpochSampler", "build_examples", "examples_fingerprint", "load_pairs", "read_records",
           "render_chat", "step_indices"]


@dataclass
class DataReport:
    """What happened to the records of the training (and held-out) data.

    Attributes:
        records: records read (training data; with ``eval_data`` also the held-out file's).
        pairs: records that became a (prompt, response) pair.
        skipped: records skipped, by reason.
        skipped_lines: the first line (row) numbers of skipped records.
        truncated: examples whose response was cut at ``max_length`` (both sides at one character).
        too_long_prompts: examples dropped because their prompt leaves no room for a response token.
        empty_responses: examples with an empty response (trained on the EOS token alone).
        train, heldout: examples in each set.
        template: the chat template used for chats (``student``, ``teacher``, ``plain``, or ``None``: no chat).
        max_length: the length limit applied.
    """

    records: int = 0
    pairs: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_lines: list[int] = field(default_factory=list)
    truncated: int = 0
    too_long_prompts: int = 0
    empty_responses: int = 0
    train: int = 0
    heldout: int = 0
    template: str | None = None
    max_length: int | None = None

    def skip(self, number: int, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if len(self.skipped_lines) < 5:
            self.skipped_lines.append(number)

    def absorb(self, report: ReadReport) -> None:
        """Add the reader's malformed-line counts."""
        for reason, count in report.reasons.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + count
        for number in report.skipped_lines:
            if len(self.skipped_lines) < 5:
                self.skipped_lines.append(number)
        if report.empty:
            self.skipped["empty text"] = self.skipped.get("empty text", 0) + report.empty

    def notes(self) -> list[str]:
        """Sentences for people about what was skipped or cut (empty when nothing was)."""
        out = []
        if self.skipped:
            total = sum(self.skipped.values())
            why = "; ".join(f"{reason}: {count}" for reason, count in self.skipped.items())
            lines = ", ".join(str(n) for n in self.skipped_lines)
            out.append(f"skipped {total} record{'s' if total != 1 else ''} ({why}; first at line"
                       f"{'s' if len(self.skipped_lines) != 1 else ''} {lines})")
        if self.truncated:
            out.append(f"{self.truncated} example{'s' if self.truncated != 1 else ''} longer than max_length="
                       f"{self.max_length} tokens: the response was cut at the same character for both tokenizers "
                       "(no EOS after a cut response)")
        if self.too_long_prompts:
            out.append(f"dropped {self.too_long_prompts} example{'s' if self.too_long_prompts != 1 else ''} whose "
                       f"prompt alone fills max_length={self.max_length} tokens")
        if self.empty_responses:
            out.append(f"{self.empty_responses} example{'s' if self.empty_responses != 1 else ''} with an empty "
                       "response (trained on the end-of-sequence token alone)")
        return out

    def to_dict(self) -> dict:
        return {"records": self.records, "pairs": self.pairs, "skipped": dict(self.skipped),
                "skipped_lines": list(self.skipped_lines), "truncated": self.truncated,
                "too_long_prompts": self.too_long_prompts, "empty_responses": self.empty_responses,
                "train": self.train, "heldout": self.heldout, "template": self.template,
                "max_length": self.max_length}


# ---------------------------------------------------------------------------------------------------------------
# records


def read_records(path: str | Path, *, split: str | None = None, limit: int | None = None,
                 option: str = "data") -> tuple[Iterator[tuple[int, dict]], ReadReport]:
    """The raw records of a data file or dataset folder as ``(line or row number, dict)``, lazily.

    Formats and their detection are those of :class:`ctkd_inspect.data.TextReader` (JSONL, a JSON array, Parquet,
    a ``save_to_disk`` folder; ``.gz`` for JSON files); lines that are not JSON objects are skipped and counted in
    the returned :class:`~ctkd_inspect.data.ReadReport`.

    Raises:
        InputError: the path does not exist or is plain text (which has no fields); a file not readable in its
            format.
        MissingExtraError: Parquet without pyarrow, a dataset folder without datasets.
    """
    reader = TextReader(path, split=split, option=option)
    if reader.format == "text":
        raise InputError(f"{option} {path} is read as plain text, which has no prompt/response fields: give a "
                         ".jsonl/.json/.parquet file or a dataset folder")
    report = reader.report

    def jsonl():
        import json

        with reader._open() as raw:
            for number, line in enumerate(raw, start=1):
                if not line.strip():
                    continue
                report.records += 1
                try:
                    record = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    report.skip(number, "not valid JSON")
                    continue
                if not isinstance(record, dict):
                    report.skip(number, "not a JSON object")
                    continue
                yield number, record

    def json_array():
        import io
        import json

        with reader._open() as raw:
            try:
                items = json.load(io.TextIOWrapper(raw, encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InputError(f"{option} {path}: not valid JSON ({exc})") from None
        if not isinstance(items, list):
            raise InputError(f"{option} {path}: a .json file must hold an array of objects, or one object per line")
        for number, item in enumerate(items, start=1):
            report.records += 1
            if not isinstance(item, dict):
                report.skip(number, "not a JSON object")
                continue
            yield number, item

    def parquet():
        from ..extras import require

        require("parquet", f"reading Parquet data ({option})")
        import pyarrow.parquet as pq

        try:
            table = pq.ParquetFile(reader.path)
        except Exception as exc:  # pyarrow's own error types
            raise InputError(f"{option} {path}: not a readable Parquet file ({exc})") from None
        number = 0
        for batch in table.iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                number += 1
                report.records += 1
                yield number, row

    def dataset():
        from ..extras import require

        require("corpus", f"reading a dataset folder ({option})")
        import datasets

        try:
            loaded = datasets.load_from_disk(str(reader.path))
        except Exception as exc:  # datasets raises FileNotFoundError or its own errors
            raise InputError(f"{option} {path}: not a dataset saved with save_to_disk ({exc})") from None
        if isinstance(loaded, datasets.DatasetDict):
            chosen = split or ("train" if "train" in loaded else None)
            if chosen is None or chosen not in loaded:
                raise InputError(f"{option} {path} holds the splits {', '.join(loaded)}; choose one with the "
                                 "split key (--split)")
            loaded = loaded[chosen]
        for number, row in enumerate(loaded, start=1):
            report.records += 1
            yield number, dict(row)

    source = {"jsonl": jsonl, "json": json_array, "parquet": parquet, "dataset": dataset}[reader.format]()

    def limited():
        for count, item in enumerate(source, start=1):
            yield item
            if limit is not None and count >= limit:
                return

    return limited(), report


def _text(value, what: str) -> str:
    """A record value as text (content parts joined, the first of several acceptable answers); ValueError."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value[0]
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):  # content parts
        return "".join(str(part.get("text", "")) for part in value if part.get("type", "text") == "text")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"the {what} is not text")


def _messages(value) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise ValueError("the chat is not a non-empty list of messages")
    out = []
    for message in value:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) or "content" not in message:
            raise ValueError("a chat message lacks a role or content")
        out.append({"role": message["role"], "content": _text(message["content"] or "", "message content")})
    return out


def render_chat(messages: Sequence[dict], tokenizer=None) -> tuple[str, str]:
    """One chat as a (prompt, response) pair (see the module docstring).

    Args:
        messages: ``[{"role", "content"}, ...]``; the last message is the assistant's response.
        tokenizer: the tokenizer whose chat template renders the chat; ``None``: the plain template.

    Raises:
        ValueError: the last message is not the assistant's.
    """
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("the last chat message is not the assistant's")
    if tokenizer is None:
        from ..losses import format_chat

        return format_chat(messages)
    prompt = tokenizer.apply_chat_template(list(messages[:-1]), tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(list(messages), tokenize=False)
    if not full.startswith(prompt):
        # a template that renders the history differently once the answer follows: keep its own prompt and
        # answer with the content alone
        return prompt, messages[-1]["content"]
    response = full[len(prompt):]
    eos = getattr(tokenizer, "eos_token", None)
    stripped = response.rstrip()
    if eos and stripped.endswith(eos):  # each side appends its own EOS token
        response = stripped[:-len(eos)]
    return prompt, response


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def choose_template(setting: str, student, teacher) -> tuple[str, object | None]:
    """The chat template a run uses: ``(name, tokenizer or None)`` for ``auto``/``student``/``teacher``/``plain``.

    Raises:
        InputError: ``student`` or ``teacher`` names a tokenizer without a chat template.
    """
    if setting == "plain" or (setting == "auto" and not has_chat_template(student)):
        return "plain", None
    if setting in ("auto", "student"):
        if not has_chat_template(student):
            raise InputError("chat_template: student, but the student tokenizer has no chat template; use auto or "
                             "plain")
        return "student", student
    if not has_chat_template(teacher):
        raise InputError("chat_template: teacher, but the teacher tokenizer has no chat template; use auto or plain")
    return "teacher", teacher


def record_pair(record: dict, *, prompt_field: str, response_field: str, messages_field: str, as_chat: bool,
                template) -> tuple[str, str]:
    """The (prompt, response) of one record (see the module docstring); ``KeyError`` naming a missing field,
    ``ValueError`` for values that cannot be used."""
    if prompt_field in record:
        if response_field not in record:
            raise KeyError(response_field)
        prompt, response = record[prompt_field], _text(record[response_field], "response")
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], dict):
            return render_chat([*_messages(prompt), {"role": "assistant", "content": response}], template)
        prompt = _text(prompt, "prompt")
        if as_chat:
            return render_chat([{"role": "user", "content": prompt}, {"role": "assistant", "content": response}],
                               template)
        return prompt, response
    if messages_field in record:
        return render_chat(_messages(record[messages_field]), template)
    raise KeyError(prompt_field)


def _pairs_of(path: str, *, option: str, config, template, report: DataReport,
              limit: int | None = None) -> list[tuple[str, str]]:
    records, read_report = read_records(path, split=config.split, limit=limit, option=option)
    pairs = []
    first = True
    for number, record in records:
        try:
            pair = record_pair(record, prompt_field=config.prompt_field, response_field=config.response_field,
                               messages_field=config.messages_field, as_chat=config.prompt_response_as_chat,
                               template=template)
        except KeyError as exc:
            if first:
                found = ", ".join(repr(k) for k in record) or "none"
                raise InputError(f"{option} {path}: the records have no field {exc.args[0]!r} (fields found: "
                                 f"{found}); name the fields with prompt_field/response_field or messages_field"
                                 ) from None
            report.skip(number, f"no field {exc.args[0]!r}")
            continue
        except ValueError as exc:
            report.skip(number, str(exc).removeprefix("the "))
            continue
        finally:
            first = False
        if not pair[0] and not pair[1]:
            report.skip(number, "empty text")
            continue
        pairs.append(pair)
    report.records += read_report.records
    report.absorb(read_report)
    return pairs


def load_pairs(config, student_tokenizer, teacher_tokenizer) -> tuple[list[tuple[str, str]],
                                                                        list[tuple[str, str]], DataReport]:
    """The training and held-out (prompt, response) pairs of a run's config (``data``, ``eval_data``,
    ``eval_size``, fields, template, ``seed``, ``max_examples``) and the report.

    The held-out set is ``eval_data`` when given, else ``eval_size`` pairs drawn with ``seed`` (the rest, in file
    order, are the training pairs).

    Raises:
        InputError: unreadable data, a first record without the fields, no usable pair, or a held-out split that
            leaves nothing to train on.
    """
    report = DataReport(max_length=config.max_length)
    name, template = choose_template(config.chat_template, student_tokenizer, teacher_tokenizer)
    report.template = name
    pairs = _pairs_of(config.data, option="data", config=config, template=template, report=report,
                      limit=config.max_examples)
    if not pairs:
        raise InputError(f"data {config.data}: no usable records ({'; '.join(report.notes()) or 'the file is empty'})")
    if config.eval_data:
        heldout = _pairs_of(config.eval_data, option="eval_data", config=config, template=template, report=report)
        train = pairs
    elif config.eval_size:
        if config.eval_size >= len(pairs):
            raise InputError(f"data {config.data} has {len(pairs)} usable record{'s' if len(pairs) != 1 else ''}; "
                             f"eval_size={config.eval_size} leaves none to train on: lower eval_size (0: no "
                             "evaluation) or give eval_data")
        order = np.random.default_rng([config.seed, 1]).permutation(len(pairs))
        chosen = set(order[:config.eval_size].tolist())
        heldout = [pairs[i] for i in sorted(chosen)]
        train = [p for i, p in enumerate(pairs) if i not in chosen]
    else:
        heldout, train = [], pairs
    report.pairs = len(train) + len(heldout)
    return train, heldout, report


# ---------------------------------------------------------------------------------------------------------------
# examples


def build_examples(builder, pairs: Sequence[tuple[str, str]], report: DataReport | None = None,
                   chunk: int = 256) -> list:
    """Paired examples for ``pairs`` (:meth:`PairBuilder.build_many` in chunks, reported as a progress stage);
    a pair whose prompt leaves no room for a response is dropped and counted in ``report``."""
    from ..progress import stage

    out = []
    with stage("building paired examples", total=len(pairs), unit="examples") as bar:
        for start in range(0, len(pairs), chunk):
            part = list(pairs[start:start + chunk])
            try:
                built = builder.build_many(part)
            except InputError:  # one prompt too long for max_length: build one by one to drop only those
                built = []
                for pair in part:
                    try:
                        built.append(builder.build(*pair))
                    except InputError:
                        if report is not None:
                            report.too_long_prompts += 1
            out.extend(built)
            bar.advance(len(part))
    if report is not None:
        report.truncated += sum(1 for e in out if e.truncated)
        report.empty_responses += sum(1 for e in out if len(e.text) == e.prompt_chars)
    return out


def examples_fingerprint(examples: Sequence) -> str:
    """A SHA-256 over the examples' texts, prompt lengths and token ids: a resumed run checks its data is the
    same."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(example.text.encode("utf-8", "surrogatepass"))
        digest.update(np.asarray([example.prompt_chars, len(example.teacher_ids), len(example.student_ids)],
                                 np.int64).tobytes())
        digest.update(np.asarray(example.student_ids, np.int64).tobytes())
        digest.update(np.asarray(example.teacher_ids, np.int64).tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# order


class EpochSampler:
    """Seeded example order over any number of epochs (see the module docstring).

    >>> sampler = EpochSampler(3, seed=0)
    >>> sorted(sampler.indices(0, 3)) == [0, 1, 2] and sorted(sampler.indices(3, 3)) == [0, 1, 2]
    True
    """

    def __init__(self, size: int, seed: int):
        if size < 1:
            raise InputError("there are no training examples")
        self.size = size
        self.seed = seed
        self._perms: dict[int, np.ndarray] = {}

    def permutation(self, epoch: int) -> np.ndarray:
        perm = self._perms.get(epoch)
        if perm is None:
            perm = np.random.default_rng([self.seed, 2, epoch]).permutation(self.size)
            if len(self._perms) > 4:
                self._perms.clear()
            self._perms[epoch] = perm
        return perm

    def indices(self, start: int, count: int) -> list[int]:
        """The example indices at global positions ``start … start + count − 1``."""
        return [int(self.permutation(p // self.size)[p % self.size]) for p in range(start, start + count)]


def step_indices(sampler: EpochSampler, start: int, per_device: int, processes: int, accumulation: int,
                 rank: int) -> list[list[int]]:
    """The example indices of one optimizer step for process ``rank``: one list per micro-batch.

    The step covers global positions ``start … start + per_device·processes·accumulation − 1``; micro-batch ``m``
    of process ``r`` takes the ``per_device`` positions from ``start + (m·processes + r)·per_device``. With one
    process and the batch doubled, the step covers the same examples as two processes.
    """
    out = []
    for micro in range(accumulation):
        first = start + (micro * processes + rank) * per_device
        out.append(sampler.indices(first, per_device))
    return out
