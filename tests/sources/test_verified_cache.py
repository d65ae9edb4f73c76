"""Converted tokenizers in the cache are verified, not trusted: fault injection on real cache entries.

Every damage below (one byte flipped at the start, middle or end of each file, a file missing, truncated, replaced
by a FIFO or a link, an unlisted file, a missing, empty, malformed or empty-list manifest) must be reported by
``verify_cache`` (what ``ctkd-inspect fetch --verify`` prints) and by the next load, which must not use the entry,
rebuild it from the verified source and give the ids of a fresh conversion.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from ctkd_inspect.errors import TokenizerNotFound
from ctkd_inspect.sources import RECIPE_VERSION, RustTokenizer, resolve_tokenizer
from ctkd_inspect.sources.cache import MANIFEST, CacheWarning, entry_problem
from ctkd_inspect.sources.verify import verify_cache

ALIAS = "mistral-v1"  # a SentencePiece model converted in a fraction of a second, so every case rebuilds quickly
N_TEXTS = 40


@pytest.fixture(scope="module")
def texts(corpus):
    return [*corpus[:N_TEXTS], "Hello world", " Hello  world\n\tcafé 🦙 — 3.50€"]


@pytest.fixture(scope="module")
def reference_ids(texts):
    """A fresh conversion of the source file, straight from the builder (no cache involved)."""
    from ctkd_inspect.sources import builders
    from ctkd_inspect.sources.assets import asset_path
    from ctkd_inspect.sources.registry import ALIASES

    alias = ALIASES[ALIAS]
    backend = builders.sentencepiece_tokenizer(asset_path(alias.asset, alias.file)).backend
    return [e.ids for e in backend.encode_batch(texts)]


def ids_of(tok, texts):
    return [e.ids for e in tok.backend_tokenizer.encode_batch(texts)]


@pytest.fixture
def entry(private_cache):
    """A cache with the source asset and a freshly converted, intact entry of ALIAS; returns the entry folder."""
    root = private_cache("draive")
    _, source = resolve_tokenizer(ALIAS, cache_dir=root, backend="rust")
    path = Path(source.location)
    assert path == root / "tokenizers" / ALIAS
    assert entry_problem(path, deep=True) is None
    return path


def _flip(path: Path, where: str) -> None:
    data = bytearray(path.read_bytes())
    index = {"start": 0, "middle": len(data) // 2, "end": len(data) - 1}[where]
    data[index] ^= 0x01
    path.write_bytes(bytes(data))


def _manifest(entry: Path) -> dict:
    return json.loads((entry / MANIFEST).read_text())


def _replace_by_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _replace_by_link(path: Path) -> None:
    copy = path.with_name("elsewhere.json")
    shutil.copy(path, path.parent.parent / copy.name)
    path.unlink()
    path.symlink_to(path.parent.parent / copy.name)


DAMAGES = {
    **{f"{name} {where} byte": (lambda e, n=name, w=where: _flip(e / n, w))
       for name in ("tokenizer.json", "tokenizer_config.json") for where in ("start", "middle", "end")},
    "tokenizer.json missing": lambda e: (e / "tokenizer.json").unlink(),
    "tokenizer_config.json missing": lambda e: (e / "tokenizer_config.json").unlink(),
    "tokenizer.json truncated": lambda e: (e / "tokenizer.json").write_bytes(
        (e / "tokenizer.json").read_bytes()[:-10]),
    "tokenizer.json a FIFO": lambda e: _replace_by_fifo(e / "tokenizer.json"),
    "tokenizer.json a link": lambda e: _replace_by_link(e / "tokenizer.json"),
    "an unlisted file": lambda e: (e / "special_tokens_map.json").write_text('{"bos_token": "<unk>"}'),
    "manifest missing": lambda e: (e / MANIFEST).unlink(),
    "manifest empty": lambda e: (e / MANIFEST).write_bytes(b""),
    "manifest {}": lambda e: (e / MANIFEST).write_text("{}"),
    "manifest []": lambda e: (e / MANIFEST).write_text("[]"),
    "manifest garbage": lambda e: (e / MANIFEST).write_bytes(b"\x00\xff{not json"),
    "manifest with no files": lambda e: (e / MANIFEST).write_text(json.dumps({**_manifest(e), "files": {}})),
    "manifest path outside": lambda e: (e / MANIFEST).write_text(json.dumps(
        {**_manifest(e), "files": {"../x": {"size": 1, "sha256": "0" * 64}}})),
    "manifest record malformed": lambda e: (e / MANIFEST).write_text(json.dumps(
        {**_manifest(e), "files": {k: {"size": "big"} for k in _manifest(e)["files"]}})),
}


def _tokenizer_check(root: Path):
    (check,) = [c for c in verify_cache([ALIAS], root) if c.kind == "tokenizer"]
    return check


@pytest.mark.timeout(120)  # a FIFO opened for reading would block forever: fail instead of hanging
@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damage_is_reported_by_verify_and_rebuilt_by_the_next_load(entry, damage, texts, reference_ids):
    root = entry.parent.parent
    DAMAGES[damage](entry)

    check = _tokenizer_check(root)
    assert check.status == "damaged" and check.failed and check.problem
    assert check.line().startswith(f"tokenizer {ALIAS}: damaged (")
    assets = [c for c in verify_cache([ALIAS], root) if c.kind == "asset"]
    assert [c.status for c in assets] == ["ok"]

    with pytest.warns(CacheWarning, match=f"cached tokenizer '{ALIAS}'.*is damaged") as caught:
        tok, _ = resolve_tokenizer(ALIAS, cache_dir=root, backend="rust")
    assert len([w for w in caught if "damaged" in str(w.message)]) == 1
    assert isinstance(tok, RustTokenizer)
    assert ids_of(tok, texts) == reference_ids
    # rebuilt: the next check and the next load find an intact entry
    assert _tokenizer_check(root).status == "ok"
    assert entry_problem(entry, deep=True) is None
    assert not (entry / "special_tokens_map.json").exists()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("damage", ["tokenizer.json middle byte", "tokenizer_config.json end byte",
                                    "manifest {}", "an unlisted file", "tokenizer.json a FIFO"])
def test_the_transformers_backend_verifies_too(entry, damage, texts, reference_ids):
    root = entry.parent.parent
    DAMAGES[damage](entry)
    with pytest.warns(CacheWarning, match="is damaged"):
        tok, _ = resolve_tokenizer(ALIAS, cache_dir=root)
    assert not isinstance(tok, RustTokenizer)
    assert ids_of(tok, texts) == reference_ids
    assert _tokenizer_check(root).status == "ok"


def test_an_altered_vocabulary_entry_never_yields_a_wrong_id(entry, texts, reference_ids):
    """One digit of a vocabulary id changed: the file stays a valid tokenizer that gives another id for "Hello"."""
    from tokenizers import Tokenizer

    path = entry / "tokenizer.json"
    data = path.read_bytes()
    original = '"▁Hello":22557,'.encode()
    assert data.count(original) == 1
    altered = data.replace(original, '"▁Hello":22558,'.encode())
    assert len(altered) == len(data)
    path.write_bytes(altered)
    text = "Hello world"
    wrong = Tokenizer.from_file(str(path)).encode(text).ids
    right = reference_ids[texts.index(text)]
    assert wrong != right  # what an unverified cache would have answered
    for backend in ("rust", "transformers"):
        path.write_bytes(altered)
        with pytest.warns(CacheWarning, match="tokenizer.json differs from its manifest"):
            tok, _ = resolve_tokenizer(ALIAS, cache_dir=entry.parent.parent, backend=backend)
        assert tok.backend_tokenizer.encode(text).ids == right
        assert ids_of(tok, texts) == reference_ids


def test_an_intact_entry_is_loaded_without_a_warning_or_a_rebuild(entry, texts, reference_ids, recwarn):
    before = {p.name: p.stat().st_mtime_ns for p in entry.iterdir()}
    for backend in ("rust", "transformers"):
        tok, _source = resolve_tokenizer(ALIAS, cache_dir=entry.parent.parent, backend=backend)
        assert ids_of(tok, texts) == reference_ids
    assert not [w for w in recwarn if issubclass(w.category, CacheWarning)]
    assert {p.name: p.stat().st_mtime_ns for p in entry.iterdir()} == before


def test_an_entry_of_an_older_recipe_is_rebuilt_quietly(entry, texts, reference_ids, recwarn):
    manifest = _manifest(entry)
    (entry / MANIFEST).write_text(json.dumps({**manifest, "recipe_version": RECIPE_VERSION - 1}))
    tok, _ = resolve_tokenizer(ALIAS, cache_dir=entry.parent.parent, backend="rust")
    assert ids_of(tok, texts) == reference_ids
    assert not [w for w in recwarn if issubclass(w.category, CacheWarning)]
    assert _manifest(entry)["recipe_version"] == RECIPE_VERSION


def test_a_damaged_entry_in_a_read_only_cache_is_converted_in_memory(entry, texts, reference_ids, monkeypatch):
    import ctkd_inspect.sources as sources

    def read_only(*_args, **_kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(sources, "install_entry", read_only)
    _flip(entry / "tokenizer.json", "middle")
    with pytest.warns(CacheWarning) as caught:
        tok, _ = resolve_tokenizer(ALIAS, cache_dir=entry.parent.parent, backend="rust")
    messages = [str(w.message) for w in caught]
    assert any("is damaged" in m for m in messages) and any("could not be saved" in m for m in messages)
    assert ids_of(tok, texts) == reference_ids
    assert _tokenizer_check(entry.parent.parent).status == "damaged"  # nothing could be rewritten


@pytest.mark.parametrize("how", ["a folder in the lock file's place", "chmod"])
def test_a_damaged_entry_in_a_cache_that_cannot_be_written(entry, texts, reference_ids, how):
    """Without monkeypatching: the entry's lock file cannot be created (a folder is in its place, which stops
    root too), or the folders are read-only (only effective when not running as root)."""
    if how == "chmod" and os.geteuid() == 0:
        pytest.skip("running as root: permissions do not stop writes (the other variant covers it)")
    _flip(entry / "tokenizer.json", "middle")
    folders = [entry.parent.parent, entry.parent, entry]
    if how == "chmod":
        for folder in folders:
            folder.chmod(0o555)
    else:
        lock = entry.parent / f".lock-{ALIAS}"  # left by the first conversion; a folder cannot be opened as one
        lock.unlink()
        lock.mkdir()
    try:
        with pytest.warns(CacheWarning) as caught:
            tok, _ = resolve_tokenizer(ALIAS, cache_dir=entry.parent.parent, backend="rust")
        messages = [str(w.message) for w in caught]
        assert any("is damaged" in m for m in messages) and any("could not be saved" in m for m in messages)
        assert ids_of(tok, texts) == reference_ids
        assert _tokenizer_check(entry.parent.parent).status == "damaged"
    finally:
        if how == "chmod":
            for folder in folders:
                folder.chmod(0o755)


def test_a_damaged_source_asset_is_not_converted(private_cache, texts):
    """The rebuild starts from the source file verified against its asset's manifest; a damaged source is never
    converted (without fetching it is an error naming the fix)."""
    root = private_cache("draive", copy=True)
    from ctkd_inspect.sources.registry import ALIASES

    source = root / "assets" / "draive" / ALIASES[ALIAS].file
    _flip(source, "middle")
    with pytest.raises(TokenizerNotFound, match=r"damaged.*fetch --force"):
        resolve_tokenizer(ALIAS, cache_dir=root, fetch=False, backend="rust")
    assert not (root / "tokenizers" / ALIAS).exists()
    (asset,) = [c for c in verify_cache([ALIAS], root) if c.kind == "asset"]
    assert asset.status == "damaged" and "differs from its manifest" in asset.problem


def test_verify_cache_covers_every_converted_entry(entry, private_cache):
    root = entry.parent.parent
    resolve_tokenizer("mistral", cache_dir=root, backend="rust")
    _flip(root / "tokenizers" / "mistral" / "tokenizer.json", "end")
    checks = {(c.kind, c.name): c for c in verify_cache(None, root)}
    assert checks[("tokenizer", ALIAS)].status == "ok"
    assert checks[("tokenizer", "mistral")].status == "damaged"
    assert checks[("asset", "draive")].status == "ok"
    assert checks[("asset", "llama-cpp")].status == "missing" and checks[("asset", "llama-cpp")].failed
    named = verify_cache(["gemma2"], root)  # an alias whose entry was never converted here
    assert [(c.kind, c.status, c.failed) for c in named] == [("asset", "ok", False), ("tokenizer", "absent", False)]
    with pytest.raises(KeyError):
        verify_cache(["no-such-alias"], root)


def test_fetch_verify_on_the_command_line(entry):
    import subprocess
    import sys

    root = entry.parent.parent

    def verify():
        return subprocess.run([sys.executable, "-m", "ctkd_inspect", "fetch", "--verify", ALIAS, "--cache-dir",
                               str(root)], capture_output=True, text=True, timeout=300)

    intact = verify()
    assert intact.returncode == 0, intact.stderr
    assert f"tokenizer {ALIAS}: ok" in intact.stderr and "asset draive: ok" in intact.stderr
    _flip(entry / "tokenizer.json", "middle")
    damaged = verify()
    assert damaged.returncode == 1
    assert f"tokenizer {ALIAS}: damaged (tokenizer.json differs from its manifest" in damaged.stderr
    assert "asset draive: ok" in damaged.stderr and "Traceback" not in damaged.stderr


def test_a_damaged_model_file_is_not_loaded(private_cache):
    """A model alias's GGUF is checked against its asset's SHA-256 before any of it is read."""
    from ctkd_inspect.errors import ModelError
    from ctkd_inspect.signals import resolve_model
    from ctkd_inspect.sources.registry import ALIASES

    root = private_cache("smollm2", copy=True)
    source = resolve_model("smollm2", cache_dir=root, fetch=False)
    assert Path(source.location) == root / "assets" / "smollm2" / ALIASES["smollm2"].model_file
    _flip(Path(source.location), "end")
    with pytest.raises(ModelError, match=r"damaged.*fetch --force smollm2"):
        resolve_model("smollm2", cache_dir=root, fetch=False)


def test_a_hub_copy_in_the_cache_is_verified_too(tmp_path, monkeypatch):
    """A hub id converted while the hub was reachable is kept in the cache; offline it loads from there, and a
    damaged copy is reported and not used (offline there is then nothing to load)."""
    import ctkd_inspect.sources as sources

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root = tmp_path / "cache"
    entry = sources._cache_entry("hub/some-org/some-model", root)
    heavy = resolve_tokenizer("gpt2")[0]
    assert sources._save_to_cache(heavy, entry, {"hub_id": "some-org/some-model"})
    text = "Hello  wörld 🦙"
    for backend in ("rust", "transformers"):
        tok, source = resolve_tokenizer("some-org/some-model", cache_dir=root, backend=backend)
        assert source.kind == "cache" and tok.backend_tokenizer.encode(text).ids == heavy.encode(text)
    _flip(entry / "tokenizer.json", "middle")
    assert [c.status for c in verify_cache(None, root) if c.kind == "tokenizer"] == ["damaged"]
    with pytest.warns(CacheWarning, match="cached copy of 'some-org/some-model'.*is damaged"), \
            pytest.raises(TokenizerNotFound, match="hub id"):
        resolve_tokenizer("some-org/some-model", cache_dir=root, backend="rust")
