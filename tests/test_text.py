"""Tokenizations of real tokenizers: spans, specials, readable pieces, byte clusters and every documented quirk."""

from __future__ import annotations

import numpy as np
import pytest

from ctkd_inspect.errors import InputError
from ctkd_inspect.text import byte_clusters, clean_text, readable_piece, token_bytes, tokenize

DEMO = "Hi  naïve 🦙\n\t☃x"


def pieces(t):
    return [(p, int(a), int(b)) for p, a, b in zip(t.pieces, t.starts, t.ends)]


def test_llama3_byte_level_pieces_spans_and_clusters(tok):
    t = tokenize(tok("llama3"), DEMO)
    assert t.scheme == "byte-level"
    assert t.tokens[:2] == ["<|begin_of_text|>", "Hi"] and t.special.tolist()[:2] == [True, False]
    assert (int(t.starts[0]), int(t.ends[0])) == (0, 0)
    # the leading space is inside the span; the three byte tokens of 🦙 share the character's span
    assert pieces(t)[5:8] == [(" <0xF0><0x9F>", 9, 11), ("<0xA6>", 10, 11), ("<0x99>", 10, 11)]
    assert (5, 7, " 🦙") in t.clusters and (10, 11, "☃") in t.clusters


def test_gemma2_whole_emoji_no_dummy_prefix_and_real_whitespace_tokens(tok):
    t = tokenize(tok("gemma2"), DEMO)
    assert t.scheme == "sentencepiece"
    assert pieces(t)[1:3] == [("Hi", 0, 2), ("  ", 2, 4)]  # "▁▁" is a normal token, not special
    assert ("🦙", 10, 11) in pieces(t) and ("\n", 11, 12) in pieces(t)
    assert not t.special[1:].any()
    assert t.clusters == []


def test_sentencepiece_byte_fallback_and_dummy_prefix(tok):
    t = tokenize(tok("llama2"), DEMO)
    assert t.tokens[1] == "▁Hi" and (int(t.starts[1]), int(t.ends[1])) == (0, 2)  # ▁ has no source character
    fallback = [k for k, name in enumerate(t.tokens) if name in ("<0xF0>", "<0x9F>", "<0xA6>", "<0x99>")]
    assert len(fallback) == 4 and {(int(t.starts[k]), int(t.ends[k])) for k in fallback} == {(10, 11)}
    assert (fallback[0], fallback[-1], "🦙") in t.clusters
    assert "<0x0A>" in t.tokens and "\n" in t.pieces  # newline is a byte piece in Llama 2


def test_leading_space_gives_a_lone_marker_overlapping_the_next_token(tok):
    t = tokenize(tok("llama2"), " Hello", add_special_tokens=False)
    assert t.tokens[:2] == ["▁", "▁Hello"]
    assert (int(t.starts[0]), int(t.ends[0])) == (0, 1) and int(t.starts[1]) == 0


def test_wordpiece_gaps_unk_and_cls_sep(tok):
    t = tokenize(tok("bert"), DEMO)
    assert t.tokens[0] == "[CLS]" and t.tokens[-1] == "[SEP]" and t.special[0] and t.special[-1]
    assert ("naive", 4, 9) in pieces(t)  # accent stripped, span maps back to the original characters
    unk = [k for k, name in enumerate(t.tokens) if name == "[UNK]"]
    assert unk and not t.special[unk].any()  # [UNK] stands for real text and is aligned like any token
    assert (int(t.starts[unk[-1]]), int(t.ends[unk[-1]])) == (13, 15)
    covered = set()
    for a, b in zip(t.starts, t.ends):
        covered.update(range(a, b))
    assert 2 not in covered and 3 not in covered  # whitespace is in no token


def test_bos_defaults_differ_and_can_be_turned_off(tok):
    assert tokenize(tok("llama3"), "x").tokens[0] == "<|begin_of_text|>"
    assert tokenize(tok("gemma3"), "x").tokens[0] == "<bos>"
    assert tokenize(tok("qwen2"), "x").tokens == ["x"]
    assert tokenize(tok("gpt2"), "x").tokens == ["x"]
    assert not tokenize(tok("llama3"), "x", add_special_tokens=False).special.any()


def test_special_token_text_in_the_input_is_flagged_special(tok):
    t = tokenize(tok("llama3"), "a<|eot_id|>b", add_special_tokens=False)
    k = t.tokens.index("<|eot_id|>")
    assert t.special[k] and (int(t.starts[k]), int(t.ends[k])) == (1, 11)


def test_lone_surrogates_are_replaced_one_for_one(tok):
    text = "ab\udcff c\ud800"
    cleaned, count = clean_text(text)
    assert count == 2 and len(cleaned) == len(text) and cleaned == "ab\ufffd c\ufffd"
    t = tokenize(tok("llama3"), text)
    assert t.text == cleaned and int(t.ends.max()) == len(text)


@pytest.mark.parametrize("text", ["\x00\x01\x1b[31m", "مرحبا بالعالم", "e\u0301\u0301 a\u0308",
                                  "👩‍👩‍👧‍👦 🏳️‍🌈", "\u200b\u200d\ufeff", "   \n\t  "])
@pytest.mark.parametrize("name", ["llama3", "gemma2", "bert", "xlm-r", "mistral"])
def test_hard_text_spans_stay_inside_the_text(tok, name, text):
    t = tokenize(tok(name), text)
    assert np.all((t.starts >= 0) & (t.ends <= len(text)) & (t.starts <= t.ends))
    wide = ~t.special
    assert np.all(np.diff(t.starts[wide]) >= 0) and np.all(np.diff(t.ends[wide]) >= 0)


def test_hundred_thousand_characters(tok):
    text = ("The café costs 3.50€ 🦙 — naïve\tcode: x+=1\n" * 2400)[:100_000]
    t = tokenize(tok("llama3"), text)
    assert int(t.ends.max()) == 100_000 and len(t) > 20_000


def test_non_string_text_is_an_input_error(tok):
    with pytest.raises(InputError):
        tokenize(tok("llama3"), b"bytes")


def test_token_bytes_and_readable_pieces():
    assert token_bytes("ĠðŁ", "byte-level") == b" \xf0\x9f"
    assert token_bytes("<0x0A>", "sentencepiece") == b"\n"
    assert token_bytes("▁Hi", "sentencepiece") == b" Hi"
    assert token_bytes("##ing", "wordpiece") == b"ing"
    assert readable_piece(b" \xf0\x9f") == " <0xF0><0x9F>"
    assert byte_clusters([b"\xe2", b"\x98", b"\x83", b"x"], np.zeros(4, bool)) == [(0, 2, "☃")]
    # a special token interrupting an unfinished character closes the cluster as it stands
    assert byte_clusters([b"\xe2", b"<s>", b"x"], np.array([False, True, False])) == [(0, 0, "<0xE2>")]
