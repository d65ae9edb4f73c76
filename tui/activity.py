"""Running work, as the status line shows it: the app's own tasks and the core's progress stages.

The core reports long work through :mod:`ctkd_inspect.progress` stages; :class:`Activities` is the reporter the app
installs in its worker threads (the reporter lives in a context variable, so each worker installs it itself). It
keeps what runs in a thread-safe table and asks the app to redraw through ``changed``, at most every
``interval`` seconds for progress updates (a MinED run reports thousands of them), at once for starts and ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Activity:
    """One piece of running work."""

    label: str
    completed: float = 0
    total: float | None = None
    unit: str = ""
    detail: str = ""

    def describe(self) -> str:
        """``label  42% (1,234/2,938 tokens)``, or the label alone when the amount is unknown."""
        if self.total:
            share = min(1.0, self.completed / self.total)
            amount = f"{self.completed:,.0f}/{self.total:,.0f} {self.unit}".rstrip()
            return f"{self.label}  {share:.0%} ({amount})"
        return f"{self.label}  {self.detail}".rstrip()


class Activities:
    """A table of running work, usable as a :class:`ctkd_inspect.progress.Reporter`.

    Args:
        changed: called (from any thread) when something started, finished or progressed; the app turns it into
            a redraw on its own thread.
        interval: the least time between two ``changed`` calls for progress updates.
    """

    def __init__(self, changed: Callable[[], None], interval: float = 0.1):
        self._changed = changed
        self._interval = interval
        self._lock = threading.Lock()
        self._running: dict[object, Activity] = {}
        self._last = 0.0

    # -- the app's own tasks ---------------------------------------------------------------------------------

    def begin(self, key: object, label: str) -> None:
        """Show ``label`` until :meth:`end` is called with the same key."""
        with self._lock:
            self._running[key] = Activity(label)
        self._changed()

    def end(self, key: object) -> None:
        with self._lock:
            self._running.pop(key, None)
        self._changed()

    # -- the core's progress stages (ctkd_inspect.progress.Reporter) -----------------------------------------

    def start(self, stage) -> None:
        with self._lock:
            self._running[id(stage)] = Activity(stage.name, stage.completed, stage.total, stage.unit, stage.detail)
            self._last = time.monotonic()
        self._changed()

    def update(self, stage) -> None:
        with self._lock:
            activity = self._running.get(id(stage))
            if activity is None:
                return
            activity.completed, activity.total, activity.detail = stage.completed, stage.total, stage.detail
            now = time.monotonic()
            due = now - self._last >= self._interval
            if due:
                self._last = now
        if due:
            self._changed()

    def finish(self, stage) -> None:
        self.end(id(stage))

    # -- reading ---------------------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._running)

    def describe(self) -> str:
        """The most recent activity (the innermost stage is the most telling), plus how many others run."""
        with self._lock:
            running = list(self._running.values())
        if not running:
            return ""
        text = running[-1].describe()
        if len(running) > 1:
            text += f"  (+{len(running) - 1} more)"
        return text
