"""Rich renderables built from core results (no Textual): the group detail, metrics panels, histograms, diff
figures, lookup results. Screens put them into ``Static`` widgets."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich.console import Group as RenderGroup
from rich.style import Style
from rich.table import Table
from rich.text import Text

from ctkd_inspect.render import GROUP_COLOURS, visible

SHAPE_STYLE = {"exact": "bold green", "aligned": "bold yellow", "unmatched": "bold red"}
BARS = " ▁▂▃▄▅▆▇█"


def pct(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.1%}"


def swatch(group: int) -> Style:
    """The group's colour as a background (the ribbons' base shade)."""
    if group < 0:
        return Style(dim=True)
    return Style(color="#ffffff", bgcolor=GROUP_COLOURS[group % len(GROUP_COLOURS)][0])


def pieces_text(pieces: Sequence[str]) -> str:
    """``[The] [␣café]``: readable pieces, made visible, each bracketed."""
    return " ".join(f"[{visible(p)}]" for p in pieces) or "—"


def group_status(alignment, group: int) -> str:
    record = alignment.groups[group]
    if not (record.teacher and record.student):
        return "unmatched"
    return "exact" if bool(alignment.exact_mask()[group]) else "aligned"


def group_detail(alignment, group: int, failure=None) -> Text:
    """Everything about one group: shape, status, span and text, cost, why it is not exact, and per side each
    token's index, id, readable piece, span and bytes."""
    if alignment is None or group < 0 or group >= len(alignment.table):
        return Text("no group selected", style="dim italic")
    record = alignment.groups[group]
    start, end = alignment.group_spans()[group].tolist()
    status = group_status(alignment, group)
    out = Text(end="")
    out.append(f" group {group} ", swatch(group))
    out.append(f"  {record.shape}  ", SHAPE_STYLE[status])
    out.append(f"{status}  chars {start}–{end}\n")
    out.append("text ", "dim")
    out.append(repr(alignment.text[start:end]) if end > start else "(no characters)")
    for key, value in record.extra.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append(f"  {key} ", "dim")
            out.append(f"{value:.4g}" if isinstance(value, float) else str(value))
    out.append("\n")
    if failure is not None:
        out.append("why ", "dim")
        out.append(", ".join(failure.kinds), "bold yellow")
        if failure.detail:
            out.append(f": {failure.detail}")
        out.append("\n")
    for side, indices in (("teacher", record.teacher), ("student", record.student)):
        tokens = alignment.teacher if side == "teacher" else alignment.student
        out.append(f"{side} · {tokens.name}\n", "bold")
        if not indices:
            out.append("  no token\n", "dim italic")
            continue
        for index in indices:
            out.append(f"  #{index:<4}", "dim")
            out.append(f" id {int(tokens.ids[index]):<7} ")
            out.append(visible(tokens.pieces[index]) or "∅", "bold")
            out.append(f"  {int(tokens.starts[index])}–{int(tokens.ends[index])}", "dim")
            out.append("  " + _bytes_of(tokens, index).hex(" ").upper() + "\n", "cyan")
    return out


def _bytes_of(tokens, index: int) -> bytes:
    """The bytes one token stands for (its name for a special token)."""
    from ctkd_inspect.text import token_bytes

    token = tokens.tokens[index]
    if tokens.special[index]:
        return token.encode("utf-8")
    return token_bytes(token, tokens.scheme, tokens.continuation_prefix)


def bar(count: float, largest: float, width: int) -> str:
    """A horizontal bar of ``width`` cells for ``count`` out of ``largest`` (eighth-cell resolution)."""
    if largest <= 0:
        return ""
    eighths = round(count / largest * width * 8)
    return "█" * (eighths // 8) + (BARS[eighths % 8] if eighths % 8 else "")


def alignment_metrics(alignment) -> Table:
    """The current text's metrics: alignment rate, the shape histogram, coverage, fertility, unmatched tokens."""
    table = Table.grid(padding=(0, 1))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    m = alignment.metrics
    table.add_row("alignment rate", Text(pct(m.get("alignment_rate")), style="bold"))
    table.add_row("groups", str(m.get("groups", len(alignment.table))))
    shapes = m.get("shapes", {})
    largest = max(shapes.values(), default=0)
    for name, count in shapes.items():
        table.add_row(f"  {name}", Text.assemble((f"{count:>5} ", ""), (bar(count, largest, 12), "green" if
                                                                          name == "1:1" else "yellow")))
    table.add_row("text in 1:1", pct(m.get("text_coverage_1to1")))
    table.add_row("text exact", pct(m.get("text_coverage_exact")))
    fertility = m.get("fertility")
    table.add_row("fertility", f"{fertility:.3f}" if isinstance(fertility, (int, float)) else "n/a")
    for side in ("teacher", "student"):
        counts = m.get("unmatched", {}).get(side, {})
        table.add_row(f"unmatched {side}", ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "none")
    for key, value in m.items():
        if key in ("alignment_rate", "groups", "shapes", "exact_groups", "text_coverage_1to1", "text_coverage_exact",
                   "unmatched", "tokens", "fertility", "max_group_tokens"):
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            table.add_row(key.replace("_", " "), f"{value:.4g}" if isinstance(value, float) else str(value))
    return table


def rate_histogram(rates: np.ndarray, bins: int = 20) -> Text:
    """One line of block characters: how many rows fall in each alignment-rate bin (0% left, 100% right)."""
    known = rates[~np.isnan(rates)]
    if not len(known):
        return Text("no rates yet", style="dim italic")
    counts, _ = np.histogram(known, bins=bins, range=(0.0, 1.0))
    largest = counts.max()
    cells = "".join(BARS[min(8, int(np.ceil(c / largest * 8)))] if c else " " for c in counts)
    return Text.assemble(("0% ", "dim"), (cells, "green on #303030"), (" 100%", "dim"))


def dataset_overview(source, shapes: dict, progress: tuple[int, int] | None) -> RenderGroup:
    """A data set's size, rate statistics, the rate histogram and the shape totals."""
    rates = source.rates
    known = rates[~np.isnan(rates)]
    lines = []
    head = Text.assemble((f"{len(source):,} texts", "bold"), (f" · {source.label}", "dim"))
    if source.kind == "report" and getattr(source, "engines", None):
        head.append(f" · engine {', '.join(source.engines)}", "dim")
    lines.append(head)
    if len(known):
        lines.append(Text.assemble(("rate ", "dim"), (f"mean {known.mean():.1%}", "bold"),
                                   f"  median {np.median(known):.1%}  min {known.min():.1%}  max {known.max():.1%}"))
    if progress is not None:
        lines.append(Text(f"aligned {progress[0]:,} of {progress[1]:,} texts…", style="yellow"))
    elif source.kind == "data" and len(known) < len(source):
        lines.append(Text(f"{len(known):,} of {len(source):,} texts aligned (rows align when opened)", style="dim"))
    lines.append(rate_histogram(rates))
    if shapes:
        total = sum(shapes.values())
        lines.append(Text("shapes  " + "  ".join(f"{k} {v / total:.1%}" for k, v in shapes.items() if v),
                          style="dim"))
    return RenderGroup(*lines)


def diff_figures(diff, label_a: str, label_b: str) -> Text:
    """The diff's verdict, counts and boundary figures."""
    out = Text(end="")
    if diff.differs:
        out.append("the alignments differ", "bold red")
    else:
        out.append("the same groups", "bold green")
    out.append(f"   a = {label_a}   b = {label_b}\n", "dim")
    out.append(f"groups a {diff.groups_a}  b {diff.groups_b}   ")
    out.append(f"agree {diff.agree}", "green")
    out.append("  ")
    out.append(f"split {diff.split}", "yellow")
    out.append("  ")
    out.append(f"merge {diff.merge}", "cyan")
    out.append("  ")
    out.append(f"cross {diff.cross} (b {diff.cross_b})", "red")
    out.append(f"\nboundaries  precision {diff.boundary_precision:.3f}  recall {diff.boundary_recall:.3f}  "
               f"F1 {diff.boundary_f1:.3f}")
    return out


def lookup_panel(result, mined_state: str, mined_error: str) -> Text:
    """The looked-up token and its exact and MinED counterparts."""
    out = Text(end="")
    out.append(f"{result.side} ", "dim")
    if result.id is None:
        out.append(repr(result.token), "bold")
        out.append("  is not a token of this vocabulary (its nearest tokens below)\n", "yellow")
    else:
        out.append(f"#{result.id} ", "dim")
        out.append(result.token, "bold")
        out.append(f"  stands for {result.text!r}", "dim")
        if result.special:
            out.append("  special: never mapped", "yellow")
        out.append("\n")
    out.append(f"→ {result.other}\n", "dim")
    out.append("exact  ", "bold")
    if result.exact is None:
        out.append("none (no token with the same bytes)\n", "dim")
    else:
        out.append(f"#{result.exact.id} {result.exact.token}  ({result.exact.text!r})\n")
    out.append("MinED  ", "bold")
    if result.mined is not None:
        out.append(f"#{result.mined.id} {result.mined.token}  ({result.mined.text!r})  edit distance "
                   f"{int(result.mined.distance)}\n")
    elif mined_state == "computing":
        out.append("computing the MinED mapping (progress below; cached afterwards)\n", "yellow")
    elif mined_state == "failed":
        out.append(f"failed: {mined_error}\n", "red")
    elif mined_state == "ready":
        out.append("unmapped\n", "dim")
    else:
        out.append("press m to load or compute the MinED mapping (minutes the first time for a pair; cached)\n",
                   "dim")
    return out


def finding_detail(finding) -> Text:
    out = Text(end="")
    colour = {"error": "bold red", "warning": "bold yellow", "info": "bold cyan"}.get(finding.severity, "bold")
    out.append(f"{finding.severity} · {finding.kind}\n", colour)
    out.append(f"{finding.title}\n\n", "bold")
    out.append(f"{finding.detail}\n")
    if finding.example:
        out.append("\nexample  ", "dim")
        out.append(f"{finding.example}\n")
    if finding.advice:
        out.append("\nadvice  ", "dim")
        out.append(f"{finding.advice}\n")
    return out


def failure_example(example: dict) -> Text:
    out = Text(end="")
    out.append(f"text {example.get('text_index', 0)}", "bold")
    if example.get("group", -1) >= 0:
        out.append(f" · group {example['group']}", "bold")
    out.append(f" · chars {example.get('start')}–{example.get('end')}\n", "dim")
    out.append(f"kinds {', '.join(example.get('kinds', []))}\n", "yellow")
    out.append("text ", "dim")
    out.append(repr(example.get("text", "")) + "\n")
    out.append("teacher ", "dim")
    out.append(pieces_text(example.get("teacher_pieces", [])) + "\n")
    out.append("student ", "dim")
    out.append(pieces_text(example.get("student_pieces", [])) + "\n")
    if example.get("detail"):
        out.append(f"{example['detail']}\n", "italic")
    out.append("\nEnter opens it on the Alignment screen", "dim")
    return out
