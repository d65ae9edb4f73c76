"""Textual widgets without the redundant redraws that each cost a frame of their own on a view switch.

Textual draws at most 60 frames a second, and a redraw requested after a frame was drawn waits for the next one,
17–33 ms later. Showing a view must be one frame; three redraws that draw exactly the cells already there used to
add one or two more:

- **A resize to the same size.** Textual sends a ``Resize`` to every widget of a view each time the view is shown
  again (its widgets are new to the screen's layout map). ``Tree`` and ``OptionList`` answer each one by dropping
  every drawn line (``Tree`` also asks for another layout pass). :class:`SameSizeIgnored` stops a ``Resize`` that
  brings the size already handled before the base class sees it.
- **A layout pass of a scrolling widget.** Textual's ``ScrollView`` compares the layout's virtual size (its own
  area) with its scrolling virtual size (its content), which always differ, so every layout pass that includes
  it updates and repaints its scrollbars. :class:`SteadyScrolling` lets that through only when the widget's size
  or content size changed since the last one.
- **A focus change.** Textual re-sets every style rule of a widget whose focus changed, and setting a scrollbar
  colour repaints the scrollbars whether or not the colour changed. :class:`QuietScrollbarsOnFocus` withdraws that
  request when no scrollbar colour changed.

Each is a mixin placed before the Textual class; any real change goes through as before.
"""

from __future__ import annotations

from textual import events
from textual.geometry import Size
from textual.widgets import OptionList, TextArea, Tree

#: The style rules a scrollbar is drawn with.
SCROLLBAR_RULES = ("scrollbar_color", "scrollbar_color_hover", "scrollbar_color_active", "scrollbar_background",
                   "scrollbar_background_hover", "scrollbar_background_active", "scrollbar_corner_color")


class QuietScrollbarsOnFocus:
    """A focus change repaints the widget's scrollbars only if their colours changed."""

    def watch_has_focus(self, has_focus: bool) -> None:
        bars = [bar for bar in (self._vertical_scrollbar, self._horizontal_scrollbar) if bar is not None]
        pending = [bar._repaint_required for bar in bars]
        colours = [getattr(self.styles, rule) for rule in SCROLLBAR_RULES]
        super().watch_has_focus(has_focus)
        if colours == [getattr(self.styles, rule) for rule in SCROLLBAR_RULES]:
            for bar, was_pending in zip(bars, pending, strict=True):
                bar._repaint_required = was_pending  # the repaint Textual asked for would draw the same cells


class SteadyScrolling:
    """A layout pass updates the scrollbars only when the size or the content size changed since the last one."""

    _laid_out_as: tuple | None = None

    def _size_updated(self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True) -> bool:
        styles = self.styles
        state = (size, container_size, self.virtual_size, styles.gutter.totals, styles.overflow_x,
                 styles.overflow_y, styles.scrollbar_size_vertical, styles.scrollbar_size_horizontal)
        if state == self._laid_out_as:
            return False
        self._laid_out_as = state
        return super()._size_updated(size, virtual_size, container_size, layout)


class SameSizeIgnored:
    """A ``Resize`` to the size (and virtual size) last handled goes no further."""

    _handled_size: tuple[Size, Size] | None = None

    def _on_resize(self, event: events.Resize) -> None:
        size = (event.size, event.virtual_size)
        if size == self._handled_size:
            event.prevent_default()  # the base class's handler (it would drop every drawn line) is not called
            return
        self._handled_size = size


class SteadyTree(QuietScrollbarsOnFocus, SteadyScrolling, SameSizeIgnored, Tree):
    """A ``Tree`` without the redundant redraws (see the module docstring)."""


class SteadyOptionList(QuietScrollbarsOnFocus, SteadyScrolling, SameSizeIgnored, OptionList):
    """An ``OptionList`` without the redundant redraws (see the module docstring)."""


class ResizedOnScreenOnly:
    """A ``Resize`` that arrives while the widget has no place on screen (its view laid out off screen while
    hidden) goes no further: ``TextArea`` rewraps its text to the width of its place on screen, which a hidden widget
    does not have, and would lose its scroll position. Shown, it gets a ``Resize`` of its own."""

    def _on_resize(self, event: events.Resize) -> None:
        if not self.scrollable_content_region:
            event.prevent_default()


class SteadyTextArea(QuietScrollbarsOnFocus, SteadyScrolling, ResizedOnScreenOnly, TextArea):
    """A ``TextArea`` without the redundant redraws (see the module docstring), which keeps its wrapping and scroll
    position while its view is laid out off screen."""
