"""Startup benchmark: the warm ``ctkd-inspect llama3 gemma2 "hi"`` against the Rust-only floor, in one run.

Measured, each in a fresh process, alternately (one of each per round, so load on the shared machine hits all
alike), after one untimed warm-up run of each (with bytecode writing on, so our modules' ``.pyc`` files exist as
after a user's first run):

- (a) **the Rust floor**: ``python -c`` importing ``tokenizers`` and calling ``Tokenizer.from_file`` on the two
  cached ``tokenizer.json`` files of llama3 and gemma2 (interpreter start and exit included) — no command line can
  load the two tokenizers faster than this (each tokenizer is freed as soon as it is parsed); (a') the same keeping
  both and ending with ``os._exit(0)``: the difference is what freeing the two tokenizers costs the floor, the
  work the command's fast exit skips; (a'') the floor after starting one thread (which ends at once): once a
  process has had a second thread, glibc's malloc takes its locking path for good, and the millions of small
  allocations of the Rust parse cost more (the command always has one: numpy's OpenBLAS starts its threads when
  numpy is imported, before the tokenizers load);
- (b) ``ctkd-inspect llama3 gemma2 "hi"`` (warm cache; output to a pipe);
- (b1) (b2) (b3): the same command with one thing changed, run by a copy of the console script (a script named
  ``ctkd-inspect`` in a temporary folder, so the command runs exactly as installed) that first applies the change:
  (b1) the span engine on the compiled kernel (numba's import and cache load, what the command paid before the
  numpy path), (b2) the normal interpreter exit instead of the fast one, (b3) the two tokenizers parsed in two
  threads instead of one after the other;
- (c) ``ctkd-inspect --help``; (d) ``ctkd-inspect tokenizers``.

Reported: medians of ``--rounds`` rounds (wall-clock seconds, CPU seconds, and peak RSS from the child's resource
usage), the ratio (b)/(a), the targets (ratio ≤ 1.3, (b) < 2 s, (c) and (d) < 0.5 s), and what each choice of (b)
saves against its variant; where the time of (b) goes (medians of one run per round of the console-script copy
that timestamps each phase: imports and option checks, loading the tokenizers, aligning, rendering with rich's
import, and the rest: interpreter start and exit); what the cache verification costs in-process: a full SHA-256 of
the two cached ``tokenizer.json`` files (what every load does, in a thread beside the parse) against a check of
(size, mtime_ns, inode) only (the cheaper scheme, not used: it misses a change that resets the modification time);
and the import times above 20 ms of command (b) (``-X importtime``), so the owners of each part see where the time
goes.

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
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import machine_info, timed  # noqa: E402

TARGET_RATIO = 1.3
TARGET_ALIGN_S = 2.0
TARGET_LIGHT_S = 0.5

# A copy of the console script that changes one thing first (CTKD_STARTUP_VARIANT), or timestamps the phases. It is
# written to a file named ctkd-inspect, so the command sees itself started as the console script (its fast exit
# applies exactly as in (b)).
VARIANT_SCRIPT = r'''
import os
import sys
import time

began = time.perf_counter()
variant = os.environ.get("CTKD_STARTUP_VARIANT", "")
if variant == "compiled":
    import ctkd_inspect.engines.span as span

    span.ONE_TEXT_BUDGET_S = 0.0  # every call goes to the compiled kernel
elif variant == "normal-exit":
    import ctkd_inspect.cli.align as align

    align.allow_fast_exit = lambda: None
elif variant == "threads":
    from concurrent.futures import ThreadPoolExecutor

    import ctkd_inspect.cli.align as align
    from ctkd_inspect.sources import load_tokenizer

    def in_threads(names, cache_dir):
        names = list(names)
        with ThreadPoolExecutor(len(names)) as pool:
            return list(pool.map(lambda name: load_tokenizer(name, cache_dir=cache_dir, backend="rust"), names))

    align.load_tokenizers = in_threads
elif variant == "phases":
    import atexit
    import json

    import ctkd_inspect.api as api
    import ctkd_inspect.cli.align as align

    marks = {}

    def timestamped(name, function):
        def wrapper(*args, **kwargs):
            marks[name + "_start"] = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                marks[name + "_end"] = time.perf_counter()
        return wrapper

    align.load_tokenizers = timestamped("load", align.load_tokenizers)
    api.align = timestamped("align", api.align)

    def report():
        marks["exit"] = time.perf_counter()
        print("PHASES " + json.dumps({k: v - began for k, v in marks.items()}), file=sys.stderr, flush=True)

    atexit.register(report)
from ctkd_inspect.cli import main

sys.exit(main())
'''


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


def run(command: list[str], env: dict | None = None) -> tuple[float, int, float, str]:
    """Wall-clock seconds, peak RSS (bytes), CPU seconds (user + system) and stderr of one run; raises when the
    command fails. On a shared machine the CPU time is the steadier figure: other processes stretch the wall clock
    of a mostly single-threaded run far more than its CPU time."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env=env)
    stderr = proc.stderr.read().decode("utf-8", "replace")  # before waiting: a full pipe would block the child
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}): {stderr[-2000:]}")
    return elapsed, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime, stderr  # Linux reports kilobytes


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


def phases(command: list[str], env: dict) -> dict:
    """Seconds of each phase of one run of the command (see VARIANT_SCRIPT's ``phases``)."""
    wall, _, _, stderr = run(command, dict(env, CTKD_STARTUP_VARIANT="phases"))
    line = next(x for x in stderr.splitlines() if x.startswith("PHASES "))
    marks = json.loads(line[len("PHASES "):])
    return {
        "imports_and_checks_s": marks["load_start"],
        "load_tokenizers_s": marks["load_end"] - marks["load_start"],
        "align_s": marks["align_end"] - marks["load_end"],
        "render_and_output_s": marks["exit"] - marks["align_end"],  # rich's import included
        "interpreter_start_and_exit_s": wall - marks["exit"],
        "wall_s": wall,
    }


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
    kept_code = ("import os\nfrom tokenizers import Tokenizer\n"
                 f"a = Tokenizer.from_file({files[0]!r})\nb = Tokenizer.from_file({files[1]!r})\nos._exit(0)\n")
    threaded_code = "import threading\nthreading.Thread(target=int).start()\n" + floor_code
    folder = tempfile.TemporaryDirectory()
    variant_script = Path(folder.name) / "ctkd-inspect"
    variant_script.write_text(VARIANT_SCRIPT, encoding="utf-8")
    variant = [sys.executable, str(variant_script)]
    hi = ["llama3", "gemma2", "hi"]
    base_env = dict(os.environ)
    commands = {  # name: (command, CTKD_STARTUP_VARIANT)
        "rust_floor": ([sys.executable, "-c", floor_code], None),
        "rust_floor_no_teardown": ([sys.executable, "-c", kept_code], None),
        "rust_floor_multithreaded": ([sys.executable, "-c", threaded_code], None),
        "align_hi": ([*cli, *hi], None),
        "align_hi_compiled_kernel": ([*variant, *hi], "compiled"),
        "align_hi_normal_exit": ([*variant, *hi], "normal-exit"),
        "align_hi_threads": ([*variant, *hi], "threads"),
        "help": ([*cli, "--help"], None),
        "tokenizers": ([*cli, "tokenizers"], None),
    }

    def env_for(name: str, writing_bytecode: bool = False) -> dict:
        env = dict(base_env)
        if commands[name][1]:
            env["CTKD_STARTUP_VARIANT"] = commands[name][1]
        if writing_bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        return env

    load_before = os.getloadavg()
    for name, (command, _) in commands.items():  # warm-up: caches filled, .pyc files written, page cache
        run(command, env_for(name, writing_bytecode=True))
    run(variant + hi, dict(base_env, CTKD_STARTUP_VARIANT="phases"))
    samples = {name: [] for name in commands}
    phase_runs = []
    for _ in range(args.rounds):
        for name, (command, _) in commands.items():
            samples[name].append(run(command, env_for(name)))
        phase_runs.append(phases(variant + hi, base_env))
    load_after = os.getloadavg()
    where = {key: statistics.median(r[key] for r in phase_runs) for key in phase_runs[0]}
    folder.cleanup()

    results = {}
    for name, values in samples.items():
        seconds = [v[0] for v in values]
        results[name] = {"median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds),
                         "seconds": seconds, "peak_rss_mb": statistics.median(v[1] for v in values) / 1e6,
                         "cpu_median_s": statistics.median(v[2] for v in values)}

    def median(name):
        return results[name]["median_s"]

    ratio = median("align_hi") / median("rust_floor")
    cpu_ratio = results["align_hi"]["cpu_median_s"] / results["rust_floor"]["cpu_median_s"]
    costs = {  # seconds each choice saves (+) or would save, median against median
        "numpy_path_instead_of_compiled_kernel_s": median("align_hi_compiled_kernel") - median("align_hi"),
        "fast_exit_instead_of_normal_exit_s": median("align_hi_normal_exit") - median("align_hi"),
        "sequential_instead_of_threads_s": median("align_hi_threads") - median("align_hi"),
        "floor_teardown_s": median("rust_floor") - median("rust_floor_no_teardown"),
        "floor_parse_penalty_once_multithreaded_s": median("rust_floor_multithreaded") - median("rust_floor"),
        "threads_extra_peak_rss_mb": results["align_hi_threads"]["peak_rss_mb"] - results["align_hi"]["peak_rss_mb"],
    }
    # after the timed runs: these grow this process (machine_info imports torch)
    verification = verification_costs(files, repeats=max(args.rounds, 5))
    imports = import_times(commands["align_hi"][0])
    machine = machine_info()
    targets = {
        "ratio_to_rust_floor": {"target": TARGET_RATIO, "value": ratio, "met": ratio <= TARGET_RATIO},
        "align_hi_s": {"target": TARGET_ALIGN_S, "value": median("align_hi"),
                       "met": median("align_hi") < TARGET_ALIGN_S},
        "help_s": {"target": TARGET_LIGHT_S, "value": median("help"), "met": median("help") < TARGET_LIGHT_S},
        "tokenizers_s": {"target": TARGET_LIGHT_S, "value": median("tokenizers"),
                         "met": median("tokenizers") < TARGET_LIGHT_S},
    }

    print(f"startup, median of {args.rounds} interleaved rounds (load average {load_before[0]:.2f} → "
          f"{load_after[0]:.2f}):")
    labels = {"rust_floor": "(a) Rust floor: Tokenizer.from_file × 2",
              "rust_floor_no_teardown": "(a') the same, kept, then os._exit(0)",
              "rust_floor_multithreaded": "(a'') the same after one thread ran",
              "align_hi": "(b) ctkd-inspect llama3 gemma2 hi",
              "align_hi_compiled_kernel": "(b1) the same, span on the compiled kernel",
              "align_hi_normal_exit": "(b2) the same, normal interpreter exit",
              "align_hi_threads": "(b3) the same, tokenizers parsed in 2 threads",
              "help": "(c) ctkd-inspect --help", "tokenizers": "(d) ctkd-inspect tokenizers"}
    for name, label in labels.items():
        row = results[name]
        print(f"  {label:<44} {row['median_s']:6.2f} s  (min {row['min_s']:.2f}, max {row['max_s']:.2f})  "
              f"CPU {row['cpu_median_s']:5.2f} s  peak RSS {row['peak_rss_mb']:6.0f} MB")
    print(f"  ratio (b)/(a) = {ratio:.2f} (target ≤ {TARGET_RATIO}); CPU time ratio {cpu_ratio:.2f}")
    for name, target in targets.items():
        print(f"  {name:<22} {'met' if target['met'] else 'NOT met'} ({target['value']:.2f} vs {target['target']})")
    print(f"  saved by the numpy span path {costs['numpy_path_instead_of_compiled_kernel_s']:+.2f} s, by the fast "
          f"exit {costs['fast_exit_instead_of_normal_exit_s']:+.2f} s (the floor's own teardown "
          f"{costs['floor_teardown_s']:.2f} s), by loading one after the other "
          f"{costs['sequential_instead_of_threads_s']:+.2f} s and {costs['threads_extra_peak_rss_mb']:.0f} MB; "
          f"the floor's parse after one thread ran: {costs['floor_parse_penalty_once_multithreaded_s']:+.2f} s")
    print("  where (b)'s time goes (medians): " + ", ".join(
        f"{key[:-2].replace('_', ' ')} {value:.3f} s" for key, value in where.items()))
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
            "rust_floor_no_teardown": "the same keeping both tokenizers (a = ..., b = ...), then os._exit(0)",
            "rust_floor_multithreaded": "threading.Thread(target=int).start(), then the same as rust_floor",
            "align_hi": "ctkd-inspect llama3 gemma2 hi",
            "align_hi_compiled_kernel": "ctkd-inspect llama3 gemma2 hi with span.ONE_TEXT_BUDGET_S = 0 (the compiled "
                                        "kernel; see VARIANT_SCRIPT)",
            "align_hi_normal_exit": "ctkd-inspect llama3 gemma2 hi without the fast exit (see VARIANT_SCRIPT)",
            "align_hi_threads": "ctkd-inspect llama3 gemma2 hi with the two tokenizers loaded in two threads (see "
                                "VARIANT_SCRIPT)",
            "help": "ctkd-inspect --help",
            "tokenizers": "ctkd-inspect tokenizers"},
        "results": results,
        "ratio_align_to_rust_floor": ratio,
        "cpu_time_ratio_align_to_rust_floor": cpu_ratio,
        "savings": costs,
        "phases_of_align_hi": where,
        "targets": targets,
        "verification": verification,
        "imports_over_20ms": imports,
    }, indent=1), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
