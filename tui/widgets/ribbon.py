"""Token ribbons: both tokenizations of an alignment as rows of coloured cells, from the shared presentation model.

The cells are :func:`ctkd_inspect.render.segments` (or :func:`~ctkd_inspect.render.diff_segments` in a diff); the
colours are :data:`ctkd_inspect.render.GROUP_COLOURS` and :data:`~ctkd_inspect.render.STATUS_COLOURS`, the table
the command line and the notebook use, so a group has the same colour everywhere. Explicit foreground and
background colours keep the ribbons readable in light and dark themes alike.

Non-1:1 groups are highlighted (bold, underlined), exact 1:1 groups are plain; the selected group is drawn in
black on yellow. Every cell carries its group in the style's metadata, so a click selects the group.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.style import Style
from rich.text import Text
from textual.message import Message
from textual.widgets import Static

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


def cell_style(segment: Segment, shade: int, *, selected: bool = False, diff: bool = False) -> Style:
    """The style of one cell (``shade`` alternates between neighbouring cells of one group)."""
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
    return style + Style(meta={"group": segment.group})


def ribbon_text(cells: Sequence[Segment], *, selected: int | None = None, diff: bool = False,
                window: int = WINDOW) -> Text:
    """One side's cells as a rich ``Text`` (see the module docstring); at most ``window`` cells around the first
    cell of the selected group, with the number of cells left out at each end."""
    text = Text(no_wrap=False, overflow="fold", end="")
    first, last = 0, len(cells)
    if len(cells) > window:
        anchor = next((k for k, cell in enumerate(cells) if cell.group == selected), 0)
        first = max(0, min(anchor - window // 2, len(cells) - window))
        last = first + window
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


class Ribbon(Static):
    """One ribbon; clicking a cell posts :class:`Ribbon.GroupClicked`."""

    DEFAULT_CSS = """
    Ribbon { height: auto; }
    """

    class GroupClicked(Message):
        """A cell of ``group`` was clicked."""

        def __init__(self, ribbon: Ribbon, group: int):
            super().__init__()
            self.ribbon = ribbon
            self.group = group

    text: Text = Text()

    def show(self, cells: Sequence[Segment], *, selected: int | None = None, diff: bool = False) -> None:
        """Draw ``cells`` (kept as :attr:`text`, the rich ``Text`` shown)."""
        self.set_text(ribbon_text(cells, selected=selected, diff=diff))

    def set_text(self, text: Text) -> None:
        self.text = text
        self.update(text)

    def on_click(self, event) -> None:
        group = event.style.meta.get("group") if event.style is not None else None
        if isinstance(group, int) and group >= 0:
            event.stop()
            self.post_message(self.GroupClicked(self, group))
