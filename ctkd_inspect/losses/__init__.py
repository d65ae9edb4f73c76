"""Distillation losses built on the alignment engines' kernels: the papers' full losses, batched, on CPU and GPU.

::

    from ctkd_inspect.losses import PairBuilder, TokenizerPair, Collator, get_loss

    pair = TokenizerPair("llama2", "gpt2")                       # teacher, student
    builder = PairBuilder(pair, max_length=512)
    examples = builder.build_many([(prompt, response), ...])    # alignments computed once, cacheable
    batch = Collator(builder)(examples[:8])
    loss = get_loss("sedi", pair=pair)                           # a torch.nn.Module
    out = loss.step(batch, student_model, teacher_model)         # forward passes + loss
    out.loss.backward(); out.scalars()                           # {"loss", "term/ce", "stat/top1_accuracy", ...}

Methods (one module each; defaults are the papers'): ``mined`` (DSKD's MinED), ``cdm`` (CDM), ``sedi`` (SeDi),
``dwa`` (DWA-KD), and the baselines ``dskd`` (DSKD with cross-model attention), ``uld`` (ULD; ``grouping="gold"``
for TRL GOLD's byte-offset groups), ``kd`` (same-tokenizer KD) and ``sft``. See each module's docstring for the
position semantics, the defaults and every deviation from the published code, and
:mod:`ctkd_inspect.losses.base` for the interface.

Importing this package does not import torch; :func:`get_loss` imports the loss's module (and torch).
"""

from __future__ import annotations

import importlib
import importlib.util

from ..errors import InputError
from .data import Collator, DistillationBatch, PairBuilder, PairedExample, TokenizerPair, collate, format_chat

__all__ = ["LOSSES", "Collator", "DistillationBatch", "PairBuilder", "PairedExample", "TokenizerPair", "collate",
           "format_chat", "get_loss", "loss_class", "loss_names"]

#: name -> "module:Class", imported on first use
LOSSES: dict[str, str] = {
    "mined": "ctkd_inspect.losses.mined:MinEDLoss",
    "cdm": "ctkd_inspect.losses.cdm:CDMLoss",
    "sedi": "ctkd_inspect.losses.sedi:SeDiLoss",
    "dwa": "ctkd_inspect.losses.dwa:DWALoss",
    "dskd": "ctkd_inspect.losses.dskd:DSKDLoss",
    "uld": "ctkd_inspect.losses.uld:ULDLoss",
    "kd": "ctkd_inspect.losses.kd:KDLoss",
    "sft": "ctkd_inspect.losses.sft:SFTLoss",
}


def loss_names() -> list[str]:
    """The registered loss names."""
    return list(LOSSES)


def loss_class(name: str) -> type:
    """The class registered as ``name``.

    Raises:
        InputError: no loss has that name.
    """
    target = LOSSES.get(name)
    if target is None:
        raise InputError(f"unknown loss {name!r}; available: {', '.join(LOSSES)}")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def get_loss(name: str, **config):
    """An instance of the loss ``name`` configured with ``config`` (each loss documents its options; the
    cross-tokenizer losses that need the tokenizers take ``pair=`` a :class:`TokenizerPair`).

    Raises:
        InputError: an unknown loss, or an option it does not take or cannot use.
        MissingExtraError: torch is not installed.
    """
    if name in LOSSES and importlib.util.find_spec("torch") is None:  # say so before importing the module
        from ..errors import MissingExtraError
        from ..extras import install_command

        raise MissingExtraError(f"the {name} loss needs torch, which is not installed: {install_command('models')}",
                                extra="models", modules=["torch"])
    cls = loss_class(name)
    try:
        return cls(**config)
    except TypeError as exc:
        raise InputError(f"the {name} loss: {exc}") from None
