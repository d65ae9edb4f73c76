"""Files the tool writes: checked before any work starts, written atomically, never half-written.

Every output (``vocab --out``, ``--json -o``, corpus Parquet, HTML reports, exports) goes through this module:

- :func:`check_output_path` runs before any computation: the folder exists and is writable, the extension is one
  the command knows, and an existing file is replaced only when the user asked for it (``--overwrite``);
- :func:`atomic_output` writes to a temporary file in the same folder and renames it into place only once the
  whole content is written and flushed to disk, so a failed write (disk full, permissions, an interrupt) leaves
  any previous file byte-identical and no partial file behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from .errors import OutputError

__all__ = ["atomic_output", "atomic_path", "atomic_write_bytes", "atomic_write_text", "check_output_path"]


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
        OutputError: a folder is named instead of a file, the folder does not exist or cannot be written, the
            extension is unknown, or the file exists and ``overwrite`` is false.
    """
    target = Path(path).expanduser()
    if str(path) == "" or target.is_dir():
        raise OutputError(f"{option} {path!s}: name a file, not a folder")
    if suffixes is not None and target.suffix.lower() not in {s.lower() for s in suffixes}:
        raise OutputError(f"{option} {path!s}: unknown extension {target.suffix or '(none)'!r}; use one of "
                          f"{', '.join(suffixes)}")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{option} {path!s}: the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {path!s}: the folder {folder} is not writable")
    if target.exists() and not overwrite:
        raise OutputError(f"{option} {path!s} exists; pass --overwrite to replace it (or choose another name)")
    if target.exists() and not os.access(target, os.W_OK) and not os.access(folder, os.W_OK):
        raise OutputError(f"{option} {path!s} exists and cannot be replaced")
    return target


@contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator:
    """A file object to write ``path`` through a temporary file in the same folder, renamed into place on success.

    On any exception inside the block (or when the final flush fails, e.g. a full disk) the temporary file is
    removed and ``path`` is untouched. The new file gets the permissions a plain ``open`` would give it.

    Raises:
        OSError: the temporary file cannot be created or written (the target stays intact).
    """
    with atomic_path(path) as temporary, open(temporary, mode, encoding=encoding) as stream:
        yield stream


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path in the same folder for writers that want a file name (pyarrow, matplotlib, numpy), moved
    onto ``path`` when the block succeeds and removed otherwise."""
    target = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".partial{target.suffix}",
                                         dir=target.parent or ".")
    os.close(handle)
    try:
        yield Path(temporary)
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path, "wb") as stream:
        stream.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically (see :func:`atomic_output`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))
