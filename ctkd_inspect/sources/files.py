"""Which paths may be read as tokenizer or model files: regular files and folders only.

A FIFO (named pipe) blocks the reader until someone writes to it, a character device such as ``/dev/zero`` or
``/dev/urandom`` never ends, and a socket cannot be opened at all. None of them can hold a tokenizer or a model,
so a path of that kind is refused before anything opens it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["non_regular_kind", "refuse_non_regular"]

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def non_regular_kind(path: str | os.PathLike) -> str | None:
    """What ``path`` is when it is neither a regular file nor a folder ("a FIFO (named pipe)", "a socket", ...),
    following symbolic links; ``None`` for a regular file, a folder, or a path that does not exist."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "not a regular file"


def refuse_non_regular(path: str | os.PathLike, error: type[Exception], what: str) -> None:
    """Raise ``error`` when ``path`` (or, for a folder, anything directly inside it) is not a regular file or a
    folder; never opens anything.

    Args:
        path: the path the user gave.
        error: the exception class to raise (it takes the message).
        what: what the path should have been, for the message ("tokenizer", "model").
    """
    kind = non_regular_kind(path)
    if kind is not None:
        raise error(f"{path} is {kind}, not a {what} file: ctkd-inspect reads a {what} only from regular files "
                    "and folders (a pipe or a device could block or never end). Give the path of the file itself.")
    folder = Path(path)
    if folder.is_dir():
        try:
            children = sorted(os.scandir(folder), key=lambda item: item.name)
        except OSError:
            return  # an unreadable folder fails later with the loader's own message
        for child in children:
            kind = non_regular_kind(child.path)
            if kind is not None:
                raise error(f"{child.path} is {kind}: a {what} folder may hold only regular files and folders (a "
                            "pipe or a device could block or never end). Remove it or copy the files elsewhere.")
