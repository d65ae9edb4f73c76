"""Preflight checks: what will break when distilling between two tokenizers, found before any training.

:func:`check_pair` runs every check on the real tokenizers (names or loaded tokenizers) and returns a list of
:class:`Finding` objects, most severe first. Each finding has a ``kind`` (which check), a ``severity``, a one-line
``title``, a ``detail`` paragraph, an ``example`` made of real tokens, ``advice`` on what to do, and ``data`` (the
numbers behind it, JSON-ready).

**Severity rule.**

- ``error``: distillation will silently misalign or lose signal unless handled — one side adds a BOS or EOS the
  other does not (position-paired losses shift by one token), one side's decode round trip changes the text while
  the other's does not (the two models see different texts), a model has fewer embedding rows than its tokenizer
  has ids.
- ``warning``: a measurable loss, or a setting that needs care — characters one side splits into byte tokens,
  digit or whitespace runs cut differently, tokens that can never align 1:1 occurring in the texts checked,
  padding sides or pad tokens that differ, both sides lossy, ``vocab_size`` ≠ ``len(tokenizer)``, a model with
  embedding rows no token uses, chat markers on one side only.
- ``info``: facts (shared vocabulary, special tokens side by side, what each side adds).

**The checks** (``kind``): ``bos-eos`` (which special tokens each side adds to a text by default, from a real
encode), ``split-characters`` (share of characters one side splits across byte tokens while the other keeps them
whole), ``round-trip`` (per side: ``decode(encode(x)) == x``, and which transformation breaks it: case, NFC/NFKC,
accents, whitespace, dropped control characters, unknown tokens), ``digit-runs`` (how each side cuts 1..12-digit
numbers), ``whitespace-runs`` (runs of 1..32 spaces, tabs and newlines), ``special-tokens`` (BOS/EOS/PAD/UNK and
chat markers side by side, the chat templates the tokenizers carry, a suggested mapping), ``vocab-size`` (per
side: ``vocab_size``, ``len(tokenizer)`` and, when the name is an alias of a model or a model GGUF, the model's
embedding rows read from the GGUF header), ``padding`` (padding side and pad token), ``vocab-overlap`` (exact
canonical byte-level overlap and FuseLLM's marker-replacement overlap, :mod:`ctkd_inspect.vocab`), ``never-1to1``
(tokens whose canonical bytes no single token of the other vocabulary has) and, with ``texts``,
``data-alignment`` (the alignment rate and the failure taxonomy of :mod:`ctkd_inspect.failures` over the data).

Without ``texts`` the text-driven checks run on :data:`PROBE_TEXTS` (multilingual text, emoji, combining marks,
control characters, code, numbers, whitespace); with ``texts`` they run on the data, and their numbers are shares
of the data's characters or tokens.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np

from .errors import InputError
from .failures import FailureSummary, text_transformation
from .progress import stage

__all__ = ["CHECK_KINDS", "PROBE_TEXTS", "SEVERITIES", "Finding", "check_pair", "findings_to_json",
           "has_errors", "severity_counts"]

#: Severities, most severe first.
SEVERITIES: tuple[str, ...] = ("error", "warning", "info")
#: Every check's kind, in report order.
CHECK_KINDS: tuple[str, ...] = ("bos-eos", "split-characters", "round-trip", "digit-runs", "whitespace-runs",
                                "special-tokens", "vocab-size", "padding", "vocab-overlap", "never-1to1",
                                "data-alignment")

#: The texts the text-driven checks use when no data is given.
PROBE_TEXTS: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "Hello  world\n\tX café",
    "naïve façade, Zürich, São Paulo, Ångström, œuvre, ß",
    "e\u0301 a\u0300 n\u0303 (combining marks)",
    "ﬁne ﬂow x² H₂O ½ ① Ｆｕｌｌｗｉｄｔｈ",
    "Привет, мир! Καλημέρα κόσμε! Γειά σου",
    "中文字符测试 日本語のテキスト 한국어 텍스트",
    "مرحبا بالعالم ٣٤٥ שלום עולם",
    "हिन्दी पाठ ภาษาไทย ខ្មែរ ᠮᠣᠩᠭᠣᠯ",
    "🦙 🤗 👍🏽 👨\u200d👩\u200d👧 🇫🇷 ☃ ∑ ≤ ∞ € £ ¥ ₹",
    "a\u00a0b\u200bc\ufeffd",
    "tab\tsep\r\nwindows\vline\fform",
    "control\x00char\x01s\x1b[0m\x7f",
    "def f(x):\n    return x**2  # square\n\n\nprint(f(3))",
    "    indented = {'key': [1, 2, 3]}\n        deeper;\n",
    "for (int i = 0; i < 1024; ++i) { sum += a[i]; }",
    "Version 3.14.159, 2024-06-30, 12:45:07, 1,000,000 and 0.000123",
    "Call +1 (555) 010-9999 or pay $1234.56 / 99% / 10^12",
    "x" + " " * 20 + "y" + "\n" * 5 + "z" + "\t" * 3 + "w",
    "https://example.com/path?q=a&b=c#frag user@example.org",
    "It's, isn't it? 'quoted' \"double\" — dash – en … ellipsis",
    "UPPER lower MiXeD camelCase snake_case kebab-case",
)

# Role names of special tokens, and chat markers recognised by name in any vocabulary.
_CHAT_MARKERS: dict[str, tuple[str, ...]] = {
    "turn_start": ("<|start_header_id|>", "<start_of_turn>", "<|im_start|>", "[INST]", "<|user|>",
                   "<|start_of_role|>"),
    "header_end": ("<|end_header_id|>", "<|end_of_role|>"),
    "turn_end": ("<|eot_id|>", "<end_of_turn>", "<|im_end|>", "[/INST]", "<|end|>", "<|end_of_text|>"),
}
_ROLE_ORDER = ("bos", "eos", "pad", "unk", "turn_start", "header_end", "turn_end")
_TEMPLATE_MARKER = re.compile(r"<\|?[A-Za-z_][A-Za-z0-9_]*\|?>|\[/?[A-Z_]+\]")


@dataclass
class Finding:
    """One preflight finding.

    Attributes:
        kind: the check that produced it (one of :data:`CHECK_KINDS`).
        severity: ``error``, ``warning`` or ``info`` (see the module docstring for the rule).
        title: one line.
        detail: what was measured and why it matters.
        example: real tokens showing it (``'12345': llama3 [123][45] · gemma2 [1][2][3][4][5]``).
        advice: what to do.
        data: the numbers behind the finding (JSON-ready).
    """

    kind: str
    severity: str
    title: str
    detail: str
    example: str
    advice: str
    data: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def has_errors(findings: Iterable[Finding]) -> bool:
    """Whether any finding is error-level (``check --strict`` exits 5 then)."""
    return any(f.severity == "error" for f in findings)


def findings_to_json(findings: Sequence[Finding]) -> list[dict]:
    """The ``--json`` output: the findings as a list of dicts (the fields of :class:`Finding`), in report order."""
    return [f.to_dict() for f in findings]


def severity_counts(findings: Iterable[Finding]) -> dict[str, int]:
    """``{severity: number of findings}`` for every severity."""
    counts = Counter(f.severity for f in findings)
    return {s: counts.get(s, 0) for s in SEVERITIES}


# ---------------------------------------------------------------------------------------------------------------
# small helpers


@dataclass
class _Side:
    role: str  # "teacher" or "student"
    name: str
    tokenizer: object

    @property
    def backend(self):
        return self.tokenizer.backend_tokenizer

    @cached_property
    def vocab(self) -> dict[str, int]:
        # get_vocab() rebuilds a dict of every token on each call (half a second for 256k tokens)
        return self.tokenizer.get_vocab()

    def tokenize(self, text: str, add_special_tokens: bool = False):
        from .text import tokenize

        return tokenize(self.tokenizer, text, name=self.name, add_special_tokens=add_special_tokens)


def _resolve(side, role: str) -> _Side:
    from .sources import load_tokenizer
    from .text import tokenizer_profile

    if isinstance(side, str):
        tokenizer = load_tokenizer(side)
        name = side
    elif getattr(side, "backend_tokenizer", None) is None and not hasattr(side, "encode"):
        from .arguments import type_name
        from .errors import InputTypeError

        raise InputTypeError(f"{role} must be a tokenizer name (an alias, a path or a hub id) or a loaded fast "
                             f"tokenizer, got {type_name(side)}")
    else:
        tokenizer = side
        source = getattr(side, "ctkd_source", None)
        name = source.name if source else getattr(side, "name_or_path", "") or type(side).__name__
    tokenizer_profile(tokenizer)  # refuses slow tokenizers with a clear message
    return _Side(role, name, tokenizer)


def _cells(pieces: Sequence[str]) -> str:
    """Token pieces as bracketed cells with whitespace made visible: ``[␣the][re]``."""
    from .render import visible

    return "".join(f"[{visible(p)}]" for p in pieces)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _readable_units(tokens) -> list[str]:
    """Readable pieces with each byte cluster shown as one cell (``🦙×3``)."""
    clusters = {first: (last, text) for first, last, text in tokens.clusters}
    out, index = [], 0
    special = tokens.special.tolist()
    while index < len(tokens):
        if index in clusters:
            last, text = clusters[index]
            out.append(f"{text}×{last - index + 1}")
            index = last + 1
            continue
        out.append(tokens.tokens[index] if special[index] else tokens.pieces[index])
        index += 1
    return out


def _covering(tokens, position: int) -> str:
    """The non-special tokens covering character ``position``, as cells."""
    covering = [i for i in range(len(tokens)) if tokens.starts[i] <= position < tokens.ends[i]
                and not tokens.special[i]]
    return _cells([tokens.pieces[i] for i in covering])


def _cut_points(tokens) -> set[int]:
    """Character positions where a non-special unit (a token, or a whole byte cluster) starts or ends."""
    cluster_of = {}
    for first, last, _ in tokens.clusters:
        for index in range(first, last + 1):
            cluster_of[index] = (first, last)
    starts, ends, special = tokens.starts.tolist(), tokens.ends.tolist(), tokens.special.tolist()
    cuts = set()
    for index in range(len(starts)):
        if special[index]:
            continue
        if index in cluster_of:
            first, last = cluster_of[index]
            start, end = min(starts[first:last + 1]), max(ends[first:last + 1])
        else:
            start, end = starts[index], ends[index]
        if end > start:
            cuts.update((start, end))
    return cuts


def _split_positions(tokens) -> set[int]:
    """Characters whose bytes are split across tokens: covered by two or more tokens of one byte cluster."""
    starts, ends = tokens.starts.tolist(), tokens.ends.tolist()
    out = set()
    for first, last, _ in tokens.clusters:
        counts = Counter(p for index in range(first, last + 1) for p in range(starts[index], ends[index]))
        out.update(p for p, c in counts.items() if c >= 2)
    return out


# ---------------------------------------------------------------------------------------------------------------
# the checks


def _check_bos_eos(teacher: _Side, student: _Side) -> Finding:
    text = "Hello world"
    layout = {}
    units = {}
    for side in (teacher, student):
        tokens = side.tokenize(text, add_special_tokens=True)
        special = tokens.special.tolist()
        regular = [i for i, sp in enumerate(special) if not sp]
        first, last = (regular[0], regular[-1]) if regular else (len(special), len(special))
        layout[side.role] = {"leading": [tokens.tokens[i] for i in range(first)],
                             "trailing": [tokens.tokens[i] for i in range(last + 1, len(special))]}
        units[side.role] = _readable_units(tokens)
    t, s = layout["teacher"], layout["student"]

    def adds(side, record):
        parts = [f"{' '.join(record['leading'])} at the start" if record["leading"] else "",
                 f"{' '.join(record['trailing'])} at the end" if record["trailing"] else ""]
        said = " and ".join(p for p in parts if p)
        return f"{side.name} adds {said or 'nothing'}"

    example = (f"{text!r} → {teacher.name} {_cells(units['teacher'])} · {student.name} "
               f"{_cells(units['student'])}")
    data = {"text": text, "teacher": t, "student": s}
    asymmetric = len(t["leading"]) != len(s["leading"]) or len(t["trailing"]) != len(s["trailing"])
    if asymmetric:
        return Finding(
            "bos-eos", "error", f"BOS/EOS asymmetry: {adds(teacher, t)}, {adds(student, s)}",
            "With the tokenizers' default settings the two sequences of one text start or end with different "
            "numbers of special tokens. A loss that pairs positions by index is then off by one from that token "
            "on; an alignment that compares decoded prefixes (GOLD's old grouping) misgroups the start.",
            example,
            "Pair tokens by characters (span groups leave special tokens out), or tokenize both sides with "
            "add_special_tokens=False and add the same BOS policy to both; drop the extra token's position "
            "before pairing logits.", data)
    same = t["leading"] == s["leading"] and t["trailing"] == s["trailing"]
    mapping = [f"{a} ↔ {b}" for a, b in zip(t["leading"] + t["trailing"], s["leading"] + s["trailing"])]
    return Finding(
        "bos-eos", "info",
        f"Both add the same special tokens: {adds(teacher, t)}, {adds(student, s)}" if same else
        f"Both add special tokens at the same places: {adds(teacher, t)}, {adds(student, s)}",
        "Each side adds as many special tokens at the start and at the end of a text, so positions stay paired.",
        example, "Map " + ", ".join(mapping) + "." if mapping and not same else "Nothing to do.", data)


def _check_split_characters(teacher: _Side, student: _Side, texts: list[str], source: str) -> Finding:
    total = 0
    only = {"teacher": Counter(), "student": Counter()}
    split = {"teacher": 0, "student": 0}
    example = ""
    for text in texts:
        total += len(text)
        t_tokens, s_tokens = teacher.tokenize(text), student.tokenize(text)
        t_split, s_split = _split_positions(t_tokens), _split_positions(s_tokens)
        split["teacher"] += len(t_split)
        split["student"] += len(s_split)
        for role, mine, other in (("teacher", t_split, s_split), ("student", s_split, t_split)):
            for position in sorted(mine - other):
                only[role][text[position]] += 1
        if not example and t_split != s_split:
            position = min(t_split ^ s_split)
            char = text[position]

            example = (f"{char!r} (U+{ord(char):04X}): {teacher.name} {_covering(t_tokens, position)} · "
                       f"{student.name} {_covering(s_tokens, position)}")
    counts = {role: sum(c.values()) for role, c in only.items()}
    data = {"source": source, "texts": len(texts), "characters": total,
            "teacher_split": split["teacher"], "student_split": split["student"],
            "teacher_split_share": _share(split["teacher"], total),
            "student_split_share": _share(split["student"], total),
            "teacher_only": counts["teacher"], "student_only": counts["student"],
            "one_side_only_share": _share(counts["teacher"] + counts["student"], total),
            "teacher_only_characters": dict(only["teacher"].most_common(12)),
            "student_only_characters": dict(only["student"].most_common(12))}
    one_side = counts["teacher"] + counts["student"]
    where = "the data" if source == "data" else "the probe texts"
    title = (f"Characters split across byte tokens on one side only: {_percent(data['one_side_only_share'])} of "
             f"the characters of {where} ({teacher.name} {counts['teacher']}, {student.name} {counts['student']})")
    if not one_side:
        title = (f"No character of {where} is split across byte tokens on one side only "
                 f"({teacher.name} splits {split['teacher']}, {student.name} {split['student']})")
    return Finding(
        "split-characters", "warning" if one_side else "info", title,
        "A character whose UTF-8 bytes one tokenizer spreads over several byte tokens (byte-level BPE, "
        "SentencePiece byte fallback) while the other has it whole can only align as an n:m group: no 1:1 "
        "distribution pair exists for it.",
        example or "no split character in the texts checked",
        "Merge the byte tokens of a group before comparing distributions (GOLD's group merge, the span engine's "
        "groups), or compare at byte level (tokenkit's byteification)." if one_side else "Nothing to do.", data)


def _round_trip(side: _Side, texts: list[str], source: str) -> dict:
    """The measurements of ``decode(encode(x)) == x`` on one side (the ``data`` of its finding)."""
    encodings = side.backend.encode_batch(texts, add_special_tokens=False)
    decoded = side.backend.decode_batch([e.ids for e in encodings], skip_special_tokens=False)
    changes = Counter()
    example = ""
    for original, produced in zip(texts, decoded):
        change = text_transformation(original, produced)
        if change is None:
            continue
        changes[change] += 1
        if not example:
            example = f"{original[:60]!r} → {produced[:60]!r} ({change})"
    failed = sum(changes.values())
    normalizer = side.backend.normalizer
    return {"side": side.role, "tokenizer": side.name, "source": source, "texts": len(texts), "changed": failed,
            "changed_share": _share(failed, len(texts)), "transformations": dict(changes.most_common()),
            "normalizer": None if normalizer is None else str(normalizer)[:300],
            "default_decode_cleans_up_spaces": bool(getattr(side.tokenizer, "clean_up_tokenization_spaces", False)),
            "_example": example}


def _check_round_trip(side: _Side, data: dict, other_lossless: bool, texts: list[str]) -> Finding:
    """The finding for one side's :func:`_round_trip` measurements; an error when only this side is lossy."""
    example = data.pop("_example")
    failed, cleanup = data["changed"], data["default_decode_cleans_up_spaces"]
    where = "the data" if data["source"] == "data" else "the probe texts"
    if not failed:
        note = (" (its default decode also cleans up spaces before punctuation: pass "
                "clean_up_tokenization_spaces=False)") if cleanup else ""
        return Finding(
            "round-trip", "warning" if cleanup else "info",
            f"{side.name}: decode(encode(x)) == x on all {len(texts)} texts of {where}{note}",
            "The tokenizer is lossless on these texts: its tokens stand for the text verbatim.",
            f"{texts[0][:40]!r} survives encode and decode unchanged",
            "Decode with clean_up_tokenization_spaces=False wherever text is re-encoded (sequence-level KD)."
            if cleanup else "Nothing to do.", data)
    kinds = ", ".join(f"{name} ({count})" for name, count in data["transformations"].items())
    return Finding(
        "round-trip", "error" if other_lossless else "warning",
        f"{side.name}: decode(encode(x)) changes {failed} of {len(texts)} texts of {where}: {kinds}",
        "The tokenizer's normaliser or decoder changes the text (lower-casing, accent stripping, Unicode "
        "normalisation, dropped whitespace or control characters, unknown tokens), so its tokens do not stand for "
        "the text verbatim. " + ("The other side is lossless, so the two models see different texts: exact "
                                 "vocabulary matches fail where the text changed, and sequence-level KD on "
                                 "decoded text re-encodes a different string." if other_lossless else
                                 "Both sides change the text."),
        example,
        "Normalise the data once the way this tokenizer does before distilling (so both sides see the same "
        "string), or exclude the changed texts; never compare decoded strings across the two tokenizers.",
        data)


def _digit_strings() -> list[str]:
    return ["123456789012"[:n] for n in range(1, 13)]


def _check_digits(teacher: _Side, student: _Side, summary: FailureSummary | None) -> Finding:
    table, differ = {}, []
    for digits in _digit_strings():
        t_tokens, s_tokens = teacher.tokenize(digits), student.tokenize(digits)
        table[len(digits)] = {"text": digits, "teacher": _readable_units(t_tokens),
                              "student": _readable_units(s_tokens)}
        if _cut_points(t_tokens) != _cut_points(s_tokens):
            differ.append(len(digits))
    data = {"lengths": table, "lengths_cut_differently": differ}
    if summary is not None:
        data.update(source="data", data_characters=summary.characters,
                    data_digit_run_characters=summary.characters_by_kind.get("digit-run", 0),
                    data_digit_run_share=summary.character_share("digit-run"),
                    data_digit_run_groups=summary.kinds.get("digit-run", 0))
    shown = 5 if 5 in differ else (differ[0] if differ else 5)
    row = table[shown]
    example = f"{row['text']!r}: {teacher.name} {_cells(row['teacher'])} · {student.name} {_cells(row['student'])}"
    if not differ:
        return Finding("digit-runs", "info", "Numbers of 1 to 12 digits are cut alike on both sides",
                       "Every digit run of the probe lengths gives the same cut points on both sides.", example,
                       "Nothing to do.", data)
    in_data = ""
    if summary is not None:
        in_data = (f"; in the data {_percent(data['data_digit_run_share'])} of the characters lie in groups "
                   f"where digit runs are cut differently")
    return Finding(
        "digit-runs", "warning",
        f"Digit runs are cut differently for {len(differ)} of 12 lengths{in_data}",
        f"{teacher.name} and {student.name} cut numbers at different places, so a number becomes an n:m group "
        "and its tokens never pair 1:1; a multi-digit token of one side has no single-token counterpart (the "
        "failure X-Token reports for GOLD on GSM8k).",
        example,
        "Compare digits after grouping (merge the probabilities of a group's tokens), or give the student's digit "
        "tokens the teacher's grouped targets; do not rely on a 1:1 vocabulary mapping for numbers.", data)


def _check_whitespace(teacher: _Side, student: _Side, summary: FailureSummary | None) -> Finding:
    runs = {"space": " ", "tab": "\t", "newline": "\n"}
    differ: dict[str, list[int]] = {name: [] for name in runs}
    first_example = None
    for name, char in runs.items():
        for length in range(1, 33):
            text = f"x{char * length}y"
            t_tokens, s_tokens = teacher.tokenize(text), student.tokenize(text)
            if _cut_points(t_tokens) != _cut_points(s_tokens):
                differ[name].append(length)
                if first_example is None or (name == "space" and length == 4):
                    first_example = (text, _readable_units(t_tokens), _readable_units(s_tokens))
    count = sum(len(v) for v in differ.values())
    data = {"lengths_cut_differently": differ}
    if summary is not None:
        data.update(source="data", data_characters=summary.characters,
                    data_whitespace_run_characters=summary.characters_by_kind.get("whitespace-run", 0),
                    data_whitespace_run_share=summary.character_share("whitespace-run"),
                    data_leading_space_share=summary.character_share("leading-space"))
    if not count:
        return Finding("whitespace-runs", "info", "Runs of 1 to 32 spaces, tabs and newlines are cut alike",
                       "Every probed run gives the same cut points on both sides.", "'x    y' is cut alike",
                       "Nothing to do.", data)
    text, t_units, s_units = first_example
    summary_text = ", ".join(f"{name} ×{_ranges(lengths)}" for name, lengths in differ.items() if lengths)
    in_data = ""
    if summary is not None:
        in_data = (f"; in the data {_percent(data['data_whitespace_run_share'])} of the characters lie in groups "
                   f"with whitespace runs cut differently")
    return Finding(
        "whitespace-runs", "warning", f"Whitespace runs are cut differently: {summary_text}{in_data}",
        "Indentation and blank lines become n:m groups when one tokenizer has multi-space pieces the other "
        "lacks, or attaches the last space of a run to the next word.",
        f"{text!r}: {teacher.name} {_cells(t_units)} · {student.name} {_cells(s_units)}",
        "Expect n:m groups in code and indented text; merge group probabilities, or normalise runs of whitespace "
        "in the data the same way for both sides.", data)


def _ranges(values: list[int]) -> str:
    """``[1, 2, 3, 5, 8, 9]`` → ``"1–3, 5, 8–9"``."""
    out, start, previous = [], None, None
    for value in [*values, None]:
        if start is None:
            start = previous = value
        elif value is not None and value == previous + 1:
            previous = value
        else:
            out.append(f"{start}–{previous}" if previous != start else f"{start}")
            start = previous = value
    return ", ".join(out)


def _roles(side: _Side) -> dict:
    """Special-token roles of one side: declared BOS/EOS/PAD/UNK, the BOS/EOS it really adds, chat markers."""
    tokenizer = side.tokenizer
    vocab = side.vocab
    added = side.backend.get_added_tokens_decoder()
    special_ids = {int(i) for i, t in added.items() if getattr(t, "special", False)}
    markers = {token for names in _CHAT_MARKERS.values() for token in names}
    roles: dict[str, dict | None] = {}

    def record(token):
        if token is None or token not in vocab:
            return None
        index = int(vocab[token])
        return {"token": token, "id": index, "special": index in special_ids}

    probe = side.tokenize("Hello", add_special_tokens=True)
    special = probe.special.tolist()
    leading = [probe.tokens[i] for i in range(len(special)) if special[i] and i == 0]
    trailing = [probe.tokens[-1]] if special and special[-1] and len(special) > 1 else []
    declared = {"bos": getattr(tokenizer, "bos_token", None), "eos": getattr(tokenizer, "eos_token", None),
                "pad": getattr(tokenizer, "pad_token", None), "unk": getattr(tokenizer, "unk_token", None)}
    # BOS is the token the tokenizer really puts first; a declared BOS that is only a chat marker (SmolLM2
    # declares <|im_start|>) and is never added is not a BOS for distillation purposes
    bos = leading[0] if leading else None
    if bos is None and declared["bos"] and declared["bos"] not in markers:
        bos = declared["bos"]
    roles["bos"] = record(bos)
    if roles["bos"] is not None:
        roles["bos"]["added_by_default"] = bool(leading)
    roles["eos"] = record(declared["eos"])
    if roles["eos"] is not None:
        roles["eos"]["added_by_default"] = bool(trailing) and trailing[0] == declared["eos"]
    roles["pad"] = record(declared["pad"])
    roles["unk"] = record(declared["unk"])
    for role, names in _CHAT_MARKERS.items():
        roles[role] = next((record(name) for name in names if name in vocab), None)
    template = getattr(tokenizer, "chat_template", None) or None
    if isinstance(template, dict):  # several named templates
        template = template.get("default") or next(iter(template.values()), None)
    in_template = []
    if template:
        in_template = sorted({m for m in _TEMPLATE_MARKER.findall(template) if m in vocab})
    return {"roles": roles, "declared": declared, "chat_template": template, "template_markers": in_template,
            "adds": {"leading": leading, "trailing": trailing}}


def _check_special_tokens(teacher: _Side, student: _Side) -> Finding:
    t, s = _roles(teacher), _roles(student)
    mapping, one_sided = [], []
    for role in _ROLE_ORDER:
        a, b = t["roles"].get(role), s["roles"].get(role)
        if a and b:
            mapping.append({"role": role, "teacher": a["token"], "student": b["token"],
                            "teacher_id": a["id"], "student_id": b["id"]})
        elif a or b:
            one_sided.append({"role": role, "teacher": a["token"] if a else None,
                              "student": b["token"] if b else None})
    t_chat = any(t["roles"][r] for r in _CHAT_MARKERS)
    s_chat = any(s["roles"][r] for r in _CHAT_MARKERS)
    data = {
        "teacher": {"roles": t["roles"], "declared": t["declared"], "chat_template": t["chat_template"],
                    "template_markers": t["template_markers"]},
        "student": {"roles": s["roles"], "declared": s["declared"], "chat_template": s["chat_template"],
                    "template_markers": s["template_markers"]},
        "suggested_mapping": mapping, "one_sided": one_sided,
    }
    pairs = ", ".join(f"{m['teacher']} ↔ {m['student']}" for m in mapping)
    templates = "; ".join(
        f"{side.name} {'carries a chat template (' + ', '.join(info['template_markers']) + ')' if info['chat_template'] else 'carries no chat template'}"  # noqa: E501
        for side, info in ((teacher, t), (student, s)))
    unmatched = ", ".join(f"{o['role']}: {o['teacher'] or '—'} ↔ {o['student'] or '—'}" for o in one_sided)
    detail = (f"Special tokens by role (BOS is what the tokenizer really adds; chat markers are found by name). "
              f"{templates}." + (f" One side only: {unmatched}." if unmatched else ""))
    severity = "warning" if t_chat != s_chat else "info"
    title = f"Special tokens and chat markers: map {pairs}" if pairs else "No special-token role in common"
    if t_chat != s_chat:
        missing = student.name if t_chat else teacher.name
        title += f"; {missing} has no chat markers"
    example = "; ".join(f"{m['role']}: {m['teacher']} ({m['teacher_id']}) ↔ {m['student']} ({m['student_id']})"
                        for m in mapping[:4]) or "no shared role"
    advice = (f"Render chat data with each side's own template and map the markers by role ({pairs}); do not "
              "let one side's marker text reach the other tokenizer as plain text." if pairs else
              "Write the mapping by hand.")
    if one_sided:
        advice += " Roles one side lacks (" + ", ".join(o["role"] for o in one_sided) + ") have no counterpart: " \
                  "drop those positions or map them to the nearest role (end of turn → EOS)."
    return Finding("special-tokens", severity, title, detail, example, advice, data)


def _embedding_rows(side: _Side) -> tuple[int | None, str]:
    """The model's embedding rows when the side names a model (an alias with a model, or a model GGUF)."""
    from .errors import FetchError
    from .sources.gguf import GGUFError, read_gguf_tensor_shapes

    source = getattr(side.tokenizer, "ctkd_source", None)
    path = None
    if source is not None and source.alias:
        from .sources.assets import asset_path
        from .sources.registry import ALIASES

        alias = ALIASES.get(source.alias)
        if alias is not None and alias.model_file:
            try:
                path = asset_path(alias.asset, alias.model_file, fetch_missing=False)
            except FetchError:
                return None, f"the model file of {alias.name} is not fetched"
    elif source is not None and str(source.location).lower().endswith(".gguf"):
        from pathlib import Path

        path = Path(source.location)
    if path is None:
        return None, ""
    try:
        shapes = read_gguf_tensor_shapes(path)
    except (GGUFError, OSError) as exc:
        return None, f"could not read {path.name}: {exc}"
    shape = shapes.get("token_embd.weight")
    if not shape or len(shape) != 2:
        return None, ""
    return int(shape[1]), path.name


def _check_vocab_size(side: _Side) -> Finding:
    tokenizer = side.tokenizer
    vocab_size = int(getattr(tokenizer, "vocab_size", 0) or 0)
    length = len(tokenizer)
    max_id = max(side.vocab.values()) + 1
    rows, where = _embedding_rows(side)
    data = {"side": side.role, "tokenizer": side.name, "vocab_size": vocab_size, "len": length,
            "max_id_plus_one": max_id, "embedding_rows": rows, "model_file": where or None}
    problems, severity = [], "info"
    if rows is not None and rows < max_id:
        severity = "error"
        problems.append(f"the model has {rows:,} embedding rows but the tokenizer has ids up to {max_id - 1:,}")
    if vocab_size != length:
        severity = "warning" if severity == "info" else severity
        problems.append(f"vocab_size {vocab_size:,} ≠ len(tokenizer) {length:,} (added tokens beyond the base "
                        "vocabulary)")
    if rows is not None and rows > max_id:
        severity = "warning" if severity == "info" else severity
        problems.append(f"the model has {rows - max_id:,} embedding rows no token uses (it can predict ids that "
                        "decode to nothing)")
    rows_text = f", model embedding rows {rows:,} ({where})" if rows is not None else ""
    title = f"{side.name}: vocab_size {vocab_size:,}, len(tokenizer) {length:,}{rows_text}"
    if problems:
        title += ": " + "; ".join(problems)
    advice = "Nothing to do."
    if severity == "error":
        advice = "This model and tokenizer do not belong together: use the tokenizer shipped with the model."
    elif problems:
        advice = ("Size distributions and vocabulary mappings by the model's embedding rows and len(tokenizer), "
                  "never by vocab_size alone (TRL's GKD vocabulary check trips on the difference); mask ids "
                  "without a token.")
    return Finding("vocab-size", severity, title,
                   "Distribution tensors have one entry per embedding row; a vocabulary mapping has one per "
                   "tokenizer id. Where the two sizes differ, ids beyond the smaller one must be handled.",
                   f"{side.name}: vocab_size={vocab_size}, len={length}"
                   + (f", token_embd.weight rows={rows}" if rows is not None else ""), advice, data)


def _check_padding(teacher: _Side, student: _Side) -> Finding:
    info = {}
    for side in (teacher, student):
        tokenizer = side.tokenizer
        pad, eos = getattr(tokenizer, "pad_token", None), getattr(tokenizer, "eos_token", None)
        info[side.role] = {"tokenizer": side.name, "padding_side": getattr(tokenizer, "padding_side", None),
                           "pad_token": pad, "pad_id": getattr(tokenizer, "pad_token_id", None),
                           "pad_is_eos": pad is not None and pad == eos}
    t, s = info["teacher"], info["student"]
    problems = []
    if t["padding_side"] != s["padding_side"]:
        problems.append(f"padding sides differ ({teacher.name} {t['padding_side']}, {student.name} "
                        f"{s['padding_side']})")
    for side, record in ((teacher, t), (student, s)):
        if record["pad_token"] is None:
            problems.append(f"{side.name} has no pad token")
        elif record["pad_is_eos"]:
            problems.append(f"{side.name} pads with its EOS {record['pad_token']} (masking padding masks EOS too)")
    example = " · ".join(f"{side.name}: " + (f"pad {r['pad_token']}" if r["pad_token"] is not None else "no pad token")
                         + f" on the {r['padding_side']}" for side, r in ((teacher, t), (student, s)))
    if not problems:
        return Finding("padding", "info", "Both sides pad on the same side with their own pad token",
                       "Padded batches keep the same position layout on both sides.", example, "Nothing to do.",
                       info)
    reasons = []
    if t["padding_side"] != s["padding_side"]:
        reasons.append("With left padding on one side and right padding on the other, the same text starts at "
                       "different positions in the two batches.")
    if t["pad_is_eos"] or s["pad_is_eos"]:
        reasons.append("A pad token equal to EOS is masked out of the labels together with the real EOS, so the "
                       "model never learns to stop.")
    if t["pad_token"] is None or s["pad_token"] is None:
        reasons.append("A tokenizer without a pad token cannot batch texts of different lengths until one is set.")
    return Finding(
        "padding", "warning", "Padding: " + "; ".join(problems), " ".join(reasons),
        example,
        "Set the same padding_side on both tokenizers for distillation batches and pair positions through "
        "attention masks or alignment groups, never by index; give a tokenizer that pads with EOS a distinct pad "
        "token, or mask by attention mask rather than by pad id.", info)


def _vocabularies(teacher: _Side, student: _Side):
    from .vocab import vocabulary

    return vocabulary(teacher.tokenizer, teacher.name), vocabulary(student.tokenizer, student.name)


def _check_overlap(teacher: _Side, student: _Side, t_vocab, s_vocab, canonical, reference) -> Finding:
    def block(mapping):
        coverage = mapping.coverage()
        return {"teacher_mapped": coverage["teacher"]["mapped"], "student_mapped": coverage["student"]["mapped"],
                "teacher_mappable": coverage["teacher"]["mappable"],
                "student_mappable": coverage["student"]["mappable"],
                "teacher_share": coverage["teacher"]["mapped_share"],
                "student_share": coverage["student"]["mapped_share"]}

    data = {"canonical": block(canonical), "reference": block(reference)}
    c, r = data["canonical"], data["reference"]
    example = ""
    # a word with its leading space: spelled differently in the two vocabularies, equal as bytes
    for i in np.flatnonzero(canonical.teacher_to_student >= 0).tolist():
        j, word = int(canonical.teacher_to_student[i]), t_vocab.canonical[i]
        if t_vocab.raw[i] != s_vocab.raw[j] and word[:1] == " " and len(word) > 3 and word[1:].isascii() \
                and word[1:].isalpha():
            example = f"{t_vocab.raw[i]} ({i}) ↔ {s_vocab.raw[j]} ({j}): both stand for {_bytes_text(word)!r}"
            break
    return Finding(
        "vocab-overlap", "info",
        f"Shared vocabulary: {c['teacher_mapped']:,} {teacher.name} tokens have an exact byte-level counterpart "
        f"({_percent(c['teacher_share'])}); FuseLLM's marker replacement finds {r['teacher_mapped']:,}",
        "Exact canonical overlap compares the bytes each token stands for (tokenkit's byteification: Ġ, ▁ and "
        "<0xNN> all become bytes); the reference overlap replaces the teacher's word-start marker by the "
        "student's and compares raw strings, as FuseLLM's vocabulary mapping does, and misses tokens spelled in "
        "different alphabets.",
        example,
        "Use the canonical exact mapping (ctkd-inspect vocab, or export --format dskd --mapping exact) wherever "
        "a method needs an exact vocabulary map.", data)


def _check_never_one_to_one(teacher: _Side, student: _Side, t_vocab, s_vocab, canonical, texts: list[str],
                            source: str) -> Finding:
    from .vocab import _mappable

    sides = {}
    for side, vocab, mapping in ((teacher, t_vocab, canonical.teacher_to_student),
                                 (student, s_vocab, canonical.student_to_teacher)):
        ok = _mappable(vocab)
        never = ok & (mapping < 0)
        ids = np.flatnonzero(never)
        digits = [i for i in ids.tolist() if _MULTI_DIGIT.fullmatch(vocab.canonical[i])]
        spaces = [i for i in ids.tolist() if _MULTI_WHITESPACE.fullmatch(vocab.canonical[i])]
        sides[side.role] = {"tokenizer": side.name, "never": int(never.sum()), "mappable": int(ok.sum()),
                            "share": _share(int(never.sum()), int(ok.sum())),
                            "multi_digit": len(digits), "whitespace_runs": len(spaces),
                            "examples_multi_digit": [vocab.raw[i] for i in digits[:6]],
                            "examples_whitespace": [vocab.raw[i] for i in spaces[:6]],
                            "examples": [vocab.raw[i] for i in ids[:6].tolist()],
                            "_shown": [_bytes_text(vocab.canonical[i])
                                       for i in (digits or spaces or ids.tolist())[:3]],
                            "_never": never}
    # how often such tokens occur in the texts checked
    occurrences = {}
    for side in (teacher, student):
        never = sides[side.role].pop("_never")
        encodings = side.backend.encode_batch(texts, add_special_tokens=False)
        ids = np.fromiter((i for e in encodings for i in e.ids), dtype=np.int64)
        ids = ids[ids < len(never)]
        hits = int(never[ids].sum()) if len(ids) else 0
        occurrences[side.role] = {"tokens": len(ids), "never_1to1_tokens": hits, "share": _share(hits, len(ids))}
        sides[side.role]["in_texts"] = occurrences[side.role]
    data = {"source": source, **sides}
    t, s = sides["teacher"], sides["student"]
    used = occurrences["teacher"]["never_1to1_tokens"] + occurrences["student"]["never_1to1_tokens"]
    where = "the data" if source == "data" else "the probe texts"
    example_parts = []
    for side, record in ((teacher, t), (student, s)):
        shown = record.pop("_shown")
        if shown:
            example_parts.append(f"{side.name} {_cells(shown)}")
    return Finding(
        "never-1to1", "warning" if used else "info",
        f"Tokens that can never align 1:1: {t['never']:,} of {teacher.name} ({_percent(t['share'])}), "
        f"{s['never']:,} of {student.name} ({_percent(s['share'])}); they make up "
        f"{_percent(occurrences['teacher']['share'])} / {_percent(occurrences['student']['share'])} of the "
        f"tokens of {where}",
        "A token whose bytes no single token of the other vocabulary has can only sit in 1:n, n:1 or n:m groups. "
        f"Among them: {t['multi_digit']:,} multi-digit (ASCII) and {t['whitespace_runs']:,} whitespace-run tokens of "
        f"{teacher.name}, {s['multi_digit']:,} and {s['whitespace_runs']:,} of {student.name}.",
        "; ".join(example_parts) or "none",
        "Handle these positions with group-level losses (merged probabilities) or a many-to-one projection "
        "(X-Token); a 1:1 exact map leaves them without a target.", data)


def _bytes_text(canonical: str) -> str:
    """A canonical vocabulary string (one character per byte) as the text its bytes stand for."""
    return canonical.encode("latin-1").decode("utf-8", "replace")


# Canonical strings hold one character per byte, so only ASCII classes are meaningful (0x85 or 0xB2 are UTF-8
# continuation bytes, not a space or a digit): two or more ASCII digits, two or more ASCII whitespace bytes.
_MULTI_DIGIT = re.compile(r"[0-9]{2,}")
_MULTI_WHITESPACE = re.compile(r"[ \t\n\r\x0b\x0c]{2,}")


def _data_summary(teacher: _Side, student: _Side, texts: list[str]) -> FailureSummary:
    from .alignment import Alignment
    from .engines.span import span_groups_corpus
    from .text import tokenize_corpus

    summary = FailureSummary()
    chunk = 512
    with stage("aligning the data", total=len(texts), unit="texts") as bar:
        for start in range(0, len(texts), chunk):
            part = texts[start:start + chunk]
            t = tokenize_corpus(teacher.tokenizer, part, name=teacher.name)
            s = tokenize_corpus(student.tokenizer, part, name=student.name)
            groups = span_groups_corpus(t, s)
            for offset in range(len(part)):
                summary.add(Alignment(t[offset], s[offset], groups[offset], "span"), start + offset)
            bar.advance(len(part))
    return summary


def _check_data_alignment(teacher: _Side, student: _Side, summary: FailureSummary) -> Finding:
    from .failures import KINDS

    rate = None if not summary.student_tokens else 1 - summary.token_share()
    top = [(kind, summary.student_tokens_by_kind.get(kind, 0)) for kind in KINDS]
    top = sorted((item for item in top if item[1]), key=lambda item: -item[1])
    parts = ", ".join(f"{kind} {_percent(_share(count, summary.student_tokens))}" for kind, count in top[:4])
    example = ""
    if top:
        examples = summary.examples(top[0][0])
        if examples:
            e = examples[0]
            example = (f"text {e['text_index']}, {e['text'][:40]!r}: {teacher.name} {_cells(e['teacher_pieces'])} · "
                       f"{student.name} {_cells(e['student_pieces'])}")
    return Finding(
        "data-alignment", "info",
        f"On the data, {_percent(rate)} of {student.name} tokens align exactly 1:1; the rest by primary cause: "
        f"{parts or 'none'}",
        f"Span alignment of {summary.texts} texts ({summary.characters:,} characters, {summary.student_tokens:,} "
        f"{student.name} tokens); failures classified by ctkd_inspect.failures.",
        example or "every group is exact",
        "Run `ctkd-inspect corpus` for the full report with examples and the worst texts.",
        {"alignment_rate": rate, "failures": summary.to_dict()})


# ---------------------------------------------------------------------------------------------------------------
# the entry point


def check_pair(teacher, student, texts: Iterable[str] | None = None, *, limit: int | None = None,
               probes: Sequence[str] | None = None) -> list[Finding]:
    """Run every preflight check on a teacher/student tokenizer pair.

    Args:
        teacher, student: tokenizer names (aliases, paths, hub ids: see
            :func:`~ctkd_inspect.sources.load_tokenizer`) or loaded fast tokenizers.
        texts: the user's data; when given, the text-driven checks (split characters, round trip, tokens that
            never align 1:1) use it instead of the probe texts, and digit/whitespace findings add the share of the
            data's characters affected, from a span alignment of the data. Empty texts are skipped.
        limit: use at most this many texts of ``texts``.
        probes: the probe texts (default :data:`PROBE_TEXTS`).

    Returns:
        The findings, errors first, then warnings, then facts; within a severity in :data:`CHECK_KINDS` order.

    Raises:
        TokenizerNotFound / TokenizerLoadError: a name cannot be resolved or loaded.
        InputError: ``texts`` is given but holds no non-empty text or is not an iterable of strings, ``limit`` is
            not a positive integer, or ``teacher`` / ``student`` is neither a name nor a fast tokenizer.
    """
    if limit is not None:
        from .arguments import check_positive_number

        check_positive_number(limit, "limit", integer=True)
    if texts is not None and (isinstance(texts, (str, bytes)) or not hasattr(texts, "__iter__")):
        from .arguments import type_name
        from .errors import InputTypeError

        raise InputTypeError(f"texts must be a list (or any iterable) of strings, got {type_name(texts)}")
    t_side, s_side = _resolve(teacher, "teacher"), _resolve(student, "student")
    probe_texts = list(probes if probes is not None else PROBE_TEXTS)
    data_texts = None
    if texts is not None:
        data_texts = []
        for text in texts:
            if not isinstance(text, str):
                raise InputError(f"texts must be strings, got {type(text).__name__}")
            if text:
                data_texts.append(text)
            if limit is not None and len(data_texts) >= limit:
                break
        if not data_texts:
            raise InputError("texts holds no non-empty text: give at least one text, or leave texts out to run "
                             "the checks on the built-in probe texts")
    sample, source = (data_texts, "data") if data_texts is not None else (probe_texts, "probes")
    findings: list[Finding] = []
    with stage("preflight checks", total=10, unit="checks") as bar:
        findings.append(_check_bos_eos(t_side, s_side))
        bar.advance()
        findings.append(_check_split_characters(t_side, s_side, sample, source))
        bar.advance()
        t_trip, s_trip = _round_trip(t_side, sample, source), _round_trip(s_side, sample, source)
        findings.append(_check_round_trip(t_side, t_trip, s_trip["changed"] == 0, sample))
        findings.append(_check_round_trip(s_side, s_trip, t_trip["changed"] == 0, sample))
        bar.advance()
        summary = _data_summary(t_side, s_side, data_texts) if data_texts is not None else None
        findings.append(_check_digits(t_side, s_side, summary))
        bar.advance()
        findings.append(_check_whitespace(t_side, s_side, summary))
        bar.advance()
        findings.append(_check_special_tokens(t_side, s_side))
        bar.advance()
        findings.append(_check_vocab_size(t_side))
        findings.append(_check_vocab_size(s_side))
        bar.advance()
        findings.append(_check_padding(t_side, s_side))
        bar.advance()
        from .vocab import exact_mapping

        t_vocab, s_vocab = _vocabularies(t_side, s_side)
        canonical = exact_mapping(t_vocab, s_vocab, "canonical")
        reference = exact_mapping(t_vocab, s_vocab, "reference")
        findings.append(_check_overlap(t_side, s_side, t_vocab, s_vocab, canonical, reference))
        bar.advance()
        findings.append(_check_never_one_to_one(t_side, s_side, t_vocab, s_vocab, canonical, sample, source))
        bar.advance()
        if summary is not None:
            findings.append(_check_data_alignment(t_side, s_side, summary))
    order = {kind: i for i, kind in enumerate(CHECK_KINDS)}
    rank = {severity: i for i, severity in enumerate(SEVERITIES)}
    return sorted(findings, key=lambda f: (rank[f.severity], order[f.kind]))
