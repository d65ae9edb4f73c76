"""The lines around every view: the navigation bar (which view, the pair, the engine), the status line (a spinner
with what runs, or the last problem) and the key bar (the bindings that apply where the focus is)."""

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

    def on_mount(self) -> None:
        self.watch(self.app, "pair_label", self._redraw)
        self.watch(self.app, "view_name", self._redraw)

    def _redraw(self, _value=None) -> None:
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        self._targets: list[tuple[int, int, str]] = []  # (first cell, end cell, view) for clicks
        for mode, key, title in SCREENS:
            start = text.cell_len
            if mode == self.app.view_name:
                text.append(f" {key} {title} ", Style(bold=True, reverse=True))
            else:
                text.append(f" {key}", Style(bold=True, color="#5f87d7"))
                text.append(f" {title} ")
            self._targets.append((start, text.cell_len, mode))
        text.append("  ")
        text.append(self.app.pair_label, Style(dim=True))
        self.update(text, layout=False)  # one line, always: no layout pass needed

    def on_click(self, event) -> None:
        for start, end, mode in getattr(self, "_targets", []):
            if start <= event.x < end:
                self.app.go(mode)
                return


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
            # one line, always: no layout pass (the spinner redraws ten times a second)
            self.update(Text(f"{SPINNER[self._frame]} {activities.describe()}", no_wrap=True, overflow="ellipsis"),
                        layout=False)
        else:
            self._timer.pause()
            self.update(Text(self.app.status_message, no_wrap=True, overflow="ellipsis"), layout=False)
        self.set_class(busy, "-busy")
        self.set_class(not busy and self.app.status_is_error, "-error")


class KeyBar(Static):
    """The keys that apply where the focus is, one line, each clickable (a light stand-in for Textual's
    ``Footer``, which rebuilds a widget per key on every focus change: too slow for moving between fields)."""

    DEFAULT_CSS = """
    KeyBar { height: 1; background: $panel; color: $text; }
    """

    def on_mount(self) -> None:
        # immediate: redrawn while the focus changes, so the key bar is part of the same frame as the rest of a
        # view switch (a posted redraw arrives after that frame and costs a frame of its own, 17-33 ms later)
        self.screen.bindings_updated_signal.subscribe(self, self._redraw, immediate=True)
        self._redraw()

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _redraw(self, *_args) -> None:
        app = self.app
        key_style = Style(bold=True, color="#ffaf00")
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        seen: set[str] = set()
        palette = None
        self._targets: list[tuple[int, int, str]] = []  # (first cell, end cell, key) for clicks
        for key, (_node, binding, enabled, _tooltip) in self.screen.active_bindings.items():
            if key == app.COMMAND_PALETTE_BINDING:
                palette = binding
            if not binding.show or binding.action in seen:
                continue
            seen.add(binding.action)
            start = text.cell_len
            text.append(f" {app.get_key_display(binding)} ", key_style if enabled else Style(dim=True))
            text.append(f"{binding.description} ", Style(dim=not enabled))
            self._targets.append((start, text.cell_len, key))
        if palette is not None and app.ENABLE_COMMAND_PALETTE:
            tail = Text.assemble((f" {app.get_key_display(palette)} ", key_style), ("palette ", ""))
            room = self.size.width - text.cell_len - tail.cell_len
            if room > 0:
                text.append(" " * room)
            self._targets.append((text.cell_len, text.cell_len + tail.cell_len, app.COMMAND_PALETTE_BINDING))
            text.append_text(tail)
        if text != getattr(self, "_shown", None):  # Textual asks again after each refresh: redraw only a change
            self._shown = text
            self.update(text, layout=False)

    def on_click(self, event) -> None:
        for start, end, key in getattr(self, "_targets", []):
            if start <= event.x < end:
                self.app.simulate_key(key)
                return

    def on_resize(self, event) -> None:
        self._redraw()
