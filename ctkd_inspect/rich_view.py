"""Terminal rendering of an alignment with rich: two ribbons, a group table, the metrics.

A thin front-end: everything it shows comes from :mod:`ctkd_inspect.render` (segments, palette, statuses), so the
terminal, the TUI and the notebook widgets colour a group the same way.
"""

from __future__ import annotations

from rich import box
from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .alignment import Alignment
from .render import (
    GROUP_COLOURS,
    PALETTE_SIZE,
    STATUS_COLOURS,
    diff_basis_note,
    diff_figures,
    diff_rows,
    diff_segments,
    group_rows,
    segments,
    visible,
)

# Background colours per palette index: (base, lighter) so neighbouring tokens of one group stay distinguishable.
# (the table lives in render.py, shared with the TUI and the HTML views)
_BACKGROUNDS = GROUP_COLOURS
assert len(_BACKGROUNDS) == PALETTE_SIZE
_STATUS_STYLE = {"special": "italic {} on {}".format(*STATUS_COLOURS["special"]),
                 "unmatched": "bold white on {}".format(STATUS_COLOURS["unmatched"][1])}


def ribbon(alignment: Alignment, side: str, plain: bool = False) -> Text:
    """One side's tokens as a coloured ribbon; whitespace and control characters made visible.

    ``plain`` (a terminal without colour, or output to a file) separates tokens with ``|`` and groups with ``‖``,
    since colours cannot show the boundaries.
    """
    text = Text(no_wrap=False)
    previous_group, shade = None, 0
    for position, segment in enumerate(segments(alignment, side)):
        if plain and position:
            text.append("|" if segment.group == previous_group and segment.group >= 0 else " ‖ ", style="dim")
        if segment.status in _STATUS_STYLE:
            style = _STATUS_STYLE[segment.status]
        else:
            shade = shade ^ 1 if segment.group == previous_group else 0
            style = f"white on {_BACKGROUNDS[segment.palette][shade]}"
            if segment.status == "exact":
                style = "bold " + style
        previous_group = segment.group
        label = visible(segment.text) or "∅"
        if len(segment.tokens) > 1:
            label += f"×{len(segment.tokens)}"
        text.append(label, style=style)
    return text


def group_table(alignment: Alignment, max_groups: int) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("shape")
    table.add_column(f"teacher · {escape(alignment.teacher.name)}", overflow="fold")
    table.add_column(f"student · {escape(alignment.student.name)}", overflow="fold")
    table.add_column("chars", justify="right", style="dim")
    extras = [k for k in ("cost",) if alignment.groups and k in alignment.groups[0].extra]
    for key in extras:
        table.add_column(key, justify="right")
    for row in group_rows(alignment, limit=max_groups):
        style = {"exact": "green", "unmatched": "red"}.get(row["status"], "")
        cells = [str(row["group"]), f"[{style}]{row['shape']}[/]" if style else row["shape"],
                 escape(" ".join(f"[{visible(p)}]" for p in row["teacher"])) or "—",
                 escape(" ".join(f"[{visible(p)}]" for p in row["student"])) or "—",
                 f"{row['start']}–{row['end']}"]
        cells += [f"{row[k]:.3g}" if isinstance(row.get(k), float) else str(row.get(k, "")) for k in extras]
        table.add_row(*cells)
    return table


def metrics_panel(alignment: Alignment) -> Panel:
    m = alignment.metrics

    def pct(value):
        return "n/a" if value is None else f"{value:.1%}"

    shapes = "  ".join(f"{name} {count}" for name, count in m.get("shapes", {}).items() if count)
    rows = [
        ("alignment rate", f"[bold]{pct(m.get('alignment_rate'))}[/]  (student tokens in exact 1:1 groups)"),
        ("groups", f"{m.get('groups', 0)}   {shapes}"),
        ("text in 1:1", f"{pct(m.get('text_coverage_1to1'))}   exact {pct(m.get('text_coverage_exact'))}"),
        ("fertility", f"{m['fertility']:.3f} student tokens per teacher token" if m.get("fertility") else "n/a"),
    ]
    for side in ("teacher", "student"):
        counts = m.get("unmatched", {}).get(side, {})
        rows.append((f"unmatched ({side})", ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "none"))
    for key, value in m.items():
        if key not in ("alignment_rate", "groups", "shapes", "exact_groups", "text_coverage_1to1",
                       "text_coverage_exact", "unmatched", "tokens", "fertility", "max_group_tokens") \
                and isinstance(value, (int, float)) and not isinstance(value, bool):
            rows.append((key.replace("_", " "), f"{value:.4g}" if isinstance(value, float) else str(value)))
    width = max(len(label) for label, _ in rows) + 2
    lines = [f"{label:<{width}}{value}" for label, value in rows]
    return Panel("\n".join(lines), title=f"metrics · engine {escape(alignment.engine)}", title_align="left",
                 box=box.ROUNDED, expand=False)


def render_alignment(console: Console, alignment: Alignment, max_groups: int = 80) -> None:
    """Print both ribbons, the group table (first ``max_groups`` rows) and the metrics."""
    t, s = alignment.teacher, alignment.student
    header = Text.assemble(("teacher ", "dim"), (t.name, "bold"), (f"  {len(t)} tokens · {t.scheme}", "dim"))
    console.print(header)
    plain = console.color_system is None
    console.print(ribbon(alignment, "teacher", plain))
    console.print(Text.assemble(("student ", "dim"), (s.name, "bold"), (f"  {len(s)} tokens · {s.scheme}", "dim")))
    console.print(ribbon(alignment, "student", plain))
    console.print(Text("legend: one colour per group · bold = exact 1:1 · red = no partner · grey = special · "
                       "␣ space ⏎ newline ⇥ tab · ×n = one character from n byte tokens", style="dim"))
    if max_groups:
        console.print()
        console.print(group_table(alignment, max_groups))
        hidden = len(alignment.table) - max_groups
        if hidden > 0:
            console.print(Text(f"… {hidden} more groups (raise --max-groups, or use --json)", style="dim"))
    console.print(Group(metrics_panel(alignment)))


def render_vocab_report(console: Console, report: dict) -> None:
    """Coverage table, closest non-exact pairs and unmapped samples of a vocabulary mapping report."""

    def pct(value):
        return "n/a" if value is None else f"{value:.1%}"

    table = Table(title=f"vocabulary mapping {escape(report['teacher'])} → {escape(report['student'])} "
                        f"({report['mode']})", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("mapping", "direction", "vocab", "mappable", "mapped", "exact"):
        table.add_column(column, justify="left" if column in ("mapping", "direction") else "right")
    for kind in ("exact", "mined"):
        coverage = report.get(kind)
        if not coverage:
            continue
        for side, label in (("teacher", "teacher → student"), ("student", "student → teacher")):
            c = coverage[side]
            table.add_row(kind, label, f"{c['vocab']:,}", f"{c['mappable']:,}",
                          f"{c['mapped']:,} ({pct(c['mapped_share'])})", f"{c['exact']:,} ({pct(c['exact_share'])})")
    console.print(table)
    mined = report.get("mined")
    if mined and "distance_histogram" in mined["teacher"]:
        histogram = "  ".join(f"{'≥' if d == '9' else ''}{d}: {n:,}" for d, n in
                              mined["teacher"]["distance_histogram"].items())
        console.print(Text(f"MinED edit distance, teacher tokens: {histogram}", style="dim"))
    if report.get("closest_non_exact"):
        near = Table(title="closest non-exact pairs (MinED)", title_justify="left", box=box.SIMPLE_HEAD)
        for column in ("teacher", "student", "distance"):
            near.add_column(column)
        for row in report["closest_non_exact"]:
            near.add_row(escape(repr(row["teacher"])), escape(repr(row["student"])), str(row["distance"]))
        console.print(near)
    if report.get("unmapped_exactly"):
        sample = ", ".join(repr(row["teacher"]) for row in report["unmapped_exactly"])
        console.print(Text(f"teacher tokens with no exact match (sample): {sample}", overflow="fold"))


# -- diffs ------------------------------------------------------------------------------------------------------

_AGREEING_STYLE = "{} on {}".format(*STATUS_COLOURS["agreeing"])


def diff_ribbon(alignment: Alignment, diff, which: str, side: str, plain: bool = False) -> Text:
    """One side of one alignment of a diff: groups that do not agree with the other alignment in their group
    colours, bold and underlined; agreeing groups in grey. ``plain`` marks disagreeing cells ``«…»`` instead."""
    text = Text(no_wrap=False)
    previous_group, shade = None, 0
    for position, segment in enumerate(diff_segments(alignment, diff, which, side)):
        if plain and position:
            text.append("|" if segment.group == previous_group and segment.group >= 0 else " ‖ ", style="dim")
        shade = shade ^ 1 if segment.group == previous_group else 0
        if segment.status == "special":
            style = _STATUS_STYLE["special"]
        elif not segment.disagree:
            style = _AGREEING_STYLE
        elif segment.status == "unmatched":
            style = "bold underline " + _STATUS_STYLE["unmatched"]
        else:
            style = f"bold underline white on {_BACKGROUNDS[segment.palette][shade]}"
        previous_group = segment.group
        label = visible(segment.text) or "∅"
        if len(segment.tokens) > 1:
            label += f"×{len(segment.tokens)}"
        if plain and segment.disagree:
            label = f"«{label}»"
        text.append(label, style=style)
    return text


def diff_table(diff, max_groups: int) -> Table:
    """The disagreeing groups of both alignments (``a`` first), with their kind and related groups."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column, justify in (("", "left"), ("#", "right"), ("kind", "left"), ("shape", "left"),
                            ("teacher", "left"), ("student", "left"), ("chars", "right"), ("other side", "left")):
        table.add_column(column, justify=justify, overflow="fold", style="dim" if column in ("#", "chars") else "")
    colours = {"split": "yellow", "merge": "cyan", "cross": "red"}
    for row in diff_rows(diff, limit=max_groups):
        other = "b" if row["which"] == "a" else "a"
        table.add_row(row["which"], str(row["group"]), f"[{colours[row['kind']]}]{row['kind']}[/]", row["shape"],
                      escape(" ".join(f"[{visible(p)}]" for p in row["teacher"])) or "—",
                      escape(" ".join(f"[{visible(p)}]" for p in row["student"])) or "—",
                      f"{row['start']}–{row['end']}", f"{other} " + ", ".join(map(str, row["related"])))
    return table


def diff_panel(diff) -> Panel:
    """Counts and boundary figures of a diff."""
    verdict = "[bold red]the alignments differ[/]" if diff.differs else "[bold green]the same groups[/]"
    rows = diff_figures(diff)
    width = max(len(label) for label, _ in rows) + 2
    lines = [verdict] + [f"{label:<{width}}{value}" for label, value in rows]
    note = diff_basis_note(diff)
    if note:
        lines.append(f"[dim]{note}[/]")
    return Panel("\n".join(lines), title="diff", title_align="left", box=box.ROUNDED, expand=False)


def render_diff(console: Console, a: Alignment, b: Alignment, diff, max_groups: int = 40) -> None:
    """Both alignments side by side, one ribbon above the other per side, disagreeing groups highlighted; then
    the disagreeing groups (first ``max_groups``) and the counts."""
    plain = console.color_system is None
    labels = {}
    for which, alignment in (("a", a), ("b", b)):
        labels[which] = f"{alignment.engine} · {alignment.teacher.name} → {alignment.student.name}"
        console.print(Text.assemble((f"{which}  ", "bold"), (labels[which], "")))
    for side in ("teacher", "student"):
        console.print()
        names = {getattr(a, side).name, getattr(b, side).name}
        console.print(Text.assemble((f"{side} ", "dim"), (" / ".join(sorted(names)), "bold")))
        for which, alignment in (("a", a), ("b", b)):
            line = Text(f"{which} ", style="bold")
            line.append_text(diff_ribbon(alignment, diff, which, side, plain))
            console.print(line)
    legend = ("«…» = a group that does not agree with the other alignment" if plain else
              "bold underlined = a group that does not agree with the other alignment (coloured as in the single "
              "view) · grey = agreeing groups")
    console.print(Text(f"legend: {legend} · ␣ space ⏎ newline ⇥ tab", style="dim"))
    if max_groups and (diff.disagreeing_a or diff.disagreeing_b):
        console.print()
        console.print(diff_table(diff, max_groups))
        hidden = len(diff.disagreeing_a) + len(diff.disagreeing_b) - max_groups
        if hidden > 0:
            console.print(Text(f"… {hidden} more disagreeing groups (raise --max-groups, or use --json)", style="dim"))
    console.print(diff_panel(diff))


def render_vocab_diff(console: Console, diff) -> None:
    """Two vocabulary mappings of one pair compared (a :class:`~ctkd_inspect.diffs.VocabMappingDiff`): per
    direction the entries that agree, differ or exist on one side only, each mapping's coverage, and examples."""

    def pct(value):
        return "n/a" if value is None else f"{value:.1%}"

    def label(which):
        data = diff.label_a if which == "a" else diff.label_b
        return f"{data['kind']} ({data['mode']})"

    a, b = diff.label_a, diff.label_b
    console.print(Text.assemble(("a  ", "bold"), f"{label('a')} · {a['teacher']} → {a['student']}"))
    console.print(Text.assemble(("b  ", "bold"), f"{label('b')} · {b['teacher']} → {b['student']}"))
    table = Table(box=box.SIMPLE_HEAD, title="entries per source id", title_justify="left")
    for column in ("direction", "agree", "differ", "only a", "only b", "neither", "mapped by a", "mapped by b"):
        table.add_column(column, justify="left" if column == "direction" else "right")
    for direction, side in (("teacher_to_student", "teacher"), ("student_to_teacher", "student")):
        counts = diff.directions[direction]
        cov_a, cov_b = diff.coverage_a[side], diff.coverage_b[side]
        table.add_row(direction.replace("_to_", " → "), f"{counts['agree']:,}", f"{counts['differ']:,}",
                      f"{counts['only_a']:,}", f"{counts['only_b']:,}", f"{counts['neither']:,}",
                      f"{cov_a['mapped']:,} ({pct(cov_a['mapped_share'])})",
                      f"{cov_b['mapped']:,} ({pct(cov_b['mapped_share'])})")
    console.print(table)

    def shown(entry):
        if entry["id"] < 0:
            return "—"
        token = entry["token"]
        name = escape(repr(token)) if token is not None else f"#{entry['id']}"
        return f"{name} [dim]d={entry['distance']}[/]"

    for direction in ("teacher_to_student", "student_to_teacher"):
        examples = diff.directions[direction]["examples"]
        rows = [(kind, row) for kind in ("differ", "only_a", "only_b") for row in examples[kind]]
        if not rows:
            continue
        sample = Table(box=box.SIMPLE_HEAD, title=f"examples, {direction.replace('_to_', ' → ')}",
                       title_justify="left")
        for column in ("", "source", "a", "b"):
            sample.add_column(column, overflow="fold")
        for kind, row in rows:
            source = escape(repr(row["token"])) if row["token"] is not None else f"#{row['id']}"
            sample.add_row(kind.replace("_", " "), source, shown(row["a"]), shown(row["b"]))
        console.print(sample)
    verdict = "[bold red]the mappings differ[/]" if diff.differs else "[bold green]the same entries[/]"
    console.print(verdict)
