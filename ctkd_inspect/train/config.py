"""The configuration of a distillation run: one dataclass, every key documented, loaded from YAML and overridden by
command-line flags generated from the fields.

::

    from ctkd_inspect.train import DistillConfig, load_config

    config = load_config("run.yaml", overrides={"max_steps": 20})   # YAML, then overrides, then validated
    config.to_yaml()                                                  # the resolved configuration

Precedence: the field defaults, then the YAML file, then the overrides (the ``--key value`` flags of
``ctkd-inspect distill``). An unknown key is refused with its name and the closest known key; every value is checked
against its type and range with a message naming the key. Importing this module imports neither torch nor yaml
(:func:`load_config` imports yaml when it reads a file).
"""

from __future__ import annotations

import difflib
import json
import math
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from ..errors import InputError

__all__ = ["CHOICES", "RESUME_SAFE_KEYS", "DistillConfig", "config_fields", "load_config", "parse_value"]


def _doc(text: str, **extra) -> dict:
    return {"help": " ".join(text.split()), **extra}


@dataclass
class DistillConfig:
    """Every key of a distillation run (see each field's ``help`` metadata, and the README's *Distillation runs*)."""

    # -- models and tokenizers ----------------------------------------------------------------------------------
    teacher: str = field(default="", metadata=_doc(
        "The teacher model: an alias with a model (gemma3, smollm2), a .gguf file, a folder with config.json and "
        "weights, or a Hugging Face hub id (only when the hub is reachable). Frozen, in eval mode, never trained."))
    student: str = field(default="", metadata=_doc(
        "The student model (same forms as teacher); the model that is trained."))
    teacher_tokenizer: str | None = field(default=None, metadata=_doc(
        "The teacher's tokenizer (alias, path or hub id); default: the teacher's own (its alias, or the tokenizer "
        "in its folder or GGUF)."))
    student_tokenizer: str | None = field(default=None, metadata=_doc(
        "The student's tokenizer; default: the student's own."))
    teacher_dtype: str = field(default="float32", metadata=_doc(
        "Precision of the teacher's weights: float32, bfloat16 or float16 (the teacher is only run forward)."))
    cache_dir: str | None = field(default=None, metadata=_doc(
        "Cache folder of the offline tokenizers and models (default: $CTKD_INSPECT_CACHE or "
        "~/.cache/ctkd-inspect)."))

    # -- the loss -----------------------------------------------------------------------------------------------
    loss: str = field(default="sedi", metadata=_doc(
        "The distillation loss: mined, cdm, sedi, dwa, dskd, uld, kd (teacher and student share a tokenizer) or "
        "sft (no teacher)."))
    loss_options: dict = field(default_factory=dict, metadata=_doc(
        "Options of the loss, passed to its constructor (e.g. {kd_rate: 0.5, temperature: 2.0}; each loss's "
        "docstring lists them). On the command line a YAML/JSON mapping: --loss-options '{kd_rate: 0.3}'."))
    mode: str = field(default="canonical", metadata=_doc(
        "Token strings the alignments compare: canonical (normalised bytes) or reference (the papers' code)."))

    # -- data ---------------------------------------------------------------------------------------------------
    data: str = field(default="", metadata=_doc(
        "Training data: a JSONL/JSON file (optionally .gz) or a folder saved by datasets' save_to_disk, with "
        "prompt/response fields or chat messages."))
    eval_data: str | None = field(default=None, metadata=_doc(
        "Held-out data in the same forms; default: eval_size examples split off the training data."))
    split: str | None = field(default=None, metadata=_doc(
        "The split of a DatasetDict folder (default: train, when there is one)."))
    prompt_field: str = field(default="prompt", metadata=_doc("The record field holding the prompt."))
    response_field: str = field(default="response", metadata=_doc("The record field holding the response."))
    messages_field: str = field(default="messages", metadata=_doc(
        "The record field holding a chat ([{role, content}, ...], the last message the assistant's response); "
        "used for records without the prompt field."))
    chat_template: str = field(default="auto", metadata=_doc(
        "How chats become one text for both tokenizers: auto (the student tokenizer's chat template when it has "
        "one, else plain), student, teacher, or plain (\"role: content\" lines, then \"assistant:\" and the "
        "response after a space). Both tokenizers always cut the same text."))
    prompt_response_as_chat: bool = field(default=False, metadata=_doc(
        "Render prompt/response records as a one-turn chat (user prompt, assistant response) through the chat "
        "template; otherwise the text is prompt + response verbatim."))
    max_length: int = field(default=512, metadata=_doc(
        "Most tokens per side and example (EOS included). Longer examples are cut at one character for both "
        "tokenizers (the run says how many); lowered to the smaller model context when it exceeds it."))
    max_examples: int | None = field(default=None, metadata=_doc(
        "Use at most this many training records (the first ones), e.g. for a quick run."))
    eval_size: int = field(default=16, metadata=_doc(
        "Held-out examples split off the training data (seeded) when eval_data is not given; 0: no evaluation."))

    # -- optimisation -------------------------------------------------------------------------------------------
    max_steps: int = field(default=100, metadata=_doc(
        "Optimizer steps to train for (the data is cycled in seeded epochs as often as needed)."))
    per_device_batch_size: int = field(default=4, metadata=_doc(
        "Examples per process and micro-batch. The global batch is per_device_batch_size x processes x "
        "gradient_accumulation_steps."))
    gradient_accumulation_steps: int = field(default=1, metadata=_doc(
        "Micro-batches per optimizer step."))
    learning_rate: float = field(default=5e-5, metadata=_doc("Peak learning rate of the student's parameters."))
    projector_learning_rate: float | None = field(default=None, metadata=_doc(
        "Learning rate of the loss's own parameters (DSKD/DWA-KD projectors, SeDi's Ada); default: "
        "learning_rate."))
    weight_decay: float = field(default=0.0, metadata=_doc(
        "AdamW weight decay (not applied to biases and norm weights)."))
    adam_beta1: float = field(default=0.9, metadata=_doc("AdamW's decay rate of the gradient average (beta1)."))
    adam_beta2: float = field(default=0.999, metadata=_doc(
        "AdamW's decay rate of the squared-gradient average (beta2)."))
    adam_epsilon: float = field(default=1e-8, metadata=_doc(
        "AdamW's epsilon, added to the denominator for stability."))
    lr_scheduler: str = field(default="linear", metadata=_doc(
        "Learning-rate schedule after the warm-up: linear (to 0 at max_steps), cosine, or constant."))
    warmup_steps: int = field(default=0, metadata=_doc("Steps of linear warm-up from 0 to the learning rate."))
    max_grad_norm: float = field(default=1.0, metadata=_doc(
        "Clip the global gradient norm to this value; 0: no clipping (the norm is still checked for NaN/inf)."))
    seed: int = field(default=0, metadata=_doc(
        "Seed of everything random: the held-out split, the data order of every epoch, the initial projectors, "
        "LoRA, dropout and sampled generations."))
    mixed_precision: str | None = field(default=None, metadata=_doc(
        "no, bf16 or fp16; default: the launch configuration's (accelerate launch), else no."))
    ddp_find_unused_parameters: bool = field(default=False, metadata=_doc(
        "Let DDP look for parameters without a gradient (only for a loss or model that leaves some unused)."))

    # -- LoRA ---------------------------------------------------------------------------------------------------
    lora: bool = field(default=False, metadata=_doc(
        "Train LoRA adapters (peft) on the student instead of all its weights."))
    lora_r: int = field(default=8, metadata=_doc("Rank of the LoRA adapters."))
    lora_alpha: int = field(default=16, metadata=_doc("LoRA alpha (scaling alpha/r)."))
    lora_dropout: float = field(default=0.05, metadata=_doc("Dropout on the input of the LoRA adapters."))
    lora_target_modules: list | str = field(default="all-linear", metadata=_doc(
        "Modules that get adapters: all-linear, or a list of module names (e.g. [q_proj, v_proj])."))

    # -- output, checkpoints, logging ---------------------------------------------------------------------------
    output_dir: str = field(default="runs/distill", metadata=_doc(
        "Folder of the run: checkpoints/, tensorboard/, metrics.jsonl, samples/, config.yaml, final/."))
    resume: str = field(default="auto", metadata=_doc(
        "auto: continue from the latest complete checkpoint in output_dir when there is one (and say so); never: "
        "start afresh (refused when output_dir holds checkpoints, unless overwrite_output_dir); or the path of a "
        "checkpoint folder to continue from."))
    overwrite_output_dir: bool = field(default=False, metadata=_doc(
        "With resume: never, remove the previous run's checkpoints, logs and metrics from output_dir first."))
    save_steps: int = field(default=50, metadata=_doc(
        "Save a checkpoint every this many steps (model, optimizer, scheduler, RNG states, data position); 0: "
        "only at the end and on an interrupt."))
    save_total_limit: int | None = field(default=3, metadata=_doc(
        "Keep at most this many checkpoints (the oldest are removed; the newest is never removed); none: keep "
        "all."))
    save_checkpoints: bool = field(default=True, metadata=_doc(
        "false: write no checkpoint at all (a throwaway run or a benchmark: it cannot be resumed, and an "
        "interrupt only stops it)."))
    save_final_model: bool = field(default=True, metadata=_doc(
        "At the end, also write the student (save_pretrained: the adapters with LoRA), its tokenizer and the "
        "loss's parameters to output_dir/final."))
    logging_steps: int = field(default=1, metadata=_doc(
        "Log the loss, every term and the alignment statistics every this many steps (TensorBoard and "
        "metrics.jsonl)."))
    log_with: str = field(default="tensorboard", metadata=_doc(
        "Tracker: tensorboard, or none (metrics.jsonl is always written)."))

    # -- evaluation ---------------------------------------------------------------------------------------------
    eval_steps: int = field(default=50, metadata=_doc(
        "Evaluate on the held-out set every this many steps (and at the end); 0: only at the end."))
    eval_generate: int = field(default=4, metadata=_doc(
        "Held-out prompts the student answers at each evaluation (Rouge-L against the reference responses, "
        "samples logged as text); 0: no generation."))
    max_new_tokens: int = field(default=64, metadata=_doc("Most tokens generated per held-out prompt."))
    do_sample: bool = field(default=False, metadata=_doc(
        "Sample the generations (seeded by seed and step) instead of greedy decoding."))
    sampling_temperature: float = field(default=1.0, metadata=_doc("Temperature of sampled generations."))
    top_p: float = field(default=1.0, metadata=_doc("Nucleus (top-p) cut of sampled generations."))

    # -- testing hooks --------------------------------------------------------------------------------------------
    debug_nan_step: int | None = field(default=None, metadata=_doc(
        "Testing hook: replace the teacher's logits (the student's for sft) by NaN at this step, to exercise the "
        "NaN/inf handling."))

    # ---------------------------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The configuration as plain YAML/JSON values."""
        return asdict(self)

    def to_yaml(self) -> str:
        """The configuration as YAML (every key, in declaration order)."""
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def validate(self) -> DistillConfig:
        """Check every value (types were checked on assignment by :func:`load_config`); returns ``self``.

        Raises:
            InputError: naming the key and the accepted values.
        """
        for key in ("teacher", "student", "data"):
            if key == "teacher" and self.loss == "sft":
                continue
            if not getattr(self, key):
                raise InputError(f"the config key {key!r} is required (a {'data file' if key == 'data' else 'model'}"
                                 f"); set it in the YAML file or with --{key.replace('_', '-')}")
        for key, allowed in CHOICES.items():
            value = getattr(self, key)
            if value is not None and value not in allowed:
                raise InputError(f"the config key {key!r} must be one of {', '.join(allowed)} (got {value!r})")
        from ..losses import loss_names

        if self.loss not in loss_names():
            close = difflib.get_close_matches(self.loss, loss_names(), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InputError(f"unknown loss {self.loss!r}{hint} (available: {', '.join(loss_names())})")
        for key in ("max_steps", "per_device_batch_size", "gradient_accumulation_steps", "logging_steps",
                    "lora_r", "lora_alpha"):
            _at_least(key, getattr(self, key), 1)
        for key in ("save_steps", "eval_steps", "eval_generate", "warmup_steps", "eval_size"):
            _at_least(key, getattr(self, key), 0)
        _at_least("max_length", self.max_length, 4)
        _at_least("max_new_tokens", self.max_new_tokens, 1)
        if self.max_examples is not None:
            _at_least("max_examples", self.max_examples, 1)
        if self.save_total_limit is not None:
            _at_least("save_total_limit", self.save_total_limit, 1)
        if self.debug_nan_step is not None:
            _at_least("debug_nan_step", self.debug_nan_step, 1)
        for key in ("learning_rate", "adam_epsilon", "sampling_temperature"):
            _positive(key, getattr(self, key))
        if self.projector_learning_rate is not None:
            _positive("projector_learning_rate", self.projector_learning_rate)
        for key in ("weight_decay", "max_grad_norm"):
            value = getattr(self, key)
            if not math.isfinite(value) or value < 0:
                raise InputError(f"the config key {key!r} must be a finite number >= 0 (got {value!r})")
        for key in ("adam_beta1", "adam_beta2", "top_p", "lora_dropout"):
            value = getattr(self, key)
            if not 0 <= value <= 1:
                raise InputError(f"the config key {key!r} must be in [0, 1] (got {value!r})")
        if isinstance(self.lora_target_modules, list) and not all(isinstance(m, str) and m
                                                                  for m in self.lora_target_modules):
            raise InputError("the config key 'lora_target_modules' must be 'all-linear' or a list of module names")
        if not isinstance(self.loss_options, dict) or not all(isinstance(k, str) for k in self.loss_options):
            raise InputError("the config key 'loss_options' must be a mapping of option names to values")
        if self.resume not in ("auto", "never") and not self.resume:
            raise InputError("the config key 'resume' must be auto, never or a checkpoint folder")
        return self

    def global_batch(self, processes: int) -> int:
        """Examples per optimizer step over all processes."""
        return self.per_device_batch_size * processes * self.gradient_accumulation_steps


#: The accepted values of the keys that take a fixed set of them.
CHOICES: dict[str, tuple[str, ...]] = {
    "teacher_dtype": ("float32", "bfloat16", "float16"),
    "mode": ("canonical", "reference"),
    "chat_template": ("auto", "student", "teacher", "plain"),
    "lr_scheduler": ("linear", "cosine", "constant"),
    "mixed_precision": ("no", "bf16", "fp16"),
    "log_with": ("tensorboard", "none"),
}

#: Keys that may differ between a run and its resumption: they change what is saved, logged or evaluated, how long
#: the run lasts or how its batches are spread over processes, not the steps already taken. max_steps changes the
#: linear and cosine schedules from the resumed step on; the batch sizes change the batches from the resumed step
#: on (the data position is counted in examples, so a run resumed on more processes continues at the same
#: example). The run says when any of them changed.
RESUME_SAFE_KEYS = frozenset({
    "max_steps", "output_dir", "resume", "overwrite_output_dir", "save_steps", "save_total_limit",
    "save_final_model", "save_checkpoints", "logging_steps", "log_with", "eval_steps", "eval_generate",
    "max_new_tokens", "do_sample", "sampling_temperature", "top_p", "cache_dir", "debug_nan_step",
    "per_device_batch_size", "gradient_accumulation_steps", "mixed_precision", "ddp_find_unused_parameters",
    # moved data files: the resumed run checks that its training examples are those of the checkpoint
    "data", "eval_data",
})


def _at_least(key: str, value, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise InputError(f"the config key {key!r} must be an integer >= {low} (got {value!r})")


def _positive(key: str, value) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InputError(f"the config key {key!r} must be a finite number > 0 (got {value!r})")


# ---------------------------------------------------------------------------------------------------------------
# fields, types and parsing


def config_fields() -> list:
    """The dataclass fields of :class:`DistillConfig`, in declaration order, each with ``.type`` resolved."""
    hints = typing.get_type_hints(DistillConfig)
    out = []
    for item in fields(DistillConfig):
        item.type = hints[item.name]
        out.append(item)
    return out


def _field_map() -> dict:
    return {f.name: f for f in config_fields()}


def _unknown_key(key: str, where: str) -> InputError:
    names = [f.name for f in config_fields()]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return InputError(f"unknown config key {key!r} in {where}{hint} (ctkd-inspect distill --help lists every key)")


def _members(annotation) -> tuple[list, bool]:
    """The non-None members of a type annotation and whether None is allowed."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = list(typing.get_args(annotation))
        return [a for a in args if a is not type(None)], type(None) in args
    return [annotation], False


def _kind(member) -> type:
    origin = typing.get_origin(member)
    return origin if origin is not None else member


def coerce(key: str, value, annotation, *, from_text: bool = False):
    """``value`` converted to the type of key ``key`` (strings from the command line are parsed; YAML values are
    checked), or an :class:`InputError` naming the key."""
    members, nullable = _members(annotation)
    if from_text and isinstance(value, str) and value.strip().lower() in ("none", "null", "~") and nullable:
        return None
    if value is None:
        if nullable:
            return None
        raise InputError(f"the config key {key!r} cannot be empty (null)")
    errors = []
    for member in members:
        kind = _kind(member)
        try:
            return _convert(value, kind, from_text)
        except (TypeError, ValueError) as exc:
            errors.append(str(exc))
    expected = " or ".join(_kind(m).__name__ for m in members) + (" or null" if nullable else "")
    raise InputError(f"the config key {key!r} must be {expected} (got {value!r})")


def _convert(value, kind, from_text: bool):
    if kind is bool:
        if isinstance(value, bool):
            return value
        if from_text and isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("true", "yes", "1", "on"):
                return True
            if lowered in ("false", "no", "0", "off"):
                return False
        raise TypeError("not a boolean")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_text and isinstance(value, str):
            return int(value.strip())
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise TypeError("not an integer")
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads 5e-5 (no dot) as a string
            return float(value.strip())
        raise TypeError("not a number")
    if kind is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not from_text:
            return str(value)
        raise TypeError("not a string")
    if kind in (dict, list):
        if from_text and isinstance(value, str):
            value = _parse_structured(value)
        if isinstance(value, kind):
            return value
        raise TypeError(f"not a {kind.__name__}")
    raise TypeError(f"unsupported type {kind}")  # pragma: no cover - every field's type is handled above


def _parse_structured(text: str):
    try:
        import yaml

        return yaml.safe_load(text)
    except ImportError:  # pragma: no cover - yaml is part of the train extra
        return json.loads(text)
    except Exception as exc:
        raise ValueError(f"not YAML/JSON: {exc}") from None


def parse_value(key: str, text: str):
    """A command-line value for ``key`` (a string) converted to the key's type.

    Raises:
        InputError: an unknown key or a value that does not fit.
    """
    known = _field_map()
    if key not in known:
        raise _unknown_key(key, "the command line")
    return coerce(key, text, known[key].type, from_text=True)


def load_config(path: str | Path | None = None, overrides: dict | None = None, *, validate: bool = True
                ) -> DistillConfig:
    """The configuration of a run: the defaults, the YAML file at ``path`` (when given), then ``overrides``.

    Args:
        path: a YAML file holding a mapping of config keys (``None``: defaults and overrides only).
        overrides: key → value; strings are parsed like command-line values (``"5"`` for an int, ``"none"``
            for an optional key, YAML for mappings and lists), other values are checked like YAML values.
        validate: run :meth:`DistillConfig.validate`.

    Raises:
        InputError: the file cannot be read or is not a YAML mapping, a key is unknown (named, with the closest
            known key), or a value does not fit its key.
    """
    known = _field_map()
    values: dict = {}
    if path is not None:
        source = Path(path).expanduser()
        try:
            text = source.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(f"config file {path}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"config file {path} cannot be read: {exc}") from None
        import yaml

        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(f"config file {path} is not valid YAML: {exc}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise InputError(f"config file {path} must hold a mapping of config keys (got a "
                             f"{type(loaded).__name__})")
        for key, value in loaded.items():
            key = str(key)
            if key not in known:
                raise _unknown_key(key, str(path))
            values[key] = coerce(key, value, known[key].type)
    for key, value in (overrides or {}).items():
        if key not in known:
            raise _unknown_key(key, "the overrides")
        values[key] = coerce(key, value, known[key].type, from_text=isinstance(value, str))
    config = DistillConfig(**values)
    return config.validate() if validate else config


def field_default(item) -> object:
    """The default value of a dataclass field (calling its factory)."""
    if item.default is not MISSING:
        return item.default
    return item.default_factory()  # type: ignore[misc]
