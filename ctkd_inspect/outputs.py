"""Files the tool writes: checked before any work starts, written atomically, never half-written.

Every output (``vocab --out``, ``--json -o``, corpus Parquet, HTML reports, exports) goes through this module:

- :func:`check_output_path` runs before any computation: the folder exists, is a folder and can really be written
  (a file is created there and removed again, so a read-only mount or a full inode table is caught too, also as
  root), the extension is one the command knows, and an existing file is replaced only when the user asked for
  it (``--overwrite``);
- :func:`atomic_output` / :func:`atomic_path` write to a temporary file in the same folder and rename it into
  place only once the whole content is written and flushed to disk, so a failed write (disk full, permissions, an
  interrupt) leaves any previous file byte-identical and no partial file behind. Where the system allows it
  (Linux, ``O_TMPFILE`` on ext4, xfs, btrfs, tmpfs) the temporary file has no name at all until it is complete,
  so even a process killed with SIGKILL mid-write leaves nothing in the folder; elsewhere it is a hidden
  ``.NAME.PID.XXXX.partial`` file, removed on any failure and swept away by the next write to that folder once
  the process that made it is gone. A write that fails raises :class:`~ctkd_inspect.errors.OutputWriteError`
  (exit code 1) saying why.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from .errors import OutputError, OutputWriteError

__all__ = ["atomic_output", "atomic_path", "atomic_write_bytes", "atomic_write_text", "check_output_path"]

_PARTIAL = ".partial"


def check_output_path(path: str | os.PathLike, *, suffixes: Sequence[str] | None = None, overwrite: bool = False,
                      option: str = "--out") -> Path:
    """Check that ``path`` can be written, before any work starts; returns it as a :class:`Path`.

    Args:
        path: the output file the user named.
        suffixes: accepted extensions (``(".json", ".parquet")``), compared case-insensitively; ``None`` accepts
            any.
        overwrite: whether an existing file may be replaced.
        option: the flag or keyword that named the path, for the message.

    Raises:
        OutputError: a folder is named instead of a file, the folder does not exist, is not a folder or cannot
            be written (checked by creating a file there, so read-only mounts count), the extension is unknown,
            the path exists but is not a regular file (a FIFO or a device is never replaced), or the file exists
            and ``overwrite`` is false.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise OutputError(f"{option} must be a file path (a str or a pathlib.Path), got {type(path).__name__}")
    target = Path(path).expanduser()
    if str(path) == "" or target.is_dir():
        raise OutputError(f"{option} {path!s}: name a file, not a folder")
    if suffixes is not None and target.suffix.lower() not in {s.lower() for s in suffixes}:
        raise OutputError(f"{option} {path!s}: unknown extension {target.suffix or '(none)'!r}; use one of "
                          f"{', '.join(suffixes)}")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.exists():
        raise OutputError(f"{option} {path!s}: the folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise OutputError(f"{option} {path!s}: {folder} is not a folder (a file has that name); choose another "
                          "path")
    if target.exists() and not overwrite:
        raise OutputError(f"{option} {path!s} exists; pass --overwrite to replace it (or choose another name)")
    if target.exists() and not target.resolve().is_file():
        raise OutputError(f"{option} {path!s} exists and is not a regular file (a FIFO, socket or device is never "
                          "replaced); choose another path")
    problem = _write_probe(folder)
    if problem is not None:
        raise OutputError(f"{option} {path!s}: the folder {folder} cannot be written ({problem}); choose another "
                          "folder")
    return target


def _write_probe(folder: Path) -> str | None:
    """Why a file cannot be created in ``folder`` (``None`` when it can): a file is created and removed again,
    which catches read-only mounts and exhausted file systems that permission bits do not show (root passes
    every permission check)."""
    try:
        fd = _open_unnamed(folder)
        if fd is not None:
            os.close(fd)
            return None
        handle, name = tempfile.mkstemp(prefix=".ctkd-inspect-probe.", dir=folder)
        os.close(handle)
        os.unlink(name)
    except OSError as exc:
        return _reason(exc)
    return None


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on the device"
    return exc.strerror or str(exc)


def _advice(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "Free some space or write to another folder."
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "Write to another folder."
    return ""


def _write_error(target: Path, exc: OSError) -> OutputWriteError:
    kept = f"the previous {target.name} is unchanged" if target.exists() else "nothing was written there"
    return OutputWriteError(f"could not write {target}: {_reason(exc)}; {kept} and no partial file was left. "
                            f"{_advice(exc)}".rstrip())


def _creation_mode() -> int:
    """The permissions a plain ``open`` would give a new file (0o666 less the umask)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _open_unnamed(folder: Path) -> int | None:
    """A file descriptor of an unnamed file in ``folder`` (``O_TMPFILE``), or ``None`` where the system or the
    file system has no such files (the caller then uses a named temporary file).

    Raises:
        OSError: the folder cannot be written (permissions, read-only, full).
    """
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir(f"/proc/{os.getpid()}/fd"):
        return None
    try:
        return os.open(folder, flag | os.O_RDWR, 0o600)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOTSUP):
            return None
        raise


def _partial_name(target: Path) -> str:
    return f".{target.name}.{os.getpid()}."


def _sweep_stale(target: Path) -> None:
    """Remove named temporaries of ``target`` left by processes that no longer run (killed mid-write on a file
    system without unnamed files). Only files named by this module for this target are considered."""
    prefix, suffix = f".{target.name}.", f"{_PARTIAL}{target.suffix}"
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        owner = name[len(prefix):].split(".", 1)[0]
        if not owner.isdigit() or int(owner) == os.getpid() or _alive(int(owner)):
            continue
        with suppress(OSError):
            os.unlink(entry.path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


@contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator:
    """A file object to write ``path`` through a temporary file in the same folder, renamed into place on success.

    On any exception inside the block (or when the final flush fails, e.g. a full disk) the temporary file is
    removed and ``path`` is untouched. The new file gets the permissions a plain ``open`` would give it.

    Raises:
        OutputWriteError: the file cannot be written (the target stays intact; no partial file is left).
    """
    with atomic_path(path) as temporary, open(temporary, mode, encoding=encoding) as stream:
        yield stream


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path for writers that want a file name (pyarrow, matplotlib, numpy), whose content becomes
    ``path`` when the block succeeds and disappears otherwise.

    The path ends with ``path``'s own name (so writers that pick a format from the extension pick the right one).
    Where the system has unnamed files (Linux ``O_TMPFILE``) it is a link, outside the target folder, to an unnamed
    file in the target folder, which is given a name only once complete: a process killed mid-write leaves nothing
    there. Elsewhere it is a hidden named file beside ``path`` (see the module docstring). When ``path`` is a
    symbolic link, the file it points to is replaced and the link kept.

    Raises:
        OutputWriteError: the file cannot be written or put in place (disk full, read-only, permissions); the
            target stays intact and no partial file is left. Other exceptions of the block pass through unchanged
            (the target also stays intact).
    """
    target = Path(path)
    if target.is_symlink():
        target = target.resolve()
    if not str(target.parent):
        target = Path(".") / target
    try:
        _sweep_stale(target)
        fd = _open_unnamed(target.parent)
    except OSError as exc:
        raise _write_error(target, exc) from exc
    inner = _unnamed_path(target, fd) if fd is not None else _named_path(target)
    try:
        with inner as temporary:
            yield temporary
    except OutputWriteError:
        raise
    except OSError as exc:
        raise _write_error(target, exc) from exc


@contextmanager
def _unnamed_path(target: Path, fd: int) -> Iterator[Path]:
    magic = f"/proc/{os.getpid()}/fd/{fd}"
    links = tempfile.mkdtemp(prefix="ctkd-inspect-out.")
    alias = Path(links) / target.name
    try:
        os.symlink(magic, alias)
        yield alias
        if not (alias.is_symlink() and os.readlink(alias) == magic):
            # the writer replaced the link with a file of its own (write-then-rename): take that content
            with open(alias, "rb") as source, open(magic, "wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
        os.fsync(fd)
        os.fchmod(fd, _creation_mode())
        _put_in_place(magic, target)
    finally:
        os.close(fd)
        shutil.rmtree(links, ignore_errors=True)


def _put_in_place(source: str, target: Path) -> None:
    """Give the finished unnamed file a hidden name beside ``target``, then rename it onto ``target`` (both in
    the folder, so the rename is atomic); the folder is synced so the new name survives a crash."""
    folder = os.open(target.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        for attempt in range(100):
            name = f"{_partial_name(target)}{os.urandom(4).hex()}{_PARTIAL}{target.suffix}"
            try:
                os.link(source, name, dst_dir_fd=folder, follow_symlinks=True)
                break
            except FileExistsError:
                if attempt == 99:
                    raise
        try:
            os.replace(name, target.name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with suppress(OSError):
                os.unlink(name, dir_fd=folder)
            raise
        with suppress(OSError):  # not every file system syncs folders
            os.fsync(folder)
    finally:
        os.close(folder)


@contextmanager
def _named_path(target: Path) -> Iterator[Path]:
    handle, temporary = tempfile.mkstemp(prefix=_partial_name(target), suffix=f"{_PARTIAL}{target.suffix}",
                                         dir=target.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
        os.chmod(temporary, _creation_mode())
        os.replace(temporary, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output`).

    Raises:
        OutputWriteError: the file cannot be written; any previous file is unchanged.
    """
    with atomic_output(path, "wb") as stream:
        stream.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically (see :func:`atomic_output`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))
