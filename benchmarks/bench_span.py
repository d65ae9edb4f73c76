"""Span-alignment benchmark on a real corpus, Llama 3 (teacher) × Gemma 2 (student).

Measures, on the same 1549 texts (llama.cpp docs, code and tokenizer test strings, ~307k characters):

- tokenization: the Rust backends' batch encode alone (ids + offsets, still inside Rust), the standard transformers
  call ``tokenizer(texts, return_offsets_mapping=True)``, and ctkd-inspect's ``tokenize_corpus`` (numpy arrays);
- alignment, in two modes reported separately:
  - corpus mode: the compiled sweep over the whole corpus in one call (``span_groups_corpus``);
  - per-text mode: ``span_groups`` called once per text on its two ``Tokenization`` objects (what a training loop
    or the engine does), Python call overhead included;
  and, for reference, the whole per-text engine (groups + metrics + result object);
- the anchor: a straightforward Python two-pointer grouping (TRL GOLD / tokenkit style, benchmarks/two_pointer.py)
  on the same texts, given the spans as ready Python lists (untimed preparation); the script checks that each mode
  gives groups identical to it on every text, and fails otherwise.

Timing: ``--repeats`` rounds; each round takes every step in turn and calls it twice, timing the second call
(interleaved, so a burst of load on the machine hits all steps alike, and warm, so no step pays for the one before
it: the tokenizers' worker threads, caches, numba loading its cached compilation). The median per step is
reported, with the load average before and after.

Targets (issue #2), checked for each mode: alignment ≤ 10% of tokenization time, against the strictest baseline
(the Rust batch encode alone); alignment ≥ 20× faster than the two-pointer loop.

Prints the numbers and writes benchmarks/results/span_llama3_gemma2.json.

    python benchmarks/bench_span.py [--repeats 7] [--teacher llama3] [--student gemma2] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
warnings.filterwarnings("ignore")

from common import machine_info  # noqa: E402
from two_pointer import two_pointer_groups  # noqa: E402


def interleaved_medians(functions: dict, repeats: int) -> tuple[dict, dict]:
    """``(median seconds, last result)`` per function over ``repeats`` rounds. Each round takes every function in
    turn and calls it twice, timing the second call: steps share the machine's load alike, and each is timed warm
    (not right after another step, whose threads, caches and heap state would be charged to it)."""
    times = {name: [] for name in functions}
    results = {}
    for _ in range(repeats):
        for name, function in functions.items():
            results[name] = None  # the previous round's result is freed outside the timed call
            function()
            start = time.perf_counter()
            results[name] = function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--teacher", default="llama3")
    parser.add_argument("--student", default="gemma2")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "span_llama3_gemma2.json")
    args = parser.parse_args()

    import numpy as np

    from ctkd_inspect import load_tokenizer
    from ctkd_inspect.engines.span import SpanEngine, span_groups, span_groups_corpus
    from ctkd_inspect.sources.corpus import llama_cpp_corpus
    from ctkd_inspect.text import tokenize_corpus

    texts = llama_cpp_corpus()
    teacher, student = load_tokenizer(args.teacher), load_tokenizer(args.student)
    teacher_corpus = tokenize_corpus(teacher, texts, name=args.teacher)
    student_corpus = tokenize_corpus(student, texts, name=args.student)
    pairs = [(teacher_corpus[i], student_corpus[i]) for i in range(len(texts))]
    engine = SpanEngine()
    # per-text mode measures the compiled kernel: span_groups takes it once it is loaded (before that, a process
    # aligns its first texts with the kernel's numpy form, which spares a one-text front end numba's import)
    SpanEngine.warm_up()

    # the anchor gets ready Python lists of the non-special, non-empty spans (as GOLD has them), untimed
    prepared = []
    for t, s in pairs:
        ti = np.flatnonzero(~t.special & (t.ends > t.starts))
        si = np.flatnonzero(~s.special & (s.ends > s.starts))
        prepared.append((ti, si, t.starts[ti].tolist(), t.ends[ti].tolist(), s.starts[si].tolist(),
                         s.ends[si].tolist()))

    steps = {
        "encode_batch_rust": lambda: (teacher.backend_tokenizer.encode_batch(texts),
                                      student.backend_tokenizer.encode_batch(texts)),
        "transformers_call_with_offsets": lambda: (teacher(texts, return_offsets_mapping=True),
                                                   student(texts, return_offsets_mapping=True)),
        "tokenize_corpus": lambda: (tokenize_corpus(teacher, texts, name=args.teacher),
                                    tokenize_corpus(student, texts, name=args.student)),
        "span_corpus_mode": lambda: span_groups_corpus(teacher_corpus, student_corpus),
        "span_per_text": lambda: [span_groups(t, s) for t, s in pairs],
        "engine_per_text_with_metrics": lambda: [engine.align(t, s) for t, s in pairs],
        "python_two_pointer": lambda: [two_pointer_groups(*p[2:]) for p in prepared],
    }
    load_before = os.getloadavg()
    seconds, results = interleaved_medians(steps, args.repeats)
    load_after = os.getloadavg()

    expected = [[(ti[a].tolist(), si[b].tolist()) for a, b in groups]
                for (ti, si, *_), groups in zip(prepared, results["python_two_pointer"])]

    def mismatches(tables) -> int:
        return sum([(table.teacher(g).tolist(), table.student(g).tolist()) for g in range(len(table))] != want
                   for table, want in zip(tables, expected))

    corpus_groups = results["span_corpus_mode"]
    bad = {"corpus": mismatches(corpus_groups[i] for i in range(len(texts))),
           "per_text": mismatches(results["span_per_text"])}

    encode, hf_call, tokenize = (seconds["encode_batch_rust"], seconds["transformers_call_with_offsets"],
                                 seconds["tokenize_corpus"])
    loop = seconds["python_two_pointer"]
    calls = {"corpus": "span_groups_corpus(teacher_corpus, student_corpus): one compiled call for all texts",
             "per_text": "span_groups(teacher_corpus[i], student_corpus[i]) for every text i"}
    modes = {}
    for mode, step in (("corpus", "span_corpus_mode"), ("per_text", "span_per_text")):
        t = seconds[step]
        modes[mode] = {
            "call": calls[mode],
            "seconds": t,
            "microseconds_per_text": t / len(texts) * 1e6,
            "share_of_encode_batch_rust": t / encode,
            "share_of_transformers_call": t / hf_call,
            "share_of_tokenize_corpus": t / tokenize,
            "speedup_vs_python_two_pointer": loop / t,
            "identical_groups_to_two_pointer_on_all_texts": bad[mode] == 0,
            "targets": {"alignment_at_most_10pct_of_tokenization": t / encode <= 0.10,
                        "at_least_20x_faster_than_two_pointer": loop / t >= 20},
        }

    n_tokens = sum(len(t) + len(s) for t, s in pairs)
    n_chars = sum(map(len, texts))
    result = {
        "benchmark": "span alignment, real corpus",
        "teacher": args.teacher, "student": args.student,
        "corpus": {"texts": len(texts), "characters": n_chars, "tokens_both_sides": n_tokens,
                   "groups": int(corpus_groups.group_counts().sum())},
        "repeats": args.repeats,
        "timing": f"median of {args.repeats} interleaved rounds; in each, every step is called twice and the "
                  "second call timed",
        "seconds": seconds,
        "modes": modes,
        "machine": {**machine_info(), "load_average_before": load_before, "load_average_after": load_after},
        "date": time.strftime("%Y-%m-%d"),
    }

    print(f"corpus: {len(texts)} texts, {n_chars:,} characters, {n_tokens:,} tokens (both sides)")
    for key, value in seconds.items():
        print(f"  {key:<32} {value * 1000:9.1f} ms   {n_tokens / value / 1e6:7.2f} M tokens/s")
    for mode, row in modes.items():
        print(f"{mode:>8} mode: {row['seconds'] * 1000:.2f} ms ({row['microseconds_per_text']:.2f} µs per text) = "
              f"{row['share_of_encode_batch_rust']:.1%} of the Rust batch encode (target ≤ 10%), "
              f"{row['speedup_vs_python_two_pointer']:.1f}× the two-pointer loop (target ≥ 20×), groups "
              f"{'identical' if bad[mode] == 0 else f'DIFFERENT on {bad[mode]} texts'}")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} ({os.cpu_count()} cores)")
    if any(bad.values()):
        raise SystemExit("the sweep and the two-pointer loop disagree; results not written")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
