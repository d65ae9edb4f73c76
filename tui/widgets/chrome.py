"""The lines around every screen: the navigation bar (which screen, the pair, the engine) and the status line
(a spinner with what runs, or the last problem)."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

#: The screens in navigation order: (mode name, key, title).
SCREENS: tuple[tuple[str, str, str], ...] = (
    ("align", "1", "Alignment"), ("engines", "2", "Engines"), ("diff", "3", "Diff"), ("metrics", "4", "Metrics"),
    ("failures", "5", "Failures"), ("vocab", "6", "Vocabulary"),
)
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class NavBar(Static):
    """One line: the screens (the current one highlighted; each clickable) and the pair and engine."""

    DEFAULT_CSS = """
    NavBar { height: 1; background: $panel; color: $text; }
    """

    def __init__(self, current: str, **kwargs):
        super().__init__(**kwargs)
        self.current = current

    def on_mount(self) -> None:
        self.watch(self.app, "pair_label", self._redraw)

    def _redraw(self, _value=None) -> None:
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        for mode, key, title in SCREENS:
            click = Style(meta={"@click": f"app.show_screen('{mode}')"})
            if mode == self.current:
                text.append(f" {key} {title} ", Style(bold=True, reverse=True) + click)
            else:
                text.append(f" {key}", Style(bold=True, color="#5f87d7") + click)
                text.append(f" {title} ", click)
        text.append("  ")
        text.append(self.app.pair_label, Style(dim=True))
        self.update(text)


class StatusLine(Static):
    """A spinner and the running work, or the last problem, or nothing."""

    DEFAULT_CSS = """
    StatusLine { height: 1; color: $text-muted; }
    StatusLine.-busy { color: $text-warning; }
    StatusLine.-error { color: $text-error; }
    """

    def on_mount(self) -> None:
        self._frame = 0
        self._timer = self.set_interval(0.1, self._tick, pause=True)
        self.watch(self.app, "activity_tick", self._redraw)

    def _tick(self) -> None:
        self._frame = (self._frame + 1) % len(SPINNER)
        self._redraw()

    def _redraw(self, _value=None) -> None:
        activities = self.app.activities
        busy = activities.busy
        if busy:
            self._timer.resume()
            self.update(Text(f"{SPINNER[self._frame]} {activities.describe()}", no_wrap=True, overflow="ellipsis"))
        else:
            self._timer.pause()
            self.update(Text(self.app.status_message, no_wrap=True, overflow="ellipsis"))
        self.set_class(busy, "-busy")
        self.set_class(not busy and self.app.status_is_error, "-error")
