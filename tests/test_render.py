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


def test_visible_and_group_rows():
    assert visible(" \n\t\x00\x1b") == "␣⏎⇥␀\\x1b"
    rows = group_rows(align("llama3", "gemma2", "naïve"), limit=1)
    assert len(rows) == 1 and rows[0]["shape"] in ("1:1", "n:1", "1:n", "n:m")
