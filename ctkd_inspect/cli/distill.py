"""``ctkd-inspect distill --config run.yaml [--key value ...]``: a distillation run (Accelerate).

Every key of :class:`~ctkd_inspect.train.config.DistillConfig` is also a flag (``--max-steps 20`` or
``--max_steps 20``; booleans as ``--lora`` or ``--lora false``; mappings and lists as YAML, ``--loss-options
'{kd_rate: 0.3}'``); flags override the YAML file. ``--dry-run`` prints the resolved configuration (stdout) and
what the run would do (stderr) without loading a model. The same command runs on every process of ``accelerate
launch ... -m ctkd_inspect.train``.
"""

from __future__ import annotations

import os
import sys

import click

from .common import dumps, guard, note, quiet_option, stderr_console


def _default_text(item) -> str:
    from ..train.config import field_default

    value = field_default(item)
    if value is None:
        return "none"
    if value == "" and item.name in ("teacher", "student", "data"):
        return "required"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, (dict, list)) else str(value)


def _config_options(function):
    """One option per config key, generated from the dataclass fields (help from their metadata)."""
    from ..train.config import _members, config_fields

    for item in reversed(config_fields()):
        dashed = "--" + item.name.replace("_", "-")
        names = [dashed] if dashed == "--" + item.name else [dashed, "--" + item.name]
        members, _ = _members(item.type)
        help_text = f"{item.metadata.get('help', '')} [default: {_default_text(item)}]"
        if members == [bool]:
            # --lora alone means true; --lora false (or true) as HfArgumentParser accepts
            option = click.option(*names, item.name, type=str, default=None, is_flag=False, flag_value="true",
                                  metavar="[BOOL]", help=help_text)
        else:
            metavar = {int: "INT", float: "NUMBER", str: "TEXT", dict: "YAML", list: "YAML"}.get(members[0], "VALUE")
            option = click.option(*names, item.name, type=str, default=None, metavar=metavar, help=help_text)
        function = option(function)
    return function


def _rank() -> int:
    for name in ("RANK", "LOCAL_RANK"):
        value = os.environ.get(name)
        if value and value.isdigit():
            return int(value)
    return 0


@click.command("distill", context_settings={"max_content_width": 119})
@click.option("--config", "config_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="YAML file of config keys (the flags below override it).")
@click.option("--dry-run", is_flag=True, help="Print the resolved configuration and what the run would do, then "
              "stop (no model is loaded).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary of the run on stdout at the end.")
@_config_options
@quiet_option
@guard
def distill_command(config_file, dry_run, as_json, **values):
    """Train a student from a teacher with a distillation loss, on Accelerate.

    \b
    Examples:
      ctkd-inspect distill --config run.yaml
      ctkd-inspect distill --config run.yaml --max-steps 20 --loss mined --loss-options '{kd_rate: 0.3}'
      ctkd-inspect distill --teacher gemma3 --student smollm2 --data train.jsonl --loss sedi --dry-run
      accelerate launch --config_file $(python -m ctkd_inspect.train.launch multi_gpu) --num_processes 4 \\
          -m ctkd_inspect.train --config run.yaml

    A run resumes from the latest checkpoint in its output_dir by default (--resume auto; never; or a checkpoint
    folder). Ctrl-C saves a checkpoint and exits with 130. TensorBoard: tensorboard --logdir OUTPUT_DIR/tensorboard.
    """
    from ..extras import require

    require("train", "ctkd-inspect distill")
    from ..train.config import load_config
    from ..train.runner import TrainingInterrupted, latest_checkpoint, run_distillation

    overrides = {key: value for key, value in values.items() if value is not None}
    config = load_config(config_file, overrides)
    if dry_run:
        click.echo(config.to_yaml(), nl=False)
        if config.resume == "auto":
            found = latest_checkpoint(config.output_dir)
            note(f"would resume from {found}" if found else f"would start a new run in {config.output_dir}")
        else:
            note(f"resume: {config.resume}")
        return
    rank = _rank()

    def log(message: str) -> None:
        note(message)

    try:
        result = run_distillation(config, log=log)
    except TrainingInterrupted as exc:
        if rank == 0:
            stderr_console().print(f"[yellow]interrupted:[/] {exc}")
        sys.exit(int(exc.exit_code))
    except Exception as exc:
        if rank != 0:  # every process raises the same error; one message is enough
            from ..errors import exit_code_for

            sys.exit(exit_code_for(exc))
        raise
    if as_json and rank == 0:
        last = result.history[-1] if result.history else {}
        click.echo(dumps({"output_dir": str(result.output_dir), "step": result.step, "last": last,
                          "evaluations": result.evaluations, "checkpoint": str(result.checkpoint),
                          "final_dir": str(result.final_dir) if result.final_dir else None,
                          "resumed_from": str(result.resumed_from) if result.resumed_from else None,
                          "data": result.data}, indent=1))
