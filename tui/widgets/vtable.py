"""A virtualised table: only the rows on screen are ever built, so tens of thousands of rows cost nothing to open.

:class:`VirtualTable` is a Line-API widget (``ScrollView`` + ``render_line``): it holds a row count and a function
that returns one row's cells, and draws the visible lines on demand. Opening a 20,000-row report table, jumping to
its end or moving the cursor each touch only the 20–40 rows in view (Textual's ``DataTable`` builds every row up
front: about 0.8 s per 10,000 rows on a small machine).

Keys: ↑/↓, PgUp/PgDn, Home/End move the cursor (:class:`VirtualTable.Highlighted`); Enter selects
(:class:`VirtualTable.Selected`). Mouse: a click moves the cursor, a double click (or a click on the cursor row)
selects; the wheel scrolls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from .steady import QuietScrollbarsOnFocus, SteadyScrolling

Cell = str | Text


@dataclass(frozen=True)
class Column:
    """A column: its title, width in cells (``0``: the rest of the width) and justification."""

    title: str
    width: int = 0
    justify: str = "left"


class VirtualTable(QuietScrollbarsOnFocus, SteadyScrolling, ScrollView, can_focus=True):
    """A table whose rows are produced on demand by ``row(i) -> cells`` (see the module docstring)."""

    DEFAULT_CSS = """
    VirtualTable { height: 1fr; background: $surface; overflow-x: hidden; }
    VirtualTable:focus { background-tint: $foreground 4%; }
    VirtualTable > .vtable--header { text-style: bold; color: $text-accent; background: $panel; }
    VirtualTable > .vtable--cursor { background: $block-cursor-blurred-background; }
    VirtualTable:focus > .vtable--cursor { background: $block-cursor-background; color: $block-cursor-foreground; }
    VirtualTable > .vtable--empty { color: $text-muted; text-style: italic; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"vtable--header", "vtable--cursor", "vtable--empty"}
    BINDINGS: ClassVar[list] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "edge(0)", "First", show=False),
        Binding("end", "edge(1)", "Last", show=False),
        Binding("enter", "select", "Open", show=False),
    ]

    # no automatic repaint: a cursor move redraws the two rows concerned (watch_cursor), not the whole table
    cursor: reactive[int] = reactive(0, init=False, repaint=False)

    class Highlighted(Message):
        """The cursor moved to ``row``."""

        def __init__(self, table: VirtualTable, row: int):
            super().__init__()
            self.table = table
            self.row = row

        @property
        def control(self) -> VirtualTable:
            return self.table

    class Selected(Message):
        """``row`` was chosen (Enter, double click)."""

        def __init__(self, table: VirtualTable, row: int):
            super().__init__()
            self.table = table
            self.row = row

        @property
        def control(self) -> VirtualTable:
            return self.table

    def __init__(self, columns: Sequence[Column], *, empty: str = "nothing to show", name: str | None = None,
                 id: str | None = None, classes: str | None = None):
        super().__init__(name=name, id=id, classes=classes)
        self.columns = list(columns)
        self.empty = empty
        self.row_count = 0
        self._row: Callable[[int], Sequence[Cell]] = lambda index: ()
        self._cache: dict[int, Sequence[Cell]] = {}
        self._lines: dict[tuple[int, int], Strip] = {}  # (row, width) -> the line in its cells' own styles
        self._strips: dict[tuple, Strip] = {}  # (row, cursor?, width, focused?, row style) -> the drawn line

    # -- data --------------------------------------------------------------------------------------------------

    def set_rows(self, count: int, row: Callable[[int], Sequence[Cell]], *, cursor: int = 0,
                 columns: Sequence[Column] | None = None, empty: str | None = None) -> None:
        """Show ``count`` rows produced by ``row(i)``; the cursor goes to ``cursor`` (clamped)."""
        if columns is not None:
            self.columns = list(columns)
        if empty is not None:
            self.empty = empty
        self.row_count = max(0, int(count))
        self._row = row
        self._cache.clear()
        self._lines.clear()
        self._strips.clear()
        self.virtual_size = Size(0, self.row_count + 1)
        self.set_reactive(VirtualTable.cursor, min(max(cursor, 0), max(self.row_count - 1, 0)))
        self._scroll_to_cursor()
        self.refresh()

    def refresh_rows(self) -> None:
        """Rebuild the visible rows (their content changed, not their number)."""
        self._cache.clear()
        self._lines.clear()
        self._strips.clear()
        self.refresh()

    def move_to(self, row: int, *, notify: bool = True) -> None:
        """Put the cursor on ``row`` (clamped) and scroll it into view."""
        if not self.row_count:
            return
        row = min(max(int(row), 0), self.row_count - 1)
        if notify:
            self.cursor = row
        else:
            self.set_reactive(VirtualTable.cursor, row)
            self._scroll_to_cursor()
            self.refresh()

    # -- cursor ------------------------------------------------------------------------------------------------

    @property
    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 2)

    def watch_cursor(self, old: int, new: int) -> None:
        top = int(self.scroll_offset.y)
        self._scroll_to_cursor()
        if int(self.scroll_offset.y) == top:
            # the view did not scroll: only the two rows whose cursor state changed are redrawn
            for row in (old, new):
                self.refresh(Region(0, row - top + 1, self.size.width, 1))
        else:
            self.refresh()
        if self.row_count:
            self.post_message(self.Highlighted(self, new))

    def _scroll_to_cursor(self) -> None:
        visible = max(1, self.scrollable_content_region.height - 1)  # the header line is not scrolled over
        top = int(self.scroll_offset.y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + visible:
            self.scroll_to(y=self.cursor - visible + 1, animate=False, immediate=True)

    def action_cursor(self, step: int) -> None:
        self.move_to(self.cursor + step)

    def action_page(self, direction: int) -> None:
        self.move_to(self.cursor + direction * self._page)

    def action_edge(self, end: int) -> None:
        self.move_to(self.row_count - 1 if end else 0)

    def action_select(self) -> None:
        if self.row_count:
            self.post_message(self.Selected(self, self.cursor))

    def on_click(self, event) -> None:
        if event.y < 1 or not self.row_count:
            return
        row = int(self.scroll_offset.y) + event.y - 1
        if not 0 <= row < self.row_count:
            return
        event.stop()
        again = row == self.cursor
        self.move_to(row)
        if again or getattr(event, "chain", 1) >= 2:
            self.post_message(self.Selected(self, row))

    def on_resize(self, event) -> None:
        # the virtual size does not depend on the width (no horizontal scrolling: rows are cut to fit), so a resize
        # never asks for a second layout pass; a table sized while hidden (no place on screen) keeps its scroll
        if self.scrollable_content_region:
            self._scroll_to_cursor()

    # -- drawing -----------------------------------------------------------------------------------------------

    def _cells(self, index: int) -> Sequence[Cell]:
        cells = self._cache.get(index)
        if cells is None:
            if len(self._cache) > 512:
                self._cache.clear()
            cells = self._cache[index] = self._row(index)
        return cells

    def _sizes(self, width: int) -> list[int]:
        """Column widths: fixed ones as declared, the rest of the line shared by the flexible ones."""
        flexible = [c for c in self.columns if not c.width]
        rest = width - sum(c.width + 1 for c in self.columns if c.width) - len(flexible) - 1
        share, extra = divmod(max(rest, len(flexible)), max(len(flexible), 1))
        sizes, seen = [], 0
        for column in self.columns:
            if column.width:
                sizes.append(column.width)
            else:
                sizes.append(max(1, share + (1 if seen < extra else 0)))
                seen += 1
        return sizes

    def _line(self, cells: Sequence[Cell], width: int) -> Strip:
        """One line of ``width`` cells: each cell after a space, cut (with an ellipsis) or padded to its column's
        width, in the cells' own styles only; the row's style (base, cursor, focus) is laid under it when drawn, so
        a focus or cursor change re-styles the line instead of building it again."""
        segments: list[Segment] = []
        for column, size, cell in zip(self.columns, self._sizes(width), _padded(cells, len(self.columns)),
                                      strict=True):
            segments.append(_SPACE)
            if isinstance(cell, Text) or not (text := str(cell)).isprintable():
                # styled or unusual text (control characters): rich's own truncation and rendering
                piece = cell.copy() if isinstance(cell, Text) else Text(str(cell))
                piece.truncate(size, overflow="ellipsis")
                piece.align(column.justify if column.justify in _JUSTIFY else "left", size)
                # appended to an empty text, so that the piece's own style becomes a span (``Text.render`` drops
                # the style of a text without spans)
                holder = Text(no_wrap=True, end="")
                holder.append_text(piece)
                segments.extend(holder.render(self.app.console, end=""))
            else:
                segments.append(Segment(_fit(text, size, column.justify)))
        return Strip(segments).crop_extend(0, width, None).simplify()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y == 0:
            header = self.get_component_rich_style("vtable--header")
            style = base + header
            return self._line([c.title for c in self.columns], width).apply_style(style)
        if not self.row_count:
            if y == 1:
                style = base + self.get_component_rich_style("vtable--empty")
                segments = list(Text(f" {self.empty}", no_wrap=True, end="").render(self.app.console))
                return Strip(segments).apply_style(style).crop_extend(0, width, style)
            return Strip.blank(width, base)
        index = int(self.scroll_offset.y) + y - 1
        if index >= self.row_count:
            return Strip.blank(width, base)
        on_cursor = index == self.cursor
        key = (index, on_cursor, width, self.has_focus, base)
        strip = self._strips.get(key)
        if strip is None:
            if len(self._strips) > 1024:
                self._strips.clear()
            line = self._lines.get((index, width))
            if line is None:
                if len(self._lines) > 1024:
                    self._lines.clear()
                line = self._lines[index, width] = self._line(self._cells(index), width)
            style = base + self.get_component_rich_style("vtable--cursor") if on_cursor else base
            strip = self._strips[key] = line.apply_style(style)
        return strip


_SPACE = Segment(" ")
_JUSTIFY = ("left", "right", "center")


def _padded(cells: Sequence[Cell], count: int) -> Sequence[Cell]:
    """Exactly ``count`` cells: a row may give fewer cells than there are columns (empty ones are added) or more
    (they are not shown)."""
    return [*cells[:count], *([""] * (count - len(cells)))]


def _fit(text: str, size: int, justify: str) -> str:
    """``text`` cut to ``size`` terminal cells with an ellipsis, or padded to them as ``justify`` says; the same
    as rich's ``Text.truncate(size, overflow="ellipsis")`` then ``Text.align(justify, size)`` for printable text,
    without building a ``Text``."""
    length = cell_len(text)
    if length > size:
        text = set_cell_size(text, size - 1) + "…"
        length = cell_len(text)
    excess = size - length
    if excess <= 0:
        return text
    if justify == "right":
        return " " * excess + text
    if justify == "center":
        left = excess // 2
        return " " * left + text + " " * (excess - left)
    return text + " " * excess
