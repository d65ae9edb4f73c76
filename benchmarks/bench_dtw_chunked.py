"""Chunked vs unchunked DTW: how much the chunked mode changes the alignment, and what it saves.

The chunked mode (``--chunking anchors|paragraphs``) aligns pieces of a long text independently, so memory grows
with the largest piece instead of the whole text; DTW forces both ends of every piece to align, so the joined path
passes through every cut point while the unchunked path need not. This script measures the difference on the real
corpus (1549 texts of llama.cpp docs, code and tokenizer test strings, 307k characters), joined with blank lines
into documents of about 20k characters (about 5k × 6.5k tokens for Llama 3 × Gemma 2: the unchunked DTW still
fits easily, so both paths can be compared on every document).

For every tokenizer pair, chunking mode and piece size it reports, over all documents together:

- ``identical_groups``: share of the unchunked alignment's groups that the chunked alignment has identically
  (same teacher and same student tokens) — the headline figure in the README;
- ``identical_groups_of_chunked``: the same share the other way round;
- ``tokens_in_identical_groups``: share of non-special student tokens whose group is identical;
- ``path_cells_kept``: share of the unchunked path's cells on the chunked path;
- ``path_cost_increase``: relative increase of the total DTW cost (the chunked path is a valid path, so it costs
  at least the optimum);
- ``largest_piece_cells`` and the memory estimates (``estimate_bytes``: the DTW matrices of the largest piece
  and of the largest unchunked document, with MinED's one-byte costs, and the result, the same for both), the
  pieces per document, and the seconds of each.

Writes benchmarks/results/dtw_chunked.json.

    python benchmarks/bench_dtw_chunked.py [--document-chars 20000] [--sizes 256,512,1024,2048]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
warnings.filterwarnings("ignore")

from common import machine_info  # noqa: E402

PAIRS = (("llama3", "gemma2"), ("mistral", "qwen2"), ("gemma3", "bert"))


def documents(texts: list[str], size: int) -> list[str]:
    """The corpus texts joined with blank lines into documents of about ``size`` characters (whole texts only)."""
    out, current = [], []
    length = 0
    for text in texts:
        current.append(text)
        length += len(text) + 2
        if length >= size:
            out.append("\n\n".join(current))
            current, length = [], 0
    if current:
        out.append("\n\n".join(current))
    return out


def group_set(alignment) -> set[tuple[tuple[int, ...], tuple[int, ...]]]:
    return {(tuple(g.teacher), tuple(g.student)) for g in alignment.groups}


def compare(whole, pieces) -> dict:
    a, b = group_set(whole), group_set(pieces)
    same = a & b
    student_tokens = sum(len(s) for _, s in a)
    path_a = {tuple(p) for p in whole.extra["path"]}
    path_b = {tuple(p) for p in pieces.extra["path"]}
    return {"groups": len(a), "groups_chunked": len(b), "identical": len(same),
            "student_tokens": student_tokens, "student_tokens_identical": sum(len(s) for _, s in same),
            "path_cells": len(path_a), "path_cells_kept": len(path_a & path_b),
            "cost": whole.metrics["path_cost"], "cost_chunked": pieces.metrics["path_cost"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--document-chars", type=int, default=20_000)
    parser.add_argument("--sizes", default="256,512,1024,2048")
    parser.add_argument("--out", default=str(HERE / "results" / "dtw_chunked.json"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    from ctkd_inspect.api import tokenize_pair
    from ctkd_inspect.engines.dtw import MinedEngine, _codes, _strings, dtw_chunk_memory, result_memory
    from ctkd_inspect.engines.dtw_chunks import chunk_splits, plan_chunks
    from ctkd_inspect.outputs import atomic_write_text
    from ctkd_inspect.sources.corpus import llama_cpp_corpus

    docs = documents(llama_cpp_corpus(), args.document_chars)
    engine = MinedEngine()
    results = []
    for teacher, student in PAIRS:
        tokenized = [tokenize_pair(teacher, student, doc) for doc in docs]
        engine.align(*tokenized[0], chunking="anchors", chunk_tokens=64)  # compile every kernel first
        started = time.perf_counter()
        whole = [engine.align(t, s, max_memory="64G") for t, s in tokenized]
        whole_seconds = time.perf_counter() - started
        sizes_tokens = [(int((~t.special).sum()), int((~s.special).sum())) for t, s in tokenized]
        # the DTW matrices of the largest document, and the result
        whole_estimate = 0
        for t, s in tokenized:
            t_idx, s_idx = np.flatnonzero(~t.special), np.flatnonzero(~s.special)
            distinct = (len(np.unique(_codes(_strings(t, t_idx, "mined", "canonical")))),
                        len(np.unique(_codes(_strings(s, s_idx, "mined", "canonical")))))
            whole_estimate = max(whole_estimate, dtw_chunk_memory(len(t_idx), len(s_idx), 1, *distinct))
        result_estimate = max(result_memory(n, m) for n, m in sizes_tokens)
        for chunking in ("anchors", "paragraphs"):
            for size in sizes:
                started = time.perf_counter()
                pieces = [engine.align(t, s, chunking=chunking, chunk_tokens=size, max_memory="64G")
                          for t, s in tokenized]
                seconds = time.perf_counter() - started
                totals: dict[str, float] = {}
                largest, estimate, chunk_counts = 0, 0, []
                for (t, s), w, p in zip(tokenized, whole, pieces):
                    for key, value in compare(w, p).items():
                        totals[key] = totals.get(key, 0) + value
                    t_idx, s_idx = np.flatnonzero(~t.special), np.flatnonzero(~s.special)
                    plan = plan_chunks(chunk_splits(chunking, t, s, t_idx, s_idx), len(t_idx), len(s_idx), size)
                    chunk_counts.append(len(plan))
                    t_codes = _codes(_strings(t, t_idx, "mined", "canonical"))
                    s_codes = _codes(_strings(s, s_idx, "mined", "canonical"))
                    for t0, t1, s0, s1 in plan:
                        largest = max(largest, (t1 - t0) * (s1 - s0))
                        estimate = max(estimate, dtw_chunk_memory(
                            t1 - t0, s1 - s0, 1, len(np.unique(t_codes[t0:t1])), len(np.unique(s_codes[s0:s1]))))
                row = {
                    "teacher": teacher, "student": student, "chunking": chunking, "chunk_tokens": size,
                    "documents": len(docs),
                    "identical_groups": totals["identical"] / totals["groups"],
                    "identical_groups_of_chunked": totals["identical"] / totals["groups_chunked"],
                    "tokens_in_identical_groups": totals["student_tokens_identical"] / totals["student_tokens"],
                    "path_cells_kept": totals["path_cells_kept"] / totals["path_cells"],
                    "path_cost_increase": totals["cost_chunked"] / totals["cost"] - 1,
                    "groups": int(totals["groups"]), "identical": int(totals["identical"]),
                    "pieces_per_document": float(np.mean(chunk_counts)),
                    "largest_piece_cells": largest,
                    "estimate_bytes": {"largest_piece_dtw": estimate, "unchunked_dtw": whole_estimate,
                                       "result": result_estimate},
                    "seconds": {"chunked": seconds, "unchunked": whole_seconds},
                }
                results.append(row)
                print(f"{teacher}×{student} {chunking:10s} {size:5d}: identical groups "
                      f"{row['identical_groups']:.4f}, tokens {row['tokens_in_identical_groups']:.4f}, cost "
                      f"+{row['path_cost_increase']:.4%}, pieces/doc {row['pieces_per_document']:.1f}, "
                      f"{seconds:.2f}s vs {whole_seconds:.2f}s", flush=True)
    document_tokens = [(len(t), len(s)) for t, s in (tokenize_pair("llama3", "gemma2", d) for d in docs)]
    out = {"benchmark": "chunked vs unchunked DTW (mined, canonical)", "machine": machine_info(),
           "date": datetime.date.today().isoformat(), "corpus": "llama.cpp corpus, 1549 texts",
           "document_chars": args.document_chars, "documents": len(docs),
           "llama3_gemma2_tokens_per_document": {"mean": [float(np.mean([a for a, _ in document_tokens])),
                                                          float(np.mean([b for _, b in document_tokens]))]},
           "results": results}
    atomic_write_text(args.out, json.dumps(out, indent=1) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
