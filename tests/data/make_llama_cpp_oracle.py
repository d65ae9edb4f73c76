"""Regenerate ``llama_cpp_corpus_oracle.json``: llama.cpp's own tokenization of the offline corpus.

llama.cpp is an independent implementation of every GGUF tokenizer; its ids for each corpus text are stored as
short digests (the full id lists would be megabytes), so the tests can check our tokenizers against it without
building llama.cpp. This script needs llama-cpp-python 0.3.36 built from its source distribution (about 4.5 min on
2 cores; no wheel exists on PyPI):

    CMAKE_BUILD_PARALLEL_LEVEL=2 CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF" pip install --no-deps llama-cpp-python==0.3.36
    pip install numpy diskcache jinja2 typing-extensions
    python tests/data/make_llama_cpp_oracle.py

It imports ctkd_inspect only to fetch the assets and build the corpus (so run it where ctkd_inspect imports).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ctkd_inspect.sources.assets import asset_path
from ctkd_inspect.sources.corpus import llama_cpp_corpus
from ctkd_inspect.sources.registry import ALIASES

# aliases backed by a GGUF, plus the two files the tokenizer-identity checks use
GGUF_ALIASES = ["llama3-gguf", "llama2", "gemma3", "qwen2", "phi3", "gpt2", "smollm2", "bert", "xlm-r"]


def digest(ids: list[int]) -> str:
    import hashlib

    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]


def main() -> None:
    import llama_cpp

    texts = llama_cpp_corpus()
    out = {"llama_cpp_python": llama_cpp.__version__, "texts": len(texts), "add_bos": False, "special": True,
           "digests": {}}
    for name in GGUF_ALIASES:
        alias = ALIASES[name]
        model = llama_cpp.Llama(model_path=str(asset_path(alias.asset, alias.file)), vocab_only=True, verbose=False)
        out["digests"][name] = [digest(model.tokenize(t.encode("utf-8"), add_bos=False, special=True))
                                for t in texts]
        print(name, "done", file=sys.stderr)
    path = Path(__file__).with_name("llama_cpp_corpus_oracle.json")
    path.write_text(json.dumps(out, indent=0) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
