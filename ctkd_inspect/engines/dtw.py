"""DTW engines over token strings: ``mined`` (FuseLLM / DSKD) and ``cdm`` (entropy-weighted, CDM).

Both run classic DTW (:mod:`ctkd_inspect.engines.dtw_core`) over the **non-special** tokens of each side (special
tokens take no part in the DP and are reported unmatched, as in the span engine). The result keeps the DTW path
(``"path"``: ``(teacher index, student index)`` pairs, indices into the full token lists), and its groups are the
connected components of the path, each with its summed path ``cost``. The ``cdm`` engine also keeps CDM's own,
possibly overlapping, grouping under ``"cdm_groups"``.

Two modes:

``reference`` reproduces the published algorithms:
    - ``mined``: the raw vocabulary string with the tokenizer's marker (``Ġ`` byte-level, ``▁`` SentencePiece)
      removed; cost = Levenshtein distance.
    - ``cdm``: each token decoded on its own (``convert_tokens_to_string([token])`` when the tokenizer is at hand,
      otherwise the same rules: byte fragments decode to U+FFFD), ASCII spaces removed; cost = Levenshtein ×
      teacher factor × student factor, factors from min-max scaled entropy; the two hard-coded special-token pairs
      (``</s>``↔``<|im_end|>``, ``<|endoftext|>``↔``<|endoftext|>``) cost 0 — since special tokens never enter
      the DP here (both modes), this fires only where a tokenizer does not flag those strings as special; the
      dynamic top-K mapping decodes as CDM does and starts from CDM's author exact-match script (``"▁"`` stripped
      from the raw strings, base vocabularies only).
``canonical`` (default) fixes what the references get wrong:
    1. byte fragments compare by their bytes: two different fragments of multi-byte characters no longer compare
       equal (both decode to "�" in the reference CDM);
    2. newlines and other byte-fallback pieces compare by their bytes, so Llama 2's ``<0x0A>`` matches GPT-2's
       ``Ċ`` (they never match in reference MinED);
    3. constant entropy (e.g. a one-token response) gives every token the middle factor 4 (the reference divides
       by zero and casts NaN to an integer; reference mode raises);
    4. an empty side gives an alignment whose tokens are all unmatched (the reference crashes; reference mode
       raises);
    5. every scheme's marker is handled (WordPiece ``##`` continuations included). FuseLLM's code knows the
       markers of two tokenizer classes and raises KeyError for the others; reference mode does not reproduce
       that crash but compares such tokens' raw strings (no marker removed), as FuseLLM would with a marker-less
       tokenizer class;
    6. the dynamic top-K mapping (``cdm`` with models) keeps undecodable bytes distinct (1 again) and starts from
       the exact mapping over canonical bytes, instead of CDM's "▁"-stripping exact-match script.
    The canonical string of a token is its bytes with ASCII spaces removed, one character per byte, so edit
    distances count byte edits.

Memory. DTW is quadratic: the cost matrix (in the smallest unsigned integer type that holds the largest possible
cost: one byte a cell for MinED's Levenshtein distances of tokens up to 255 bytes, two for CDM's weighted ones)
and the backtrace's direction codes (one byte a cell) take ``n × m × (1 + cost bytes)``, plus the distance table
of the distinct strings. Both engines estimate this before allocating anything and refuse with
:class:`~ctkd_inspect.errors.MemoryBudgetError` (exit 2) above the budget: ``max_memory`` (``--max-memory``, e.g.
``4G``), by default half of the available memory (:mod:`ctkd_inspect.memory`). The way out for long texts is
``chunking`` (``--chunking anchors`` or ``paragraphs``, pieces of at most ``chunk_tokens`` tokens a side;
:mod:`ctkd_inspect.engines.dtw_chunks`): it cuts the text where both tokenizations agree and aligns the pieces
independently, which can change the path near the cuts (measured in the README). ``chunking="off"`` (the
default) runs the published algorithms unchanged.
"""

from __future__ import annotations

import os
from typing import ClassVar

import numpy as np

from ..alignment import Alignment, GroupTable
from ..errors import EngineError
from ..memory import check_memory, memory_budget, parse_size
from ..metrics import compute_metrics
from ..text import SPIECE, Tokenization, token_bytes
from .dtw_chunks import CHUNKING, DEFAULT_CHUNK_TOKENS, chunk_splits, plan_chunks
from .dtw_core import DTWResult, cdm_entropy_factors, cdm_groups, edit_distance_matrix, path_components
from .options import EngineOption, validate_options

MODES = ("canonical", "reference")
_MARKERS = {"byte-level": "Ġ", "sentencepiece": SPIECE}
# CDM's hard-coded equivalences, cost 0 in either direction (reference mode only)
CDM_SPECIAL_PAIRS = (("</s>", "<|im_end|>"), ("<|endoftext|>", "<|endoftext|>"))


def canonical_string(tokens: Tokenization, index: int) -> str:
    """A token's bytes with ASCII spaces removed, one character per byte (latin-1)."""
    raw = token_bytes(tokens.tokens[index], tokens.scheme, tokens.continuation_prefix)
    return raw.replace(b" ", b"").decode("latin-1")


def mined_reference_string(tokens: Tokenization, index: int) -> str:
    """FuseLLM/DSKD: the raw vocabulary string with the tokenizer's space marker removed."""
    marker = _MARKERS.get(tokens.scheme, "")
    token = tokens.tokens[index]
    return token.replace(marker, "") if marker else token


def cdm_reference_string(tokens: Tokenization, index: int, tokenizer=None) -> str:
    """CDM: the token decoded on its own, ASCII spaces removed (the marker-stripping lines of the reference are
    dead code, so newlines and tabs survive and byte fragments become U+FFFD)."""
    token = tokens.tokens[index]
    if tokenizer is not None:
        text = tokenizer.convert_tokens_to_string([token])
    else:
        text = token_bytes(token, tokens.scheme, tokens.continuation_prefix).decode("utf-8", errors="replace")
    return text.replace(" ", "")


def _strings(tokens: Tokenization, indices: np.ndarray, engine: str, mode: str, tokenizer=None) -> list[str]:
    if mode == "canonical":
        return [canonical_string(tokens, i) for i in indices.tolist()]
    if engine == "mined":
        return [mined_reference_string(tokens, i) for i in indices.tolist()]
    return [cdm_reference_string(tokens, i, tokenizer) for i in indices.tolist()]


def fusellm_hard_match(teacher_token: str, student_token: str, teacher_scheme: str, student_scheme: str,
                       first: bool = False) -> bool:
    """FuseLLM's "hard" rule for a 1:1 DTW row (``transform_step_logits``, reused by DSKD's analysis): the raw
    teacher string with the teacher's marker *replaced* by the student's equals the raw student string.

    The markers are ``Ġ`` (byte-level BPE: GPT-2, NeoX, Qwen classes) and ``▁`` (SentencePiece: Llama class);
    other schemes have none (FuseLLM raises KeyError for them; their raw strings are compared). The special case
    FuseLLM applies for MPT: when the teacher is byte-level, the row is the first one (``first``), the student
    string starts with the student marker and the replaced teacher string does not, the marker is prepended to the
    teacher string first.

    >>> fusellm_hard_match("▁The", "ĠThe", "sentencepiece", "byte-level"), fusellm_hard_match("▁The", "The",
    ...                    "sentencepiece", "byte-level")
    (True, False)
    """
    t_marker, s_marker = _MARKERS.get(teacher_scheme, ""), _MARKERS.get(student_scheme, "")
    replaced = teacher_token.replace(t_marker, s_marker) if t_marker else teacher_token
    if (teacher_scheme == "byte-level" and first and s_marker and student_token.startswith(s_marker)
            and not replaced.startswith(s_marker)):
        replaced = s_marker + replaced  # FuseLLM's special case for MPT
    return replaced == student_token


def cdm_reference_entropy(logits) -> np.ndarray:
    """CDM's entropy of each row of ``logits`` (``calculate_weight``): ``p = softmax + 1e-10``, ``H = −Σ p·log p``
    (nats), in float64. The canonical entropy has no epsilon; the two differ by about ``V·1e-10·23`` nats."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    p += 1e-10
    return -(p * np.log(p)).sum(axis=-1)


def _entropy_for(tokens: Tokenization, given, signals, side: str, mode: str = "canonical") -> np.ndarray:
    """The per-token entropy the ``cdm`` engine weights by: ``given``, else the model signals' entropy — in
    ``reference`` mode CDM's own (``p + 1e-10`` inside the sum, :func:`cdm_reference_entropy`), when the signals
    carry it."""
    if given is None and signals is not None:
        reference = getattr(signals, "cdm_entropy", None) if mode == "reference" else None
        given = reference if reference is not None else signals.entropy
    if given is None:
        raise EngineError(
            f"the cdm engine weights its DTW by per-token entropy, and none was given for the {side}: pass "
            f"{side}_model= (a model alias such as smollm2 or gemma3, a GGUF, a local folder or a hub id; CLI: "
            f"--{side}-model) or {side}_entropy= (one value per token)")
    entropy = np.asarray(given, dtype=np.float64)
    if entropy.shape != (len(tokens),):
        raise EngineError(f"{side} entropy has {entropy.shape[0] if entropy.ndim else 0} values for {len(tokens)} "
                          "tokens; give one value per token of the tokenization")
    return entropy


def _load_mapping(value):
    """``vocab_mapping`` option: a :class:`~ctkd_inspect.vocab.VocabMapping`, or the path of one saved by
    ``ctkd-inspect vocab --out`` (read now, before any tokenizer or model is loaded)."""
    from ..vocab import VocabMapping

    if isinstance(value, VocabMapping):
        return value
    if isinstance(value, (str, os.PathLike)):
        return VocabMapping.load(value)
    raise ValueError(f"give a VocabMapping or the path of a saved mapping (got {type(value).__name__})")


def _entropy_array(value):
    """``teacher_entropy`` / ``student_entropy`` option: one finite number per token."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"give one number per token (got {type(value).__name__})") from None
    if array.ndim != 1:
        raise ValueError(f"give a flat sequence of numbers, one per token (got shape {array.shape})")
    if not np.isfinite(array).all():
        raise ValueError("entropies must be finite numbers (found NaN or infinity)")
    return array


def _check_mapping_fits(mapping, teacher_tokenizer, student_tokenizer) -> None:
    """Refuse a vocabulary mapping made for other tokenizers (its sizes differ from the tokenizers' id ranges).

    Raises:
        EngineError: the sizes differ.
    """
    if teacher_tokenizer is None or student_tokenizer is None:
        return
    # a Vocabulary spans ids 0 … largest id (see ctkd_inspect.vocab.vocabulary)
    sizes = tuple(max(tok.get_vocab().values()) + 1 for tok in (teacher_tokenizer, student_tokenizer))
    if (len(mapping.teacher_to_student), len(mapping.student_to_teacher)) != sizes:
        raise EngineError(f"the vocabulary mapping (vocab_mapping / --vocab-mapping) maps {mapping.teacher} "
                          f"({len(mapping.teacher_to_student):,} ids) to {mapping.student} "
                          f"({len(mapping.student_to_teacher):,} ids), not these tokenizers ({sizes[0]:,} and "
                          f"{sizes[1]:,} ids); make one for this pair with `ctkd-inspect vocab TEACHER STUDENT --out "
                          "FILE`")


CHUNKING_OPTION = EngineOption(
    "chunking", str, "off", "Align a long text in pieces cut at exact 1:1 span anchors (anchors) or at paragraph "
    "boundaries (paragraphs), each piece by itself, so memory grows with the largest piece, not the whole text; "
    "off runs one DTW over the whole text", choices=CHUNKING, metavar="MODE")
CHUNK_TOKENS_OPTION = EngineOption(
    "chunk_tokens", int, DEFAULT_CHUNK_TOKENS, "Largest piece of the chunked mode, in tokens per side (a piece is "
    "larger only where no cut point lies within it)", minimum=1, metavar="N")
MAX_MEMORY_OPTION = EngineOption(
    "max_memory", object, None, "Memory budget of the quadratic matrices: a size such as 4G, 512M, 1.5GiB or a "
    "number of bytes (default: half of the available memory, from MemAvailable, the cgroup limit and ulimit -v); "
    "past it the engine refuses before allocating", metavar="SIZE", convert=parse_size)
MODE_OPTION = EngineOption("mode", str, "canonical", "canonical (fixes the published defects) or reference "
                           "(reproduces the published algorithm)", choices=MODES, metavar="MODE")
VOCAB_MAPPING_OPTION = EngineOption(
    "vocab_mapping", object, None, "A vocabulary mapping saved by `ctkd-inspect vocab --out` (.json/.npz/.parquet) "
    "or a VocabMapping: the one-hot fallback rate then follows DSKD's rule (SeDi's Table 1) and Top-1 converts "
    "through it", metavar="FILE", convert=_load_mapping)


class _DTWEngine:
    name: ClassVar[str]
    description: ClassVar[str]
    options: ClassVar[tuple[EngineOption, ...]] = (MODE_OPTION, VOCAB_MAPPING_OPTION, CHUNKING_OPTION,
                                                   CHUNK_TOKENS_OPTION, MAX_MEMORY_OPTION)
    requires_signals: ClassVar[frozenset[str]] = frozenset()
    # with models, the top-1 predictions give SeDi's Top-1 accuracy
    optional_signals: ClassVar[frozenset[str]] = frozenset({"topk"})
    differentiable: ClassVar[bool] = False
    # the DTW kernel (ctkd_inspect.batch.dtw) aligns a padded batch of pairs in one compiled call; the losses use it
    batched: ClassVar[bool] = True

    def needs_model(self, side: str, options: dict) -> bool:
        """Whether ``align()`` must load ``side``'s model (the required signals are not given otherwise)."""
        return bool(self.requires_signals)

    def preflight(self, teacher: Tokenization, student: Tokenization, options: dict) -> None:
        """Check the memory the alignment will need, before any model is loaded (:func:`ctkd_inspect.align` calls
        it once the texts are tokenized; ``options`` are the validated engine options).

        Raises:
            MemoryBudgetError: the DTW (or its largest piece, when chunked) needs more than the memory budget.
        """
        mode = options.get("mode", "canonical")
        t_idx = np.flatnonzero(~teacher.special)
        s_idx = np.flatnonzero(~student.special)
        if len(t_idx) == 0 or len(s_idx) == 0:
            return
        t_str = _strings(teacher, t_idx, self.name, mode)
        s_str = _strings(student, s_idx, self.name, mode)
        # before the models run the entropy factors are unknown: the largest (5 × 5) bounds the costs
        self._plan(teacher, student, t_idx, s_idx, t_str, s_str, options.get("chunking", "off"),
                   options.get("chunk_tokens", DEFAULT_CHUNK_TOKENS), options.get("max_memory"),
                   25 if self.name == "cdm" else 1)

    def align(self, teacher: Tokenization, student: Tokenization, *, mode: str = "canonical",
              teacher_entropy=None, student_entropy=None, teacher_signals=None, student_signals=None,
              vocab_mapping=None, teacher_tokenizer=None, student_tokenizer=None, chunking: str = "off",
              chunk_tokens: int = DEFAULT_CHUNK_TOKENS, max_memory=None) -> Alignment:
        """Align by DTW over token strings.

        Args:
            mode: ``canonical`` (default) or ``reference`` (see the module docstring).
            teacher_entropy, student_entropy: per-token entropy (one value per token, specials ignored); ``cdm`` only.
            teacher_signals, student_signals: :class:`ctkd_inspect.signals.Signals` of the same texts; supply
                entropy for ``cdm`` and the top-1 predictions for the Top-1 accuracy metric.
            vocab_mapping: a :class:`ctkd_inspect.vocab.VocabMapping`; when given, the one-hot fallback rate uses
                DSKD's rule (1:1 row and ``tea2stu[teacher id] == student id``) and Top-1 accuracy converts the
                teacher's prediction through it.
            teacher_tokenizer, student_tokenizer: the tokenizers, when at hand (reference CDM decodes with them).
            chunking: ``off`` (default: one DTW over the whole text), ``anchors`` or ``paragraphs`` (pieces aligned
                independently, see :mod:`ctkd_inspect.engines.dtw_chunks`); the result's options then carry
                ``chunking`` and ``chunk_tokens`` and its metrics ``chunks``.
            chunk_tokens: the largest piece of the chunked mode, in non-special tokens per side.
            max_memory: the memory budget (bytes, or a size such as ``"4G"``); default half of the available memory.

        Raises:
            EngineError: an unknown mode, missing or malformed entropy (``cdm``), or input the reference algorithm
                cannot handle in ``reference`` mode.
            MemoryBudgetError: the DTW (or its largest piece) needs more memory than the budget; raised before the
                matrices are allocated.
        """
        given = {"mode": mode, "vocab_mapping": vocab_mapping, "chunking": chunking, "chunk_tokens": chunk_tokens,
                 "max_memory": max_memory}
        if self.name == "cdm":
            given.update(teacher_entropy=teacher_entropy, student_entropy=student_entropy)
        elif teacher_entropy is not None or student_entropy is not None:
            raise EngineError(f"teacher_entropy/student_entropy apply to engine='cdm', not to the {self.name} engine")
        checked = validate_options(self, given, model_options=False)
        mode, vocab_mapping = checked["mode"], checked.get("vocab_mapping")
        chunking, chunk_tokens = checked["chunking"], checked["chunk_tokens"]
        teacher_entropy, student_entropy = checked.get("teacher_entropy"), checked.get("student_entropy")
        if vocab_mapping is not None:
            _check_mapping_fits(vocab_mapping, teacher_tokenizer, student_tokenizer)
        if teacher.text != student.text:
            raise EngineError("the teacher and student tokenizations are of different texts")
        t_idx = np.flatnonzero(~teacher.special)
        s_idx = np.flatnonzero(~student.special)
        options = {"mode": mode}
        if chunking != "off":
            options.update(chunking=chunking, chunk_tokens=chunk_tokens)
        weights = None
        if self.name == "cdm":
            t_entropy = _entropy_for(teacher, teacher_entropy, teacher_signals, "teacher", mode)
            s_entropy = _entropy_for(student, student_entropy, student_signals, "student", mode)
            if len(t_idx) and len(s_idx):
                try:
                    weights = (cdm_entropy_factors(t_entropy[t_idx], guard_constant=mode == "canonical"),
                               cdm_entropy_factors(s_entropy[s_idx], guard_constant=mode == "canonical"))
                except ValueError as exc:
                    raise EngineError(f"cdm {mode} mode: {exc}") from exc
        if len(t_idx) == 0 or len(s_idx) == 0:
            if mode == "reference":
                raise EngineError("the reference algorithm cannot align an empty side (its backtrace crashes); "
                                  "the canonical mode reports such tokens as unmatched")
            return self._finish(teacher, student, _lonely_table(t_idx, s_idx), options, [], None, vocab_mapping,
                                teacher_signals, student_signals, [], [])
        t_str = _strings(teacher, t_idx, self.name, mode, teacher_tokenizer)
        s_str = _strings(student, s_idx, self.name, mode, student_tokenizer)
        factor = int(weights[0].max() * weights[1].max()) if weights is not None else 1
        chunks, dtype = self._plan(teacher, student, t_idx, s_idx, t_str, s_str, chunking, chunk_tokens,
                                   checked.get("max_memory"), factor)
        if self.name == "cdm":
            options["teacher_factors"] = weights[0].tolist()
            options["student_factors"] = weights[1].tolist()
        from ..batch.dtw import dtw_paths

        paths, path_costs, total = [], [], 0.0
        for t0, t1, s0, s1 in chunks:
            cost = self._cost(t_str[t0:t1], s_str[s0:s1], dtype, mode,
                              None if weights is None else (weights[0][t0:t1], weights[1][s0:s1]))
            batch = dtw_paths(cost)
            local = batch.path(0)
            path_costs.append(cost[local[:, 0], local[:, 1]].astype(np.float64))
            paths.append(local + np.array([t0, s0]))
            total += float(batch.totals[0])
            del cost
        path = np.concatenate(paths)
        path_cost = np.concatenate(path_costs)
        result = DTWResult(path, total, len(t_idx), len(s_idx))
        local = path_components(result.path)
        component_of_step = np.concatenate([[0], np.cumsum((np.diff(result.path[:, 0]) > 0)
                                                           & (np.diff(result.path[:, 1]) > 0))])
        group_cost = np.bincount(component_of_step, weights=path_cost, minlength=len(local))
        table = GroupTable.from_lists([t_idx[t].tolist() for t, _ in local], [s_idx[s].tolist() for _, s in local],
                                      {"cost": group_cost.tolist()})
        path_full = np.stack([t_idx[result.path[:, 0]], s_idx[result.path[:, 1]]], axis=1)
        extra_groups = None
        if self.name == "cdm":
            extra_groups = [{"teacher": t_idx[g["teacher"]].tolist(), "student": s_idx[g["student"]].tolist()}
                            for g in cdm_groups(result.teacher_to_student, result.student_to_teacher)]
        alignment = self._finish(teacher, student, table, options, path_full.tolist(), extra_groups, vocab_mapping,
                                 teacher_signals, student_signals, t_str, s_str, result, t_idx, s_idx)
        alignment.metrics["path_cost"] = result.cost
        if chunking != "off":
            alignment.metrics["chunks"] = len(chunks)
        if (self.name == "cdm" and teacher_signals is not None and student_signals is not None
                and teacher_tokenizer is not None and student_tokenizer is not None):
            # full-index teacher rows of every student, so reference mode averages exactly as CDM does
            student_to_teacher = {int(s_idx[j]): [int(t_idx[i]) for i in rows]
                                  for j, rows in enumerate(result.student_to_teacher)}
            dynamic = contextual_mapping(extra_groups, teacher_signals, student_signals, teacher_tokenizer,
                                         student_tokenizer, teacher.name, student.name, mode=mode,
                                         student_to_teacher=student_to_teacher)
            alignment.metrics.update(dynamic["metrics"])
            alignment.extra["dynamic_mapping"] = dynamic["pairs"]
        return alignment

    def _plan(self, teacher, student, t_idx, s_idx, t_str, s_str, chunking, chunk_tokens, max_memory, factor):
        """The pieces to align and the cost matrices' type, once the memory they need is known to fit the budget.

        Raises:
            MemoryBudgetError: the largest piece needs more than the budget.
        """
        n, m = len(t_idx), len(s_idx)
        largest = max(max(map(len, t_str), default=0), max(map(len, s_str), default=0))
        # Levenshtein distance ≤ the longer string's length; CDM multiplies by the two entropy factors
        dtype = np.min_scalar_type(max(largest * max(factor, 1), 1))
        if chunking == "off":
            chunks = [(0, n, 0, m)]
        else:
            splits = chunk_splits(chunking, teacher, student, t_idx, s_idx)
            chunks = plan_chunks(splits, n, m, chunk_tokens)
        t_codes = _codes(t_str)
        s_codes = _codes(s_str)
        needs = [(dtw_chunk_memory(t1 - t0, s1 - s0, dtype.itemsize, len(np.unique(t_codes[t0:t1])),
                                   len(np.unique(s_codes[s0:s1]))), (t0, t1, s0, s1)) for t0, t1, s0, s1 in chunks]
        estimate, (t0, t1, s0, s1) = max(needs)
        estimate += result_memory(n, m)
        budget = memory_budget(max_memory)
        if chunking == "off":
            what = (f"the {self.name} engine's DTW over {n:,} × {m:,} tokens ({n * m:,} cells at "
                    f"{dtype.itemsize + 1} bytes)")
            ways_out = ("Align it in pieces with --chunking anchors (Python: chunking='anchors'), which cuts the text "
                        "at exact 1:1 token matches and aligns the pieces independently; or raise the budget with "
                        "--max-memory (max_memory=, e.g. 8G) if the machine has the memory; or use the span engine "
                        "(--engine span), whose memory grows linearly with the text.")
        else:
            what = (f"the {self.name} engine's largest piece with --chunking {chunking} ({t1 - t0:,} × {s1 - s0:,} "
                    f"tokens: no cut point lies closer together there)")
            other = "anchors" if chunking == "paragraphs" else None
            ways_out = ((f"Cut at more places with --chunking {other} (chunking='{other}'); or raise " if other else
                         "Raise ") + "the budget with --max-memory (max_memory=, e.g. 8G) if the machine has the "
                        "memory; or use the span engine (--engine span), whose memory grows linearly with the text.")
        check_memory(estimate, budget, what, ways_out)
        return chunks, dtype

    def _cost(self, t_str, s_str, dtype, mode, weights):
        """The cost matrix of one piece in ``dtype`` (see :meth:`_plan`), built without a larger temporary: the
        distances of the distinct strings, spread to every token pair, times the entropy factors in place."""
        t_unique, t_inverse = np.unique(np.asarray(t_str, dtype=object), return_inverse=True)
        s_unique, s_inverse = np.unique(np.asarray(s_str, dtype=object), return_inverse=True)
        distinct = edit_distance_matrix(t_unique.tolist(), s_unique.tolist()).astype(dtype)
        cost = distinct[np.ix_(t_inverse.reshape(-1), s_inverse.reshape(-1))]
        del distinct
        if self.name == "cdm":
            if mode == "reference":
                for a, b in CDM_SPECIAL_PAIRS:
                    for x, y in ((a, b), (b, a)):
                        rows = np.array([s == x for s in t_str])
                        cols = np.array([s == y for s in s_str])
                        cost[np.ix_(rows, cols)] = 0
            np.multiply(cost, weights[0].astype(dtype)[:, None], out=cost)
            np.multiply(cost, weights[1].astype(dtype)[None, :], out=cost)
        return cost

    def _finish(self, teacher, student, table, options, path, extra_groups, vocab_mapping, teacher_signals,
                student_signals, t_str, s_str, result=None, t_idx=None, s_idx=None) -> Alignment:
        extra = {"path": path}
        if extra_groups is not None:
            extra["cdm_groups"] = extra_groups
        alignment = Alignment(teacher, student, table, engine=self.name, options=options, extra=extra)
        alignment.metrics = compute_metrics(alignment)
        alignment.metrics.update(dtw_metrics(teacher, student, result, t_idx, s_idx, t_str, s_str, vocab_mapping,
                                             teacher_signals, student_signals, mode=options["mode"]))
        return alignment


def _codes(strings: list[str]) -> np.ndarray:
    """One integer per string, equal for equal strings (to count the distinct strings of a piece)."""
    if not strings:
        return np.zeros(0, np.int64)
    return np.unique(np.asarray(strings, dtype=object), return_inverse=True)[1].reshape(-1)


def dtw_chunk_memory(n: int, m: int, cost_bytes: int, distinct_teacher: int, distinct_student: int) -> int:
    """Bytes one DTW piece of ``n`` × ``m`` tokens allocates at its peak: the cost matrix (``cost_bytes`` a cell),
    the distance table of the distinct strings (int32 from rapidfuzz, then its copy in the cost type) and the DP
    (direction codes, rows and path: :func:`ctkd_inspect.batch.dtw.dtw_memory`)."""
    from ..batch.dtw import dtw_memory

    distinct = distinct_teacher * distinct_student * (4 + cost_bytes)
    return n * m * cost_bytes + distinct + dtw_memory([n], [m])


#: Bytes per token of the result besides the DTW matrices: the path, the groups, the token lists and the metrics'
#: Python objects take about 500 bytes a token at the engine's peak, and 1.3 KB once the CLI turns the result into
#: its JSON document (tracemalloc, Llama 3 × Gemma 2, 20k and 100k characters); rounded up.
RESULT_BYTES_PER_TOKEN = 2048


def result_memory(n: int, m: int) -> int:
    """Bytes the alignment result of ``n`` + ``m`` non-special tokens holds besides the DTW matrices."""
    return (n + m) * RESULT_BYTES_PER_TOKEN


def _lonely_table(t_idx: np.ndarray, s_idx: np.ndarray) -> GroupTable:
    """Every token alone in its own group (one side has no tokens to align with)."""
    teacher = [[int(i)] for i in t_idx] + [[] for _ in s_idx]
    student = [[] for _ in t_idx] + [[int(j)] for j in s_idx]
    return GroupTable.from_lists(teacher, student, {"cost": [0.0] * (len(t_idx) + len(s_idx))})


def dtw_metrics(teacher: Tokenization, student: Tokenization, result, t_idx, s_idx, t_str, s_str, vocab_mapping,
                teacher_signals, student_signals, mode: str = "canonical") -> dict:
    """The metrics DTW-based CTKD papers report, computed on one alignment.

    - ``sequence_alignment_rate`` (CDM): share of student tokens whose DTW row holds exactly one teacher token with
      the same (mode-normalised) string.
    - ``onehot_fallback_rate`` (MinED, the quantity of SeDi's Table 1): share of student tokens that get a one-hot
      target instead of the teacher's distribution. DSKD's rule when a vocabulary mapping is given (1:1 row and
      ``tea2stu[teacher id] == student id``; DSKD's third condition, a projected row with a finite entry, always
      holds once the second does: the student id then has a teacher id, whose logit is finite), else FuseLLM's
      hard rule: a 1:1 row whose strings are equal — in ``reference`` mode exactly as FuseLLM compares them
      (:func:`fusellm_hard_match`: raw strings after marker *replacement*, with its MPT special case), in
      ``canonical`` mode the canonical strings; ``onehot_fallback_basis`` says which rule. SeDi's Table 1 uses
      DSKD's rule with the MinED mapping (CLI: ``--vocab-mapping`` with a file from ``ctkd-inspect vocab --out``).
    - ``top1_accuracy`` (SeDi), with both models' signals: over student positions with a next token, the share
      whose 1:1-aligned teacher position's top-1 prediction, converted to the student vocabulary (through the
      mapping, else by exact canonical string), equals the student's next token. Logits at position t predict
      token t + 1, so teacher position i and student position j are compared on their next tokens.
    """
    n = len(s_idx) if s_idx is not None else int(np.count_nonzero(~student.special))
    out: dict = {"sequence_alignment_rate": None, "onehot_fallback_rate": None,
                 "onehot_fallback_basis": "mapping" if vocab_mapping is not None else "string-equality"}
    if result is None or n == 0:
        return out
    one_row = [len(rows) == 1 for rows in result.student_to_teacher]
    string_match = [one_row[j] and t_str[result.student_to_teacher[j][0]] == s_str[j] for j in range(n)]
    out["sequence_alignment_rate"] = float(np.mean(string_match))
    if vocab_mapping is not None:
        t2s = vocab_mapping.teacher_to_student
        kept = []
        for j in range(n):
            if not one_row[j]:
                kept.append(False)
                continue
            teacher_id = int(teacher.ids[t_idx[result.student_to_teacher[j][0]]])
            kept.append(0 <= teacher_id < len(t2s) and int(t2s[teacher_id]) == int(student.ids[s_idx[j]]))
        out["onehot_fallback_rate"] = 1.0 - float(np.mean(kept))
    elif mode == "reference":
        kept = [one_row[j] and fusellm_hard_match(teacher.tokens[t_idx[result.student_to_teacher[j][0]]],
                                                  student.tokens[s_idx[j]], teacher.scheme, student.scheme, j == 0)
                for j in range(n)]
        out["onehot_fallback_rate"] = 1.0 - float(np.mean(kept))
    else:
        out["onehot_fallback_rate"] = 1.0 - out["sequence_alignment_rate"]
    if teacher_signals is not None and student_signals is not None:
        out["top1_accuracy"] = _top1_accuracy(teacher, student, result, t_idx, s_idx, vocab_mapping, teacher_signals)
    return out


def _top1_accuracy(teacher, student, result, t_idx, s_idx, vocab_mapping, teacher_signals) -> float | None:
    from ..vocab import canonical_bytes

    top1 = np.asarray(teacher_signals.topk_ids)[:, 0]
    hits, total = 0, 0
    canonical_cache: dict[int, bytes] = {}
    student_canonical: dict[int, bytes] = {}
    for j in range(len(s_idx) - 1):
        position = s_idx[j]
        if student.special[position + 1] if position + 1 < len(student) else True:
            continue
        total += 1
        rows = result.student_to_teacher[j]
        if len(rows) != 1:
            continue
        predicted = int(top1[t_idx[rows[0]]])
        target = int(student.ids[position + 1])
        if vocab_mapping is not None:
            t2s = vocab_mapping.teacher_to_student
            hits += 0 <= predicted < len(t2s) and int(t2s[predicted]) == target
            continue
        # no mapping: compare canonical bytes of the predicted teacher token and the student's next token
        if predicted not in canonical_cache:
            name = teacher_signals.id_to_token(predicted)
            canonical_cache[predicted] = canonical_bytes(name, teacher.scheme, teacher.continuation_prefix)
        if target not in student_canonical:
            student_canonical[target] = canonical_bytes(student.tokens[position + 1], student.scheme,
                                                        student.continuation_prefix)
        hits += canonical_cache[predicted] == student_canonical[target]
    return hits / total if total else None


_VOCAB_CACHE: dict[tuple[int, str, str], object] = {}


def _vocab_tables(tokenizer, name: str, mode: str = "reference"):
    """(Vocabulary, decoded strings without spaces, the same as CodedStrings) of a tokenizer, built once per
    tokenizer object and mode.

    ``reference`` decodes as CDM does (byte fragments become U+FFFD); ``canonical`` keeps each undecodable byte
    distinct (see :func:`ctkd_inspect.vocab.decoded_vocabulary`).
    """
    from ..vocab import CodedStrings, decoded_vocabulary, vocabulary

    key = (id(tokenizer), name, mode)
    if key not in _VOCAB_CACHE:
        vocab = vocabulary(tokenizer, name)
        decoded = decoded_vocabulary(vocab, remove_spaces=True, distinct_bytes=mode == "canonical")
        # the tokenizer is kept in the entry so its id cannot be reused by another object
        _VOCAB_CACHE[key] = (vocab, decoded, CodedStrings.from_strings(decoded), tokenizer)
    return _VOCAB_CACHE[key][:3]


_STATIC_CACHE: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray, float]] = {}


def _static_mapping(t_vocab, s_vocab, teacher_tokenizer, student_tokenizer, mode: str):
    """The static part of the dynamic mapping: (teacher→student, student→teacher, share of the teacher's
    mappable tokens it maps), ``-1`` unmapped; built once per vocabulary pair and mode.

    ``canonical``: the exact mapping over canonical bytes. ``reference``: CDM's author script (``"▁"`` stripped
    from the raw strings of the base vocabularies, see :func:`ctkd_inspect.vocab.cdm_reference_exact_mapping`).
    """
    from ..vocab import cdm_reference_exact_mapping, exact_mapping

    key = (t_vocab.digest, s_vocab.digest, mode)
    if key not in _STATIC_CACHE:
        if mode == "canonical":
            mapping = exact_mapping(t_vocab, s_vocab)
            t2s, s2t = mapping.teacher_to_student, mapping.student_to_teacher
        else:
            t_base = min(int(getattr(teacher_tokenizer, "vocab_size", len(t_vocab))), len(t_vocab))
            s_base = min(int(getattr(student_tokenizer, "vocab_size", len(s_vocab))), len(s_vocab))
            t2s, s2t = cdm_reference_exact_mapping(t_vocab.raw[:t_base], s_vocab.raw[:s_base])
            # CDM pads its teacher→student list to the whole teacher vocabulary (added tokens included) and sizes
            # student→teacher at the student's base vocabulary + 256; the padding is "unmapped" (and so part of the
            # reference mapper's "matched" set)
            t2s = np.concatenate([t2s, np.full(max(len(t_vocab) - len(t2s), 0), -1, np.int64)])
            s2t = np.concatenate([s2t, np.full(256, -1, np.int64)])
        mappable = ~t_vocab.special & np.array([bool(t) for t in t_vocab.raw], dtype=bool)
        limit = min(len(t2s), len(mappable))
        coverage = int((t2s[:limit] >= 0)[mappable[:limit]].sum()) / max(int(mappable.sum()), 1)
        _STATIC_CACHE[key] = (t2s, s2t, coverage)
    return _STATIC_CACHE[key]


def contextual_mapping(groups: list[dict], teacher_signals, student_signals, teacher_tokenizer, student_tokenizer,
                       teacher_name: str, student_name: str, threshold: float = 0.3,
                       mode: str = "canonical", student_to_teacher: dict[int, list[int]] | None = None) -> dict:
    """CDM's dynamic top-K mapping over the rows of CDM's groups, on top of a static exact mapping.

    ``reference`` mode follows CDM's ``transform_step_logits_fast``: a group's row is the **mean of logits** — the
    teacher row averages, over the group's students, each student's mean teacher row (``student_to_teacher``: the
    full-index teacher list of every student index, from the DTW path; without it every teacher of the group
    weighs the same), the student row averages the group's student rows — whose top-K feed CDM's published mapper
    (:func:`ctkd_inspect.vocab.cdm_dynamic_mapping` with ``reference=True``: matched-set subtraction, set order,
    last accepted wins). The logits are recomputed from the signals' final hidden states with each model's head
    (:func:`ctkd_inspect.signals.averaged_topk`), so the models must be loadable.

    ``canonical`` mode keeps, per group, the last teacher position and the last student position: the logits there
    predict what follows the group on each side (the average of a group's rows mixes predictions of different next
    tokens), and the signals' top-K of those positions are used directly.

    ``mode`` also picks the static mapping and the decoding (see :func:`_static_mapping` and :func:`_vocab_tables`).
    Predicted ids beyond the tokenizer's vocabulary (a model's padded embedding rows) have no string and are never
    mapped.

    Returns ``{"pairs": {teacher id: student id} (as strings), "metrics": {"topk_mapping_coverage",
    "static_teacher_coverage", "dynamic_pairs"}}``.
    """
    from ..vocab import cdm_dynamic_mapping

    t_vocab, t_decoded, t_coded = _vocab_tables(teacher_tokenizer, teacher_name, mode)
    s_vocab, s_decoded, s_coded = _vocab_tables(student_tokenizer, student_name, mode)
    static_t2s, static_s2t, static_coverage = _static_mapping(t_vocab, s_vocab, teacher_tokenizer,
                                                              student_tokenizer, mode)
    used = [g for g in groups if g["teacher"] and g["student"]]
    if mode == "reference" and used:
        from ..signals import averaged_topk

        k = min(np.asarray(teacher_signals.topk_ids).shape[1], np.asarray(student_signals.topk_ids).shape[1])
        t_weights, s_weights = [], []
        for g in used:
            if student_to_teacher is not None:
                share = 1.0 / len(g["student"])
                weights: dict[int, float] = {}
                for j in g["student"]:
                    rows = student_to_teacher[j]
                    for i in rows:
                        weights[i] = weights.get(i, 0.0) + share / len(rows)
                t_weights.append(weights)
            else:
                t_weights.append({i: 1.0 / len(g["teacher"]) for i in g["teacher"]})
            s_weights.append({j: 1.0 / len(g["student"]) for j in g["student"]})
        def rows_of(signals, weights):
            # a one-position row is that position's own prediction: its top-K needs no model
            topk = np.asarray(signals.topk_ids)[:, :k]
            out = np.empty((len(weights), k), np.int64)
            single = [len(w) == 1 for w in weights]
            for g, w in enumerate(weights):
                if single[g]:
                    out[g] = topk[next(iter(w))]
            several = [g for g, one in enumerate(single) if not one]
            if several:
                out[several] = averaged_topk(signals, [weights[g] for g in several], k)
            return out

        t_rows = rows_of(teacher_signals, t_weights)
        s_rows = rows_of(student_signals, s_weights)
    else:
        rows = [(g["teacher"][-1], g["student"][-1]) for g in used]
        t_rows = np.asarray(teacher_signals.topk_ids)[[r[0] for r in rows]] if rows else np.zeros((0, 1), np.int64)
        s_rows = np.asarray(student_signals.topk_ids)[[r[1] for r in rows]] if rows else np.zeros((0, 1), np.int64)
    k = min(t_rows.shape[1], s_rows.shape[1])
    t_rows = np.where(t_rows[:, :k] < len(t_decoded), t_rows[:, :k], -1)
    s_rows = np.where(s_rows[:, :k] < len(s_decoded), s_rows[:, :k], -1)
    out = cdm_dynamic_mapping(t_rows, s_rows, t_decoded, s_decoded, static_t2s, static_s2t, threshold,
                              spaces_removed=True, teacher_coded=t_coded, student_coded=s_coded,
                              reference=mode == "reference")
    return {"pairs": {str(a): b for a, b in out["teacher_to_student"].items()},
            "metrics": {"topk_mapping_coverage": out["topk_coverage"],
                        "static_teacher_coverage": static_coverage,
                        "dynamic_pairs": len(out["teacher_to_student"])}}


class MinedEngine(_DTWEngine):
    """MinED (FuseLLM, DSKD): DTW with the marker-stripped Levenshtein cost; needs no model."""

    name: ClassVar[str] = "mined"
    description: ClassVar[str] = "MinED (FuseLLM/DSKD): DTW over token strings, Levenshtein cost"


class CdmEngine(_DTWEngine):
    """CDM: DTW with Levenshtein × entropy factors (3, 4 or 5 per token); needs per-token entropy."""

    name: ClassVar[str] = "cdm"
    description: ClassVar[str] = "CDM: entropy-weighted DTW over token strings (needs both models' entropy)"
    options: ClassVar[tuple[EngineOption, ...]] = (
        MODE_OPTION, VOCAB_MAPPING_OPTION, CHUNKING_OPTION, CHUNK_TOKENS_OPTION, MAX_MEMORY_OPTION,
        EngineOption("teacher_entropy", object, None, "Per-token entropy of the teacher (one value per token), "
                     "instead of a teacher model", cli=False, convert=_entropy_array),
        EngineOption("student_entropy", object, None, "Per-token entropy of the student, instead of a student model",
                     cli=False, convert=_entropy_array),
    )
    requires_signals: ClassVar[frozenset[str]] = frozenset({"entropy"})
    # with models, the top-k predictions feed the dynamic mapping and the Top-1 accuracy
    optional_signals: ClassVar[frozenset[str]] = frozenset({"topk"})

    def needs_model(self, side: str, options: dict) -> bool:
        return options.get(f"{side}_entropy") is None
