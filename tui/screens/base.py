"""The app's one main screen and what every view on it shares.

The six screens a user moves between (Alignment, Engines, Diff, Metrics, Failures, Vocabulary) are *views*:
containers inside one :class:`MainScreen`, under the navigation bar and above the status line and the key footer,
switched with a ``ContentSwitcher``. Only the Alignment view is built before the first paint; the others are
mounted, hidden, right after it (one per idle moment, while the tokenizers load), so switching to a view is a
display toggle and never waits for a view to be built.

A hidden view does not redraw when the app's state changes: :meth:`View.when_active` keeps the latest update of
each kind and runs it when the view is shown again, or earlier, once the app is idle (the app's ``mark_stale``:
hidden views are brought up to date and laid out off screen, so that showing one is a single frame).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import ContentSwitcher

from ..widgets.chrome import KeyBar, NavBar, StatusLine


class View(Vertical):
    """One of the app's screens; subclasses set ``MODE`` (its name), ``MAIN`` (the selector of the widget Esc
    focuses, leaving a text field so single-key bindings work again), ``AUTO_FOCUS`` (focused when the view is
    shown) and implement :meth:`compose_body`."""

    MODE = ""
    MAIN = ""
    AUTO_FOCUS = ""
    BINDINGS: ClassVar[list] = [Binding("escape", "leave_field", "Leave field", show=False, id="leave-field")]

    def __init__(self):
        super().__init__(id=f"view-{self.MODE}", classes="view")
        self._pending: dict[Callable, tuple] = {}

    def compose(self) -> ComposeResult:
        yield from self.compose_body()

    def compose_body(self) -> ComposeResult:  # pragma: no cover - every view has one
        yield from ()

    @property
    def active(self) -> bool:
        """Whether this view is the one shown."""
        return self.app.view_name == self.MODE

    def when_active(self, callback: Callable, *args) -> None:
        """Run ``callback(*args)`` now if the view is shown, else when it is shown next (only the latest call of
        each callback is kept: they all redraw from the app's current state)."""
        if self.active:
            self._run(callback, args)
        else:
            self._pending[callback] = args
            self.app.mark_stale(self)

    def _run(self, callback: Callable, args: tuple) -> None:
        if inspect.iscoroutinefunction(callback):
            self.call_later(callback, *args)  # awaited by the view's message loop
        else:
            callback(*args)

    def catch_up(self) -> None:
        """Run the updates the view missed while hidden."""
        pending, self._pending = self._pending, {}
        for callback, args in pending.items():
            self._run(callback, args)

    def activated(self) -> None:
        """The view was just shown: run the updates it missed and focus its main widget."""
        self.catch_up()
        if self.AUTO_FOCUS:
            self.query_one(self.AUTO_FOCUS).focus()

    def action_leave_field(self) -> None:
        if self.MAIN:
            self.query_one(self.MAIN).focus()


class MainScreen(Screen):
    """The navigation bar, the views, the status line and the footer."""

    def __init__(self, first: View):
        super().__init__(id="main")
        self.first = first

    def compose(self) -> ComposeResult:
        yield NavBar(id="nav")
        yield ContentSwitcher(self.first, id="views", initial=self.first.id)
        yield StatusLine(id="status")
        yield KeyBar(id="keys")

    def on_resize(self, event) -> None:
        self.app.check_size()
