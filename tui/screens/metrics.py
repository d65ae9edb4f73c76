"""The Metrics screen: the current text's alignment rate, shape histogram, coverage and unmatched tokens; for a
loaded data set or corpus report, the rate distribution and every row, worst first (Enter opens one)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Static

from ..views import alignment_metrics, dataset_overview, pct
from ..widgets.vtable import Column, VirtualTable
from .base import View

ROW_COLUMNS = (Column("row", 6, "right"), Column("rate", 6, "right"), Column("groups", 6, "right"),
               Column("chars", 6, "right"), Column("text"))


class MetricsView(View):
    """Screen 4: metrics of the text and of the data set."""

    MODE = "metrics"
    MAIN = "#data-rows"
    AUTO_FOCUS = "#data-rows"
    BINDINGS: ClassVar[list] = [Binding("o", "order", "Worst first/file order", id="row-order")]

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="metrics-body"):
            with VerticalScroll(id="metrics-current"):
                yield Static("", id="metrics-text")
            with Vertical(id="metrics-data"):
                yield Static("", id="data-overview")
                yield VirtualTable(ROW_COLUMNS, id="data-rows", empty="no data set: start with --data FILE or "
                                                                     "--report OUT.parquet")

    def on_mount(self) -> None:
        self.worst_first = True
        self.order = np.zeros(0, dtype=np.int64)
        self._order_of = None
        self.watch(self.app, "alignment", lambda value: self.when_active(self._alignment_changed, value))
        # data-set changes are few (loaded, a row opened, a --data pass every 500 rows) and cheap (the table draws
        # only the rows on screen): drawn at once, shown or not, so the first look at the view is instant
        self.watch(self.app, "dataset_tick", self._dataset_changed)

    def _alignment_changed(self, alignment) -> None:
        panel = self.query_one("#metrics-text", Static)
        if alignment is None:
            panel.update(Text(self.app.align_error or "nothing aligned yet", style="dim"))
            return
        title = Text.assemble(("this text", "bold"), (f" · {alignment.engine} · {len(alignment.text):,} chars\n",
                                                      "dim"))
        from rich.console import Group

        panel.update(Group(title, alignment_metrics(alignment)))

    def _dataset_changed(self, _tick=None) -> None:
        app = self.app
        overview = self.query_one("#data-overview", Static)
        table = self.query_one("#data-rows", VirtualTable)
        source = app.dataset
        if source is None:
            overview.update(Text(app.dataset_error, style="bold red") if app.dataset_error else
                            Text("no data set loaded", style="dim"))
            if app.dataset_error:
                table.set_rows(0, lambda i: (), empty="the data set could not be read (see above)")
            if not self.active:
                self.app.mark_stale(self)
            return
        overview.update(dataset_overview(source, dict(app.dataset_shapes), app.dataset_progress))
        self._sort(source)
        if table.row_count == len(self.order) and self._order_of is source:
            table.refresh_rows()  # only rates changed (a --data pass in progress)
        else:
            self._order_of = source
            table.set_rows(len(self.order), lambda i: self._cells(source, int(self.order[i])))
        table.border_title = "worst first" if self.worst_first else "file order"
        if not self.active:
            self.app.mark_stale(self)  # new content, maybe a new height: laid out again before it is shown

    def _sort(self, source) -> None:
        if not self.worst_first:
            self.order = np.arange(len(source))
            return
        rates = np.where(np.isnan(source.rates), np.inf, source.rates)  # unknown rates last
        self.order = np.argsort(rates, kind="stable")

    def _cells(self, source, index: int) -> tuple:
        row = source.summary(index)
        rate = Text(pct(row.rate) if not np.isnan(row.rate) else "·",
                    style="red" if row.rate < 0.5 else "yellow" if row.rate < 0.8 else "green")
        groups = str(row.groups) if row.groups >= 0 else "·"
        return (str(row.index), rate, groups, f"{row.characters:,}", " ".join(row.preview.split()))

    def action_order(self) -> None:
        self.worst_first = not self.worst_first
        self._order_of = None
        self._dataset_changed()

    def on_virtual_table_selected(self, event: VirtualTable.Selected) -> None:
        if event.table.id == "data-rows" and len(self.order):
            self.app.open_row(int(self.order[event.row]))

    def row_at_cursor(self) -> int | None:
        """The data-set row under the table's cursor (``None`` without a data set)."""
        table = self.query_one("#data-rows", VirtualTable)
        return int(self.order[table.cursor]) if table.row_count else None
