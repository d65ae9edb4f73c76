"""The cache under adverse conditions: folders that cannot be written, several processes at once."""

import errno
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import ctkd_inspect
from ctkd_inspect.errors import FetchError, TokenizerNotFound
from ctkd_inspect.sources import resolve_tokenizer
from ctkd_inspect.sources.assets import asset_dir, fetch_asset, is_fetched
from ctkd_inspect.sources.cache import CacheNotWritable, CacheWarning, remove_stale_staging, staging_dir

# ---------------------------------------------------------------------------------------------------------------
# a cache that cannot be written


@pytest.fixture
def no_downloads(monkeypatch):
    """Fail the test if anything tries to download."""
    from ctkd_inspect.sources import assets

    def refuse(*_args, **_kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(assets, "_download", refuse)


def test_a_cache_folder_that_cannot_be_created_is_a_fetch_error_naming_it(tmp_path, no_downloads):
    # a regular file in the way makes mkdir fail even for root (chmod does not stop root)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    root = blocker / "cache"
    with pytest.raises(FetchError) as info:
        fetch_asset("draive", root)
    assert isinstance(info.value, CacheNotWritable)
    message = str(info.value)
    assert str(root / "assets") in message and "--cache-dir" in message and "CTKD_INSPECT_CACHE" in message
    assert info.value.exit_code == 3

    # through name resolution (what `ctkd-inspect llama3 gemma2 hi --cache-dir /proc/nope` runs)
    with pytest.raises(TokenizerNotFound) as info:
        resolve_tokenizer("mistral-v1", cache_dir=root)
    assert str(root / "assets") in str(info.value) and "--cache-dir" in str(info.value)
    assert info.value.exit_code == 3


def test_staging_dir_in_an_unwritable_place_raises_the_package_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(CacheNotWritable, match="cannot write to the cache folder"), staging_dir(blocker / "sub", "x"):
        pass


def _cache_with_fetched_draive(tmp_path):
    root = tmp_path / "cache"
    shutil.copytree(asset_dir("draive"), root / "assets" / "draive")
    assert is_fetched("draive", root)
    return root


@pytest.mark.parametrize("how", ["file-in-the-way", "read-only-on-write"])
def test_a_read_only_cache_with_fetched_assets_still_gives_the_tokenizer(tmp_path, monkeypatch, no_downloads, how):
    """The README's air-gapped copy of a fetched cache: assets present, tokenizers not yet converted, no writes."""
    import ctkd_inspect.sources as sources

    root = _cache_with_fetched_draive(tmp_path)
    if how == "file-in-the-way":
        (root / "tokenizers").write_text("")  # the tokenizers folder cannot be created
    else:
        def read_only(*_args, **_kwargs):
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr(sources, "install_entry", read_only)
    with pytest.warns(CacheWarning, match="could not be saved in the cache") as caught:
        tok, source = resolve_tokenizer("mistral-v1", cache_dir=root)
    assert source.kind == "alias"
    assert "cache" in str(caught[0].message)
    text = "Hello  world\n\tcafé 🦙"
    expected = resolve_tokenizer("mistral-v1")[0](text)["input_ids"]
    assert tok(text)["input_ids"] == expected
    if how == "read-only-on-write":
        entry = root / "tokenizers" / "mistral-v1"
        assert not entry.exists()
        assert not list((root / "tokenizers").glob(".staging-*"))


def test_a_truly_read_only_folder_when_not_root(tmp_path, no_downloads):
    if os.geteuid() == 0 or os.access("/", os.W_OK):
        pytest.skip("running as root: permissions do not stop writes (covered by the tests above)")
    root = _cache_with_fetched_draive(tmp_path)
    for folder in (root, root / "assets", root / "assets" / "draive"):
        folder.chmod(0o555)
    try:
        with pytest.warns(CacheWarning):
            tok, _ = resolve_tokenizer("mistral", cache_dir=root)
        assert tok("hi")["input_ids"]
        with pytest.raises(FetchError, match="cannot write to the cache folder"):
            fetch_asset("llama-models", root)
    finally:
        for folder in (root, root / "assets", root / "assets" / "draive"):
            folder.chmod(0o755)


# ---------------------------------------------------------------------------------------------------------------
# several processes sharing one cache

_FAKE_FETCH = textwrap.dedent('''
    """Fetch a fake asset whose 'pip download' waits until a gate file exists."""
    import os
    import sys
    import time
    from pathlib import Path

    from ctkd_inspect.sources import assets

    root, key, gate, log = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])


    def fake_download(package, dest, on_bytes):
        dest.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as handle:
            handle.write(f"start {key} {os.getpid()}\\n")
        deadline = time.monotonic() + 60
        while not gate.exists():
            if time.monotonic() > deadline:
                raise SystemExit("the gate never opened")
            time.sleep(0.02)
        archive = dest / f"{package.name}.bin"
        archive.write_bytes(key.encode() * 100)
        return archive


    def unpack(archives, dest):
        (archive,) = archives.values()
        (dest / "data.bin").write_bytes(archive.read_bytes())


    assets._download = fake_download
    for name in ("fake-a", "fake-b"):
        assets.ASSETS[name] = assets.Asset(name, "test asset", (assets.Package(name, "1.0", "0" * 64, 600),),
                                           unpack, ("data.bin",), "none")
    assets.fetch_asset(key, root)
    print("done", key)
''')


def _start_fetch(tmp_path, root, key, gate, log):
    script = tmp_path / "fake_fetch.py"
    if not script.exists():
        script.write_text(_FAKE_FETCH)
    # the same ctkd_inspect as this test run (a script's folder, not the cwd, starts its sys.path)
    package_root = str(Path(ctkd_inspect.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, str(script), str(root), key, str(gate), str(log)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def _started(log):
    return log.read_text().splitlines() if log.exists() else []


def _finish(proc):
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out


def test_a_second_fetch_does_not_remove_a_running_fetchs_staging_folder(tmp_path):
    """`ctkd-inspect llama2 gemma2 hi & ctkd-inspect phi3 gemma2 hi` on an empty cache: both must succeed."""
    root, log = tmp_path / "cache", tmp_path / "log"
    slow_gate, open_gate = tmp_path / "gate-a", tmp_path / "gate-b"
    open_gate.write_text("")
    first = _start_fetch(tmp_path, root, "fake-a", slow_gate, log)
    try:
        _wait_for(lambda: len(_started(log)) == 1)
        staging = list((root / "assets").glob(".staging-fake-a*"))
        assert len(staging) == 1
        second = _start_fetch(tmp_path, root, "fake-b", open_gate, log)
        assert "done fake-b" in _finish(second)
        assert staging[0].is_dir(), "the second fetch removed the first one's staging folder"
    finally:
        slow_gate.write_text("")
    assert "done fake-a" in _finish(first)
    for key in ("fake-a", "fake-b"):
        assert (root / "assets" / key / "data.bin").read_bytes() == key.encode() * 100
        assert (root / "assets" / key / ".manifest.json").exists()
    assert not list((root / "assets").glob(".staging-*"))


def test_two_fetches_of_the_same_asset_take_turns(tmp_path):
    root, log, gate = tmp_path / "cache", tmp_path / "log", tmp_path / "gate"
    first = _start_fetch(tmp_path, root, "fake-a", gate, log)
    try:
        _wait_for(lambda: len(_started(log)) == 1)
        second = _start_fetch(tmp_path, root, "fake-a", gate, log)
        time.sleep(1.5)  # time enough for the second process to start (it must wait, not download)
        assert len(_started(log)) == 1
        assert second.poll() is None
        assert len(list((root / "assets").glob(".staging-fake-a*"))) == 1
    finally:
        gate.write_text("")
    assert "done fake-a" in _finish(first)
    assert "done fake-a" in _finish(second)
    assert len(_started(log)) == 1  # the second found the first one's complete entry
    assert (root / "assets" / "fake-a" / "data.bin").read_bytes() == b"fake-a" * 100
    assert not list((root / "assets").glob(".staging-*"))


def test_only_abandoned_staging_folders_are_removed(tmp_path):
    from ctkd_inspect.sources.cache import STALE_AFTER_S, _host

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(done.stdout)
    host = _host()
    folders = {
        "dead": f".staging-x.pid{dead_pid}@{host}.abc",
        "mine": f".staging-x.pid{os.getpid()}@{host}.def",
        "other-host": f".staging-x.pid{dead_pid}@another-host-{host}.ghi",
        "legacy-fresh": ".staging-x-jkl123",
        "legacy-old": ".staging-y-mno456",
    }
    for name in folders.values():
        (tmp_path / name).mkdir()
        (tmp_path / name / "file").write_text("x")
    old = time.time() - STALE_AFTER_S - 60
    os.utime(tmp_path / folders["legacy-old"], (old, old))
    remove_stale_staging(tmp_path)
    left = {label for label, name in folders.items() if (tmp_path / name).exists()}
    assert left == {"mine", "other-host", "legacy-fresh"}
