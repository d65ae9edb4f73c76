"""llama.cpp's tokenizer test vectors (an HF-behaviour oracle) for every vocabulary that ships them."""

from pathlib import Path

import pytest

from ctkd_inspect.sources import load_tokenizer
from ctkd_inspect.sources.assets import asset_dir
from ctkd_inspect.sources.corpus import read_vocab_vectors

VECTOR_FILES = ["bert-bge", "command-r", "deepseek-coder", "deepseek-llm", "falcon", "gemma-4", "gpt-2", "llama-bpe",
                "llama-spm", "mpt", "phi-3", "qwen2", "qwen35", "refact", "starcoder"]


def vocab_file(name: str) -> Path:
    return asset_dir("llama-cpp") / "vocab" / f"ggml-vocab-{name}.gguf"


def check_vectors(tokenizer, vectors):
    failures = []
    for text, expected in vectors:
        got = tokenizer(text, add_special_tokens=False)["input_ids"]
        if got != expected:
            failures.append((text[:40], expected[:10], got[:10]))
    return failures


def test_every_shipped_vector_file_is_covered():
    shipped = sorted(p.name[len("ggml-vocab-"):-len(".gguf.inp")] for p in (asset_dir("llama-cpp") / "vocab").glob(
        "*.gguf.inp"))
    assert shipped == sorted(VECTOR_FILES)


@pytest.mark.parametrize("name", VECTOR_FILES)
def test_gguf_vocab_passes_its_vectors(name):
    path = vocab_file(name)
    vectors = read_vocab_vectors(path)
    assert vectors and len(vectors) >= 46
    assert check_vectors(load_tokenizer(str(path)), vectors) == []


@pytest.mark.parametrize(("alias", "vector_file"), [
    ("llama3", "llama-bpe"),   # Meta's tiktoken file against the llama.cpp Llama 3 vectors
    ("gemma3", "gemma-4"),     # Gemma 3's normal pieces are Gemma 4's; the vectors use only normal pieces
    ("bert", "bert-bge"),
    ("qwen2", "qwen2"),
    ("llama2", "llama-spm"),
    ("phi3", "phi-3"),
    ("gpt2", "gpt-2"),
])
def test_alias_passes_vectors_of_its_family(alias, vector_file):
    vectors = read_vocab_vectors(vocab_file(vector_file))
    assert check_vectors(load_tokenizer(alias), vectors) == []
