"""Vocabulary lookup (ctkd_inspect.lookup): hand-built vocabularies with hand-computed distances, then real ones."""

import numpy as np
import pytest

from ctkd_inspect.errors import InputError
from ctkd_inspect.lookup import VocabLookup, lookup, normalised_distance, parse_query
from ctkd_inspect.vocab import Vocabulary, canonical_bytes, mined_mapping


def _vocab(name, scheme, raw, special):
    canonical = ["" if flag else canonical_bytes(token, scheme).decode("latin-1") for token, flag in zip(raw, special)]
    return Vocabulary(name, scheme, list(raw), canonical, np.array(special, dtype=bool))


@pytest.fixture(scope="module")
def pair():
    # teacher: byte-level (Ġ = space, Ã¯ = the two bytes of ï); student: SentencePiece with a byte-fallback piece
    teacher = _vocab("t", "byte-level", ["<s>", "Ġthe", "the", "Ġcat", "cats", "Ã¯", "1", "12"],
                     [True, False, False, False, False, False, False, False])
    student = _vocab("s", "sentencepiece", ["<bos>", "▁the", "▁cat", "s", "ï", "<0x31>", "1", "2", "▁ca"],
                     [True, False, False, False, False, False, False, False, False])
    return teacher, student


def test_parse_query_ids_tokens_and_markers():
    assert parse_query("#42") == 42
    assert parse_query("id:7") == 7
    assert parse_query(" 42 ") == 42
    assert parse_query('"42"') == "42"  # quotes: the digit token, not an id
    assert parse_query("'12'") == "12"
    assert parse_query("␣the") == " the"
    assert parse_query("a⏎b⇥") == "a\nb\t"
    assert parse_query("Ġthe") == "Ġthe"
    assert parse_query("#x") == "#x"
    with pytest.raises(InputError, match="empty"):
        parse_query("")


def test_normalised_distance_matches_the_definition():
    # Lev("cat", "cats") = 1 over 3 + 4 characters once spaces are removed
    assert normalised_distance(" cat", "cats") == pytest.approx(1 / 7)
    assert normalised_distance("ab", "xy") == pytest.approx(2 / 4)
    assert normalised_distance("  ", "") == 0.0
    assert normalised_distance("", "ab") == pytest.approx(1.0)


def test_exact_and_nearest_by_id(pair):
    lookup = VocabLookup(*pair)
    result = lookup.lookup("teacher", 1, k=3)  # Ġthe
    assert (result.id, result.token, result.text, result.special) == (1, "Ġthe", " the", False)
    assert (result.exact.id, result.exact.token, result.exact.distance) == (1, "▁the", 0)
    assert result.mined is None and not result.mined_available
    # probe "the": ▁the 0/6, ▁cat 3/6, ▁ca 3/5, then s, ï, <0x31>, 1, 2 all at 3/4
    assert [(n.id, round(n.distance, 4)) for n in result.nearest] == [(1, 0.0), (2, 0.5), (8, 0.6)]
    wider = lookup.lookup("teacher", 1, k=5)
    assert [n.id for n in wider.nearest] == [1, 2, 8, 3, 4]  # the ties at 0.75 go to the lowest ids


def test_strings_resolve_by_raw_spelling_then_by_the_text(pair):
    lookup = VocabLookup(*pair)
    assert lookup.resolve("teacher", "Ġthe") == 1
    assert lookup.resolve("teacher", " the") == 1  # the text it stands for
    assert lookup.resolve("teacher", "the") == 2
    assert lookup.resolve("teacher", "ï") == 5  # Ã¯ is the UTF-8 of ï
    assert lookup.resolve("student", "▁cat") == 2
    assert lookup.resolve("student", " cat") == 2
    # canonically <0x31> and 1 are the same byte: the regular piece wins, as in the exact mapping
    assert lookup.resolve("student", "1") == 6
    assert lookup.resolve("teacher", "dog") is None


def test_byte_level_to_sentencepiece_exact_and_tie_rules(pair):
    lookup = VocabLookup(*pair)
    assert lookup.lookup("teacher", "ï").exact.id == 4
    assert lookup.lookup("teacher", "1").exact.id == 6  # not the byte-fallback <0x31> (id 5)
    assert lookup.lookup("teacher", "12").exact is None
    assert lookup.lookup("student", "<0x31>").exact.id == 6  # teacher "1"


def test_a_string_that_is_no_token_still_gets_exact_and_nearest(pair):
    lookup = VocabLookup(*pair)
    result = lookup.lookup("student", "cats", k=2)
    assert result.id is None and result.exact is not None and result.exact.id == 4
    assert result.mined is None
    # the nearest: cats 0, then Ġcat (Lev 1 / 7) before the (Lev 4 / 7) and Ġthe
    assert [(n.id, round(n.distance, 4)) for n in result.nearest] == [(4, 0.0), (3, round(1 / 7, 4))]


def test_one_off_lookup_function(pair):
    result = lookup(*pair, "student", "▁cat", k=2)
    assert (result.id, result.exact.id, result.exact.token) == (2, 3, "Ġcat")
    assert [n.id for n in result.nearest] == [3, 4]  # " cat" 0, then "cats" (Lev 1 over 3 + 4)
    assert result.to_dict()["exact"] == {"id": 3, "token": "Ġcat", "text": " cat", "distance": 0}


def test_special_tokens_are_never_mapped(pair):
    lookup = VocabLookup(*pair)
    result = lookup.lookup("teacher", 0)
    assert result.special and result.exact is None
    assert all(n.id != 0 for n in result.nearest)  # nor offered as answers
    assert all(n.id != 0 for n in lookup.lookup("student", "the", k=20).nearest)


def test_mined_answers_with_their_edit_distances(pair, tmp_path):
    teacher, student = pair
    mined = mined_mapping(teacher, student, cache_dir=tmp_path, workers=1)
    lookup = VocabLookup(teacher, student, mined=mined)
    # cats -> " cat" (insert the space, drop the s: 2), closer than "s" (3) and " ca" (3)
    result = lookup.lookup("teacher", "cats")
    assert result.mined_available and (result.mined.id, result.mined.distance) == (2, 2)
    # " ca" -> " cat": one insertion
    back = lookup.lookup("student", "▁ca")
    assert (back.mined.id, back.mined.token, back.mined.distance) == (3, "Ġcat", 1)
    assert lookup.lookup("teacher", "Ġthe").mined.distance == 0


def test_bad_queries_are_refused_with_a_reason(pair):
    lookup = VocabLookup(*pair)
    with pytest.raises(InputError, match="out of range"):
        lookup.lookup("teacher", 8)
    with pytest.raises(InputError, match="side must be"):
        lookup.lookup("both", 1)
    with pytest.raises(InputError, match="k must be"):
        lookup.lookup("teacher", 1, k=0)
    with pytest.raises(InputError, match="another pair"):
        VocabLookup(pair[1], pair[0], exact=VocabLookup(*pair).exact)


def test_real_pair_llama3_gemma2(tok):
    from ctkd_inspect.vocab import vocabulary

    llama, gemma = tok("llama3"), tok("gemma2")
    lookup = VocabLookup(vocabulary(llama, "llama3"), vocabulary(gemma, "gemma2"))
    the = lookup.lookup("teacher", "Ġthe", k=5)
    assert the.id == llama.convert_tokens_to_ids("Ġthe")
    assert the.exact.id == gemma.convert_tokens_to_ids("▁the")
    assert the.nearest[0].id == the.exact.id and the.nearest[0].distance == 0.0
    assert [n.distance for n in the.nearest] == sorted(n.distance for n in the.nearest)
    # every nearest distance is the definition's, recomputed independently on the decoded strings
    for neighbour in the.nearest:
        decoded = gemma.decode([neighbour.id])
        assert neighbour.distance == pytest.approx(normalised_distance("the", decoded))
    # by id on the student side, back to the teacher
    back = lookup.lookup("student", the.exact.id)
    assert back.exact.id == the.id
    llama_emoji = lookup.lookup("teacher", " 🦙")  # no single llama3 token: still answered
    assert llama_emoji.id is None and llama_emoji.nearest
