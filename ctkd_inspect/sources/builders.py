"""Turn raw tokenizer files into Hugging Face fast tokenizers, torch-free, with the fixes real oracles demanded.

Each builder returns a :class:`Built` (a ``tokenizers.Tokenizer`` plus the special-token names a
``PreTrainedTokenizerFast`` needs); :func:`to_transformers` wraps it. The builders use only the ``tokenizers``
library, not transformers' private GGUF conversion code, because that code changed between transformers
releases (5.23 → 5.24) and its output with it; here the behaviour is pinned and checked against llama.cpp's
test vectors and against tiktoken / sentencepiece on a real corpus (see ``tests/sources``).

Fixes over a naive conversion, each found by an oracle:

- Llama 3 style byte-level BPE (``pre`` = llama-bpe, llama3, ...): ``ignore_merges=True`` — a word that is a
  whole vocabulary entry is taken as is (as tiktoken does); without it ``Cửa Việt`` tokenizes differently.
- SentencePiece BPE (Llama 2, Mistral, Phi-3, Gemma): merges ranked by the **score** of the merged piece, as
  sentencepiece does, and the dummy prefix done as ``Prepend("▁")`` + ``Replace(" ", "▁")`` with no
  pre-tokenizer, so a text starting with a space keeps its extra ``▁``.
- Gemma GGUFs carry no merges and their scores do not follow the merge order; the order of the tokens in the
  file does. Whitespace-run merges are ranked first, longest left part first, as in the real tokenizer.json,
  so runs of more than 16 spaces split like the official tokenizer.
- GGUF ``pre`` types transformers does not know (smollm, starcoder, refact, command-r, deepseek, falcon, mpt):
  the pre-tokenizer of the model's own tokenizer.json, spelled with ``tokenizers`` components.
- Qwen2 byte-level BPE: an NFC normalizer, as in Qwen's tokenizer.json (not for qwen35, whose vectors fail with it).
- XLM-R style Unigram (GGUF ``t5``): the file's real unknown-token id and its ``precompiled_charsmap`` normalizer.
- BERT (GGUF ``bert``): llama.cpp stores WordPiece in "phantom space" form (``▁word`` for word starts, ``piece``
  for continuations); it is turned back into ``word`` / ``##piece``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..errors import TokenizerLoadError
from .gguf import read_gguf_metadata

SPIECE = "\u2581"  # SentencePiece's word marker "▁"

# Pre-tokenizer regexes (data): LLAMA3 is `pat_str` of Meta's llama3 tokenizer; QWEN2/QWEN35 and O200K are the
# `Split` patterns of those models' tokenizer.json files.
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN35_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
O200K_SPLIT = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
               r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
               r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
               r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
               r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# DeepSeek LLM / Coder: the Split sequence of their tokenizer.json files, as llama.cpp spells them. Written with
# escapes because the character ranges include code points that Unicode normalisation would silently change.
DEEPSEEK_LLM_SPLITS = (
    '[\r\n]',
    '\\s?[A-Za-z\xb5\xc0-\xd6\xd8-\xf6\xf8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af\u0370-\u0373'
    '\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481'
    '\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-'
    '\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57'
    '\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-'
    '\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-'
    '\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184'
    '\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-'
    '\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-'
    '\U0001044f\U000104b0-\U000104d3\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2'
    '\U000118a0-\U000118df\U0001e900-\U0001e943]+',
    '\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+',
    '\\s+$',
    '[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+',
    '\\p{N}+',
)
DEEPSEEK_CODER_SPLITS = (
    '[\r\n]',
    '\\s?\\p{L}+',
    '\\s?\\p{P}+',
    '[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+',
    '\\p{N}',
)

LLAMA3_LIKE_PRE = frozenset({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
                             "lfm2", "dbrx", "smaug-bpe"})
DIGITS_PRE = frozenset({"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"})


@dataclass
class Built:
    """A backend tokenizer plus what a transformers wrapper needs to know about it."""

    backend: object  # tokenizers.Tokenizer
    special_tokens: dict[str, str] = field(default_factory=dict)  # bos_token, eos_token, unk_token, ...
    chat_template: str | None = None
    notes: tuple[str, ...] = ()


def to_transformers(built: Built):
    """Wrap a :class:`Built` as a ``transformers.PreTrainedTokenizerFast``."""
    from transformers import PreTrainedTokenizerFast

    kwargs = {k: v for k, v in built.special_tokens.items() if v is not None}
    tok = PreTrainedTokenizerFast(tokenizer_object=built.backend, **kwargs)
    if built.chat_template:
        tok.chat_template = built.chat_template
    return tok


# ---------------------------------------------------------------------------------------------------------------
# shared pieces


@lru_cache(maxsize=1)
def byte_encoder() -> dict[int, str]:
    """GPT-2's reversible byte → printable-character map (the alphabet of byte-level BPE vocabularies)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


@lru_cache(maxsize=1)
def byte_decoder() -> dict[str, int]:
    return {c: b for b, c in byte_encoder().items()}


def _bos_template(bos: str, bos_id: int, eos: tuple[str, int] | None = None) -> object:
    from tokenizers import processors

    single = f"{bos} $A" + (f" {eos[0]}" if eos else "")
    pair = f"{bos} $A {bos} $B" + (f" {eos[0]}" if eos else "")
    specials = [(bos, bos_id)] + ([eos] if eos else [])
    return processors.TemplateProcessing(single=single, pair=pair, special_tokens=specials)


def merges_by_score(vocab: dict[str, int], scores: dict[str, float]) -> list[tuple[str, str]]:
    """BPE merges implied by a SentencePiece vocabulary: every split ``(a, b)`` of a piece whose halves are both
    pieces, ranked by the merged piece's score (higher first), then longer left part, longer right part, then id
    order — the order in which sentencepiece's BPE applies them."""
    ranked = []
    for piece, score in scores.items():
        local = [(piece[:k], piece[k:]) for k in range(1, len(piece)) if piece[:k] in vocab and piece[k:] in vocab]
        local.sort(key=lambda pair: (vocab[pair[0]], vocab[pair[1]]))
        ranked.extend((score, left, right) for left, right in local)
    # Python's sort is stable, so equal keys keep the id order built above.
    ranked.sort(key=lambda item: (-item[0], -len(item[1]), -len(item[2])))
    return [(left, right) for _, left, right in ranked]


def _added(tokens: Sequence[str], types: Sequence[int], wanted: int, special: bool):
    from tokenizers import AddedToken

    return [AddedToken(t, special=special, normalized=False) for t, ty in zip(tokens, types) if ty == wanted]


# ---------------------------------------------------------------------------------------------------------------
# GGUF


def _gguf_special_names(meta: dict, tokens: Sequence[str]) -> dict[str, str | None]:
    names = {}
    for name, key in (("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"), ("unk_token", "unknown_token_id"),
                      ("pad_token", "padding_token_id"), ("sep_token", "seperator_token_id"),
                      ("cls_token", "cls_token_id"), ("mask_token", "mask_token_id")):
        index = meta.get(f"tokenizer.ggml.{key}")
        if index is not None and 0 <= int(index) < len(tokens):
            names[name] = tokens[int(index)]
    return names


def _byte_level_pre_tokenizer(pre: str | None):
    from tokenizers import Regex, pre_tokenizers

    def split_then_bytes(*patterns: str, individual_digits: bool = False):
        steps = [pre_tokenizers.Split(Regex(p), behavior="isolated") for p in patterns]
        if individual_digits:
            steps.append(pre_tokenizers.Digits(individual_digits=True))
        steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False))
        return pre_tokenizers.Sequence(steps)

    if pre in LLAMA3_LIKE_PRE:
        return split_then_bytes(LLAMA3_SPLIT)
    if pre in ("qwen2", "deepseek-r1-qwen", "stablelm2"):
        return split_then_bytes(QWEN2_SPLIT)
    if pre == "qwen35":
        return split_then_bytes(QWEN35_SPLIT)
    if pre in ("gpt-4o", "llama4"):
        return split_then_bytes(O200K_SPLIT)
    if pre in DIGITS_PRE:
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    if pre == "deepseek-llm":
        return split_then_bytes(*DEEPSEEK_LLM_SPLITS)
    if pre == "deepseek-coder":
        return split_then_bytes(*DEEPSEEK_CODER_SPLITS)
    if pre == "falcon":
        return pre_tokenizers.Sequence([
            pre_tokenizers.Punctuation(behavior="contiguous"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
            pre_tokenizers.Digits(individual_digits=False),
            pre_tokenizers.Split(Regex(r"[0-9][0-9][0-9]"), behavior="isolated"),
        ])
    # gpt-2, mpt, olmo and unknown types: GPT-2's own regex inside ByteLevel
    return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)


def _gguf_byte_level(meta: dict) -> Built:
    from tokenizers import Tokenizer, decoders, models, normalizers, processors

    tokens = meta["tokenizer.ggml.tokens"]
    types = _types(meta, len(tokens))
    pre = meta.get("tokenizer.ggml.pre")
    alphabet = set(byte_encoder().values())
    enc = byte_encoder()
    vocab: dict[str, int] = {}
    respell = []
    for index, token in enumerate(tokens):
        if set(token) <= alphabet or types[index] in (3, 4):
            vocab.setdefault(token, index)
        else:
            respell.append(index)
    # A few files also store some entries as plain UTF-8. Spelled in the byte alphabet they may collide with a
    # real entry (command-r has both "\u200d" and "âĢį"); the real entry keeps the string, as in the model's
    # tokenizer.json.
    for index in respell:
        vocab.setdefault("".join(enc[b] for b in tokens[index].encode()), index)
    merges = [tuple(m.split(" ", 1)) for m in meta.get("tokenizer.ggml.merges", [])]
    model = models.BPE(vocab=vocab, merges=merges, ignore_merges=pre in LLAMA3_LIKE_PRE, fuse_unk=False)
    backend = Tokenizer(model)
    if pre in ("qwen2", "deepseek-r1-qwen", "mpt"):
        backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = _byte_level_pre_tokenizer(pre)
    backend.decoder = decoders.ByteLevel()
    # Control tokens outside the byte alphabet are llama.cpp mislabels (the model never sees them whole).
    backend.add_special_tokens([t for t in _added(tokens, types, 3, True) if set(t.content) <= alphabet])
    backend.add_tokens(_added(tokens, types, 4, False))
    names = _gguf_special_names(meta, tokens)
    post = [processors.ByteLevel(trim_offsets=False)]
    if meta.get("tokenizer.ggml.add_bos_token") and names.get("bos_token"):
        bos_id = int(meta["tokenizer.ggml.bos_token_id"])
        post.append(_bos_template(names["bos_token"], bos_id))
    backend.post_processor = processors.Sequence(post)
    return Built(backend, names, meta.get("tokenizer.chat_template"))


def _types(meta: dict, n: int) -> list[int]:
    types = meta.get("tokenizer.ggml.token_type")
    return [int(t) for t in types] if types is not None else [1] * n


def _gguf_sentencepiece_bpe(meta: dict) -> Built:
    from tokenizers import Tokenizer, decoders, models, normalizers

    arch = meta.get("general.architecture", "")
    model_type = meta["tokenizer.ggml.model"]
    tokens = list(meta["tokenizer.ggml.tokens"])
    types = _types(meta, len(tokens))
    gemma = arch in ("gemma", "gemma2", "gemma3") or model_type == "gemma4"
    if gemma:
        # Gemma files store whitespace-run pieces as real spaces ("  "); the model looks them up as "▁▁".
        tokens = [SPIECE * len(t) if t and not t.strip(" ") else t for t in tokens]
    vocab: dict[str, int] = {}
    for index, token in enumerate(tokens):
        vocab.setdefault(token, index)
    if "tokenizer.ggml.merges" in meta:
        merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]
    else:
        normal = {t: i for t, i in vocab.items() if types[i] in (1, 4)}  # 4: user-defined runs such as "▁▁"
        if gemma:
            # Gemma's scores do not follow its merge order; the order of the tokens in the file does.
            scores = {t: -float(i) for t, i in normal.items()}
        else:
            raw_scores = meta["tokenizer.ggml.scores"]
            scores = {t: float(raw_scores[i]) for t, i in normal.items()}
        merges = merges_by_score(vocab, scores)
        if gemma:
            merges = _whitespace_merges_first(merges)
    unk_id = meta.get("tokenizer.ggml.unknown_token_id")
    unk = tokens[int(unk_id)] if unk_id is not None else None
    model = models.BPE(vocab=vocab, merges=merges, unk_token=unk, fuse_unk=True, byte_fallback=True)
    backend = Tokenizer(model)
    prefix = meta.get("tokenizer.ggml.add_space_prefix", not gemma)
    replace = normalizers.Replace(" ", SPIECE)
    backend.normalizer = normalizers.Sequence([normalizers.Prepend(SPIECE), replace]) if prefix else replace
    backend.pre_tokenizer = None
    steps = [decoders.Replace(SPIECE, " "), decoders.ByteFallback(), decoders.Fuse()]
    if prefix:
        steps.append(decoders.Strip(" ", 1, 0))
    backend.decoder = decoders.Sequence(steps)
    backend.add_special_tokens(_added(tokens, types, 3, True))
    backend.add_tokens(_added(tokens, types, 4, False))
    names = _gguf_special_names(meta, tokens)
    add_bos = meta.get("tokenizer.ggml.add_bos_token", True)
    if model_type == "gemma4":
        # The reference Gemma 4 tokenizer adds no BOS: its chat template writes <bos> itself.
        add_bos = False
    if add_bos and names.get("bos_token"):
        backend.post_processor = _bos_template(names["bos_token"], int(meta["tokenizer.ggml.bos_token_id"]))
    return Built(backend, names, meta.get("tokenizer.chat_template"))


def _whitespace_merges_first(merges: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Rank merges of pure whitespace runs ("▁▁", "\\n\\n", "\\t\\t") first, longest left part first."""

    def is_whitespace_run(left: str, right: str) -> bool:
        chars = set(left + right)
        return len(chars) == 1 and chars <= {SPIECE, "\n", "\t"}

    runs = sorted((m for m in merges if is_whitespace_run(*m)), key=lambda m: (-len(m[0]), -len(m[1])))
    return runs + [m for m in merges if not is_whitespace_run(*m)]


def _unigram_pre_tokenizer(scheme: str, remove_extra_whitespaces: bool):
    """Metaspace, preceded by a whitespace split when the model removes extra whitespace: sentencepiece then
    drops leading and trailing whitespace, so no trailing "▁" token appears (llama.cpp agrees)."""
    from tokenizers import pre_tokenizers

    metaspace = pre_tokenizers.Metaspace(replacement=SPIECE, prepend_scheme=scheme)
    if remove_extra_whitespaces:
        return pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), metaspace])
    return metaspace


def _gguf_unigram(meta: dict) -> Built:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers

    tokens = list(meta["tokenizer.ggml.tokens"])
    types = _types(meta, len(tokens))
    scores = meta["tokenizer.ggml.scores"]
    unk_id = int(meta.get("tokenizer.ggml.unknown_token_id", 0))
    model = models.Unigram([(t, float(s)) for t, s in zip(tokens, scores)], unk_id=unk_id, byte_fallback=False)
    backend = Tokenizer(model)
    steps = []
    charsmap = meta.get("tokenizer.ggml.precompiled_charsmap")
    if charsmap is not None and len(charsmap):
        steps.append(normalizers.Precompiled(bytes(bytearray(int(x) & 0xFF for x in charsmap))))
    if meta.get("tokenizer.ggml.remove_extra_whitespaces", True):
        steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    if steps:
        backend.normalizer = normalizers.Sequence(steps)
    scheme = "always" if meta.get("tokenizer.ggml.add_space_prefix", True) else "never"
    backend.pre_tokenizer = _unigram_pre_tokenizer(scheme, meta.get("tokenizer.ggml.remove_extra_whitespaces", True))
    backend.decoder = decoders.Metaspace(replacement=SPIECE, prepend_scheme=scheme)
    backend.add_special_tokens(_added(tokens, types, 3, True))
    backend.add_tokens(_added(tokens, types, 4, False))
    names = _gguf_special_names(meta, tokens)
    bos, eos = names.get("bos_token"), names.get("eos_token")
    if meta.get("tokenizer.ggml.add_bos_token") and bos:
        add_eos = meta.get("tokenizer.ggml.add_eos_token") and eos
        eos_pair = (eos, int(meta["tokenizer.ggml.eos_token_id"])) if add_eos else None
        backend.post_processor = _bos_template(bos, int(meta["tokenizer.ggml.bos_token_id"]), eos_pair)
    return Built(backend, names, meta.get("tokenizer.chat_template"))


def _gguf_wordpiece(meta: dict) -> Built:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    raw = meta["tokenizer.ggml.tokens"]
    types = _types(meta, len(raw))
    # llama.cpp's "phantom space" spelling: "▁word" starts a word, "piece" continues one; control tokens as is.
    tokens = [t if ty == 3 else (t[1:] if t.startswith(SPIECE) else "##" + t) for t, ty in zip(raw, types)]
    vocab = {}
    for index, token in enumerate(tokens):
        vocab.setdefault(token, index)
    names = _gguf_special_names(meta, tokens)
    unk = names.get("unk_token", "[UNK]")
    backend = Tokenizer(models.WordPiece(vocab=vocab, unk_token=unk, max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                    lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls, sep = names.get("cls_token", "[CLS]"), names.get("sep_token", "[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])])
    backend.decoder = decoders.WordPiece(prefix="##")
    backend.add_special_tokens(_added(tokens, types, 3, True))
    return Built(backend, names)


def gguf_tokenizer(path: str | Path) -> Built:
    """Build the tokenizer a GGUF file describes (vocabulary-only or full model file).

    Raises:
        GGUFError: unreadable file. ValueError: a tokenizer type this builder does not know.
    """
    meta = read_gguf_metadata(path)
    if "tokenizer.ggml.tokens" not in meta:
        raise ValueError(f"{Path(path).name} holds no tokenizer (no tokenizer.ggml.tokens key)")
    model_type = meta.get("tokenizer.ggml.model")
    if model_type == "gpt2":
        return _gguf_byte_level(meta)
    if model_type in ("llama", "gemma4"):
        return _gguf_sentencepiece_bpe(meta)
    if model_type == "t5":
        return _gguf_unigram(meta)
    if model_type == "bert":
        return _gguf_wordpiece(meta)
    raise ValueError(f"{Path(path).name}: GGUF tokenizer type {model_type!r} is not supported "
                     "(supported: gpt2, llama, gemma4, t5, bert)")


# ---------------------------------------------------------------------------------------------------------------
# tiktoken BPE files (Llama 3, Llama 4 and other "base64 rank" files)

LLAMA3_SPECIAL_NAMES = (
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>", "<|step_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>",
    "<|eot_id|>", "<|python_tag|>", "<|image|>",
)


class TiktokenFileError(TokenizerLoadError, ValueError):
    """A file that starts like a tiktoken BPE file is malformed: a bad line, a repeated token or rank, a gap in the
    ranks, missing single bytes, or a last line cut short (a truncated file)."""


def read_tiktoken_ranks(path: str | Path) -> dict[bytes, int]:
    """``{token bytes: rank}`` of a tiktoken BPE file (one ``base64 rank`` pair per line), validated.

    Checked: every non-blank line is exactly ``<base64> <decimal rank>``; no token and no rank appears twice; the
    ranks are exactly ``0 .. n-1``; the last line ends with a newline (a file cut inside a line, even just before
    its newline, is refused as truncated); all 256 single bytes are tokens (byte-level BPE needs them to encode
    any text).

    Not detectable: a file cut exactly at a line end is itself a valid, smaller vocabulary (see
    :func:`tiktoken_tokenizer` for what is done about near misses of a known size).

    Raises:
        TiktokenFileError (a :class:`~ctkd_inspect.errors.TokenizerLoadError` and a :class:`ValueError`): the
            file is not a valid tiktoken file, naming the file, the line and what is wrong.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        data = handle.read()
    lines = data.split(b"\n")
    unterminated = bool(lines) and lines[-1].strip() != b""  # a final line without its newline

    def fail(number: int, what: str) -> TiktokenFileError:
        cut = (" The last line has no newline, so the file looks truncated."
               if unterminated and number == len(lines) else "")
        return TiktokenFileError(f"{path} is not a valid tiktoken BPE file: line {number} {what}.{cut}")

    ranks: dict[bytes, int] = {}
    seen_ranks: dict[int, int] = {}  # rank -> line
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or not fields[1].isdigit():
            raise fail(number, f"is not `<base64> <rank>`: {line[:60]!r}")
        try:
            token = base64.b64decode(fields[0], validate=True)
        except (ValueError, base64.binascii.Error):
            raise fail(number, f"has a token that is not base64: {fields[0][:60]!r}") from None
        if not token:
            raise fail(number, "has an empty token")
        rank = int(fields[1])
        if token in ranks:
            raise fail(number, f"repeats the token {token[:30]!r} (rank {ranks[token]})")
        if rank in seen_ranks:
            raise fail(number, f"repeats rank {rank} (first on line {seen_ranks[rank]})")
        ranks[token] = rank
        seen_ranks[rank] = number
    if not ranks:
        raise TiktokenFileError(f"{path} is not a valid tiktoken BPE file: it holds no `<base64> <rank>` line")
    n = len(ranks)
    if max(seen_ranks) != n - 1:
        missing = next(r for r in range(n) if r not in seen_ranks)
        hint = " The last line has no newline, so the file looks truncated." if unterminated else ""
        raise TiktokenFileError(f"{path} is not a valid tiktoken BPE file: its {n} ranks are not 0..{n - 1} "
                                f"(rank {missing} is missing, the largest is {max(seen_ranks)}).{hint}")
    if unterminated:
        raise TiktokenFileError(
            f"{path} looks truncated: its last line (line {len(lines)}, rank {ranks[token]}) does not end with a "
            "newline, as every line of a tiktoken BPE file does, so the file was probably cut there. If the file "
            "is complete, add the final newline.")
    absent = [b for b in range(256) if bytes([b]) not in ranks]
    if absent:
        raise TiktokenFileError(f"{path} is not a valid byte-level tiktoken BPE file: {len(absent)} of the 256 "
                                f"single bytes are not tokens (e.g. {bytes([absent[0]])!r}).")
    return ranks


def looks_like_tiktoken(path: str | Path) -> bool:
    """True when the first line of a file parses as ``base64 rank``."""
    try:
        with open(path, "rb") as handle:
            first = handle.readline(4096).split()
        return len(first) == 2 and first[1].isdigit() and bool(base64.b64decode(first[0], validate=True))
    except (OSError, ValueError, base64.binascii.Error):
        return False


def _tiktoken_merges(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """Every split ``(a, b)`` of a token whose halves are tokens, ranked by the rank of ``a + b``.

    With all splits present, BPE that applies the lowest-ranked adjacent merge reproduces tiktoken, which merges
    the adjacent pair whose concatenation has the lowest rank.
    """
    merges = []
    for token, _rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        local = [(token[:k], token[k:]) for k in range(1, len(token)) if token[:k] in ranks and token[k:] in ranks]
        local.sort(key=lambda pair: (ranks[pair[0]], ranks[pair[1]]))
        merges.extend(local)
    return merges


def _byte_bpe_from_ranks(ranks: dict[bytes, int], pattern: str, specials: Sequence[tuple[str, int]],
                        id_offset: int = 0):
    """A byte-level BPE backend from a tiktoken-style rank table; token id = rank + ``id_offset``.

    ``specials`` are ``(name, id)`` pairs, added as special tokens at exactly those ids.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    enc = byte_encoder()

    def spell(raw: bytes) -> str:
        return "".join(enc[b] for b in raw)

    vocab = {spell(token): rank + id_offset for token, rank in ranks.items()}
    for name, index in specials:
        vocab.setdefault(name, index)
    merges = [(spell(a), spell(b)) for a, b in _tiktoken_merges(ranks)]
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True, fuse_unk=False))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                                              use_regex=False)])
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(name, special=True, normalized=False)
                                for name, _ in sorted(specials, key=lambda s: s[1])])
    return backend


def _byte_level_post(bos: tuple[str, int] | None):
    from tokenizers import processors

    steps = [processors.ByteLevel(trim_offsets=False)]
    if bos:
        steps.append(_bos_template(*bos))
    return processors.Sequence(steps)


#: Rank counts from here up to (not including) 128000 are reported as a possible truncated Llama 3 file.
_LLAMA3_NEAR_MISS = 127000


def tiktoken_tokenizer(path: str | Path, *, pattern: str | None = None,
                       special_names: Iterable[str] | None = None, add_bos: bool = True) -> Built:
    """A byte-level BPE tokenizer from a tiktoken rank file.

    The split pattern and special tokens are not in the file. Defaults: a 128000-rank file is taken as Llama 3
    (its pattern, its 256 special tokens, BOS added unless ``add_bos=False``); a 200000-rank file gets the o200k
    pattern; any other file gets the Llama 3 / cl100k-style pattern and no special tokens. Pass
    ``pattern``/``special_names`` to override; special tokens take the ids after the ranks, in order.

    The file is validated by :func:`read_tiktoken_ranks`: a malformed line, repeated or missing ranks, or a file
    cut inside a line raise :class:`TiktokenFileError`. What cannot be checked: a file cut exactly at the end of a
    line is a well-formed smaller vocabulary (the format has no header or count), so it loads as a generic
    tiktoken tokenizer; in particular a Llama 3 file missing its last lines loses the Llama 3 special tokens,
    which are recognised by the rank count alone. A file with slightly fewer ranks than Llama 3's 128000
    therefore also emits a :class:`UserWarning` that it may be truncated.
    """
    ranks = read_tiktoken_ranks(path)
    n = len(ranks)
    llama3 = n == 128000 and special_names is None
    if special_names is None and _LLAMA3_NEAR_MISS <= n < 128000:
        import warnings

        warnings.warn(f"{Path(path).name} has {n} ranks, {128000 - n} fewer than a Llama 3 tiktoken file: it is "
                      "loaded as a generic tiktoken vocabulary without the Llama 3 special tokens. If it is meant to "
                      "be Llama 3, the file is truncated; use the `llama3` alias or a complete copy.", stacklevel=2)
    if pattern is None:
        pattern = O200K_SPLIT if n == 200000 else LLAMA3_SPLIT
    if special_names is None:
        special_names = (list(LLAMA3_SPECIAL_NAMES) + [f"<|reserved_special_token_{i}|>" for i in range(2, 2 + 244)]
                         if llama3 else [])
    specials = [(name, n + i) for i, name in enumerate(special_names)]
    backend = _byte_bpe_from_ranks(ranks, pattern, specials)
    names: dict[str, str] = {}
    bos = None
    if llama3:
        names = {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>",
                 "pad_token": "<|finetune_right_pad_id|>"}
        bos = ("<|begin_of_text|>", n) if add_bos else None
    backend.post_processor = _byte_level_post(bos)
    return Built(backend, names)


# Mistral's tekken files without a special-token list reserve the first ids for these names (mistral-common's
# default for tekken v3 and earlier); the rest of the reserved range is <SPECIAL_i>.
_TEKKEN_DEFAULT_SPECIALS = ("<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
                            "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "<pad>", "[IMG_BREAK]",
                            "[IMG_END]", "[PREFIX]", "[MIDDLE]", "[SUFFIX]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]",
                            "[TOOL_CONTENT]")


def tekken_tokenizer(path: str | Path, add_bos: bool = True) -> Built:
    """Mistral's tekken JSON: ``num_special`` reserved ids first, then the byte-level ranks, cut to the model's
    vocabulary size (``default_vocab_size``)."""
    import json

    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    config = data["config"]
    n_special = int(config.get("default_num_special_tokens", 1000))
    n_vocab = int(config.get("default_vocab_size", n_special + len(data["vocab"]))) - n_special
    ranks = {base64.b64decode(entry["token_bytes"]): int(entry["rank"])
             for entry in data["vocab"] if int(entry["rank"]) < n_vocab}
    listed = {int(t["rank"]): t["token_str"] for t in data.get("special_tokens", [])}
    names = [listed.get(i) or (_TEKKEN_DEFAULT_SPECIALS[i] if i < len(_TEKKEN_DEFAULT_SPECIALS) and not listed
                               else f"<SPECIAL_{i}>") for i in range(n_special)]
    backend = _byte_bpe_from_ranks(ranks, config["pattern"], [(name, i) for i, name in enumerate(names)],
                                   id_offset=n_special)
    bos = (names[1], 1) if add_bos else None
    backend.post_processor = _byte_level_post(bos)
    return Built(backend, {"bos_token": names[1], "eos_token": names[2], "unk_token": names[0]})


# ---------------------------------------------------------------------------------------------------------------
# SentencePiece .model files


def read_sentencepiece_model(path: str | Path):
    """Parse a SentencePiece ``ModelProto``.

    Raises:
        ValueError: the bytes are not a SentencePiece model (corrupt or truncated).
    """
    from google.protobuf.message import DecodeError
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    try:
        proto.ParseFromString(Path(path).read_bytes())
    except DecodeError as exc:
        raise ValueError(f"not a SentencePiece model ({exc})") from exc
    if not len(proto.pieces):
        raise ValueError("not a SentencePiece model (no pieces)")
    return proto


def sentencepiece_tokenizer(path: str | Path, add_bos: bool = True) -> Built:
    """A fast tokenizer equivalent to a SentencePiece ``.model`` (BPE or Unigram).

    BPE: merges ranked by piece score (as sentencepiece applies them), byte fallback as in the model,
    whitespace-run pieces ranked first when the model defines them (Gemma), dummy prefix as in the model.
    Unigram: the model's scores and unknown id, and its precompiled normalizer.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

    proto = read_sentencepiece_model(path)
    spec, norm = proto.trainer_spec, proto.normalizer_spec
    pieces = [p.piece for p in proto.pieces]
    types = [p.type for p in proto.pieces]  # 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
    unk = pieces[spec.unk_id] if 0 <= spec.unk_id < len(pieces) else None
    prefix = norm.add_dummy_prefix
    if spec.model_type == 2:  # BPE
        vocab = {}
        for index, piece in enumerate(pieces):
            vocab.setdefault(piece, index)
        scores = {p.piece: p.score for p in proto.pieces if p.type in (1, 4)}
        merges = merges_by_score(vocab, scores)
        if any(types[i] == 4 and set(pieces[i]) <= {SPIECE, "\n", "\t"} and len(pieces[i]) > 1
               for i in range(len(pieces))):
            merges = _whitespace_merges_first(merges)
        backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=unk, fuse_unk=True,
                                       byte_fallback=spec.byte_fallback))
        replace = normalizers.Replace(" ", SPIECE)
        backend.normalizer = normalizers.Sequence([normalizers.Prepend(SPIECE), replace]) if prefix else replace
        backend.pre_tokenizer = None
        steps = [decoders.Replace(SPIECE, " "), decoders.ByteFallback(), decoders.Fuse()]
        if prefix:
            steps.append(decoders.Strip(" ", 1, 0))
        backend.decoder = decoders.Sequence(steps)
    elif spec.model_type == 1:  # Unigram
        backend = Tokenizer(models.Unigram([(p.piece, p.score) for p in proto.pieces], unk_id=spec.unk_id,
                                           byte_fallback=spec.byte_fallback))
        steps = []
        if norm.precompiled_charsmap:
            steps.append(normalizers.Precompiled(norm.precompiled_charsmap))
        if norm.remove_extra_whitespaces:
            from tokenizers import Regex

            steps.append(normalizers.Replace(Regex(" {2,}"), " "))
        if steps:
            backend.normalizer = normalizers.Sequence(steps)
        scheme = "always" if prefix else "never"
        backend.pre_tokenizer = _unigram_pre_tokenizer(scheme, norm.remove_extra_whitespaces)
        backend.decoder = decoders.Metaspace(replacement=SPIECE, prepend_scheme=scheme)
    else:
        raise ValueError(f"SentencePiece model type {spec.model_type} is not supported (BPE and Unigram are)")
    backend.add_special_tokens([AddedToken(p, special=True, normalized=False)
                                for p, t in zip(pieces, types) if t == 3])
    backend.add_tokens([AddedToken(p, special=False, normalized=False) for p, t in zip(pieces, types) if t == 4])
    bos = pieces[spec.bos_id] if 0 <= spec.bos_id < len(pieces) else None
    eos = pieces[spec.eos_id] if 0 <= spec.eos_id < len(pieces) else None
    pad = pieces[spec.pad_id] if 0 <= spec.pad_id < len(pieces) else None
    if add_bos and bos:
        backend.post_processor = _bos_template(bos, spec.bos_id)
    return Built(backend, {"bos_token": bos, "eos_token": eos, "unk_token": unk, "pad_token": pad})
