"""A real-text corpus that is available offline: paragraphs of llama.cpp's docs and sources.

The texts come from the ``llama-cpp`` asset (the llama-cpp-python 0.3.36 source distribution): English Markdown
docs, Python tools, C++ sources and gguf-py, split into paragraphs at blank lines, capped in length, shuffled with
a fixed seed, plus the multilingual and whitespace-heavy test strings of llama.cpp's tokenizer vectors.
With the defaults this is 1549 texts, about 307k characters. It is what the tokenizer cross-checks, the
property tests and the benchmarks run on. :func:`llama_cpp_paragraphs` gives every paragraph of those files
(about 13k texts) for corpus-scale runs.
"""

from __future__ import annotations

import random
from pathlib import Path

from .assets import asset_path

VECTOR_SEPARATOR = "\n__ggml_vocab_test__\n"


def read_vocab_vectors(gguf_path: str | Path) -> list[tuple[str, list[int]]] | None:
    """llama.cpp's ``X.gguf.inp/.out`` test vectors beside a vocabulary GGUF, or None when it ships none.

    ``.inp`` holds UTF-8 texts each followed by the separator; ``.out`` line *i* holds the expected ids of text *i*
    (produced upstream by the model's Hugging Face tokenizer with ``add_special_tokens=False``).
    """
    inp, out = Path(str(gguf_path) + ".inp"), Path(str(gguf_path) + ".out")
    if not inp.exists() or not out.exists():
        return None
    with open(inp, encoding="utf-8", newline="") as handle:
        texts = handle.read().split(VECTOR_SEPARATOR)
    if texts and texts[-1] == "":
        texts = texts[:-1]
    lines = out.read_text(encoding="utf-8").split("\n")
    ids = [[int(x) for x in line.split()] for line in lines]
    if len(ids) == len(texts) + 1 and not ids[-1]:
        ids = ids[:-1]
    if len(ids) != len(texts):
        raise ValueError(f"{inp.name}: {len(texts)} texts but {len(ids)} id lines")
    return list(zip(texts, ids))


def llama_cpp_paragraphs(*, root: Path | None = None) -> list[str]:
    """Every paragraph of every documentation and source file of the ``llama-cpp`` asset, in file order: its
    Markdown docs, Python tools, C++ sources and gguf-py, split at blank lines, blank paragraphs left out, nothing
    capped or shuffled. 12,984 real texts (3.4 million characters) for corpus-scale runs and benchmarks.

    Fetches the ``llama-cpp`` asset on first use. Deterministic.
    """
    base = asset_path("llama-cpp", "corpus", root)
    texts = []
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        texts.extend(para for para in text.split("\n\n") if para.strip())
    return texts


def llama_cpp_corpus(n: int = 1500, seed: int = 0, max_chars: int = 1500, *, include_vectors: bool = True,
                     root: Path | None = None) -> list[str]:
    """Up to ``n`` real paragraphs (each at most ``max_chars`` characters) plus llama.cpp's tricky test strings.

    Fetches the ``llama-cpp`` asset on first use. Deterministic for given arguments.
    """
    base = asset_path("llama-cpp", "corpus", root)
    files = (sorted(base.glob("docs/**/*.md"))[:200] + sorted(base.glob("tools/**/*.py"))[:60]
             + sorted(base.glob("src/*.cpp"))[:20] + sorted(base.glob("gguf-py/gguf/*.py"))[:20])
    chunks = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        chunks.extend(para[:max_chars] for para in text.split("\n\n") if para.strip())
    random.Random(seed).shuffle(chunks)
    texts = chunks[:n]
    if include_vectors:
        vectors = read_vocab_vectors(asset_path("llama-cpp", "vocab/ggml-vocab-qwen35.gguf", root)) or []
        texts += [text for text, _ in vectors if text]
    return texts
