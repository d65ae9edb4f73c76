"""A corpus run: read a data set, align every text on local processes or Ray, write one Parquet file, resumably.

:func:`run_corpus` streams the texts of the data (:mod:`ctkd_inspect.data`: JSONL, plain text lines or paragraphs,
Parquet, a saved 🤗 dataset folder) into numbered **shards** of consecutive texts, aligns each shard with the
per-batch function :func:`~ctkd_inspect.corpus.batch.align_batch`, and assembles the shards into the output file.

**Where partial work lives, and resuming.** Beside ``OUT.parquet`` the run keeps a work folder
``OUT.parquet.work/``: ``manifest.json`` (the run's key: a fingerprint of the input — path, size, modification
time, hashes of its first and last MiB — and of everything that decides the rows: tokenizers, engine and options,
fields, limits, shard size), one ``shard-NNNNNN.parquet`` and ``shard-NNNNNN.summary.json`` per finished shard
(each written atomically), and ``done.jsonl``, a journal with one line per finished shard (appended and flushed to
disk after the shard's files exist). A killed run (Ctrl-C, SIGKILL, a crash, a reboot) loses at most the shards in
flight; **running the same command again** skips the finished shards and continues. A work folder with another
key (other input or options) is cleared with a note. When every shard is done, ``OUT.parquet`` is assembled
(written to a temporary file and renamed into place), the summary and report are written, and the work folder is
removed. The result is the same file whether the run was interrupted or not, and whatever the backend or the
number of workers: shard boundaries depend only on the input and the options, and each shard's rows only on its
texts. While a run holds a work folder it keeps a lock on it, so a second run on the same output is refused.

**Backends.** ``local``: ``workers`` processes (one process does all the work with ``workers=1``), each loading
the two tokenizers once and aligning whole shards; the main process reads the data and keeps at most two shards
per worker in flight, so memory stays flat however large the corpus. Why not ``datasets.Dataset.map(num_proc=…)``:
``IterableDataset.map`` (the streaming form) has no ``num_proc``, and ``Dataset.map`` with processes needs the
whole input converted into datasets' Arrow cache first (a second copy of the corpus and a full pass before the
first alignment); its cache resumes only whole per-process parts (a kill loses a ``1/num_proc`` share of the run),
and each call starts new processes that load the tokenizers again. The shards here are Arrow tables, and
``align_batch`` works as a ``datasets`` batched map function too. ``ray``: the same shards go through Ray Data
(``ray.data.from_arrow(...).map_batches(align_batch, batch_format="pyarrow")``) on a local Ray runtime or, with
``ray_address``, on a cluster; the driver writes the same shard files, so the output and resuming are identical.

Tokenizers run single-threaded in every worker (``TOKENIZERS_PARALLELISM=false``): the parallelism is the
processes'.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, OutputError
from ..progress import stage
from .spec import CorpusSpec, output_schema
from .summary import CorpusSummary

__all__ = ["CorpusInterrupted", "CorpusResult", "run_corpus", "work_folder_of"]

#: Version of the work-folder layout; a folder of another version is cleared.
WORK_FORMAT = 1
DEFAULT_SHARD_TEXTS = 2048
#: A shard also closes once it holds this many characters (a few long texts make a shard of their own).
DEFAULT_SHARD_CHARACTERS = 8 << 20
#: At most this many shards go through Ray Data at a time (the driver holds their input and output).
RAY_WINDOW_SHARDS = 64
#: Seconds to wait for a Ray address to answer before giving up.
RAY_CONNECT_TIMEOUT = float(os.environ.get("CTKD_INSPECT_RAY_TIMEOUT", "5"))


class CorpusInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C; its finished shards are kept (``work``, ``done`` of ``shards`` so far)."""

    def __init__(self, work: Path, done: int, texts: int):
        super().__init__(f"interrupted: {done} finished shard(s) ({texts:,} texts) are kept in {work}; run the same "
                         "command again to continue where it stopped")
        self.work, self.done, self.texts = work, done, texts


@dataclass
class CorpusResult:
    """What :func:`run_corpus` made.

    Attributes:
        output: the Parquet file (one row per text).
        summary: the run's :class:`~ctkd_inspect.corpus.summary.CorpusSummary`.
        report, summary_path: the HTML report and the summary JSON, when asked for.
        shards: shards in the run; ``resumed``: how many were already done when it started.
        elapsed: seconds of this invocation.
    """

    output: Path
    summary: CorpusSummary
    report: Path | None = None
    summary_path: Path | None = None
    shards: int = 0
    resumed: int = 0
    elapsed: float = 0.0
    read: dict = field(default_factory=dict)


def work_folder_of(output: str | os.PathLike) -> Path:
    """The work folder of a run writing ``output`` (``OUT.parquet`` → ``OUT.parquet.work``)."""
    path = Path(output)
    return path.with_name(path.name + ".work")


# ---------------------------------------------------------------------------------------------------------------
# fingerprints and the work folder


def _file_fingerprint(path: Path) -> dict:
    stat = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        digest.update(handle.read(1 << 20))
        if stat.st_size > 2 << 20:
            handle.seek(-(1 << 20), os.SEEK_END)
            digest.update(handle.read(1 << 20))
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256_ends": digest.hexdigest()}


def input_fingerprint(path: str | os.PathLike) -> dict:
    """What identifies an input for resuming: its resolved path, and size, modification time and the hash of the
    first and last MiB of every file (a folder: of each file in it)."""
    root = Path(path).expanduser().resolve()
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file())
        return {"path": str(root), "files": {str(p.relative_to(root)): _file_fingerprint(p) for p in files}}
    return {"path": str(root), **_file_fingerprint(root)}


class WorkFolder:
    """The work folder of one run (see the module docstring): manifest, shard files, journal and lock."""

    def __init__(self, path: Path, key: str, manifest: dict):
        self.path = path
        self.key = key
        self.manifest = manifest
        self.done: dict[int, dict] = {}
        self._lock = None
        self.cleared = False

    def shard_file(self, shard: int) -> Path:
        return self.path / f"shard-{shard:06d}.parquet"

    def summary_file(self, shard: int) -> Path:
        return self.path / f"shard-{shard:06d}.summary.json"

    def open(self) -> WorkFolder:
        """Create or adopt the folder, lock it, clear it when it belongs to another run, read the journal.

        Raises:
            OutputError: the path exists but is not a work folder, or another run holds the lock.
        """
        path = self.path
        if path.exists() and not path.is_dir():
            raise OutputError(f"{path} exists and is not a folder; the run keeps its partial work there: move it "
                              "away")
        if path.is_dir() and any(path.iterdir()) and not (path / "manifest.json").exists() \
                and not (path / "lock").exists():
            raise OutputError(f"{path} exists and is not a corpus work folder (no manifest.json); move it away")
        path.mkdir(exist_ok=True)
        self._take_lock()
        manifest_path = path / "manifest.json"
        previous = None
        if manifest_path.exists():
            with contextlib.suppress(OSError, ValueError):
                previous = json.loads(manifest_path.read_text(encoding="utf-8"))
        if previous is None or previous.get("key") != self.key or previous.get("format") != WORK_FORMAT:
            self.cleared = previous is not None
            for entry in path.iterdir():
                if entry.name != "lock":
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            from ..outputs import atomic_write_text

            atomic_write_text(manifest_path, json.dumps({"format": WORK_FORMAT, "key": self.key, **self.manifest},
                                                        indent=1, default=str))
        for entry in path.glob(".shard-*"):  # temporary files of shards that were in flight when a run died
            with contextlib.suppress(OSError):
                entry.unlink()
        journal = path / "done.jsonl"
        if journal.exists():
            for line in journal.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                    shard = int(record["shard"])
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a kill while it was written: that shard is redone
                if self.shard_file(shard).exists() and self.summary_file(shard).exists():
                    self.done[shard] = record
        return self

    def _take_lock(self) -> None:
        handle = open(self.path / "lock", "a+")  # noqa: SIM115 - held open for the run
        try:
            import fcntl
        except ImportError:  # pragma: no cover - no advisory locks on this platform
            self._lock = handle
            return
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise OutputError(f"another corpus run is writing to the same output (its work folder {self.path} is "
                              "locked); wait for it to finish or stop it") from None
        self._lock = handle

    def record(self, entry: dict) -> None:
        """Journal a finished shard (its files already exist)."""
        with open(self.path / "done.jsonl", "a", encoding="utf-8") as journal:
            journal.write(json.dumps(entry) + "\n")
            journal.flush()
            os.fsync(journal.fileno())
        self.done[int(entry["shard"])] = entry

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------------
# shards


@dataclass
class _Shard:
    number: int
    first: int  # row of its first text in the output
    rows: int
    characters: int
    table: object | None  # the input table (None for a shard already done)


def _shards(records: Iterator, done: dict, texts_per_shard: int, characters_per_shard: int) -> Iterator[_Shard]:
    """Cut the text records into consecutive shards; finished shards are counted, not built."""
    import pyarrow as pa

    from ..text import clean_text

    number, first = 0, 0
    texts: list[str] = []
    lines: list = []
    starts: list = []
    characters = 0

    def close() -> _Shard:
        table = None
        if number not in done:
            table = pa.table({"text": pa.array(texts, pa.string()),
                              "index": pa.array(range(first, first + len(texts)), pa.int64()),
                              "source_line": pa.array(lines, pa.int64()),
                              "response_start": pa.array(starts, pa.int64())})
        return _Shard(number, first, len(texts), characters, table)

    for record in records:
        # lone surrogates (from JSON escapes) cannot travel in Arrow; replaced one for one as align() does
        texts.append(clean_text(record.text)[0])
        lines.append(record.number)
        starts.append(record.response_start)
        characters += len(record.text)
        if len(texts) >= texts_per_shard or characters >= characters_per_shard:
            shard = close()
            yield shard
            number, first = number + 1, first + len(texts)
            texts, lines, starts, characters = [], [], [], 0
    if texts:
        yield close()


def _write_shard(work: Path, shard: int, table) -> dict:
    """Write a shard's rows and its summary (the batch summaries merged), atomically; returns its journal entry."""
    import pyarrow.parquet as pq

    from ..outputs import atomic_path, atomic_write_text

    summary = None
    for value in table.column("batch_summary").to_pylist():
        if value is not None:
            part = CorpusSummary.from_dict(json.loads(value))
            summary = part if summary is None else summary.merge(part)
    rows = table.drop_columns(["index", "batch_summary"])
    parquet = work / f"shard-{shard:06d}.parquet"
    with atomic_path(parquet) as temporary:
        pq.write_table(rows, temporary, compression="zstd")
    if summary is None:
        summary = CorpusSummary()
    atomic_write_text(work / f"shard-{shard:06d}.summary.json", summary.to_json(indent=None))
    tokens = summary.tokens
    return {"shard": shard, "rows": rows.num_rows, "teacher_tokens": tokens["teacher"],
            "student_tokens": tokens["student"]}


# ---------------------------------------------------------------------------------------------------------------
# local backend


def _init_worker(spec: dict) -> None:
    """Pool worker start-up: Ctrl-C is the main process's to handle; tokenizers loaded once, single-threaded."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _exit_with_parent()
    from .batch import worker_tokenizers

    worker_tokenizers(CorpusSpec.from_value(spec))


def _exit_with_parent() -> None:
    """End this worker when the main process dies (a SIGKILL gives it no chance to stop its pool): a worker
    waiting for work would otherwise wait forever, holding its tokenizers' memory."""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="ctkd-inspect-parent-watch", daemon=True).start()


def _shard_task(spec: dict, work: str, shard: int, table) -> dict:
    """Align one shard in a worker and write its files (top-level, so a process pool can send it)."""
    from .batch import align_batch

    return _write_shard(Path(work), shard, align_batch(table, spec))


class _Progress:
    def __init__(self, bar, work: WorkFolder):
        self.bar, self.work = bar, work
        self.texts = sum(int(e["rows"]) for e in work.done.values())
        self.tokens = sum(int(e["teacher_tokens"]) + int(e["student_tokens"]) for e in work.done.values())
        self.resumed = len(work.done)
        self.resumed_texts, self.resumed_tokens = self.texts, self.tokens
        bar.update(completed=self.texts, detail=self._detail())

    def _detail(self) -> str:
        return f"{self.tokens:,} tokens"

    def finished(self, entry: dict) -> None:
        self.work.record(entry)
        self.texts += int(entry["rows"])
        self.tokens += int(entry["teacher_tokens"]) + int(entry["student_tokens"])
        self.bar.update(completed=self.texts, detail=self._detail())


def _run_local(spec: CorpusSpec, shards: Iterator[_Shard], work: WorkFolder, progress: _Progress,
               workers: int) -> None:
    spec_dict = spec.to_dict()
    if workers <= 1:
        for shard in shards:
            if shard.table is not None:
                progress.finished(_shard_task(spec_dict, str(work.path), shard.number, shard.table))
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(spec_dict,))
    in_flight: set = set()
    clean = False
    try:
        for shard in shards:
            if shard.table is None:
                continue
            in_flight.add(pool.submit(_shard_task, spec_dict, str(work.path), shard.number, shard.table))
            shard.table = None
            while len(in_flight) >= 2 * workers:  # back-pressure: the reader never runs far ahead
                finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    progress.finished(future.result())
        while in_flight:
            finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in finished:
                progress.finished(future.result())
        clean = True
    finally:
        if clean:
            pool.shutdown(wait=True)
        else:
            # interrupted or failed: stop now; the shards in flight are lost (their files are written atomically)
            for future in in_flight:
                future.cancel()
            processes = list(getattr(pool, "_processes", {}).values())  # no public way before Python 3.14
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                with contextlib.suppress(Exception):
                    process.terminate()
            for process in processes:
                with contextlib.suppress(Exception):
                    process.join(5)


# ---------------------------------------------------------------------------------------------------------------
# Ray backend


def _probe(address: str, timeout: float) -> None:
    """Refuse a Ray address that does not answer within ``timeout`` seconds (instead of waiting on Ray's retries).

    Raises:
        InputError: the address is malformed or nothing answers there.
    """
    if address in ("auto", "local"):
        return
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--ray-address {address}: expected HOST:PORT (or ray://HOST:PORT, or auto)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise InputError(f"--ray-address {address} does not answer ({exc.strerror or exc}, waited up to "
                         f"{timeout:g} s): start the cluster's head (ray start --head) or check the address; without "
                         "--ray-address a local Ray runtime is started") from None


@contextlib.contextmanager
def _ray_runtime(address: str | None, workers: int):
    import logging

    import ray

    started = False
    if not ray.is_initialized():
        if address:
            _probe(address, RAY_CONNECT_TIMEOUT)
        options = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR,
                   "runtime_env": {"env_vars": {"TOKENIZERS_PARALLELISM": "false"}}}
        try:
            if address:
                ray.init(address=address, **options)
            else:
                ray.init(num_cpus=workers, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise InputError(f"cannot start or join Ray{f' at --ray-address {address}' if address else ''}: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        started = True
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    with contextlib.suppress(AttributeError):
        context.print_on_execution_start = False
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _ray_window(ray, spec_dict: dict, window: list[_Shard], work: WorkFolder, progress: _Progress) -> None:
    import pyarrow as pa

    from .batch import align_batch

    dataset = ray.data.from_arrow([shard.table for shard in window])
    mapped = dataset.map_batches(align_batch, fn_kwargs={"spec": spec_dict}, batch_format="pyarrow",
                                 batch_size=None, zero_copy_batch=True)
    parts = [batch for batch in mapped.iter_batches(batch_size=None, batch_format="pyarrow") if batch.num_rows]
    rows = pa.concat_tables(parts).sort_by("index") if parts else None
    for shard in window:
        piece = rows.slice(shard.first - window[0].first, shard.rows) if rows is not None else None
        if piece is None or piece.num_rows != shard.rows or (
                piece.num_rows and piece.column("index")[0].as_py() != shard.first):
            raise RuntimeError(f"Ray returned the rows of shard {shard.number} incompletely")
        progress.finished(_write_shard(work.path, shard.number, piece))


def _run_ray(spec: CorpusSpec, shards: Iterator[_Shard], work: WorkFolder, progress: _Progress, workers: int,
             address: str | None) -> None:
    import warnings

    spec_dict = spec.to_dict()
    # Ray Data warns about its own deprecated settings whenever it copies its context: not the user's business
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ray(\.|$)")
        _run_ray_windows(spec_dict, shards, work, progress, workers, address)


def _run_ray_windows(spec_dict: dict, shards: Iterator[_Shard], work: WorkFolder, progress: _Progress, workers: int,
                     address: str | None) -> None:
    with _ray_runtime(address, workers) as ray:
        cpus = int(ray.cluster_resources().get("CPU", workers)) or 1
        # shards per Ray Data job: enough to keep the CPUs busy, few enough that the shards the driver holds stay
        # small (64 × 2048 texts); on a large cluster several runs (one per input file) share the CPUs
        size = min(max(2, 2 * cpus), RAY_WINDOW_SHARDS)
        window: list[_Shard] = []
        for shard in shards:
            if shard.table is None:
                continue
            window.append(shard)
            if len(window) >= size:
                _ray_window(ray, spec_dict, window, work, progress)
                window = []
        if window:
            _ray_window(ray, spec_dict, window, work, progress)


# ---------------------------------------------------------------------------------------------------------------
# the run


def _count_lines(path: Path) -> int | None:
    if path.suffix.lower() == ".gz":
        return None
    size = path.stat().st_size
    count = 0
    last = b"\n"
    with stage(f"counting the lines of {path.name}", total=size, unit="bytes") as bar, open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            count += chunk.count(b"\n")
            last = chunk[-1:]
            bar.advance(len(chunk))
    return count + (last != b"\n")


def _expected_texts(reader, limit: int | None) -> int | None:
    """The number of texts to expect, for the progress bar (an upper bound: lines or rows, before skipping)."""
    total = None
    with contextlib.suppress(Exception):
        if reader.format in ("jsonl", "text") and not reader.split_paragraphs:
            total = _count_lines(reader.path)
        elif reader.format == "parquet":
            import pyarrow.parquet as pq

            total = pq.ParquetFile(reader.path).metadata.num_rows
    if total is not None and limit is not None:
        total = min(total, limit)
    return total if total is not None else limit


def _assemble(work: WorkFolder, count: int, output: Path, schema) -> None:
    import pyarrow.parquet as pq

    from ..outputs import atomic_path

    with stage(f"writing {output.name}", total=count, unit="shards") as bar, atomic_path(output) as temporary:
        writer = pq.ParquetWriter(temporary, schema, compression="zstd")
        try:
            for shard in range(count):
                table = pq.read_table(work.shard_file(shard))
                if not table.schema.equals(schema, check_metadata=False):
                    raise OutputError(f"{work.shard_file(shard)} does not have this run's columns; remove "
                                      f"{work.path} and run again")
                writer.write_table(table.replace_schema_metadata(schema.metadata))
                bar.advance(1)
        finally:
            writer.close()


def run_corpus(teacher: str, student: str, data: str | os.PathLike, output: str | os.PathLike, *,
               field: str | None = None, prompt_field: str | None = None, response_field: str | None = None,
               separator: str = "\n", split_paragraphs: bool = False, split: str | None = None,
               engine: str = "span", options: dict | None = None, add_special_tokens: bool = True,
               limit: int | None = None, workers: int | None = None, backend: str = "local",
               ray_address: str | None = None, report: str | os.PathLike | None = None,
               summary: str | os.PathLike | None = None, strict: bool = False, overwrite: bool = False,
               max_text_bytes: int | None = 16 << 20, shard_texts: int = DEFAULT_SHARD_TEXTS,
               shard_characters: int = DEFAULT_SHARD_CHARACTERS, cache_dir: str | os.PathLike | None = None,
               keep_work: bool = False, style: str = "python", on_start=None) -> CorpusResult:
    """Align every text of a data set and write the rows, a summary and a report (``ctkd-inspect corpus``).

    Args:
        teacher, student: tokenizer names (aliases, paths, hub ids), as for :func:`ctkd_inspect.align`.
        data: a JSONL/JSON file, a plain text file, a Parquet file or a saved 🤗 dataset folder
            (:func:`ctkd_inspect.data.read_texts`).
        output: the ``.parquet`` file to write (the alignment columns of :mod:`ctkd_inspect.columns`, then
            :data:`~ctkd_inspect.corpus.spec.CORPUS_FIELDS`), one row per text in data order.
        field, prompt_field, response_field, separator, split_paragraphs, split: which texts to read (see
            :func:`~ctkd_inspect.data.read_texts`); with prompt and response fields the statistics cover the
            response only (:mod:`ctkd_inspect.corpus.batch`).
        engine, options: a registered engine and its options (typed values, or text with ``style="cli"``).
        add_special_tokens: tokenize with each tokenizer's BOS/EOS/CLS/SEP.
        limit: align only the first ``limit`` texts.
        workers: processes (local) or CPUs of the local Ray runtime; default: every core.
        backend: ``"local"`` or ``"ray"``; ``ray_address``: a Ray cluster to join (``HOST:PORT``, ``ray://...``,
            ``auto``) instead of starting a local runtime.
        report, summary: also write the HTML report / the summary JSON there.
        strict: stop at the first malformed record (or text longer than ``max_text_bytes``) instead of skipping.
        overwrite: replace existing output files.
        max_text_bytes: texts longer than this (UTF-8 bytes) are skipped and counted; ``None``: no limit.
        shard_texts, shard_characters: the size of a shard (the unit of resuming).
        cache_dir: the tokenizer cache.
        keep_work: keep the work folder after the run.
        style: ``"cli"`` makes messages name flags instead of keywords.
        on_start: called with the :class:`WorkFolder` once it is open (front-ends use it to say where partial
            work lives).

    With ``workers`` above 1 (local backend) the workers are new Python processes (``spawn``), which import the
    calling script again: a script that calls this function must do it under ``if __name__ == "__main__":``
    (notebooks, the command line and the test runner need nothing).

    Returns:
        A :class:`CorpusResult`.

    Raises:
        OutputError: an output path cannot be written, or exists without ``overwrite`` — checked before any work;
            another run holds the work folder.
        InputError: no data, a missing field, a malformed record with ``strict``, no text left to align, a bad
            option value, a Ray address that does not answer.
        EngineError: unknown engine or a bad option. TokenizerNotFound / TokenizerLoadError: a tokenizer cannot be
            loaded. MissingExtraError: pyarrow/datasets/matplotlib (or ray) are not installed.
        CorpusInterrupted: Ctrl-C; the finished shards are kept for the next run.
    """
    from ..api import check_request
    from ..data import read_texts
    from ..engines.options import parse_options, validate_options
    from ..extras import require
    from ..outputs import check_output_path

    cli = style == "cli"

    def name(keyword: str, flag: str) -> str:
        return flag if cli else keyword

    started = time.monotonic()
    if backend not in ("local", "ray"):
        raise InputError(f"{name('backend', '--backend')} must be local or ray, not {backend!r}")
    if ray_address and backend != "ray":
        raise InputError(f"{name('ray_address', '--ray-address')} needs {name('backend', '--backend')} ray")
    workers = workers if workers is not None else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                                   else os.cpu_count() or 1)
    if workers < 1:
        raise InputError(f"{name('workers', '--workers')} must be at least 1, got {workers}")
    if shard_texts < 1 or shard_characters < 1:
        raise InputError("shards must hold at least one text and one character")
    if limit is not None and limit < 1:
        raise InputError(f"{name('limit', '--limit')} must be at least 1, got {limit}")
    given = dict(options or {})
    from ..engines.base import engine_class

    cls = engine_class(engine)
    typed = parse_options(cls, given, "cli") if cli else validate_options(cls, given, style)
    check_request(teacher, student, engine, typed, style="cli" if cli else "python")
    require("corpus", feature="corpus runs")
    if backend == "ray":
        require("ray", feature="--backend ray" if cli else "backend='ray'")

    # every output before any work
    target = check_output_path(output, suffixes=(".parquet",), overwrite=overwrite, option=name("output", "-o"))
    report_path = None if report is None else check_output_path(report, suffixes=(".html", ".htm"),
                                                                overwrite=overwrite, option=name("report", "--report"))
    summary_path = None if summary is None else check_output_path(summary, suffixes=(".json",), overwrite=overwrite,
                                                                  option=name("summary", "--summary"))
    paths = [p.resolve() for p in (target, report_path, summary_path) if p is not None]
    if len(set(paths)) != len(paths):
        raise OutputError("the output, report and summary must be different files")
    if backend == "ray" and ray_address:
        _probe(ray_address, RAY_CONNECT_TIMEOUT)  # a cluster that does not answer: said now, not after reading

    reader = read_texts(data, field=field, prompt_field=prompt_field, response_field=response_field,
                        separator=separator, split_paragraphs=split_paragraphs, split=split, strict=strict,
                        limit=limit, max_text_bytes=max_text_bytes)
    if cli:
        reader.option, reader.field_option = "DATA", "--field"
    response_only = prompt_field is not None
    records = reader.records()
    first = next(records, None)  # a missing field, an unreadable file: refused before any tokenizer is loaded
    if first is None:
        detail = reader.report.summary()
        raise InputError(f"no text to align in {data}" + (f": {detail}" if detail else " (it is empty)"))

    from ..sources import load_tokenizer

    tokenizers = [load_tokenizer(n, cache_dir=cache_dir, backend="rust") for n in (teacher, student)]
    spec = CorpusSpec(teacher=teacher, student=student, engine=engine, options=typed,
                      add_special_tokens=add_special_tokens, cache_dir=None if cache_dir is None else str(cache_dir),
                      response_only=response_only)
    key_data = {"input": input_fingerprint(data), "spec": spec.key(),
                "tokenizers": [{"source": t.ctkd_source.to_dict() if getattr(t, "ctkd_source", None) else None,
                                "size": len(t)} for t in tokenizers],
                "reader": {"format": reader.format, "field": field, "prompt_field": prompt_field,
                           "response_field": response_field, "separator": separator,
                           "split_paragraphs": split_paragraphs, "split": split, "limit": limit,
                           "max_text_bytes": max_text_bytes},
                "shards": {"texts": shard_texts, "characters": shard_characters}}
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True, default=str).encode()).hexdigest()
    work = WorkFolder(work_folder_of(target), key, {"run": key_data, "output": str(target)}).open()
    try:
        if on_start is not None:
            on_start(work)
        expected = _expected_texts(reader, limit)
        import itertools

        stream = _shards(itertools.chain([first], records), work.done, shard_texts, shard_characters)
        saved = os.environ.get("TOKENIZERS_PARALLELISM")
        os.environ["TOKENIZERS_PARALLELISM"] = "false"  # workers are single-threaded, this process too
        counted: list[_Shard] = []

        def counting(shards):
            for shard in shards:
                counted.append(_Shard(shard.number, shard.first, shard.rows, shard.characters, None))
                yield shard

        try:
            with stage(f"aligning {teacher} → {student}", total=expected, unit="texts") as bar:
                progress = _Progress(bar, work)
                try:
                    if backend == "ray":
                        _run_ray(spec, counting(stream), work, progress, workers, ray_address)
                    else:
                        _run_local(spec, counting(stream), work, progress, workers)
                except KeyboardInterrupt:
                    raise CorpusInterrupted(work.path, len(work.done), progress.texts) from None
        finally:
            if saved is None:
                os.environ.pop("TOKENIZERS_PARALLELISM", None)
            else:
                os.environ["TOKENIZERS_PARALLELISM"] = saved
        shards = len(counted)
        missing = [s.number for s in counted if s.number not in work.done]
        if missing:
            raise RuntimeError(f"shards {missing[:5]} were not aligned")
        try:
            schema = output_schema(spec)
            _assemble(work, shards, target, schema)
            merged = None
            for shard in range(shards):
                part = CorpusSummary.from_dict(json.loads(work.summary_file(shard).read_text(encoding="utf-8")))
                merged = part if merged is None else merged.merge(part)
        except KeyboardInterrupt:
            raise CorpusInterrupted(work.path, len(work.done), progress.texts) from None
        elapsed = time.monotonic() - started
        merged.parquet = str(target)
        merged.read = {"data": str(data), "format": reader.format, **reader.report.to_dict()}
        aligned = progress.texts - progress.resumed_texts  # texts aligned by this invocation
        tokens = progress.tokens - progress.resumed_tokens
        merged.run = {"backend": backend, "workers": workers, "shards": shards, "resumed_shards": progress.resumed,
                      "aligned_texts": aligned, "elapsed_s": round(elapsed, 3),
                      "texts_per_s": round(aligned / elapsed, 1) if elapsed else None,
                      "tokens_per_s": round(tokens / elapsed, 1) if elapsed else None}
        if summary_path is not None:
            from ..outputs import atomic_write_text

            atomic_write_text(summary_path, merged.to_json())
        if report_path is not None:
            from .report import write_report

            with stage(f"writing {report_path.name}"):
                write_report(merged, report_path, parquet=target, overwrite=True)
    except BaseException:
        if work.done:
            work.close()  # finished shards are kept for the next run
        else:
            work.remove()  # nothing to keep: leave no empty work folder behind
        raise
    if keep_work:
        work.close()
    else:
        work.remove()
    return CorpusResult(output=target, summary=merged, report=report_path, summary_path=summary_path,
                        shards=shards, resumed=progress.resumed, elapsed=time.monotonic() - started,
                        read=reader.report.to_dict())
