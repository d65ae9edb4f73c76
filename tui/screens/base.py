"""What every main screen shares: the navigation bar on top, the status line and the key footer at the bottom."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer

from ..widgets.chrome import NavBar, StatusLine


class BaseScreen(Screen):
    """A main screen; subclasses set ``MODE`` (its mode name), ``MAIN`` (the selector of the widget Esc focuses,
    leaving a text field so single-key bindings work again) and implement :meth:`compose_body`."""

    MODE = ""
    MAIN = ""
    BINDINGS: ClassVar[list] = [Binding("escape", "leave_field", "Leave field", show=False, id="leave-field")]

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE, id="nav")
        yield from self.compose_body()
        yield StatusLine(id="status")
        yield Footer()

    def on_resize(self, event) -> None:
        self.app.check_size()

    def action_leave_field(self) -> None:
        if self.MAIN:
            self.query_one(self.MAIN).focus()

    def compose_body(self) -> ComposeResult:  # pragma: no cover - every screen has one
        yield from ()
