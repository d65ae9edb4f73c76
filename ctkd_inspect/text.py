"""Tokenizations: ids, vocabulary strings, readable pieces and ``[start, end)`` character spans of one text.

How the quirks of real tokenizers are represented (every engine and front-end relies on these rules):

- **Spans are character offsets into the original text** (Python ``str`` indices, i.e. code points), half-open.
  They come from the fast tokenizer's offset mapping, so normalisation (lower-casing, accent stripping, NFC)
  maps back to the original characters.
- **Special tokens** (BOS/EOS/CLS/SEP, and added tokens marked special) are flagged ``special``; the ones a
  post-processor inserts have the empty span ``(0, 0)``. Engines never align special tokens.
- **Byte-level BPE** (Llama 3, GPT-2, Qwen, SmolLM2): a leading space is inside the token's span, and tokens
  holding continuation bytes of one character all report that character's span, so spans overlap
  (``ĠðŁ`` (9,11), ``¦`` (10,11), ``Ļ`` (10,11) for " 🦙").
- **SentencePiece byte fallback** (Llama 2, Mistral, Gemma 3): each ``<0xNN>`` token of a multi-byte character
  reports that character's span.
- Tokens whose bytes do not form whole characters on their own are grouped into **byte clusters**: the shortest
  runs of consecutive tokens whose bytes decode to complete characters. A cluster's ``text`` is what the run
  decodes to (" 🦙"); front-ends draw a cluster as one cell, and each token's readable ``piece`` shows its
  partial bytes as ``<0xNN>``.
- **SentencePiece dummy prefix** (Llama 2, Mistral, Phi-3, XLM-R): the prepended ``▁`` has no source character;
  ``▁Hi`` spans (0,2). Gemma has no dummy prefix.
- **WordPiece** (BERT): spans exclude whitespace and characters the normaliser drops (control characters), so
  the text has gaps no token covers; an unknown word becomes one ``[UNK]`` spanning the whole word.
- **BOS defaults differ by tokenizer** (Llama 3 and Gemma add BOS, Qwen and GPT-2 do not; BERT adds CLS/SEP);
  ``add_special_tokens=False`` tokenizes without any.
- **Text clean-up:** lone surrogate code points (which cannot be encoded as UTF-8, e.g. from undecodable command
  line bytes) are replaced by U+FFFD one for one, so offsets still index the text the caller passed.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .errors import InputError, TokenizerCapabilityError

SPIECE = "\u2581"
_SURROGATES = re.compile("[\ud800-\udfff]")
_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


def _hex_errors(error: UnicodeDecodeError):
    bad = error.object[error.start:error.end]
    return "".join(f"<0x{b:02X}>" for b in bad), error.end


codecs.register_error("ctkd-hex", _hex_errors)


def clean_text(text: str) -> tuple[str, int]:
    """Replace lone surrogates by U+FFFD (one for one, so offsets are unchanged); return the text and how many.

    Raises:
        InputError: ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise InputError(f"text must be a str, got {type(text).__name__}")
    cleaned, count = _SURROGATES.subn("\ufffd", text)
    return cleaned, count


# ---------------------------------------------------------------------------------------------------------------
# tokenizer profiles: how vocabulary strings map to bytes


@dataclass(frozen=True)
class TokenizerProfile:
    """What kind of vocabulary a tokenizer has, derived once from its backend.

    ``scheme`` is one of ``byte-level`` (GPT-2 style ``Ġ`` alphabet), ``sentencepiece`` (``▁`` marker, optional
    ``<0xNN>`` byte fallback), ``wordpiece`` (``##`` continuation prefix) or ``plain``.
    """

    scheme: str
    special_ids: frozenset[int]  # control tokens (BOS, EOS, chat markers...); never the unknown token
    continuation_prefix: str = "##"

    @property
    def special_id_array(self) -> np.ndarray:
        return np.fromiter(sorted(self.special_ids), dtype=np.int64, count=len(self.special_ids))


def _component_state(component) -> str:
    if component is None:
        return ""
    try:
        state = component.__getstate__()
        return state.decode("utf-8", "replace") if isinstance(state, bytes) else json.dumps(state)
    except Exception:
        return type(component).__name__


def tokenizer_profile(tokenizer) -> TokenizerProfile:
    """The :class:`TokenizerProfile` of a fast tokenizer (cached on the object): a transformers
    ``PreTrainedTokenizerFast`` or a :class:`~ctkd_inspect.sources.RustTokenizer`, which give the same profile.

    Raises:
        TokenizerCapabilityError: the tokenizer has no Rust backend (it cannot report offsets).
    """
    cached = getattr(tokenizer, "_ctkd_profile", None)
    if cached is not None:
        return cached
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise TokenizerCapabilityError(
            f"{type(tokenizer).__name__} is not a fast tokenizer and cannot report character offsets; load it "
            "with use_fast=True or through ctkd_inspect.load_tokenizer")
    model = type(backend.model).__name__
    decoder = _component_state(backend.decoder)
    pre = _component_state(backend.pre_tokenizer)
    normalizer = _component_state(backend.normalizer)
    if model == "WordPiece":
        scheme = "wordpiece"
        prefix = getattr(backend.model, "continuing_subword_prefix", "##") or "##"
    elif "ByteLevel" in decoder or "ByteLevel" in pre:
        scheme, prefix = "byte-level", "##"
    elif SPIECE in decoder or SPIECE in pre or SPIECE in normalizer or "Metaspace" in pre:
        scheme, prefix = "sentencepiece", "##"
    else:
        scheme, prefix = "plain", "##"
    # "Special" means control tokens: the added tokens the backend itself marks special. transformers'
    # all_special_ids is not used: some classes list every added token there (Gemma lists its whitespace-run
    # pieces), and it includes the unknown token, which stands for real text and must be aligned like any other.
    special = set()
    try:
        for index, added in backend.get_added_tokens_decoder().items():
            if getattr(added, "special", False):
                special.add(int(index))
    except Exception:
        pass
    unk_id = getattr(tokenizer, "unk_token_id", None)
    special.discard(unk_id)
    profile = TokenizerProfile(scheme, frozenset(special), prefix)
    with contextlib.suppress(Exception):  # some tokenizer classes refuse new attributes; then no caching
        tokenizer._ctkd_profile = profile
    return profile


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    from .sources.builders import byte_decoder

    return byte_decoder()


def token_bytes(token: str, scheme: str, continuation_prefix: str = "##") -> bytes:
    """The bytes a vocabulary string stands for, under a tokenizer scheme.

    >>> token_bytes("ĠðŁ", "byte-level")
    b' \\xf0\\x9f'
    >>> token_bytes("▁Hi", "sentencepiece"), token_bytes("<0x0A>", "sentencepiece")
    (b' Hi', b'\\n')
    >>> token_bytes("##ing", "wordpiece")
    b'ing'
    """
    if scheme == "byte-level":
        table = _byte_decoder()
        if all(ch in table for ch in token):
            return bytes(table[ch] for ch in token)
        return token.encode("utf-8")
    if scheme == "sentencepiece":
        match = _BYTE_PIECE.match(token)
        if match:
            return bytes([int(match.group(1), 16)])
        return token.replace(SPIECE, " ").encode("utf-8")
    if scheme == "wordpiece" and token.startswith(continuation_prefix) and len(token) > len(continuation_prefix):
        return token[len(continuation_prefix):].encode("utf-8")
    return token.encode("utf-8")


def readable_piece(raw: bytes) -> str:
    """Bytes as text, with bytes that do not complete a character shown as ``<0xNN>``."""
    return raw.decode("utf-8", errors="ctkd-hex")


def byte_clusters(pieces_bytes: list[bytes], special: np.ndarray) -> list[tuple[int, int, str]]:
    """The shortest runs ``(first, last, text)`` of consecutive non-special tokens whose bytes decode whole,
    for runs of more than one token that contain a partial character (single whole tokens are not listed).

    >>> byte_clusters([b" \\xf0\\x9f", b"\\xa6", b"\\x99", b"x"], np.zeros(4, bool))
    [(0, 2, ' 🦙')]
    """
    clusters = []
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    start, buffer = None, b""
    for index, raw in enumerate(pieces_bytes):
        if special[index]:
            if start is not None:  # an unfinished character interrupted by a special token: close it as is
                clusters.append((start, index - 1, buffer.decode("utf-8", "ctkd-hex")))
                start, buffer = None, b""
                decoder.reset()
            continue
        decoder.decode(raw)
        pending = decoder.getstate()[0]
        if start is None:
            if pending:
                start, buffer = index, raw
            continue
        buffer += raw
        if not pending:
            clusters.append((start, index, buffer.decode("utf-8", "ctkd-hex")))
            start, buffer = None, b""
    if start is not None:
        clusters.append((start, len(pieces_bytes) - 1, buffer.decode("utf-8", "ctkd-hex")))
    return clusters


# ---------------------------------------------------------------------------------------------------------------
# the tokenization record


@dataclass(eq=False)
class Tokenization:
    """One text cut by one tokenizer. Arrays are numpy, one entry per token, in token order.

    Attributes:
        name: the tokenizer's name as given by the user (alias, path or hub id).
        text: the (cleaned) text every span indexes into.
        ids, tokens: vocabulary ids and raw vocabulary strings (``convert_ids_to_tokens``).
        starts, ends: ``[start, end)`` character spans into ``text``.
        special: True for special (control) tokens.
        scheme: the vocabulary scheme (see :class:`TokenizerProfile`).
        source: where the tokenizer came from (see :class:`ctkd_inspect.sources.TokenizerSource`), if known.
        pieces: readable text of each token (markers decoded: ``Ġ``/``▁`` → space, ``<0xNN>`` → byte; partial
            characters as ``<0xNN>``; special tokens as their name). Computed on first access.
        clusters: byte clusters, see :func:`byte_clusters`. Computed on first access.
    """

    name: str
    text: str
    ids: np.ndarray
    tokens: list[str]
    starts: np.ndarray
    ends: np.ndarray
    special: np.ndarray
    scheme: str = "plain"
    source: dict | None = None
    continuation_prefix: str = "##"
    _pieces: list[str] | None = field(default=None, repr=False)
    _clusters: list[tuple[int, int, str]] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def token_bytes(self) -> list[bytes]:
        """The bytes each token stands for (special tokens: their name in UTF-8)."""
        return [t.encode("utf-8") if sp else token_bytes(t, self.scheme, self.continuation_prefix)
                for t, sp in zip(self.tokens, self.special.tolist())]

    @property
    def pieces(self) -> list[str]:
        if self._pieces is None:
            raw = self.token_bytes()
            self._pieces = [t if sp else readable_piece(b)
                            for t, b, sp in zip(self.tokens, raw, self.special.tolist())]
        return self._pieces

    @property
    def clusters(self) -> list[tuple[int, int, str]]:
        if self._clusters is None:
            self._clusters = byte_clusters(self.token_bytes(), self.special)
        return self._clusters

    def token_dicts(self) -> list[dict]:
        """The per-token records of the JSON schema."""
        return [
            {"id": i, "token": t, "piece": p, "start": s, "end": e, "special": sp}
            for i, t, p, s, e, sp in zip(self.ids.tolist(), self.tokens, self.pieces, self.starts.tolist(),
                                         self.ends.tolist(), self.special.tolist())
        ]

    def to_dict(self) -> dict:
        # byte_clusters is always present (often empty) so consumers meet one shape
        out = {"name": self.name, "scheme": self.scheme, "tokens": self.token_dicts(),
               "byte_clusters": [{"first": a, "last": b, "text": t} for a, b, t in self.clusters]}
        if self.source:
            out["source"] = self.source
        return out

    @classmethod
    def from_dict(cls, data: dict, text: str) -> Tokenization:
        tokens = data["tokens"]
        return cls(
            name=data["name"],
            text=text,
            ids=np.array([t["id"] for t in tokens], dtype=np.int64),
            tokens=[t["token"] for t in tokens],
            starts=np.array([t["start"] for t in tokens], dtype=np.int64),
            ends=np.array([t["end"] for t in tokens], dtype=np.int64),
            special=np.array([t["special"] for t in tokens], dtype=bool),
            scheme=data.get("scheme", "plain"),
            source=data.get("source"),
            _pieces=[t.get("piece", t["token"]) for t in tokens],
            _clusters=[(c["first"], c["last"], c["text"]) for c in data.get("byte_clusters", [])],
        )


def _special_flags(ids: np.ndarray, mask, profile: TokenizerProfile) -> np.ndarray:
    """Special = inserted by the post-processor (the encoding's mask) or a control token id."""
    special = np.asarray(mask, dtype=bool)
    if profile.special_ids:
        special |= np.isin(ids, profile.special_id_array)
    return special


def _from_encoding(encoding, text: str, name: str, profile: TokenizerProfile, source) -> Tokenization:
    ids = np.asarray(encoding.ids, dtype=np.int64)
    offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)
    special = _special_flags(ids, encoding.special_tokens_mask, profile)
    return Tokenization(name=name, text=text, ids=ids, tokens=encoding.tokens, starts=offsets[:, 0].copy(),
                        ends=offsets[:, 1].copy(), special=special, scheme=profile.scheme,
                        source=source.to_dict() if source else None,
                        continuation_prefix=profile.continuation_prefix)


def _default_name(tokenizer, name: str | None) -> str:
    source = getattr(tokenizer, "ctkd_source", None)
    return name or (source.name if source else getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)


def tokenize(tokenizer, text: str, *, name: str | None = None, add_special_tokens: bool = True) -> Tokenization:
    """Tokenize ``text`` and return its :class:`Tokenization`.

    Args:
        tokenizer: a transformers fast tokenizer or a :class:`~ctkd_inspect.sources.RustTokenizer` (e.g. from
            :func:`ctkd_inspect.load_tokenizer`; both give identical ids, tokens and offsets).
        text: any string; lone surrogates are replaced (see :func:`clean_text`).
        name: the label to record (default: the tokenizer's source name or ``name_or_path``).
        add_special_tokens: let the tokenizer add its BOS/EOS/CLS/SEP as it does by default.

    Raises:
        InputError: ``text`` is not a string.
        TokenizerCapabilityError: the tokenizer cannot report offsets.
    """
    text, _ = clean_text(text)
    profile = tokenizer_profile(tokenizer)
    # The Rust backend directly: transformers' __call__ adds nothing needed here, and warns about lengths beyond
    # the model's context, which do not matter for alignment.
    encoding = tokenizer.backend_tokenizer.encode(text, add_special_tokens=add_special_tokens)
    return _from_encoding(encoding, text, _default_name(tokenizer, name), profile,
                          getattr(tokenizer, "ctkd_source", None))


class TokenizedCorpus:
    """Many texts cut by one tokenizer, held as concatenated arrays (corpus mode).

    Token ``k`` of text ``i`` is at position ``bounds[i] + k`` of ``ids``, ``starts``, ``ends`` and ``special``;
    spans are relative to text ``i``. ``corpus[i]`` is that text's :class:`Tokenization` (array views, no copy).
    Batched engines (:func:`ctkd_inspect.engines.span.span_groups_corpus`) work on the concatenated arrays in one
    call, with no per-text Python work.
    """

    def __init__(self, name: str, texts: list[str], encodings, profile: TokenizerProfile, source=None):
        self.name = name
        self.texts = texts
        self.profile = profile
        self.source = source.to_dict() if source else None
        self._encodings = encodings
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        self.bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        total = int(self.bounds[-1])
        self.ids = np.fromiter((i for e in encodings for i in e.ids), dtype=np.int64, count=total)
        flat = np.fromiter((x for e in encodings for pair in e.offsets for x in pair), dtype=np.int64,
                           count=2 * total).reshape(-1, 2)
        self.starts = flat[:, 0].copy()
        self.ends = flat[:, 1].copy()
        mask = np.fromiter((m for e in encodings for m in e.special_tokens_mask), dtype=bool, count=total)
        self.special = _special_flags(self.ids, mask, profile)

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> Tokenization:
        a, b = int(self.bounds[index]), int(self.bounds[index + 1])
        return Tokenization(name=self.name, text=self.texts[index], ids=self.ids[a:b],
                            tokens=self._encodings[index].tokens, starts=self.starts[a:b], ends=self.ends[a:b],
                            special=self.special[a:b], scheme=self.profile.scheme, source=self.source,
                            continuation_prefix=self.profile.continuation_prefix)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    @property
    def n_tokens(self) -> int:
        return int(self.bounds[-1])


def tokenize_corpus(tokenizer, texts: list[str], *, name: str | None = None,
                    add_special_tokens: bool = True) -> TokenizedCorpus:
    """Tokenize many texts into a :class:`TokenizedCorpus` (the Rust backend encodes them in parallel)."""
    cleaned = [clean_text(t)[0] for t in texts]
    encodings = tokenizer.backend_tokenizer.encode_batch(cleaned, add_special_tokens=add_special_tokens)
    return TokenizedCorpus(_default_name(tokenizer, name), cleaned, encodings, tokenizer_profile(tokenizer),
                           getattr(tokenizer, "ctkd_source", None))

