"""The failure taxonomy: hand-built tokenizations with hand-derived kinds, then real tokenizer pairs.

Expected kinds are derived by hand from the token lists written in each test (and, for real pairs, from the token
cuts the README and research notes document), never from the classifier's own output.
"""

from __future__ import annotations

import numpy as np
import pytest

from ctkd_inspect import align
from ctkd_inspect.alignment import Alignment
from ctkd_inspect.engines.span import span_groups
from ctkd_inspect.failures import (
    KINDS,
    FailureSummary,
    classify_groups,
    summarize_failures,
    text_transformation,
    unpaired_specials,
)
from ctkd_inspect.metrics import compute_metrics
from ctkd_inspect.text import Tokenization


def _tok(name: str, text: str, spans: list[tuple[int, int]], tokens: list[str] | None = None, *,
         special: list[bool] | None = None, scheme: str = "plain") -> Tokenization:
    tokens = tokens if tokens is not None else [text[a:b] for a, b in spans]
    n = len(spans)
    return Tokenization(name=name, text=text, ids=np.arange(n), tokens=list(tokens),
                        starts=np.array([a for a, _ in spans], dtype=np.int64),
                        ends=np.array([b for _, b in spans], dtype=np.int64),
                        special=np.array(special or [False] * n, dtype=bool), scheme=scheme)


def _align(teacher: Tokenization, student: Tokenization) -> Alignment:
    return Alignment(teacher, student, span_groups(teacher, student), "span")


def _kinds(alignment: Alignment) -> list[tuple[str, tuple[str, ...]]]:
    """(group text, kinds) of every failing group, in order."""
    return [(f.text, f.kinds) for f in classify_groups(alignment)]


# ---------------------------------------------------------------------------------------------------------------
# hand-built cases, one per kind


def test_exact_groups_are_not_failures():
    text = "ab cd"
    t = _tok("t", text, [(0, 2), (2, 5)])
    s = _tok("s", text, [(0, 2), (2, 5)])
    assert classify_groups(_align(t, s)) == []


def test_digit_runs_cut_three_by_three_against_one_by_one():
    text = "12345"
    t = _tok("t", text, [(0, 3), (3, 5)])  # Llama 3 style: 123|45
    s = _tok("s", text, [(i, i + 1) for i in range(5)])  # Gemma style: one digit per token
    failures = classify_groups(_align(t, s))
    assert [(f.text, f.kinds, f.teacher, f.student) for f in failures] == [
        ("123", ("digit-run",), (0,), (0, 1, 2)), ("45", ("digit-run",), (1,), (3, 4))]


def test_whitespace_run_and_leading_space():
    # "a" + 4 spaces + "b": teacher "   " | " b" (space attached to the word), student "    " | "b"
    text = "a    b"
    t = _tok("t", text, [(0, 1), (1, 4), (4, 6)])
    s = _tok("s", text, [(0, 1), (1, 5), (5, 6)])
    # cut 4 lies between two spaces (whitespace-run), cut 5 between a space and "b" (leading-space)
    [failure] = classify_groups(_align(t, s))
    assert failure.kinds == ("whitespace-run", "leading-space") and failure.primary == "whitespace-run"
    assert (failure.start, failure.end, failure.text) == (1, 6, "    b")


def test_leading_tab_attached_on_one_side_only():
    text = "x\tcode"
    t = _tok("t", text, [(0, 1), (1, 6)])
    s = _tok("s", text, [(0, 1), (1, 2), (2, 6)])
    assert _kinds(_align(t, s)) == [("\tcode", ("leading-space",))]


def test_ordinary_word_cut_differently_is_a_merge_mismatch():
    text = " naïve"
    t = _tok("t", text, [(0, 4), (4, 6)])
    s = _tok("s", text, [(0, 6)])
    assert _kinds(_align(t, s)) == [(" naïve", ("merge-mismatch",))]


def test_byte_split_character_with_sentencepiece_byte_fallback():
    text = " 🦙"
    # SentencePiece: "▁" then the four UTF-8 bytes of 🦙 as byte-fallback pieces, each spanning the character
    t = _tok("t", text, [(0, 1)] + [(1, 2)] * 4, ["▁", "<0xF0>", "<0x9F>", "<0xA6>", "<0x99>"], scheme="sentencepiece")
    s = _tok("s", text, [(0, 2)], ["▁🦙"], scheme="sentencepiece")
    assert t.clusters == [(1, 4, "🦙")]
    # the space stands alone on the teacher side: the cut at 1 lies between " " and "🦙"
    [failure] = classify_groups(_align(t, s))
    assert failure.kinds == ("byte-split", "leading-space") and failure.primary == "byte-split"
    assert failure.teacher == (0, 1, 2, 3, 4)


def test_tokens_of_one_split_character_cut_nothing_between_them():
    # both sides split 🦙 into bytes but place the space alike: only byte-split, no cut mismatch
    text = "a🦙"
    t = _tok("t", text, [(0, 1)] + [(1, 2)] * 4, ["a", "<0xF0>", "<0x9F>", "<0xA6>", "<0x99>"],
             scheme="sentencepiece")
    s = _tok("s", text, [(0, 1), (1, 2)], ["a", "🦙"], scheme="sentencepiece")
    assert _kinds(_align(t, s)) == [("🦙", ("byte-split",))]


def test_case_change_is_normalisation_with_its_name():
    text = "Café"
    t = _tok("t", text, [(0, 3), (3, 4)], ["caf", "é"])  # lower-cased by the tokenizer's normaliser
    s = _tok("s", text, [(0, 4)])
    [failure] = classify_groups(_align(t, s))
    assert failure.kinds == ("normalisation", "merge-mismatch") and failure.detail == "case"


def test_accent_stripping_is_normalisation():
    text = "x naïve"
    t = _tok("t", text, [(0, 1), (2, 7)], ["x", "naive"])  # WordPiece: no span for the space, accents stripped
    s = _tok("s", text, [(0, 1), (1, 4), (4, 7)])
    [failure] = classify_groups(_align(t, s))
    # the student cuts at 4 between "ï" and "v" (merge), and starts at 1 before a space the teacher leaves out
    assert failure.kinds == ("normalisation", "leading-space", "merge-mismatch")
    assert failure.detail == "accents"


def test_characters_one_side_drops_have_no_partner():
    text = "a\x01b"
    t = _tok("t", text, [(0, 1), (1, 2), (2, 3)])
    s = _tok("s", text, [(0, 1), (2, 3)])  # the control character is dropped (WordPiece clean_text)
    [failure] = classify_groups(_align(t, s))
    assert failure.kinds == ("normalisation",) and failure.student == () and failure.detail == "dropped by s"


def test_unknown_token():
    text = "x☃"
    t = _tok("t", text, [(0, 2)])
    s = _tok("s", text, [(0, 1), (1, 2)], ["x", "[UNK]"])
    assert _kinds(_align(t, s)) == [("x☃", ("unknown-token", "merge-mismatch"))]
    # an unknown token with another spelling is recognised by id
    s2 = _tok("s", text, [(0, 1), (1, 2)], ["x", "<|endoftext|>"])
    assert classify_groups(_align(t, s2), unknown_ids=[1])[0].kinds == ("unknown-token", "merge-mismatch")


def test_special_token_text_typed_in_the_data():
    text = "a<eot>b"
    t = _tok("t", text, [(0, 1), (1, 6), (6, 7)], special=[False, True, False])  # parsed as one control token
    s = _tok("s", text, [(0, 1), (1, 2), (2, 5), (5, 6), (6, 7)])  # cut as text
    alignment = _align(t, s)
    assert _kinds(alignment) == [("<", ("special",)), ("eot", ("special",)), (">", ("special",))]
    assert unpaired_specials(alignment) == {"teacher": [("<eot>", 1, 6)], "student": []}


def test_dummy_prefix_space_is_a_leading_space_failure():
    text = " Hi"
    # Llama 2 style: a lone "▁" (0, 1), then "▁Hi" (0, 3) overlapping it
    t = _tok("t", text, [(0, 1), (0, 3)], ["▁", "▁Hi"], scheme="sentencepiece")
    s = _tok("s", text, [(0, 3)])
    assert _kinds(_align(t, s)) == [(" Hi", ("leading-space",))]
    # a zero-width dummy-prefix token is a group of its own, explained as a leading space as well
    text = "Hi"
    t = _tok("t", text, [(0, 0), (0, 2)], ["▁", "Hi"], scheme="sentencepiece")
    s = _tok("s", text, [(0, 2)])
    assert _kinds(_align(t, s)) == [("", ("leading-space",))]


def test_bos_only_one_side_adds():
    text = "ab"
    t = _tok("t", text, [(0, 0), (0, 2)], ["<bos>", "ab"], special=[True, False])
    s = _tok("s", text, [(0, 2)])
    alignment = _align(t, s)
    assert classify_groups(alignment) == []
    assert unpaired_specials(alignment) == {"teacher": [("<bos>", 0, 0)], "student": []}
    # both add one BOS, one side adds an EOS (BERT's CLS ... SEP)
    s = _tok("s", text, [(0, 0), (0, 2), (0, 0)], ["[CLS]", "ab", "[SEP]"], special=[True, False, True])
    assert unpaired_specials(_align(t, s)) == {"teacher": [], "student": [("[SEP]", 0, 0)]}


def test_text_transformation_names():
    assert text_transformation("same", "same") is None
    assert text_transformation("Hello World", "hello world") == "case"
    assert text_transformation("naïve café", "naive cafe") == "accents"
    assert text_transformation("Naïve  Café\t", "naive cafe") == "case+accents+whitespace"
    assert text_transformation("e\u0301", "\u00e9") == "NFC"
    assert text_transformation("\ufb01x²", "fix2") == "NFKC"
    assert text_transformation("a\x00b", "ab") == "control characters"
    assert text_transformation("🦙", "\ufffd") == "replacement characters"
    assert text_transformation("☃ x", "[UNK] x") == "unknown tokens"
    assert text_transformation("abc", "xyz") == "other"


# ---------------------------------------------------------------------------------------------------------------
# real pairs

README_TEXT = "The café costs 3.50€ 🦙 — naïve\tcode: x+=1"


def test_llama3_gemma2_readme_text():
    # The README shows the cuts: 50|5 0, ␣🦙 as three Llama 3 byte tokens against ␣|🦙, ␣naï|ve against ␣naïve,
    # ⇥code against ⇥|code; every other group is exact.
    alignment = align("llama3", "gemma2", README_TEXT)
    got = [(f.text, f.kinds) for f in classify_groups(alignment)]
    assert got == [("50", ("digit-run",)), (" 🦙", ("byte-split", "leading-space")),
                   (" naïve", ("merge-mismatch",)), ("\tcode", ("leading-space",))]
    # both add one BOS: nothing unpaired
    assert unpaired_specials(alignment) == {"teacher": [], "student": []}


def test_llama3_gemma2_digits_and_whitespace(tok):
    text = "12345 and a    b"
    alignment = align("llama3", "gemma2", text)
    # the cuts, read from the Rust tokenizers directly
    llama = tok("llama3").backend_tokenizer.encode(text, add_special_tokens=False).tokens
    gemma = tok("gemma2").backend_tokenizer.encode(text, add_special_tokens=False).tokens
    assert llama[:2] == ["123", "45"] and gemma[:5] == ["1", "2", "3", "4", "5"]
    assert llama[-2:] == ["ĠĠĠ", "Ġb"] and gemma[-2:] == ["▁▁▁▁", "b"]
    got = [(f.text, f.kinds) for f in classify_groups(alignment)]
    assert got == [("123", ("digit-run",)), ("45", ("digit-run",)), ("    b", ("whitespace-run", "leading-space"))]


def test_gemma3_smollm2_newlines_bytes_and_bos(tok):
    text = "Hi\n\n\nthere 🦙"
    alignment = align("gemma3", "smollm2", text)
    # Gemma 3 has "\n\n\n" as one piece, SmolLM2 cuts "ĊĊ" | "Ċ"; both split 🦙 into bytes, Gemma 3 with a
    # separate "▁" and byte-fallback pieces, SmolLM2 with the space inside its first byte token
    assert tok("smollm2").backend_tokenizer.encode(text).tokens[1:3] == ["ĊĊ", "Ċ"]
    got = [(f.text, f.kinds) for f in classify_groups(alignment)]
    assert got == [("\n\n\n", ("whitespace-run",)), (" 🦙", ("byte-split", "leading-space"))]
    # Gemma 3 adds <bos>, SmolLM2 adds nothing
    assert unpaired_specials(alignment) == {"teacher": [("<bos>", 0, 0)], "student": []}


def test_bert_llama3_normalisation_dropped_characters_and_unknown():
    text = "Hello World naïve \x01x ☃"
    alignment = align("bert", "llama3", text)
    got = {f.text: (f.kinds, f.detail) for f in classify_groups(alignment)}
    # BERT lower-cases and strips accents; its spans leave out the space llama3 attaches to the word
    assert got[" World"] == (("normalisation", "leading-space"), "case")
    assert got[" naïve"][0][0] == "normalisation" and got[" naïve"][1] == "accents"
    # the control character: BERT drops it, llama3 has a token for it
    assert got["\x01"] == (("normalisation",), "dropped by bert")
    # the snowman is [UNK] in BERT's vocabulary, three byte tokens in llama3's
    assert got[" ☃"][0][:2] == ("unknown-token", "byte-split")
    # BERT adds [CLS] and [SEP], llama3 <|begin_of_text|>: one surplus trailing special on the teacher side
    assert unpaired_specials(alignment) == {"teacher": [("[SEP]", 0, 0)], "student": []}


def test_special_text_typed_in_the_data_real_pair():
    text = "say <|eot_id|> now"
    alignment = align("llama3", "gemma2", text)
    failures = classify_groups(alignment)
    # llama3 parses <|eot_id|> as one control token; Gemma 2 cuts it as text: every Gemma token of it fails as
    # special, and no other kind is invented for them
    inside = [f for f in failures if f.start >= 4 and f.end <= 14]
    assert inside and all(f.primary == "special" for f in inside)
    assert "".join(f.text for f in inside) == "|eot_id|>"
    assert all("normalisation" not in f.kinds for f in failures)
    assert unpaired_specials(alignment)["teacher"] == [("<|eot_id|>", 4, 14)]


# ---------------------------------------------------------------------------------------------------------------
# summaries


@pytest.fixture(scope="module")
def corpus_alignments(corpus, tok):
    from ctkd_inspect.text import tokenize_corpus

    texts = corpus[:300] + corpus[-49:]  # documentation paragraphs plus llama.cpp's tricky test strings
    t, s = tokenize_corpus(tok("llama3"), texts, name="llama3"), tokenize_corpus(tok("gemma2"), texts, name="gemma2")
    from ctkd_inspect.engines.span import span_groups_corpus

    groups = span_groups_corpus(t, s)
    return [Alignment(t[i], s[i], groups[i], "span") for i in range(len(texts))]


def test_summary_counts_agree_with_the_metrics(corpus_alignments):
    summary = summarize_failures(corpus_alignments)
    exact_groups = sum(compute_metrics(a)["exact_groups"] for a in corpus_alignments)
    groups = sum(len(a.table) for a in corpus_alignments)
    student = sum(int((~a.student.special).sum()) for a in corpus_alignments)
    assert summary.texts == len(corpus_alignments) and summary.groups == groups
    assert summary.failed_groups == groups - exact_groups
    assert sum(summary.primary.values()) == summary.failed_groups
    # an exact group holds one student token: the failed student tokens are all the others
    assert summary.student_tokens == student
    assert summary.student_tokens_failed == student - exact_groups
    assert sum(summary.student_tokens_by_kind.values()) == summary.student_tokens_failed
    assert all(summary.kinds[k] >= summary.primary[k] for k in KINDS)
    # the texts hold digits, indentation and non-Latin scripts: each of those kinds is found
    for kind in ("digit-run", "whitespace-run", "leading-space", "byte-split", "merge-mismatch"):
        assert summary.kinds[kind] > 0, kind
        examples = summary.examples(kind)
        assert 0 < len(examples) <= summary.max_examples
        for example in examples:
            alignment = corpus_alignments[example["text_index"]]
            assert alignment.text[example["start"]:example["end"]] == example["text"]
            assert kind in example["kinds"]


def test_summaries_merge_like_one_summary(corpus_alignments):
    whole = summarize_failures(corpus_alignments, max_examples=5, max_worst=4)
    half = len(corpus_alignments) // 2
    first, second = FailureSummary(max_examples=5, max_worst=4), FailureSummary(max_examples=5, max_worst=4)
    for index, alignment in enumerate(corpus_alignments):
        (first if index < half else second).add(alignment, index)
    # merged in the other order: the result does not depend on which part arrives first
    merged = second.merge(first)
    assert merged.to_dict() == whole.to_dict()
    assert FailureSummary.from_dict(whole.to_dict()).to_dict() == whole.to_dict()
    with pytest.raises(ValueError):
        FailureSummary(max_examples=3).merge(whole)


def test_worst_texts_are_the_largest_failed_shares(corpus_alignments):
    summary = summarize_failures(corpus_alignments, max_worst=3)
    shares = []
    for alignment in corpus_alignments:
        n = int((~alignment.student.special).sum())
        if n:
            shares.append(1 - compute_metrics(alignment)["exact_groups"] / n)
    worst = summary.worst()
    assert len(worst) == 3
    assert [w["score"] for w in worst] == pytest.approx(sorted(shares, reverse=True)[:3])


def test_dtw_groups_are_classified_without_inventing_dropped_characters(corpus):
    # DTW groups may pair tokens covering different characters; llama3 and gemma2 are both lossless and cover every
    # character, so no group of theirs may be explained by normalisation (a character neither side dropped)
    for text in corpus[:25]:
        alignment = align("llama3", "gemma2", text, engine="mined")
        failures = classify_groups(alignment)
        assert all("normalisation" not in f.kinds for f in failures), text[:60]
        exact = int(alignment.exact_mask().sum())
        assert len(failures) == len(alignment.table) - exact
