"""The core imports no UI toolkit and no torch (DESIGN.md, principle 1)."""

import subprocess
import sys

import pytest

CORE_MODULES = [
    "ctkd_inspect", "ctkd_inspect.api", "ctkd_inspect.sources", "ctkd_inspect.text", "ctkd_inspect.alignment",
    "ctkd_inspect.metrics", "ctkd_inspect.render", "ctkd_inspect.engines", "ctkd_inspect.engines.span",
    "ctkd_inspect.engines.dtw", "ctkd_inspect.engines.dtw_core", "ctkd_inspect.vocab", "ctkd_inspect.engines.softdtw",
    "ctkd_inspect.batch.band", "ctkd_inspect.batch._softdtw_cpu", "ctkd_inspect.engines.options",
    "ctkd_inspect.engines.base", "ctkd_inspect.progress", "ctkd_inspect.extras", "ctkd_inspect.outputs",
    "ctkd_inspect.columns", "ctkd_inspect.diffs",
    "ctkd_inspect.failures", "ctkd_inspect.checks", "ctkd_inspect.data", "ctkd_inspect.exports",
    "ctkd_inspect.lookup", "ctkd_inspect.html",
    "ctkd_inspect.corpus", "ctkd_inspect.corpus.batch", "ctkd_inspect.corpus.runner", "ctkd_inspect.corpus.report",
    "ctkd_inspect.sources.rust", "ctkd_inspect.sources.files", "ctkd_inspect.sources.thirdparty",
    "ctkd_inspect.sources.verify", "ctkd_inspect.sources.cache", "ctkd_inspect.sources.assets",
    # the DTW kernel shared by the engines and the losses; the losses' data pipeline runs without torch
    "ctkd_inspect.batch.dtw", "ctkd_inspect.losses", "ctkd_inspect.losses.data",
]
FORBIDDEN = ["torch", "textual", "ipywidgets", "click", "rich"]


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_imports_nothing_forbidden(module):
    code = (f"import sys, importlib; importlib.import_module({module!r}); "
            f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"{module} imported {out}"


def test_alignment_runs_without_torch_or_ui():
    """A whole span alignment, including tokenizer loading, with torch blocked from importing."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import ctkd_inspect\n"
        "a = ctkd_inspect.align('llama3', 'gemma2', 'The café costs 3.50€')\n"
        "assert a.metrics['alignment_rate'] > 0\n"
        f"print(','.join(m for m in {FORBIDDEN!r} if sys.modules.get(m) is not None))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
