"""Corpus-mode benchmark, Llama 3 (teacher) × Gemma 2 (student), on 12,984 real texts (every paragraph of the
llama-cpp asset's docs and sources, ``llama_cpp_paragraphs``; 3.4M characters).

Measures:

1. **Where the time goes** in one process (``TOKENIZERS_PARALLELISM=false``, shards of 2048 texts as a run cuts
   them): batched tokenisation of both sides (``tokenize_corpus``), the span grouping (``span_groups_corpus``, one
   compiled call per shard), and the whole per-batch function (``align_batch``: tokenisation, grouping, columns,
   metrics, statistics and the failure taxonomy). Target: alignment ≤ 10% of tokenisation time.
2. **The anchor**: what a user writes without corpus mode, on the same 1000 texts in the same process:
   ``ctkd_inspect.align`` per text, ``columns.to_record_batch`` and ``failures.summarize_failures`` (the same rows
   and taxonomy), against ``align_batch``; the script checks that the rows are equal.
3. **Whole runs** of ``ctkd-inspect corpus`` as a real process on the 12,984 texts: local backend with 1 and 2
   workers, and Ray (a local runtime with 2 CPUs); and 100,000 texts (the real texts repeated) with 2 workers.
   Texts/s and tokens/s of the alignment phase (the run's own ``run`` figures: reading, aligning, writing the
   shards) and of the whole command (process start to exit: imports, tokenizer loading, worker start-up, the
   final Parquet and summary); the CPU time of the whole process tree (user + system of the process and all its
   children — workers, Ray's processes —, sampled every 0.1 s) and texts per CPU-second; peak memory as the
   largest sum of the RSS of the tree. Target: the same peak at 10k and 100k texts.

**On a shared machine** wall-clock rates measure the other users' load as much as this code (the load average is
recorded before and after); CPU time does not: texts per CPU-second is what a core of this machine does, and what
the cost of a large run scales with. The one-process figures (1., 2.) are CPU time too (``time.process_time``).

Prints the numbers and writes benchmarks/results/corpus.json (with the machine and the load average).

    python benchmarks/bench_corpus.py [--skip-100k] [--out PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
warnings.filterwarnings("ignore")
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from common import machine_info  # noqa: E402


def write_jsonl(path: Path, texts) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for text in texts:
            handle.write(json.dumps({"text": text}) + "\n")
    return path


def breakdown(texts: list[str]) -> dict:
    import pyarrow as pa

    from ctkd_inspect import load_tokenizer
    from ctkd_inspect.corpus import CorpusSpec, align_batch
    from ctkd_inspect.engines.span import span_groups_corpus
    from ctkd_inspect.text import tokenize_corpus

    teacher, student = load_tokenizer("llama3", backend="rust"), load_tokenizer("gemma2", backend="rust")
    spec = CorpusSpec("llama3", "gemma2")
    shards = [texts[k:k + 2048] for k in range(0, len(texts), 2048)]
    align_batch(pa.table({"text": shards[0][:50]}), spec)  # warm: tokenizers, vocabulary tables, numba cache
    tokenize = group = whole = 0.0
    tokens = 0
    clock = time.process_time  # CPU seconds of this process: what the code costs, whatever the machine's load
    for shard in shards:
        start = clock()
        tc, sc = tokenize_corpus(teacher, shard), tokenize_corpus(student, shard)
        tokenize += clock() - start
        start = clock()
        span_groups_corpus(tc, sc)
        group += clock() - start
        tokens += tc.n_tokens + sc.n_tokens
        table = pa.table({"text": shard})
        start = clock()
        align_batch(table, spec)
        whole += clock() - start
    return {"texts": len(texts), "tokens": tokens, "clock": "CPU seconds of the process", "tokenize_s":
            round(tokenize, 3), "align_s": round(group, 4), "align_share_of_tokenize": round(group / tokenize, 4),
            "align_batch_s": round(whole, 3), "align_batch_texts_per_cpu_s": round(len(texts) / whole, 1),
            "rest_s (columns, metrics, statistics, failure taxonomy)": round(whole - tokenize - group, 3)}


def anchor(texts: list[str]) -> dict:
    import pyarrow as pa

    from ctkd_inspect import align
    from ctkd_inspect.columns import to_record_batch
    from ctkd_inspect.corpus import CorpusSpec, align_batch
    from ctkd_inspect.failures import summarize_failures

    spec = CorpusSpec("llama3", "gemma2")
    align("llama3", "gemma2", "warm")
    clock = time.process_time
    start = clock()
    alignments = [align("llama3", "gemma2", text) for text in texts]
    reference = to_record_batch(alignments)
    summarize_failures(alignments)
    per_text = clock() - start
    start = clock()
    ours = align_batch(pa.table({"text": texts}), spec)
    batch = clock() - start
    equal = all(ours.column(name).combine_chunks().equals(reference.column(name)) for name in reference.schema.names)
    if not equal:
        raise SystemExit("align_batch rows differ from per-text align(): the benchmark is void")
    return {"texts": len(texts), "clock": "CPU seconds of the process",
            "per_text_align_columns_taxonomy_s": round(per_text, 3),
            "align_batch_s": round(batch, 3), "speedup": round(per_text / batch, 2), "rows_equal": equal}


def sample_tree(process, cpu: dict) -> int:
    """The RSS of ``process`` and its descendants now; records each one's CPU seconds so far in ``cpu``."""
    import psutil

    total = 0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error), member.oneshot():
            total += member.memory_info().rss
            times = member.cpu_times()
            cpu[member.pid] = times.user + times.system
    return total


def run(data: Path, out: Path, *args) -> dict:
    import psutil

    command = [sys.executable, "-m", "ctkd_inspect", "corpus", "llama3", "gemma2", str(data), "-o", str(out),
               "--overwrite", "--json", "-q", *map(str, args)]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched = psutil.Process(process.pid)
    peak = 0
    cpu: dict[int, float] = {}
    while process.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, sample_tree(watched, cpu))
        time.sleep(0.1)
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - start
    cpu_s = sum(cpu.values())
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed: {stderr[-2000:]}")
    summary = json.loads(stdout)
    tokens = summary["tokens"]["teacher"] + summary["tokens"]["student"]
    return {"args": list(map(str, args)), "texts": summary["texts"], "tokens": tokens,
            "run_elapsed_s": summary["run"]["elapsed_s"], "run_texts_per_s": summary["run"]["texts_per_s"],
            "run_tokens_per_s": summary["run"]["tokens_per_s"], "command_wall_s": round(wall, 2),
            "command_texts_per_s": round(summary["texts"] / wall, 1),
            "command_tokens_per_s": round(tokens / wall, 1), "tree_cpu_s": round(cpu_s, 1),
            "texts_per_cpu_s": round(summary["texts"] / cpu_s, 1), "tokens_per_cpu_s": round(tokens / cpu_s, 1),
            "peak_rss_mb": round(peak / 2 ** 20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "corpus.json")
    parser.add_argument("--skip-100k", action="store_true", help="Leave out the 100,000-text run (minutes).")
    args = parser.parse_args()

    from ctkd_inspect.sources.corpus import llama_cpp_paragraphs

    texts = llama_cpp_paragraphs()
    result = {"benchmark": "corpus mode, llama3 × gemma2, span engine", "machine": machine_info(
        ("numpy", "numba", "tokenizers", "transformers", "pyarrow", "datasets", "ray", "matplotlib")),
        "load_average_before": os.getloadavg(), "date": time.strftime("%Y-%m-%d")}
    print(f"{len(texts):,} texts, {sum(map(len, texts)):,} characters")

    result["breakdown"] = breakdown(texts)
    print("one process:", json.dumps(result["breakdown"], indent=1))
    result["anchor"] = anchor(texts[:1000])
    print("anchor:", json.dumps(result["anchor"], indent=1))

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        data = write_jsonl(folder / "docs.jsonl", texts)
        runs = {}
        for name, options in (("local_1_worker", ("--workers", 1)), ("local_2_workers", ("--workers", 2)),
                              ("ray_2_cpus", ("--backend", "ray", "--workers", 2))):
            runs[name] = run(data, folder / f"{name}.parquet", *options)
            print(name, json.dumps(runs[name]))
        if not args.skip_100k:
            repeated = (texts * (100_000 // len(texts) + 1))[:100_000]
            big = write_jsonl(folder / "docs_100k.jsonl", repeated)
            runs["local_2_workers_100k"] = run(big, folder / "big.parquet", "--workers", 2)
            print("local_2_workers_100k", json.dumps(runs["local_2_workers_100k"]))
        result["runs"] = runs
    one, two = runs["local_1_worker"], runs["local_2_workers"]
    result["ratios"] = {"2_workers_over_1 (alignment phase texts/s)": round(two["run_texts_per_s"]
                                                                         / one["run_texts_per_s"], 2),
                        "ray_over_local_2_workers (alignment phase texts/s)": round(
                            runs["ray_2_cpus"]["run_texts_per_s"] / two["run_texts_per_s"], 2),
                        "2_workers_over_1 (texts per CPU-second)": round(two["texts_per_cpu_s"]
                                                                         / one["texts_per_cpu_s"], 2),
                        "corpus_mode_over_per_text_align (CPU)": result["anchor"]["speedup"]}
    if "local_2_workers_100k" in runs:
        result["ratios"]["peak_rss_100k_over_10k"] = round(runs["local_2_workers_100k"]["peak_rss_mb"]
                                                           / two["peak_rss_mb"], 3)
    result["load_average_after"] = os.getloadavg()
    print("ratios:", json.dumps(result["ratios"], indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
