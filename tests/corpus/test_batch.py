"""The per-batch function: its rows equal per-text align(), its statistics equal independent computations, its
response statistics equal hand-computed values, and summaries merge exactly."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pyarrow as pa
import pytest

from ctkd_inspect import align
from ctkd_inspect.columns import from_arrow, to_record_batch
from ctkd_inspect.corpus import CorpusSpec, CorpusSummary, align_batch, output_schema
from ctkd_inspect.corpus.spec import CORPUS_FIELDS
from ctkd_inspect.failures import summarize_failures


@pytest.fixture(scope="module")
def texts(corpus):
    # real paragraphs, then llama.cpp's tokenizer test strings (whitespace runs, CJK, emoji, digits, Khmer...)
    return corpus[:250] + corpus[-49:] + ["", " ", "\t\n", "a", "🦙🦙", "x" * 3000]


def _summary(table) -> dict:
    values = [v for v in table.column("batch_summary").to_pylist() if v is not None]
    assert len(values) == 1  # one batch, one summary, on its first row
    return json.loads(values[0])


@pytest.mark.parametrize("pair", [("llama3", "gemma2"), ("bert", "xlm-r"), ("mistral", "gpt2")])
def test_rows_equal_to_record_batch_of_align(texts, pair):
    """The compiled corpus path gives exactly the columns of per-text align() (ids, groups, metrics JSON, ...),
    for byte-level, SentencePiece, WordPiece (dropped characters, [UNK]) and Unigram tokenizers."""
    teacher, student = pair
    out = align_batch(pa.table({"text": texts}), CorpusSpec(teacher, student))
    reference = to_record_batch([align(teacher, student, text) for text in texts])
    assert out.num_rows == len(texts)
    for name in reference.schema.names:
        assert out.column(name).combine_chunks().equals(reference.column(name)), name
    assert out.schema.metadata == output_schema(CorpusSpec(teacher, student)).metadata
    assert out.column("index").to_pylist() == list(range(len(texts)))


def test_rows_read_back_as_the_alignments_of_align(texts):
    out = align_batch(pa.table({"text": texts[:40], "index": list(range(100, 140))}), CorpusSpec("llama3", "gemma2"))
    for row in (0, 7, 39):
        assert from_arrow(out, row).to_dict() == align("llama3", "gemma2", texts[row]).to_dict()
    assert out.column("index").to_pylist() == list(range(100, 140))


def test_other_engines_go_text_by_text_with_the_same_columns(texts):
    sample = texts[:6] + texts[-5:-1]
    spec = CorpusSpec("llama3", "gemma2", engine="mined", options={"mode": "reference"})
    out = align_batch({"text": sample}, spec)  # a dict of columns, as datasets' batched map passes it
    reference = to_record_batch([align("llama3", "gemma2", t, engine="mined", mode="reference") for t in sample])
    for name in reference.schema.names:
        assert out.column(name).combine_chunks().equals(reference.column(name)), name
    assert json.loads(out.schema.metadata[b"ctkd_inspect.options"]) == {
        "mined": {"add_special_tokens": True, "mode": "reference"}}


def test_failure_taxonomy_equals_summarize_failures_of_align(texts):
    out = align_batch(pa.table({"text": texts}), CorpusSpec("llama3", "gemma2"))
    expected = summarize_failures([align("llama3", "gemma2", t) for t in texts]).to_dict()
    expected.pop("worst_texts")  # the corpus summary keeps its own worst texts
    assert _summary(out)["failures"] == expected


def test_statistics_equal_independent_computations(texts):
    out = align_batch(pa.table({"text": texts}), CorpusSpec("llama3", "gemma2"))
    summary = _summary(out)
    metrics = [align("llama3", "gemma2", t).metrics for t in texts]
    rates = np.array([m["alignment_rate"] for m in metrics if m["alignment_rate"] is not None])
    exact = sum(m["exact_groups"] for m in metrics)
    students = sum(m["tokens"]["student"]["non_special"] for m in metrics)
    rate = summary["alignment_rate"]
    assert rate["corpus"] == pytest.approx(exact / students)
    assert rate["texts"] == len(rates) and rate["undefined_texts"] == len(texts) - len(rates)
    assert rate["mean"] == pytest.approx(rates.mean())
    assert (rate["min"], rate["max"]) == (rates.min(), rates.max())
    for p in (5, 25, 50, 75, 95):  # histogram percentiles: within half a bin of the nearest-rank value
        assert abs(rate["percentiles"][f"p{p}"] - np.percentile(rates, p, method="inverted_cdf")) <= 0.0005 + 1e-12
    t_all = np.array([m["tokens"]["teacher"]["all"] for m in metrics], float)
    s_all = np.array([m["tokens"]["student"]["all"] for m in metrics], float)
    ratios = t_all / s_all
    ratio = summary["length_ratio"]
    assert ratio["mean"] == pytest.approx(ratios.mean())
    assert ratio["median"] == pytest.approx(np.percentile(ratios, 50, method="inverted_cdf"), rel=0.009)
    assert summary["tokens"] == {"teacher": int(t_all.sum()), "student": int(s_all.sum())}
    for shape in ("1:1", "1:n", "n:1", "n:m", "unmatched"):
        assert summary["shapes"][shape] == sum(m["shapes"][shape] for m in metrics)
    assert np.array(summary["group_sizes"]["matrix"]).sum() == sum(m["groups"] for m in metrics)
    worst = summary["worst_texts"]
    assert len(worst) == 10 and worst[0]["alignment_rate"] == rates.min()
    assert all(a["score"] >= b["score"] for a, b in itertools.pairwise(worst))
    assert summary["vocab_size"] == {"teacher": 128256, "student": 256000}


def test_response_statistics_hand_computed():
    """Prompt "Total 1", response "2345 cat" (no separator): Llama 3 cuts 123|45, Gemma 2 every digit, so the
    token "123" straddles the boundary (a prompt token) but its group holds the response tokens "2" and "3" and
    counts whole: response groups {123 ↔ 1 2 3}, {45 ↔ 4 5}, {cat ↔ cat}: 6 student tokens, 1 exact."""
    spec = CorpusSpec("llama3", "gemma2", response_only=True)
    table = pa.table({"text": ["Total 12345 cat", "Total 12345 cat", "Hello"],
                      "response_start": [7, 11, 5]})
    a = align("llama3", "gemma2", "Total 12345 cat")
    assert a.teacher.tokens[1:] == ["Total", "Ġ", "123", "45", "Ġcat"]
    assert a.student.tokens[1:] == ["Total", "▁", "1", "2", "3", "4", "5", "▁cat"]
    out = align_batch(table, spec)
    assert out.column("response_start").to_pylist() == [7, 11, 5]
    assert out.column("response_student_tokens").to_pylist() == [6, 1, 0]
    assert out.column("response_teacher_tokens").to_pylist() == [3, 1, 0]
    assert out.column("response_alignment_rate").to_pylist() == [1 / 6, 1.0, None]
    assert out.column("alignment_rate").to_pylist()[:2] == [0.375, 0.375]  # the alignment columns: whole text
    summary = _summary(out)
    assert summary["response_only"] is True
    assert summary["counted_tokens"] == {"student": 7, "teacher": 4}
    assert summary["alignment_rate"]["corpus"] == 2 / 7
    assert summary["alignment_rate"]["undefined_texts"] == 1
    assert summary["groups"] == 4 and summary["shapes"] == {"1:1": 1 + 1, "1:n": 2, "n:1": 0, "n:m": 0,
                                                             "unmatched": 0}
    # only the response groups' failures: 123↔1 2 3 and 45↔4 5 (digit runs), nothing from the prompt
    failures = summary["failures"]
    assert failures["failed_groups"] == 2 and failures["kinds"]["digit-run"]["groups"] == 2
    assert failures["student_tokens"] == 7 and failures["student_tokens_failed"] == 5


def test_no_response_fields_leaves_the_response_columns_null(texts):
    out = align_batch(pa.table({"text": texts[:5]}), CorpusSpec("llama3", "gemma2"))
    for name in CORPUS_FIELDS[1:]:
        assert out.column(name).null_count == 5


def test_summaries_of_parts_merge_into_the_summary_of_the_whole(texts):
    spec = CorpusSpec("llama3", "gemma2", max_examples=3, max_worst=4)
    whole = CorpusSummary.from_dict(_summary(align_batch(pa.table({"text": texts}), spec)))
    cut = 120
    first = align_batch(pa.table({"text": texts[:cut]}), spec)
    second = align_batch(pa.table({"text": texts[cut:], "index": list(range(cut, len(texts)))}), spec)
    merged = CorpusSummary.from_dict(_summary(first)).merge(CorpusSummary.from_dict(_summary(second)))
    a, b = merged.to_dict(), whole.to_dict()
    for key in ("alignment_rate", "length_ratio"):  # sums of floats: equal up to rounding
        assert a[key].pop("sum") == pytest.approx(b[key].pop("sum"))
        assert a[key].pop("mean") == pytest.approx(b[key].pop("mean"))
    assert a == b
    assert len(a["worst_texts"]) == 4 and all(len(v) <= 3 for v in a["failures"]["examples"].values())
    # and a summary survives its JSON form
    assert CorpusSummary.from_dict(json.loads(whole.to_json())).to_dict() == whole.to_dict()


def test_bad_batches_are_refused():
    from ctkd_inspect.errors import InputError

    with pytest.raises(InputError, match="no 'text' column"):
        align_batch(pa.table({"body": ["x"]}), CorpusSpec("llama3", "gemma2"))
    with pytest.raises(InputError, match="strings"):
        align_batch({"text": ["x", None]}, CorpusSpec("llama3", "gemma2"))
    with pytest.raises(InputError, match="corpus spec"):
        align_batch({"text": ["x"]}, {"teacher": "llama3"})
    empty = align_batch(pa.table({"text": pa.array([], pa.string())}), CorpusSpec("llama3", "gemma2"))
    assert empty.num_rows == 0


def test_special_tokens_only_each_side_parses_survive_the_summary_round_trip():
    """Typed special-token text that only Llama 3 parses ("<|eot_id|>") and text only Gemma 2 parses ("<eos>") in
    one text: both are unpaired specials of that text, kept as two examples through JSON and merges."""
    text = 'if t == "<|eot_id|>" || t == "<eos>"'
    spec = CorpusSpec("llama3", "gemma2", max_examples=50)  # room for every example
    out = align_batch(pa.table({"text": [text, text], "index": [7, 8]}), spec)
    summary = CorpusSummary.from_dict(_summary(out))
    examples = [e for e in summary.to_dict()["failures"]["examples"]["special"] if e["group"] < 0]
    assert sorted((e["text_index"], e["side"], e["token"]) for e in examples) == [
        (7, "student", "<eos>"), (7, "teacher", "<|eot_id|>"), (8, "student", "<eos>"), (8, "teacher", "<|eot_id|>")]
    assert summary.failures.unpaired_specials == {"teacher": 2, "student": 2}
    again = CorpusSummary.from_dict(json.loads(summary.to_json())).merge(CorpusSummary.from_dict(_summary(out)))
    assert again.failures.unpaired_specials == {"teacher": 4, "student": 4}
