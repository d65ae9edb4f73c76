"""Where ctkd-inspect keeps what it fetches and converts, and how it writes there safely.

The cache root is, in order: the ``CTKD_INSPECT_CACHE`` environment variable, ``$XDG_CACHE_HOME/ctkd-inspect``,
``~/.cache/ctkd-inspect``. Inside it:

- ``assets/<key>/``      files unpacked from registry packages (tokenizer files, GGUFs, corpora);
- ``tokenizers/<name>/`` tokenizers converted once from those files and saved as ``tokenizer.json``, so later
  loads take a fraction of a second instead of a conversion.

Every entry is complete only when its ``.manifest.json`` exists. The manifest is written last, after the files
were moved into place, so an interrupted fetch or conversion leaves an entry without a manifest, which nothing
trusts and the next run rebuilds.

Several processes may share one cache. Each writes in its own staging folder, named after its host and process id
(``.staging-<name>.pid<pid>@<host>.<random>``), and a later run removes only the staging folders whose process is
gone (see :func:`remove_stale_staging`). Writers of the same entry take turns through :func:`entry_lock`, an
exclusive ``flock`` on ``.lock-<name>`` beside the entry, so the second one finds the first one's finished entry.

A cache that cannot be written (read-only, or a path that cannot be created) raises :class:`CacheNotWritable`,
an error of this package naming the folder, instead of a bare :class:`OSError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import FetchError

try:  # POSIX; elsewhere writers of one entry are not serialised (the final rename still keeps entries whole)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

MANIFEST = ".manifest.json"
ENV_CACHE = "CTKD_INSPECT_CACHE"
LOCK_PREFIX = ".lock-"

#: Staging folders whose name does not say which process owns them (older versions of this package, or another
#: host) are removed only once they are this old.
STALE_AFTER_S = 24 * 3600


class CacheNotWritable(FetchError):
    """The cache folder cannot be created or written (read-only file system, no permission, a file in the way)."""

    def __init__(self, folder: Path, exc: OSError):
        self.folder = Path(folder)
        reason = exc.strerror or str(exc) or type(exc).__name__
        super().__init__(
            f"cannot write to the cache folder {self.folder} ({reason}). Choose a writable cache folder with "
            f"--cache-dir or the {ENV_CACHE} environment variable.")


class CacheWarning(UserWarning):
    """Something could not be saved in the cache; the result is still correct, only not kept for later runs."""


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
    try:
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, entry / MANIFEST)
    except OSError as exc:
        raise CacheNotWritable(entry, exc) from exc


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


def make_dirs(folder: Path) -> None:
    """``mkdir -p`` that raises :class:`CacheNotWritable` (naming the folder) instead of an :class:`OSError`."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CacheNotWritable(folder, exc) from exc


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname() or "localhost")[:64] or "localhost"


def _owner_tag() -> str:
    """``pid<pid>@<host>``: who owns a staging folder, in a form :func:`remove_stale_staging` can check."""
    return f"pid{os.getpid()}@{_host()}"


_OWNED = re.compile(r"\.pid(\d+)@([A-Za-z0-9_-]+)\.[^.]*$")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if sys.platform == "win32":  # pragma: no cover - os.kill(pid, 0) would terminate the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    except OSError:  # pragma: no cover - unknown: be safe
        return True
    return True


def staging_is_abandoned(path: Path, now: float | None = None) -> bool:
    """True when no running process can still be using the staging folder ``path``.

    A folder named by this version (``...pid<pid>@<host>.<random>``) is abandoned when it belongs to this host
    and that process no longer exists. A folder of another host, or with an older name that does not say who
    owns it, is abandoned only when it has not changed for :data:`STALE_AFTER_S` seconds.
    """
    match = _OWNED.search(path.name)
    if match and match.group(2) == _host():
        return not _pid_alive(int(match.group(1)))
    try:
        age = (now if now is not None else time.time()) - path.lstat().st_mtime
    except OSError:
        return False
    return age > STALE_AFTER_S


@contextlib.contextmanager
def staging_dir(parent: Path, prefix: str) -> Iterator[Path]:
    """A temporary directory beside the final location (same file system, so the final move is atomic).

    It is removed on exit whatever happens; a process killed hard leaves a ``.staging-*`` folder that
    :func:`remove_stale_staging` clears later (its name carries the owner's pid and host, so folders of running
    processes are left alone). Nothing ever reads from a staging folder.

    Raises:
        CacheNotWritable: ``parent`` cannot be created or written.
    """
    make_dirs(parent)
    try:
        path = Path(tempfile.mkdtemp(prefix=f".staging-{prefix}.{_owner_tag()}.", dir=parent))
    except OSError as exc:
        raise CacheNotWritable(parent, exc) from exc
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_stale_staging(parent: Path) -> None:
    """Delete the staging folders of interrupted runs (see :func:`staging_is_abandoned`); never those of a
    process that is still running."""
    if parent.is_dir():
        for path in parent.glob(".staging-*"):
            if staging_is_abandoned(path):
                shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def entry_lock(entry: Path) -> Iterator[None]:
    """Hold an exclusive lock for writing ``entry``; a second writer of the same entry waits here.

    The lock is an ``flock`` on ``<parent>/.lock-<name>`` (the file stays; the lock goes with the process, so a
    killed writer never blocks later runs). After taking it, check again whether the entry is now complete.

    Raises:
        CacheNotWritable: the lock file cannot be created (the cache is read-only, ...).
    """
    make_dirs(entry.parent)
    lock_path = entry.parent / f"{LOCK_PREFIX}{entry.name}"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise CacheNotWritable(entry.parent, exc) from exc
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def install_entry(staged: Path, entry: Path) -> None:
    """Move a fully written staging folder to its final place, replacing an older entry.

    The old entry is first renamed aside, so at no moment does ``entry`` hold a mix of old and new files. Call it
    while holding :func:`entry_lock` for ``entry``.
    """
    make_dirs(entry.parent)
    try:
        if entry.exists():
            aside = Path(tempfile.mkdtemp(prefix=f".staging-old-{entry.name}.{_owner_tag()}.", dir=entry.parent))
            os.replace(entry, aside / entry.name)
            shutil.rmtree(aside, ignore_errors=True)
        os.replace(staged, entry)
    except OSError as exc:
        raise CacheNotWritable(entry.parent, exc) from exc
