"""Shared setup of the TUI tests: one Session (tokenizers and vocabulary tables loaded once), a small corpus report
built from real texts, and :func:`settle`, which waits until the app has nothing left to do."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("textual")

SAMPLE = "The café costs 3.50€ 🦙"


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def tui_session():
    from ctkd_inspect_tui.session import Session

    return Session()


@pytest.fixture(scope="session")
def report_texts(corpus):
    """40 short real texts of the offline corpus (the report fixture's rows)."""
    texts = [t for t in corpus if 20 <= len(t) <= 300][:40]
    assert len(texts) == 40
    return texts


@pytest.fixture(scope="session")
def report_path(tmp_path_factory, report_texts, tok):
    """A corpus report: the 40 texts aligned llama3 → gemma2 (span), as Parquet alignment rows."""
    from ctkd_inspect import align
    from ctkd_inspect.columns import write_parquet

    llama, gemma = tok("llama3"), tok("gemma2")
    path = tmp_path_factory.mktemp("report") / "report.parquet"
    write_parquet([align(llama, gemma, text) for text in report_texts], path)
    return path


@pytest.fixture
def make_app(tui_session):
    """``make_app(teacher, student, text, **kwargs)``: the app, sharing the test session's loaded tokenizers."""
    from ctkd_inspect_tui.app import CtkdInspectApp

    def build(teacher="llama3", student="gemma2", text=SAMPLE, **kwargs):
        kwargs.setdefault("session", tui_session)
        return CtkdInspectApp(teacher, student, text, **kwargs)

    return build


def plain(widget, width: int = 200) -> str:
    """What a ``Static`` shows, as plain text (rich renderables rendered without colour)."""
    import io

    from rich.console import Console

    content = widget.content
    if isinstance(content, str):
        return content
    console = Console(file=io.StringIO(), width=width, color_system=None, legacy_windows=False)
    console.print(content)
    return console.file.getvalue()


async def settle(pilot, timeout: float = 120.0) -> None:
    """Wait until the app is idle: no debounce pending, no worker running, nothing in the status line."""
    app = pilot.app
    deadline = time.monotonic() + timeout
    await pilot.pause(0.02)
    quiet = 0
    while time.monotonic() < deadline:
        await pilot.pause(0.03)
        quiet = quiet + 1 if app.is_idle() else 0
        if quiet >= 3:
            await pilot.pause()
            return
    raise AssertionError(f"the app did not settle within {timeout} s: {app.activities.describe()!r}")
