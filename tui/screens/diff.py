"""The Diff screen: the current alignment (a) against another engine or another teacher (b), as a diff that
highlights the groups that disagree, or side by side."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Select, Static

from ctkd_inspect.render import diff_rows, diff_segments, segments

from ..views import diff_figures, pieces_text
from ..widgets.ribbon import Ribbon
from ..widgets.vtable import Column, VirtualTable
from .base import View

DIFF_COLUMNS = (Column("", 2), Column("#", 4, "right"), Column("kind", 6), Column("shape", 5), Column("teacher"),
                Column("student"), Column("chars", 9, "right"))
KIND_STYLE = {"split": "yellow", "merge": "cyan", "cross": "red"}


def _label(alignment) -> str:
    return f"{alignment.engine} · {alignment.teacher.name}"


class DiffView(View):
    """Screen 3: two alignments of the text."""

    MODE = "diff"
    MAIN = "#diff-rows"
    AUTO_FOCUS = "#diff-rows"
    BINDINGS: ClassVar[list] = [
        Binding("c", "compare", "Compare", id="compare"),
        Binding("v", "toggle_view", "Diff/side by side", id="toggle-diff-view"),
    ]

    def compose_body(self) -> ComposeResult:
        from ctkd_inspect.engines import engine_names

        with Horizontal(id="diff-controls"):
            yield Static("b:", id="diff-b-label")
            yield Select([(name, name) for name in engine_names()], prompt="engine", id="diff-engine",
                         allow_blank=True, compact=True)
            yield Input(placeholder="teacher of b (empty: the same)", id="diff-teacher", compact=True)
            yield Button("Compare", id="diff-run", variant="primary", compact=True)
        yield Static("choose an engine or a teacher for b, then Compare (c)", id="diff-summary")
        yield VerticalScroll(id="diff-ribbons")
        yield VirtualTable(DIFF_COLUMNS, id="diff-rows", empty="no disagreeing groups")

    def on_mount(self) -> None:
        self.watch(self.app, "diff_tick", lambda value: self.when_active(self._diff_changed, value))
        if self.app.compare_engine:
            self.query_one("#diff-engine", Select).value = self.app.compare_engine
        if self.app.compare_teacher:
            self.query_one("#diff-teacher", Input).value = self.app.compare_teacher

    def action_compare(self) -> None:
        select = self.query_one("#diff-engine", Select)
        engine = None if select.is_blank() else select.value
        teacher = self.query_one("#diff-teacher", Input).value.strip() or None
        if engine is None and teacher is None:
            self.query_one("#diff-summary", Static).update(
                Text("choose another engine or type another teacher for b", style="yellow"))
            return
        self.app.set_compare(engine, teacher)

    def action_toggle_view(self) -> None:
        self.app.toggle_diff_view()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "diff-run":
            self.action_compare()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_compare()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "diff-engine" and not event.select.is_blank():
            self.action_compare()

    async def _diff_changed(self, _tick=None) -> None:
        app = self.app
        summary = self.query_one("#diff-summary", Static)
        area = self.query_one("#diff-ribbons", VerticalScroll)
        table = self.query_one("#diff-rows", VirtualTable)
        await area.remove_children()
        if app.diff_error:
            summary.update(Text(app.diff_error, style="bold red"))
            table.set_rows(0, lambda i: ())
            return
        if app.diff_result is None:
            if app.compare_engine or app.compare_teacher:
                summary.update(Text("comparing…", style="dim"))
            table.set_rows(0, lambda i: ())
            return
        a, b, result = app.diff_result
        summary.update(diff_figures(result, _label(a), _label(b)))
        if app.diff_view == "diff":
            widgets = []
            for side in ("teacher", "student"):
                for which, alignment in (("a", a), ("b", b)):
                    tokens = alignment.teacher if side == "teacher" else alignment.student
                    widgets.append(Static(Text.assemble((f"{side} ", "dim"), (tokens.name, "bold"),
                                                        (f"  {which}: {alignment.engine}", "dim")),
                                          classes="ribbon-label"))
                    ribbon = Ribbon(classes=f"diff-{which}")
                    ribbon.which_side = (which, side)
                    ribbon.show(diff_segments(alignment, result, which, side), diff=True)
                    widgets.append(ribbon)
            await area.mount_all(widgets)
        else:
            columns = []
            for which, alignment in (("a", a), ("b", b)):
                parts = [Static(Text(f"{which}: {_label(alignment)}  rate "
                                     f"{alignment.metrics.get('alignment_rate') or 0:.1%}", style="bold"))]
                for side in ("teacher", "student"):
                    ribbon = Ribbon()
                    ribbon.show(segments(alignment, side))
                    parts.append(ribbon)
                columns.append(Vertical(*parts, classes="side-column"))
            await area.mount(Horizontal(*columns, classes="side-by-side"))
        self._rows = rows = diff_rows(result)
        table.set_rows(len(rows), lambda i: _diff_cells(rows[i]))

    def on_virtual_table_highlighted(self, event) -> None:
        """A disagreeing group in the table: drawn as selected in its alignment's ribbons (diff view)."""
        app = self.app
        if event.table.id != "diff-rows" or app.diff_result is None or app.diff_view != "diff":
            return
        rows = getattr(self, "_rows", [])
        if not 0 <= event.row < len(rows):
            return
        row = rows[event.row]
        for ribbon in self.query("#diff-ribbons Ribbon"):
            which, _side = ribbon.which_side
            ribbon.show(ribbon.cells, diff=True, selected=row["group"] if which == row["which"] else None)


def _diff_cells(row: dict) -> tuple:
    return (row["which"], str(row["group"]), Text(row["kind"], KIND_STYLE.get(row["kind"], "")), row["shape"],
            pieces_text(row["teacher"]), pieces_text(row["student"]), f"{row['start']}–{row['end']}")
