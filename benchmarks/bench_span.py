"""Span-alignment benchmark on a real corpus, Llama 3 (teacher) × Gemma 2 (student).

Measures, on the same 1549 texts (llama.cpp docs, code and tokenizer test strings, ~307k characters):

- tokenization: the Rust backends' batch encode alone (ids + offsets, still inside Rust), the standard transformers
  call ``tokenizer(texts, return_offsets_mapping=True)``, and ctkd-inspect's ``tokenize_corpus`` (numpy arrays);
- alignment: the compiled sweep over the whole corpus in one call (``span_groups_corpus``), the same sweep called
  per text (``span_groups``), and the whole per-text engine (groups + metrics + result object);
- the anchor: a straightforward Python two-pointer grouping (TRL GOLD / tokenkit style, benchmarks/two_pointer.py)
  on the same spans, given as ready Python lists; the script asserts both give identical groups on every text.

Prints the ratios and writes benchmarks/results/span_llama3_gemma2.json. Targets (issue #2): alignment ≤ 10% of
tokenization time; sweep ≥ 20× faster than the two-pointer loop. Both are judged on corpus mode against the
strictest tokenization baseline (the Rust batch encode alone).

    python benchmarks/bench_span.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
warnings.filterwarnings("ignore")

from common import machine_info, timed  # noqa: E402
from two_pointer import two_pointer_groups  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
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

    def encode_raw():
        return (teacher.backend_tokenizer.encode_batch(texts), student.backend_tokenizer.encode_batch(texts))

    def transformers_call():
        return (teacher(texts, return_offsets_mapping=True), student(texts, return_offsets_mapping=True))

    def tokenize_both():
        return (tokenize_corpus(teacher, texts, name=args.teacher), tokenize_corpus(student, texts, name=args.student))

    t_raw, _ = timed(encode_raw, args.repeats)
    t_hf, _ = timed(transformers_call, args.repeats)
    t_tok, (teacher_corpus, student_corpus) = timed(tokenize_both, args.repeats)
    span_groups_corpus(teacher_corpus, student_corpus)  # compile (or load the cached compilation) untimed
    t_corpus, corpus_groups = timed(lambda: span_groups_corpus(teacher_corpus, student_corpus), args.repeats)
    pairs = [(teacher_corpus[i], student_corpus[i]) for i in range(len(texts))]
    t_sweep, tables = timed(lambda: [span_groups(t, s) for t, s in pairs], args.repeats)
    engine = SpanEngine()
    t_engine, _ = timed(lambda: [engine.align(t, s) for t, s in pairs], args.repeats)

    # the anchor gets ready Python lists of the non-special, non-empty spans (as GOLD has them), untimed
    prepared = []
    for t, s in pairs:
        ti = np.flatnonzero(~t.special & (t.ends > t.starts))
        si = np.flatnonzero(~s.special & (s.ends > s.starts))
        prepared.append((ti, si, t.starts[ti].tolist(), t.ends[ti].tolist(), s.starts[si].tolist(),
                         s.ends[si].tolist()))
    t_loop, walked = timed(lambda: [two_pointer_groups(*p[2:]) for p in prepared], args.repeats)

    mismatches = 0
    for index, ((ti, si, *_), groups) in enumerate(zip(prepared, walked)):
        expected = [(ti[a].tolist(), si[b].tolist()) for a, b in groups]
        for table in (tables[index], corpus_groups[index]):
            ours = [(table.teacher(g).tolist(), table.student(g).tolist()) for g in range(len(table))]
            mismatches += ours != expected
    if mismatches:
        raise SystemExit(f"the sweep and the two-pointer loop disagree on {mismatches} texts")

    n_tokens = sum(len(t) + len(s) for t, s in pairs)
    n_chars = sum(map(len, texts))
    result = {
        "benchmark": "span alignment, real corpus",
        "teacher": args.teacher, "student": args.student,
        "corpus": {"texts": len(texts), "characters": n_chars, "tokens_both_sides": n_tokens,
                   "groups": int(corpus_groups.group_counts().sum())},
        "repeats": args.repeats,
        "seconds": {"encode_batch_rust": t_raw, "transformers_call_with_offsets": t_hf, "tokenize_corpus": t_tok,
                    "sweep_corpus_mode": t_corpus, "sweep_per_text": t_sweep, "engine_per_text_with_metrics": t_engine,
                    "python_two_pointer": t_loop},
        "ratios": {"sweep_corpus_over_encode_batch": t_corpus / t_raw,
                   "sweep_corpus_over_transformers_call": t_corpus / t_hf,
                   "sweep_per_text_over_encode_batch": t_sweep / t_raw,
                   "sweep_per_text_over_transformers_call": t_sweep / t_hf,
                   "two_pointer_over_sweep_corpus": t_loop / t_corpus,
                   "two_pointer_over_sweep_per_text": t_loop / t_sweep},
        "targets": {"alignment_at_most_10pct_of_tokenization": t_corpus / t_raw <= 0.10,
                    "sweep_at_least_20x_two_pointer": t_loop / t_corpus >= 20},
        "identical_groups_on_all_texts": True,
        "machine": machine_info(),
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"corpus: {len(texts)} texts, {n_chars:,} characters, {n_tokens:,} tokens (both sides)")
    for key, value in result["seconds"].items():
        print(f"  {key:<32} {value * 1000:9.1f} ms   {n_tokens / value / 1e6:7.2f} M tokens/s")
    r = result["ratios"]
    print(f"corpus sweep / Rust batch encode        = {r['sweep_corpus_over_encode_batch']:.1%} (target ≤ 10%)")
    print(f"corpus sweep / transformers offsets call = {r['sweep_corpus_over_transformers_call']:.1%}")
    print(f"per-text sweep / Rust batch encode      = {r['sweep_per_text_over_encode_batch']:.1%}")
    print(f"two-pointer / corpus sweep              = {r['two_pointer_over_sweep_corpus']:.1f}× (target ≥ 20×)")
    print(f"two-pointer / per-text sweep            = {r['two_pointer_over_sweep_per_text']:.1f}×")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
