"""Distillation losses: step time and peak memory of every method, against same-tokenizer KD and TRL GOLD's ULD loss,
at equal batch size and sequence length.

Setting: Llama 2's tokenizer (32,000 ids) as the teacher's and GPT-2's (50,257) as the student's — SeDi's main pair —
with small random models of those vocabularies (``LlamaConfig``, hidden 128, 2 layers, ``from_config``), so the
full-vocabulary work of the losses is real while the models stay small; the same-tokenizer ``kd`` baseline uses a
GPT-2-vocabulary teacher on the same texts. Texts: the offline llama.cpp corpus (texts of at least 700 characters;
the first 80 characters, cut at a space, are the prompt), each side cut at ``--length`` tokens, ``--batch``
examples per batch. The per-example alignments are built beforehand (the data pipeline's work, not a step's).

Two times per method, medians of ``--repeats`` interleaved rounds (every contender once per round, in turn, after
one warm-up each, so a change of machine load hits all alike):

- ``loss``: the loss's forward and backward alone, from precomputed model outputs (the student's as leaves that
  take gradients);
- ``step``: the models' forward passes (the teacher's without gradient) + the loss + backward.

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` over one step; on the CPU, the largest resident-set growth
over one step, sampled every millisecond from ``/proc/self/statm``, measured in a second process started with
``MALLOC_MMAP_THRESHOLD_=65536`` (so that every tensor above 64 KiB is mapped on allocation and unmapped on free,
and the resident set follows the live memory; the timings come from the first process, with the default
allocator). The anchor is TRL GOLD's ``ULDLoss`` (``trl.experimental.gold``, its defaults: extended ULD with
byte-offset groups, distillation weight 1, cross-entropy weight 0) on the same logits, with GOLD's label layout and
completion-relative byte offsets built from the same tokenizations; ours is ``uld`` with ``grouping="gold"``.

Targets (the issue): ``dwa`` and ``sedi`` within 15 % of ``dskd``'s step time; ``cdm`` at batch 8 within 25 % of
``mined``. Writes ``benchmarks/results/losses_<device>.json`` with the machine (and the GPU's name on CUDA).

    python benchmarks/bench_losses.py [--device cpu|cuda] [--batch 8] [--length 128] [--repeats 5]

Needs torch and, for the anchor, the ``bench`` extra's ``trl`` (without it the GOLD row is left out, and says so).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
warnings.filterwarnings("ignore")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from common import machine_info  # noqa: E402

METHODS = ["sft", "kd", "mined", "cdm", "sedi", "dskd", "dwa", "uld", "uld-gold"]


def tiny_model(vocab_size: int, hidden: int, seed: int, device):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=4, intermediate_size=2 * hidden, max_position_embeddings=1024,
                         tie_word_embeddings=False)
    return AutoModelForCausalLM.from_config(config).to(device)


class PeakRSS:
    """The largest resident-set growth while the block runs (CPU), sampled every millisecond."""

    def __init__(self):
        self.page = os.sysconf("SC_PAGE_SIZE")

    def rss(self) -> int:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * self.page

    def __enter__(self):
        self.base = self.peak = self.rss()
        self.running = True

        def sample():
            while self.running:
                self.peak = max(self.peak, self.rss())
                time.sleep(0.001)

        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def megabytes(self) -> float:
        return (self.peak - self.base) / 2 ** 20


def peak_memory(function, device, clear=None) -> float:
    """Peak memory growth (MB) of one call, after ``clear()`` freed what the previous call left (gradients)."""
    import gc

    import torch

    if clear is not None:
        clear()
    gc.collect()

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        function()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2 ** 20
    with PeakRSS() as meter:
        function()
    return meter.megabytes


def gold_inputs(examples, pair, batch):
    """TRL GOLD's layout for the same tokens: labels unshifted (``label[t] = input[t]`` at the completion tokens,
    EOS included), completion-relative UTF-8 byte offsets per token (prompt and padding ``(0, 0)``)."""
    import torch

    from ctkd_inspect.text import tokenize

    out = {}
    for side, tokenizer, ids in (("student", pair.student, batch.student_input_ids),
                                 ("teacher", pair.teacher, batch.teacher_input_ids)):
        labels = torch.full_like(ids, -100)
        offsets = torch.zeros(*ids.shape, 2, dtype=torch.long)
        ours = getattr(batch, f"{side}_labels")
        labels[:, 1:] = ours[:, :-1]  # our label at t names token t + 1: GOLD's label at t + 1
        for b, example in enumerate(examples):
            tokens = tokenize(tokenizer, example.text)
            start = len(example.text[:example.prompt_chars].encode("utf-8"))
            content = len(example.text.encode("utf-8")) - start
            for t in range(len(tokens)):
                if labels[b, t] != -100:
                    a = len(example.text[:tokens.starts[t]].encode("utf-8")) - start
                    e = len(example.text[:tokens.ends[t]].encode("utf-8")) - start
                    offsets[b, t] = torch.tensor([max(a, 0), max(e, 0)])
            real = int(getattr(batch, f"{side}_attention_mask")[b].sum())
            if real == len(tokens) + 1:  # the appended EOS sits at the end of the completion
                offsets[b, len(tokens)] = torch.tensor([content, content])
        out[side] = (labels, offsets)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--methods", default=",".join([*METHODS, "trl-gold-uld"]))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)  # the memory child process
    args = parser.parse_args()

    import torch

    from ctkd_inspect.losses import Collator, PairBuilder, TokenizerPair, get_loss
    from ctkd_inspect.losses.base import ModelOutputs
    from ctkd_inspect.sources.corpus import llama_cpp_corpus

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    wanted = args.methods.split(",")
    load_before = os.getloadavg()

    texts = [t for t in llama_cpp_corpus() if len(t) >= 700][:args.batch]
    pairs = []
    for text in texts:
        cut = text.rfind(" ", 0, 80)
        cut = cut if cut > 20 else 80
        pairs.append((text[:cut], text[cut:]))
    cross = TokenizerPair("llama2", "gpt2")
    same = TokenizerPair("gpt2", "gpt2")
    builder = PairBuilder(cross, max_length=args.length)
    same_builder = PairBuilder(same, max_length=args.length, alignments=())
    examples = builder.build_many(pairs)
    batch = Collator(builder)(examples).to(device)
    same_batch = Collator(same_builder)(same_builder.build_many(pairs)).to(device)

    student = tiny_model(cross.student_vocab_size, args.hidden, 1, device)
    teacher = tiny_model(cross.teacher_vocab_size, args.hidden, 2, device)
    same_teacher = tiny_model(cross.student_vocab_size, args.hidden, 3, device)
    options = {"sft": {}, "kd": {}, "mined": {"pair": cross}, "cdm": {"pair": cross}, "sedi": {"pair": cross},
               "dskd": {"student_dim": args.hidden, "teacher_dim": args.hidden},
               "dwa": {"student_dim": args.hidden, "teacher_dim": args.hidden}, "uld": {},
               "uld-gold": {"grouping": "gold"}}

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize()

    contenders, modules = {}, []
    for name in [m for m in METHODS if m in wanted]:
        loss = get_loss("uld" if name == "uld-gold" else name, **options[name]).to(device)
        modules.append(loss)
        the_batch, the_teacher = (same_batch, same_teacher) if name == "kd" else (batch, teacher)
        with torch.no_grad():
            s_out, t_out = loss.model_outputs(the_batch, student, the_teacher if "teacher" in loss.needs else None)

        def loss_only(loss=loss, the_batch=the_batch, s_out=s_out, t_out=t_out):
            leaves = ModelOutputs(s_out.logits.detach().requires_grad_(True),
                                  None if s_out.hidden_states is None else
                                  s_out.hidden_states.detach().requires_grad_(True),
                                  s_out.embed_tokens, s_out.lm_head_weight)
            loss(the_batch, leaves, t_out).loss.backward()
            synchronize()

        def step(loss=loss, the_batch=the_batch, the_teacher=the_teacher):
            student.zero_grad(set_to_none=True)
            loss.zero_grad(set_to_none=True)
            loss.step(the_batch, student, the_teacher).loss.backward()
            synchronize()

        contenders[name] = (loss_only, step)

    anchor_note = None
    if "trl-gold-uld" in wanted:
        try:
            from trl.experimental.gold.gold_trainer import ULDLoss as GoldULD
        except ImportError as exc:
            anchor_note = f"TRL GOLD's ULDLoss could not be imported ({exc}); pip install trl (the bench extra)"
        else:
            import dataclasses

            from trl.experimental.gold.gold_config import GOLDConfig

            # GOLD's own defaults (extended ULD, distillation weight 1, cross-entropy 0, EOS skipped), read from its
            # config class so that a newer TRL's new fields come with their defaults
            config = SimpleNamespace(**{f.name: f.default for f in dataclasses.fields(GOLDConfig)
                                        if f.default is not dataclasses.MISSING})
            gold = GoldULD(config, cross.student, cross.teacher, device=device)
            layout = gold_inputs(examples, cross, batch.to("cpu"))
            s_labels, s_offsets = (t.to(device) for t in layout["student"])
            t_labels, t_offsets = (t.to(device) for t in layout["teacher"])
            with torch.no_grad():
                s_logits = student(input_ids=batch.student_input_ids,
                                   attention_mask=batch.student_attention_mask).logits
                t_logits = teacher(input_ids=batch.teacher_input_ids,
                                   attention_mask=batch.teacher_attention_mask).logits

            def gold_loss_only():
                leaf = s_logits.detach().requires_grad_(True)
                gold(leaf, t_logits, s_labels, t_labels, batch.student_input_ids, batch.teacher_input_ids,
                     s_offsets, t_offsets).backward()
                synchronize()

            def gold_step():
                student.zero_grad(set_to_none=True)
                logits = student(input_ids=batch.student_input_ids,
                                 attention_mask=batch.student_attention_mask).logits
                with torch.no_grad():
                    t_now = teacher(input_ids=batch.teacher_input_ids,
                                    attention_mask=batch.teacher_attention_mask).logits
                gold(logits, t_now, s_labels, t_labels, batch.student_input_ids, batch.teacher_input_ids,
                     s_offsets, t_offsets).backward()
                synchronize()

            contenders["trl-gold-uld"] = (gold_loss_only, gold_step)

    for loss_only, step in contenders.values():  # warm-up: numba/Triton compilation, allocator
        loss_only()
        step()
    def clear():
        for module in (student, teacher, same_teacher, *modules):
            module.zero_grad(set_to_none=True)

    def measure():
        return {name: {"peak_mb_loss": peak_memory(loss_only, device, clear),
                       "peak_mb_step": peak_memory(step, device, clear)}
                for name, (loss_only, step) in contenders.items()}

    if args.memory_only:
        peaks = measure()
        print(json.dumps(peaks))
        return
    times = {name: {"loss": [], "step": []} for name in contenders}
    for _ in range(args.repeats):
        for name, (loss_only, step) in contenders.items():
            for kind, function in (("loss", loss_only), ("step", step)):
                start = time.perf_counter()
                function()
                times[name][kind].append(time.perf_counter() - start)
    if device.type == "cuda":
        peaks = measure()
    else:
        import subprocess

        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
        child = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--memory-only"], env=env,
                               capture_output=True, text=True, check=True)
        peaks = json.loads(child.stdout.strip().splitlines()[-1])
    results = {}
    for name in contenders:
        results[name] = {"loss_ms": 1000 * statistics.median(times[name]["loss"]),
                         "step_ms": 1000 * statistics.median(times[name]["step"]), **peaks[name]}

    def ratio(a, b, kind):
        if a in results and b in results:
            return results[a][f"{kind}_ms"] / results[b][f"{kind}_ms"]
        return None

    ratios = {f"{a}/{b}": {kind: ratio(a, b, kind) for kind in ("loss", "step")}
              for a, b in (("dwa", "dskd"), ("sedi", "dskd"), ("cdm", "mined"), ("mined", "kd"), ("cdm", "kd"),
                           ("sedi", "kd"), ("dskd", "kd"), ("dwa", "kd"), ("uld", "kd"),
                           ("uld-gold", "trl-gold-uld"))}
    targets = {"dwa/dskd <= 1.15": ratios["dwa/dskd"], "sedi/dskd <= 1.15": ratios["sedi/dskd"],
               "cdm/mined <= 1.25 (batch 8)": ratios["cdm/mined"]}
    limits = {"dwa/dskd <= 1.15": 1.15, "sedi/dskd <= 1.15": 1.15, "cdm/mined <= 1.25 (batch 8)": 1.25}
    verdict = {key: {kind: (None if value[kind] is None else value[kind] <= limits[key]) for kind in value}
               for key, value in targets.items()}
    machine = machine_info(("numpy", "numba", "tokenizers", "transformers", "torch", "trl", "triton"))
    if device.type == "cuda":
        machine["device"] = torch.cuda.get_device_name(device)
    record = {
        "benchmark": "distillation losses: loss forward+backward and full training step (model forwards + loss + "
                     "backward), median of interleaved rounds",
        "settings": {"device": device.type, "batch": args.batch, "length": args.length, "hidden": args.hidden,
                     "repeats": args.repeats, "teacher": "llama2 vocabulary (32000)",
                     "student": "gpt2 vocabulary (50257)", "kd teacher": "gpt2 vocabulary",
                     "student_tokens": int(batch.student_input_ids.numel()),
                     "loss_positions": int((batch.student_labels != -100).sum())},
        "methods": results, "ratios": ratios, "targets": verdict,
        "anchor": anchor_note or "TRL GOLD ULDLoss (trl.experimental.gold), its defaults",
        "machine": machine, "load_average": {"before": load_before, "after": os.getloadavg()},
    }
    out = args.out or HERE / "results" / f"losses_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    tmp.replace(out)
    width = max(len(n) for n in results)
    print(f"{'method':<{width}}  loss ms   step ms   peak MB (loss/step)")
    for name, row in results.items():
        print(f"{name:<{width}}  {row['loss_ms']:8.1f}  {row['step_ms']:8.1f}  {row['peak_mb_loss']:7.0f} / "
              f"{row['peak_mb_step']:.0f}")
    for key, value in ratios.items():
        print(f"{key:<22} loss {value['loss'] if value['loss'] is None else round(value['loss'], 3)}  step "
              f"{value['step'] if value['step'] is None else round(value['step'], 3)}")
    print("targets:", json.dumps(verdict))
    print(f"written {out}")


if __name__ == "__main__":
    main()
