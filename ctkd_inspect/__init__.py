"""ctkd-inspect: see, measure and use the alignment between any two tokenizers.

Entry points::

    import ctkd_inspect
    tok = ctkd_inspect.load_tokenizer("llama3")            # offline alias, path or hub id
    result = ctkd_inspect.align("llama3", "gemma2", "The café costs 3.50€")
    result.metrics["alignment_rate"], result.to_dict()      # the --json document

Names are imported lazily (PEP 562) so ``import ctkd_inspect`` stays fast and pulls in neither transformers nor
torch until they are needed.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "align": "ctkd_inspect.api",
    "tokenize_pair": "ctkd_inspect.api",
    "load_tokenizer": "ctkd_inspect.sources",
    "resolve_tokenizer": "ctkd_inspect.sources",
    "RustTokenizer": "ctkd_inspect.sources",
    "load_tokenizers": "ctkd_inspect.sources",
    "Alignment": "ctkd_inspect.alignment",
    "Group": "ctkd_inspect.alignment",
    "GroupTable": "ctkd_inspect.alignment",
    "Tokenization": "ctkd_inspect.text",
    "tokenize": "ctkd_inspect.text",
    "compute_metrics": "ctkd_inspect.metrics",
    "diff": "ctkd_inspect.diffs",
    "AlignmentDiff": "ctkd_inspect.diffs",
    "check_pair": "ctkd_inspect.checks",
    "classify_groups": "ctkd_inspect.failures",
    "FailureSummary": "ctkd_inspect.failures",
    "read_texts": "ctkd_inspect.data",
    "soft_dtw": "ctkd_inspect.batch.softdtw",
    "soft_dtw_divergence": "ctkd_inspect.batch.softdtw",
    "soft_dtw_from_cost": "ctkd_inspect.batch.softdtw",
    "get_engine": "ctkd_inspect.engines",
    "engine_names": "ctkd_inspect.engines",
    "CtkdError": "ctkd_inspect.errors",
    "TokenizerNotFound": "ctkd_inspect.errors",
    "TokenizerLoadError": "ctkd_inspect.errors",
    "EngineError": "ctkd_inspect.errors",
    "InputError": "ctkd_inspect.errors",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ctkd_inspect' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
