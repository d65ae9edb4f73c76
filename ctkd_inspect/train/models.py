"""The models of a distillation run: loaded by alias, path or hub id, checked against their tokenizers, the teacher
frozen, LoRA on the student when asked; and tiny random models for tests and smoke runs.

- :func:`load_causal_lm` loads a fresh copy (never the process-wide cache of :mod:`ctkd_inspect.signals`, whose
  model must not be trained) from a ``.gguf`` (dequantised to float32 by transformers), a folder with
  ``config.json``, an alias that names a model (``gemma3``, ``smollm2``) or a hub id (only when the hub answers).
- :func:`resolve_tokenizer_name` picks a model's own tokenizer when none is named: the alias, the folder (when it
  holds tokenizer files) or the GGUF.
- :func:`check_model_fits` refuses a model that does not belong to its tokenizer **before any training**: an
  embedding table with fewer rows than the tokenizer has ids, or a model whose own vocabulary (GGUF header or the
  folder's ``tokenizer.json``) names other tokens at more than 1% of the ids.
- :func:`freeze` puts the teacher in eval mode with ``requires_grad = False`` on every parameter, so no gradient
  can ever reach it (the losses also run it under ``no_grad`` and detach its outputs).
- :func:`apply_lora` wraps the student with peft LoRA adapters (only the adapters are trainable).
- :func:`tiny_model` writes a small random Llama (``from_config``) sized for a real tokenizer's vocabulary, with the
  tokenizer's files beside it, for tests, notebooks and ``--smoke`` runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError, ModelError

__all__ = ["apply_lora", "check_model_fits", "freeze", "load_causal_lm", "model_context", "resolve_tokenizer_name",
           "tiny_model"]

_DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def load_causal_lm(name: str, *, dtype: str = "float32", cache_dir: str | None = None, role: str = "model"):
    """A fresh causal LM and its :class:`~ctkd_inspect.signals.ModelSource`, in ``dtype``, on the CPU.

    Raises:
        ModelError: nothing matches the name, the hub is unreachable for a hub id, or the weights cannot be loaded.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from ..progress import stage
    from ..signals import resolve_model
    from ..sources.thirdparty import quiet_transformers

    try:
        source = resolve_model(name, cache_dir=cache_dir)
    except ModelError as exc:
        raise ModelError(f"the {role}: {exc}") from None
    if source.kind == "hub-offline":
        raise ModelError(f"the {role} {name!r} is a hub id, but the Hugging Face hub is not reachable (or "
                         "HF_HUB_OFFLINE is set): give a local folder, a .gguf file or an alias with a model "
                         "(gemma3, smollm2)")
    torch_dtype = getattr(torch, _DTYPES[dtype])
    try:
        with stage(f"loading the {role} {name}") as bar, quiet_transformers(bar, gguf=source.kind == "gguf"):
            if source.kind == "gguf":
                path = Path(source.location)
                model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                             dtype=torch.float32)
            else:
                model = AutoModelForCausalLM.from_pretrained(source.location, dtype=torch.float32,
                                                             local_files_only=source.kind != "hub")
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"could not load the {role} {name!r} ({source.location}): {reason[:300]}") from exc
    if torch_dtype is not torch.float32:
        model = model.to(torch_dtype)
    return model, source


def resolve_tokenizer_name(model_name: str, tokenizer_name: str | None) -> str:
    """The tokenizer to load for a model: ``tokenizer_name`` when given, else the model's own (its alias, its
    folder when that holds tokenizer files, its GGUF).

    Raises:
        InputError: a model folder without tokenizer files and no tokenizer named.
    """
    if tokenizer_name:
        return tokenizer_name
    path = Path(model_name).expanduser()
    if path.is_dir():
        if any((path / f).exists() for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
            return str(path)
        raise InputError(f"the model folder {model_name} holds no tokenizer files; name its tokenizer with "
                         "teacher_tokenizer/student_tokenizer (an alias, a folder or a tokenizer file)")
    return model_name


def model_context(model) -> int | None:
    """The model's context length (``max_position_embeddings``), when its config states one."""
    config = model.config
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    value = getattr(config, "max_position_embeddings", None)
    return int(value) if value else None


def check_model_fits(model, source, tokenizer, role: str) -> None:
    """Refuse a model that does not belong to its tokenizer (see the module docstring).

    Raises:
        ModelError: naming the side, the sizes or an example id whose tokens differ.
    """
    from ..signals import _check_own_vocabulary, _tokenizer_tokens

    rows = model.get_input_embeddings().num_embeddings
    size = len(tokenizer)
    if rows < size:
        raise ModelError(f"the {role} model {source.name!r} has {rows:,} embedding rows but its tokenizer has "
                         f"{size:,} ids: the model does not belong to the tokenizer; pass the model trained with it "
                         f"(or name its tokenizer with {role}_tokenizer)")
    head = model.get_output_embeddings()
    if head is not None and head.weight.shape[0] < size:
        raise ModelError(f"the {role} model {source.name!r} predicts {head.weight.shape[0]:,} tokens but its "
                         f"tokenizer has {size:,} ids: the model does not belong to the tokenizer")
    try:
        _check_own_vocabulary(source, _tokenizer_tokens(tokenizer))
    except ModelError as exc:
        raise ModelError(f"the {role}: {exc}") from None


def freeze(model):
    """The model in eval mode with every parameter frozen (``requires_grad = False``); returns it."""
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def apply_lora(model, *, r: int, alpha: int, dropout: float, target_modules):
    """The student wrapped with LoRA adapters (peft); only the adapters are trainable.

    Raises:
        InputError: peft refuses the target modules (e.g. a name the model has no module for).
    """
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules,
                        task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise InputError(f"LoRA: {exc} (lora_target_modules={target_modules!r})") from None


def tiny_model(path: str | os.PathLike, tokenizer, *, hidden: int = 32, layers: int = 2, heads: int = 2,
               context: int = 256, seed: int = 0, tie_embeddings: bool = False) -> Path:
    """Write a tiny random Llama (``LlamaForCausalLM.from_config``) for ``tokenizer`` into the folder ``path``.

    The vocabulary size is the tokenizer's (``len(tokenizer)``), the weights are drawn with ``seed``, and the
    tokenizer's files are saved beside the model, so the folder is a model that belongs to its tokenizer (the
    own-vocabulary check passes) and can be named as ``teacher``/``student`` of a run. For tests, notebooks and
    smoke runs: nothing is downloaded.

    Args:
        tokenizer: a loaded tokenizer or an alias (loaded with :func:`ctkd_inspect.load_tokenizer`).

    Returns:
        The folder.
    """
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    if isinstance(tokenizer, str):
        from ..sources import load_tokenizer

        tokenizer = load_tokenizer(tokenizer)
    target = Path(path)
    target.mkdir(parents=True, exist_ok=True)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=heads, intermediate_size=2 * hidden,
                         max_position_embeddings=context, tie_word_embeddings=tie_embeddings,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    finally:
        torch.random.set_rng_state(generator_state)  # the caller's random stream is left as it was
    from ..sources.thirdparty import quiet_transformers

    with quiet_transformers():  # no "Writing model shards" bar
        model.save_pretrained(target)
        tokenizer.save_pretrained(target)
    return target
