"""Presentation model: an :class:`~ctkd_inspect.alignment.Alignment` as segments every front-end draws alike.

:func:`segments` is a pure function. Each :class:`Segment` is one cell of a token ribbon: one token, or one byte
cluster (several byte tokens that only together form characters, drawn as one cell showing those characters).
Front-ends (rich in the terminal, Textual, HTML in notebooks) only map ``palette`` and ``status`` to colours,
so a group has the same colour everywhere, and :func:`visible` makes whitespace and control characters visible
the same way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .alignment import Alignment

if TYPE_CHECKING:  # pragma: no cover
    from .diffs import AlignmentDiff

#: Number of distinct group colours; neighbouring groups always differ because ids are consecutive.
PALETTE_SIZE = 6

#: Background colour of each palette index, as ``(base, lighter)``: consecutive cells of one group alternate
#: between the two shades so its tokens stay distinguishable. Text on them is white. The one colour table of every
#: front-end (rich, Textual, HTML), so a group has the same colour everywhere.
GROUP_COLOURS: tuple[tuple[str, str], ...] = (
    ("#1f4e79", "#2e6da4"), ("#7a4a00", "#a36300"), ("#1e5e2e", "#2d8a45"), ("#6b2463", "#923188"),
    ("#5c5c00", "#808000"), ("#0f5c5c", "#178a8a"))

#: ``(foreground, background)`` of cells coloured by status rather than by group: special tokens, tokens without a
#: partner, and (in a diff view) groups that agree with the other alignment.
STATUS_COLOURS: dict[str, tuple[str, str]] = {
    "special": ("#9e9e9e", "#303030"), "unmatched": ("#ffffff", "#a00000"), "agreeing": ("#b0b0b0", "#2a2a2a")}

# Whitespace and control characters drawn visibly (what the token really contains stays in the data).
_VISIBLE = {" ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍", "\x00": "␀", "\u00a0": "⍽", "\u200b": "⟨ZWSP⟩",
            "\u200d": "⟨ZWJ⟩", "\ufeff": "⟨BOM⟩"}


def visible(text: str) -> str:
    """Text with whitespace and control characters made visible (``␣ ⏎ ⇥ ␀``, others as ``\\xNN``).

    >>> visible(" a\\tb\\n")
    '␣a⇥b⏎'
    """
    out = []
    for ch in text:
        if ch in _VISIBLE:
            out.append(_VISIBLE[ch])
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True)
class Segment:
    """One ribbon cell.

    Attributes:
        side: ``teacher`` or ``student``.
        tokens: the token indices drawn in this cell (several for a byte cluster).
        text: the readable text of the cell (a byte cluster shows the characters its bytes form).
        start, end: the characters the cell covers in the original text.
        group: the group index, or -1 for special tokens.
        status: ``exact`` (exact 1:1 group), ``aligned`` (any other group with partners), ``unmatched``
            (a group with no partner) or ``special``.
        palette: colour index in ``range(PALETTE_SIZE)`` (``group % PALETTE_SIZE``), -1 for special tokens.
        disagree: in a diff view (:func:`diff_segments`), the cell's group does not agree with the other
            alignment; always False in a plain view.
    """

    side: str
    tokens: tuple[int, ...]
    text: str
    start: int
    end: int
    group: int
    status: str
    palette: int
    disagree: bool = False


def segments(alignment: Alignment, side: str) -> list[Segment]:
    """The ribbon of one side (``"teacher"`` or ``"student"``), in token order."""
    if side not in ("teacher", "student"):
        raise ValueError(f"side must be 'teacher' or 'student', not {side!r}")
    tokens = alignment.teacher if side == "teacher" else alignment.student
    owner = alignment.group_of(side).tolist()
    exact = alignment.exact_mask().tolist()
    partner_sizes = (alignment.table.student_sizes if side == "teacher" else alignment.table.teacher_sizes).tolist()
    cluster_at = {first: (last, text) for first, last, text in tokens.clusters}
    starts, ends = tokens.starts.tolist(), tokens.ends.tolist()

    def status(group: int) -> str:
        if group < 0:
            return "special"
        if partner_sizes[group] == 0:
            return "unmatched"
        return "exact" if exact[group] else "aligned"

    out = []
    index = 0
    while index < len(tokens):
        group = owner[index]
        last, text = index, tokens.pieces[index]
        if index in cluster_at:
            cluster_last, cluster_text = cluster_at[index]
            # draw a byte cluster as one cell only when its tokens share a group (they always do under the
            # span engine; a DTW engine may split them)
            if all(owner[k] == group for k in range(index, cluster_last + 1)):
                last, text = cluster_last, cluster_text
        members = tuple(range(index, last + 1))
        out.append(Segment(side, members, text, min(starts[k] for k in members), max(ends[k] for k in members),
                           group, status(group), group % PALETTE_SIZE if group >= 0 else -1))
        index = last + 1
    return out


def group_rows(alignment: Alignment, limit: int | None = None) -> list[dict]:
    """Rows for a group table: index, shape, both sides' readable pieces, span, status, engine extras."""
    rows = []
    spans = alignment.group_spans().tolist()
    exact = alignment.exact_mask().tolist()
    t, s = alignment.teacher, alignment.student
    for g, group in enumerate(alignment.groups):
        if limit is not None and g >= limit:
            break
        status = "unmatched" if not (group.teacher and group.student) else ("exact" if exact[g] else "aligned")
        rows.append({"group": g, "shape": group.shape, "teacher": [t.pieces[i] for i in group.teacher],
                     "student": [s.pieces[j] for j in group.student], "start": spans[g][0], "end": spans[g][1],
                     "status": status, **group.extra})
    return rows


def diff_segments(alignment: Alignment, diff: AlignmentDiff, which: str, side: str) -> list[Segment]:
    """The ribbon of one side of one alignment of a diff, with ``disagree`` set on the cells of every group that
    does not agree with the other alignment, so every front-end highlights the same groups.

    Args:
        alignment: the alignment ``which`` names (``diff(a, b)``'s ``a`` or ``b``).
        diff: the :class:`~ctkd_inspect.diffs.AlignmentDiff` of the two.
        which: ``"a"`` or ``"b"``.
        side: ``"teacher"`` or ``"student"``.

    Raises:
        ValueError: ``which`` or ``side`` is not one of the names above, or the alignment has fewer groups than the
            diff says (it is not the one ``which`` names).
    """
    if which not in ("a", "b"):
        raise ValueError(f"which must be 'a' or 'b', not {which!r}")
    expected = diff.groups_a if which == "a" else diff.groups_b
    if len(alignment.table) != expected:
        raise ValueError(f"the alignment has {len(alignment.table)} groups, but {which} of the diff has {expected}")
    flagged = set(diff.disagreeing(which))
    return [replace(cell, disagree=True) if cell.group in flagged else cell for cell in segments(alignment, side)]


def diff_rows(diff: AlignmentDiff, limit: int | None = None) -> list[dict]:
    """Rows for a table of disagreeing groups, those of ``a`` then those of ``b`` (at most ``limit`` rows):
    ``which``, ``group``, ``kind``, ``shape``, both sides' readable pieces, the character span and the groups of
    the other alignment that share a token with it."""
    rows = []
    for record in (*diff.disagreeing_a, *diff.disagreeing_b):
        if limit is not None and len(rows) >= limit:
            break
        rows.append({"which": record.which, "group": record.group, "kind": record.kind, "shape": record.shape,
                     "teacher": [piece for _, piece, _, _ in record.teacher],
                     "student": [piece for _, piece, _, _ in record.student], "start": record.start,
                     "end": record.end, "related": list(record.related)})
    return rows


def diff_figures(diff: AlignmentDiff) -> list[tuple[str, str]]:
    """The counts and boundary figures of a diff as ``(label, value)`` rows, the same in every front-end."""
    return [
        ("groups", f"a {diff.groups_a}   b {diff.groups_b}"),
        ("agree", f"{diff.agree} of a's {diff.groups_a}"),
        ("split", f"{diff.split}   (a group of a = two or more groups of b)"),
        ("merge", f"{diff.merge}   (a group of b = two or more groups of a)"),
        ("cross", f"{diff.cross} in a, {diff.cross_b} in b"),
        ("boundaries", f"precision {diff.boundary_precision:.3f}   recall {diff.boundary_recall:.3f}   "
                       f"F1 {diff.boundary_f1:.3f}"),
    ]


def diff_basis_note(diff: AlignmentDiff) -> str | None:
    """A sentence when a side's tokens are matched by span and bytes (two tokenizers on that side), else ``None``."""
    offsets = [side for side, basis in diff.basis.items() if basis == "offset"]
    if not offsets:
        return None
    return f"{' and '.join(offsets)} tokens differ: matched by span and bytes, boundaries by character offset"
