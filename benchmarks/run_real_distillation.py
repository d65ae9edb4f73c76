"""Real distillation runs: Gemma-3-270M (teacher) → SmolLM2-135M-Instruct (student), both from the offline sources,
on the offline instruction data set (ctkd_inspect.train.instructions: OpenAI evals prose answers, HumanEval, the
llama.cpp documentation), SFT against every cross-tokenizer KD loss, each method from the same student and the
same data order; loss curves, held-out loss and Rouge-L to ``benchmarks/results/distill_<device>.json``.

::

    python benchmarks/run_real_distillation.py --smoke     # CPU, tiny random models on the two real vocabularies
    python benchmarks/run_real_distillation.py             # the real run (a GPU: about 300 steps a method)
    python benchmarks/run_real_distillation.py --methods sft,sedi --steps 50 --device-name h200

The real run uses the defaults below (bf16 autocast and a bf16 teacher on a GPU); ``--smoke`` swaps the models for
tiny random ones (``ctkd_inspect.train.tiny_model``) on the same tokenizers and runs two steps per method, so the
whole pipeline is known to work on a CPU in a few minutes. Every method writes its own run folder under
``--work-dir`` (default: a temporary folder; checkpoints off, TensorBoard on: keep the GPU run's with
``--work-dir runs/real``), and the JSON holds per method: the training loss and every term per step, the span
alignment rate and the loss's statistics, the held-out evaluations (loss, Rouge-L), seconds and peak memory.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_info

#: method → (loss, loss options); every cross-tokenizer loss with its paper defaults, and SFT
METHODS = {
    "sft": ("sft", {}),
    "mined": ("mined", {}),
    "cdm": ("cdm", {}),
    "sedi": ("sedi", {}),
    "dskd": ("dskd", {}),
    "dwa": ("dwa", {}),
    "uld": ("uld", {}),
    "uld-gold": ("uld", {"grouping": "gold"}),
}

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods: " + ", ".join(METHODS))
    parser.add_argument("--smoke", action="store_true", help="tiny random models, two steps a method (CPU)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=8, help="per-device batch size")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--eval-size", type=int, default=64)
    parser.add_argument("--eval-generate", type=int, default=32)
    parser.add_argument("--eval-steps", type=int, default=100)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default=None, help="run folders, kept (default: a temporary folder)")
    parser.add_argument("--device-name", default=None, help="the <device> of the result file (default: cuda/cpu)")
    parser.add_argument("--output", default=None, help="result JSON (default: results/distill_<device>.json)")
    return parser.parse_args(argv)


def smoke_settings(args):
    args.steps, args.batch, args.max_length, args.eval_size = 2, 2, 160, 4
    args.eval_generate, args.eval_steps, args.max_new_tokens = 2, 0, 8
    return args


def peak_memory() -> int:
    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def main(argv=None) -> dict:
    import torch

    from ctkd_inspect.train import instruction_dataset, load_config, run_distillation, tiny_model

    args = parse_args(argv)
    if args.smoke:
        smoke_settings(args)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    gpu = torch.cuda.is_available()
    device = args.device_name or ("cuda" if gpu else "cpu")
    suffix = "_smoke" if args.smoke else ""
    output = Path(args.output) if args.output else RESULTS / f"distill_{device}{suffix}.json"
    if args.work_dir:
        work = Path(args.work_dir)
        work.mkdir(parents=True, exist_ok=True)
    else:  # checkpoints are off, but TensorBoard logs and samples are written: nothing of it belongs in the results
        work = Path(tempfile.mkdtemp(prefix=f"distill_{device}{suffix}_"))
    print(f"run folders (TensorBoard logs, samples) in {work}", file=sys.stderr)

    data = work / "instructions.jsonl"
    records = instruction_dataset(data)
    if args.smoke:  # a few records of each kind
        kinds: dict[str, int] = {}
        kept = []
        for record in records:
            kind = record["source"].split("/")[0]
            if kinds.get(kind, 0) < 6:
                kept.append(record)
                kinds[kind] = kinds.get(kind, 0) + 1
        data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8")
        teacher = str(tiny_model(work / "tiny-gemma3", "gemma3", hidden=32, seed=1))
        student = str(tiny_model(work / "tiny-smollm2", "smollm2", hidden=32, seed=2, tie_embeddings=True))
    else:
        teacher, student = "gemma3", "smollm2"

    base = {"teacher": teacher, "student": student, "teacher_tokenizer": "gemma3", "student_tokenizer": "smollm2",
            "data": str(data), "max_length": args.max_length, "eval_size": args.eval_size,
            "max_steps": args.steps, "per_device_batch_size": args.batch, "learning_rate": args.learning_rate,
            "lr_scheduler": "cosine", "warmup_steps": 0 if args.smoke else max(1, args.steps // 20),
            "eval_steps": args.eval_steps, "eval_generate": args.eval_generate,
            "max_new_tokens": args.max_new_tokens, "save_checkpoints": False, "save_final_model": False,
            "resume": "never", "overwrite_output_dir": True, "seed": args.seed, "prompt_response_as_chat": True,
            "teacher_dtype": "bfloat16" if gpu else "float32", "mixed_precision": "bf16" if gpu else "no"}
    result = {"machine": machine_info(("torch", "transformers", "accelerate", "peft", "tokenizers")),
              "device": device, "smoke": args.smoke,
              "teacher": "tiny random Llama, Gemma 3 vocabulary" if args.smoke else "Gemma-3-270M",
              "student": "tiny random Llama, SmolLM2 vocabulary" if args.smoke else "SmolLM2-135M-Instruct",
              "data": {"records": len(records) if not args.smoke else sum(kinds.values()),
                       "sources": "evals prose answers, HumanEval, llama.cpp docs"},
              "settings": {k: v for k, v in base.items() if k not in ("teacher", "student", "data")},
              "methods": {}}
    for method in methods:
        loss, options = METHODS[method]
        if args.smoke and loss == "mined":
            options = {**options, "vocab_mapping": "exact"}  # MinED's 262k x 49k mapping takes minutes on a CPU
        config = load_config(None, {**base, "loss": loss, "loss_options": options,
                                    "output_dir": str(work / method)})
        print(f"== {method}", file=sys.stderr, flush=True)
        if gpu:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        run = run_distillation(config, log=lambda message: print(f"   {message}", file=sys.stderr, flush=True))
        seconds = time.perf_counter() - start
        last_eval = run.evaluations[-1] if run.evaluations else {}
        result["methods"][method] = {
            "loss": loss, "options": {k: v for k, v in options.items()},
            "steps": [row["step"] for row in run.history],
            "curves": {key: [row.get(key) for row in run.history] for key in run.history[0]
                       if key.startswith(("loss", "term/", "stat/"))},
            "evaluations": run.evaluations,
            "eval_loss": last_eval.get("eval/loss"), "rougeL": last_eval.get("eval/rougeL"),
            "seconds": round(seconds, 2), "peak_memory_bytes": peak_memory(),
        }
        del run
        gc.collect()
        if gpu:
            torch.cuda.empty_cache()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"written to {output}", file=sys.stderr)
    rows = [(m, r["curves"]["loss"][0], r["curves"]["loss"][-1], r["eval_loss"], r["rougeL"])
            for m, r in result["methods"].items()]
    for method, first, last, eval_loss, rouge in rows:
        held_out = "n/a" if eval_loss is None else f"{eval_loss:.4f}"
        rouge_l = "n/a" if rouge is None else f"{rouge:.4f}"
        print(f"{method:<9} loss {first:.4f} → {last:.4f}   held-out loss {held_out}   Rouge-L {rouge_l}")
    return result


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
