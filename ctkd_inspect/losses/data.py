"""The data-pipeline side of the distillation losses: paired examples, their alignments, and the collator.

One example is a (prompt, response) pair — or a chat rendered into one — cut by **both** tokenizers from the same
text. Everything a loss needs that depends only on the tokenizations is computed here, once per example, with the
shared kernels (span groups, the batched DTW path, the edit-distance costs), and kept in plain numpy arrays
(:meth:`PairedExample.to_dict` / :meth:`PairedExample.from_dict` store them in any dataset), so a training step
only pads them (:func:`collate`). Importing this module does not import torch; :func:`collate` does.

**Layout and position semantics** (every loss relies on them). For each side:

- ``input_ids`` are the tokens of ``prompt + response`` (one *joint* tokenization with character offsets, the
  tokenizer's own BOS default) followed by the tokenizer's EOS (not appended when the response was truncated);
- a **target token** is a token whose span lies in the response (starts at or after the prompt's last character;
  a token that straddles the boundary belongs to the prompt — put the separating whitespace at the start of the
  response) or the appended EOS; special tokens the tokenizer inserts (zero-width) never are;
- ``labels[t] = input_ids[t + 1]`` when token ``t + 1`` is a target token, else ``-100``: the logits at position
  ``t`` predict token ``t + 1``, so the **loss positions** (``labels[t] != -100``) run from the last prompt token
  to the last response token. This is DSKD's layout (``label[t] = input[t+1]``, prompt and padding ``-100``).

**Truncation.** With ``max_length``, a response whose sequence (with EOS) is longer than ``max_length`` tokens on
either side is cut at one character for both sides — the end of the last token that fits on the side that needs
the earlier cut — and both sides tokenize the shortened text (no EOS then: the response did not end). A prompt
that leaves no room for a response token is an :class:`~ctkd_inspect.errors.InputError`.

**Alignments kept per example** (``alignments=``): ``"mined"`` (the DTW path over the input tokens at the loss
positions, MinED's marker-stripped Levenshtein cost in ``reference`` mode, canonical bytes otherwise: for each
student position its one teacher position when its DTW row holds exactly one, and whether their strings are
equal), ``"cdm"`` (the Levenshtein cost matrix of those tokens' CDM strings; the entropy weights and the path are
computed in the loss, from the models), ``"span"`` (SeDi's span components over the whole sequence, the sliding
windows of SeDi's re-encoding, and GOLD's byte-offset groups of the target tokens). Special tokens never enter the
DTW (as in the inspection engines).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..errors import InputError
from ..text import Tokenization, token_bytes, tokenize

IGNORE_INDEX = -100
MODES = ("canonical", "reference")
ALIGNMENTS = ("mined", "cdm", "span")
#: Student positions one SeDi window writes at most (the row of the group's last student token, then the leading
#: tokens of the next group); longer next groups get no target beyond it (one-hot fallback there).
DEFAULT_WINDOW = 8


# ---------------------------------------------------------------------------------------------------------------
# the tokenizer pair and what is derived from it once


def continuation_encoder(tokenizer):
    """A Rust ``tokenizers.Tokenizer`` that encodes a string *as a continuation*: no special tokens and no
    SentencePiece dummy prefix (Llama 2 and Mistral prepend ``▁`` to every text, so ``"ats"`` alone would come out
    as ``▁at s``). SeDi re-encodes teacher candidates that continue a text; they must split as they would in it.
    """
    from tokenizers import Tokenizer

    spec = json.loads(tokenizer.backend_tokenizer.to_str())

    def strip(node):
        if not isinstance(node, dict):
            return node
        if node.get("type") == "Sequence":
            key = "normalizers" if "normalizers" in node else "pretokenizers"
            kept = [strip(n) for n in node.get(key, []) if not (isinstance(n, dict) and n.get("type") == "Prepend")]
            node[key] = kept
            return node
        if node.get("type") == "Prepend":
            return None
        if node.get("type") == "Metaspace":
            node["prepend_scheme"] = "never"
            node["add_prefix_space"] = False
        return node

    spec["normalizer"] = strip(spec.get("normalizer"))
    spec["pre_tokenizer"] = strip(spec.get("pre_tokenizer"))
    spec["post_processor"] = None
    return Tokenizer.from_str(json.dumps(spec))


class TokenizerPair:
    """A teacher and a student tokenizer, with everything the losses derive from the pair, built once and lazily.

    Args:
        teacher, student: transformers fast tokenizers (e.g. :func:`ctkd_inspect.load_tokenizer`) or alias names.
        mode: ``"canonical"`` (default) or ``"reference"``: which token strings the DTW compares, which MinED
            mapping and which CDM static mapping and decoding are used (the inspection engines' modes).

    Raises:
        InputError: an unknown mode.
    """

    def __init__(self, teacher, student, *, mode: str = "canonical", teacher_name: str | None = None,
                 student_name: str | None = None):
        from ..sources import load_tokenizer

        if mode not in MODES:
            raise InputError(f"mode must be one of {', '.join(MODES)} (got {mode!r})")
        self.teacher_name = teacher_name or (teacher if isinstance(teacher, str) else _name_of(teacher))
        self.student_name = student_name or (student if isinstance(student, str) else _name_of(student))
        self.teacher = load_tokenizer(teacher) if isinstance(teacher, str) else teacher
        self.student = load_tokenizer(student) if isinstance(student, str) else student
        self.mode = mode

    @property
    def teacher_vocab_size(self) -> int:
        return len(self.teacher)

    @property
    def student_vocab_size(self) -> int:
        return len(self.student)

    @property
    def teacher_eos_id(self) -> int | None:
        return getattr(self.teacher, "eos_token_id", None)

    @property
    def student_eos_id(self) -> int | None:
        return getattr(self.student, "eos_token_id", None)

    @cached_property
    def teacher_vocabulary(self):
        from ..vocab import vocabulary

        return vocabulary(self.teacher, self.teacher_name)

    @cached_property
    def student_vocabulary(self):
        from ..vocab import vocabulary

        return vocabulary(self.student, self.student_name)

    def vocab_mapping(self, kind: str = "mined"):
        """The ``exact`` or ``mined`` :class:`~ctkd_inspect.vocab.VocabMapping` of the pair in this pair's mode
        (MinED is cached on disk: seconds to minutes the first time)."""
        from ..vocab import exact_mapping, mined_mapping

        cache = self.__dict__.setdefault("_mappings", {})
        if kind not in cache:
            if kind == "exact":
                cache[kind] = exact_mapping(self.teacher_vocabulary, self.student_vocabulary, self.mode)
            elif kind == "mined":
                cache[kind] = mined_mapping(self.teacher_vocabulary, self.student_vocabulary, self.mode)
            else:
                raise InputError(f"vocab_mapping must be 'mined', 'exact' or a VocabMapping (got {kind!r})")
        return cache[kind]

    def cdm_tables(self):
        """CDM's decoded vocabularies and static mapping in this mode: ``(teacher decoded, student decoded,
        teacher coded, student coded, static t2s, static s2t)`` (the inspection engine's own tables)."""
        from ..engines.dtw import _static_mapping, _vocab_tables

        t_vocab, t_decoded, t_coded = _vocab_tables(self.teacher, self.teacher_name, self.mode)
        s_vocab, s_decoded, s_coded = _vocab_tables(self.student, self.student_name, self.mode)
        t2s, s2t, _ = _static_mapping(t_vocab, s_vocab, self.teacher, self.student, self.mode)
        return t_decoded, s_decoded, t_coded, s_coded, t2s, s2t

    @cached_property
    def student_continuation_encoder(self):
        return continuation_encoder(self.student)

    @cached_property
    def teacher_token_bytes(self) -> list[bytes | None]:
        """The bytes of every teacher id (``None`` for special tokens and ids without a string)."""
        vocab = self.teacher_vocabulary
        return [None if special or not token else token_bytes(token, vocab.scheme)
                for token, special in zip(vocab.raw, vocab.special.tolist())]

    def reencoding_table(self, window: int = DEFAULT_WINDOW) -> tuple[np.ndarray, np.ndarray]:
        """SeDi's re-encoding of every teacher token *without* a prefix: row ``v`` holds the student ids of
        ``decode_T(v)`` encoded as a continuation (:func:`continuation_encoder`), at most ``window`` of them.

        Returns ``(ids, lengths)``: ``(V_T, window)`` int64 (``-1`` padding) and ``(V_T,)`` the full encoding
        lengths (0 for a token that has no student encoding: special tokens, ids without a string, and byte
        fragments that are not valid UTF-8 on their own). The teacher's EOS maps to the student's EOS.
        """
        cache = self.__dict__.setdefault("_reencoding", {})
        if window not in cache:
            raw = self.teacher_token_bytes
            texts, rows = [], []
            for v, data in enumerate(raw):
                if data is None:
                    continue
                try:
                    texts.append(data.decode("utf-8"))
                except UnicodeDecodeError:
                    continue
                rows.append(v)
            from ..progress import stage

            with stage("re-encoding the teacher vocabulary for SeDi", total=len(texts), unit="tokens") as bar:
                encodings = self.student_continuation_encoder.encode_batch(texts, add_special_tokens=False)
                bar.advance(len(texts))
            ids = np.full((len(raw), window), -1, np.int64)
            lengths = np.zeros(len(raw), np.int64)
            for v, encoding in zip(rows, encodings):
                pieces = encoding.ids
                lengths[v] = len(pieces)
                ids[v, :min(len(pieces), window)] = pieces[:window]
            t_eos, s_eos = self.teacher_eos_id, self.student_eos_id
            if t_eos is not None and s_eos is not None and t_eos < len(raw):
                ids[t_eos] = -1
                ids[t_eos, 0] = s_eos
                lengths[t_eos] = 1
            cache[window] = (ids, lengths)
        return cache[window]

    def encode_continuations(self, texts: list[bytes], window: int = DEFAULT_WINDOW) -> tuple[np.ndarray,
                                                                                              np.ndarray]:
        """Student continuation encodings of byte strings (SeDi's prefix + candidate), memoised: ``(len(texts),
        window)`` ids (``-1`` padding) and the full lengths (0 for bytes that are not valid UTF-8)."""
        memo: dict[bytes, tuple[tuple[int, ...], int]] = self.__dict__.setdefault("_continuations", {})
        missing, decoded = [], []
        for data in texts:
            if data in memo:
                continue
            try:
                decoded.append(data.decode("utf-8"))
                missing.append(data)
            except UnicodeDecodeError:
                memo[data] = ((), 0)
        if missing:
            for data, encoding in zip(missing, self.student_continuation_encoder.encode_batch(
                    decoded, add_special_tokens=False)):
                memo[data] = (tuple(encoding.ids[:window]), len(encoding.ids))
        ids = np.full((len(texts), window), -1, np.int64)
        lengths = np.zeros(len(texts), np.int64)
        for row, data in enumerate(texts):
            pieces, length = memo[data]
            ids[row, :len(pieces)] = pieces
            lengths[row] = length
        return ids, lengths


def _name_of(tokenizer) -> str:
    source = getattr(tokenizer, "ctkd_source", None)
    return source.name if source else (getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)


# ---------------------------------------------------------------------------------------------------------------
# examples


@dataclass
class PairedExample:
    """One (prompt, response) pair cut by both tokenizers, with its alignments (numpy, see the module docstring).

    ``arrays`` holds the per-example alignment arrays (positions index the side's ``input_ids``):

    - ``mined_teacher`` ``(Ls,)``: the teacher position of each student loss position whose MinED DTW row holds
      exactly one teacher token, else ``-1``; ``mined_match`` ``(Ls,)``: that row's strings are equal;
    - ``cdm_cost`` ``(Nt, Ns)``: Levenshtein distances of the CDM strings of the non-special input tokens at the
      loss positions, whose positions are ``cdm_teacher_index`` ``(Nt,)`` and ``cdm_student_index`` ``(Ns,)``;
    - ``span_exact`` ``(Ls,)``: the student input token is in an exact 1:1 span group;
    - ``sedi_query`` ``(G,)``, ``sedi_rows`` ``(G, W)``, ``sedi_prefix`` ``(G,)``: SeDi's windows — the teacher
      position ``q*`` whose top-K is re-encoded, the student positions written (``-1`` unused), the index of the
      teacher prefix in ``prefixes`` (``-1``: no prefix);
    - ``gold_student_group`` ``(Ls,)`` / ``gold_teacher_group`` ``(Lt,)``: the index of the byte-offset group (GOLD)
      of the target token predicted at each loss position, ``-1`` elsewhere; ``gold_eos_group`` ``(1,)``: the group
      of the two appended EOS tokens (``-1`` when there is none).
    """

    text: str
    prompt_chars: int
    teacher_ids: np.ndarray
    teacher_labels: np.ndarray
    student_ids: np.ndarray
    student_labels: np.ndarray
    truncated: bool = False
    boundary_straddled: bool = False
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    prefixes: list[bytes] = field(default_factory=list)

    @property
    def student_loss_positions(self) -> int:
        return int((self.student_labels != IGNORE_INDEX).sum())

    def to_dict(self) -> dict:
        """Plain lists and scalars (a dataset row); :meth:`from_dict` reads it back."""
        out = {"text": self.text, "prompt_chars": self.prompt_chars, "truncated": self.truncated,
               "boundary_straddled": self.boundary_straddled,
               "teacher_ids": self.teacher_ids.tolist(), "teacher_labels": self.teacher_labels.tolist(),
               "student_ids": self.student_ids.tolist(), "student_labels": self.student_labels.tolist(),
               "prefixes": [p.hex() for p in self.prefixes]}
        for key, value in self.arrays.items():
            out[f"array:{key}"] = {"shape": list(value.shape), "dtype": str(value.dtype),
                                   "data": value.ravel().tolist()}
        return out

    @classmethod
    def from_dict(cls, data: dict) -> PairedExample:
        arrays = {}
        for key, value in data.items():
            if key.startswith("array:"):
                arrays[key[6:]] = np.asarray(value["data"], dtype=value["dtype"]).reshape(value["shape"])
        return cls(data["text"], int(data["prompt_chars"]), np.asarray(data["teacher_ids"], np.int64),
                   np.asarray(data["teacher_labels"], np.int64), np.asarray(data["student_ids"], np.int64),
                   np.asarray(data["student_labels"], np.int64), bool(data.get("truncated", False)),
                   bool(data.get("boundary_straddled", False)), arrays,
                   [bytes.fromhex(p) for p in data.get("prefixes", [])])


def format_chat(messages: Sequence[dict]) -> tuple[str, str]:
    """A chat as one (prompt, response) pair, the same text for both tokenizers (each model's own chat template
    would give the two sides different texts, which no character alignment can pair).

    Every message but the last is written ``"{role}: {content}\\n"``; the prompt ends with ``"assistant:"`` and the
    response is ``" " + content`` of the last message, which must be the assistant's.

    Raises:
        InputError: no messages, a message without role/content, or a last message that is not the assistant's.
    """
    if not messages:
        raise InputError("a chat needs at least one message")
    for k, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise InputError(f"chat message {k} must be a dict with 'role' and 'content'")
    if messages[-1]["role"] != "assistant":
        raise InputError(f"the last chat message is the response and must be the assistant's (got role "
                         f"{messages[-1]['role']!r})")
    prompt = "".join(f"{m['role']}: {m['content']}\n" for m in messages[:-1]) + "assistant:"
    return prompt, " " + str(messages[-1]["content"])


class PairBuilder:
    """Builds :class:`PairedExample` objects for one tokenizer pair (see the module docstring).

    Args:
        pair: a :class:`TokenizerPair` (or ``(teacher, student)`` tokenizers/names, then ``mode`` applies).
        max_length: the most tokens per side (EOS included); ``None``: no limit.
        alignments: which alignments to compute (``"mined"``, ``"cdm"``, ``"span"``; default all).
        window: SeDi's window (student positions written per candidate).

    Raises:
        InputError: an unknown alignment, a ``max_length`` below 2.
    """

    def __init__(self, pair: TokenizerPair | tuple, *, mode: str = "canonical", max_length: int | None = None,
                 alignments: Iterable[str] = ALIGNMENTS, window: int = DEFAULT_WINDOW):
        self.pair = pair if isinstance(pair, TokenizerPair) else TokenizerPair(*pair, mode=mode)
        self.alignments = tuple(alignments)
        unknown = [a for a in self.alignments if a not in ALIGNMENTS]
        if unknown:
            raise InputError(f"unknown alignments {unknown}; choose from {', '.join(ALIGNMENTS)}")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 2):
            raise InputError(f"max_length must be an integer ≥ 2 or None (got {max_length!r})")
        if not isinstance(window, int) or window < 1:
            raise InputError(f"window must be a positive integer (got {window!r})")
        self.max_length = max_length
        self.window = window

    @property
    def mode(self) -> str:
        return self.pair.mode

    # -- tokenization ------------------------------------------------------------------------------------------

    def _side(self, tokenizer, name: str, text: str, eos: int | None) -> Tokenization:
        tokens = tokenize(tokenizer, text, name=name)
        if eos is None:
            return tokens
        eos_token = tokenizer.convert_ids_to_tokens(int(eos))
        end = len(text)
        return Tokenization(name=tokens.name, text=text, ids=np.append(tokens.ids, eos),
                            tokens=[*tokens.tokens, eos_token], starts=np.append(tokens.starts, end),
                            ends=np.append(tokens.ends, end), special=np.append(tokens.special, True),
                            scheme=tokens.scheme, source=tokens.source,
                            continuation_prefix=tokens.continuation_prefix)

    def _fit(self, prompt: str, response: str) -> tuple[str, bool]:
        """The text to use: ``prompt + response``, cut at one character for both sides when too long."""
        text = prompt + response
        if self.max_length is None:
            return text, False
        pair = self.pair
        cut = len(text)
        for _ in range(64):
            sides = [tokenize(pair.teacher, text[:cut]), tokenize(pair.student, text[:cut])]
            extra = 1 if cut == len(text) else 0  # the EOS is appended only to an untruncated response
            over = [s for s in sides if len(s) + extra > self.max_length]
            if not over:
                return text[:cut], cut < len(text)
            # the end of the last token that fits (leaving no room for EOS: the cut response gets none)
            last = [self.max_length - 1 if len(s) > self.max_length else max(self.max_length - 2, 0) for s in over]
            previous, cut = cut, min(int(s.ends[k]) for s, k in zip(over, last))
            if cut >= previous:  # that token is a byte piece of a character whose other pieces do not fit: drop it
                cut = min(min(int(s.starts[k]) for s, k in zip(over, last)), previous - 1)
            if cut <= len(prompt):
                longest = max(len(tokenize(pair.teacher, prompt)), len(tokenize(pair.student, prompt)))
                raise InputError(f"the prompt alone is {longest} tokens, which leaves no room for a response "
                                 f"token within max_length={self.max_length}; shorten the prompt or raise "
                                 "max_length")
        raise InputError("could not truncate the response to max_length (the tokenizations do not shrink)")

    def _labels(self, tokens: Tokenization, prompt_chars: int, eos_appended: bool) -> tuple[np.ndarray, bool]:
        n = len(tokens)
        target = (tokens.starts >= prompt_chars) & (tokens.ends > tokens.starts)
        if eos_appended:
            target[-1] = True
        straddled = bool(((tokens.starts < prompt_chars) & (tokens.ends > prompt_chars)).any())
        labels = np.full(n, IGNORE_INDEX, np.int64)
        if n > 1:
            labels[:-1] = np.where(target[1:], tokens.ids[1:], IGNORE_INDEX)
        return labels, straddled

    # -- building ------------------------------------------------------------------------------------------------

    def build(self, prompt: str, response: str) -> PairedExample:
        """One example (see :meth:`build_many`)."""
        return self.build_many([(prompt, response)])[0]

    def build_chat(self, messages: Sequence[dict],
                   template: Callable[[Sequence[dict]], tuple[str, str]] = format_chat) -> PairedExample:
        """One example from a chat (``[{"role", "content"}, ...]``), rendered by ``template`` (default
        :func:`format_chat`)."""
        return self.build(*template(messages))

    def build_many(self, pairs: Iterable[tuple[str, str]]) -> list[PairedExample]:
        """Examples for many (prompt, response) pairs; the MinED paths of all of them are one compiled DTW call.

        Raises:
            InputError: a prompt or response that is not a string, or a prompt too long for ``max_length``.
        """
        from ..progress import stage

        examples, sides = [], []
        items = pairs if isinstance(pairs, Sequence) else list(pairs)
        with stage("tokenizing distillation examples", total=len(items), unit="examples") as bar:
            for k, item in enumerate(items):
                examples.append(self._example(k, item, sides))
                bar.advance()
        with stage("aligning distillation examples", total=len(examples), unit="examples") as bar:
            if "mined" in self.alignments:
                self._mined(examples, sides)
            for example, (teacher, student) in zip(examples, sides):
                if "cdm" in self.alignments:
                    self._cdm(example, teacher, student)
                if "span" in self.alignments:
                    self._span(example, teacher, student)
                bar.advance()
        return examples

    def _example(self, k: int, item, sides: list) -> PairedExample:
        """Tokenize one (prompt, response) pair on both sides (appending its tokenizations to ``sides``)."""
        pair = self.pair
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(x, str) for x in item)):
            raise InputError(f"example {k}: give a (prompt, response) pair of strings")
        prompt, response = item
        text, truncated = self._fit(prompt, response)
        teacher = self._side(pair.teacher, pair.teacher_name, text, None if truncated else pair.teacher_eos_id)
        student = self._side(pair.student, pair.student_name, text, None if truncated else pair.student_eos_id)
        t_labels, t_straddle = self._labels(teacher, len(prompt), not truncated and pair.teacher_eos_id is not None)
        s_labels, s_straddle = self._labels(student, len(prompt), not truncated and pair.student_eos_id is not None)
        sides.append((teacher, student))
        return PairedExample(text, len(prompt), teacher.ids.copy(), t_labels, student.ids.copy(), s_labels,
                             truncated, t_straddle or s_straddle)

    def _mined(self, examples: list[PairedExample], sides) -> None:
        results = mined_alignments([(t, s, e.teacher_labels, e.student_labels) for e, (t, s) in zip(examples, sides)],
                                   self.mode, self.pair.teacher, self.pair.student)
        for example, (aligned, match) in zip(examples, results):
            example.arrays["mined_teacher"] = aligned
            example.arrays["mined_match"] = match

    def _cdm(self, example: PairedExample, teacher: Tokenization, student: Tokenization) -> None:
        cost, t_pos, s_pos = cdm_costs(teacher, student, example.teacher_labels, example.student_labels, self.mode,
                                       self.pair.teacher, self.pair.student)
        example.arrays["cdm_cost"] = cost
        example.arrays["cdm_teacher_index"] = t_pos
        example.arrays["cdm_student_index"] = s_pos

    def _span(self, example: PairedExample, teacher: Tokenization, student: Tokenization) -> None:
        arrays, prefixes = span_alignments(teacher, student, example.teacher_labels, example.student_labels,
                                           self.window)
        example.arrays.update(arrays)
        example.prefixes = prefixes


# ---------------------------------------------------------------------------------------------------------------
# the per-example alignments (module functions: hand-built tokenizations can be passed directly)


def dtw_positions(tokens: Tokenization, labels: np.ndarray) -> np.ndarray:
    """The positions whose input tokens enter the DTW: loss positions with a non-special input token."""
    return np.flatnonzero((np.asarray(labels) != IGNORE_INDEX) & ~tokens.special)


def _dtw_strings(tokens: Tokenization, positions: np.ndarray, engine: str, mode: str, tokenizer) -> list[str]:
    from ..engines.dtw import _strings

    return _strings(tokens, positions, engine, mode, tokenizer)


def mined_alignments(items, mode: str = "canonical", teacher_tokenizer=None, student_tokenizer=None
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
    """MinED's DTW over the input tokens at the loss positions of many examples, in one batched DTW call.

    Args:
        items: ``(teacher Tokenization, student Tokenization, teacher labels, student labels)`` per example.
        mode: the strings compared (``reference``: MinED's marker-stripped vocabulary strings; ``canonical``:
            canonical bytes without spaces), as the ``mined`` engine.

    Returns:
        Per example ``(mined_teacher, mined_match)``, both ``(Ls,)``: the teacher position of every student position
        whose DTW row holds exactly one teacher token (``-1`` otherwise), and whether their strings are equal.
    """
    from ..batch.dtw import dtw_paths
    from ..engines.dtw_core import edit_distance_matrix

    out, jobs = [], []
    for k, (teacher, student, t_labels, s_labels) in enumerate(items):
        out.append((np.full(len(student), -1, np.int64), np.zeros(len(student), bool)))
        t_pos, s_pos = dtw_positions(teacher, t_labels), dtw_positions(student, s_labels)
        if len(t_pos) == 0 or len(s_pos) == 0:
            continue
        t_str = _dtw_strings(teacher, t_pos, "mined", mode, teacher_tokenizer)
        s_str = _dtw_strings(student, s_pos, "mined", mode, student_tokenizer)
        jobs.append((k, t_pos, s_pos, edit_distance_matrix(t_str, s_str)))
    if not jobs:
        return out
    costs = np.zeros((len(jobs), max(len(j[1]) for j in jobs), max(len(j[2]) for j in jobs)))
    for k, (_, t_pos, s_pos, cost) in enumerate(jobs):
        costs[k, :len(t_pos), :len(s_pos)] = cost
    paths = dtw_paths(costs, [len(j[1]) for j in jobs], [len(j[2]) for j in jobs])
    _, _, s_first, s_last = paths.ranges()
    for k, (index, t_pos, s_pos, cost) in enumerate(jobs):
        first, last = s_first[k, :len(s_pos)], s_last[k, :len(s_pos)]
        single = first == last
        aligned, match = out[index]
        aligned[s_pos[single]] = t_pos[first[single]]
        match[s_pos] = single & (cost[np.where(single, first, 0), np.arange(len(s_pos))] == 0)
    return out


def cdm_costs(teacher: Tokenization, student: Tokenization, t_labels, s_labels, mode: str = "canonical",
              teacher_tokenizer=None, student_tokenizer=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CDM's Levenshtein costs of the input tokens at the loss positions (CDM's strings in ``reference`` mode: each
    token decoded alone, spaces removed, and CDM's two special pairs at 0; canonical bytes otherwise).

    Returns ``(cost (Nt, Ns) float32, teacher positions (Nt,), student positions (Ns,))``.
    """
    from ..engines.dtw import CDM_SPECIAL_PAIRS
    from ..engines.dtw_core import edit_distance_matrix

    t_pos, s_pos = dtw_positions(teacher, t_labels), dtw_positions(student, s_labels)
    t_str = _dtw_strings(teacher, t_pos, "cdm", mode, teacher_tokenizer)
    s_str = _dtw_strings(student, s_pos, "cdm", mode, student_tokenizer)
    cost = edit_distance_matrix(t_str, s_str).astype(np.float32)
    if mode == "reference" and len(t_pos) and len(s_pos):
        for a, b in CDM_SPECIAL_PAIRS:  # CDM's hard-coded equivalences cost 0 (reference mode, as the engine)
            for x, y in ((a, b), (b, a)):
                rows = np.array([v == x for v in t_str])
                cols = np.array([v == y for v in s_str])
                cost[np.ix_(rows, cols)] = 0.0
    return cost, t_pos.astype(np.int64), s_pos.astype(np.int64)


def span_alignments(teacher: Tokenization, student: Tokenization, t_labels, s_labels,
                    window: int = DEFAULT_WINDOW) -> tuple[dict[str, np.ndarray], list[bytes]]:
    """The span-based arrays of one example (SeDi's exact 1:1 flags and windows, GOLD's groups; see
    :class:`PairedExample`) and SeDi's prefix strings."""
    from ..engines.span import span_groups

    groups = span_groups(teacher, student)
    t_labels, s_labels = np.asarray(t_labels), np.asarray(s_labels)
    Ls, Lt = len(student), len(teacher)
    s_loss, t_loss = s_labels != IGNORE_INDEX, t_labels != IGNORE_INDEX
    exact = np.zeros(Ls, bool)
    gold_s = np.full(Ls, -1, np.int64)
    gold_t = np.full(Lt, -1, np.int64)
    matched = []
    gold = 0
    for g in range(len(groups)):
        T, S = groups.teacher(g), groups.student(g)
        if len(T) == 0 or len(S) == 0:
            continue
        matched.append((T, S))
        if (len(T) == 1 and len(S) == 1 and teacher.starts[T[0]] == student.starts[S[0]]
                and teacher.ends[T[0]] == student.ends[S[0]]):
            exact[S[0]] = True
        # GOLD groups the *target* tokens; the loss position of target token k is k - 1
        s_pred = S[(S >= 1) & s_loss[np.maximum(S - 1, 0)]] - 1
        t_pred = T[(T >= 1) & t_loss[np.maximum(T - 1, 0)]] - 1
        if len(s_pred) and len(t_pred):
            gold_s[s_pred] = gold
            gold_t[t_pred] = gold
            gold += 1
    # both appended EOS tokens (special, so in no span group) form the last GOLD group
    end = len(teacher.text)
    eos_group = -1
    if (Ls >= 2 and Lt >= 2 and s_loss[Ls - 2] and t_loss[Lt - 2] and student.special[-1] and teacher.special[-1]
            and student.starts[-1] == end and teacher.starts[-1] == end):
        gold_s[Ls - 2] = gold
        gold_t[Lt - 2] = gold
        eos_group = gold
    queries, rows, prefix_index, prefixes = sedi_windows(teacher, matched, s_loss, window)
    arrays = {"span_exact": exact & s_loss, "gold_student_group": gold_s, "gold_teacher_group": gold_t,
              "gold_eos_group": np.array([eos_group], np.int64), "sedi_query": queries, "sedi_rows": rows,
              "sedi_prefix": prefix_index}
    return arrays, prefixes


def sedi_windows(teacher: Tokenization, matched, student_loss_mask, window: int = DEFAULT_WINDOW):
    """SeDi's sliding windows (``research/methods.md`` §4.2) over the matched span groups, in text order.

    For group g with a next group h: when h has more than one teacher token, the prefix is the bytes of h's teacher
    tokens but the last and ``q* = t_{h, Q−2}``; otherwise no prefix and ``q* = t_{g, Q−1}``. The rows written are
    ``s_{g, R−1}`` (row 0: the first student token of the continuation) and ``s_{h, l−1}`` for ``l = 1 … R_h − 1``
    (capped at the window). The last group (no next group) writes its last student row from its last teacher token
    (the teacher's EOS candidate maps to the student's EOS). Only student loss positions are written; windows that
    write none are dropped.

    Args:
        teacher: the teacher tokenization (its token bytes make the prefixes).
        matched: the groups with both sides non-empty, ``(teacher indices, student indices)`` in text order.
        student_loss_mask: ``(Ls,)`` bool.

    Returns:
        ``(queries (G,), rows (G, window), prefix index (G,) into prefixes or -1, prefixes: list of bytes)``.
    """
    W = window
    s_loss = np.asarray(student_loss_mask, bool)
    queries, rows, prefix_index, prefixes = [], [], [], []
    prefix_ids: dict[bytes, int] = {}
    t_bytes = None
    for k, (T, S) in enumerate(matched):
        row = np.full(W, -1, np.int64)
        row[0] = S[-1]
        prefix = b""
        q = T[-1]
        if k + 1 < len(matched):
            T_next, S_next = matched[k + 1]
            if len(T_next) > 1:
                if t_bytes is None:
                    t_bytes = teacher.token_bytes()
                prefix = b"".join(t_bytes[i] for i in T_next[:-1])
                q = T_next[-2]
            following = S_next[:-1][:W - 1]
            row[1:1 + len(following)] = following
        row = np.where((row >= 0) & s_loss[np.maximum(row, 0)], row, -1)
        if (row < 0).all():
            continue
        queries.append(q)
        rows.append(row)
        if prefix:
            if prefix not in prefix_ids:
                prefix_ids[prefix] = len(prefixes)
                prefixes.append(prefix)
            prefix_index.append(prefix_ids[prefix])
        else:
            prefix_index.append(-1)
    return (np.asarray(queries, np.int64), np.asarray(rows, np.int64).reshape(len(rows), W),
            np.asarray(prefix_index, np.int64), prefixes)


# ---------------------------------------------------------------------------------------------------------------
# collation


@dataclass
class DistillationBatch:
    """A padded batch (right padding). Tensors unless stated; ``.to(device)`` moves the tensors.

    Per side (``student_``/``teacher_``): ``input_ids``, ``attention_mask``, ``labels`` ``(B, L)``. Alignment
    tensors are those of :class:`PairedExample` padded with ``-1`` (indices) or ``False``; ``cdm_cost`` stays a
    numpy ``(B, Nt, Ns)`` array with ``cdm_teacher_lengths``/``cdm_student_lengths`` (the CDM path is computed on
    the CPU), ``prefixes`` a list per example of SeDi's prefix bytes.
    """

    student_input_ids: object
    student_attention_mask: object
    student_labels: object
    teacher_input_ids: object
    teacher_attention_mask: object
    teacher_labels: object
    mode: str = "canonical"
    student_vocab_size: int | None = None
    teacher_vocab_size: int | None = None
    tensors: dict = field(default_factory=dict)
    cdm_cost: np.ndarray | None = None
    cdm_teacher_lengths: np.ndarray | None = None
    cdm_student_lengths: np.ndarray | None = None
    prefixes: list[list[bytes]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.student_input_ids.shape[0])

    def __getattr__(self, name):
        tensors = self.__dict__.get("tensors", {})
        if name in tensors:
            return tensors[name]
        raise AttributeError(f"{type(self).__name__} has no field {name!r} (was the alignment computed? see "
                             "PairBuilder(alignments=...))")

    def has(self, name: str) -> bool:
        return name in self.tensors

    def to(self, device) -> DistillationBatch:
        moved = {k: v.to(device) for k, v in self.tensors.items()}
        out = DistillationBatch(self.student_input_ids.to(device), self.student_attention_mask.to(device),
                                self.student_labels.to(device), self.teacher_input_ids.to(device),
                                self.teacher_attention_mask.to(device), self.teacher_labels.to(device), self.mode,
                                self.student_vocab_size, self.teacher_vocab_size, moved, self.cdm_cost,
                                self.cdm_teacher_lengths, self.cdm_student_lengths, self.prefixes)
        return out


def _pad(arrays: list[np.ndarray], value, dtype) -> np.ndarray:
    shape = [len(arrays)] + [max((a.shape[d] for a in arrays), default=0) for d in range(arrays[0].ndim)]
    out = np.full(shape, value, dtype=dtype)
    for k, a in enumerate(arrays):
        out[(k, *tuple(slice(0, s) for s in a.shape))] = a
    return out


def collate(examples: Sequence[PairedExample], *, teacher_pad_id: int = 0, student_pad_id: int = 0,
            mode: str = "canonical", teacher_vocab_size: int | None = None,
            student_vocab_size: int | None = None) -> DistillationBatch:
    """Pad examples into a :class:`DistillationBatch` of torch tensors (right padding; labels padded with -100).

    Raises:
        InputError: no examples, or examples that do not all carry the same alignments.
    """
    import torch

    if not examples:
        raise InputError("cannot collate an empty list of examples")
    examples = [e if isinstance(e, PairedExample) else PairedExample.from_dict(e) for e in examples]
    keys = set(examples[0].arrays)
    if any(set(e.arrays) != keys for e in examples):
        raise InputError("the examples carry different alignments; build them with the same PairBuilder")

    def side(ids, labels, pad):
        ids_t = torch.from_numpy(_pad(ids, pad, np.int64))
        mask = torch.from_numpy(_pad([np.ones(len(a), np.int64) for a in ids], 0, np.int64))
        return ids_t, mask, torch.from_numpy(_pad(labels, IGNORE_INDEX, np.int64))

    s_ids, s_mask, s_labels = side([e.student_ids for e in examples], [e.student_labels for e in examples],
                                   student_pad_id)
    t_ids, t_mask, t_labels = side([e.teacher_ids for e in examples], [e.teacher_labels for e in examples],
                                   teacher_pad_id)
    tensors = {}
    for key in keys:
        if key == "cdm_cost":
            continue
        values = [e.arrays[key] for e in examples]
        if values[0].dtype == bool:
            tensors[key] = torch.from_numpy(_pad(values, False, bool))
        else:
            tensors[key] = torch.from_numpy(_pad(values, -1, np.int64))
    batch = DistillationBatch(s_ids, s_mask, s_labels, t_ids, t_mask, t_labels, mode, student_vocab_size,
                              teacher_vocab_size, tensors)
    if "cdm_cost" in keys:
        costs = [e.arrays["cdm_cost"] for e in examples]
        batch.cdm_cost = _pad([c.reshape(len(e.arrays["cdm_teacher_index"]), len(e.arrays["cdm_student_index"]))
                               for c, e in zip(costs, examples)], 0.0, np.float64)
        batch.cdm_teacher_lengths = np.array([len(e.arrays["cdm_teacher_index"]) for e in examples], np.int64)
        batch.cdm_student_lengths = np.array([len(e.arrays["cdm_student_index"]) for e in examples], np.int64)
    batch.prefixes = [list(e.prefixes) for e in examples]
    return batch


class Collator:
    """A ``DataLoader`` collate function for one :class:`PairBuilder`'s examples (pads with each tokenizer's pad
    id, else its EOS, else 0)."""

    def __init__(self, builder: PairBuilder):
        self.builder = builder

    def __call__(self, examples: Sequence[PairedExample]) -> DistillationBatch:
        pair = self.builder.pair

        def pad_id(tokenizer):
            for name in ("pad_token_id", "eos_token_id"):
                value = getattr(tokenizer, name, None)
                if value is not None:
                    return int(value)
            return 0

        return collate(examples, teacher_pad_id=pad_id(pair.teacher), student_pad_id=pad_id(pair.student),
                       mode=pair.mode, teacher_vocab_size=pair.teacher_vocab_size,
                       student_vocab_size=pair.student_vocab_size)
