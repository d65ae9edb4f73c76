"""Training data: record forms, chat templates (the student's own, SmolLM2's, and the plain one), bad records,
the held-out split, truncation of long responses at one character for both tokenizers, dataset folders, and the
seeded resumable order of examples over processes and micro-batches."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ctkd_inspect.errors import InputError
from ctkd_inspect.train.config import load_config
from ctkd_inspect.train.data import (
    EpochSampler,
    build_examples,
    choose_template,
    load_pairs,
    render_chat,
    step_indices,
)

CHAT = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"}]


def config_for(path, **values):
    return load_config(None, {"teacher": "gemma3", "student": "smollm2", "data": str(path), "eval_size": 0,
                              **values})


def write_jsonl(path, rows, extra_lines=()):
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        for line in extra_lines:
            handle.write(line + "\n")
    return path


def test_smollm2_chat_template_renders_prompt_and_response(tok):
    prompt, response = render_chat(CHAT, tok("smollm2"))
    assert prompt == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                      "<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n")
    assert response == "Hello!"  # the template's <|im_end|> is the EOS each side appends itself


def test_plain_template_and_template_choice(tok):
    assert render_chat(CHAT, None) == ("user: Hi there\nassistant:", " Hello!")
    assert choose_template("auto", tok("smollm2"), tok("gemma3"))[0] == "student"
    assert choose_template("auto", tok("gpt2"), tok("smollm2")) == ("plain", None)
    assert choose_template("teacher", tok("gpt2"), tok("smollm2"))[0] == "teacher"
    with pytest.raises(InputError, match="student tokenizer has no chat template"):
        choose_template("student", tok("gpt2"), tok("smollm2"))
    with pytest.raises(ValueError, match="not the assistant"):
        render_chat(CHAT[:1], None)


def test_record_forms_and_bad_records(tok, tmp_path):
    rows = [
        {"prompt": "Q: 2+2?\nA:", "response": " 4"},
        {"messages": CHAT},
        # OpenAI evals' form: the prompt is a chat, several acceptable answers
        {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}],
         "response": ["Paris", "paris"]},
        {"messages": CHAT[:1]},                     # no assistant answer
        {"prompt": "only a prompt"},                # no response field
        {"prompt": {"nested": 1}, "response": "x"},  # not text
        {"prompt": "", "response": ""},             # empty
    ]
    path = write_jsonl(tmp_path / "data.jsonl", rows, extra_lines=["{not json", "[1, 2]"])
    train, heldout, report = load_pairs(config_for(path, chat_template="plain"), tok("gpt2"), tok("llama2"))
    assert heldout == []
    assert train == [("Q: 2+2?\nA:", " 4"), ("user: Hi there\nassistant:", " Hello!"),
                     ("system: Be brief.\nuser: Capital of France?\nassistant:", " Paris")]
    assert report.records == 9 and sum(report.skipped.values()) == 6
    assert report.skipped["not valid JSON"] == 1 and report.skipped["not a JSON object"] == 1
    assert report.skipped["no field 'response'"] == 1 and report.skipped["empty text"] == 1
    assert "skipped 6 records" in report.notes()[0]
    # with the student's own template (auto: SmolLM2 has one), prompt/response records may become chats too
    as_chat, _, report = load_pairs(config_for(path, prompt_response_as_chat=True), tok("smollm2"), tok("gemma3"))
    assert report.template == "student"
    assert as_chat[0][0].endswith("<|im_start|>user\nQ: 2+2?\nA:<|im_end|>\n<|im_start|>assistant\n")
    assert as_chat[0][1] == " 4"


def test_the_first_record_decides_the_fields(tok, tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(InputError, match=r"no field 'prompt' \(fields found: 'question', 'answer'\)"):
        load_pairs(config_for(path), tok("gpt2"), tok("llama2"))
    pairs, _, _ = load_pairs(config_for(path, prompt_field="question", response_field="answer"), tok("gpt2"),
                             tok("llama2"))
    assert pairs == [("q", "a")]
    with pytest.raises(InputError, match="no such file"):
        load_pairs(config_for(tmp_path / "missing.jsonl"), tok("gpt2"), tok("llama2"))


def test_heldout_split_is_seeded_and_disjoint(tok, tmp_path):
    rows = [{"prompt": f"P{i}:", "response": f" R{i}"} for i in range(20)]
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    train, heldout, _ = load_pairs(config_for(path, eval_size=5, seed=1), tok("gpt2"), tok("llama2"))
    assert len(heldout) == 5 and len(train) == 15 and not set(train) & set(heldout)
    assert sorted(train + heldout) == sorted((r["prompt"], r["response"]) for r in rows)
    assert train == [p for p in [(r["prompt"], r["response"]) for r in rows] if p not in heldout]  # file order
    again = load_pairs(config_for(path, eval_size=5, seed=1), tok("gpt2"), tok("llama2"))[1]
    other = load_pairs(config_for(path, eval_size=5, seed=2), tok("gpt2"), tok("llama2"))[1]
    assert again == heldout and other != heldout
    with pytest.raises(InputError, match="leaves none to train on"):
        load_pairs(config_for(path, eval_size=20), tok("gpt2"), tok("llama2"))
    separate = write_jsonl(tmp_path / "eval.jsonl", rows[:2])
    train, heldout, _ = load_pairs(config_for(path, eval_data=str(separate), eval_size=5), tok("gpt2"), tok("llama2"))
    assert len(train) == 20 and heldout == [("P0:", " R0"), ("P1:", " R1")]


def test_a_dataset_folder_reads_like_jsonl(tok, tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [{"prompt": f"P{i}:", "response": f" R{i}"} for i in range(4)]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows),
                          "test": datasets.Dataset.from_list(rows[:1])}).save_to_disk(str(tmp_path / "ds"))
    pairs, _, _ = load_pairs(config_for(tmp_path / "ds"), tok("gpt2"), tok("llama2"))
    assert pairs == [(r["prompt"], r["response"]) for r in rows]
    pairs, _, _ = load_pairs(config_for(tmp_path / "ds", split="test"), tok("gpt2"), tok("llama2"))
    assert pairs == [("P0:", " R0")]


def test_long_responses_are_cut_at_one_character_for_both_sides_and_counted(tok):
    from ctkd_inspect.losses import PairBuilder, TokenizerPair
    from ctkd_inspect.train.data import DataReport

    teacher, student = tok("llama2"), tok("gpt2")
    pairs = [("Q:", " short"), ("Tell a story:", " Once upon a time " * 12), ("Say nothing:", "")]
    report = DataReport(max_length=16)
    builder = PairBuilder(TokenizerPair(teacher, student), max_length=16)
    examples = build_examples(builder, pairs, report)
    # independent count: the untruncated sequence with EOS is longer than max_length on either side
    too_long = [any(len(t(p + r)["input_ids"]) + 1 > 16 for t in (teacher, student)) for p, r in pairs]
    assert [e.truncated for e in examples] == too_long == [False, True, False]
    assert report.truncated == 1 and report.empty_responses == 1
    cut = examples[1]
    assert (pairs[1][0] + pairs[1][1]).startswith(cut.text) and len(cut.text) < len(pairs[1][0] + pairs[1][1])
    assert len(cut.teacher_ids) <= 16 and len(cut.student_ids) <= 16
    # both sides hold the same text: each tokenizer re-cuts exactly the kept characters
    assert student.decode(cut.student_ids, skip_special_tokens=True) == cut.text
    assert teacher.decode(cut.teacher_ids, skip_special_tokens=True) == cut.text
    assert any("cut at the same character for both tokenizers" in note for note in report.notes())


def test_epoch_order_is_a_seeded_permutation_per_epoch():
    sampler = EpochSampler(7, seed=3)
    first, second = sampler.indices(0, 7), sampler.indices(7, 7)
    assert sorted(first) == sorted(second) == list(range(7)) and first != second
    # any window reads the same examples as the whole sequence: resuming at a position continues it
    whole = sampler.indices(0, 30)
    assert EpochSampler(7, seed=3).indices(11, 9) == whole[11:20]
    assert EpochSampler(7, seed=4).indices(0, 7) != first
    assert np.array_equal(np.sort(sampler.indices(21, 7)), np.arange(7))


def test_a_step_covers_the_same_examples_whatever_the_processes_and_micro_batches():
    sampler = EpochSampler(10, seed=0)
    one = step_indices(sampler, 4, per_device=4, processes=1, accumulation=1, rank=0)
    two = [step_indices(sampler, 4, per_device=2, processes=2, accumulation=1, rank=r) for r in (0, 1)]
    accumulated = step_indices(sampler, 4, per_device=1, processes=2, accumulation=2, rank=0) + \
        step_indices(sampler, 4, per_device=1, processes=2, accumulation=2, rank=1)
    assert sorted(one[0]) == sorted(two[0][0] + two[1][0]) == sorted(i for micro in accumulated for i in micro)
    assert one[0] == sampler.indices(4, 4)


def test_a_cut_through_a_character_of_several_byte_tokens_still_fits(tok):
    """GPT-2 writes 🦙 as three byte tokens that all span the character: when the limit falls between them the
    whole character goes, on both sides (the cut used to repeat itself and the example was lost)."""
    from ctkd_inspect.losses import PairBuilder, TokenizerPair

    gpt2 = tok("gpt2")
    prompt, response = "Emoji:", " a 🦙 b 🦙 c 🦙 d 🦙 e 🦙 f 🦙 g 🦙 h"
    for limit in range(6, len(gpt2(prompt + response)["input_ids"]) + 1):
        example = PairBuilder(TokenizerPair(gpt2, gpt2), max_length=limit).build(prompt, response)
        assert len(example.student_ids) <= limit and len(example.teacher_ids) <= limit
        assert (prompt + response).startswith(example.text) and example.truncated
        assert gpt2.decode(example.student_ids) == example.text  # whole characters only
