"""Long passes over a whole data set, run in a child process so the app's interface keeps the interpreter to itself.

A pass over 20,000 rows (summarising a corpus report's failures, aligning every text of a ``--data`` file) is tens
of seconds of pure Python. In a thread of the app's process it would hold the GIL for most of that time and every
keypress would wait for it; in a child process it costs the interface nothing. The child is started with
``spawn`` (never ``fork``: the app's process runs threads, and tokenizers and numba keep their own), its output is
discarded (it must never write over the screen), and it streams ``("progress", done, total, payload)`` messages,
then ``("result", payload)`` or ``("error", message)``, through a queue that :func:`run_pass` reads.

Nothing here imports textual: the child imports only :mod:`ctkd_inspect`.
"""

from __future__ import annotations

import contextlib
import os
import queue as queue_module
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator

#: Rows between two progress messages.
CHUNK = 500


def report_summary(path: str, emit: Callable) -> tuple[dict, dict]:
    """The failure summary (``FailureSummary.to_dict()``) and the shape totals of a corpus report's rows."""
    import pyarrow.parquet as pq

    from ctkd_inspect.columns import check_columns_version, iter_alignments
    from ctkd_inspect.failures import FailureSummary

    parquet = pq.ParquetFile(path)
    check_columns_version(parquet.schema_arrow)
    total = parquet.metadata.num_rows
    summary, shapes, index = FailureSummary(), Counter(), 0
    for batch in parquet.iter_batches(batch_size=CHUNK):
        # schema metadata travels with the file, not with each batch read
        batch = batch.replace_schema_metadata(parquet.schema_arrow.metadata)
        for alignment in iter_alignments(batch):
            summary.add(alignment, index)
            shapes.update(alignment.metrics.get("shapes", {}))
            index += 1
        emit(index, total, None)
    return summary.to_dict(), dict(shapes)


def data_pass(texts: list[str], teacher: str, student: str, engine: str, options: dict, cache_dir: str | None,
              emit: Callable) -> tuple[dict, dict]:
    """Every text aligned: progress payloads carry ``(first row, rates, group counts)`` of each chunk; the result is
    the failure summary and the shape totals."""
    from ctkd_inspect.api import align
    from ctkd_inspect.failures import FailureSummary
    from ctkd_inspect.sources import load_tokenizer

    tokenizers = [load_tokenizer(name, cache_dir=cache_dir, backend="rust") for name in (teacher, student)]
    summary, shapes = FailureSummary(), Counter()
    rates, groups, first = [], [], 0
    for index, text in enumerate(texts):
        try:
            alignment = align(*tokenizers, text, engine=engine, **options)
        except Exception:  # a text the engine refuses: its row says why when opened
            rates.append(float("nan"))
            groups.append(-1)
        else:
            rate = alignment.metrics.get("alignment_rate")
            rates.append(float("nan") if rate is None else float(rate))
            groups.append(len(alignment.table))
            summary.add(alignment, index)
            shapes.update(alignment.metrics.get("shapes", {}))
        if len(rates) == CHUNK or index == len(texts) - 1:
            emit(index + 1, len(texts), (first, rates, groups))
            first, rates, groups = index + 1, [], []
    return summary.to_dict(), dict(shapes)


PASSES = {"report_summary": report_summary, "data_pass": data_pass}


def _child(channel, name: str, args: tuple) -> None:
    # the child never writes to the terminal the app draws on
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
        os.dup2(devnull.fileno(), 2)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        result = PASSES[name](*args, lambda done, total, payload: channel.put(("progress", done, total, payload)))
        channel.put(("result", result))
    except BaseException as exc:  # reported to the app, which shows the message
        channel.put(("error", f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)))


_START_LOCK = threading.Lock()


@contextlib.contextmanager
def _plain_stdio() -> Iterator[None]:
    """``sys.stdout``/``sys.stderr`` as real files while a child starts.

    Starting a ``spawn`` child also starts multiprocessing's resource tracker, which passes ``sys.stderr``'s file
    descriptor on; inside the app both are Textual's capture objects (no descriptor), so they are swapped for
    ``/dev/null`` for the moment it takes (the children discard their output anyway).
    """
    with _START_LOCK, open(os.devnull, "w") as devnull:
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = devnull
        try:
            yield
        finally:
            sys.stdout, sys.stderr = saved


def run_pass(name: str, args: tuple, progress: Callable[[int, int, object], None],
             cancelled: Callable[[], bool]):
    """Run the pass ``name`` (a key of :data:`PASSES`) with ``args`` in a child process and wait for it.

    Args:
        progress: called with ``(done, total, payload)`` for each progress message (in the calling thread).
        cancelled: polled; when it returns True the child is terminated and ``None`` returned.

    Returns:
        The pass's result, or ``None`` when cancelled.

    Raises:
        RuntimeError: the pass failed in the child (its message), or the child died without a result.
    """
    import multiprocessing
    from multiprocessing import resource_tracker

    context = multiprocessing.get_context("spawn")
    with _plain_stdio():
        resource_tracker.ensure_running()
        channel = context.Queue()
        child = context.Process(target=_child, args=(channel, name, args), daemon=True)
        child.start()
    try:
        while True:
            if cancelled():
                return None
            try:
                message = channel.get(timeout=0.1)
            except queue_module.Empty:
                if not child.is_alive() and channel.empty():
                    raise RuntimeError(f"the background {name.replace('_', ' ')} stopped without a result "
                                       f"(exit code {child.exitcode})") from None
                continue
            if message[0] == "progress":
                progress(*message[1:])
            elif message[0] == "result":
                return message[1]
            else:
                raise RuntimeError(message[1])
    finally:
        if child.is_alive():
            child.terminate()
        child.join(timeout=5)
        with contextlib.suppress(Exception):
            channel.close()
