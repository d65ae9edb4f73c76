"""Every example notebook runs from top to bottom, offline, and shows what it is there to show.

Notebooks are executed with nbclient in a fresh kernel; each has its own check of the outputs it must produce
(the one with the real models is marked slow). They are committed without outputs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
WIDGET = "application/vnd.jupyter.widget-view+json"


def execute(path: Path):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return notebook


class Outputs:
    def __init__(self, notebook):
        self.all = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
        self.errors = [o for o in self.all if o.output_type == "error"]
        self.stdout = "".join(o.text for o in self.all if o.output_type == "stream" and o.name == "stdout")
        self.html = [o.data["text/html"] for o in self.all if "text/html" in o.get("data", {})]
        self.images = [o for o in self.all if "image/png" in o.get("data", {})]
        self.widgets = [o for o in self.all if WIDGET in o.get("data", {})]


def check_span_alignment(out: Outputs) -> None:
    assert "span: llama3 (20 tokens) → gemma2 (20 tokens), 16 groups, alignment rate 63.2%" in out.stdout
    for pair in ("llama3 → gemma2", "gemma3 → smollm2", "llama2 → bert"):
        assert re.search(rf"{pair} +alignment rate \d+\.\d%", out.stdout), pair
    # the bipartite graph's components: the 16 groups and the two BOS tokens
    assert any(o.get("data", {}).get("text/plain") == "18" for o in out.all)


def check_quick_tour(out: Outputs) -> None:
    # the README's figures for this text and pair
    assert "span: llama3 (20 tokens) → gemma2 (20 tokens), 16 groups, alignment rate 63.2%" in out.stdout
    assert "85,699 of 128,000 Llama 3 tokens have an exact Gemma 2 partner" in out.stdout
    assert "digit-run" in out.stdout and "byte-split" in out.stdout
    assert any('class="tok' in h and "title=" in h for h in out.html)  # the alignment's own HTML view
    assert any('data-disagree="true"' in h for h in out.html)  # the diff view of span against mined
    assert out.widgets  # the explorer


def check_three_papers(out: Outputs) -> None:
    for engine in ("span", "mined", "cdm", "softdtw"):
        assert re.search(rf"^  {engine} +alignment rate +\d+\.\d%", out.stdout, re.M), engine
    assert "top1_accuracy" in out.stdout and "projector_loo_r2" in out.stdout
    assert "span vs cdm" in out.stdout and "soft-DTW divergence" in out.stdout
    assert sum('data-disagree="true"' in h for h in out.html) >= 1
    assert len(out.images) == 2  # the entropies and the soft alignment heat map


def check_corpus_analysis(out: Outputs) -> None:
    assert "300 texts" in out.stdout and re.search(r"alignment rate: corpus \d+\.\d%", out.stdout)
    assert "merge-mismatch" in out.stdout
    assert len(out.images) == 2
    assert any("failure taxonomy" in h for h in out.html)
    assert any('class="tok' in h for h in out.html)  # the worst text, read back from the Parquet file
    assert out.widgets  # the corpus report widget


def check_explorer(out: Outputs) -> None:
    assert out.widgets
    assert "span: llama3 (20 tokens) → gemma2 (20 tokens), 16 groups, alignment rate 63.2%" in out.stdout


def check_distillation(out: Outputs) -> None:
    # a SeDi run through run_distillation: its terms and statistics, TensorBoard read back, three losses, resume
    for key in ("term/ce", "term/kl", "term/entropy", "stat/alignment_rate", "stat/span_alignment_rate"):
        assert re.search(rf"^{re.escape(key)} +\d+\.\d{{4}}$", out.stdout, re.M), key
    assert re.search(r"span alignment rate of the last batch: \d+\.\d%", out.stdout)
    assert re.search(r"held-out: loss \d+\.\d+, Rouge-L \d\.\d{3}", out.stdout)
    assert "points of term/kl: [(1, " in out.stdout and "(4, " in out.stdout
    for name in ("sedi", "sft", "mined"):
        assert re.search(rf"^{name} +\d+\.\d{{4}} +\d+\.\d{{4}}", out.stdout, re.M), name
    assert "resuming from" in out.stdout and "checkpoint-4 (step 4 of 6" in out.stdout
    assert "steps logged: [5, 6]" in out.stdout
    assert len(out.images) == 1  # the loss curves


CHECKS = {
    "span_alignment.ipynb": check_span_alignment,
    "01_quick_tour.ipynb": check_quick_tour,
    "02_three_papers.ipynb": check_three_papers,
    "03_corpus_analysis.ipynb": check_corpus_analysis,
    "explorer.ipynb": check_explorer,
    "04_distillation.ipynb": check_distillation,
}
SLOW = {"02_three_papers.ipynb"}  # loads Gemma-3-270M and SmolLM2-135M (about a minute on a CPU when cold)


def _params():
    for path in NOTEBOOKS:
        marks = [pytest.mark.slow, pytest.mark.models] if path.name in SLOW else []
        yield pytest.param(path, id=path.name, marks=marks)


@pytest.mark.parametrize("path", list(_params()))
def test_notebook_runs_and_shows_its_point(path):
    out = Outputs(execute(path))
    assert not out.errors, [f"{e.ename}: {e.evalue}" for e in out.errors]
    CHECKS[path.name](out)


def test_every_notebook_has_a_check_and_is_committed_without_outputs():
    assert {p.name for p in NOTEBOOKS} == set(CHECKS)
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code), path.name
