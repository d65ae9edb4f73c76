"""Every cache works read-only: the vocabulary-mapping cache and the model-signals cache compute in memory and
say so once (a CacheWarning), as converted tokenizers do; a damaged cache file is recomputed, never used.

A cache folder that cannot be written is made three ways: a regular file where the folder should be (stops root
too), a path under /proc (stops root too), and chmod (only when not running as root, which ignores permissions).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from ctkd_inspect.sources.cache import CacheWarning
from ctkd_inspect.vocab import Vocabulary, canonical_bytes, mined_mapping


def _vocabulary(name: str, tokens: list[str]) -> Vocabulary:
    canonical = [canonical_bytes(t, "plain").decode("latin-1") for t in tokens]
    return Vocabulary(name, "plain", list(tokens), canonical, np.zeros(len(tokens), dtype=bool))


TEACHER = _vocabulary("teacher", ["a", "ab", "abc", "xyz"])
STUDENT = _vocabulary("student", ["ab", "abd", "x"])
# Hand-computed nearest neighbours by Levenshtein distance, ties to the lowest id:
#   a→ab (1; x also 1), ab→ab (0), abc→ab (1; abd also 1), xyz→x (2)
#   ab→ab (0), abd→ab (1; abc also 1), x→a (1; xyz is 2)
EXPECTED_T2S, EXPECTED_T_DIST = [0, 0, 0, 2], [1, 0, 1, 2]
EXPECTED_S2T, EXPECTED_S_DIST = [1, 1, 0], [0, 1, 1]


@pytest.fixture(params=["a file in the folder's place", "a path under /proc", "chmod"])
def unwritable_cache(request, tmp_path):
    """A cache root that cannot be written (see the module docstring); yields the path."""
    if request.param == "a file in the folder's place":
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("")
        yield blocker / "cache"
    elif request.param == "a path under /proc":
        if not Path("/proc/self").is_dir():
            pytest.skip("no /proc on this system (the other variants cover it)")
        yield Path("/proc/self/ctkd-inspect-cache")
    else:
        if os.geteuid() == 0:
            pytest.skip("running as root: permissions do not stop writes (the other variants cover it)")
        root = tmp_path / "read-only"
        root.mkdir()
        root.chmod(0o555)
        yield root
        root.chmod(0o755)


def _check_mapping(mapping) -> None:
    assert mapping.teacher_to_student.tolist() == EXPECTED_T2S
    assert mapping.teacher_distance.tolist() == EXPECTED_T_DIST
    assert mapping.student_to_teacher.tolist() == EXPECTED_S2T
    assert mapping.student_distance.tolist() == EXPECTED_S_DIST


def test_the_vocabulary_mapping_is_computed_in_memory_on_a_read_only_cache(unwritable_cache):
    with pytest.warns(CacheWarning, match="vocabulary mapping could not be saved in the cache") as caught:
        mapping = mined_mapping(TEACHER, STUDENT, cache_dir=unwritable_cache, workers=1)
    assert len([w for w in caught if issubclass(w.category, CacheWarning)]) == 1
    assert "\n" not in str(caught[0].message)
    _check_mapping(mapping)
    assert not unwritable_cache.is_dir() or not list(unwritable_cache.rglob("*.npz"))


def test_a_filled_read_only_vocabulary_cache_is_read_without_a_warning(tmp_path):
    root = tmp_path / "cache"
    _check_mapping(mined_mapping(TEACHER, STUDENT, cache_dir=root, workers=1))
    (cached,) = (root / "vocab").glob("*.npz")
    if os.geteuid() != 0:
        for folder in (root, root / "vocab"):
            folder.chmod(0o555)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", CacheWarning)
            _check_mapping(mined_mapping(TEACHER, STUDENT, cache_dir=root, workers=1))
    finally:
        for folder in (root, root / "vocab"):
            folder.chmod(0o755)
    assert cached.exists()


def _signals():
    """Signals with every array a forward pass fills (whatever fields the class has beyond the first seven)."""
    import dataclasses

    from ctkd_inspect.signals import Signals

    rng = np.random.default_rng(0)
    extra = {f.name: rng.random(5) for f in dataclasses.fields(Signals)[8:]}  # e.g. further per-token arrays
    return Signals("test-model", np.arange(5, dtype=np.int64), rng.random(5), rng.integers(0, 50, (5, 3)),
                   rng.random((5, 3)).astype(np.float32), rng.random((5, 4)).astype(np.float32),
                   rng.random((5, 4)).astype(np.float32), **extra)


def test_signals_are_kept_in_memory_when_the_cache_cannot_be_written(unwritable_cache):
    from ctkd_inspect.signals import _write_cached_signals

    path = unwritable_cache / "signals" / "abc.npz"
    with pytest.warns(CacheWarning, match="model signals could not be saved in the cache"):
        _write_cached_signals(path, _signals())
    assert not path.exists()


def _same_signals(a, b) -> bool:
    import dataclasses

    return all(np.array_equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
               if f.name != "vocab_tokens")


def test_a_changed_byte_in_the_signals_data_is_caught(tmp_path):
    from ctkd_inspect.signals import _read_cached_signals, _write_cached_signals

    signals, path = _signals(), tmp_path / "signals" / "abc.npz"
    _write_cached_signals(path, signals)
    back = _read_cached_signals(path, signals.ids, None)
    assert back is not None and _same_signals(back, signals)
    original = path.read_bytes()
    for array in (signals.entropy, signals.hidden_states, signals.topk_ids):
        start = original.index(array.tobytes())  # the array's bytes inside the (uncompressed) archive
        for offset in (0, len(array.tobytes()) // 2, len(array.tobytes()) - 1):
            data = bytearray(original)
            data[start + offset] ^= 0x01  # the smallest change: one bit of one number
            path.write_bytes(bytes(data))
            assert _read_cached_signals(path, signals.ids, None) is None
    assert _read_cached_signals(tmp_path / "missing.npz", signals.ids, None) is None


def test_no_changed_byte_anywhere_in_a_signals_file_gives_other_signals(tmp_path):
    """Every byte of the file flipped in turn: each read gives the original signals or nothing, never others."""
    from ctkd_inspect.signals import _read_cached_signals, _write_cached_signals

    signals, path = _signals(), tmp_path / "signals" / "abc.npz"
    _write_cached_signals(path, signals)
    original = path.read_bytes()
    caught = 0
    for position in range(len(original)):
        data = bytearray(original)
        data[position] ^= 0xFF
        path.write_bytes(bytes(data))
        back = _read_cached_signals(path, signals.ids, None)
        assert back is None or _same_signals(back, signals), position
        caught += back is None
    assert caught > len(original) // 2  # most bytes are data or structure; the rest are zip bookkeeping


def test_no_changed_byte_anywhere_in_a_vocabulary_cache_file_gives_another_mapping(tmp_path):
    root = tmp_path / "cache"
    mined_mapping(TEACHER, STUDENT, cache_dir=root, workers=1)
    (cached,) = (root / "vocab").glob("*.npz")
    original = cached.read_bytes()
    for position in range(0, len(original), 3):
        data = bytearray(original)
        data[position] ^= 0xFF
        cached.write_bytes(bytes(data))
        _check_mapping(mined_mapping(TEACHER, STUDENT, cache_dir=root, workers=1))


@pytest.mark.slow
@pytest.mark.models
def test_compute_signals_on_a_read_only_cache(tmp_path, private_cache):
    """End to end: a real model's signals computed with a cache folder that cannot be written."""
    pytest.importorskip("torch")
    from ctkd_inspect import load_tokenizer
    from ctkd_inspect.signals import compute_signals

    root = private_cache("smollm2")
    tok = load_tokenizer("smollm2", backend="rust")
    ids = tok.encode("The capital of France is Paris.")
    blocked = tmp_path / "blocker"
    blocked.write_text("")
    # the model comes from the filled cache; the signals cannot be written to the blocked one
    from ctkd_inspect.sources.assets import asset_path

    gguf = str(asset_path("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", root))
    with pytest.warns(CacheWarning, match="model signals could not be saved"):
        signals = compute_signals(gguf, ids, tokenizer=tok, cache_dir=blocked / "cache", top_k=5)
    assert signals.entropy.shape == (len(ids),) and np.all(np.isfinite(signals.entropy))
    assert blocked.is_file() and blocked.read_text() == ""  # nothing was written in its place
