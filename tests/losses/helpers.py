"""Shared pieces of the loss tests: hand-built tokenizations, tiny random models with real vocabularies, batches."""

from __future__ import annotations

import numpy as np

from ctkd_inspect.text import Tokenization


def hand_tokens(name: str, pieces: list[str], scheme: str = "plain", *, text: str | None = None,
                spans: list[tuple[int, int]] | None = None) -> Tokenization:
    """A tokenization with the given vocabulary strings; spans are consecutive pieces of ``text`` (default: the
    pieces themselves joined)."""
    if spans is None:
        text = "".join(pieces) if text is None else text
        spans, position = [], 0
        for piece in pieces:
            spans.append((position, position + len(piece)))
            position += len(piece)
    n = len(pieces)
    return Tokenization(name=name, text=text or "x", ids=np.arange(n), tokens=list(pieces),
                        starts=np.array([a for a, _ in spans], dtype=np.int64),
                        ends=np.array([b for _, b in spans], dtype=np.int64), special=np.zeros(n, bool),
                        scheme=scheme)


def all_loss_positions(n: int) -> np.ndarray:
    """Labels that make every position a loss position (their values are not read by the alignments)."""
    return np.arange(n, dtype=np.int64)


def tiny_model(vocab_size: int, *, hidden: int = 32, seed: int = 0, dtype=None):
    """A 2-layer Llama with a real tokenizer's vocabulary size, random weights (``from_config``), eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2, intermediate_size=2 * hidden, max_position_embeddings=256,
                         tie_word_embeddings=False)
    model = AutoModelForCausalLM.from_config(config)
    if dtype is not None:
        model = model.to(dtype)
    return model.eval()


#: (prompt, response) pairs of very different lengths, one empty and one one-token response among them
EXAMPLES = [
    ("Q: What is a group of cats called?\nA:", " A group of cats is called a clowder."),
    ("Translate:", " naïve café costs 3.50€ 🦙"),
    ("Say nothing:", ""),
    ("One word:", " Yes"),
    ("Write a long answer about tokenizers.\n", " Tokenizers split text into pieces; byte-level BPE, SentencePiece "
     "and WordPiece disagree on spaces, digits (3.14159) and emoji (🦙🐈), so a student and a teacher rarely see the "
     "same tokens, which is why cross-tokenizer distillation needs an alignment."),
]


def hand_batch(student_ids, student_labels, teacher_ids, teacher_labels, *, mode: str = "canonical",
               student_vocab: int | None = None, teacher_vocab: int | None = None, cdm_cost=None,
               prefixes=None, **arrays):
    """A :class:`~ctkd_inspect.losses.data.DistillationBatch` from nested lists (one list per example, equal
    lengths), with any alignment arrays given as keywords."""
    import torch

    from ctkd_inspect.losses.data import DistillationBatch

    def tensor(values):
        return torch.as_tensor(np.asarray(values))

    s_ids, t_ids = tensor(student_ids), tensor(teacher_ids)
    batch = DistillationBatch(s_ids, torch.ones_like(s_ids), tensor(student_labels), t_ids, torch.ones_like(t_ids),
                              tensor(teacher_labels), mode, student_vocab, teacher_vocab,
                              {k: tensor(v) for k, v in arrays.items()})
    if cdm_cost is not None:
        batch.cdm_cost = np.asarray(cdm_cost, dtype=np.float64)
        batch.cdm_teacher_lengths = (np.asarray(arrays["cdm_teacher_index"]) >= 0).sum(-1)
        batch.cdm_student_lengths = (np.asarray(arrays["cdm_student_index"]) >= 0).sum(-1)
    batch.prefixes = prefixes or [[] for _ in range(len(s_ids))]
    return batch


def log_softmax(x, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def kl(log_p, log_q):
    """KL(p ‖ q) over the last axis from log-probabilities (entries with p = 0 contribute 0)."""
    p = np.exp(log_p)
    return np.where(p > 0, p * (np.where(p > 0, log_p, 0) - log_q), 0).sum(-1)
