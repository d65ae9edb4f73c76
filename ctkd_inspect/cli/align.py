"""``ctkd-inspect TEACHER STUDENT [TEXT]`` (the default command, also ``ctkd-inspect align ...``).

The engine-option flags are generated from the registered engines' declarations (see
:mod:`ctkd_inspect.engines.options`); this module names no engine.
"""

from __future__ import annotations

import click

from .common import (
    EngineCommand,
    allow_fast_exit,
    cache_option,
    check_output,
    dumps,
    given_engine_options,
    guard,
    load_tokenizers,
    note,
    output_options,
    parse_engine_options,
    quiet_option,
    read_text,
    stdout_console,
    text_input_options,
    write_or_echo,
)

#: The flags the top-level ``--help`` lists under the align usage (the rest are in ``ctkd-inspect align --help``).
MAIN_FLAGS = ("--engine", "--json", "--file", "--output", "--teacher-model", "--student-model", "--mode",
              "--no-special-tokens", "--max-groups")


def _engine_help() -> str:
    from ..engines.base import engine_classes

    return "Alignment engine: " + "; ".join(f"{name} ({getattr(cls, 'description', '')})"
                                            for name, cls in engine_classes().items()) + "."


class _EngineChoice(click.ParamType):
    """``--engine NAME``: any registered engine (checked when the command runs, so plugins count)."""

    name = "engine"

    def convert(self, value, param, ctx):
        from ..engines.base import engine_names

        if value not in engine_names():
            self.fail(f"unknown engine {value!r}; available: {', '.join(engine_names())}", param, ctx)
        return value


class AlignCommand(EngineCommand):
    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:  # the engine list in --help follows the registry too
            if param.name == "engine":
                param.help = _engine_help()
        return params


@click.command("align", cls=AlignCommand, usage="TEACHER STUDENT [TEXT] [OPTIONS]")
@click.argument("teacher")
@click.argument("student")
@click.argument("text", required=False)
@text_input_options
@click.option("--engine", "-e", default="span", show_default=True, metavar="NAME", type=_EngineChoice(),
              help="Alignment engine.")
@click.option("--json", "as_json", is_flag=True, help="Print the alignment as JSON (schema in the README).")
@click.option("--indent", type=click.IntRange(min=0), default=None, help="Indent the JSON output.")
@output_options((".json",), "the JSON alignment")
@click.option("--no-special-tokens", is_flag=True, help="Tokenize without BOS/EOS/CLS/SEP.")
@click.option("--max-groups", type=click.IntRange(min=0), default=80, show_default=True,
              help="Rows of the group table to show (0 hides it); JSON always has every group.")
@cache_option
@quiet_option
@click.pass_context
@guard
def align_command(ctx, teacher, student, text, file, max_text_bytes, engine, as_json, indent, output, overwrite,
                  no_special_tokens, max_groups, cache_dir, **_engine_flags):
    """Align TEXT as cut by TEACHER and STUDENT and show both tokenizations, the groups and the metrics.

    TEACHER and STUDENT are aliases (see `ctkd-inspect tokenizers`), paths to tokenizer files or folders, or
    Hugging Face hub ids (used only when the hub is reachable). The text comes from TEXT, --file or stdin.
    Engine options (below --engine's list) apply to the engines named in brackets.
    """
    from ..api import align, check_request

    # every option, the output path and the extras are checked before any tokenizer, model or download
    options = parse_engine_options(engine, given_engine_options(ctx))
    _, _, models = check_request(teacher, student, engine, options, style="cli")
    check_output(output, (".json",), overwrite)
    cleaned = read_text(text, file, max_text_bytes)
    teacher_tok, student_tok = load_tokenizers((teacher, student), cache_dir)
    if any(models.values()):
        note("computing model signals (the first load of a GGUF model takes up to a minute; results are cached)")
    result = align(teacher_tok, student_tok, cleaned, engine=engine, add_special_tokens=not no_special_tokens,
                   **options)
    if output is not None:  # the JSON document to the file; stdout still shows the view unless --json
        write_or_echo(dumps(result.to_dict(), indent), output)
    elif as_json:
        write_or_echo(dumps(result.to_dict(), indent), None)
    if not as_json:
        from ..rich_view import render_alignment

        render_alignment(stdout_console(), result, max_groups=max_groups)
    if not any(models.values()):  # a model's library may have teardown of its own; the rest is all done here
        allow_fast_exit()
