"""Progress reporting for long work, independent of any display.

Code that can take more than a second or two (downloads, conversions, model loading, vocabulary mappings,
projector fits, corpus runs, training) reports *stages* here; what the user sees is decided by the front-end that
installed a reporter: the CLI draws a rich bar on a terminal and writes one line per stage elsewhere, the TUI and
the widgets show their own indicators, and a library user sees nothing unless they install one. The core
therefore never imports a UI toolkit to show progress.

Usage in the core::

    from ctkd_inspect.progress import stage

    with stage("MinED teacher→student", total=len(tokens), unit="tokens") as bar:
        for chunk in chunks:
            ...
            bar.advance(len(chunk))

Usage in a front-end::

    from ctkd_inspect.progress import reporting

    with reporting(MyReporter()):
        run_the_command()

A reporter is any object with ``start(stage)``, ``update(stage)`` and ``finish(stage)`` methods (see
:class:`Reporter`); it is kept in a context variable, so threads started by a front-end inherit nothing unless
the front-end passes the reporter on (``contextvars.copy_context().run``).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

__all__ = ["Reporter", "Stage", "current_reporter", "reporting", "stage"]


class Stage:
    """One unit of long work: a name, an optional total, how much is done, and a unit (``bytes``, ``texts``...).

    ``completed`` and ``total`` are in ``unit``; ``total`` is ``None`` when the amount of work is unknown (a
    spinner rather than a bar). ``detail`` is a short, changing note (``"3 of 4 files"``).
    """

    __slots__ = ("completed", "detail", "finished", "name", "reporter", "started_at", "total", "unit")

    def __init__(self, name: str, total: float | None, unit: str, reporter: Reporter | None):
        self.name = name
        self.total = total
        self.unit = unit
        self.completed: float = 0
        self.detail = ""
        self.finished = False
        self.started_at = time.monotonic()
        self.reporter = reporter

    def advance(self, amount: float = 1) -> None:
        """Add ``amount`` to the work done."""
        self.completed += amount
        if self.reporter is not None:
            self.reporter.update(self)

    def update(self, completed: float | None = None, total: float | None = None, detail: str | None = None) -> None:
        """Set the work done, the total or the detail note (any of them)."""
        if completed is not None:
            self.completed = completed
        if total is not None:
            self.total = total
        if detail is not None:
            self.detail = detail
        if self.reporter is not None:
            self.reporter.update(self)

    @property
    def elapsed(self) -> float:
        """Seconds since the stage started."""
        return time.monotonic() - self.started_at


class Reporter(Protocol):
    """What a front-end implements to show progress."""

    def start(self, stage: Stage) -> None: ...

    def update(self, stage: Stage) -> None: ...

    def finish(self, stage: Stage) -> None: ...


_REPORTER: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar("ctkd_inspect_progress", default=None)


def current_reporter() -> Reporter | None:
    """The reporter installed by the innermost :func:`reporting` block, or ``None``."""
    return _REPORTER.get()


@contextmanager
def reporting(reporter: Reporter | None) -> Iterator[Reporter | None]:
    """Install ``reporter`` for the code run inside the block (``None`` silences progress)."""
    token = _REPORTER.set(reporter)
    try:
        yield reporter
    finally:
        _REPORTER.reset(token)


@contextmanager
def stage(name: str, total: float | None = None, unit: str = "") -> Iterator[Stage]:
    """Report a stage of long work to the current reporter (a no-op object when none is installed).

    The stage is finished when the block exits, also on an exception or an interrupt, so a display never keeps
    a dead bar.
    """
    reporter = _REPORTER.get()
    current = Stage(name, total, unit, reporter)
    if reporter is not None:
        reporter.start(current)
    try:
        yield current
    finally:
        current.finished = True
        if reporter is not None:
            reporter.finish(current)
