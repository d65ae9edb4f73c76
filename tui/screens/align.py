"""The Alignment screen: the text (editable, re-aligned as you type), both ribbons, the group table and the
current group's detail."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Static, TextArea

from ..views import SHAPE_STYLE, group_detail, pieces_text, swatch
from ..widgets.ribbon import Ribbon
from ..widgets.steady import SteadyTextArea
from ..widgets.vtable import Column, VirtualTable
from .base import View

GROUP_COLUMNS = (Column("#", 5, "right"), Column("shape", 5), Column("teacher"), Column("student"),
                 Column("chars", 9, "right"))


class AlignView(View):
    """Screen 1: the alignment of the current text."""

    MODE = "align"
    MAIN = "#groups"
    AUTO_FOCUS = "#groups"
    BINDINGS: ClassVar[list] = [
        Binding("slash", "edit", "Edit text", key_display="/", id="edit-text"),
        Binding("right_square_bracket", "next_group(1)", "Next non-1:1", key_display="]", id="next-group"),
        Binding("left_square_bracket", "next_group(-1)", "Prev non-1:1", key_display="[", show=False,
                id="previous-group"),
        Binding("e", "cycle_engine", "Engine", id="cycle-engine"),
        Binding("s", "swap", "Swap", show=False, id="swap-sides"),
        Binding("d", "app.show_screen('diff')", "Diff", show=False, id="go-diff"),
    ]

    def compose_body(self) -> ComposeResult:
        editor = SteadyTextArea(self.app.text, id="editor", soft_wrap=True, show_line_numbers=False,
                                tab_behavior="focus")
        editor.border_title = "text  (/ edit · Esc leave)"
        yield editor
        yield Static("", id="align-message")
        with VerticalScroll(id="ribbons"):
            yield Static("", id="teacher-label", classes="ribbon-label")
            yield Ribbon(id="teacher-ribbon")
            yield Static("", id="student-label", classes="ribbon-label")
            yield Ribbon(id="student-ribbon")
        with Horizontal(id="group-area"):
            yield VirtualTable(GROUP_COLUMNS, id="groups", empty="no groups")
            with Vertical(id="detail-pane"):
                yield Static("", id="detail")

    def on_mount(self) -> None:
        self._rows: list[dict] = []
        self._failures: dict[int, object] | None = None
        self._shown = None
        self.watch(self.app, "alignment", lambda value: self.when_active(self._alignment_changed, value))
        self.watch(self.app, "group", lambda value: self.when_active(self._group_changed, value))
        self.watch(self.app, "text_version", lambda value: self.when_active(self._text_replaced, value), init=False)

    # -- the text ---------------------------------------------------------------------------------------------------

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self.app.set_text(event.text_area.text)

    def _text_replaced(self, _version=None) -> None:
        editor = self.query_one("#editor", TextArea)
        if editor.text != self.app.text:
            editor.load_text(self.app.text)

    def action_edit(self) -> None:
        self.query_one("#editor", TextArea).focus()

    # -- the alignment ----------------------------------------------------------------------------------------------

    def _alignment_changed(self, alignment) -> None:
        message = self.query_one("#align-message", Static)
        table = self.query_one("#groups", VirtualTable)
        app = self.app
        if alignment is None:
            self._rows, self._failures = [], None
            waiting = "loading the tokenizers…" if not app.pair_ready and not app.pair_error else "aligning…"
            message.update(Text(app.align_error or waiting, style="bold red" if app.align_error else "dim"))
            message.display = True
            for name in ("teacher", "student"):
                self.query_one(f"#{name}-label", Static).update("")
                self.query_one(f"#{name}-ribbon", Ribbon).clear()
            table.set_rows(0, lambda i: (), empty=app.align_error.split("\n")[0] if app.align_error else "…")
            self.query_one("#detail", Static).update("")
            return
        message.display = False
        prepared = app.prepared
        if prepared is None or prepared.alignment is not alignment:
            from ..session import prepare

            prepared = prepare(alignment)
        self._rows, self._cells = prepared.rows, prepared.cells
        self._failures = prepared.failure_by_group
        for side in ("teacher", "student"):
            tokens = alignment.teacher if side == "teacher" else alignment.student
            label = Text.assemble((f"{side} ", "dim"), (tokens.name, "bold"),
                                  (f"  {len(tokens)} tokens · {tokens.scheme}", "dim"))
            if side == "teacher":
                label.append(f"   engine {alignment.engine}", "dim")
                if app.current_row is not None and app.dataset is not None:
                    label.append(f" · {app.dataset.label} row {app.current_row}", "dim")
            self.query_one(f"#{side}-label", Static).update(label)
        rows = self._rows
        table.set_rows(len(rows), lambda i: self._group_cells(rows[i]), cursor=max(app.group, 0))
        self._shown = alignment
        self._group_changed(app.group)

    def _group_cells(self, row: dict) -> tuple:
        return (Text(str(row["group"]), style=swatch(row["group"])), Text(row["shape"], SHAPE_STYLE[row["status"]]),
                pieces_text(row["teacher"]), pieces_text(row["student"]), f"{row['start']}–{row['end']}")

    def _group_changed(self, group: int) -> None:
        alignment = self.app.alignment
        if alignment is None or alignment is not self._shown:
            return
        for side in ("teacher", "student"):
            self.query_one(f"#{side}-ribbon", Ribbon).show(self._cells[side], selected=group)
        table = self.query_one("#groups", VirtualTable)
        if group >= 0 and table.cursor != group:
            table.move_to(group, notify=False)
        # the detail fills its pane (a long group is clipped: Enter shows all of it), so a new group needs no
        # layout pass over the screen
        self.query_one("#detail", Static).update(group_detail(alignment, group, self._failure_of(group)),
                                                 layout=False)

    def _failure_of(self, group: int):
        return (self._failures or {}).get(group)

    # -- moving through groups --------------------------------------------------------------------------------------

    def on_virtual_table_highlighted(self, event: VirtualTable.Highlighted) -> None:
        if event.table.id == "groups" and event.row != self.app.group:
            self.app.select_group(event.row)

    def on_virtual_table_selected(self, event: VirtualTable.Selected) -> None:
        if event.table.id == "groups":
            self.app.select_group(event.row)
            self.app.action_group_detail()

    def on_ribbon_group_clicked(self, event: Ribbon.GroupClicked) -> None:
        self.app.select_group(event.group)

    def action_next_group(self, step: int) -> None:
        self.app.next_group(step)

    def action_cycle_engine(self) -> None:
        self.app.cycle_engine()

    def action_swap(self) -> None:
        self.app.action_swap()
