"""Vocabulary mappings: canonical exact overlap, MinED nearest neighbours, CDM's dynamic top-K mapping."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctkd_inspect.errors import InputError
from ctkd_inspect.vocab import (
    VocabMapping,
    Vocabulary,
    canonical_bytes,
    cdm_dynamic_mapping,
    closest_non_exact,
    exact_mapping,
    mined_mapping,
    nearest_by_edit_distance,
    unmapped_sample,
    vocabulary,
)


def toy(name, tokens, scheme):
    canonical = [canonical_bytes(t, scheme).decode("latin-1") for t in tokens]
    return Vocabulary(name, scheme, list(tokens), canonical, np.zeros(len(tokens), bool))


def test_vector13_fusellm_nearest_mapping():
    student = toy("s", ["Ġcat", "Ġcar", "Ġca"], "byte-level")
    index, distance = nearest_by_edit_distance(["Ġcats"], student.raw)  # "▁" replaced by "Ġ", as FuseLLM does
    assert index.tolist() == [0] and distance.tolist() == [1]
    # ties resolve to the first token in vocabulary (id) order
    index, distance = nearest_by_edit_distance(["Ġcab"], ["Ġcar", "Ġcat", "Ġcab!"])
    assert index.tolist() == [0] and distance.tolist() == [1]


def test_vector13_through_mined_mapping(tmp_path):
    teacher = toy("t", ["▁cats", "▁car"], "sentencepiece")
    student = toy("s", ["Ġcat", "Ġcar", "Ġca"], "byte-level")
    mapping = mined_mapping(teacher, student, "reference", cache_dir=tmp_path)
    assert mapping.teacher_to_student.tolist() == [0, 1] and mapping.teacher_distance.tolist() == [1, 0]
    # canonical mode compares bytes: "▁cats" and "Ġcat" are b" cats" and b" cat"
    canonical = mined_mapping(teacher, student, "canonical", cache_dir=tmp_path)
    assert canonical.teacher_to_student.tolist() == [0, 1]


def brute_nearest(source, target):
    from rapidfuzz.distance import Levenshtein

    out = []
    for s in source:
        distances = [Levenshtein.distance(s, t) for t in target]
        best = min(distances)
        out.append((distances.index(best), best))
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(alphabet="abcd ", max_size=6), min_size=1, max_size=25),
       st.lists(st.text(alphabet="abcd ", max_size=6), min_size=1, max_size=40))
def test_nearest_equals_brute_force_with_ties_and_empty_strings(source, target):
    index, distance = nearest_by_edit_distance(source, target, workers=1, chunk=7)
    assert list(zip(index.tolist(), distance.tolist())) == brute_nearest(source, target)


def test_nearest_skips(tmp_path):
    index, distance = nearest_by_edit_distance(["ab", "cd"], ["ab", "cd"], skip_source=np.array([False, True]),
                                               skip_target=np.array([True, False]))
    assert index.tolist() == [1, -1] and distance.tolist() == [2, -1]


def test_nearest_on_real_vocabularies_equals_brute_force(tok):
    teacher = vocabulary(tok("llama3"))
    student = vocabulary(tok("bert"))
    rng = np.random.default_rng(0)
    source = [teacher.canonical[i] for i in rng.choice(len(teacher), 200, replace=False)]
    target = student.canonical[:4000]
    index, distance = nearest_by_edit_distance(source, target)
    assert list(zip(index.tolist(), distance.tolist())) == brute_nearest(source, target)


def test_canonical_exact_overlap_llama3_gemma2_is_tokenkits_figure(tok):
    """tokenkit reports that Gemma 2 and Llama 3 share 85,699 tokens after byteification (25,632 by naive string
    match); our canonical byte form gives exactly that number."""
    mapping = exact_mapping(vocabulary(tok("llama3")), vocabulary(tok("gemma2")))
    assert mapping.coverage()["teacher"]["exact"] == 85_699
    reference = exact_mapping(vocabulary(tok("llama3")), vocabulary(tok("gemma2")), "reference")
    assert reference.coverage()["teacher"]["exact"] < 85_699  # marker replacement misses byte-level spellings


def test_fusellm_marker_replacement_finds_the_readmes_65728(tok):
    """The README's figure for FuseLLM's rule (reference mode): a Llama 3 token counts when its raw string with
    "Ġ" replaced by "▁" is a Gemma 2 vocabulary string. Counted here with plain Python over the two vocabularies
    (the 128,000 regular Llama 3 ids; the reserved special tokens above them never match) and pinned to 65,728."""
    gemma = set(tok("gemma2").get_vocab())
    by_hand = sum(1 for token, i in tok("llama3").get_vocab().items() if i < 128_000
                  and token.replace("Ġ", "▁") in gemma)
    assert by_hand == 65_728
    reference = exact_mapping(vocabulary(tok("llama3")), vocabulary(tok("gemma2")), "reference")
    assert reference.coverage()["teacher"]["exact"] == by_hand


def test_canonical_bytes_across_schemes():
    assert canonical_bytes("Ġthe", "byte-level") == canonical_bytes("▁the", "sentencepiece") == b" the"
    assert canonical_bytes("the", "wordpiece") == b" the" and canonical_bytes("##ing", "wordpiece") == b"ing"
    assert canonical_bytes("<0x0A>", "sentencepiece") == canonical_bytes("Ċ", "byte-level") == b"\n"


def test_special_tokens_are_never_mapped(tok):
    teacher, student = vocabulary(tok("llama3")), vocabulary(tok("gemma3"))
    mapping = exact_mapping(teacher, student)
    bos = tok("llama3").convert_tokens_to_ids("<|begin_of_text|>")
    assert teacher.special[bos] and mapping.teacher_to_student[bos] == -1


def test_mined_is_cached_on_disk(tmp_path):
    teacher = toy("t", ["Ġhello", "Ġworld", "Ġfoo"], "byte-level")
    student = toy("s", ["▁hello", "▁word", "▁bar"], "sentencepiece")
    first = mined_mapping(teacher, student, cache_dir=tmp_path)
    files = list((tmp_path / "vocab").glob("*.npz"))
    assert len(files) == 1
    again = mined_mapping(teacher, student, cache_dir=tmp_path)
    assert np.array_equal(first.teacher_to_student, again.teacher_to_student)
    assert first.teacher_to_student.tolist() == [0, 1, 1] and first.teacher_distance.tolist() == [0, 1, 3]
    assert first.student_to_teacher.tolist() == [0, 1, 2]


def test_reports_and_files(tmp_path):
    import pyarrow.parquet as pq

    teacher = toy("t", ["Ġhello", "Ġworld", "Ġzzzzzz"], "byte-level")
    student = toy("s", ["▁hello", "▁word"], "sentencepiece")
    mapping = mined_mapping(teacher, student, cache_dir=tmp_path)
    assert closest_non_exact(mapping, teacher, student)[0] == {
        "teacher_id": 1, "teacher": "Ġworld", "student_id": 1, "student": "▁word", "distance": 1}
    assert [r["teacher"] for r in unmapped_sample(exact_mapping(teacher, student), teacher)] == ["Ġworld", "Ġzzzzzz"]
    for suffix in (".json", ".npz", ".parquet"):
        path = mapping.save(tmp_path / f"m{suffix}", teacher, student)
        assert path.stat().st_size > 0
    # " zzzzzz" is 6 edits from both " hello" and " word": the tie goes to the lower id
    assert json.loads((tmp_path / "m.json").read_text())["teacher_to_student"] == [0, 1, 0]
    assert VocabMapping.load_npz(tmp_path / "m.npz").teacher_to_student.tolist() == [0, 1, 0]
    table = pq.read_table(tmp_path / "m.parquet")
    assert table.column("direction").to_pylist() == ["teacher_to_student"] * 3 + ["student_to_teacher"] * 2
    assert table.column("target_token").to_pylist() == ["▁hello", "▁word", "▁hello", "Ġhello", "Ġworld"]
    # every format reads back whole, both directions
    for suffix in (".json", ".npz", ".parquet"):
        loaded = VocabMapping.load(tmp_path / f"m{suffix}")
        assert loaded.teacher_to_student.tolist() == [0, 1, 0] and loaded.student_to_teacher.tolist() == [0, 1]
        assert loaded.teacher_distance.tolist() == mapping.teacher_distance.tolist()
        assert (loaded.kind, loaded.teacher, loaded.student) == ("mined", "t", "s")
    with pytest.raises(InputError, match="not a vocabulary mapping"):
        (tmp_path / "bad.json").write_text("{}")
        VocabMapping.load(tmp_path / "bad.json")
    with pytest.raises(InputError, match="no such mapping file"):
        VocabMapping.load(tmp_path / "missing.npz")


def test_cdm_dynamic_mapping_by_hand():
    teacher_strings = {10: " cats", 11: " dog", 12: " the"}
    student_strings = {20: " cat", 21: " dogs", 22: " a"}
    static_t2s = np.full(13, -1)
    static_t2s[12] = 22  # pretend " the" is statically mapped
    out = cdm_dynamic_mapping(np.array([[10, 11, 12]]), np.array([[20, 21, 22]]), teacher_strings.__getitem__,
                              student_strings.__getitem__, static_t2s=static_t2s)
    assert out["teacher_to_student"] == {10: 20, 11: 21}  # d = 1/7 each, below 0.3
    assert out["teacher_slots_mapped"] == 3
    # student direction: " cat"→" cats", " dogs"→" dog"; " a" finds nothing (d(" a", " the") = 0.5)
    assert out["student_to_teacher"] == {20: 10, 21: 11}
    assert out["topk_coverage"] == pytest.approx(1 - 0.5 * (0 / 3 + 1 / 3))


def test_vocab_cli(tmp_path):
    from click.testing import CliRunner

    from ctkd_inspect.cli import main

    out = CliRunner().invoke(main, ["vocab", "llama3", "gemma2", "--exact-only", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert report["exact"]["teacher"]["exact"] == 85_699 and report["unmapped_exactly"]
    out = CliRunner().invoke(main, ["vocab", "llama3", "gemma2", "--exact-only", "--out", str(tmp_path / "m.npz")])
    assert out.exit_code == 0 and "85,699" in out.output and (tmp_path / "m.npz").exists()
    out = CliRunner().invoke(main, ["vocab", "llama3", "gemma2", "--exact-only", "--out", str(tmp_path / "m.txt")])
    assert out.exit_code == 2 and "unknown extension" in out.output


def test_cdm_dynamic_mapping_skips_predictions_without_a_string():
    """-1 marks a predicted id beyond the tokenizer's vocabulary (a padded embedding row): never mapped, never a
    candidate, and not an IndexError."""
    teacher_strings = [" cats", " dog"]
    student_strings = [" dog", " cat"]
    out = cdm_dynamic_mapping(np.array([[0, -1]]), np.array([[-1, 1]]), teacher_strings, student_strings)
    assert out["teacher_to_student"] == {0: 1} and out["student_to_teacher"] == {1: 0}  # d = 1/7
    assert out["teacher_slots_mapped"] == 1 and out["student_slots_mapped"] == 1  # the -1 slots stay unmapped


def test_cdm_reference_exact_mapping_as_the_author_script():
    from ctkd_inspect.vocab import cdm_reference_exact_mapping

    teacher = ["▁the", "Ġthe", "▁", "x"]
    student = ["the", "", "▁x", "x", "▁the"]
    t2s, s2t = cdm_reference_exact_mapping(teacher, student)
    # "▁" is stripped whatever the scheme (so "Ġthe" keeps its marker); the first student id with the string wins;
    # "▁" becomes "" and maps to the empty student string
    assert t2s.tolist() == [0, -1, 1, 2]
    # the inverse keeps the last teacher id per student id
    assert s2t.tolist() == [0, 2, 3, -1, -1]


def test_contextual_mapping_modes_on_byte_fragments():
    """Gemma 3's <0xF0> and SmolLM2's byte 0x99 are different bytes: CDM's decoding makes both "�" and pairs them
    (reference); the canonical mode does not. A predicted id beyond the tokenizer is ignored in both."""
    from ctkd_inspect.engines.dtw import contextual_mapping
    from ctkd_inspect.signals import Signals
    from ctkd_inspect.sources import load_tokenizer

    gemma3, smollm2 = load_tokenizer("gemma3"), load_tokenizer("smollm2")
    t_frag = gemma3.convert_tokens_to_ids("<0xF0>")
    s_frag = smollm2.convert_tokens_to_ids("Ļ")  # byte-level: the byte 0x99
    beyond = len(gemma3.get_vocab()) + 5

    def signals(ids):
        ids = np.array([ids])
        return Signals("x", np.zeros(1, np.int64), np.zeros(1), ids, np.ones(ids.shape))

    groups = [{"teacher": [0], "student": [0]}]
    t_sig, s_sig = signals([t_frag, beyond]), signals([s_frag, s_frag])
    reference = contextual_mapping(groups, t_sig, s_sig, gemma3, smollm2, "gemma3", "smollm2", mode="reference")
    canonical = contextual_mapping(groups, t_sig, s_sig, gemma3, smollm2, "gemma3", "smollm2", mode="canonical")
    # CDM's published mapper subtracts its "matched" set (the teacher ids without a static mapping) from the
    # student's candidate ids: every SmolLM2 byte id (< 256) is such a Gemma 3 id, so it pairs nothing here
    assert reference["pairs"] == {}
    assert canonical["pairs"] == {}
    # without that subtraction, CDM's decoding makes both fragments "�" and pairs them
    from ctkd_inspect.engines.dtw import _vocab_tables
    from ctkd_inspect.vocab import cdm_dynamic_mapping

    t_decoded = _vocab_tables(gemma3, "gemma3", "reference")[1]
    s_decoded = _vocab_tables(smollm2, "smollm2", "reference")[1]
    decoded_only = cdm_dynamic_mapping(np.array([[t_frag]]), np.array([[s_frag]]), t_decoded, s_decoded,
                                       spaces_removed=True)
    assert decoded_only["teacher_to_student"] == {t_frag: s_frag}
    assert 0 < canonical["metrics"]["static_teacher_coverage"] < 1


def test_byte_fallback_pieces_lose_ties_to_regular_pieces(tmp_path):
    """Canonically SentencePiece's <0x33> and "3" are the same byte, and the byte piece has the lower id; the
    tokenizer emits "3", so both mappings must pick it (reference mode keeps raw strings and lowest ids)."""
    teacher = toy("t", ["3", "Ġ", "x"], "byte-level")
    student = toy("s", ["<0x33>", "<0x20>", "3", "▁", "<0x78>"], "sentencepiece")
    exact = exact_mapping(teacher, student)
    assert exact.teacher_to_student.tolist() == [2, 3, 4]  # "x" has only its byte piece: that one is used
    assert exact.student_to_teacher.tolist() == [0, 1, 0, 1, 2]
    mined = mined_mapping(teacher, student, cache_dir=tmp_path)
    assert mined.teacher_to_student.tolist() == [2, 3, 4] and mined.teacher_distance.tolist() == [0, 0, 0]


def test_compiled_dynamic_mapping_equals_the_python_path():
    """The one-pass compiled mapping (CodedStrings) gives exactly the Python path's pairs, order and counts: random
    vocabularies with empty strings, lone surrogates (distinct byte fragments) and repeated strings, random
    top-K rows with -1 slots and ids beyond the vocabulary, random static mappings."""
    from ctkd_inspect.vocab import CodedStrings

    rng = np.random.default_rng(5)
    alphabet = ["a", "b", "c", "é", "\udcf0", "\udc99", "🦙", ""]
    for trial in range(40):
        def vocab(size):
            return ["".join(rng.choice(alphabet, size=int(rng.integers(0, 5)))) for _ in range(size)]

        teacher, student = vocab(int(rng.integers(5, 40))), vocab(int(rng.integers(5, 40)))
        rows, k = int(rng.integers(0, 12)), int(rng.integers(1, 8))
        t_topk = rng.integers(-1, len(teacher) + 3, size=(rows, k))
        s_topk = rng.integers(-1, len(student) + 3, size=(rows, k))
        static_t2s = np.where(rng.random(len(teacher)) < 0.3, rng.integers(0, len(student), len(teacher)), -1)
        static_s2t = np.where(rng.random(len(student)) < 0.3, rng.integers(0, len(teacher), len(student)), -1)
        threshold = float(rng.choice([0.3, 0.5, 0.0, 1.0]))
        # the Python path needs -1 for ids without a string, as contextual_mapping gives it
        t_py = np.where(t_topk < len(teacher), t_topk, -1)
        s_py = np.where(s_topk < len(student), s_topk, -1)
        expected = cdm_dynamic_mapping(t_py, s_py, teacher, student, static_t2s, static_s2t, threshold,
                                       spaces_removed=True)
        compiled = cdm_dynamic_mapping(t_topk, s_topk, teacher, student, static_t2s, static_s2t, threshold,
                                       spaces_removed=True, teacher_coded=CodedStrings.from_strings(teacher),
                                       student_coded=CodedStrings.from_strings(student))
        assert compiled == expected, trial
        assert list(compiled["teacher_to_student"]) == list(expected["teacher_to_student"])  # acceptance order
