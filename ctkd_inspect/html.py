"""HTML views of alignments, diffs, vocabulary mappings and corpus summaries, for notebooks and reports.

Pure functions that return HTML strings (the shape of tokenizers' ``EncodingVisualizer``): the objects'
``_repr_html_`` methods, the notebook widgets and the corpus report all call them, so a notebook, a widget and a
saved report show the same thing. Colours come from the presentation model (:mod:`ctkd_inspect.render`:
``GROUP_COLOURS``, ``STATUS_COLOURS``, segments with group, status and palette index), so a group has the same
colour here as in the terminal and the TUI.

What a page gets:

- **Token ribbons**: every token (or byte cluster: several byte tokens that only together form characters) is
  exactly one ``<span class="tok">``; no other element of these views is a ``<span>``. Each carries a ``title``
  tooltip (side, token index, vocabulary id, ``span start–end``, the bytes in hex, the group with its shape and
  status) and data attributes for tools and tests: ``data-side``, ``data-tokens`` (token indices, space
  separated), ``data-ids``, ``data-start``, ``data-end``, ``data-bytes`` (hex, no separator), ``data-group`` (-1 for
  special tokens), ``data-shape``, ``data-status`` (``exact``, ``aligned``, ``unmatched``, ``special``),
  ``data-palette`` and, in a diff, ``data-disagree``. Whitespace and control characters are drawn visibly
  (``␣ ⏎ ⇥``, :func:`ctkd_inspect.render.visible`).
- **Self-contained markup**: colours are inline ``style`` attributes, the little layout CSS is an inline
  ``<style>`` block scoped to ``.ctkd``; no script, no font, no image or stylesheet is fetched from anywhere (no
  ``http://`` or ``https://`` reference), so a page works offline and in a sanitised output. Every piece of text
  (tokens, texts, names) is escaped.

Nothing here imports a UI toolkit.
"""

from __future__ import annotations

import html as _html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .render import (
    GROUP_COLOURS,
    STATUS_COLOURS,
    Segment,
    diff_basis_note,
    diff_figures,
    diff_rows,
    diff_segments,
    group_rows,
    segments,
    visible,
)

if TYPE_CHECKING:  # pragma: no cover
    from .alignment import Alignment
    from .diffs import AlignmentDiff, VocabMappingDiff
    from .vocab import VocabMapping, Vocabulary

__all__ = ["STYLE", "alignment_html", "corpus_summary_html", "diff_html", "diff_summary_html", "document",
           "failure_summary_html", "group_table_html", "histogram", "lookup_html", "metrics_html", "ribbon_html",
           "vocab_diff_html", "vocab_mapping_html"]

#: The cells a ribbon shows by default; a longer side ends with a note (the JSON has everything).
MAX_CELLS = 2000

_MONO = 'ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", "Liberation Mono", monospace'

#: Layout CSS of every view, scoped to ``.ctkd`` so it cannot restyle the rest of a notebook. Colours are not here
#: but inline on each element, so a view keeps its colours where ``<style>`` is stripped.
STYLE = f"""<style>
.ctkd {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; font-size: 13px;
        line-height: 1.45; max-width: 100%; }}
.ctkd .ctkd-head {{ margin: 6px 0 2px 0; }}
.ctkd .ctkd-dim {{ opacity: 0.7; }}
.ctkd .ctkd-ribbon {{ font-family: {_MONO}; line-height: 2.1; white-space: normal; overflow-wrap: anywhere;
        margin: 0 0 4px 0; }}
.ctkd .tok {{ display: inline-block; padding: 0 3px; margin: 1px 0; border-radius: 3px; white-space: pre;
        line-height: 1.5; cursor: default; }}
.ctkd .tok.grp-start {{ margin-left: 5px; }}
.ctkd .tok:hover {{ outline: 2px solid #ffd166; outline-offset: 0; }}
.ctkd table {{ border-collapse: collapse; margin: 6px 0; }}
.ctkd th, .ctkd td {{ padding: 2px 8px; text-align: left; vertical-align: top; border-bottom: 1px solid
        rgba(127, 127, 127, 0.25); }}
.ctkd td.num, .ctkd th.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.ctkd code {{ font-family: {_MONO}; background: rgba(127, 127, 127, 0.14); border-radius: 3px; padding: 0 3px;
        white-space: pre; }}
.ctkd .ctkd-legend {{ font-size: 12px; opacity: 0.8; margin: 4px 0 8px 0; }}
.ctkd .ctkd-legend kbd {{ font-family: {_MONO}; border-radius: 3px; padding: 0 4px; font-size: 11px; }}
.ctkd .ctkd-bar {{ display: inline-block; height: 10px; background: #2e6da4; vertical-align: middle; }}
.ctkd h4 {{ margin: 10px 0 4px 0; font-size: 14px; }}
.ctkd details summary {{ cursor: pointer; }}
</style>"""

_UNDERLINE_NOT_ONE_TO_ONE = "box-shadow: inset 0 -3px 0 #ffd166"  # non-exact groups with partners
_UNDERLINE_DISAGREE = "box-shadow: inset 0 -3px 0 #ff4d4d"


def _expect(value: Any, kind: type | tuple[type, ...], name: str, what: str) -> None:
    """Refuse an argument of the wrong type with a message naming it (the public API's contract)."""
    from .errors import InputTypeError

    if not isinstance(value, kind):
        raise InputTypeError(f"{name} must be {what}, not {type(value).__name__}")


def _expect_alignment(value: Any, name: str = "alignment") -> None:
    from .alignment import Alignment

    _expect(value, Alignment, name, "an Alignment (from ctkd_inspect.align)")


def _expect_limit(value: Any, name: str) -> None:
    """``None`` or an int ≥ 0."""
    from .errors import InputError, InputTypeError

    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputTypeError(f"{name} must be an int ≥ 0 or None, not {type(value).__name__}")
    if value < 0:
        raise InputError(f"{name} must be ≥ 0 or None, got {value}")


def _expect_side(side: Any) -> None:
    from .errors import InputError

    if side not in ("teacher", "student"):
        raise InputError(f"side must be 'teacher' or 'student', not {side!r}")


def _summary_data(summary: Any, name: str = "summary") -> dict:
    """A summary object (``to_dict()``) or a mapping, as a dict."""
    from .errors import InputTypeError

    if hasattr(summary, "to_dict") and callable(summary.to_dict):
        return summary.to_dict()
    if isinstance(summary, Mapping):
        return dict(summary)
    raise InputTypeError(f"{name} must be a summary object or a dict, not {type(summary).__name__}")


def _e(value: Any) -> str:
    """Escape any value for HTML text and attribute values."""
    return _html.escape(str(value), quote=True)


def _pct(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1%}"


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _wrap(body: str, view: str, **data: Any) -> str:
    attributes = "".join(f' data-{name.replace("_", "-")}="{_e(value)}"' for name, value in data.items())
    return f'{STYLE}<div class="ctkd ctkd-{view}"{attributes}>{body}</div>'


def document(body: str, title: str = "ctkd-inspect") -> str:
    """A complete, self-contained HTML page around a view (for saving a view or a report to a file).

    Raises:
        InputTypeError: ``body`` or ``title`` is not a string.
    """
    _expect(body, str, "body", "an HTML string")
    _expect(title, str, "title", "a string")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title></head>'
            f"<body>{body}</body></html>\n")


# ---------------------------------------------------------------------------------------------------------------
# one alignment


def _cell_style(cell: Segment, shade: int, diff_view: bool) -> str:
    if cell.status == "special":
        foreground, background = STATUS_COLOURS["special"]
        return f"color:{foreground};background:{background};font-style:italic"
    if diff_view and not cell.disagree:
        foreground, background = STATUS_COLOURS["agreeing"]
        return f"color:{foreground};background:{background}"
    if cell.status == "unmatched":
        foreground, background = STATUS_COLOURS["unmatched"]
        style = f"color:{foreground};background:{background};font-weight:bold"
    else:
        style = f"color:#ffffff;background:{GROUP_COLOURS[cell.palette][shade]}"
        if cell.status == "exact" or diff_view:
            style += ";font-weight:bold"
    if diff_view:
        style += ";" + _UNDERLINE_DISAGREE
    elif cell.status == "aligned":
        style += ";" + _UNDERLINE_NOT_ONE_TO_ONE
    return style


def _cell_title(alignment: Alignment, side: str, cell: Segment, shape: str, raw: list[bytes]) -> str:
    tokens = alignment.teacher if side == "teacher" else alignment.student
    ids = [int(tokens.ids[k]) for k in cell.tokens]
    data = b"".join(raw[k] for k in cell.tokens)
    if len(cell.tokens) == 1:
        first = f"{side} token {cell.tokens[0]} · id {ids[0]}"
    else:
        first = (f"{side} tokens {cell.tokens[0]}–{cell.tokens[-1]} (one byte cluster) · "
                 + ", ".join(f"id {i}" for i in ids))
    lines = [first, f"span {cell.start}–{cell.end} · {visible(alignment.text[cell.start:cell.end]) or '(empty)'}",
             f"bytes {data.hex(' ') or '(none)'}"]
    if cell.group < 0:
        lines.append("group none (special token)")
    else:
        lines.append(f"group {cell.group} · {shape} · {cell.status}" + (" · disagrees" if cell.disagree else ""))
    return "\n".join(lines)


def _ribbon(alignment: Alignment, side: str, cells: Sequence[Segment], diff_view: bool, max_cells: int | None
            ) -> str:
    tokens = alignment.teacher if side == "teacher" else alignment.student
    raw = tokens.token_bytes()
    shapes = alignment.shapes()
    limit = len(cells) if max_cells is None else max(0, max_cells)
    parts = []
    previous_group, shade = None, 0
    for position, cell in enumerate(cells[:limit]):
        same_group = cell.group == previous_group and cell.group >= 0
        shade = shade ^ 1 if same_group else 0
        previous_group = cell.group
        shape = shapes[cell.group] if cell.group >= 0 else ""
        label = visible(cell.text) or "∅"
        if len(cell.tokens) > 1:
            label += f"×{len(cell.tokens)}"
        classes = ["tok", f"tok-{cell.status}"]
        if position and not same_group:
            classes.append("grp-start")
        if cell.disagree:
            classes.append("tok-disagree")
        data = b"".join(raw[k] for k in cell.tokens)
        attributes = {
            "class": " ".join(classes), "style": _cell_style(cell, shade, diff_view),
            "title": _cell_title(alignment, side, cell, shape, raw), "data-side": side,
            "data-tokens": " ".join(map(str, cell.tokens)),
            "data-ids": " ".join(str(int(tokens.ids[k])) for k in cell.tokens),
            "data-start": cell.start, "data-end": cell.end, "data-bytes": data.hex(), "data-group": cell.group,
            "data-shape": shape, "data-status": cell.status, "data-palette": cell.palette,
        }
        if diff_view:
            attributes["data-disagree"] = "true" if cell.disagree else "false"
        parts.append("<span " + " ".join(f'{name}="{_e(value)}"' for name, value in attributes.items()) + ">"
                     + _e(label) + "</span>")
    more = len(cells) - limit
    if more > 0:
        parts.append(f' <i class="ctkd-dim">… {more:,} more cells (pass max_cells=None to show all)</i>')
    return f'<div class="ctkd-ribbon" data-side="{side}">{"".join(parts)}</div>'


def ribbon_html(alignment: Alignment, side: str, *, max_cells: int | None = MAX_CELLS) -> str:
    """One side's ribbon (``side`` is ``"teacher"`` or ``"student"``): one ``<span class="tok">`` per cell, in
    token order, at most ``max_cells`` of them (``None``: all), without the page's ``<style>`` block.

    Raises:
        InputError: ``side`` is neither ``teacher`` nor ``student``, ``max_cells`` is negative; an
            :class:`InputTypeError` for an argument of the wrong type.
    """
    _expect_alignment(alignment)
    _expect_side(side)
    _expect_limit(max_cells, "max_cells")
    return _ribbon(alignment, side, segments(alignment, side), False, max_cells)


def _side_head(alignment: Alignment, side: str, label: str | None = None) -> str:
    tokens = alignment.teacher if side == "teacher" else alignment.student
    return (f'<div class="ctkd-head"><i class="ctkd-dim">{_e(label or side)}</i> <b>{_e(tokens.name)}</b> '
            f'<i class="ctkd-dim">{len(tokens)} tokens · {_e(tokens.scheme)}</i></div>')


def _swatch(background: str, foreground: str, text: str, extra: str = "") -> str:
    return f'<kbd style="background:{background};color:{foreground};{extra}">{_e(text)}</kbd>'


def _legend(diff_view: bool = False) -> str:
    group = GROUP_COLOURS[0][0]
    special, unmatched = STATUS_COLOURS["special"], STATUS_COLOURS["unmatched"]
    if diff_view:
        agreeing = STATUS_COLOURS["agreeing"]
        items = [_swatch(group, "#ffffff", "group", "font-weight:bold;" + _UNDERLINE_DISAGREE)
                 + " a group that does not agree with the other alignment",
                 _swatch(agreeing[1], agreeing[0], "group") + " agrees"]
    else:
        items = [_swatch(group, "#ffffff", "group", "font-weight:bold") + " one colour per group, bold = exact 1:1",
                 _swatch(group, "#ffffff", "group", _UNDERLINE_NOT_ONE_TO_ONE) + " not 1:1 (or not exact)",
                 _swatch(unmatched[1], unmatched[0], "token") + " no partner"]
    items.append(_swatch(special[1], special[0], "special"))
    items.append("␣ space ⏎ newline ⇥ tab · ×n = one character from n byte tokens · hover a token for its id, span, "
                 "bytes and group")
    return '<div class="ctkd-legend">' + " · ".join(items) + "</div>"


def group_table_html(alignment: Alignment, max_groups: int | None = 80) -> str:
    """The group table: index (in the group's colour), shape, both sides' pieces, characters, and the engine's
    per-group values (DTW ``cost``); the first ``max_groups`` rows (``None``: all).

    Raises:
        InputError: ``max_groups`` is negative; an :class:`InputTypeError` for an argument of the wrong type.
    """
    _expect_alignment(alignment)
    _expect_limit(max_groups, "max_groups")
    rows = group_rows(alignment, limit=max_groups)
    extras = [key for key in ("cost",) if alignment.groups and key in alignment.groups[0].extra]
    head = ('<tr><th class="num">#</th><th>shape</th>'
            f"<th>teacher · {_e(alignment.teacher.name)}</th><th>student · {_e(alignment.student.name)}</th>"
            '<th class="num">chars</th>' + "".join(f'<th class="num">{_e(k)}</th>' for k in extras) + "</tr>")
    body = []
    for row in rows:
        g = row["group"]
        if row["status"] == "unmatched":
            foreground, background = STATUS_COLOURS["unmatched"]
        else:
            foreground, background = "#ffffff", GROUP_COLOURS[g % len(GROUP_COLOURS)][0]
        shape_style = {"exact": "color:#2d8a45;font-weight:bold", "unmatched": "color:#c00000"}.get(row["status"], "")

        def pieces(values):
            return " ".join(f"<code>{_e(visible(p) or '∅')}</code>" for p in values) or "—"

        cells = [f'<td class="num" style="background:{background};color:{foreground}">{g}</td>',
                 f'<td style="{shape_style}">{_e(row["shape"])}</td>', f"<td>{pieces(row['teacher'])}</td>",
                 f"<td>{pieces(row['student'])}</td>", f'<td class="num">{row["start"]}–{row["end"]}</td>']
        cells += [f'<td class="num">{_e(_num(row.get(k, "")))}</td>' for k in extras]
        body.append(f'<tr data-group="{g}" data-status="{_e(row["status"])}">' + "".join(cells) + "</tr>")
    hidden = len(alignment.table) - len(rows)
    note = f'<div class="ctkd-dim">… {hidden:,} more groups</div>' if hidden > 0 else ""
    return f'<table class="ctkd-groups">{head}{"".join(body)}</table>{note}'


_METRICS_SHOWN = ("alignment_rate", "groups", "shapes", "exact_groups", "text_coverage_1to1", "text_coverage_exact",
                  "unmatched", "tokens", "fertility", "max_group_tokens")


def metrics_html(alignment: Alignment) -> str:
    """The metrics as a two-column table, the same rows as the terminal's metrics panel (alignment rate, groups
    and shapes, text in 1:1 groups, fertility, unmatched tokens per side, then the engine's own metrics).

    Raises:
        InputTypeError: ``alignment`` is not an Alignment.
    """
    _expect_alignment(alignment)
    m = alignment.metrics
    shapes = ", ".join(f"{count} × {name}" for name, count in m.get("shapes", {}).items() if count)
    fertility = m.get("fertility")
    rows = [
        ("alignment rate", f"<b>{_pct(m.get('alignment_rate'))}</b> "
                           '<i class="ctkd-dim">(student tokens in exact 1:1 groups)</i>'),
        ("groups", f"{_e(m.get('groups', len(alignment.table)))}" + (f" <i class='ctkd-dim'>({_e(shapes)})</i>"
                                                                     if shapes else "")),
        ("text in 1:1", f"{_pct(m.get('text_coverage_1to1'))} · in exact 1:1 {_pct(m.get('text_coverage_exact'))}"),
        ("fertility", f"{fertility:.3f} student tokens per teacher token" if fertility else "n/a"),
    ]
    for side in ("teacher", "student"):
        counts = m.get("unmatched", {}).get(side, {})
        rows.append((f"unmatched ({side})", _e(", ".join(f"{v} {k}" for k, v in counts.items() if v) or "none")))
    for key, value in m.items():
        if key not in _METRICS_SHOWN and isinstance(value, (int, float)) and not isinstance(value, bool):
            rows.append((key.replace("_", " "), _e(_num(value))))
    body = "".join(f'<tr data-metric="{_e(label)}"><th>{_e(label)}</th><td>{value}</td></tr>' for label, value in rows)
    return (f'<table class="ctkd-metrics"><caption style="text-align:left"><b>metrics</b> · engine '
            f"{_e(alignment.engine)}</caption>{body}</table>")


def alignment_html(alignment: Alignment, *, max_groups: int | None = 80, max_cells: int | None = MAX_CELLS,
                   table: bool = True, metrics: bool = True) -> str:
    """One alignment: both ribbons (teacher above student, coloured per group), a legend, the group table (first
    ``max_groups`` rows; ``0`` or ``table=False`` leaves it out) and the metrics.

    Args:
        alignment: any engine's :class:`~ctkd_inspect.alignment.Alignment`.
        max_groups: rows of the group table (``None``: all).
        max_cells: cells per ribbon (``None``: all; long texts make long pages).
        table, metrics: include the group table / the metrics.

    Returns:
        A self-contained HTML fragment (see the module docstring for its ``<span class="tok">`` contract).

    Raises:
        InputError: a negative limit; an :class:`InputTypeError` for an argument of the wrong type.
    """
    _expect_alignment(alignment)
    _expect_limit(max_groups, "max_groups")
    _expect_limit(max_cells, "max_cells")
    parts = [_side_head(alignment, "teacher"), _ribbon(alignment, "teacher", segments(alignment, "teacher"), False,
                                                        max_cells),
             _side_head(alignment, "student"), _ribbon(alignment, "student", segments(alignment, "student"), False,
                                                        max_cells),
             _legend()]
    if table and max_groups != 0:
        parts.append("<details open><summary>groups</summary>" + group_table_html(alignment, max_groups)
                     + "</details>")
    if metrics:
        parts.append(metrics_html(alignment))
    return _wrap("".join(parts), "alignment", engine=alignment.engine, teacher=alignment.teacher.name,
                 student=alignment.student.name)


# ---------------------------------------------------------------------------------------------------------------
# diffs


def _diff_figures(diff: AlignmentDiff) -> str:
    verdict = ('<b style="color:#c00000">the alignments differ</b>' if diff.differs else
               '<b style="color:#2d8a45">the same groups</b>')
    body = "".join(f'<tr data-figure="{_e(label)}"><th>{_e(label)}</th><td>{_e(value)}</td></tr>'
                   for label, value in diff_figures(diff))
    note = diff_basis_note(diff)
    note = f'<div class="ctkd-dim">{_e(note)}</div>' if note else ""
    return (f'<table class="ctkd-diff-figures"><caption style="text-align:left"><b>diff</b> · {verdict}</caption>'
            f"{body}</table>{note}")


def _diff_table(diff: AlignmentDiff, max_groups: int | None) -> str:
    rows = diff_rows(diff, limit=max_groups)
    if not rows:
        return ""
    colours = {"split": "#b8860b", "merge": "#178a8a", "cross": "#c00000"}
    head = ("<tr><th></th><th class='num'>#</th><th>kind</th><th>shape</th><th>teacher</th><th>student</th>"
            "<th class='num'>chars</th><th>other side</th></tr>")
    body = []
    for row in rows:
        other = "b" if row["which"] == "a" else "a"

        def pieces(values):
            return " ".join(f"<code>{_e(visible(p) or '∅')}</code>" for p in values) or "—"

        body.append(f'<tr data-which="{row["which"]}" data-group="{row["group"]}" data-kind="{_e(row["kind"])}">'
                    f'<td>{row["which"]}</td><td class="num">{row["group"]}</td>'
                    f'<td style="color:{colours.get(row["kind"], "inherit")};font-weight:bold">{_e(row["kind"])}</td>'
                    f'<td>{_e(row["shape"])}</td><td>{pieces(row["teacher"])}</td><td>{pieces(row["student"])}</td>'
                    f'<td class="num">{row["start"]}–{row["end"]}</td>'
                    f'<td>{other} {_e(", ".join(map(str, row["related"])))}</td></tr>')
    hidden = len(diff.disagreeing_a) + len(diff.disagreeing_b) - len(rows)
    note = f'<div class="ctkd-dim">… {hidden:,} more disagreeing groups</div>' if hidden > 0 else ""
    return (f'<details open><summary>disagreeing groups</summary><table class="ctkd-disagreeing">{head}'
            f'{"".join(body)}</table>{note}</details>')


def _label(alignment: Alignment) -> str:
    return f"{alignment.engine} · {alignment.teacher.name} → {alignment.student.name}"


def diff_html(a: Alignment, b: Alignment, diff: AlignmentDiff | None = None, *, max_groups: int | None = 40,
              max_cells: int | None = MAX_CELLS) -> str:
    """Two alignments of one text compared: per side, ``a``'s ribbon above ``b``'s, the groups that do not agree
    with the other alignment in their group colours (bold, red underline, ``data-disagree="true"``) and the
    agreeing ones in grey; then the counts and boundary figures and the disagreeing groups (first
    ``max_groups``).

    Args:
        a, b: the alignments (``a`` is the reference, as in :func:`ctkd_inspect.diff`).
        diff: their :class:`~ctkd_inspect.diffs.AlignmentDiff`, computed when not given.

    Raises:
        InputError: the alignments are not of one text, or share no tokenization (from :func:`~ctkd_inspect.diff`);
            ``diff`` is not the diff of ``a`` and ``b``; a negative limit. An :class:`InputTypeError` for an argument
            of the wrong type.
    """
    from .diffs import AlignmentDiff
    from .errors import InputError

    _expect_alignment(a, "a")
    _expect_alignment(b, "b")
    _expect_limit(max_groups, "max_groups")
    _expect_limit(max_cells, "max_cells")
    if diff is not None:
        _expect(diff, AlignmentDiff, "diff", "an AlignmentDiff (from ctkd_inspect.diff(a, b))")
        if (diff.groups_a, diff.groups_b) != (len(a.table), len(b.table)):
            raise InputError(f"diff compares alignments of {diff.groups_a} and {diff.groups_b} groups, but a has "
                             f"{len(a.table)} and b {len(b.table)}: pass diff(a, b) of these two, or leave it out")
    if diff is None:
        from .diffs import diff as compute_diff

        diff = compute_diff(a, b)
    parts = [f'<div class="ctkd-head"><b>a</b> {_e(_label(a))}</div>',
             f'<div class="ctkd-head"><b>b</b> {_e(_label(b))}</div>']
    for side in ("teacher", "student"):
        names = " / ".join(sorted({getattr(a, side).name, getattr(b, side).name}))
        parts.append(f'<div class="ctkd-head"><i class="ctkd-dim">{side}</i> <b>{_e(names)}</b></div>')
        for which, alignment in (("a", a), ("b", b)):
            cells = diff_segments(alignment, diff, which, side)
            ribbon = _ribbon(alignment, side, cells, True, max_cells)
            parts.append(f'<div data-which="{which}" style="display:flex;gap:6px;align-items:baseline">'
                         f'<b style="min-width:1em">{which}</b><div style="flex:1">{ribbon}</div></div>')
    parts.append(_legend(diff_view=True))
    parts.append(_diff_figures(diff))
    parts.append(_diff_table(diff, max_groups))
    return _wrap("".join(parts), "diff", differs=str(diff.differs).lower())


def diff_summary_html(diff: AlignmentDiff, *, max_groups: int | None = 40) -> str:
    """A diff without its alignments: the labels, counts, boundary figures and the disagreeing groups.

    Raises:
        InputError: a negative ``max_groups``; an :class:`InputTypeError` for an argument of the wrong type.
    """
    from .diffs import AlignmentDiff

    _expect(diff, AlignmentDiff, "diff", "an AlignmentDiff (from ctkd_inspect.diff(a, b))")
    _expect_limit(max_groups, "max_groups")
    labels = []
    for which, label in (("a", diff.label_a), ("b", diff.label_b)):
        if label:
            text = " · ".join(str(label[k]) for k in ("engine", "teacher", "student") if k in label)
            labels.append(f'<div class="ctkd-head"><b>{which}</b> {_e(text)}</div>')
    return _wrap("".join(labels) + _diff_figures(diff) + _diff_table(diff, max_groups), "diff",
                 differs=str(diff.differs).lower())


# ---------------------------------------------------------------------------------------------------------------
# vocabulary mappings


def _bar(share: float | None, width: int = 120, colour: str = "#2e6da4") -> str:
    if share is None:
        return ""
    filled = max(0, min(width, round(share * width)))
    return (f'<i class="ctkd-bar" style="width:{filled}px;background:{colour}"></i>'
            f'<i class="ctkd-bar" style="width:{width - filled}px;background:rgba(127,127,127,0.25)"></i>')


def _coverage_rows(coverage: Mapping, kind: str) -> str:
    rows = []
    for side, label in (("teacher", "teacher → student"), ("student", "student → teacher")):
        c = coverage[side]
        histogram = ""
        if c.get("distance_histogram"):
            histogram = "  ".join(f"{'≥' if d == '9' else ''}{d}: {n:,}" for d, n in c["distance_histogram"].items())
        rows.append(f'<tr data-direction="{side}"><td>{_e(kind)}</td><td>{label}</td>'
                    f'<td class="num">{c["vocab"]:,}</td><td class="num">{c["mappable"]:,}</td>'
                    f'<td class="num">{c["mapped"]:,} ({_pct(c["mapped_share"])})</td>'
                    f'<td>{_bar(c["mapped_share"])}</td>'
                    f'<td class="num">{c["exact"]:,} ({_pct(c["exact_share"])})</td>'
                    f'<td class="ctkd-dim">{_e(histogram)}</td></tr>')
    return "".join(rows)


_COVERAGE_HEAD = ("<tr><th>mapping</th><th>direction</th><th class='num'>vocab</th><th class='num'>mappable</th>"
                  "<th class='num'>mapped</th><th></th><th class='num'>exact</th><th>edit distances</th></tr>")


def _token_cell(vocab: Vocabulary | None, index: int) -> str:
    if index < 0:
        return "—"
    if vocab is None:
        return f"<code>#{index}</code>"
    return f'<code title="id {index}">{_e(visible(vocab.raw[index]) or "∅")}</code> <i class="ctkd-dim">#{index}</i>'


def vocab_mapping_html(mapping: VocabMapping, teacher_vocab: Vocabulary | None = None,
                       student_vocab: Vocabulary | None = None, *, limit: int = 10) -> str:
    """A vocabulary mapping: coverage per direction (mapped and exact shares, MinED's edit distances) and samples:
    the teacher tokens mapped at the smallest non-zero distances (near misses) and teacher tokens left unmapped.

    Args:
        mapping: a :class:`~ctkd_inspect.vocab.VocabMapping`.
        teacher_vocab, student_vocab: the pair's vocabularies, to show token strings (ids only without them).
        limit: rows per sample.

    Raises:
        InputError: a vocabulary of another size than the mapping's side, a negative ``limit``; an
            :class:`InputTypeError` for an argument of the wrong type.
    """
    from .errors import InputError
    from .vocab import VocabMapping, Vocabulary, _mappable

    _expect(mapping, VocabMapping, "mapping", "a VocabMapping (ctkd_inspect.vocab.exact_mapping / mined_mapping)")
    for name, vocab in (("teacher_vocab", teacher_vocab), ("student_vocab", student_vocab)):
        if vocab is not None:
            _expect(vocab, Vocabulary, name, "a Vocabulary (ctkd_inspect.vocab.vocabulary) or None")
    _expect_limit(limit, "limit")

    for side, vocab, size in (("teacher", teacher_vocab, len(mapping.teacher_to_student)),
                              ("student", student_vocab, len(mapping.student_to_teacher))):
        if vocab is not None and len(vocab) != size:
            raise InputError(f"{side}_vocab has {len(vocab):,} ids but the mapping's {side} side has {size:,}: pass "
                             f"the vocabulary of {getattr(mapping, side)}")
    title = (f'<div class="ctkd-head"><b>vocabulary mapping</b> {_e(mapping.teacher)} → {_e(mapping.student)} '
             f'<i class="ctkd-dim">({_e(mapping.kind)}, {_e(mapping.mode)})</i></div>')
    coverage = (f'<table class="ctkd-coverage">{_COVERAGE_HEAD}{_coverage_rows(mapping.coverage(), mapping.kind)}'
                "</table>")
    import numpy as np

    distance = np.asarray(mapping.teacher_distance)
    near = np.flatnonzero(distance > 0)
    near = near[np.lexsort((near, distance[near]))][:limit].tolist()
    targets = np.asarray(mapping.teacher_to_student)
    near_rows = "".join(
        f"<tr><td>{_token_cell(teacher_vocab, i)}</td><td>{_token_cell(student_vocab, int(targets[i]))}</td>"
        f'<td class="num">{int(distance[i])}</td></tr>' for i in near)
    parts = [title, coverage]
    if near_rows:
        parts.append("<h4>closest non-exact pairs</h4><table><tr><th>teacher</th><th>student</th>"
                     f"<th class='num'>distance</th></tr>{near_rows}</table>")
    unmapped = np.asarray(mapping.teacher_to_student) < 0
    if teacher_vocab is not None:
        unmapped &= _mappable(teacher_vocab)
    missing = np.flatnonzero(unmapped)
    if len(missing):
        from .diffs import _spread

        sample = _spread(missing, limit).tolist()
        parts.append(f"<h4>teacher tokens without a partner ({len(missing):,}; a sample)</h4><div>"
                     + " ".join(_token_cell(teacher_vocab, i) for i in sample) + "</div>")
    if teacher_vocab is None or student_vocab is None:
        parts.append('<div class="ctkd-dim">ids only: pass the vocabularies (ctkd_inspect.html.vocab_mapping_html('
                     "mapping, teacher_vocab, student_vocab)) to see the tokens</div>")
    return _wrap("".join(parts), "vocab-mapping", kind=mapping.kind, mode=mapping.mode)


def vocab_diff_html(diff: VocabMappingDiff) -> str:
    """Two vocabulary mappings of one pair compared: per direction the entries that agree, differ or exist in one
    mapping only, each mapping's coverage, and examples.

    Raises:
        InputTypeError: ``diff`` is not a VocabMappingDiff.
    """
    from .diffs import VocabMappingDiff

    _expect(diff, VocabMappingDiff, "diff", "a VocabMappingDiff (from ctkd_inspect.diffs.vocab_diff)")

    def label(which):
        data = diff.label_a if which == "a" else diff.label_b
        return f"{data['kind']} ({data['mode']}) · {data['teacher']} → {data['student']}"

    parts = [f'<div class="ctkd-head"><b>a</b> {_e(label("a"))}</div>',
             f'<div class="ctkd-head"><b>b</b> {_e(label("b"))}</div>']
    head = ("<tr><th>direction</th><th class='num'>agree</th><th class='num'>differ</th><th class='num'>only a</th>"
            "<th class='num'>only b</th><th class='num'>neither</th><th class='num'>mapped by a</th>"
            "<th class='num'>mapped by b</th></tr>")
    rows = []
    for direction, side in (("teacher_to_student", "teacher"), ("student_to_teacher", "student")):
        counts = diff.directions[direction]
        cov_a, cov_b = diff.coverage_a[side], diff.coverage_b[side]
        rows.append(f'<tr data-direction="{direction}"><td>{direction.replace("_to_", " → ")}</td>'
                    + "".join(f'<td class="num">{counts[k]:,}</td>'
                              for k in ("agree", "differ", "only_a", "only_b", "neither"))
                    + f'<td class="num">{cov_a["mapped"]:,} ({_pct(cov_a["mapped_share"])})</td>'
                    f'<td class="num">{cov_b["mapped"]:,} ({_pct(cov_b["mapped_share"])})</td></tr>')
    parts.append(f'<table class="ctkd-vocab-diff">{head}{"".join(rows)}</table>')

    def source(row):
        return (f"<code>{_e(visible(row['token']) or '∅')}</code>" if row["token"] is not None
                else f"<code>#{row['id']}</code>")

    def shown(entry):
        if entry["id"] < 0:
            return "—"
        return f'{source(entry)} <i class="ctkd-dim">d={entry["distance"]}</i>'

    for direction in ("teacher_to_student", "student_to_teacher"):
        examples = diff.directions[direction]["examples"]
        sample = [(kind, row) for kind in ("differ", "only_a", "only_b") for row in examples[kind]]
        if not sample:
            continue
        body = "".join(
            f'<tr data-kind="{kind}"><td>{kind.replace("_", " ")}</td>'
            f"<td>{source(row)}</td><td>{shown(row['a'])}</td><td>{shown(row['b'])}</td></tr>" for kind, row in sample)
        parts.append(f"<h4>examples, {direction.replace('_to_', ' → ')}</h4><table><tr><th></th><th>source</th>"
                     f"<th>a</th><th>b</th></tr>{body}</table>")
    verdict = ('<b style="color:#c00000">the mappings differ</b>' if diff.differs else
               '<b style="color:#2d8a45">the same entries</b>')
    parts.append(f"<div>{verdict}</div>")
    return _wrap("".join(parts), "vocab-diff", differs=str(diff.differs).lower())


def lookup_html(result: Any) -> str:
    """One vocabulary lookup (a :class:`~ctkd_inspect.lookup.LookupResult`): the token, its exact and MinED
    counterparts in the other vocabulary, and its nearest tokens there by CDM's normalised edit distance.

    Raises:
        InputTypeError: ``result`` is not a LookupResult.
    """
    from .lookup import LookupResult

    _expect(result, LookupResult, "result", "a LookupResult (from ctkd_inspect.lookup.VocabLookup.lookup)")
    other = result.other
    if result.id is None:
        what = f"<code>{_e(visible(result.token))}</code> is no token of the {_e(result.side)} vocabulary"
    else:
        what = (f"{_e(result.side)} token <code>{_e(result.token)}</code> <i class='ctkd-dim'>#{result.id} · "
                f"stands for</i> <code>{_e(visible(result.text))}</code>" + (" · special" if result.special else ""))

    def neighbour(n, distance: str) -> str:
        if n is None:
            return "—"
        return (f"<code>{_e(n.token)}</code> <i class='ctkd-dim'>#{n.id} · </i><code>{_e(visible(n.text))}</code>"
                + (f" <i class='ctkd-dim'>{_e(distance)}</i>" if distance else ""))

    if result.mined_available:
        mined = neighbour(result.mined, f"distance {result.mined.distance}" if result.mined else "")
    else:
        mined = "<i class='ctkd-dim'>no MinED mapping loaded</i>"
    rows = [("exact", neighbour(result.exact, "")), ("MinED", mined)]
    body = "".join(f'<tr data-answer="{_e(label)}"><th>{_e(label)}</th><td>{value}</td></tr>' for label, value in rows)
    nearest = "".join(f'<tr data-id="{n.id}"><td class="num">{rank}</td><td><code>{_e(n.token)}</code></td>'
                      f'<td><code>{_e(visible(n.text))}</code></td><td class="num">{n.id}</td>'
                      f'<td class="num">{n.distance:.3f}</td></tr>' for rank, n in enumerate(result.nearest, 1))
    parts = [f'<div class="ctkd-head">{what}</div>', f"<table class='ctkd-lookup'>{body}</table>"]
    if nearest:
        parts.append(f"<h4>nearest {_e(other)} tokens (normalised edit distance)</h4><table class='ctkd-nearest'>"
                     "<tr><th class='num'></th><th>token</th><th>stands for</th><th class='num'>id</th>"
                     f"<th class='num'>distance</th></tr>{nearest}</table>")
    return _wrap("".join(parts), "lookup", side=result.side)


# ---------------------------------------------------------------------------------------------------------------
# corpus summaries


def _histogram_svg(counts: Sequence[int], edges: Sequence[float], *, width: int = 360, height: int = 90,
                   label: str = "") -> str:
    """A bar chart as inline SVG (no script, no external reference)."""
    if not counts:
        return ""
    top = max(counts) or 1
    bar = width / len(counts)
    bars = []
    for k, count in enumerate(counts):
        h = (height - 14) * count / top
        bars.append(f'<rect x="{k * bar + 0.5:.1f}" y="{height - 14 - h:.1f}" width="{max(bar - 1, 1):.1f}" '
                    f'height="{h:.1f}" fill="#2e6da4"><title>{_e(f"{edges[k]:.3g}–{edges[k + 1]:.3g}: {count:,}")}'
                    "</title></rect>")
    axis = (f'<text x="0" y="{height - 2}" font-size="10" fill="currentColor">{_e(f"{edges[0]:.3g}")}</text>'
            f'<text x="{width}" y="{height - 2}" font-size="10" text-anchor="end" fill="currentColor">'
            f'{_e(f"{edges[-1]:.3g}")}</text>'
            f'<text x="{width / 2}" y="{height - 2}" font-size="10" text-anchor="middle" fill="currentColor">'
            f"{_e(label)}</text>")
    # inline SVG in HTML needs no namespace declaration (which would be the page's only URL)
    return (f'<svg width="{width}" height="{height}" role="img" '
            f'aria-label="{_e(label)}">{"".join(bars)}{axis}</svg>')


def failure_summary_html(summary: Any, *, max_examples: int = 4) -> str:
    """The failure taxonomy of a corpus (a :class:`~ctkd_inspect.failures.FailureSummary` or its ``to_dict()``):
    failing groups per kind with their share of student tokens, a few examples per kind, and the worst texts.

    Raises:
        InputError: a negative ``max_examples``; an :class:`InputTypeError` for an argument of the wrong type.
    """
    _expect_limit(max_examples, "max_examples")
    return _wrap(_failure_body(_summary_data(summary), max_examples), "failures")


def _failure_body(summary: Any, max_examples: int) -> str:
    data = _summary_data(summary, "failures")
    kinds = data.get("kinds", {})
    rows = []
    total = data.get("failed_groups", 0) or 0
    for kind, record in kinds.items():
        if not record.get("groups"):
            continue
        share = record.get("student_token_share")
        rows.append(f'<tr data-kind="{_e(kind)}"><td>{_e(kind)}</td>'
                    f'<td class="num">{record.get("primary_groups", 0):,}</td>'
                    f'<td class="num">{record.get("groups", 0):,}</td>'
                    f'<td class="num">{_pct(share)}</td><td>{_bar(share, 100, "#a00000")}</td>'
                    f'<td class="num">{_pct(record.get("character_share"))}</td></tr>')
    parts = [f'<div class="ctkd-head"><b>failure taxonomy</b> <i class="ctkd-dim">{data.get("texts", 0):,} texts · '
             f'{data.get("groups", 0):,} groups · {total:,} not exact 1:1 · '
             f'{_pct(data.get("student_token_share_failed"))} of student tokens</i></div>']
    if rows:
        parts.append("<table class='ctkd-failures'><tr><th>kind</th><th class='num'>groups (primary)</th>"
                     "<th class='num'>groups (any)</th><th class='num'>student tokens</th><th></th>"
                     f"<th class='num'>characters</th></tr>{''.join(rows)}</table>")
    unpaired = data.get("unpaired_specials", {})
    if any(unpaired.values()):
        parts.append(f'<div class="ctkd-dim">special tokens only one side adds: teacher {unpaired.get("teacher", 0):,}'
                     f', student {unpaired.get("student", 0):,}</div>')
    examples = data.get("examples", {})
    blocks = []
    for kind, records in examples.items():
        items = []
        for example in records[:max_examples]:
            teacher = " ".join(f"<code>{_e(visible(p) or '∅')}</code>" for p in example.get("teacher_pieces", []))
            student = " ".join(f"<code>{_e(visible(p) or '∅')}</code>" for p in example.get("student_pieces", []))
            items.append(f'<tr data-text-index="{example.get("text_index", "")}"><td class="num">'
                         f'{example.get("text_index", "")}</td><td><code>{_e(visible(example.get("text", "")))}</code>'
                         f"</td><td>{teacher or '—'}</td><td>{student or '—'}</td>"
                         f'<td class="ctkd-dim">{_e(example.get("detail") or "")}</td></tr>')
        blocks.append(f"<details><summary>{_e(kind)} ({len(records)} kept)</summary><table><tr>"
                      "<th class='num'>text</th><th>characters</th><th>teacher</th><th>student</th><th></th></tr>"
                      f"{''.join(items)}</table></details>")
    if blocks:
        parts.append("<h4>examples</h4>" + "".join(blocks))
    parts.append(_worst_texts(data.get("worst_texts", [])))
    return "".join(parts)


def _worst_texts(worst: Sequence[Mapping]) -> str:
    """The worst texts table; a record names its row as ``index`` (a corpus run) or ``text_index`` (a
    :class:`~ctkd_inspect.failures.FailureSummary`)."""
    if not worst:
        return ""
    rows = []
    for w in worst:
        row = w.get("index", w.get("text_index", ""))
        rows.append(f'<tr data-text-index="{_e(row)}"><td class="num">{_e(row)}</td>'
                    f'<td class="num">{_pct(w.get("score"))}</td>'
                    f'<td class="num">{w.get("failed_student_tokens", 0)}/{w.get("student_tokens", 0)}</td>'
                    f'<td><code>{_e(visible(w.get("preview", ""))[:160])}</code></td></tr>')
    return ("<h4>worst texts</h4><table class='ctkd-worst'><tr><th class='num'>text</th>"
            "<th class='num'>not exact</th><th class='num'>student tokens</th><th>start of the text</th></tr>"
            f"{''.join(rows)}</table>")


def corpus_summary_html(summary: Any) -> str:
    """A compact view of a corpus summary: figures, the rate distribution, shapes, the failure taxonomy and the
    worst texts. (A corpus run's full report, with its plots and expandable examples, is
    :meth:`ctkd_inspect.corpus.CorpusSummary._repr_html_`.)

    ``summary`` is a :class:`~ctkd_inspect.corpus.CorpusSummary`, its ``to_dict()``, or any dict of these keys,
    every one optional:

    - ``teacher``, ``student``, ``engine``, ``texts`` (count), ``characters``, ``tokens`` (``{"teacher": n,
      "student": n}``);
    - ``alignment_rate``: ``{"corpus", "mean", "median", "min", "max", "histogram": {"edges": [...], "counts":
      [...]}}`` (the histogram drawn as an inline SVG bar chart, at most 50 bars);
    - ``shapes``: group counts per shape;
    - ``failures``: a :class:`~ctkd_inspect.failures.FailureSummary` or its ``to_dict()``
      (:func:`failure_summary_html`);
    - ``worst_texts``: records with ``index`` (the row), ``score``, ``failed_student_tokens``, ``student_tokens``,
      ``preview`` (else the failure summary's own worst texts are shown).

    Raises:
        InputTypeError: ``summary`` is neither a summary object nor a dict.
    """
    data = _summary_data(summary)
    head = " → ".join(_e(data[k]) for k in ("teacher", "student") if data.get(k))
    facts = []
    for key, label in (("engine", "engine"), ("texts", "texts"), ("characters", "characters")):
        if data.get(key) is not None:
            facts.append(f"{label} {_e(_num(data[key]))}")
    tokens = data.get("tokens") or {}
    if tokens:
        facts.append("tokens " + ", ".join(f"{_e(side)} {_num(n)}" for side, n in tokens.items()))
    parts = [f'<div class="ctkd-head"><b>corpus</b> {head} <i class="ctkd-dim">{" · ".join(facts)}</i></div>']
    rate = data.get("alignment_rate")
    if isinstance(rate, Mapping):
        figures = " · ".join(f"{'corpus (token-weighted)' if k == 'corpus' else k} {_pct(rate[k])}"
                             for k in ("corpus", "mean", "median", "min", "max") if rate.get(k) is not None)
        parts.append(f"<h4>alignment rate</h4><div>{figures}</div>")
        histogram = rate.get("histogram")
        if histogram and histogram.get("counts"):
            counts, edges = list(histogram["counts"]), list(histogram["edges"])
            while len(counts) > 50 and len(counts) % 2 == 0:  # a run's 1000 fine bins drawn as 50 bars
                counts, edges = [counts[k] + counts[k + 1] for k in range(0, len(counts), 2)], edges[::2]
            parts.append(_histogram_svg(counts, edges, label="alignment rate per text"))
    shapes = data.get("shapes")
    if shapes:
        total = sum(shapes.values()) or 1
        body = "".join(f'<tr data-shape="{_e(k)}"><td>{_e(k)}</td><td class="num">{v:,}</td>'
                       f'<td class="num">{_pct(v / total)}</td><td>{_bar(v / total, 100)}</td></tr>'
                       for k, v in shapes.items())
        parts.append(f"<h4>group shapes</h4><table class='ctkd-shapes'>{body}</table>")
    failures = data.get("failures")
    if failures is not None:
        failures = _summary_data(failures, "summary['failures']")
        if data.get("worst_texts"):
            failures.pop("worst_texts", None)  # the corpus's own (row-numbered) worst texts follow
        parts.append(_failure_body(failures, 4))
    parts.append(_worst_texts(data.get("worst_texts", [])))
    return _wrap("".join(parts), "corpus")


def histogram(values: Iterable[float], bins: int = 20, low: float = 0.0, high: float = 1.0) -> dict:
    """``{"edges": [...], "counts": [...]}`` of ``values`` in ``bins`` equal bins over ``[low, high]`` (NaN and
    ``None`` skipped; the last bin includes ``high``), the form :func:`corpus_summary_html` draws.

    Raises:
        InputError: ``bins`` < 1, ``low`` ≥ ``high``, or values that are not numbers (an :class:`InputTypeError`
            for arguments of the wrong type).
    """
    import numpy as np

    from .errors import InputError, InputTypeError

    if isinstance(bins, bool) or not isinstance(bins, int):
        raise InputTypeError(f"bins must be an int ≥ 1, not {type(bins).__name__}")
    if bins < 1:
        raise InputError(f"bins must be ≥ 1, got {bins}")
    for name, bound in (("low", low), ("high", high)):
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound):
            raise InputTypeError(f"{name} must be a finite number, not {bound!r}")
    if low >= high:
        raise InputError(f"low must be below high, got low={low}, high={high}")
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise InputTypeError(f"values must be an iterable of numbers, not {type(values).__name__}")
    try:
        array = np.asarray([v for v in values if v is not None], dtype=float)
    except (TypeError, ValueError):
        raise InputError("values must be numbers (None is skipped)") from None

    array = array[~np.isnan(array)]
    counts, edges = np.histogram(array, bins=bins, range=(low, high))
    return {"edges": edges.tolist(), "counts": counts.tolist()}
