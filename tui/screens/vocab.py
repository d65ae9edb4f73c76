"""The Vocabulary screen: type a token or an id on either side and see its exact and MinED counterparts in the
other vocabulary and its nearest tokens by CDM's normalised edit distance (:mod:`ctkd_inspect.lookup`)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input, Select, Static

from ctkd_inspect.render import visible

from ..views import lookup_panel
from ..widgets.vtable import Column, VirtualTable
from .base import View

NEAREST_COLUMNS = (Column("rank", 4, "right"), Column("id", 7, "right"), Column("token"), Column("text"),
                   Column("distance", 8, "right"))
#: Seconds of quiet typing before a lookup runs.
LOOKUP_DEBOUNCE = 0.12


class VocabView(View):
    """Screen 6: vocabulary lookup."""

    MODE = "vocab"
    MAIN = "#vocab-nearest"
    AUTO_FOCUS = "#vocab-query"
    BINDINGS: ClassVar[list] = [
        Binding("m", "mined", "MinED", id="compute-mined"),
        Binding("slash", "focus_query", "Query", key_display="/", id="focus-query"),
        Binding("s", "switch_side", "Side", id="switch-side"),
    ]

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="vocab-controls"):
            yield Select(self._sides(), value=self.app.lookup_side, allow_blank=False, id="vocab-side", compact=True)
            yield Input(value=self.app.lookup_query, placeholder="token (␣the, 'quoted' digits) or id (#1234)",
                        id="vocab-query", compact=True)
        yield Static("", id="vocab-result")
        yield VirtualTable(NEAREST_COLUMNS, id="vocab-nearest", empty="type a token or an id above")

    def on_mount(self) -> None:
        self._timer = None
        self.watch(self.app, "lookup_tick", lambda value: self.when_active(self._result_changed, value))
        self.watch(self.app, "pair_label", lambda value: self.when_active(self._pair_changed, value))

    def _sides(self) -> list[tuple[str, str]]:
        return [(f"teacher {self.app.teacher}", "teacher"), (f"student {self.app.student}", "student")]

    def _pair_changed(self, _label=None) -> None:
        select = self.query_one("#vocab-side", Select)
        with self.prevent(Select.Changed):
            select.set_options(self._sides())
            select.value = self.app.lookup_side

    def _request(self) -> None:
        self._timer = None
        select = self.query_one("#vocab-side", Select)
        self.app.lookup("teacher" if select.is_blank() else select.value, self.query_one("#vocab-query", Input).value)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "vocab-query":
            return
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(LOOKUP_DEBOUNCE, self._request)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._request()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "vocab-side" and event.value != self.app.lookup_side:
            self._request()

    def action_focus_query(self) -> None:
        self.query_one("#vocab-query", Input).focus()

    def action_switch_side(self) -> None:
        select = self.query_one("#vocab-side", Select)
        select.value = "student" if select.value == "teacher" else "teacher"

    def action_mined(self) -> None:
        self.app.compute_mined()

    def _result_changed(self, _tick=None) -> None:
        app = self.app
        panel = self.query_one("#vocab-result", Static)
        table = self.query_one("#vocab-nearest", VirtualTable)
        if app.lookup_error:
            panel.update(Text(app.lookup_error, style="bold red"))
            table.set_rows(0, lambda i: ())
            return
        result = app.lookup_result
        if result is None:
            hint = ("MinED mapping ready" if app.mined_state == "ready" else
                    "MinED: press m to load or compute the mapping (minutes the first time; cached)")
            panel.update(Text(f"Look a token up in the other vocabulary. {hint}.", style="dim"))
            table.set_rows(0, lambda i: ())
            return
        panel.update(lookup_panel(result, app.mined_state, app.mined_error))
        nearest = result.nearest
        table.set_rows(len(nearest), lambda i: (str(i + 1), str(nearest[i].id), nearest[i].token,
                                                visible(nearest[i].text), f"{nearest[i].distance:.3f}"))
        table.border_title = f"nearest {result.other} tokens · normalised edit distance"

    def on_virtual_table_selected(self, event: VirtualTable.Selected) -> None:
        """A nearest token: look it up in turn, from the other side."""
        result = self.app.lookup_result
        if event.table.id != "vocab-nearest" or result is None or event.row >= len(result.nearest):
            return
        select = self.query_one("#vocab-side", Select)
        query = self.query_one("#vocab-query", Input)
        with self.prevent(Input.Changed, Select.Changed):
            select.value = result.other
            query.value = f"#{result.nearest[event.row].id}"
        self.app.lookup(result.other, query.value)
