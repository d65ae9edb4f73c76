"""A distillation run on Accelerate: the training loop, exact resume, logging, evaluation.

:func:`run_distillation` trains the student of a :class:`~ctkd_inspect.train.config.DistillConfig` with its loss
(:mod:`ctkd_inspect.losses`) on one CPU, one GPU or many processes (``accelerate launch``: DDP, FSDP), unchanged.

**The step.** One optimizer step consumes ``per_device_batch_size × processes × gradient_accumulation_steps``
examples at the run's data position (:func:`~ctkd_inspect.train.data.step_indices`). Before the forward passes
the step counts its student loss positions over every micro-batch and process (``N``, one all-reduce). Each
micro-batch then back-propagates ``Σ_b n_b·ℓ_b · P / N`` (``ℓ_b`` an example's loss, ``n_b`` its loss positions,
``P`` the number of processes): DDP averages the gradients over the processes, so the step's gradient is that of
``Σ n_b·ℓ_b / N`` over the whole global batch — the losses' own token-weighted reduction — whatever the number of
processes, micro-batches or padding. Two processes and one process with the doubled batch therefore take the same
step (to float reassociation). The logged ``loss`` and ``term/*`` are the same token-weighted means over the
global batch, ``stat/*`` the ratios of the summed ``(numerator, denominator)`` counts of every micro-batch and
process. The teacher is frozen (eval mode, ``requires_grad = False``, run under ``no_grad``); the optimizer holds
the student's trainable parameters (the LoRA adapters with ``lora``) and the loss's own (projectors), which
``prepare`` wraps together with the student in one module (:class:`DistillationModule`) so that DDP and FSDP
synchronise both.

**Checkpoints and exact resume.** Every ``save_steps`` steps, at the end and on an interrupt,
``accelerator.save_state`` writes the model and loss parameters, the optimizer, the scheduler, the RNG states of
python/numpy/torch of every process and the run state (step, data position, the training data's fingerprint, the
config) into ``output_dir/checkpoints/.checkpoint-N.partial``, renamed to ``checkpoint-N`` once complete (a
killed save leaves no checkpoint that a resume would trust). A resumed run (``resume: auto`` finds the latest)
loads it with ``accelerator.load_state`` and continues at step ``N + 1`` with the examples the uninterrupted run
would have used, so every later loss is bitwise the same on the CPU; ``metrics.jsonl`` is cut back to step ``N``
and TensorBoard purges the events after ``N`` (``purge_step``), so no step appears twice. SIGINT (Ctrl-C) and
SIGTERM finish the current step, save a checkpoint and raise :class:`TrainingInterrupted` (exit 130); a second
Ctrl-C stops at once.

**NaN/inf.** A loss term that is NaN or infinite (the losses check), gradients with a NaN/inf norm, or parameters
that turned NaN stop the run with :class:`TrainingError` naming the step and the term, before the optimizer applies
anything of that step and before any checkpoint could be written from that state: the last good checkpoint stays
as it was.

**Logging and evaluation.** TensorBoard (``log_with: tensorboard``, ``output_dir/tensorboard``) and
``metrics.jsonl`` receive, every ``logging_steps``: ``loss``, every ``term/<name>`` of the loss, every
``stat/<name>`` of the loss (alignment rate, top-1 accuracy, one-hot fallback rate, mapping coverage, ...) and,
for every loss, ``stat/span_alignment_rate`` (the share of student loss positions whose token is alone in an exact
1:1 span group, the span engine's alignment rate of the batch), ``lr``,
``grad_norm``, ``tokens`` and ``epoch``. Every ``eval_steps`` and at the end: the same loss, terms and statistics
on the held-out set (``eval/...``), and the student's answers to ``eval_generate`` held-out prompts (greedy, or
sampled with a generator seeded by ``seed`` and the step) scored by Rouge-L F1 with Porter stemming against the
reference responses (``eval/rougeL``), the samples logged as text and written to ``samples/step-N.jsonl``.

**Testing hooks.** ``debug_nan_step`` (a config key) poisons the teacher's logits at a step. The environment
variables ``CTKD_INSPECT_TRAIN_KILL_AFTER_STEP=k`` and ``CTKD_INSPECT_TRAIN_KILL_SIGNAL=KILL|INT|TERM`` (default
``KILL``) make the process send itself that signal once step ``k`` is complete (logged, evaluated and saved when
due), to test killed and interrupted runs; they are read from the environment so that the killed run and its
resumption have the same configuration.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import CtkdError, ExitCode, InputError
from .config import RESUME_SAFE_KEYS, DistillConfig

__all__ = ["RunResult", "TrainingError", "TrainingInterrupted", "latest_checkpoint",
           "list_checkpoints", "run_distillation"]

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
METRICS_FILE = "metrics.jsonl"
KILL_AFTER_ENV = "CTKD_INSPECT_TRAIN_KILL_AFTER_STEP"
KILL_SIGNAL_ENV = "CTKD_INSPECT_TRAIN_KILL_SIGNAL"


class TrainingError(CtkdError):
    """A run stopped: NaN/inf in a loss term, the gradients or the parameters (the message names the step and the
    term, and the last good checkpoint). Exit code 1."""

    exit_code = ExitCode.RUNTIME


class TrainingInterrupted(CtkdError):
    """The run was interrupted (SIGINT/SIGTERM) after ``step``; ``checkpoint`` holds its state. Exit code 130."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str, step: int = 0, checkpoint: Path | None = None):
        super().__init__(message)
        self.step = step
        self.checkpoint = checkpoint


@dataclass
class RunResult:
    """What a run did.

    Attributes:
        output_dir: the run's folder.
        step: the last step taken.
        history: the training metrics logged by this call, one dict per logged step (``step``, ``loss``,
            ``term/*``, ...; a resumed run's earlier steps are in ``metrics.jsonl``).
        evaluations: the evaluations of this call, one dict each (``step``, ``eval/loss``, ``eval/rougeL``, ...).
        checkpoint: the last checkpoint written (or resumed from).
        final_dir: where the final student was written (``save_final_model``).
        resumed_from: the checkpoint the run continued from.
        data: the data report (:meth:`~ctkd_inspect.train.data.DataReport.to_dict`).
    """

    output_dir: Path
    step: int
    history: list[dict] = field(default_factory=list)
    evaluations: list[dict] = field(default_factory=list)
    checkpoint: Path | None = None
    final_dir: Path | None = None
    resumed_from: Path | None = None
    data: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------------
# checkpoints


def list_checkpoints(output_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """The complete checkpoints of a run folder as ``(step, path)``, oldest first (a folder counts once its
    ``trainer_state.json`` exists; partial saves never do)."""
    folder = Path(output_dir) / CHECKPOINTS
    found = []
    if folder.is_dir():
        for path in folder.iterdir():
            name = path.name
            if name.startswith("checkpoint-") and name[11:].isdigit() and (path / STATE_FILE).is_file():
                found.append((int(name[11:]), path))
    return sorted(found)


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint of a run folder, or ``None``."""
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def _read_state(checkpoint: Path) -> dict:
    try:
        return json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{checkpoint} is not a complete checkpoint of a ctkd-inspect run ({exc})") from None


class _RunState:
    """The run's own part of a checkpoint (registered with ``accelerator.register_for_checkpointing``)."""

    def __init__(self):
        self.step = 0
        self.samples_seen = 0
        self.fingerprint = ""

    def state_dict(self) -> dict:
        return {"step": self.step, "samples_seen": self.samples_seen, "fingerprint": self.fingerprint}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.samples_seen = int(state["samples_seen"])
        self.fingerprint = str(state["fingerprint"])


# ---------------------------------------------------------------------------------------------------------------
# the trained module


@functools.lru_cache(maxsize=1)
def _module_class():
    from torch import nn

    class DistillationModule(nn.Module):
        """The trainable part of a run: the student and the loss (with its projectors), prepared together so that
        DDP/FSDP synchronise both. The teacher is kept outside (not a submodule: never in the optimizer, the
        state dict or DDP). ``forward(batch, teacher)`` runs the loss's step and returns ``(per_example,
        LossOutput)``: the tensor lets DDP find the graph when it looks for unused parameters."""

        def __init__(self, student, loss):
            super().__init__()
            self.student = student
            self.loss = loss
            # FSDP's transformer-based auto-wrap reads the wrapped model's layer classes
            self._no_split_modules = getattr(student, "_no_split_modules", None)

        def forward(self, batch, teacher=None):
            out = self.loss.step(batch, self.student, teacher)
            return out.per_example, out

    return DistillationModule


def __getattr__(name):
    if name == "DistillationModule":
        return _module_class()
    raise AttributeError(name)


# ---------------------------------------------------------------------------------------------------------------
# the run


class _Interrupts:
    """SIGINT/SIGTERM set a flag (the run stops after the current step); a second SIGINT raises at once."""

    def __init__(self, log):
        self.flag = False
        self.log = log
        self.previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.flag and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.flag = True
        self.log("interrupt received: finishing this step, then saving a checkpoint (Ctrl-C again to stop at once, "
                 "losing the steps since the last checkpoint)")

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _append_jsonl(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({k: _jsonable(v) for k, v in row.items()}, ensure_ascii=False) + "\n")
        handle.flush()


def _cut_metrics(path: Path, step: int) -> None:
    """Keep the rows of steps up to ``step`` (a resumed run writes the later ones again); unreadable lines (a
    killed write) are dropped."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and int(row.get("step", 0)) <= step:
            kept.append(line)
    from ..outputs import atomic_write_text

    atomic_write_text(path, "".join(f"{line}\n" for line in kept))


def _flat_hparams(config: DistillConfig) -> dict:
    out = {}
    for key, value in config.to_dict().items():
        if value is None:
            out[key] = "none"
        elif isinstance(value, (dict, list)):
            out[key] = json.dumps(value, sort_keys=True)
        else:
            out[key] = value
    return out


def _prepare_output_dir(config: DistillConfig, main: bool, log) -> Path | None:
    """Decide where the run starts from (see the ``resume`` key) and return the checkpoint to load, if any.

    Raises:
        InputError: ``resume: never`` with a previous run in the folder (and no ``overwrite_output_dir``), or a
            ``resume`` path that is not a complete checkpoint.
    """
    out = Path(config.output_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError(f"output_dir {out} exists and is not a folder")
    if config.resume == "auto":
        found = latest_checkpoint(out)
        return found
    if config.resume == "never":
        previous = list_checkpoints(out) or (out / METRICS_FILE).exists()
        if previous and not config.overwrite_output_dir:
            raise InputError(f"output_dir {out} holds a previous run (checkpoints or metrics): continue it with "
                             "resume: auto (the default), choose another output_dir, or pass "
                             "--overwrite-output-dir to delete that run's checkpoints, logs and metrics")
        if previous and main:
            for name in (CHECKPOINTS, "tensorboard", "samples", "final"):
                shutil.rmtree(out / name, ignore_errors=True)
            for name in (METRICS_FILE, "results.json", "data_report.json"):
                with contextlib.suppress(FileNotFoundError):
                    (out / name).unlink()
            log(f"removed the previous run in {out} (overwrite_output_dir)")
        return None
    path = Path(config.resume).expanduser()
    if not (path / STATE_FILE).is_file():
        raise InputError(f"resume: {config.resume} is not a complete checkpoint folder (no {STATE_FILE}); give a "
                         f"folder like {out / CHECKPOINTS / 'checkpoint-100'}, auto or never")
    return path


def _check_resumable(config: DistillConfig, saved: dict, checkpoint: Path, log) -> None:
    """Refuse to resume with a configuration that would not continue the same run; note the harmless changes."""
    before = saved.get("config", {})
    now = config.to_dict()
    changed = [k for k in now if k in before and before[k] != now[k]]
    unsafe = [k for k in changed if k not in RESUME_SAFE_KEYS]
    if unsafe:
        listed = "; ".join(f"{k}: {before[k]!r} → {now[k]!r}" for k in unsafe)
        raise InputError(f"cannot resume from {checkpoint}: the run was started with other values ({listed}), so it "
                         "would not continue the same run. Use the original values, another output_dir, or "
                         "resume: never with --overwrite-output-dir to start over")
    safe = [k for k in changed if k not in ("resume", "output_dir", "overwrite_output_dir")]
    if safe:
        log("resuming with changed " + ", ".join(f"{k} ({before[k]!r} → {now[k]!r})" for k in safe))


def run_distillation(config: DistillConfig, *, log=None) -> RunResult:
    """Train ``config.student`` by distillation from ``config.teacher`` (see the module docstring).

    Args:
        config: the run's configuration (validated here again).
        log: ``log(message)`` for one-line notes for people (the CLI prints them on stderr); called on the main
            process only.

    Returns:
        A :class:`RunResult`.

    Raises:
        InputError: a bad configuration, data or resume request (the message names the key or the file).
        ModelError: a model or tokenizer that cannot be loaded, or a model that does not belong to its tokenizer.
        MissingExtraError: the ``train`` extra is not installed.
        TrainingError: NaN/inf in a loss term, the gradients or the parameters (naming the step and the term).
        TrainingInterrupted: SIGINT/SIGTERM; a checkpoint of the last complete step was saved.
    """
    from ..extras import require

    require("train", "distillation runs (ctkd-inspect distill)")
    config.validate()
    import torch
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.utils import ProjectConfiguration

    from ..progress import reporting

    out = Path(config.output_dir).expanduser()
    use_cpu = not torch.cuda.is_available()
    kwargs = [DistributedDataParallelKwargs(find_unused_parameters=config.ddp_find_unused_parameters)]
    accelerator = Accelerator(cpu=use_cpu, mixed_precision=config.mixed_precision,
                              log_with="tensorboard" if config.log_with == "tensorboard" else None,
                              project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out)),
                              step_scheduler_with_optimizer=False, kwargs_handlers=kwargs)
    main = accelerator.is_main_process

    def say(message: str) -> None:
        if main and log is not None:
            log(message)

    context = contextlib.nullcontext() if main else reporting(None)  # progress only from the main process
    with context:
        run = _Run(config, accelerator, say)
        try:
            return run.execute()
        finally:
            run.close()


class _Run:
    """One run's state and steps (see :func:`run_distillation`)."""

    def __init__(self, config: DistillConfig, accelerator, say):
        self.config = config
        self.accelerator = accelerator
        self.say = say
        self.out = Path(config.output_dir).expanduser()
        self.main = accelerator.is_main_process
        self.state = _RunState()
        self.history: list[dict] = []
        self.evaluations: list[dict] = []
        self.last_checkpoint: Path | None = None
        self.trackers = False

    # -- setup ---------------------------------------------------------------------------------------------------

    def setup(self) -> None:
        import torch
        from accelerate.utils import set_seed

        from ..losses import PairBuilder, TokenizerPair, loss_class
        from ..sources import load_tokenizer
        from .data import EpochSampler, build_examples, examples_fingerprint, load_pairs
        from .models import (
            apply_lora,
            check_model_fits,
            freeze,
            load_causal_lm,
            model_context,
            resolve_tokenizer_name,
        )

        config, accelerator = self.config, self.accelerator
        self.resume_from = _prepare_output_dir(config, self.main, self.say)
        accelerator.wait_for_everyone()  # the main process may have cleared the folder
        if self.resume_from is not None:
            saved = _read_state(self.resume_from)
            _check_resumable(config, saved, self.resume_from, self.say)
        set_seed(config.seed)

        # the loss class and its options first: a typo costs no model load
        cls = loss_class(config.loss)
        self.uses_teacher = "teacher" in cls.needs
        loss_options = _check_loss_options(cls, config.loss, config.loss_options)

        # tokenizers and data before the models: bad data is reported in seconds
        student_tok_name = resolve_tokenizer_name(config.student, config.student_tokenizer)
        self.student_tokenizer = load_tokenizer(student_tok_name, cache_dir=config.cache_dir)
        if self.uses_teacher or config.teacher:
            if not config.teacher:
                raise InputError(f"the {config.loss} loss needs a teacher: set the config key 'teacher'")
            teacher_tok_name = resolve_tokenizer_name(config.teacher, config.teacher_tokenizer)
            self.teacher_tokenizer = load_tokenizer(teacher_tok_name, cache_dir=config.cache_dir)
        else:
            teacher_tok_name, self.teacher_tokenizer = student_tok_name, self.student_tokenizer
        if config.loss == "kd" and self.teacher_tokenizer.get_vocab() != self.student_tokenizer.get_vocab():
            raise InputError("the kd loss compares the two models token by token and needs one tokenizer for both; "
                             f"{teacher_tok_name} and {student_tok_name} differ: use a cross-tokenizer loss (sedi, "
                             "mined, cdm, dskd, dwa, uld)")
        train_pairs, heldout_pairs, self.report = load_pairs(config, self.student_tokenizer, self.teacher_tokenizer)

        # the models
        self.student, student_source = load_causal_lm(config.student, cache_dir=config.cache_dir, role="student")
        check_model_fits(self.student, student_source, self.student_tokenizer, "student")
        self.teacher = None
        if self.uses_teacher:
            self.teacher, teacher_source = load_causal_lm(config.teacher, dtype=config.teacher_dtype,
                                                          cache_dir=config.cache_dir, role="teacher")
            check_model_fits(self.teacher, teacher_source, self.teacher_tokenizer, "teacher")
            freeze(self.teacher)
        contexts = [c for c in (model_context(self.student), self.teacher and model_context(self.teacher)) if c]
        max_length = config.max_length
        if contexts and max_length > min(contexts):
            max_length = min(contexts)
            self.say(f"max_length {config.max_length} is longer than the models' context; using {max_length}")
        self.report.max_length = max_length
        if config.lora:
            self.student = apply_lora(self.student, r=config.lora_r, alpha=config.lora_alpha,
                                      dropout=config.lora_dropout, target_modules=config.lora_target_modules)

        # the loss (its projectors are drawn from the seeded generator) and the examples
        pair = TokenizerPair(self.teacher_tokenizer, self.student_tokenizer, mode=config.mode,
                             teacher_name=teacher_tok_name, student_name=student_tok_name)
        params = _init_parameters(cls)
        if "pair" in params:
            loss_options.setdefault("pair", pair)
        if "student_model" in params:
            loss_options.setdefault("student_model", self.student)
        if "teacher_model" in params and self.teacher is not None:
            loss_options.setdefault("teacher_model", self.teacher)
        try:
            self.loss = cls(**loss_options)
        except TypeError as exc:
            raise InputError(f"the {config.loss} loss: {exc}") from None
        # the span groups are always built: every run logs the span alignment rate of its batches, whatever its loss
        alignments = tuple(dict.fromkeys([*sorted(self.loss.alignments), "span"]))
        self.builder = PairBuilder(pair, max_length=max_length, alignments=alignments)
        self.train_examples = build_examples(self.builder, train_pairs, self.report)
        self.heldout_examples = build_examples(self.builder, heldout_pairs, self.report)
        if not self.train_examples:
            raise InputError(f"data {config.data}: no example is left to train on ({'; '.join(self.report.notes())})")
        self.report.train, self.report.heldout = len(self.train_examples), len(self.heldout_examples)
        for note in self.report.notes():
            self.say(note)
        self.state.fingerprint = examples_fingerprint(self.train_examples)
        self.sampler = EpochSampler(len(self.train_examples), config.seed)
        from ..losses import Collator

        self.collator = Collator(self.builder)

        # optimizer, scheduler, preparation
        module = _module_class()(self.student, self.loss)
        self.optimizer = _optimizer(torch, config, self.student, self.loss)
        self.scheduler = _scheduler(config, self.optimizer)
        self.model, self.optimizer, self.scheduler = accelerator.prepare(module, self.optimizer, self.scheduler)
        if self.teacher is not None:
            self.teacher.to(accelerator.device)
        accelerator.register_for_checkpointing(self.state)

        if self.resume_from is not None:
            expected = self.state.fingerprint
            accelerator.load_state(str(self.resume_from))
            if self.state.fingerprint != expected:
                raise InputError(f"cannot resume from {self.resume_from}: the training examples differ from the ones "
                                 "the run was started with (the data file, the tokenizers or max_length changed); "
                                 "use another output_dir to train on the new data")
            self.last_checkpoint = self.resume_from
            self.say(f"resuming from {self.resume_from} (step {self.state.step} of {config.max_steps}, "
                     f"{self.state.samples_seen} examples seen)")
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            from ..outputs import atomic_write_text

            atomic_write_text(self.out / "config.yaml", config.to_yaml())
            atomic_write_text(self.out / "data_report.json", json.dumps(self.report.to_dict(), indent=1))
            _cut_metrics(self.out / METRICS_FILE, self.state.step)
        if config.log_with == "tensorboard":
            # events of steps after the resumed one (a killed run logged them) are purged: no step appears twice
            init = {"tensorboard": {"purge_step": self.state.step + 1}}
            accelerator.init_trackers("tensorboard", config=_flat_hparams(config), init_kwargs=init)
            self.trackers = True

    # -- the loop ------------------------------------------------------------------------------------------------

    def execute(self) -> RunResult:
        from ..progress import stage

        self.setup()
        config = self.config
        kill_after = os.environ.get(KILL_AFTER_ENV)
        kill_after = int(kill_after) if kill_after and kill_after.isdigit() else None
        last_eval = last_save = self.state.step if self.resume_from is not None else -1
        with _Interrupts(self.say) as interrupts, stage("training", total=config.max_steps, unit="steps") as bar:
            bar.update(completed=self.state.step)
            while self.state.step < config.max_steps:
                metrics = self.train_step(self.state.step + 1)
                step = self.state.step
                stop = self._any(interrupts.flag)
                if step % config.logging_steps == 0 or step == config.max_steps:
                    self.log_metrics(metrics)
                bar.update(completed=step, detail=f"loss {metrics['loss']:.4f}")
                if config.eval_steps and step % config.eval_steps == 0 and self.heldout_examples:
                    self.evaluate()
                    last_eval = step
                if (config.save_steps and step % config.save_steps == 0) or step == config.max_steps or stop:
                    self.save_checkpoint()
                    last_save = step
                if kill_after is not None and step == kill_after:
                    name = os.environ.get(KILL_SIGNAL_ENV, "KILL").upper().removeprefix("SIG")
                    os.kill(os.getpid(), getattr(signal, f"SIG{name}"))
                    stop = stop or self._any(interrupts.flag)
                    if stop and last_save != step:
                        self.save_checkpoint()
                        last_save = step
                if stop:
                    saved = (f"its state is saved in {self.last_checkpoint}: run the same command again to continue "
                             "(resume: auto)" if config.save_checkpoints else
                             "no checkpoint was written (save_checkpoints: false)")
                    raise TrainingInterrupted(f"interrupted after step {step} of {config.max_steps}; {saved}", step,
                                              self.last_checkpoint)
        if self.heldout_examples and last_eval != self.state.step:
            self.evaluate()
        if last_save != self.state.step:
            self.save_checkpoint()
        final_dir = self.save_final() if config.save_final_model else None
        result = RunResult(self.out, self.state.step, self.history, self.evaluations, self.last_checkpoint, final_dir,
                           self.resume_from, self.report.to_dict())
        if self.main:
            from ..outputs import atomic_write_text

            summary = {"step": result.step, "last": self.history[-1] if self.history else None,
                       "evaluations": self.evaluations, "checkpoint": str(self.last_checkpoint),
                       "final_dir": str(final_dir) if final_dir else None, "data": result.data}
            atomic_write_text(self.out / "results.json", json.dumps(summary, indent=1, default=_jsonable))
        self.say(f"done: {self.state.step} steps"
                 + (f"; checkpoint {self.last_checkpoint}" if self.last_checkpoint else "")
                 + (f"; student in {final_dir}" if final_dir else ""))
        return result

    def _any(self, flag: bool) -> bool:
        """``flag`` OR-ed over the processes (every process stops at the same step)."""
        if self.accelerator.num_processes == 1:
            return bool(flag)
        import torch

        value = torch.tensor([1.0 if flag else 0.0], device=self.accelerator.device)
        return bool(self.accelerator.reduce(value, reduction="sum").item() > 0)

    def _poison(self, step: int):
        """The NaN testing hook: a forward hook on the teacher (the student for sft) that returns NaN logits."""
        if self.config.debug_nan_step != step:
            return None
        target = self.teacher if self.teacher is not None else self.accelerator.unwrap_model(self.model).student

        def hook(module, args, output):
            output.logits = output.logits * float("nan")
            return output

        return target.register_forward_hook(hook)

    def _fail(self, step: int, message: str | None, when: str = "training") -> None:
        """Raise :class:`TrainingError` on every process when any process failed (every process calls this after
        the same work and the messages are gathered, so none waits forever in a collective for one that stopped).
        ``when``: ``training`` (nothing of the step was applied) or ``evaluation`` (after the step)."""
        messages = [message]
        if self.accelerator.num_processes > 1:
            from accelerate.utils import gather_object

            messages = gather_object([message])
        failures = [m for m in messages if m]
        if failures:
            checkpoint = (f"the last good checkpoint is {self.last_checkpoint} (step "
                          f"{_read_state(self.last_checkpoint).get('step', '?')}); resume from it after fixing the "
                          "cause (e.g. a lower learning_rate)" if self.last_checkpoint else
                          "no checkpoint was written yet")
            if when == "training":
                where, stopped = "", "Training stopped before applying this step"
            else:
                where, stopped = "evaluation: ", "Training stopped at the held-out evaluation after this step"
            raise TrainingError(f"step {step}: {where}{failures[0].rstrip('. ')}. {stopped}; {checkpoint}.")

    def train_step(self, step: int) -> dict:
        import torch

        from ..losses.base import NonFiniteError
        from .data import step_indices

        config, accelerator = self.config, self.accelerator
        processes, rank = accelerator.num_processes, accelerator.process_index
        micro = step_indices(self.sampler, self.state.samples_seen, config.per_device_batch_size, processes,
                             config.gradient_accumulation_steps, rank)
        batches = [self.collator([self.train_examples[i] for i in indices]) for indices in micro]
        local = sum(int((b.student_labels != -100).sum()) for b in batches)
        tokens = torch.tensor([float(local)], dtype=torch.float64, device=accelerator.device)
        total = float(accelerator.reduce(tokens, reduction="sum").item()) if processes > 1 else float(local)
        scale = processes / total if total > 0 else 0.0
        sums = {"loss": 0.0, "terms": {}, "counts": {}}
        hook = self._poison(step)
        self.model.train()
        try:
            for index, batch in enumerate(batches):
                batch = batch.to(accelerator.device)
                sync = index == len(batches) - 1
                with contextlib.nullcontext() if sync else accelerator.no_sync(self.model):
                    message = None
                    try:
                        per_example, out = self.model(batch, self.teacher)
                    except NonFiniteError as exc:
                        message = str(exc)
                    self._fail(step, message)
                    weighted = (per_example * out.positions.to(per_example.dtype)).sum()
                    accelerator.backward(weighted * scale)
                _accumulate(sums, out, batch)
        finally:
            if hook is not None:
                hook.remove()
        # all parameters (those without a gradient are skipped): under FSDP accelerate then uses the model's own
        # sharded clipping
        norm = accelerator.clip_grad_norm_(self.model.parameters(), config.max_grad_norm or float("inf"))
        norm = float(norm) if norm is not None else float("nan")
        if not math.isfinite(norm):
            self.optimizer.zero_grad(set_to_none=True)
            self._fail(step, f"the gradients are NaN or infinite (global norm {norm}) although every term of the "
                             f"{config.loss} loss is finite.")
        lr = float(self.scheduler.get_last_lr()[0])  # the rate this step used (the scheduler then moves on)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.step = step
        self.state.samples_seen += config.global_batch(processes)
        metrics = _ratios(self._gather(sums), total)
        metrics.update({"lr": lr, "grad_norm": norm, "tokens": total,
                        "epoch": self.state.samples_seen / len(self.train_examples)})
        return {"step": step, **metrics}

    def _gather(self, sums: dict) -> dict:
        """Every process's sums (:func:`_accumulate`) added up, in process order."""
        parts = [sums]
        if self.accelerator.num_processes > 1:
            from accelerate.utils import gather_object

            parts = gather_object([sums])
        merged = {"loss": 0.0, "terms": {}, "counts": {}, "tokens": 0.0}
        for part in parts:
            merged["loss"] += part["loss"]
            merged["tokens"] += part.get("tokens", 0.0)
            for key, value in part["terms"].items():
                merged["terms"][key] = merged["terms"].get(key, 0.0) + value
            for key, (num, den) in part["counts"].items():
                entry = merged["counts"].setdefault(key, [0.0, 0.0])
                entry[0] += num
                entry[1] += den
        return merged

    # -- logging -------------------------------------------------------------------------------------------------

    def log_metrics(self, metrics: dict) -> None:
        self.history.append(metrics)
        step = metrics["step"]
        values = {k: v for k, v in metrics.items() if k != "step"}
        if self.trackers:
            self.accelerator.log(values, step=step)
        if self.main:
            _append_jsonl(self.out / METRICS_FILE, metrics)
            terms = "  ".join(f"{k[5:]} {v:.4f}" for k, v in values.items() if k.startswith("term/"))
            rate = values.get("stat/alignment_rate")
            self.say(f"step {step}/{self.config.max_steps}  loss {values['loss']:.4f}  {terms}"
                     + (f"  alignment {rate:.1%}" if rate is not None else "") + f"  lr {values['lr']:.3g}")

    # -- evaluation ----------------------------------------------------------------------------------------------

    def evaluate(self) -> dict:
        import torch

        from ..losses.base import NonFiniteError
        from ..progress import stage

        config, accelerator = self.config, self.accelerator
        processes, rank = accelerator.num_processes, accelerator.process_index
        step = self.state.step
        examples = self.heldout_examples
        mine = examples[rank::processes]
        size = config.per_device_batch_size
        # every process runs the same number of forward passes (FSDP and DDP forwards are collective): the ones
        # with fewer examples run an extra pass on a dummy batch whose result is dropped
        rounds = math.ceil(math.ceil(len(examples) / processes) / size)
        sums = {"loss": 0.0, "terms": {}, "counts": {}, "tokens": 0.0}
        self.model.eval()
        with stage("evaluating", total=rounds, unit="batches") as bar, torch.no_grad():
            for index in range(rounds):
                chunk = mine[index * size:(index + 1) * size]
                batch = self.collator(chunk or examples[:1]).to(accelerator.device)
                message = None
                try:
                    _, out = self.model(batch, self.teacher)
                except NonFiniteError as exc:
                    message = str(exc)
                self._fail(step, message, "evaluation")
                if chunk:
                    _accumulate(sums, out, batch)
                    sums["tokens"] += float(out.positions.sum())
                bar.advance()
        merged = self._gather(sums)
        metrics = {f"eval/{k}": v for k, v in _ratios(merged, merged["tokens"]).items()}
        samples = self.generate(step)
        if samples:
            metrics["eval/rougeL"] = sum(s["rougeL"] for s in samples) / len(samples)
        self.model.train()
        record = {"step": step, **metrics}
        self.evaluations.append(record)
        if self.trackers:
            values = dict(metrics)
            if samples:
                values["eval/samples"] = _samples_markdown(samples)
            self.accelerator.log(values, step=step)
        if self.main:
            _append_jsonl(self.out / METRICS_FILE, record)
            if samples:
                folder = self.out / "samples"
                folder.mkdir(exist_ok=True)
                from ..outputs import atomic_write_text

                atomic_write_text(folder / f"step-{step}.jsonl",
                                  "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples))
            rouge = metrics.get("eval/rougeL")
            self.say(f"eval at step {step}: loss {metrics.get('eval/loss', float('nan')):.4f}"
                     + (f"  Rouge-L {rouge:.4f}" if rouge is not None else ""))
        return record

    def generate(self, step: int) -> list[dict]:
        """The student's answers to the first ``eval_generate`` held-out prompts, scored by Rouge-L."""
        import torch
        from rouge_score import rouge_scorer

        config, accelerator = self.config, self.accelerator
        count = min(config.eval_generate, len(self.heldout_examples))
        if not count:
            return []
        processes, rank = accelerator.num_processes, accelerator.process_index
        chosen = list(range(count))[rank::processes]
        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
        tokenizer = self.student_tokenizer
        module = accelerator.unwrap_model(self.model)
        student = module.student
        stop = [t for t in {tokenizer.eos_token_id, getattr(student.generation_config, "eos_token_id", None)}
                if isinstance(t, int)]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (stop[0] if stop else 0)
        samples = []
        devices = [] if accelerator.device.type == "cpu" else [accelerator.device]
        # sampling draws from its own seeded stream: the training's random state is the same with or without it
        with _full_weights(self.model), torch.no_grad(), torch.random.fork_rng(devices=devices):
            for index in chosen:
                example = self.heldout_examples[index]
                labels = example.student_labels
                first = int(next(i for i, v in enumerate(labels) if v != -100))
                prompt_ids = torch.as_tensor(example.student_ids[:first + 1], device=accelerator.device)[None]
                torch.manual_seed(config.seed * 1_000_003 + step * 1009 + index)
                options = {"do_sample": True, "temperature": config.sampling_temperature, "top_p": config.top_p} \
                    if config.do_sample else {"do_sample": False}
                generated = student.generate(input_ids=prompt_ids, attention_mask=torch.ones_like(prompt_ids),
                                             max_new_tokens=config.max_new_tokens, eos_token_id=stop or None,
                                             pad_token_id=pad, **options)
                answer = tokenizer.decode(generated[0, prompt_ids.shape[1]:].tolist(), skip_special_tokens=True)
                reference = example.text[example.prompt_chars:]
                score = scorer.score(reference.strip(), answer.strip())["rougeL"].fmeasure
                samples.append({"step": step, "index": index, "prompt": example.text[:example.prompt_chars],
                                "reference": reference, "generation": answer, "rougeL": float(score)})
        if processes > 1:
            from accelerate.utils import gather_object

            samples = sorted(gather_object(samples), key=lambda s: s["index"])
        return samples

    # -- saving --------------------------------------------------------------------------------------------------

    def _check_parameters(self) -> None:
        import torch

        bad = [name for name, p in self.model.named_parameters() if p.requires_grad
               and not bool(torch.isfinite(p.detach()).all())]
        self._fail(self.state.step, f"the parameters {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''} are NaN "
                                    "or infinite after the optimizer step." if bad else None)

    def save_checkpoint(self) -> Path | None:
        """Save the run's state as ``checkpoints/checkpoint-<step>`` (via a partial folder renamed when complete);
        prune beyond ``save_total_limit``; never saves a state with NaN/inf parameters. Nothing with
        ``save_checkpoints: false``."""
        self._check_parameters()
        if not self.config.save_checkpoints:
            return None
        accelerator, step = self.accelerator, self.state.step
        folder = self.out / CHECKPOINTS
        final = folder / f"checkpoint-{step}"
        partial = folder / f".checkpoint-{step}.partial"
        if self.main:
            folder.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(partial, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(partial))
        accelerator.wait_for_everyone()
        if self.main:
            state = {"step": step, "samples_seen": self.state.samples_seen, "fingerprint": self.state.fingerprint,
                     "config": self.config.to_dict(), "metrics": self.history[-1] if self.history else None,
                     "processes": accelerator.num_processes, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
            from ..outputs import atomic_write_text

            atomic_write_text(partial / STATE_FILE, json.dumps(state, indent=1, default=_jsonable))
            if final.exists():  # a re-run of this step after resuming from an older checkpoint: the same state
                old = folder / f".checkpoint-{step}.old"
                shutil.rmtree(old, ignore_errors=True)
                os.replace(final, old)
                os.replace(partial, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(partial, final)
            limit = self.config.save_total_limit
            if limit is not None:
                for _, path in list_checkpoints(self.out)[:-limit]:
                    if path != final:
                        shutil.rmtree(path, ignore_errors=True)
        accelerator.wait_for_everyone()
        self.last_checkpoint = final
        self.say(f"saved {final}")
        return final

    def save_final(self) -> Path | None:
        """The student (``save_pretrained``; the adapters with LoRA), its tokenizer and the loss's parameters in
        ``output_dir/final``."""
        import torch

        accelerator = self.accelerator
        state = accelerator.get_state_dict(self.model)  # collective under FSDP
        target = self.out / "final"
        if self.main:
            partial = self.out / ".final.partial"
            shutil.rmtree(partial, ignore_errors=True)
            module = accelerator.unwrap_model(self.model)
            student_state = {k[len("student."):]: v for k, v in state.items() if k.startswith("student.")}
            from ..sources.thirdparty import quiet_transformers

            with quiet_transformers():
                module.student.save_pretrained(partial / "student", state_dict=student_state)
                with contextlib.suppress(Exception):  # a tokenizer that cannot be saved does not lose the model
                    self.student_tokenizer.save_pretrained(partial / "student")
            loss_state = {k[len("loss."):]: v for k, v in state.items() if k.startswith("loss.")}
            if loss_state:
                torch.save(loss_state, partial / "loss.pt")
            (partial / "config.yaml").write_text(self.config.to_yaml(), encoding="utf-8")
            shutil.rmtree(target, ignore_errors=True)
            os.replace(partial, target)
        accelerator.wait_for_everyone()
        return target

    def close(self) -> None:
        if self.trackers:
            with contextlib.suppress(Exception):
                self.accelerator.end_training()
            self.trackers = False


# ---------------------------------------------------------------------------------------------------------------
# helpers


@contextlib.contextmanager
def _full_weights(model):
    """The whole weights on every process while generating: FSDP 2 modules are unsharded (their hooks only run
    for the root's own forward, which ``generate`` bypasses), FSDP 1 summons them; nothing to do otherwise."""
    if callable(getattr(model, "unshard", None)) and callable(getattr(model, "reshard", None)):
        model.unshard()
        try:
            yield
        finally:
            model.reshard()
        return
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel
    except ImportError:  # pragma: no cover - torch without distributed
        FullyShardedDataParallel = None
    if FullyShardedDataParallel is not None and isinstance(model, FullyShardedDataParallel):
        with FullyShardedDataParallel.summon_full_params(model, writeback=False):
            yield
        return
    yield


def _accumulate(sums: dict, out, batch) -> None:
    """Add one micro-batch's token-weighted loss and terms, its statistic counts and its span alignment counts
    (student loss positions whose input token is alone in an exact 1:1 span group, as the span engine's
    alignment rate) to ``sums``."""
    positions = out.positions.detach().double()
    sums["loss"] += float((out.per_example.detach().double() * positions).sum())
    for key, value in out.terms.items():
        sums["terms"][key] = sums["terms"].get(key, 0.0) + float((value.detach().double() * positions).sum())
    for key, (num, den) in out.counts.items():
        entry = sums["counts"].setdefault(key, [0.0, 0.0])
        entry[0] += float(num)
        entry[1] += float(den)
    if batch.has("span_exact"):
        mask = batch.student_labels != -100
        entry = sums["counts"].setdefault("span_alignment_rate", [0.0, 0.0])
        entry[0] += float((batch.span_exact & mask).sum())
        entry[1] += float(mask.sum())


def _ratios(sums: dict, total: float) -> dict:
    denominator = total if total > 0 else 1.0
    out = {"loss": sums["loss"] / denominator}
    out.update({f"term/{k}": v / denominator for k, v in sums["terms"].items()})
    out.update({f"stat/{k}": n / d for k, (n, d) in sums["counts"].items() if d})
    return out


def _samples_markdown(samples: list[dict]) -> str:
    rows = []
    for sample in samples:
        rows.append(f"**prompt** {sample['prompt'][-300:]!r}  \n**reference** {sample['reference'][:300]!r}  \n"
                    f"**student** {sample['generation'][:300]!r}  \nRouge-L {sample['rougeL']:.3f}")
    return "\n\n---\n\n".join(rows)


def _init_parameters(cls) -> dict:
    import inspect

    return dict(inspect.signature(cls.__init__).parameters)


#: constructor arguments the run supplies itself
_SUPPLIED = {"self", "pair", "student_model", "teacher_model", "student_dim", "teacher_dim"}


def _check_loss_options(cls, name: str, options: dict) -> dict:
    """The loss options, checked against the loss's constructor (an unknown option is named with the closest)."""
    import difflib

    accepted = [p for p in _init_parameters(cls) if p not in _SUPPLIED and not p.startswith("_")]
    for key in options:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InputError(f"unknown option {key!r} of the {name} loss in loss_options{hint} (it takes: "
                             f"{', '.join(accepted)})")
    return dict(options)


def _optimizer(torch, config: DistillConfig, student, loss):
    decay, no_decay = [], []
    for parameter in student.parameters():
        if parameter.requires_grad:
            (decay if parameter.dim() >= 2 else no_decay).append(parameter)
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    own = [p for p in loss.parameters() if p.requires_grad]
    if own:
        groups.append({"params": own, "weight_decay": 0.0,
                       "lr": config.projector_learning_rate or config.learning_rate})
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise InputError("nothing to train: the student has no trainable parameters")
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
                             eps=config.adam_epsilon)


def _scheduler(config: DistillConfig, optimizer):
    from transformers import get_scheduler

    name = {"constant": "constant_with_warmup"}.get(config.lr_scheduler, config.lr_scheduler)
    return get_scheduler(name, optimizer, num_warmup_steps=config.warmup_steps, num_training_steps=config.max_steps)


def replace_config(config: DistillConfig, **changes) -> DistillConfig:
    """A copy of ``config`` with ``changes`` (validated)."""
    return replace(config, **changes).validate()
