"""MinED's nearest-neighbour search (``nearest_by_edit_distance``, the compiled multiset-bound search) against
brute-force oracles: random strings against a plain Levenshtein DP, samples of real source tokens against the whole
target vocabulary of several pairs (both modes, both directions), and (slow) the full Llama 3 × Gemma 2 canonical
mapping against the figures of the previous implementation and the preference tie rule."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctkd_inspect.vocab import mined_mapping, nearest_by_edit_distance, vocabulary

MARKERS = {"byte-level": "Ġ", "sentencepiece": "▁"}  # FuseLLM's word-start markers per scheme


def levenshtein(a: str, b: str) -> int:
    """Textbook DP over code points (the oracle for random strings)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def brute_nearest(sources, targets, skip_target=None):
    """``(index, distance)`` per source: the minimum over every target not skipped, ties to the lowest index."""
    out = []
    for s in sources:
        best = None
        for j, t in enumerate(targets):
            if skip_target is not None and skip_target[j]:
                continue
            d = levenshtein(s, t)
            if best is None or d < best[1]:
                best = (j, d)
        out.append(best)
    return out


# strings over small alphabets make ties and shared characters common; one alphabet has characters outside the BMP
# and combining marks, one has many characters (the bitset and rank-by-rank paths of the count both get used)
ALPHABETS = ["ab", "abcd ", "abcdefghijklmnopqrstuvwxyz", "aé漢\U0001F600\u0301", "".join(map(chr, range(33, 200)))]


@st.composite
def vocabularies(draw):
    alphabet = draw(st.sampled_from(ALPHABETS))
    text = st.text(alphabet=alphabet, max_size=draw(st.sampled_from([3, 8, 14])))
    sources = draw(st.lists(text, min_size=1, max_size=20))
    targets = draw(st.lists(text, min_size=1, max_size=120))
    skip = draw(st.lists(st.booleans(), min_size=len(targets), max_size=len(targets)))
    return sources, targets, np.array(skip) & draw(st.booleans())


@settings(max_examples=300, deadline=None)
@given(vocabularies(), st.sampled_from([1, 2]), st.integers(1, 9))
def test_random_vocabularies_equal_brute_force(vocab, workers, chunk):
    sources, targets, skip = vocab
    index, distance = nearest_by_edit_distance(sources, targets, skip_target=skip, workers=workers, chunk=chunk)
    expected = brute_nearest(sources, targets, skip)
    assert list(zip(index.tolist(), distance.tolist())) == [e if e else (-1, -1) for e in expected]


def test_long_strings_use_the_dp_and_equal_brute_force():
    """Sources over 64 characters are beyond the bit-vector kernel; targets of any length; a long source can be far
    from every target (its bound starts at its own length)."""
    rng = np.random.default_rng(3)
    letters = list("ab-_ ")
    sources = ["".join(rng.choice(letters, n)) for n in (65, 70, 90, 130, 64, 63)] + ["-" * 77, "x" * 100]
    targets = ["".join(rng.choice(letters, n)) for n in rng.integers(0, 140, 300)] + ["-" * 16, "y"]
    index, distance = nearest_by_edit_distance(sources, targets, chunk=3)
    expected_index, expected_distance = oracle(sources, targets, np.ones(len(targets), bool))
    assert (index.tolist(), distance.tolist()) == (expected_index, expected_distance)


def test_no_target_shares_a_character():
    """Every target sharing nothing is at exactly max(|s|, |t|): the lowest index at the smallest such value."""
    index, distance = nearest_by_edit_distance(["xyz", "", "x"], ["abcd", "ab", "bc", "abc", "d"])
    assert index.tolist() == [1, 4, 4] and distance.tolist() == [3, 1, 1]


# ---------------------------------------------------------------------------------------------------------------
# real vocabularies: samples of sources against the whole target vocabulary


@functools.cache
def real_vocabulary(name):
    from ctkd_inspect import load_tokenizer

    return vocabulary(load_tokenizer(name), name)


def direction_strings(source_vocab, target_vocab, mode):
    """The strings MinED compares, from the documented rules: canonical bytes, or (reference, FuseLLM) the raw
    source string with its marker replaced by the target's, against the raw target strings."""
    if mode == "canonical":
        return source_vocab.canonical, target_vocab.canonical
    s_marker, t_marker = MARKERS.get(source_vocab.scheme, ""), MARKERS.get(target_vocab.scheme, "")
    sources = [s.replace(s_marker, t_marker) if s_marker else s for s in source_vocab.raw]
    return sources, list(target_vocab.raw)


def mappable(vocab):
    return ~vocab.special & np.array([bool(t) for t in vocab.raw])


def sample_sources(sources, targets, source_ok, target_ok, size, seed):
    """Random mappable sources without an exact match, and some with a character no target has (the far ones)."""
    rng = np.random.default_rng(seed)
    present = {targets[j] for j in np.flatnonzero(target_ok)}
    alphabet = set("".join(targets[j] for j in np.flatnonzero(target_ok)))
    open_ids = [i for i in np.flatnonzero(source_ok) if sources[i] not in present]
    far = [i for i in open_ids if not set(sources[i]) <= alphabet]
    chosen = set(rng.choice(open_ids, min(size, len(open_ids)), replace=False).tolist())
    if far:
        chosen |= set(rng.choice(far, min(size // 4, len(far)), replace=False).tolist())
    return sorted(chosen)


def oracle(sources, targets, target_ok, rank=None):
    """Brute force over the whole target vocabulary (rapidfuzz, an independent Levenshtein): the minimum, ties to
    the lowest ``rank`` (default: the lowest index)."""
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cdist

    distances = cdist(sources, targets, scorer=Levenshtein.distance, dtype=np.int32, workers=-1)
    distances[:, ~target_ok] = np.iinfo(np.int32).max
    best = distances.min(axis=1)
    rank = np.arange(len(targets)) if rank is None else rank
    index = [int(np.flatnonzero(row == b)[np.argmin(rank[row == b])]) for row, b in zip(distances, best)]
    return index, best.tolist()


PAIRS = [("llama3", "gemma2", "canonical"), ("llama3", "gemma2", "reference"), ("gemma2", "llama3", "canonical"),
         ("gemma2", "llama3", "reference"), ("llama2", "gpt2", "canonical"), ("llama2", "gpt2", "reference"),
         ("gpt2", "llama2", "reference"), ("bert", "llama3", "canonical"), ("bert", "llama3", "reference")]


@pytest.mark.parametrize(("source_name", "target_name", "mode"), PAIRS)
def test_real_sources_equal_brute_force_over_the_whole_target_vocabulary(source_name, target_name, mode):
    source_vocab, target_vocab = real_vocabulary(source_name), real_vocabulary(target_name)
    sources, targets = direction_strings(source_vocab, target_vocab, mode)
    target_ok = mappable(target_vocab)
    ids = sample_sources(sources, targets, mappable(source_vocab), target_ok, size=48,
                         seed=len(source_name) * 7 + len(mode))
    picked = [sources[i] for i in ids]
    index, distance = nearest_by_edit_distance(picked, targets, skip_target=~target_ok, chunk=16)
    expected_index, expected_distance = oracle(picked, targets, target_ok)
    assert distance.tolist() == expected_distance
    assert index.tolist() == expected_index
    assert max(expected_distance) >= 3  # the sample reaches past the first rounds


# ---------------------------------------------------------------------------------------------------------------
# the full canonical mapping of Llama 3 × Gemma 2

# distance histograms (9 = 9 or more) of the previous implementation (length-window rounds over rapidfuzz cdist),
# from its benchmark run: benchmarks/results/vocab_mined.json before the compiled search
PREVIOUS_HISTOGRAMS = {
    "teacher": {"0": 85699, "1": 33284, "2": 5635, "3": 1623, "4": 639, "5": 300, "6": 201, "7": 134, "8": 106,
                "9": 379},
    "student": {"0": 85824, "1": 103666, "2": 37508, "3": 18377, "4": 6075, "5": 2401, "6": 1162, "7": 448, "8": 244,
                "9": 291},
}


@pytest.mark.slow
def test_full_llama3_gemma2_canonical_mapping(tmp_path):
    """The whole canonical mapping: the previous implementation's distance histograms, and for a sample of each
    direction's sources the brute-force nearest with canonical mode's tie rule (regular pieces before SentencePiece
    byte-fallback pieces, then the lowest id)."""
    import re

    teacher, student = real_vocabulary("llama3"), real_vocabulary("gemma2")
    mapping = mined_mapping(teacher, student, "canonical", cache_dir=tmp_path, progress=lambda *_: None)
    coverage = mapping.coverage()
    assert coverage["teacher"]["distance_histogram"] == PREVIOUS_HISTOGRAMS["teacher"]
    assert coverage["student"]["distance_histogram"] == PREVIOUS_HISTOGRAMS["student"]
    byte_piece = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")
    for source_vocab, target_vocab, index, distance in (
            (teacher, student, mapping.teacher_to_student, mapping.teacher_distance),
            (student, teacher, mapping.student_to_teacher, mapping.student_distance)):
        target_ok = mappable(target_vocab)
        # tie order: regular pieces by id, then byte-fallback pieces by id (SentencePiece targets only)
        is_byte = np.array([target_vocab.scheme == "sentencepiece" and bool(byte_piece.match(t))
                            for t in target_vocab.raw])
        rank = np.arange(len(target_vocab)) + is_byte * len(target_vocab)
        ids = sample_sources(source_vocab.canonical, target_vocab.canonical, mappable(source_vocab), target_ok,
                             size=200, seed=11)
        expected_index, expected_distance = oracle([source_vocab.canonical[i] for i in ids],
                                                   target_vocab.canonical, target_ok, rank)
        assert distance[ids].tolist() == expected_distance
        assert index[ids].tolist() == expected_index
