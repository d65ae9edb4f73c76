"""The HTML report of a corpus run: one self-contained file, readable offline.

:func:`write_report` writes (and :func:`report_html` returns) a page with the run's key figures; matplotlib
figures embedded as base64 PNG images (alignment rate per text, group shapes and sizes, the length ratio of the two
tokenizations, the failure taxonomy); the taxonomy table with each kind's counts and its examples; and the worst
texts. Every example and every worst text is clickable: a link or a click on the row expands, in the page, the
two tokenizations around it with its group outlined (the ribbons of :mod:`ctkd_inspect.html`, coloured by the
presentation model like every front-end). Expanding needs the run's Parquet file when the report is written (it
reads only the rows it shows); without it the examples show their tokens only.

Nothing is fetched: no script, style sheet, font or image comes from anywhere else (the one small inline script
opens an example when the address names it). :meth:`CorpusSummary._repr_html_
<ctkd_inspect.corpus.summary.CorpusSummary._repr_html_>` shows the same content in a notebook.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..failures import KINDS
from ..render import visible

if TYPE_CHECKING:  # pragma: no cover
    from ..alignment import Alignment
    from .summary import CorpusSummary

__all__ = ["KIND_DESCRIPTIONS", "report_fragment", "report_html", "write_report"]

#: One line per failure kind (the full definitions are in :mod:`ctkd_inspect.failures`).
KIND_DESCRIPTIONS = {
    "special": "special-token text in the data, or a control token only one side has",
    "unknown-token": "an unknown token ([UNK], <unk>) stands for the text on one side",
    "normalisation": "a side's tokens do not spell the text verbatim (case, accents, NFC/NFKC, dropped characters)",
    "byte-split": "a character split across byte tokens (byte-level BPE, SentencePiece byte fallback)",
    "digit-run": "a run of digits cut differently (Llama 3 groups three digits, Gemma cuts each)",
    "whitespace-run": "a run of spaces, tabs or newlines cut differently",
    "leading-space": "a word's leading space attached on one side and alone on the other, or a dummy prefix",
    "merge-mismatch": "ordinary text merged differently by the two vocabularies",
}

_WINDOW_GROUPS = 8  # groups shown on each side of an example's group

_PAGE_STYLE = """<style>
body { margin: 0; background: #fbfbfd; color: #1d1d1f; }
.corpus-report { max-width: 1180px; margin: 0 auto; padding: 18px 26px 60px 26px; }
.corpus-report h1 { font-size: 22px; margin: 4px 0 2px 0; }
.corpus-report h2 { font-size: 17px; margin: 26px 0 8px 0; padding-bottom: 3px; border-bottom: 2px solid #2e6da4; }
.corpus-report .subtitle { color: #555; margin-bottom: 12px; }
.corpus-report table.figures td:first-child { color: #555; }
.corpus-report .plots { display: flex; flex-wrap: wrap; gap: 14px; }
.corpus-report figure { margin: 0; background: #fff; border: 1px solid #e2e2e8; border-radius: 6px; padding: 6px; }
.corpus-report figure img { display: block; max-width: 100%; height: auto; }
.corpus-report figcaption { font-size: 12px; color: #555; padding: 2px 4px; max-width: 540px; }
.corpus-report details.example { margin: 4px 0; border: 1px solid #e2e2e8; border-radius: 6px; background: #fff; }
.corpus-report details.example > summary { padding: 4px 8px; }
.corpus-report details.example[open] > summary { background: #eef3fa; }
.corpus-report details.example .body { padding: 4px 12px 10px 12px; }
.corpus-report details.example:target { box-shadow: 0 0 0 2px #2e6da4; }
.corpus-report .context { font-family: ui-monospace, Menlo, Consolas, "DejaVu Sans Mono", monospace;
        white-space: pre-wrap; overflow-wrap: anywhere; background: #f3f3f7; padding: 4px 8px; border-radius: 4px; }
.corpus-report .context mark { background: #ffd166; display: inline-block; min-width: 0.6em; padding: 0 1px; }
.corpus-report a.example-link { text-decoration: none; border-bottom: 1px dotted #2e6da4; color: #1f4e79; }
.corpus-report td.kind { font-weight: bold; white-space: nowrap; }
.corpus-report td.desc { color: #555; max-width: 330px; }
.corpus-report .note { color: #666; font-size: 12px; }
</style>"""

# opens the <details> an address names (a click on an example link), so the linked example is shown expanded
_SCRIPT = """<script>
function ctkdOpenTarget() {
  var id = decodeURIComponent(location.hash.slice(1));
  var target = id && document.getElementById(id);
  if (target && target.tagName === "DETAILS") { target.open = true; }
}
window.addEventListener("hashchange", ctkdOpenTarget);
window.addEventListener("DOMContentLoaded", ctkdOpenTarget);
</script>"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _num(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,}"


# ---------------------------------------------------------------------------------------------------------------
# figures


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(data: str, caption: str, name: str) -> str:
    return (f'<figure data-plot="{_e(name)}"><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _plots(data: dict) -> list[str]:
    from ..extras import require

    require("corpus", feature="the corpus report's figures")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out = []
    blue, red = "#2e6da4", "#a00000"
    rate = data["alignment_rate"]
    counts = np.asarray(rate["histogram"]["counts"])
    if counts.sum():
        coarse = counts.reshape(50, -1).sum(axis=1)  # 1000 fine bins shown as 50
        figure, axis = plt.subplots(figsize=(5.0, 2.7))
        axis.bar(np.arange(50) / 50, coarse, width=1 / 50, align="edge", color=blue, edgecolor="white",
                 linewidth=0.4)
        if rate.get("median") is not None:
            axis.axvline(rate["median"], color="#ffb000", linewidth=2, label=f"median {rate['median']:.1%}")
        if rate.get("corpus") is not None:
            axis.axvline(rate["corpus"], color=red, linewidth=1.5, linestyle="--",
                         label=f"all tokens {rate['corpus']:.1%}")
        axis.set_xlim(0, 1)
        axis.set_xlabel("alignment rate of a text (student tokens in exact 1:1 groups)")
        axis.set_ylabel("texts")
        axis.legend(frameon=False, fontsize=8)
        axis.spines[["top", "right"]].set_visible(False)
        out.append(_figure(_png(figure), "Alignment rate per text. The dashed line is the token-weighted rate of "
                           "the whole corpus.", "alignment-rate"))

    shapes = data["shapes"]
    if sum(shapes.values()):
        figure, (left, right) = plt.subplots(1, 2, figsize=(5.9, 2.7), gridspec_kw={"width_ratios": [1.1, 1]})
        names = list(shapes)
        values = [shapes[k] for k in names]
        total = sum(values)
        colours = ["#2d8a45", blue, "#7a4a00", "#6b2463", red]
        bars = left.bar(range(len(names)), values, color=colours[:len(names)])
        left.set_xticks(range(len(names)), [n if n != "unmatched" else "none" for n in names], fontsize=8)
        for bar, value in zip(bars, values):
            left.annotate(f"{value / total:.0%}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                          ha="center", va="bottom", fontsize=8)
        left.set_ylabel("groups")
        left.set_title("group shapes (teacher:student; none: one side empty)", fontsize=8)
        left.spines[["top", "right"]].set_visible(False)
        matrix = np.asarray(data["group_sizes"]["matrix"], dtype=float)
        labels = data["group_sizes"]["labels"]
        shown = np.log10(matrix + 1)
        right.imshow(shown, cmap="Blues", origin="lower")
        for (i, j), value in np.ndenumerate(matrix):
            if value:
                right.text(j, i, _short(int(value)), ha="center", va="center", fontsize=7,
                           color="white" if shown[i, j] > shown.max() * 0.6 else "#1d1d1f")
        right.set_xticks(range(len(labels)), labels)
        right.set_yticks(range(len(labels)), labels)
        right.set_xlabel("student tokens in the group")
        right.set_ylabel("teacher tokens")
        right.set_title("group sizes", fontsize=9)
        figure.tight_layout()
        out.append(_figure(_png(figure), "Group shapes and sizes: how many tokens of each side a group holds "
                           "(groups with an empty side hold tokens without a partner).", "group-shapes"))

    ratio = data["length_ratio"]
    ratio_counts = np.asarray(ratio["histogram"]["counts"])
    if ratio_counts.sum() + ratio["histogram"]["below"] + ratio["histogram"]["above"]:
        edges = np.asarray(ratio["histogram"]["edges"])
        coarse = ratio_counts.reshape(60, -1).sum(axis=1)
        coarse_edges = edges[::len(edges) // 60][:61]
        figure, axis = plt.subplots(figsize=(5.0, 2.7))
        axis.bar(coarse_edges[:-1], coarse, width=np.diff(coarse_edges), align="edge", color="#178a8a",
                 edgecolor="white", linewidth=0.4)
        axis.set_xscale("log")
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        axis.xaxis.set_major_locator(LogLocator(base=10, subs=(0.125, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0)))
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.axvline(1, color="#555", linewidth=1)
        if ratio.get("median") is not None:
            axis.axvline(ratio["median"], color="#ffb000", linewidth=2, label=f"median {ratio['median']:.3g}")
            axis.legend(frameon=False, fontsize=8)
        low = max(ratio["min"] or 0.5, 1 / 8) * 0.9
        high = min(ratio["max"] or 2, 8) * 1.1
        axis.set_xlim(min(low, 0.9), max(high, 1.1))
        axis.set_xlabel(f"{data['teacher']} / {data['student']} tokens per text")
        axis.set_ylabel("texts")
        axis.spines[["top", "right"]].set_visible(False)
        out.append(_figure(_png(figure), "Length ratio of the two tokenizations per text: the teacher's logits "
                           "are this many rows per student row (with each side's vocabulary, what sets the memory of "
                           "a distillation step).", "length-ratio"))

    failures = data["failures"]
    kinds = failures.get("kinds", {})
    shares = [(kind, kinds[kind].get("student_token_share") or 0.0) for kind in KINDS if kind in kinds]
    if any(share for _, share in shares):
        figure, axis = plt.subplots(figsize=(5.9, 2.7))
        names = [k for k, _ in shares][::-1]
        values = [s for _, s in shares][::-1]
        axis.barh(names, values, color=red)
        for y, value in enumerate(values):
            axis.annotate(f" {value:.1%}", (value, y), va="center", fontsize=8)
        axis.set_xlabel("share of student tokens in failing groups, by primary kind")
        axis.set_xlim(0, max(values) * 1.25 or 1)
        axis.spines[["top", "right"]].set_visible(False)
        out.append(_figure(_png(figure), "Failure taxonomy: why student tokens are not in exact 1:1 groups "
                           "(each failing group counted once, under its primary kind).", "failure-taxonomy"))
    return out


def _short(value: int) -> str:
    if value >= 1_000_000:
        return f"{value / 1e6:.1f}M"
    if value >= 10_000:
        return f"{value / 1e3:.0f}k"
    return str(value)


# ---------------------------------------------------------------------------------------------------------------
# rows of the run, read back for the examples


class _Rows:
    """Reads the rows the report shows from the run's Parquet file, one row group at a time, each once."""

    def __init__(self, parquet: str | os.PathLike | None):
        self.file = None
        self.groups: dict[int, object] = {}
        if parquet is None or not Path(parquet).exists():
            return
        import pyarrow.parquet as pq

        try:
            self.file = pq.ParquetFile(parquet)
        except Exception:  # an unreadable file: the report shows the tokens only
            self.file = None
            return
        sizes = [self.file.metadata.row_group(k).num_rows for k in range(self.file.num_row_groups)]
        self.starts = np.concatenate([[0], np.cumsum(sizes)])

    def alignment(self, index: int) -> Alignment | None:
        if self.file is None or not 0 <= index < int(self.starts[-1]):
            return None
        from ..columns import from_arrow

        group = int(np.searchsorted(self.starts, index, side="right") - 1)
        table = self.groups.get(group)
        if table is None:
            table = self.file.read_row_group(group).replace_schema_metadata(self.file.schema_arrow.metadata)
            if len(self.groups) >= 16:  # a few row groups at a time: the report's memory stays bounded
                self.groups.pop(next(iter(self.groups)))
            self.groups[group] = table
        return from_arrow(table, index - int(self.starts[group]))


def _window(alignment: Alignment, group: int, around: int = _WINDOW_GROUPS) -> tuple[Alignment, int]:
    """The part of ``alignment`` from ``around`` groups before ``group`` to ``around`` after it (tokens of those
    groups and the special tokens between them), as an alignment of its own; and ``group``'s index in it."""
    from ..alignment import Alignment, GroupTable
    from ..text import Tokenization

    table = alignment.table
    first, last = max(0, group - around), min(len(table) - 1, group + around)
    sides = {}
    for name in ("teacher", "student"):
        tokens = getattr(alignment, name)
        owner = alignment.group_of(name)
        members = np.flatnonzero((owner >= first) & (owner <= last))
        if len(members):
            lo, hi = int(members.min()), int(members.max()) + 1
        else:  # no token of this side in the window: an empty slice where the window starts
            lo = hi = int(np.searchsorted(tokens.starts, alignment.group_spans()[first][0]))
        sides[name] = (lo, hi, Tokenization(
            name=tokens.name, text=tokens.text, ids=tokens.ids[lo:hi], tokens=tokens.tokens[lo:hi],
            starts=tokens.starts[lo:hi], ends=tokens.ends[lo:hi], special=tokens.special[lo:hi],
            scheme=tokens.scheme, source=tokens.source, continuation_prefix=tokens.continuation_prefix))
    lists = {}
    for name in ("teacher", "student"):
        lo, hi, _ = sides[name]
        lists[name] = [[int(k) - lo for k in getattr(table, name)(g) if lo <= k < hi] for g in range(first, last + 1)]
    part = GroupTable.from_lists(lists["teacher"], lists["student"])
    window = Alignment(sides["teacher"][2], sides["student"][2], part, engine=alignment.engine,
                       options=alignment.options)
    return window, group - first


def _context(text: str, start: int, end: int, around: int = 90) -> str:
    lo, hi = max(0, start - around), min(len(text), end + around)
    before, inside, after = text[lo:start], text[start:end], text[end:hi]
    return (f'<div class="context">{"…" if lo else ""}{_e(visible(before))}<mark>{_e(visible(inside)) or "∅"}'
            f'</mark>{_e(visible(after))}{"…" if hi < len(text) else ""}</div>')


def _pieces(values) -> str:
    return " ".join(f"<code>{_e(visible(p) or '∅')}</code>" for p in values) or "—"


def _expanded(rows: _Rows, index: int, group: int | None, anchor: str) -> str:
    from ..html import alignment_html

    alignment = rows.alignment(index)
    if alignment is None:
        return '<div class="note">the run\'s Parquet file was not available when this report was written</div>'
    if group is not None and 0 <= group < len(alignment.table):
        window, focus = _window(alignment, group)
        start, end = (int(v) for v in alignment.group_spans()[group])
        outline = (f'<style>#{anchor} .tok[data-group="{focus}"] {{ outline: 3px solid #ffb000; '
                   "outline-offset: 1px; }</style>")
        return (_context(alignment.text, start, end) + outline
                + alignment_html(window, table=False, metrics=False, max_cells=None)
                + f'<div class="note">{_WINDOW_GROUPS} groups on each side of the outlined group; row {index} of '
                  "the Parquet file holds the whole text</div>")
    return alignment_html(alignment, max_groups=0, metrics=True, max_cells=600)


# ---------------------------------------------------------------------------------------------------------------
# the page


def _figures_table(data: dict) -> str:
    rate, ratio = data["alignment_rate"], data["length_ratio"]
    tokens = data["tokens"]
    rows = [
        ("texts", f"{data['texts']:,}" + (f" ({rate['undefined_texts']:,} without student tokens)"
                                          if rate.get("undefined_texts") else "")),
        ("characters", f"{data['characters']:,}"),
        ("tokens", f"{data['teacher']} {tokens['teacher']:,} · {data['student']} {tokens['student']:,}"),
        ("alignment rate, all tokens", _pct(rate.get("corpus"))),
        ("alignment rate per text", f"mean {_pct(rate.get('mean'))} · median {_pct(rate.get('median'))} · "
                                    f"p10 {_pct((rate.get('percentiles') or {}).get('p10'))} · "
                                    f"p90 {_pct((rate.get('percentiles') or {}).get('p90'))}"),
        ("groups", f"{data['groups']:,} ({data['exact_groups']:,} exact 1:1)"),
        ("length ratio (teacher/student)", f"all tokens {_num(ratio.get('corpus'))} · per text median "
                                           f"{_num(ratio.get('median'))}, p5–p95 "
                                           f"{_num((ratio.get('percentiles') or {}).get('p5'))}–"
                                           f"{_num((ratio.get('percentiles') or {}).get('p95'))}"),
    ]
    logits = data.get("logits")
    if logits:
        mean = logits["mean_bytes_per_text"]
        vocab = data.get("vocab_size", {})
        rows.append(("logits per text (float32)", f"{data['teacher']} {mean['teacher'] / 1e6:,.1f} MB "
                     f"({vocab.get('teacher', 0):,} vocabulary) · {data['student']} {mean['student'] / 1e6:,.1f} MB "
                     f"({vocab.get('student', 0):,})"))
    read = data.get("read") or {}
    skipped = []
    if read.get("skipped"):
        skipped.append(f"{read['skipped']:,} malformed (lines {', '.join(map(str, read.get('skipped_lines', [])))}"
                       f"{', …' if read['skipped'] > len(read.get('skipped_lines', [])) else ''})")
    if read.get("empty"):
        skipped.append(f"{read['empty']:,} empty")
    if read.get("too_long"):
        skipped.append(f"{read['too_long']:,} longer than {read.get('max_text_bytes') or 0:,} bytes")
    if skipped:
        rows.append(("skipped records", "; ".join(skipped)))
    run = data.get("run") or {}
    if run.get("elapsed_s") is not None:
        resumed = (f" ({run['resumed_shards']} done by an earlier, interrupted run)" if run.get("resumed_shards")
                   else "")
        speed = (f"{run.get('aligned_texts', 0):,} texts aligned in {run['elapsed_s']:,.1f} s · "
                 f"{_num(run.get('texts_per_s'))} texts/s · {_num(run.get('tokens_per_s'))} tokens/s"
                 if run.get("aligned_texts") else f"{run['elapsed_s']:,.1f} s")
        rows.append(("run", f"{run.get('backend')} · {run.get('workers')} worker(s) · {run.get('shards')} shards"
                     f"{resumed} · {speed}"))
    body = "".join(f'<tr><td>{_e(k)}</td><td data-figure="{_e(k)}">{_e(v)}</td></tr>' for k, v in rows)
    return f'<table class="figures">{body}</table>'


def _taxonomy(data: dict, rows: _Rows) -> str:
    failures = data["failures"]
    kinds = failures.get("kinds", {})
    examples = failures.get("examples", {})
    table, blocks = [], []
    for kind in KINDS:
        record = kinds.get(kind)
        if not record:
            continue
        links = []
        kept = examples.get(kind, [])
        if kept:
            blocks.append(f'<h4 class="kind-examples">{_e(kind)} <span class="note">{len(kept)} example'
                          f'{"s" if len(kept) != 1 else ""}: {_e(KIND_DESCRIPTIONS.get(kind, ""))}</span></h4>')
        for number, example in enumerate(kept):
            anchor = f"ex-{kind}-{number}"
            # brackets keep a link clickable when its text is a combining mark or a zero-width character
            label = f"‹{visible(example.get('text', ''))[:24] or '∅'}›"
            links.append(f'<a class="example-link" href="#{anchor}" data-example="{anchor}">{_e(label)}</a>')
            where = (f"row {example['text_index']}" + (f", group {example['group']}" if example["group"] >= 0
                                                        else f", {example.get('side', '')} side"))
            summary_line = (f"<b>{_e(kind)}</b> · {_e(where)} · characters {example['start']}–{example['end']} · "
                            f"teacher {_pieces(example.get('teacher_pieces', []))} · student "
                            f"{_pieces(example.get('student_pieces', []))}"
                            + (f" · <i>{_e(example['detail'])}</i>" if example.get("detail") else ""))
            body = _expanded(rows, int(example["text_index"]), example["group"] if example["group"] >= 0 else None,
                             anchor)
            blocks.append(f'<details class="example" id="{anchor}" data-kind="{_e(kind)}"><summary>{summary_line}'
                          f'</summary><div class="body">{body}</div></details>')
        table.append(
            f'<tr data-kind="{_e(kind)}"><td class="kind">{_e(kind)}</td><td class="desc">'
            f'{_e(KIND_DESCRIPTIONS.get(kind, ""))}</td><td class="num">{record.get("primary_groups", 0):,}</td>'
            f'<td class="num">{record.get("groups", 0):,}</td><td class="num">'
            f'{_pct(record.get("student_token_share"))}</td><td class="num">{_pct(record.get("character_share"))}'
            f'</td><td>{" ".join(links) or "—"}</td></tr>')
    unpaired = failures.get("unpaired_specials", {})
    note = (f'<p class="note">Special tokens only one side inserts: {_e(data["teacher"])} '
            f'{unpaired.get("teacher", 0):,}, {_e(data["student"])} {unpaired.get("student", 0):,} (counted under '
            "special).</p>") if any(unpaired.values()) else ""
    head = ("<tr><th>kind</th><th>what it is</th><th class='num'>groups (primary)</th><th class='num'>groups "
            "(any)</th><th class='num'>student tokens</th><th class='num'>characters</th><th>examples "
            "(click to expand)</th></tr>")
    total = failures.get("failed_groups", 0)
    intro = (f"<p>{total:,} of {failures.get('groups', 0):,} groups are not exact 1:1 pairs; they hold "
             f"{_pct(failures.get('student_token_share_failed'))} of the student tokens. Each failing group has one "
             "primary kind (the first in this table's order) and may have others.</p>")
    return (intro + f'<table class="taxonomy">{head}{"".join(table)}</table>{note}'
            + (f'<h3 style="font-size:14px">examples</h3>{"".join(blocks)}' if blocks else ""))


def _worst(data: dict, rows: _Rows) -> str:
    worst = data.get("worst_texts", [])
    if not worst:
        return "<p>No text has student tokens.</p>"
    table, blocks = [], []
    for number, record in enumerate(worst):
        anchor = f"worst-{number}"
        line = record.get("source_line")
        table.append(f'<tr data-row="{record["index"]}"><td class="num"><a class="example-link" href="#{anchor}">'
                     f'{record["index"]}</a></td><td class="num">{"" if line is None else line}</td>'
                     f'<td class="num">{_pct(record["alignment_rate"])}</td><td class="num">'
                     f'{record["failed_student_tokens"]:,} / {record["student_tokens"]:,}</td>'
                     f'<td><code>{_e(visible(record.get("preview", ""))[:110])}</code></td></tr>')
        blocks.append(f'<details class="example" id="{anchor}"><summary>row {record["index"]} · alignment rate '
                      f'{_pct(record["alignment_rate"])} · {record["characters"]:,} characters</summary>'
                      f'<div class="body">{_expanded(rows, int(record["index"]), None, anchor)}</div></details>')
    head = ("<tr><th class='num'>row</th><th class='num'>line</th><th class='num'>alignment rate</th>"
            "<th class='num'>student tokens not exact</th><th>start of the text</th></tr>")
    return f'<table class="worst">{head}{"".join(table)}</table>{"".join(blocks)}'


def report_fragment(summary: CorpusSummary | dict, *, parquet: str | os.PathLike | None = None) -> str:
    """The report's content as an HTML fragment (styles included, no ``<html>`` wrapper): what
    :meth:`CorpusSummary._repr_html_` shows in a notebook and :func:`report_html` puts in a page.

    Args:
        summary: a :class:`~ctkd_inspect.corpus.summary.CorpusSummary` or its ``to_dict()``.
        parquet: the run's output file, to expand examples into their tokenizations.

    Raises:
        MissingExtraError: matplotlib is not installed (the ``corpus`` extra).
    """
    from ..html import STYLE

    data = summary.to_dict() if hasattr(summary, "to_dict") else dict(summary)
    rows = _Rows(parquet)
    mode = " · statistics over the response only" if data.get("response_only") else ""
    subtitle = (f"engine {_e(data['engine'])}{_e(mode)} · data {_e((data.get('read') or {}).get('data', '—'))}")
    plots = "".join(_plots(data))
    parts = [
        f"<h1>Corpus report: {_e(data['teacher'])} → {_e(data['student'])}</h1>",
        f'<div class="subtitle">{subtitle}</div>',
        _figures_table(data),
        f'<h2>Distributions</h2><div class="plots">{plots}</div>',
        f"<h2>Failure taxonomy</h2>{_taxonomy(data, rows)}",
        f"<h2>Worst texts</h2><p>The texts with the largest share of student tokens outside exact 1:1 groups "
        f"(row: position in the Parquet file; line: in the data).</p>{_worst(data, rows)}",
        '<h2>Definitions</h2><p class="note">Alignment rate: share of non-special student tokens in exact 1:1 groups '
        "(one teacher and one student token covering the same characters). Length ratio: teacher tokens per student "
        "token of a text. Percentiles come from histograms (rates to 0.001). Groups and kinds as in the "
        "ctkd-inspect README; with prompt/response fields every statistic covers the response groups only.</p>",
    ]
    return f'{STYLE}{_PAGE_STYLE}<div class="ctkd corpus-report">{"".join(parts)}</div>{_SCRIPT}'


def report_html(summary: CorpusSummary | dict, *, parquet: str | os.PathLike | None = None) -> str:
    """The whole report as one self-contained HTML page (see the module docstring)."""
    data = summary.to_dict() if hasattr(summary, "to_dict") else dict(summary)
    title = f"ctkd-inspect corpus report: {data['teacher']} → {data['student']}"
    body = report_fragment(data, parquet=parquet if parquet is not None else getattr(summary, "parquet", None))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>{_e(title)}</title></head><body>{body}</body>'
            "</html>\n")


def write_report(summary: CorpusSummary | dict, path: str | os.PathLike, *, parquet: str | os.PathLike | None = None,
                 overwrite: bool = False) -> Path:
    """Write :func:`report_html` to ``path`` atomically.

    Raises:
        OutputError: the path cannot be written, or exists without ``overwrite`` (checked first).
        MissingExtraError: matplotlib is not installed.
    """
    from ..outputs import atomic_write_text, check_output_path

    target = check_output_path(path, suffixes=(".html", ".htm"), overwrite=overwrite, option="path")
    atomic_write_text(target, report_html(summary, parquet=parquet))
    return target
