"""The Failures screen: why groups are not exact 1:1 pairs (the failure taxonomy of :mod:`ctkd_inspect.failures`),
grouped by kind, for the current text or the whole data set, and the pair's preflight findings
(:func:`ctkd_inspect.checks.check_pair`) grouped by severity. Every example opens on the Alignment screen."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static, Tree

from ctkd_inspect.render import visible

from ..views import failure_example, finding_detail, pct
from ..widgets.steady import SteadyTree
from .base import View

SEVERITY_STYLE = {"error": "bold red", "warning": "bold yellow", "info": "cyan"}


class FailuresView(View):
    """Screen 5: failures and findings."""

    MODE = "failures"
    MAIN = "#failure-tree"
    AUTO_FOCUS = "#failure-tree"
    BINDINGS: ClassVar[list] = [
        Binding("r", "run_checks", "Preflight checks", id="run-checks"),
        Binding("c", "scope", "Text/data set", id="failure-scope"),
    ]

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="failures-body"):
            tree: Tree = SteadyTree("failures", id="failure-tree")
            tree.show_root = False
            yield tree
            with VerticalScroll(id="failure-detail-pane"):
                yield Static("", id="failure-detail")

    def on_mount(self) -> None:
        self.scope = "data" if self.app.dataset is not None else "text"
        self.watch(self.app, "alignment", self._changed, init=False)
        self.watch(self.app, "summary_tick", self._changed, init=False)
        self.watch(self.app, "dataset_tick", self._dataset_changed, init=False)
        self._changed()

    def _changed(self, _value=None) -> None:
        # a hidden view only notes the change: its tree is rebuilt when it is shown, or once the app is idle
        self.when_active(self._rebuild)

    def activated(self) -> None:
        if self.app.dataset is not None and self.scope == "data":
            self.app.ensure_dataset_summary()  # computed once, in the background, when first looked at
        super().activated()

    def _dataset_changed(self, _tick=None) -> None:
        if self.app.dataset is not None and self.scope == "text" and not getattr(self, "_scope_chosen", False):
            self.scope = "data"
            if self.active:
                self.app.ensure_dataset_summary()
            self._changed()

    # -- the tree ---------------------------------------------------------------------------------------------------

    def _summary(self):
        """(summary, label) of the scope shown, or (None, reason)."""
        from ctkd_inspect.failures import FailureSummary

        app = self.app
        if self.scope == "data" and app.dataset is not None:
            if app.dataset_summary is None:
                return None, f"summarising {app.dataset.label}… (progress below)"
            return app.dataset_summary, f"data set · {app.dataset_summary.texts:,} texts"
        if app.alignment is None:
            return None, app.align_error or "nothing aligned yet"
        summary = FailureSummary(max_examples=1000)
        prepared = app.prepared
        failures = prepared.failures if prepared is not None and prepared.alignment is app.alignment else None
        summary.add(app.alignment, 0, failures=failures)
        return summary, "this text"

    def _rebuild(self, _value=None) -> None:
        from ctkd_inspect.failures import KINDS

        tree = self.query_one("#failure-tree", Tree)
        tree.clear()
        summary, label = self._summary()
        failures = tree.root.add(f"Failures · {label}", data={"type": "scope"}, expand=True)
        if summary is None:
            failures.add_leaf(Text(label, style="dim"))
        else:
            share = summary.token_share()
            failures.set_label(Text.assemble(("Failures", "bold"), f" · {label} · {summary.failed_groups:,}/"
                                             f"{summary.groups:,} groups · {pct(share)} of tokens"))
            if not summary.failed_groups and not sum(summary.unpaired_specials.values()):
                failures.add_leaf(Text("every group is an exact 1:1 pair", style="green"))
            for kind in KINDS:
                count = summary.kinds.get(kind, 0)
                examples = summary.examples(kind)
                if not count and not examples:
                    continue
                # token shares count each group under its main (primary) kind only
                share = (f"{pct(summary.token_share(kind))} of tokens" if summary.primary.get(kind) else
                         "never the main cause")
                node = failures.add(Text.assemble((kind, "bold yellow"), f"  {_groups(count)} · {share}"),
                                    data={"type": "kind", "kind": kind, "count": count})
                for example in examples:
                    node.add_leaf(_example_label(example, self.scope == "data"),
                                  data={"type": "example", "kind": kind, "example": example, "scope": self.scope})
        self._add_findings(tree)
        tree.root.expand()

    def _add_findings(self, tree: Tree) -> None:
        app = self.app
        node = tree.root.add(Text("Preflight findings", style="bold"), data={"type": "findings"}, expand=True)
        if app.findings_error:
            node.add_leaf(Text(app.findings_error, style="red"))
        elif app.findings is None:
            running = any(w.group == "checks" and not w.is_finished for w in app.workers)
            node.add_leaf(Text("running the checks…" if running else "press r to run the preflight checks",
                               style="dim"))
        else:
            for severity in ("error", "warning", "info"):
                items = [f for f in app.findings if f.severity == severity]
                if not items:
                    continue
                branch = node.add(Text(f"{severity} ({len(items)})", style=SEVERITY_STYLE[severity]),
                                  data={"type": "severity", "severity": severity}, expand=severity != "info")
                for finding in items:
                    branch.add_leaf(Text(f"{finding.kind}: {finding.title}"),
                                    data={"type": "finding", "finding": finding})

    # -- selection ----------------------------------------------------------------------------------------------------

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        data = event.node.data or {}
        detail = self.query_one("#failure-detail", Static)
        if data.get("type") == "example":
            self.app.selected_failure = data
            detail.update(failure_example(data["example"]))
        elif data.get("type") == "finding":
            self.app.selected_failure = data
            detail.update(finding_detail(data["finding"]))
        elif data.get("type") == "kind":
            detail.update(_kind_help(data["kind"], data["count"]))
        elif data.get("type") == "findings":
            detail.update(Text("Preflight checks look at the two tokenizers (and the data set's texts, when one is "
                               "loaded) for what will break when distilling between them. r runs them.",
                               style="dim"))

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        data = event.node.data or {}
        if data.get("type") == "example":
            self.open_example(data)

    def open_example(self, data: dict) -> None:
        """Show an example on the Alignment screen: its group in the current text, or its row of the data set."""
        example = data["example"]
        group = example.get("group", -1)
        self.app.selected_failure = data
        if data.get("scope") == "data" and self.app.dataset is not None:
            self.app.open_row(example["text_index"], group if group >= 0 else None)
        else:
            if group >= 0:
                self.app.select_group(group)
            self.app.go("align")

    def action_run_checks(self) -> None:
        self.app.run_checks()

    def action_scope(self) -> None:
        if self.app.dataset is None:
            self.app.notify("no data set loaded: start with --data FILE or --report OUT.parquet", timeout=4)
            return
        self._scope_chosen = True
        self.scope = "text" if self.scope == "data" else "data"
        if self.scope == "data":
            self.app.ensure_dataset_summary()
        self._rebuild()


def _groups(count: int) -> str:
    return f"{count:,} group" + ("" if count == 1 else "s")


def _example_label(example: dict, with_text: bool) -> Text:
    out = Text(no_wrap=True, overflow="ellipsis")
    if with_text:
        out.append(f"{example.get('text_index', 0)}:", "dim")
    group = example.get("group", -1)
    out.append(f"g{group} " if group >= 0 else "special ", "dim")
    out.append(visible(example.get("text", "")) or "∅", "bold")
    teacher = "".join(f"[{visible(p)}]" for p in example.get("teacher_pieces", []))
    student = "".join(f"[{visible(p)}]" for p in example.get("student_pieces", []))
    out.append(f"  {teacher or '—'} ↔ {student or '—'}", "")
    return out


def _kind_help(kind: str, count: int) -> Text:
    from ctkd_inspect import failures

    doc = failures.__doc__ or ""
    marker = f"``{kind}``"
    start = doc.find(marker)
    text = ""
    if start >= 0:
        rest = doc[start + len(marker):]
        stop = rest.find("\n``")
        text = " ".join((rest if stop < 0 else rest[:stop]).split())
    return Text.assemble((f"{kind}\n", "bold yellow"), (f"{_groups(count)}\n\n", "dim"),
                         text.replace("``", "") or "")
