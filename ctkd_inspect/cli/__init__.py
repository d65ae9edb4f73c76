"""The ``ctkd-inspect`` command (click + rich): one module per command, imported only when that command runs.

``ctkd-inspect TEACHER STUDENT [TEXT]`` is the default command (``align``); the others are listed in
:data:`COMMANDS`. Data goes to stdout (the rendered view, or JSON with ``--json``); progress, notes, warnings and
errors go to stderr. Exit codes: 0 ok, 1 runtime error, 2 usage (bad option, empty text), 3 a tokenizer or model
could not be resolved or loaded, 4 ``diff --check`` found differences, 5 ``check --strict`` found an error-level
finding, 130 interrupted.

To add a command: write ``ctkd_inspect/cli/<name>.py`` with a click command (helpers in
:mod:`ctkd_inspect.cli.common`; heavy imports inside the function) and add one line to :data:`COMMANDS`.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

#: name -> ("module:attribute", one-line help shown in ``ctkd-inspect --help`` without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "align": ("ctkd_inspect.cli.align:align_command",
              "Align a text (the default: ctkd-inspect TEACHER STUDENT [TEXT] runs it)."),
    "tokenizers": ("ctkd_inspect.cli.sources:tokenizers_command",
                   "List the offline tokenizer aliases and whether they are cached."),
    "fetch": ("ctkd_inspect.cli.sources:fetch_command",
              "Download offline assets into the cache ahead of time; --verify re-hashes it."),
    "vocab": ("ctkd_inspect.cli.vocab:vocab_command",
              "Map one vocabulary onto the other (exact, MinED) and show the coverage."),
    "diff": ("ctkd_inspect.cli.diff:diff_command",
             "Compare two alignments of a text: two engines (--engines) or two teachers (--teachers)."),
    "vocab-diff": ("ctkd_inspect.cli.diff:vocab_diff_command",
                   "Compare two vocabulary mappings of a pair (exact, MinED, reference, saved files)."),
    "check": ("ctkd_inspect.cli.check:check_command", "Preflight checks: what will break when distilling the pair."),
    "corpus": ("ctkd_inspect.cli.corpus:corpus_command",
               "Align a whole data set (resumable, local processes or Ray) into Parquet, with a summary and report."),
    "tui": ("ctkd_inspect.cli.tui:tui_command",
            "Explore a pair in a terminal UI: alignments as you type, engines, diffs, metrics, failures, vocabulary."),
    "export": ("ctkd_inspect.cli.export:export_command",
               "Write TRL GOLD groups, tokenkit alignment matrices or DSKD id maps for peer trainers."),
    "distill": ("ctkd_inspect.cli.distill:distill_command",
                "Train a student from a teacher with a distillation loss (Accelerate; resumable; TensorBoard)."),
    "targets": ("ctkd_inspect.cli.targets:targets_command",
                "Compare MinED, CDM and SeDi targets on a data set with the models (alignment, coverage, Top-1)."),
}


def _started_as_the_command() -> bool:
    """Whether this process is the command itself: the console script, or ``python -m ctkd_inspect``."""
    entry = sys.modules.get("__main__")
    spec = getattr(entry, "__spec__", None)
    if spec is not None:
        return spec.name == "ctkd_inspect.__main__"
    return os.path.basename(getattr(entry, "__file__", None) or "") == "ctkd-inspect"


class _LazyGroup(click.Group):
    """A group whose commands are imported on first use, and whose first argument, when it is not a command,
    starts the default ``align`` command."""

    default_command = "align"

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        module_name, attribute = entry[0].split(":")
        return getattr(importlib.import_module(module_name), attribute)

    def parse_args(self, ctx, args):
        group_flags = {"--help", "-h", "--version"}
        if args and args[0] not in COMMANDS and args[0] not in group_flags:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx, formatter):
        formatter.write(f"Usage: {ctx.command_path} TEACHER STUDENT [TEXT] [OPTIONS]\n"
                        f"       {ctx.command_path} COMMAND [ARGS]...\n")

    def format_options(self, ctx, formatter):
        # the default command's main options first: `ctkd-inspect --help` is where a new user looks for them
        align = self.get_command(ctx, "align")
        with click.Context(align, info_name=ctx.info_name, parent=None) as align_ctx:
            from .align import MAIN_FLAGS

            rows = []
            for param in align.get_params(align_ctx):
                if isinstance(param, click.Option) and any(flag in MAIN_FLAGS for flag in param.opts):
                    record = param.get_help_record(align_ctx)
                    if record:
                        rows.append(record)
        with formatter.section("Align options (TEACHER STUDENT [TEXT]; all of them: ctkd-inspect align --help)"):
            formatter.write_dl(rows)
        super().format_options(ctx, formatter)

    def format_commands(self, ctx, formatter):
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_text) for name, (_, help_text) in COMMANDS.items()])

    def __call__(self, *args, **kwargs):
        # `ctkd-inspect ...` and `python -m ctkd_inspect ...` call main() with no arguments and end with its exit;
        # click's test runner and programs that pass arguments call main.main(...) or main(args) and carry on
        try:
            return super().__call__(*args, **kwargs)
        except SystemExit as exc:
            if not args and not kwargs and exc.code in (0, None) and _started_as_the_command():
                from .common import fast_exit

                fast_exit()  # returns when the normal exit is needed
            raise

    def invoke(self, ctx):
        import warnings

        def show(message, category, filename, lineno, file=None, line=None):
            from rich.markup import escape

            from .common import stderr_console

            stderr_console().print(f"[yellow]warning:[/] {escape(str(message))}")

        # our warnings (a cache that cannot be written, a suspicious tokenizer file) as one line for people
        warnings.showwarning = show
        return super().invoke(ctx)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ctkd-inspect", prog_name="ctkd-inspect")
def main() -> None:
    """Show how two tokenizers cut a text, which teacher tokens belong with which student tokens, and how well
    they align.

    \b
    Examples:
      ctkd-inspect llama3 gemma2 "The café costs 3.50€ 🦙"
      echo "some text" | ctkd-inspect llama3 gemma2 --json
      ctkd-inspect gemma3 smollm2 "The capital of France is Paris." --engine cdm
      ctkd-inspect ./my-tokenizer/ bert --file notes.txt
      ctkd-inspect tokenizers            # the offline aliases
      ctkd-inspect fetch --all           # download every offline asset now

    TEACHER and STUDENT are aliases (see `ctkd-inspect tokenizers`), paths to tokenizer files or folders, or
    Hugging Face hub ids (used only when the hub is reachable). `ctkd-inspect COMMAND --help` explains a command.
    """


__all__ = ["COMMANDS", "main"]
