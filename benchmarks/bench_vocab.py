"""Vocabulary-mapping benchmark: exact (canonical bytes) and MinED nearest neighbour, Llama 3 × Gemma 2.

The MinED mapping compares every one of Llama 3's 128k tokens with Gemma 2's 256k by Levenshtein distance, and
back (FuseLLM does this with a 64-process pool). Target (issue #3): both directions under 2 minutes on 2 cores.
The cache is bypassed (a fresh temporary cache folder), so the full computation is timed. Also records the
exact overlap (tokenkit reports 85,699 shared tokens after byteification) and the MinED distance histogram.

    python benchmarks/bench_vocab.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
warnings.filterwarnings("ignore")

from common import machine_info  # noqa: E402


def main() -> None:
    from ctkd_inspect import load_tokenizer
    from ctkd_inspect.vocab import exact_mapping, mined_mapping, vocabulary

    teacher_tok, student_tok = load_tokenizer("llama3"), load_tokenizer("gemma2")
    start = time.perf_counter()
    teacher, student = vocabulary(teacher_tok, "llama3"), vocabulary(student_tok, "gemma2")
    t_vocab = time.perf_counter() - start
    start = time.perf_counter()
    exact = exact_mapping(teacher, student)
    t_exact = time.perf_counter() - start
    marks: dict[str, float] = {}

    def progress(direction: str, done: int, total: int) -> None:
        if done == total:
            marks[direction] = time.perf_counter()

    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        mined = mined_mapping(teacher, student, cache_dir=cache, progress=progress)
        t_mined = time.perf_counter() - start
    coverage = mined.coverage()
    result = {
        "benchmark": "vocabulary mappings, llama3 (128,256) × gemma2 (256,000)",
        "seconds": {"vocabulary_tables": t_vocab, "exact_mapping": t_exact, "mined_both_directions": t_mined,
                    "mined_teacher_to_student": marks.get("teacher→student", start) - start},
        "exact_shared_tokens": exact.coverage()["teacher"]["exact"],
        "mined_coverage": coverage,
        "target_seconds": 120, "target_met": t_mined < 120,
        "machine": machine_info(), "date": time.strftime("%Y-%m-%d"),
    }
    out = HERE / "results" / "vocab_mined.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"vocabulary tables {t_vocab:.1f} s, exact mapping {t_exact:.2f} s "
          f"({result['exact_shared_tokens']:,} shared tokens)")
    print(f"MinED both directions {t_mined:.1f} s (target < 120 s); teacher→student "
          f"{result['seconds']['mined_teacher_to_student']:.1f} s")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
