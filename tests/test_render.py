"""The presentation model shared by every front-end."""

from __future__ import annotations

from ctkd_inspect import align
from ctkd_inspect.render import PALETTE_SIZE, group_rows, segments, visible


def test_segments_cover_each_token_once_and_share_colours_across_sides():
    result = align("llama3", "gemma3", "Hi  naïve 🦙\n\t☃x")
    for side in ("teacher", "student"):
        cells = segments(result, side)
        drawn = [k for cell in cells for k in cell.tokens]
        assert drawn == list(range(len(getattr(result, side))))
    colours = {}
    for side in ("teacher", "student"):
        for cell in segments(result, side):
            if cell.group >= 0:
                assert colours.setdefault(cell.group, cell.palette) == cell.palette
                assert 0 <= cell.palette < PALETTE_SIZE
            else:
                assert cell.status == "special" and cell.palette == -1
    # neighbouring groups never share a colour
    assert all(colours[g] != colours[g + 1] for g in range(len(result.groups) - 1))


def test_byte_clusters_are_one_cell():
    result = align("llama3", "gemma2", "a 🦙")
    cells = segments(result, "teacher")
    llama = [c for c in cells if "🦙" in c.text]
    assert len(llama) == 1 and len(llama[0].tokens) == 3 and llama[0].text == " 🦙"


def test_statuses():
    result = align("gemma2", "bert", "a\n\nb")
    statuses = [c.status for c in segments(result, "teacher")]
    assert statuses == ["special", "exact", "unmatched", "exact"]  # BERT has no token for the newlines


# The README's group table for its example (llama3 → gemma2): shape, teacher pieces, student pieces, characters
README_TEXT = "The café costs 3.50€ 🦙 — naïve\tcode: x+=1"
README_TABLE = [
    ("1:1", ["The"], ["The"], 0, 3), ("1:1", [" café"], [" café"], 3, 8), ("1:1", [" costs"], [" costs"], 8, 14),
    ("1:1", [" "], [" "], 14, 15), ("1:1", ["3"], ["3"], 15, 16), ("1:1", ["."], ["."], 16, 17),
    ("1:n", ["50"], ["5", "0"], 17, 19), ("1:1", ["€"], ["€"], 19, 20),
    ("n:m", [" <0xF0><0x9F>", "<0xA6>", "<0x99>"], [" ", "🦙"], 20, 22), ("1:1", [" —"], [" —"], 22, 24),
    ("n:1", [" naï", "ve"], [" naïve"], 24, 30), ("1:n", ["\tcode"], ["\t", "code"], 30, 35),
    ("1:1", [":"], [":"], 35, 36), ("1:1", [" x"], [" x"], 36, 38), ("1:1", ["+="], ["+="], 38, 40),
    ("1:1", ["1"], ["1"], 40, 41),
]


def test_visible_and_group_rows():
    assert visible(" \n\t\x00\x1b") == "␣⏎⇥␀\\x1b"
    rows = group_rows(align("llama3", "gemma2", README_TEXT))
    assert [(r["shape"], r["teacher"], r["student"], r["start"], r["end"]) for r in rows] == README_TABLE
    assert [r["status"] for r in rows] == ["aligned" if shape != "1:1" else "exact" for shape, *_ in README_TABLE]
    assert group_rows(align("llama3", "gemma2", README_TEXT), limit=3) == rows[:3]
    # "naïve" alone: na | ï | ve on both sides (Llama 3's "Ã¯" is the byte-level spelling of ï)
    naive = group_rows(align("llama3", "gemma2", "naïve"), limit=1)
    assert [(r["shape"], r["teacher"], r["student"], r["start"], r["end"]) for r in naive] == [
        ("1:1", ["na"], ["na"], 0, 2)]


def test_diff_figures_are_the_same_rows_in_the_terminal_and_in_html():
    from html import escape

    from rich.console import Console

    from ctkd_inspect import diff
    from ctkd_inspect.html import diff_html
    from ctkd_inspect.render import diff_basis_note, diff_figures
    from ctkd_inspect.rich_view import diff_panel

    a, b = align("llama2", "gemma2", "The café 12"), align("llama3", "gemma2", "The café 12")
    d = diff(a, b)
    rows = diff_figures(d)
    assert [label for label, _ in rows] == ["groups", "agree", "split", "merge", "cross", "boundaries"]
    assert dict(rows)["agree"] == f"{d.agree} of a's {d.groups_a}"
    assert dict(rows)["boundaries"] == (f"precision {d.boundary_precision:.3f}   recall {d.boundary_recall:.3f}   "
                                        f"F1 {d.boundary_f1:.3f}")
    assert diff_basis_note(d).startswith("teacher tokens differ")  # two teachers: teacher tokens matched by span
    assert diff_basis_note(diff(a, align("llama2", "gemma2", "The café 12", engine="mined"))) is None
    console = Console(width=200, color_system=None, record=True)
    console.print(diff_panel(d))
    terminal = console.export_text()
    page = diff_html(a, b, d)
    for label, value in rows:
        assert value in terminal and f'<tr data-figure="{label}"><th>{label}</th><td>{escape(value)}</td></tr>' in page
    assert diff_basis_note(d) in terminal and diff_basis_note(d) in page
