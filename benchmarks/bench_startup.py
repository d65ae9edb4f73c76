"""Startup benchmark: the warm ``ctkd-inspect llama3 gemma2 "hi"`` against the Rust-only floor, in one run.

Measured, each in a fresh process, alternately (one of each per round, so load on the shared machine hits all
alike), after one untimed warm-up run of each:

- (a) **the Rust floor**: ``python -c`` importing ``tokenizers`` and calling ``Tokenizer.from_file`` on the two
  cached ``tokenizer.json`` files of llama3 and gemma2 (interpreter start included) — no command line can load
  the two tokenizers faster than this;
- (b) ``ctkd-inspect llama3 gemma2 "hi"`` (warm cache; output to a pipe);
- (b') the same command with its tokenizers loaded by ``load_tokenizer(name, backend="rust")`` one after the
  other, and (b'') by ``ctkd_inspect.sources.load_tokenizers`` (rust backend, both parsed in parallel threads): a
  shim replaces the command's tokenizer loading, so these show what switching the command line to either gives;
- (c) ``ctkd-inspect --help``;
- (d) ``ctkd-inspect tokenizers``.

Reported: medians of ``--rounds`` rounds (wall-clock seconds, and peak RSS from the child's resource usage), the
ratio (b)/(a), the targets (ratio ≤ 1.3, (b) < 2 s, (c) and (d) < 0.5 s), plus what the cache verification
costs in-process: a full SHA-256 of the two cached ``tokenizer.json`` files (what every load does, in a thread
beside the parse) against a check of (size, mtime_ns, inode) only (the cheaper scheme, not used: it misses a
change that resets the modification time), and the import times above 20 ms of command (b) (``-X importtime``),
so the owners of each part see where the time goes.

Prints the numbers and writes benchmarks/results/startup.json.

    python benchmarks/bench_startup.py [--rounds 7] [--out PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import machine_info, timed  # noqa: E402

TARGET_RATIO = 1.3
TARGET_ALIGN_S = 2.0
TARGET_LIGHT_S = 0.5


# (b') and (b'') the same command with its tokenizer loading replaced, for as long as the command line itself asks
# for the transformers backend: by load_tokenizer(..., backend="rust") one after the other, or by
# ctkd_inspect.sources.load_tokenizers (rust backend, the two parsed in parallel threads)
RUST_BACKEND_SHIM = """
import sys
import ctkd_inspect.cli.align as align
import ctkd_inspect.cli.common as common
from ctkd_inspect.sources import load_tokenizer, load_tokenizers

def one_after_the_other(names, cache_dir):
    return [load_tokenizer(name, cache_dir=cache_dir, backend="rust") for name in names]

def in_parallel(names, cache_dir):
    return load_tokenizers(names, cache_dir=cache_dir)

chosen = in_parallel if sys.argv.pop(1) == "parallel" else one_after_the_other
common.load_tokenizers = align.load_tokenizers = chosen
from ctkd_inspect.cli import main
sys.argv[0] = "ctkd-inspect"
main()
"""


def cli_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m ctkd_inspect``."""
    script = Path(sys.executable).with_name("ctkd-inspect")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ctkd_inspect"]


def cached_tokenizer_files() -> list[str]:
    """The cached tokenizer.json of llama3 and gemma2 (converted first if needed), found by a child process: this
    process stays small, because a child started by fork counts the parent's memory in its peak RSS."""
    code = ("from pathlib import Path\n"
            "from ctkd_inspect.sources import load_tokenizer\n"
            "for name in ('llama3', 'gemma2'):\n"
            "    print(Path(load_tokenizer(name, backend='rust').ctkd_source.location) / 'tokenizer.json')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def run(command: list[str]) -> tuple[float, int, float]:
    """Wall-clock seconds, peak RSS (bytes) and CPU seconds (user + system) of one run; raises when the command
    fails. On a shared machine the CPU time is the steadier figure: other processes stretch the wall clock of a
    mostly single-threaded run far more than its CPU time."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    stderr = proc.stderr.read().decode("utf-8", "replace")
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}): {stderr[-2000:]}")
    return elapsed, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime  # Linux reports kilobytes


def import_times(command: list[str], threshold_s: float = 0.02) -> list[dict]:
    """Modules whose cumulative import time exceeds ``threshold_s`` in one run of ``command`` (-X importtime)."""
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
    out = subprocess.run(command, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    rows = []
    for line in out.stderr.splitlines():  # "import time:  self_us |  cumulative_us |   package.module"
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:"):].split("|", 2)
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        rows.append({"module": name.strip(), "depth": depth, "cumulative_s": int(cumulative_us) / 1e6,
                     "self_s": int(self_us) / 1e6})
    return [r for r in rows if r["cumulative_s"] >= threshold_s and r["depth"] <= 1]


def verification_costs(files: list[str], repeats: int) -> dict:
    """In-process seconds: reading + SHA-256 of the files, and a (size, mtime_ns, inode) check of them."""
    recorded = {f: (os.stat(f).st_size, os.stat(f).st_mtime_ns, os.stat(f).st_ino) for f in files}

    def full():
        return [hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in files]

    def by_stat():
        return all((s.st_size, s.st_mtime_ns, s.st_ino) == recorded[f] for f in files for s in [os.stat(f)])

    full_s, _ = timed(full, repeats)
    stat_s, _ = timed(by_stat, repeats)
    return {"sha256_both_files_s": full_s, "stat_check_both_files_s": stat_s,
            "bytes": sum(os.stat(f).st_size for f in files)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default=str(HERE / "results" / "startup.json"))
    args = parser.parse_args()

    files = cached_tokenizer_files()
    cli = cli_command()
    floor_code = ("from tokenizers import Tokenizer\n"
                  f"Tokenizer.from_file({files[0]!r})\nTokenizer.from_file({files[1]!r})\n")
    commands = {
        "rust_floor": [sys.executable, "-c", floor_code],
        "align_hi": [*cli, "llama3", "gemma2", "hi"],
        "align_hi_rust_backend": [sys.executable, "-c", RUST_BACKEND_SHIM, "sequential", "llama3", "gemma2", "hi"],
        "align_hi_rust_parallel": [sys.executable, "-c", RUST_BACKEND_SHIM, "parallel", "llama3", "gemma2", "hi"],
        "help": [*cli, "--help"],
        "tokenizers": [*cli, "tokenizers"],
    }
    load_before = os.getloadavg()
    for command in commands.values():  # warm-up: caches filled, files in the page cache, numba's cache loaded
        run(command)
    samples = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, command in commands.items():
            samples[name].append(run(command))
    load_after = os.getloadavg()

    results = {}
    for name, values in samples.items():
        seconds = [v[0] for v in values]
        results[name] = {"median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds),
                         "seconds": seconds, "peak_rss_mb": statistics.median(v[1] for v in values) / 1e6,
                         "cpu_median_s": statistics.median(v[2] for v in values)}
    ratio = results["align_hi"]["median_s"] / results["rust_floor"]["median_s"]
    ratio_rust = results["align_hi_rust_backend"]["median_s"] / results["rust_floor"]["median_s"]
    ratio_parallel = results["align_hi_rust_parallel"]["median_s"] / results["rust_floor"]["median_s"]
    cpu_ratios = {name: results[name]["cpu_median_s"] / results["rust_floor"]["cpu_median_s"]
                  for name in ("align_hi", "align_hi_rust_backend", "align_hi_rust_parallel")}
    # after the timed runs: these grow this process (machine_info imports torch)
    verification = verification_costs(files, repeats=max(args.rounds, 5))
    imports = import_times(commands["align_hi"])
    machine = machine_info()
    targets = {
        "ratio_to_rust_floor": {"target": TARGET_RATIO, "value": ratio, "met": ratio <= TARGET_RATIO},
        "align_hi_s": {"target": TARGET_ALIGN_S, "value": results["align_hi"]["median_s"],
                       "met": results["align_hi"]["median_s"] < TARGET_ALIGN_S},
        "help_s": {"target": TARGET_LIGHT_S, "value": results["help"]["median_s"],
                   "met": results["help"]["median_s"] < TARGET_LIGHT_S},
        "tokenizers_s": {"target": TARGET_LIGHT_S, "value": results["tokenizers"]["median_s"],
                         "met": results["tokenizers"]["median_s"] < TARGET_LIGHT_S},
    }

    print(f"startup, median of {args.rounds} interleaved rounds (load average {load_before[0]:.2f} → "
          f"{load_after[0]:.2f}):")
    labels = {"rust_floor": "(a) Rust floor: Tokenizer.from_file × 2", "align_hi": "(b) ctkd-inspect llama3 gemma2 hi",
              "align_hi_rust_backend": "(b') the same, tokenizers by backend='rust'",
              "align_hi_rust_parallel": "(b'') the same, load_tokenizers (parallel)",
              "help": "(c) ctkd-inspect --help", "tokenizers": "(d) ctkd-inspect tokenizers"}
    for name, label in labels.items():
        row = results[name]
        print(f"  {label:<44} {row['median_s']:6.2f} s  (min {row['min_s']:.2f}, max {row['max_s']:.2f})  "
              f"CPU {row['cpu_median_s']:5.2f} s  peak RSS {row['peak_rss_mb']:6.0f} MB")
    print(f"  ratio (b)/(a) = {ratio:.2f}, (b')/(a) = {ratio_rust:.2f}, (b'')/(a) = {ratio_parallel:.2f} "
          f"(target ≤ {TARGET_RATIO}); CPU time ratios {cpu_ratios['align_hi']:.2f}, "
          f"{cpu_ratios['align_hi_rust_backend']:.2f}, {cpu_ratios['align_hi_rust_parallel']:.2f}")
    for name, target in targets.items():
        print(f"  {name:<22} {'met' if target['met'] else 'NOT met'} ({target['value']:.2f} vs {target['target']})")
    print(f"  verification of both cached tokenizer.json files ({verification['bytes'] / 1e6:.1f} MB): "
          f"SHA-256 {verification['sha256_both_files_s'] * 1e3:.1f} ms (in a thread beside the parse), "
          f"(size, mtime, inode) {verification['stat_check_both_files_s'] * 1e3:.2f} ms")
    print("  imports of (b) over 20 ms (cumulative, top level):")
    for row in sorted(imports, key=lambda r: -r["cumulative_s"])[:15]:
        print(f"    {row['cumulative_s'] * 1e3:7.0f} ms  {row['module']}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "startup",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine,
        "rounds": args.rounds,
        "load_average": {"before": load_before, "after": load_after},
        "commands": {  # described, not copied: the real ones name this machine's folders
            "rust_floor": "python -c: from tokenizers import Tokenizer; Tokenizer.from_file(<cache>/tokenizers/"
                          "llama3/tokenizer.json); Tokenizer.from_file(<cache>/tokenizers/gemma2/tokenizer.json)",
            "align_hi": "ctkd-inspect llama3 gemma2 hi",
            "align_hi_rust_backend": "ctkd-inspect llama3 gemma2 hi with the command's load_tokenizers replaced by "
                                     "load_tokenizer(name, backend='rust') per name (see RUST_BACKEND_SHIM)",
            "align_hi_rust_parallel": "ctkd-inspect llama3 gemma2 hi with the command's load_tokenizers replaced by "
                                      "ctkd_inspect.sources.load_tokenizers (see RUST_BACKEND_SHIM)",
            "help": "ctkd-inspect --help",
            "tokenizers": "ctkd-inspect tokenizers"},
        "results": results,
        "ratio_align_to_rust_floor": ratio,
        "ratio_align_rust_backend_to_rust_floor": ratio_rust,
        "ratio_align_rust_parallel_to_rust_floor": ratio_parallel,
        "cpu_time_ratios_to_rust_floor": cpu_ratios,
        "targets": targets,
        "verification": verification,
        "imports_over_20ms": imports,
    }, indent=1), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
