"""DTW benchmark: our MinED/CDM DTW against the reference style, and the cost of a full CDM inspection.

1. **DTW, 512 × 512 tokens.** Llama 3 and Gemma 2 tokens of the same real text (the corpus of llama.cpp docs and
   code), marker-stripped as MinED does. The anchor is the published style, written from the spec
   (research notes, methods §1): a plain Python double loop with a Levenshtein call per cell (FuseLLM's
   ``editdistance.eval``; rapidfuzz's per-pair call is used when editdistance is not installed) and the
   ``np.argmin`` backtrace. Ours: one vectorised cost matrix (rapidfuzz ``cdist``) and the compiled DP and
   backtrace. Both must give the identical path. Target: ≥ 100×.
2. **Full CDM inspection of one ~512-token pair** (teacher Gemma-3-270M, student SmolLM2-135M, real models):
   everything the ``cdm`` engine does after the forward passes — decoded strings, entropy factors, cost, DP,
   groups, metrics, and CDM's dynamic top-K (K = 100) mapping over the aligned rows. The forward passes, the
   one-time vocabulary tables, the static exact mapping and model loading are excluded (reported separately).
   Target: ≤ 50 ms.

Writes benchmarks/results/dtw.json.

    python benchmarks/bench_dtw.py [--repeats 5] [--skip-cdm]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
warnings.filterwarnings("ignore")

from common import machine_info, timed  # noqa: E402


def reference_dtw(teacher: list[str], student: list[str], distance) -> tuple[list[tuple[int, int]], float]:
    """simpledtw as FuseLLM/CDM run it: Python loops, a distance call per cell, argmin backtrace."""
    n, m = len(teacher), len(student)
    matrix = np.zeros((n + 1, m + 1))
    matrix[0, :] = np.inf
    matrix[:, 0] = np.inf
    matrix[0, 0] = 0
    for i, a in enumerate(teacher):
        for j, b in enumerate(student):
            cost = distance(a, b)
            matrix[i + 1, j + 1] = cost + min(matrix[i, j + 1], matrix[i + 1, j], matrix[i, j])
    matrix = matrix[1:, 1:]
    i, j = n - 1, m - 1
    matches = []
    while i > 0 or j > 0:
        matches.append((i, j))
        diag = matrix[i - 1, j - 1] if i > 0 and j > 0 else np.inf
        up = matrix[i - 1, j] if i > 0 else np.inf
        left = matrix[i, j - 1] if j > 0 else np.inf
        move = np.argmin([diag, up, left])
        if move == 0:
            i, j = i - 1, j - 1
        elif move == 1:
            i -= 1
        else:
            j -= 1
    matches.append((0, 0))
    return matches[::-1], float(matrix[-1, -1])



def text_of_about(tokenizers, texts: list[str], target: int) -> str:
    """A prefix of the concatenated corpus whose longer tokenization has ``target`` non-special tokens at most."""
    joined = "\n\n".join(texts)
    low, high = 0, len(joined)
    while low < high:  # binary search on the character length
        mid = (low + high + 1) // 2
        longest = max(len(t(joined[:mid], add_special_tokens=False)["input_ids"]) for t in tokenizers)
        if longest <= target:
            low = mid
        else:
            high = mid - 1
    return joined[:low]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--skip-cdm", action="store_true", help="skip part 2 (it loads the two small models)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "dtw.json")
    args = parser.parse_args()

    from ctkd_inspect import load_tokenizer
    from ctkd_inspect.engines.dtw import mined_reference_string
    from ctkd_inspect.engines.dtw_core import dtw_path, edit_distance_matrix
    from ctkd_inspect.sources.corpus import llama_cpp_corpus
    from ctkd_inspect.text import tokenize

    corpus = llama_cpp_corpus()
    results: dict = {"benchmark": "DTW engines", "machine": machine_info(), "date": time.strftime("%Y-%m-%d")}

    # ---- part 1: DTW against the reference double loop --------------------------------------------------------
    llama3, gemma2 = load_tokenizer("llama3"), load_tokenizer("gemma2")
    # the first 512 tokens of each side's tokenization of the same long text
    text = "\n\n".join(corpus[:60])
    t = tokenize(llama3, text, add_special_tokens=False)
    s = tokenize(gemma2, text, add_special_tokens=False)
    t_str = [mined_reference_string(t, i) for i in range(args.tokens)]
    s_str = [mined_reference_string(s, j) for j in range(args.tokens)]
    try:
        import editdistance

        per_cell, anchor_name = editdistance.eval, "editdistance.eval per cell"
    except ImportError:
        from rapidfuzz.distance import Levenshtein

        per_cell, anchor_name = Levenshtein.distance, "rapidfuzz Levenshtein.distance per cell"

    def ours():
        return dtw_path(edit_distance_matrix(t_str, s_str).astype(np.float64))

    ours()  # compile or load the cached compilation
    t_ours, mine = timed(ours, args.repeats)
    t_ref, (ref_path, ref_cost) = timed(lambda: reference_dtw(t_str, s_str, per_cell), max(1, args.repeats // 2))
    identical = [tuple(p) for p in mine.path.tolist()] == ref_path and mine.cost == ref_cost
    if not identical:
        raise SystemExit("our DTW path differs from the reference double loop")
    results["dtw"] = {
        "teacher": "llama3", "student": "gemma2", "teacher_tokens": len(t_str), "student_tokens": len(s_str),
        "anchor": f"Python double loop, {anchor_name}, np.argmin backtrace",
        "seconds": {"ours": t_ours, "reference_loop": t_ref}, "speedup": t_ref / t_ours,
        "identical_path": identical, "target_speedup": 100, "target_met": t_ref / t_ours >= 100,
    }
    print(f"DTW {len(t_str)} × {len(s_str)} tokens: ours {t_ours * 1000:.2f} ms, reference loop {t_ref * 1000:.0f} ms "
          f"-> {t_ref / t_ours:.0f}× (target ≥ 100×), identical path: {identical}")

    # ---- part 2: a full CDM inspection ------------------------------------------------------------------------
    if not args.skip_cdm:
        from ctkd_inspect.engines.dtw import CdmEngine, _static_mapping, _vocab_tables, contextual_mapping
        from ctkd_inspect.signals import compute_signals

        gemma3, smollm2 = load_tokenizer("gemma3"), load_tokenizer("smollm2")
        text = text_of_about([gemma3, smollm2], corpus, args.tokens)
        t = tokenize(gemma3, text, name="gemma3")
        s = tokenize(smollm2, text, name="smollm2")
        start = time.perf_counter()
        t_sig = compute_signals("gemma3", t.ids, tokenizer=gemma3, top_k=100, use_disk_cache=False)
        s_sig = compute_signals("smollm2", s.ids, tokenizer=smollm2, top_k=100, use_disk_cache=False)
        forward = time.perf_counter() - start
        start = time.perf_counter()
        # once per tokenizer pair, not per inspection: decoded vocabularies and the static exact mapping
        t_vocab, _, _ = _vocab_tables(gemma3, "gemma3", "canonical")
        s_vocab, _, _ = _vocab_tables(smollm2, "smollm2", "canonical")
        _static_mapping(t_vocab, s_vocab, gemma3, smollm2, "canonical")
        setup = time.perf_counter() - start
        engine = CdmEngine()

        def inspect():
            return engine.align(t, s, teacher_signals=t_sig, student_signals=s_sig, teacher_tokenizer=gemma3,
                                student_tokenizer=smollm2)

        inspect()  # warm-up: the compiled DP
        t_cdm, result = timed(inspect, args.repeats)
        t_dyn, _ = timed(lambda: contextual_mapping(result.extra["cdm_groups"], t_sig, s_sig, gemma3, smollm2,
                                                    "gemma3", "smollm2"), args.repeats)
        results["cdm_inspection"] = {
            "teacher": "gemma3 (Gemma-3-270M)", "student": "smollm2 (SmolLM2-135M)",
            "teacher_tokens": len(t), "student_tokens": len(s), "top_k": 100,
            "seconds": {"inspection_excluding_forward": t_cdm, "of_which_dynamic_mapping": t_dyn,
                        "forward_passes_excluded": forward,
                        "one_time_vocabulary_tables_and_static_mapping_excluded": setup},
            "metrics": {k: result.metrics[k] for k in ("sequence_alignment_rate", "topk_mapping_coverage",
                                                       "static_teacher_coverage", "dynamic_pairs", "top1_accuracy")},
            "target_seconds": 0.05, "target_met": t_cdm <= 0.05,
        }
        print(f"CDM inspection {len(t)} × {len(s)} tokens, K=100: {t_cdm * 1000:.1f} ms (dynamic mapping "
              f"{t_dyn * 1000:.1f} ms; target ≤ 50 ms); excluded: forward passes {forward:.1f} s, one-time "
              f"vocabulary tables and static exact mapping {setup:.1f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
