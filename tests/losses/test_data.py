"""The data-pipeline side of the losses: layout and position semantics, truncation, alignments on the hand vectors
of research/methods.md §9 (1, 4, 5, 12), caching and collation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ctkd_inspect.errors import InputError
from ctkd_inspect.losses import Collator, PairBuilder, PairedExample, collate, format_chat
from ctkd_inspect.losses.data import IGNORE_INDEX, continuation_encoder, mined_alignments, span_alignments

from .helpers import all_loss_positions, hand_tokens


def target_bytes(tokenizer, ids, labels):
    """The bytes of the target tokens (the tokens that some label names), special tokens left out."""
    from ctkd_inspect.text import token_bytes, tokenizer_profile

    targets = [int(ids[t + 1]) for t in range(len(ids) - 1) if labels[t] != IGNORE_INDEX]
    special = set(tokenizer.all_special_ids)
    scheme = tokenizer_profile(tokenizer).scheme
    return b"".join(token_bytes(tokenizer.convert_ids_to_tokens(i), scheme) for i in targets if i not in special)


def test_labels_name_the_next_token_at_the_loss_positions(pair, builder):
    prompt, response = "Q: What is the capital of France?\nA:", " Paris, of course."
    example = builder.build(prompt, response)
    for side, ids, labels in (("teacher", example.teacher_ids, example.teacher_labels),
                              ("student", example.student_ids, example.student_labels)):
        tokenizer = getattr(pair, side)
        loss = np.flatnonzero(labels != IGNORE_INDEX)
        # label[t] = input[t + 1] wherever it is set, and the last position predicts nothing
        assert np.array_equal(labels[loss], ids[loss + 1]) and labels[-1] == IGNORE_INDEX
        # the loss positions are contiguous, end before the appended EOS and their targets spell the response
        assert np.array_equal(loss, np.arange(loss[0], len(ids) - 1))
        assert ids[-1] == tokenizer.eos_token_id
        assert target_bytes(tokenizer, ids, labels) == response.encode("utf-8")
        # the first loss position is the prompt's last token: the prompt alone tokenizes to it
        prompt_ids = tokenizer.backend_tokenizer.encode(prompt).ids
        assert loss[0] == len(prompt_ids) - 1 and ids[loss[0]] == prompt_ids[-1]
    assert not example.truncated and not example.boundary_straddled


def test_empty_and_one_token_responses(builder):
    empty = builder.build("Say nothing:", "")
    for labels, ids in ((empty.student_labels, empty.student_ids), (empty.teacher_labels, empty.teacher_ids)):
        assert np.flatnonzero(labels != IGNORE_INDEX).tolist() == [len(ids) - 2]  # only the EOS is a target
    one = builder.build("One word:", " Yes")
    assert one.student_loss_positions == 2  # " Yes" and EOS


def test_a_token_straddling_the_boundary_belongs_to_the_prompt(builder):
    example = builder.build("Answer: ", "Paris")  # GPT-2 tokenizes " Paris" as one token across the boundary
    assert example.boundary_straddled
    assert example.student_loss_positions == 1  # "ĠParis" lies partly in the prompt: only the EOS is a target


def test_truncation_cuts_both_sides_at_one_character(pair):
    builder = PairBuilder(pair, max_length=14)
    prompt = "Tell me:"
    response = " the quick brown fox jumps over the lazy dog, then naïvely sleeps by the fire 🦙 until dawn."
    example = builder.build(prompt, response)
    assert example.truncated
    assert len(example.teacher_ids) <= 14 and len(example.student_ids) <= 14
    assert example.text.startswith(prompt) and (prompt + response).startswith(example.text)
    # no EOS after a cut response, and both sides tokenize the very same shortened text
    for tokenizer, ids in ((pair.teacher, example.teacher_ids), (pair.student, example.student_ids)):
        assert ids[-1] != tokenizer.eos_token_id
        assert ids.tolist() == tokenizer.backend_tokenizer.encode(example.text).ids
    # the cut is as late as the tighter side allows: one more character would not fit on some side
    longer = (prompt + response)[:len(example.text) + 1]
    lengths = [len(t.backend_tokenizer.encode(longer).ids) for t in (pair.teacher, pair.student)]
    assert max(lengths) > 14 or longer == example.text


def test_a_prompt_longer_than_max_length_is_refused(pair):
    builder = PairBuilder(pair, max_length=4)
    with pytest.raises(InputError, match="max_length=4"):
        builder.build("This prompt is certainly longer than four tokens on both sides", " ok")


@pytest.mark.parametrize(("kwargs", "message"), [({"max_length": 1}, "max_length"),
                                                 ({"alignments": ["nope"]}, "unknown alignments"),
                                                 ({"window": 0}, "window")])
def test_builder_options_are_checked(pair, kwargs, message):
    with pytest.raises(InputError, match=message):
        PairBuilder(pair, **kwargs)


def test_examples_round_trip_through_plain_data(examples):
    for example in examples:
        data = json.loads(json.dumps(example.to_dict()))
        back = PairedExample.from_dict(data)
        assert back.text == example.text and back.prefixes == example.prefixes
        for name in ("teacher_ids", "teacher_labels", "student_ids", "student_labels"):
            assert np.array_equal(getattr(back, name), getattr(example, name))
        assert set(back.arrays) == set(example.arrays)
        for key, value in example.arrays.items():
            assert back.arrays[key].dtype == value.dtype and np.array_equal(back.arrays[key], value)


def test_collation_pads_right_with_ignored_labels(builder, examples):
    batch = Collator(builder)(examples)
    longest = max(len(e.student_ids) for e in examples)
    assert tuple(batch.student_input_ids.shape) == (len(examples), longest)
    for b, example in enumerate(examples):
        n = len(example.student_ids)
        assert batch.student_input_ids[b, :n].tolist() == example.student_ids.tolist()
        assert batch.student_attention_mask[b].tolist() == [1] * n + [0] * (longest - n)
        assert (batch.student_labels[b, n:] == IGNORE_INDEX).all()
        assert batch.mined_teacher[b, :n].tolist() == example.arrays["mined_teacher"].tolist()
        assert (batch.mined_teacher[b, n:] == -1).all()
    assert batch.cdm_cost.shape[0] == len(examples)
    assert batch.student_vocab_size == 50257 and batch.teacher_vocab_size == 32000
    # dicts (a dataset's rows) collate like examples
    again = collate([e.to_dict() for e in examples], student_pad_id=50256)
    assert again.student_input_ids.shape == batch.student_input_ids.shape


def test_collation_refuses_mixed_alignments(pair, examples):
    other = PairBuilder(pair, alignments=["span"]).build("a", " b")
    with pytest.raises(InputError, match="different alignments"):
        collate([examples[0], other])
    with pytest.raises(InputError, match="empty"):
        collate([])


def test_chat_rendering():
    prompt, response = format_chat([{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}])
    assert (prompt, response) == ("user: Hi?\nassistant:", " Hello.")
    with pytest.raises(InputError, match="assistant"):
        format_chat([{"role": "user", "content": "Hi?"}])
    with pytest.raises(InputError, match="role"):
        format_chat([{"content": "x"}])


def test_continuation_encoder_drops_the_dummy_prefix(pair):
    llama2 = pair.teacher
    assert llama2.backend_tokenizer.encode("ats", add_special_tokens=False).tokens[0].startswith("▁")
    encoder = continuation_encoder(llama2)
    pieces = encoder.encode("ats called", add_special_tokens=False).tokens
    assert not pieces[0].startswith("▁") and "".join(pieces).replace("▁", " ") == "ats called"


# --------------------------------------------------------------------------------------------------------------
# hand vectors


def test_vector1_mined_rows():
    teacher = hand_tokens("t", ["▁The", "▁comfort", "▁of", "▁c", "ats"], "sentencepiece")
    student = hand_tokens("s", ["The", "Ġcomfort", "Ġof", "Ġcats"], "byte-level")
    [(aligned, match)] = mined_alignments([(teacher, student, all_loss_positions(5), all_loss_positions(4))],
                                          "reference")
    # stu→tea [[0], [1], [2, 3], [4]]: rows 0, 1 and 3 hold one teacher token; "▁c" lands on "of"
    assert aligned.tolist() == [0, 1, -1, 4]
    assert match.tolist() == [True, True, False, False]  # "cats" ≠ "ats"


def test_vector4_every_row_is_one_to_one_yet_nothing_matches():
    teacher = hand_tokens("t", ["ĠCOVID", "Ġ19"], "byte-level")
    student = hand_tokens("s", ["▁CO", "VID", "▁", "1", "9"], "sentencepiece")
    [(aligned, match)] = mined_alignments([(teacher, student, all_loss_positions(2), all_loss_positions(5))],
                                          "reference")
    assert aligned.tolist() == [0, 0, 1, 1, 1] and not match.any()


def test_mined_rows_skip_special_tokens_and_non_loss_positions():
    teacher = hand_tokens("t", ["<s>", "▁a", "▁b"], "sentencepiece")
    teacher.special[0] = True
    student = hand_tokens("s", ["a", "Ġb"], "byte-level")
    labels_t = np.array([1, 2, IGNORE_INDEX])
    labels_s = np.array([IGNORE_INDEX, IGNORE_INDEX])
    [(aligned, _)] = mined_alignments([(teacher, student, labels_t, labels_s)], "reference")
    assert aligned.tolist() == [-1, -1]  # no student loss position: nothing enters the DTW


VECTOR5_TEACHER = ["A", " group", " of", " cats", " is", " call", "ed", " a", " cl", "owder", "."]
VECTOR5_STUDENT = ["A", " group", " of", " c", "ats", " is", " called", " a", " c", "low", "der", "."]


def test_vector5_sedi_groups_and_windows():
    teacher = hand_tokens("t", VECTOR5_TEACHER)
    student = hand_tokens("s", VECTOR5_STUDENT)
    assert teacher.text == student.text == "A group of cats is called a clowder."
    arrays, prefixes = span_alignments(teacher, student, all_loss_positions(11), all_loss_positions(12), window=4)
    queries, rows, prefix_index = arrays["sedi_query"], arrays["sedi_rows"], arrays["sedi_prefix"]
    # groups (S, T): ([0],[0]) ([1],[1]) ([2],[2]) ([3,4],[3]) ([5],[4]) ([6],[5,6]) ([7],[7]) ([8,9,10],[8,9])
    # ([11],[10]): one window per group
    assert len(queries) == 9
    # g = ([2],[2]): q* = teacher 2, no prefix; row 2 at ṽ[0], row 3 at ṽ[1] (the next group's leading student)
    assert queries[2] == 2 and prefix_index[2] == -1 and rows[2].tolist() == [2, 3, -1, -1]
    # g = ([5],[4]): the next group has two teacher tokens: prefix " call", q* = teacher 5, row 5 only
    assert queries[4] == 5 and prefixes[prefix_index[4]] == b" call" and rows[4].tolist() == [5, -1, -1, -1]
    # g = ([7],[7]): next ([8,9,10],[8,9]): prefix " cl", q* = teacher 8; rows 7, 8, 9
    assert queries[6] == 8 and prefixes[prefix_index[6]] == b" cl" and rows[6].tolist() == [7, 8, 9, -1]
    # the last group writes its last student row from its last teacher token
    assert queries[8] == 10 and prefix_index[8] == -1 and rows[8].tolist() == [11, -1, -1, -1]
    # exact 1:1 groups: A, group, of, is, a, "." (teacher and student spans equal)
    assert np.flatnonzero(arrays["span_exact"]).tolist() == [0, 1, 2, 5, 7, 11]


def test_vector5_windows_are_capped_and_restricted_to_loss_positions():
    teacher = hand_tokens("t", VECTOR5_TEACHER)
    student = hand_tokens("s", VECTOR5_STUDENT)
    labels = np.full(12, IGNORE_INDEX)
    labels[8:] = 1  # only the last four student positions are loss positions
    arrays, _ = span_alignments(teacher, student, all_loss_positions(11), labels, window=2)
    assert arrays["sedi_rows"].tolist() == [[-1, 8], [10, -1], [11, -1]]


def test_vector12_response_positions():
    import torch

    from ctkd_inspect.losses.base import response_positions

    labels = torch.tensor([[-100, -100, -100, 5, 6, -100], [1, 2, 3, -100, -100, -100]])
    positions, lengths = response_positions(labels)
    assert positions.tolist() == [[3, 4, -1], [0, 1, 2]] and lengths.tolist() == [2, 3]


def test_gold_groups_pair_the_targets_and_the_eos():
    teacher = hand_tokens("t", ["ab", "c", "</s>"], text="abc", spans=[(0, 2), (2, 3), (3, 3)])
    student = hand_tokens("s", ["a", "bc", "<|e|>"], text="abc", spans=[(0, 1), (1, 3), (3, 3)])
    teacher.special[2] = student.special[2] = True
    labels = np.array([1, 2, IGNORE_INDEX])
    arrays, _ = span_alignments(teacher, student, labels, labels)
    # "ab"+"c" and "a"+"bc" form one group (vector 3); its targets are tokens 1 (predicted at 0); EOS at 1
    assert arrays["gold_student_group"].tolist() == [0, 1, -1]
    assert arrays["gold_teacher_group"].tolist() == [0, 1, -1]
    assert arrays["gold_eos_group"].tolist() == [1]
