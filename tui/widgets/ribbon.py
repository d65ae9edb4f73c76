"""Token ribbons: both tokenizations of an alignment as rows of coloured cells, from the shared presentation model.

The cells are :func:`ctkd_inspect.render.segments` (or :func:`~ctkd_inspect.render.diff_segments` in a diff); the
colours are :data:`ctkd_inspect.render.GROUP_COLOURS` and :data:`~ctkd_inspect.render.STATUS_COLOURS`, the table
the command line and the notebook use, so a group has the same colour everywhere. Explicit foreground and
background colours keep the ribbons readable in light and dark themes alike.

Non-1:1 groups are highlighted (bold, underlined), exact 1:1 groups are plain; the selected group is drawn in
black on yellow. A click on a cell selects its group.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.segment import Segment as RichSegment
from rich.style import Style
from rich.text import Text
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from ctkd_inspect.render import GROUP_COLOURS, STATUS_COLOURS, Segment, visible

SELECTED = Style(color="#000000", bgcolor="#ffd75f", bold=True)
SPECIAL = Style(color=STATUS_COLOURS["special"][0], bgcolor=STATUS_COLOURS["special"][1], italic=True)
UNMATCHED = Style(color=STATUS_COLOURS["unmatched"][0], bgcolor=STATUS_COLOURS["unmatched"][1], bold=True)
AGREEING = Style(color=STATUS_COLOURS["agreeing"][0], bgcolor=STATUS_COLOURS["agreeing"][1])
#: A ribbon longer than this many cells shows a window around the selected group (long texts stay responsive).
WINDOW = 1500


def cell_label(segment: Segment) -> str:
    """What a cell shows: the text made visible, ``∅`` for an empty token, ``×n`` for a byte cluster of n tokens."""
    label = visible(segment.text) or "∅"
    if len(segment.tokens) > 1:
        label += f"×{len(segment.tokens)}"
    return label


def cell_style(segment: Segment, shade: int, *, selected: bool = False, diff: bool = False,
               meta: bool = True) -> Style:
    """The style of one cell (``shade`` alternates between neighbouring cells of one group); ``meta`` adds the
    group to the style's metadata."""
    if selected and segment.group >= 0:
        style = SELECTED
    elif segment.status == "special":
        style = SPECIAL
    elif diff and not segment.disagree:
        style = AGREEING
    elif segment.status == "unmatched":
        style = UNMATCHED + Style(underline=diff)
    else:
        highlight = diff or segment.status != "exact"
        style = Style(color="#ffffff", bgcolor=GROUP_COLOURS[segment.palette][shade], bold=highlight,
                      underline=highlight)
    return style + Style(meta={"group": segment.group}) if meta else style


def ribbon_text(cells: Sequence[Segment], *, selected: int | None = None, diff: bool = False,
                window: int = WINDOW) -> Text:
    """One side's cells as a rich ``Text`` (see the module docstring); at most ``window`` cells around the first
    cell of the selected group, with the number of cells left out at each end."""
    text = Text(no_wrap=False, overflow="fold", end="")
    first, last = _window(cells, selected, window)
    if first:
        text.append(f"… {first:,} tokens before ", style="dim italic")
    previous_group, shade = None, 0
    for segment in cells[first:last]:
        shade = shade ^ 1 if segment.group == previous_group else 0
        previous_group = segment.group
        text.append(cell_label(segment), cell_style(segment, shade, selected=segment.group == selected, diff=diff))
    if last < len(cells):
        text.append(f" … {len(cells) - last:,} tokens after", style="dim italic")
    return text


def _window(cells: Sequence[Segment], selected: int | None, window: int) -> tuple[int, int]:
    """The cells shown: all of them, or ``window`` cells around the first cell of the selected group."""
    if len(cells) <= window:
        return 0, len(cells)
    anchor = next((k for k, cell in enumerate(cells) if cell.group == selected), 0)
    first = max(0, min(anchor - window // 2, len(cells) - window))
    return first, first + window


class Ribbon(Widget):
    """One ribbon, drawn line by line (Textual's Line API).

    The cells are laid out into lines once per alignment and width; moving the selection to another group only
    redraws the lines that hold the old or the new group's cells, so moving through the groups of a long text costs
    a few lines, not the whole ribbon. A click on a cell posts :class:`Ribbon.GroupClicked`. :attr:`text` gives the
    same ribbon as a rich ``Text`` (:func:`ribbon_text`).
    """

    DEFAULT_CSS = """
    Ribbon { height: auto; }
    """

    class GroupClicked(Message):
        """A cell of ``group`` was clicked."""

        def __init__(self, ribbon: Ribbon, group: int):
            super().__init__()
            self.ribbon = ribbon
            self.group = group

    def __init__(self, *, window: int = WINDOW, name: str | None = None, id: str | None = None,
                 classes: str | None = None):
        super().__init__(name=name, id=id, classes=classes)
        self.window = window
        self.which_side: tuple[str, str] | None = None  # (alignment, side) in a diff view
        self._cells: Sequence[Segment] = ()
        self._selected: int | None = None
        self._diff = False
        self._shown = (0, 0)  # the window of cells laid out
        self._layout_width: int | None = None
        self._lines: list[list[tuple[int, str, int]]] = []  # per line: (x, text, cell index or -1)
        self._group_lines: dict[int, set[int]] = {}
        self._shades: dict[int, int] = {}
        self._strips: dict[int, Strip] = {}

    @property
    def cells(self) -> Sequence[Segment]:
        """The cells shown (as given to :meth:`show`)."""
        return self._cells

    @property
    def text(self) -> Text:
        """The ribbon as a rich ``Text`` (what is drawn, without the line breaks)."""
        return ribbon_text(self._cells, selected=self._selected, diff=self._diff, window=self.window)

    def show(self, cells: Sequence[Segment], *, selected: int | None = None, diff: bool = False) -> None:
        """Draw ``cells`` with the cells of group ``selected`` highlighted (``diff``: the diff view's colours)."""
        previous = self._selected
        same = cells is self._cells and diff == self._diff
        self._cells, self._selected, self._diff = cells, selected, diff
        if same and _window(cells, selected, self.window) == self._shown:
            if previous != selected:
                self._restyle({previous, selected})
            return
        self._layout_width = None
        self._strips.clear()
        self.refresh(layout=True)

    def clear(self) -> None:
        self.show((), selected=None)

    # -- layout ------------------------------------------------------------------------------------------------

    def _ensure_layout(self, width: int) -> None:
        if width == self._layout_width or width <= 0:
            return
        cells = self._cells
        first, last = _window(cells, self._selected, self.window)
        self._shown = (first, last)
        lines: list[list[tuple[int, str, int]]] = [[]]
        x = 0

        def place(text: str, index: int) -> None:
            nonlocal x
            for part in _fold(text, width):
                size = cell_len(part)
                if x + size > width and x:
                    lines.append([])
                    x = 0
                lines[-1].append((x, part, index))
                x += size

        if first:
            place(f"… {first:,} tokens before ", -1)
        previous, shade = None, 0
        self._shades, self._group_lines = {}, {}
        for index in range(first, last):
            cell = cells[index]
            shade = shade ^ 1 if cell.group == previous else 0
            previous = cell.group
            self._shades[index] = shade
            before = len(lines)
            place(cell_label(cell), index)
            self._group_lines.setdefault(cell.group, set()).update(range(before - 1, len(lines)))
        if last < len(cells):
            place(f" … {len(cells) - last:,} tokens after", -1)
        self._lines = lines if lines[0] else []
        self._layout_width = width
        self._strips.clear()

    def get_content_height(self, container, viewport, width: int) -> int:
        self._ensure_layout(width)
        return len(self._lines)

    def _restyle(self, groups: set) -> None:
        lines = set()
        for group in groups:
            lines |= self._group_lines.get(group, set())
        for y in lines:
            self._strips.pop(y, None)
            self.refresh(Region(0, y, self.size.width, 1))

    # -- drawing -----------------------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        self._ensure_layout(width)
        base = self.rich_style
        if y >= len(self._lines):
            return Strip.blank(width, base)
        strip = self._strips.get(y)
        if strip is None:
            segments = []
            for _x, text, index in self._lines[y]:
                if index < 0:
                    style = base + _NOTE
                else:
                    cell = self._cells[index]
                    style = cell_style(cell, self._shades[index], selected=cell.group == self._selected,
                                       diff=self._diff, meta=False)
                segments.append(RichSegment(text, style))
            strip = self._strips[y] = Strip(segments).extend_cell_length(width, base)
        return strip

    def on_click(self, event) -> None:
        if not 0 <= event.y < len(self._lines):
            return
        for x, text, index in self._lines[event.y]:
            if x <= event.x < x + cell_len(text) and index >= 0:
                group = self._cells[index].group
                if group >= 0:
                    event.stop()
                    self.post_message(self.GroupClicked(self, group))
                return


_NOTE = Style(dim=True, italic=True)


def _fold(text: str, width: int) -> list[str]:
    """``text`` cut into pieces of at most ``width`` cells (a label longer than the line)."""
    if cell_len(text) <= width:
        return [text]
    parts, current = [], ""
    for character in text:
        if current and cell_len(current + character) > width:
            parts.append(current)
            current = ""
        current += character
    return [*parts, current] if current else parts
