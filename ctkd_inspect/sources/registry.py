"""Aliases: short names for well-known tokenizers, each with an offline source and its family's official hub id.

An alias names an asset (see :mod:`ctkd_inspect.sources.assets`), the file inside it, and the recipe that turns
that file into a fast tokenizer. ``hub_id`` is the Hugging Face repository of the family's reference model; it is
recorded so users can compare, and is never contacted by an alias.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Alias:
    """One alias. ``recipe`` is one of: tiktoken, sentencepiece, gemma-sentencepiece, gguf, tekken."""

    name: str
    family: str
    kind: str  # byte-level BPE, SentencePiece BPE, Unigram, WordPiece
    vocab_size: int
    asset: str
    file: str
    recipe: str
    hub_id: str
    note: str = ""
    model_file: str | None = None  # for aliases that also name a causal LM in the same asset


_ALIASES = (
    Alias("llama3", "Llama 3", "byte-level BPE (tiktoken)", 128256, "llama-models", "llama3/tokenizer.model",
          "tiktoken", "meta-llama/Meta-Llama-3-8B",
          "Meta's tiktoken file; identical ids to the llama.cpp llama-bpe GGUF and to tiktoken"),
    Alias("llama3-gguf", "Llama 3", "byte-level BPE", 128256, "llama-cpp", "vocab/ggml-vocab-llama-bpe.gguf", "gguf",
          "meta-llama/Meta-Llama-3-8B", "llama.cpp's vocabulary GGUF of Llama 3 (adds no BOS, as the file says)"),
    Alias("llama2", "Llama 2", "SentencePiece BPE", 32000, "llama-cpp", "vocab/ggml-vocab-llama-spm.gguf", "gguf",
          "meta-llama/Llama-2-7b-hf"),
    Alias("gemma2", "Gemma 2", "SentencePiece BPE", 256000, "draive", "gemma2/tokenizer.model",
          "gemma-sentencepiece", "google/gemma-2-9b",
          "the 256k Gemma (1/2) SentencePiece model; tokenizes like the official tokenizer.json"),
    Alias("gemma3", "Gemma 3", "SentencePiece BPE", 262144, "gemma3-270m", "gemma-3-270m-q4_k_m.gguf", "gguf",
          "google/gemma-3-270m", "from the Gemma-3-270M GGUF; identical ids to the official tokenizer.json",
          model_file="gemma-3-270m-q4_k_m.gguf"),
    Alias("qwen2", "Qwen2", "byte-level BPE", 151936, "llama-cpp", "vocab/ggml-vocab-qwen2.gguf", "gguf",
          "Qwen/Qwen2-7B"),
    Alias("phi3", "Phi-3", "SentencePiece BPE", 32064, "llama-cpp", "vocab/ggml-vocab-phi-3.gguf", "gguf",
          "microsoft/Phi-3-mini-4k-instruct"),
    Alias("mistral", "Mistral (v3)", "SentencePiece BPE", 32768, "draive", "mistral-v3/tokenizer.model",
          "sentencepiece", "mistralai/Mistral-7B-v0.3"),
    Alias("mistral-v1", "Mistral (v1)", "SentencePiece BPE", 32000, "draive", "mistral-v1/tokenizer.model",
          "sentencepiece", "mistralai/Mistral-7B-v0.1"),
    Alias("tekken", "Mistral NeMo (tekken)", "byte-level BPE (tiktoken-like)", 131072, "mistral-common",
          "tekken/tekken.json", "tekken", "mistralai/Mistral-Nemo-Base-2407"),
    Alias("gpt2", "GPT-2", "byte-level BPE", 50257, "llama-cpp", "vocab/ggml-vocab-gpt-2.gguf", "gguf",
          "openai-community/gpt2"),
    Alias("smollm2", "SmolLM2", "byte-level BPE", 49152, "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "gguf",
          "HuggingFaceTB/SmolLM2-135M-Instruct", "from the SmolLM2-135M-Instruct GGUF",
          model_file="SmolLM2-135M-Instruct.Q4_1.gguf"),
    Alias("bert", "BERT (uncased)", "WordPiece", 30522, "llama-cpp", "vocab/ggml-vocab-bert-bge.gguf", "gguf",
          "google-bert/bert-base-uncased",
          "the bert-base-uncased WordPiece vocabulary as shipped in llama.cpp's bge-small GGUF"),
    Alias("xlm-r", "XLM-RoBERTa", "SentencePiece Unigram", 250048, "llama-cpp",
          "vocab/ggml-vocab-nomic-bert-moe.gguf", "gguf", "FacebookAI/xlm-roberta-base",
          "XLM-R's Unigram vocabulary as padded to 250048 by nomic-embed-text-v2-moe (llama.cpp GGUF)"),
    Alias("starcoder", "StarCoder 2", "byte-level BPE", 49152, "llama-cpp", "vocab/ggml-vocab-starcoder.gguf",
          "gguf", "bigcode/starcoder2-15b"),
    Alias("deepseek-llm", "DeepSeek LLM", "byte-level BPE", 102400, "llama-cpp",
          "vocab/ggml-vocab-deepseek-llm.gguf", "gguf", "deepseek-ai/deepseek-llm-7b-base"),
    Alias("deepseek-coder", "DeepSeek Coder", "byte-level BPE", 32256, "llama-cpp",
          "vocab/ggml-vocab-deepseek-coder.gguf", "gguf", "deepseek-ai/deepseek-coder-6.7b-base"),
    Alias("falcon", "Falcon", "byte-level BPE", 65024, "llama-cpp", "vocab/ggml-vocab-falcon.gguf", "gguf",
          "tiiuae/falcon-7b"),
    Alias("mpt", "MPT (GPT-NeoX vocabulary)", "byte-level BPE", 50432, "llama-cpp", "vocab/ggml-vocab-mpt.gguf",
          "gguf", "mosaicml/mpt-7b"),
    Alias("command-r", "Command R", "byte-level BPE", 256000, "llama-cpp", "vocab/ggml-vocab-command-r.gguf", "gguf",
          "CohereForAI/c4ai-command-r-v01"),
)

ALIASES: dict[str, Alias] = {alias.name: alias for alias in _ALIASES}

# Spellings people type for the same alias.
SYNONYMS = {
    "llama-3": "llama3", "llama_3": "llama3", "meta-llama-3": "llama3",
    "llama-2": "llama2", "gemma-2": "gemma2", "gemma-3": "gemma3", "qwen-2": "qwen2", "phi-3": "phi3",
    "gpt-2": "gpt2", "smollm": "smollm2", "smollm-2": "smollm2", "xlmr": "xlm-r", "xlm-roberta": "xlm-r",
    "bert-base-uncased": "bert", "mistral-v3": "mistral",
}


def find_alias(name: str) -> Alias | None:
    """The alias a name refers to (case-insensitive, synonyms accepted), or None."""
    key = name.strip().lower()
    key = SYNONYMS.get(key, key)
    return ALIASES.get(key)


def aliases_for_hub_id(hub_id: str) -> tuple[list[Alias], list[Alias]]:
    """Aliases related to a hub id, as ``(same tokenizer, same family)``.

    *Same tokenizer*: the alias records that hub id, compared case-insensitively, or a repository of the same
    name under another organisation (a mirror or a re-upload). *Same family*: the alias's repository name is the
    start of the requested one (``Meta-Llama-3-8B`` for ``Meta-Llama-3-8B-Instruct``), so the two very likely
    share a tokenizer, though that is not recorded here. Each list is in alias order.
    """
    wanted = hub_id.strip().lower()
    repo = wanted.rsplit("/", 1)[-1]
    exact, family = [], []
    for alias in _ALIASES:
        own = alias.hub_id.lower()
        own_repo = own.rsplit("/", 1)[-1]
        if own == wanted or own_repo == repo:
            exact.append(alias)
        elif repo.startswith(own_repo) and repo[len(own_repo):len(own_repo) + 1] in ("-", "_", "."):
            family.append(alias)
    return exact, family
