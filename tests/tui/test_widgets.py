"""The app's building blocks on their own: the virtualised table, the option form of a plugin engine, the ribbon
window for long texts, and the progress table behind the status line."""

from __future__ import annotations

import threading
from typing import ClassVar

import pytest
from textual.app import App, ComposeResult

from .conftest import plain

pytestmark = pytest.mark.anyio


class TableApp(App):
    def __init__(self, rows: int):
        super().__init__()
        self.rows = rows
        self.requested: list[int] = []
        self.selected: list[int] = []

    def compose(self) -> ComposeResult:
        from ctkd_inspect_tui.widgets.vtable import Column, VirtualTable

        yield VirtualTable([Column("row", 8, "right"), Column("text")], id="table")

    def on_mount(self) -> None:
        def row(index: int):
            self.requested.append(index)
            return (str(index), f"text of row {index}")

        table = self.query_one("#table")
        table.set_rows(self.rows, row)
        table.focus()

    def on_virtual_table_selected(self, event) -> None:
        self.selected.append(event.row)


def _line(table, y: int) -> str:
    return "".join(segment.text for segment in table.render_line(y))


async def test_virtual_table_builds_only_the_rows_on_screen():
    app = TableApp(50_000)
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        table = app.query_one("#table")
        visible = table.scrollable_content_region.height - 1  # the header line stays on top
        assert "row" in _line(table, 0) and "text" in _line(table, 0)
        assert set(app.requested) <= set(range(visible + 1))
        app.requested.clear()
        await pilot.press("end")
        await pilot.pause()
        assert table.cursor == 49_999
        assert "text of row 49999" in _line(table, visible)
        assert app.requested and min(app.requested) >= 49_999 - visible  # nothing before the last page was built
        await pilot.press("pageup", "up")
        assert table.cursor == 49_999 - table._page - 1
        await pilot.press("home")
        assert table.cursor == 0 and "text of row 0" in _line(table, 1)
        await pilot.press("enter")
        assert app.selected == [0]
        assert await pilot.click("#table", offset=(10, 3))  # the third row on screen: move, then select on a second
        assert table.cursor == 2
        assert await pilot.click("#table", offset=(10, 3))
        assert app.selected == [0, 2]


async def test_virtual_table_says_when_it_is_empty():
    from ctkd_inspect_tui.widgets.vtable import VirtualTable

    app = TableApp(0)
    async with app.run_test(size=(60, 10)) as pilot:
        await pilot.pause()
        table = app.query_one("#table", VirtualTable)
        assert "nothing to show" in _line(table, 1)
        await pilot.press("down", "enter")
        assert table.cursor == 0 and app.selected == []


class _PluginEngine:
    """A third-party engine: the form must come from its declaration alone."""

    from ctkd_inspect.engines.options import EngineOption

    name = "plugin"
    description = "a test engine"
    options: ClassVar[tuple] = (
        EngineOption("strict", bool, False, "Refuse partial groups"),
        EngineOption("metric", str, "lev", "Distance", choices=("lev", "indel")),
        EngineOption("window", int, 8, "Window", minimum=1),
        EngineOption("weights", object, None, "Python only", cli=False),
    )
    requires_signals = frozenset()
    optional_signals = frozenset()


class FormApp(App):
    def compose(self) -> ComposeResult:
        from ctkd_inspect_tui.widgets.form import EngineForm

        yield EngineForm(_PluginEngine, {"window": 3}, id="form")


async def test_option_form_is_generated_from_the_declaration():
    from textual.widgets import Input, Select, Switch

    from ctkd_inspect.engines.options import OptionError

    app = FormApp()
    async with app.run_test(size=(80, 40)) as pilot:
        await pilot.pause()
        form = app.query_one("#form")
        assert [f.option.name for f in form.query("OptionField")] == ["strict", "metric", "window"]  # cli only
        assert isinstance(app.query_one("#input-strict"), Switch)
        assert isinstance(app.query_one("#input-metric"), Select)
        assert isinstance(app.query_one("#input-window"), Input)
        assert app.query_one("#input-window").value == "3"
        assert form.parse() == {"window": 3}  # defaults left alone are not sent
        app.query_one("#input-strict").value = True
        app.query_one("#input-metric").value = "indel"
        app.query_one("#input-window").value = "0"
        with pytest.raises(OptionError):
            form.parse()
        field = app.query_one("#field-window")
        assert field.has_class("-invalid") and plain(field.query_one(".option-error")) == "window must be ≥ 1 (got 0)"
        app.query_one("#input-window").value = ""
        assert form.parse() == {"strict": True, "metric": "indel"}
        assert not field.has_class("-invalid")


def test_ribbon_shows_a_window_around_the_selected_group_of_a_long_text():
    from ctkd_inspect_tui.widgets.ribbon import SELECTED, ribbon_text

    from ctkd_inspect.render import Segment

    cells = [Segment("teacher", (i,), f"t{i}", i, i + 1, i, "exact", i % 6) for i in range(10_000)]
    text = ribbon_text(cells, selected=7000, window=100)
    assert text.plain.startswith("… 6,950 tokens before ") and text.plain.endswith(" … 2,950 tokens after")
    assert "t6950" in text.plain and "t7049" in text.plain and "t6949" not in text.plain
    chosen = [text.plain[s.start:s.end] for s in text.spans if getattr(s.style, "bgcolor", None) == SELECTED.bgcolor]
    assert chosen == ["t7000"]
    short = ribbon_text(cells[:5], selected=None)
    assert short.plain == "t0t1t2t3t4"


def test_progress_table_reports_stages_from_any_thread():
    from ctkd_inspect_tui.activity import Activities

    from ctkd_inspect.progress import reporting, stage

    calls = []
    activities = Activities(lambda: calls.append(threading.get_ident()), interval=3600)
    seen = {}

    def work():
        with reporting(activities), stage("MinED teacher→student", total=200, unit="tokens") as bar:
            bar.advance(50)  # throttled: within the interval, no redraw is asked for
            seen["during"] = activities.describe()

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert seen["during"] == "MinED teacher→student  25% (50/200 tokens)"
    assert not activities.busy and activities.describe() == ""
    assert len(calls) == 2 and set(calls) == {worker.ident}  # start and finish, from the worker's thread
    activities.begin("pair", "loading tokenizers")
    activities.begin("align", "aligning")
    assert activities.describe() == "aligning  (+1 more)"
    activities.end("align")
    activities.end("pair")
    assert not activities.busy


# -- drawing a table row ----------------------------------------------------------------------------------------------


def test_a_plain_cell_is_cut_and_padded_as_rich_would():
    """The fast path for plain cells gives exactly what rich's ``Text.truncate(ellipsis)`` + ``Text.align`` give,
    for narrow and wide characters (CJK, emoji) and every justification, and fills its column exactly."""
    from ctkd_inspect_tui.widgets.vtable import _fit
    from rich.cells import cell_len
    from rich.text import Text

    samples = ["", "a", "abc", "token", "▁caf\u00e9", "日本語のテキスト", "🦙🦙 llama", "x" * 40, "a日b本c", "⇥␣·"]
    for text in samples:
        for size in range(1, 14):
            for justify in ("left", "right", "center"):
                expected = Text(text)
                expected.truncate(size, overflow="ellipsis")
                expected.align(justify, size)
                got = _fit(text, size, justify)
                assert got == expected.plain, (text, size, justify)
                assert cell_len(got) <= size


class StyledCellApp(App):
    def compose(self) -> ComposeResult:
        from ctkd_inspect_tui.widgets.vtable import Column, VirtualTable

        yield VirtualTable([Column("group", 8, "right"), Column("text")], id="table")

    def on_mount(self) -> None:
        from rich.style import Style
        from rich.text import Text

        swatch = Style(color="#ffffff", bgcolor="#1e5e2e")
        self.query_one("#table").set_rows(3, lambda i: (Text(str(i), style=swatch), f"row {i}"))


async def test_a_styled_cell_keeps_its_style_over_its_whole_column():
    """A cell given as a styled ``Text`` (the group swatch) colours its padding too, not only its characters."""
    app = StyledCellApp()
    async with app.run_test(size=(40, 8)) as pilot:
        await pilot.pause()
        table = app.query_one("#table")
        cells = [(character, segment.style) for segment in table.render_line(2) for character in segment.text]
        swatch_cells = cells[1:9]  # the line starts with a space, then the 8 cells of the first column
        assert "".join(c for c, _ in swatch_cells) == "       1"
        assert all(style is not None and style.bgcolor is not None and style.bgcolor.name == "#1e5e2e"
                   for _, style in swatch_cells)
        assert cells[9][1].bgcolor is None or cells[9][1].bgcolor.name != "#1e5e2e"  # the gap after it is not


# -- the steady Textual widgets --------------------------------------------------------------------------------------


class SteadyApp(App):
    def compose(self) -> ComposeResult:
        from ctkd_inspect_tui.widgets.steady import SteadyTree
        from textual.widgets import Tree

        for tree in (SteadyTree("steady", id="steady"), Tree("plain", id="plain")):
            for branch in range(5):
                node = tree.root.add(f"branch {branch}", expand=True)
                for leaf in range(5):
                    node.add_leaf(f"leaf {branch}.{leaf}")
            tree.root.expand()
            yield tree


async def test_a_resize_to_the_same_size_keeps_a_trees_drawn_lines():
    """Textual resends ``Resize`` to every widget of a view shown again; the steady tree keeps its drawn lines (the
    plain ``Tree`` drops them all and asks for a layout pass, which is why it exists), and a real change of size
    still reaches it."""
    from textual import events
    from textual.geometry import Size

    app = SteadyApp()
    async with app.run_test(size=(60, 30)) as pilot:
        await pilot.pause()
        steady, plain_tree = app.query_one("#steady"), app.query_one("#plain")
        dropped = {"steady": 0, "plain": 0}
        for tree in (steady, plain_tree):
            original = tree._invalidate

            def counting(tree=tree, original=original):
                dropped[tree.id] += 1
                original()

            tree._invalidate = counting
        for tree in (steady, plain_tree):
            tree.post_message(events.Resize(tree.size, tree.virtual_size, tree.container_size))  # as on a switch
        await pilot.pause()
        # the first one is news to both: the screen's own Resize (at mount) carried the layout's virtual size,
        # this one the tree's content size
        assert dropped == {"steady": 1, "plain": 1}
        for tree in (steady, plain_tree):
            tree.post_message(events.Resize(tree.size, tree.virtual_size, tree.container_size))
        await pilot.pause()
        assert dropped == {"steady": 1, "plain": 2}  # the same size again: only the plain tree drops its lines
        bigger = Size(steady.size.width, steady.size.height + 3)
        steady.post_message(events.Resize(bigger, steady.virtual_size, steady.container_size))
        await pilot.pause()
        assert dropped["steady"] == 2  # a new size is handled as Textual handles it
