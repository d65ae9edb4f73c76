"""Snapshot tests of the main screens (pytest-textual-snapshot), from the real offline tokenizers.

Each test settles the app (no worker running, no spinner), stops cursor blinking, and compares an SVG screenshot
at a fixed terminal size with the reviewed one in ``__snapshots__/``. After a deliberate change to a screen, look
at the report pytest writes (``snapshot_report.html``) and accept with ``--snapshot-update``.
"""

from __future__ import annotations

import pytest

from .conftest import settle

pytest.importorskip("pytest_textual_snapshot")


def _steady(app) -> None:
    """No blinking cursors, no toasts: a screenshot must not depend on when it is taken."""
    from textual.widgets import Input, TextArea

    for widget in app.screen.query("Input, TextArea"):
        if isinstance(widget, (Input, TextArea)):
            widget.cursor_blink = False
    app.clear_notifications()  # toasts time out: the message stays on the screen itself


def _before(*keys, then=None):
    async def run_before(pilot) -> None:
        await settle(pilot)
        if keys:
            await pilot.press(*keys)
            await settle(pilot)
        if then is not None:
            await then(pilot)
            await settle(pilot)
        _steady(pilot.app)

    return run_before


def test_alignment_screen(snap_compare, make_app):
    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=_before("]", "]"))


def test_alignment_screen_80x24(snap_compare, make_app):
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=_before("]"))


def test_alignment_screen_light_theme(snap_compare, make_app):
    assert snap_compare(make_app(theme="light"), terminal_size=(100, 30), run_before=_before("]"))


def test_engines_screen(snap_compare, make_app):
    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=_before("2", "down"))


def test_diff_screen(snap_compare, make_app):
    async def compare(pilot):
        pilot.app.screen.query_one("#diff-engine").value = "mined"

    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=_before("3", then=compare))


def test_metrics_screen_with_a_report(snap_compare, make_app, report_path):
    assert snap_compare(make_app(report=str(report_path)), terminal_size=(100, 30), run_before=_before("4"))


def test_failures_screen(snap_compare, make_app):
    async def open_kind(pilot):
        tree = pilot.app.screen.query_one("#failure-tree")
        kind = tree.root.children[0].children[0]
        kind.expand()
        await pilot.pause()
        tree.move_cursor(kind.children[0])

    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=_before("5", then=open_kind))


def test_vocabulary_screen(snap_compare, make_app):
    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=_before("6", *"Ġthe"))


def test_help_screen(snap_compare, make_app):
    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=_before("question_mark"))


def test_unknown_tokenizer(snap_compare, make_app):
    assert snap_compare(make_app("llam3", "gemma2"), terminal_size=(100, 30), run_before=_before())


def test_too_small_terminal(snap_compare, make_app):
    assert snap_compare(make_app(), terminal_size=(60, 18), run_before=_before())
