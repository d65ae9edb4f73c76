"""Our tokenizers against independent implementations on a real corpus (1549 texts, ~307k characters)."""

import hashlib
import json
from pathlib import Path

import pytest

from ctkd_inspect.sources import load_tokenizer
from ctkd_inspect.sources.assets import asset_path
from ctkd_inspect.sources.builders import LLAMA3_SPLIT

ORACLE = json.loads((Path(__file__).resolve().parents[1] / "data" / "llama_cpp_corpus_oracle.json").read_text())


def ids(name, texts):
    return load_tokenizer(name)(texts, add_special_tokens=False)["input_ids"]


def test_llama3_tiktoken_source_equals_llama_bpe_gguf(corpus):
    assert ids("llama3", corpus) == ids("llama3-gguf", corpus)


def test_llama3_equals_tiktoken(corpus):
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(str(asset_path("llama-models", "llama3/tokenizer.model")))
    tok = load_tokenizer("llama3")
    specials = {t: i for t, i in tok.get_vocab().items() if i >= len(ranks)}
    encoding = tiktoken.Encoding("llama3", pat_str=LLAMA3_SPLIT, mergeable_ranks=ranks, special_tokens=specials)
    assert ids("llama3", corpus) == [encoding.encode(t, allowed_special="all") for t in corpus]


@pytest.mark.parametrize("alias", ["mistral", "mistral-v1"])
def test_mistral_equals_sentencepiece(alias, corpus):
    import sentencepiece

    from ctkd_inspect.sources.registry import ALIASES

    a = ALIASES[alias]
    sp = sentencepiece.SentencePieceProcessor(model_file=str(asset_path(a.asset, a.file)))
    assert ids(alias, corpus) == sp.encode(corpus)


def test_gemma2_equals_sentencepiece_except_long_space_runs(corpus):
    """The official Gemma tokenizer.json (which the gemma2 alias reproduces) splits runs of more than 16 spaces
    16 + 16, where the sentencepiece library uses its 31-space piece; nothing else differs."""
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=str(asset_path("draive", "gemma2/tokenizer.model")))
    ours, theirs = ids("gemma2", corpus), sp.encode(corpus)
    differing = [i for i in range(len(corpus)) if ours[i] != theirs[i]]
    assert 0 < len(differing) <= 10
    assert all(" " * 17 in corpus[i] for i in differing)


def test_gemma2_raw_model_path_follows_sentencepiece(corpus):
    """A SentencePiece file given by path goes through our builder, which follows the sentencepiece library."""
    import sentencepiece

    from ctkd_inspect.sources.builders import sentencepiece_tokenizer, to_transformers

    path = asset_path("draive", "gemma2/tokenizer.model")
    tok = to_transformers(sentencepiece_tokenizer(path))
    sp = sentencepiece.SentencePieceProcessor(model_file=str(path))
    assert tok(corpus, add_special_tokens=False)["input_ids"] == sp.encode(corpus)


def test_tekken_matches_the_mistral_reference_layout(corpus):
    tok = load_tokenizer("tekken")
    assert len(tok) == 131072
    assert tok.convert_ids_to_tokens([0, 1, 2]) == ["<unk>", "<s>", "</s>"]
    # id = rank + 1000 (the reserved special range comes first)
    hello = tok("Hello", add_special_tokens=False)["input_ids"]
    assert all(i >= 1000 for i in hello)


def digest(values):
    return hashlib.sha256(",".join(map(str, values)).encode()).hexdigest()[:16]


@pytest.mark.parametrize("alias", sorted(ORACLE["digests"]))
def test_gguf_aliases_equal_llama_cpp(alias, corpus):
    """llama.cpp's own tokenization (stored as digests; see tests/data/make_llama_cpp_oracle.py)."""
    expected = ORACLE["digests"][alias]
    assert len(expected) == len(corpus) == ORACLE["texts"]
    ours = [digest(x) for x in ids(alias, corpus)]
    differing = [i for i in range(len(corpus)) if ours[i] != expected[i]]
    if alias == "bert":
        # llama.cpp keeps a word of more than 100 characters as WordPiece pieces; Hugging Face (and we) turn it
        # into [UNK], as BERT's max_input_chars_per_word says. That is the only difference.
        assert len(differing) == 1
        assert max(len(w) for w in corpus[differing[0]].split()) > 100
    elif alias == "qwen2":
        # Qwen's tokenizer.json NFC-normalises (so do we); llama.cpp does not. Only texts NFC changes differ.
        import unicodedata

        changed = [i for i, t in enumerate(corpus) if unicodedata.normalize("NFC", t) != t]
        assert len(differing) > 0 and set(differing) <= set(changed)
    else:
        assert differing == []
