"""Corpus runs: alignments of whole data sets, resumable, on local processes or Ray, with summaries and reports.

- :func:`~ctkd_inspect.corpus.batch.align_batch`: the per-batch function every backend runs;
- :class:`~ctkd_inspect.corpus.summary.CorpusSummary`: the mergeable statistics of a run;
- :func:`~ctkd_inspect.corpus.runner.run_corpus`: the whole run (``ctkd-inspect corpus``);
- :func:`~ctkd_inspect.corpus.report.write_report`: the self-contained HTML report.

Nothing here imports a UI toolkit or torch; pyarrow, datasets, matplotlib and ray are imported inside functions.
"""

from __future__ import annotations

from .batch import align_batch
from .report import report_html, write_report
from .runner import CorpusInterrupted, CorpusResult, run_corpus
from .spec import CorpusSpec, output_schema
from .summary import CorpusSummary, load_summary

__all__ = ["CorpusInterrupted", "CorpusResult", "CorpusSpec", "CorpusSummary", "align_batch", "load_summary",
           "output_schema", "report_html", "run_corpus", "write_report"]
