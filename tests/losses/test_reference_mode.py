"""Reference mode as the published code computes it (research/methods.md §2.2, §3.3, §3.4, §3.5): CDM's dynamic
mapper with its quirks, FuseLLM's hard rule after marker replacement, CDM's entropy with 1e-10, CDM's averaged rows;
and the per-example slot mapping the CDM loss uses."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ctkd_inspect.engines.dtw import cdm_reference_entropy, dtw_metrics, fusellm_hard_match
from ctkd_inspect.engines.dtw_core import dtw_path, edit_distance_matrix
from ctkd_inspect.vocab import CodedStrings, cdm_dynamic_mapping, cdm_slot_mapping

from .helpers import hand_tokens, log_softmax

TEACHER = ["zz", "cat", "dog", "bird"]
STUDENT = ["qq", "cat", "cats", "cat.", "dogs"]


def mapping(t_rows, s_rows, static_t2s, reference):
    return cdm_dynamic_mapping(np.array(t_rows), np.array(s_rows), TEACHER, STUDENT, np.array(static_t2s),
                               np.full(len(STUDENT), -1), spaces_removed=True, reference=reference)


def test_the_matched_set_removes_candidates_numbered_like_unmapped_teacher_ids():
    # teacher ids 0 and 1 have no static mapping, so student candidates 0 and 1 are dropped in reference mode:
    # "cat" can no longer meet the student's "cat" (id 1) and takes "cats" (id 2) instead
    rows = dict(t_rows=[[1, 3]], s_rows=[[1, 2]], static_t2s=[-1, -1, 4, 4])
    assert mapping(**rows, reference=False)["teacher_to_student"] == {1: 1}
    assert mapping(**rows, reference=True)["teacher_to_student"] == {1: 2}


def test_every_row_remaps_and_the_last_accepted_candidate_wins():
    rows = dict(t_rows=[[1, 3], [1, 3]], s_rows=[[2, 4], [3, 4]], static_t2s=[4, -1, 4, 4])
    assert mapping(**rows, reference=False)["teacher_to_student"] == {1: 2}  # first row wins, then it is mapped
    reference = mapping(**rows, reference=True)
    assert reference["teacher_to_student"] == {1: 3}
    # the coverage counts the slots of the final mapping: "cat" in both rows; "bird" (3) is mapped statically
    assert reference["teacher_slots_mapped"] == 4


def test_id_zero_is_the_unmapped_sentinel():
    # the student's id 0 is the closest candidate (distance 0) but 0 means "unmapped": no pair, and it blocks the
    # farther "cats"
    t2s, s2t = ["zz", "cat"], ["cat", "x", "cats"]
    rows = (np.array([[1, -1]]), np.array([[0, 2]]), t2s, s2t, np.array([5, -1]), np.full(3, -1))
    assert cdm_dynamic_mapping(*rows, spaces_removed=True, reference=True)["teacher_to_student"] == {}
    assert cdm_dynamic_mapping(*rows, spaces_removed=True)["teacher_to_student"] == {1: 0}
    # a static target 0 counts as unmapped too: teacher 1 is mapped dynamically (to "cats")
    static = [4, 0, 4, 4]
    assert mapping([[1, 3]], [[2, 4]], static, reference=True)["teacher_to_student"] == {1: 2}
    assert mapping([[1, 3]], [[2, 4]], static, reference=False)["teacher_to_student"] == {}


def test_candidates_are_visited_in_python_set_order():
    # "cat" is at the same distance from "cats" (2) and "cat." (3); the row lists 3 first (higher rank)
    assert list({3, 2}) == [2, 3]  # CPython iterates small ints of a set in hash order
    rows = dict(t_rows=[[1, 0]], s_rows=[[3, 2]], static_t2s=[4, -1, 4, 4])
    assert mapping(**rows, reference=False)["teacher_to_student"] == {1: 3}  # the higher-ranked candidate
    assert mapping(**rows, reference=True)["teacher_to_student"] == {1: 2}  # the set's first


def test_cdm_special_pairs_have_distance_zero_in_reference_mode():
    out = cdm_dynamic_mapping(np.array([[0]]), np.array([[1]]), ["</s>"], ["x", "<|im_end|>"], np.array([-1]),
                              np.full(2, -1), spaces_removed=True, reference=True)
    assert out["teacher_to_student"] == {0: 1}


def test_slot_mapping_maps_each_example_on_its_own():
    """The loss's slot mapping equals the engine's mapping run on each example alone; nothing carries over."""
    rng = np.random.default_rng(0)
    alphabet = list("abcde")
    t_vocab = ["".join(rng.choice(alphabet, rng.integers(1, 5))) for _ in range(40)]
    s_vocab = ["".join(rng.choice(alphabet, rng.integers(1, 5))) for _ in range(50)]
    static = np.where(rng.random(40) < 0.3, rng.integers(0, 50, 40), -1)
    t_top = rng.integers(-1, 40, size=(9, 6))
    s_top = rng.integers(-1, 50, size=(9, 6))
    segments = np.array([0, 4, 4, 9])  # three examples, the second without rows
    targets, pairs = cdm_slot_mapping(t_top, s_top, segments, CodedStrings.from_strings(t_vocab),
                                      CodedStrings.from_strings(s_vocab), static)
    total = 0
    for a, b in itertools.pairwise(segments.tolist()):
        if a == b:
            continue
        alone = cdm_dynamic_mapping(t_top[a:b], s_top[a:b], t_vocab, s_vocab, static, None, spaces_removed=True)
        dynamic = alone["teacher_to_student"]
        total += len(dynamic)
        expected = [[-1 if i < 0 else int(static[i]) if static[i] >= 0 else dynamic.get(i, -1) for i in row]
                    for row in t_top[a:b].tolist()]
        assert targets[a:b].tolist() == expected
    assert pairs == total
    reference, _ = cdm_slot_mapping(t_top, s_top, segments, CodedStrings.from_strings(t_vocab),
                                    CodedStrings.from_strings(s_vocab), static, reference=True,
                                    source_decoded=t_vocab, target_decoded=s_vocab)
    assert reference.shape == targets.shape


# --------------------------------------------------------------------------------------------------------------
# FuseLLM's hard rule


@pytest.mark.parametrize(("teacher", "student", "schemes", "first", "equal"), [
    ("▁The", "The", ("sentencepiece", "byte-level"), True, False),  # "ĠThe" ≠ "The": vector 1's position 0
    ("▁comfort", "Ġcomfort", ("sentencepiece", "byte-level"), False, True),
    ("ĠThe", "▁The", ("byte-level", "sentencepiece"), False, True),
    ("The", "▁The", ("byte-level", "sentencepiece"), True, True),  # the MPT special case, first row only
    ("The", "▁The", ("byte-level", "sentencepiece"), False, False),
    ("The", "ĠThe", ("sentencepiece", "byte-level"), True, False),  # the special case needs a byte-level teacher
    ("##ing", "##ing", ("wordpiece", "wordpiece"), False, True),  # no marker: raw strings
])
def test_fusellm_hard_rule(teacher, student, schemes, first, equal):
    assert fusellm_hard_match(teacher, student, *schemes, first) is equal


def test_vector1_one_hot_rate_under_fusellm_and_canonical_rules():
    teacher = hand_tokens("t", ["▁The", "▁comfort", "▁of", "▁c", "ats"], "sentencepiece")
    student = hand_tokens("s", ["The", "Ġcomfort", "Ġof", "Ġcats"], "byte-level")
    t_str, s_str = ["The", "comfort", "of", "c", "ats"], ["The", "comfort", "of", "cats"]
    result = dtw_path(edit_distance_matrix(t_str, s_str))
    idx_t, idx_s = np.arange(5), np.arange(4)
    reference = dtw_metrics(teacher, student, result, idx_t, idx_s, t_str, s_str, None, None, None,
                            mode="reference")
    canonical = dtw_metrics(teacher, student, result, idx_t, idx_s, t_str, s_str, None, None, None)
    # FuseLLM: only "▁comfort"→"Ġcomfort" survives marker replacement; stripped strings also match "The"
    assert reference["onehot_fallback_rate"] == 0.75 and canonical["onehot_fallback_rate"] == 0.5
    assert reference["sequence_alignment_rate"] == canonical["sequence_alignment_rate"] == 0.5


# --------------------------------------------------------------------------------------------------------------
# CDM's entropy


def test_cdm_entropy_adds_1e_10_to_the_probabilities():
    logits = np.random.default_rng(2).normal(size=(3, 50)) * 4
    p = np.exp(log_softmax(logits)) + 1e-10
    assert np.allclose(cdm_reference_entropy(logits), -(p * np.log(p)).sum(-1), rtol=1e-12)
    exact = -(np.exp(log_softmax(logits)) * log_softmax(logits)).sum(-1)
    assert np.all(cdm_reference_entropy(logits) > exact)  # the shift adds about V·1e-10·23 nats


def test_the_signals_carry_cdm_entropy_and_reference_mode_uses_it():
    import torch

    from ctkd_inspect.engines.dtw import _entropy_for
    from ctkd_inspect.signals import ModelSource, _forward

    from .helpers import tiny_model

    model = tiny_model(300, seed=0)
    ids = np.array([1, 5, 9, 200, 7])
    signals = _forward(model, ModelSource("tiny", "folder", "none"), ids, 10, None)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(ids[None])).logits[0].double().numpy()
    assert np.allclose(signals.cdm_entropy, cdm_reference_entropy(logits), rtol=1e-6)
    tokens = hand_tokens("t", ["a", "b", "c", "d", "e"])
    assert np.array_equal(_entropy_for(tokens, None, signals, "teacher", mode="reference"), signals.cdm_entropy)
    assert np.array_equal(_entropy_for(tokens, None, signals, "teacher"), signals.entropy)


@pytest.mark.slow
@pytest.mark.models
def test_reference_rows_average_logits_over_the_group():
    """CDM's row of a group is the mean of logits; recomputed from the hidden states with the real model's head."""
    import torch

    from ctkd_inspect.signals import averaged_topk, compute_signals, load_model, resolve_model
    from ctkd_inspect.sources import load_tokenizer

    tokenizer = load_tokenizer("smollm2")
    ids = tokenizer.backend_tokenizer.encode("The comfort of cats is well known.").ids
    signals = compute_signals("smollm2", ids, tokenizer=tokenizer, top_k=5)
    weights = [{2: 0.5, 3: 0.5}, {1: 0.25, 4: 0.75}]
    got = averaged_topk(signals, weights, 5)
    model = load_model(resolve_model("smollm2"))
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double().numpy()
    for row, weight in zip(got, weights):
        mean = sum(w * logits[t] for t, w in weight.items())
        assert row.tolist() == np.argsort(-mean)[:5].tolist()
