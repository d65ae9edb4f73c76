"""What every command shares: consoles, the error guard, progress display, text input, tokenizer loading, engine
option flags generated from the engines' declarations, and common flags (``--cache-dir``, ``--quiet``, output).

A command module imports only click at module level; everything heavy (rich, numpy, the engines, transformers) is
imported inside functions, so ``ctkd-inspect --help`` and every command start fast.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import click

from ..errors import CtkdError, ExitCode, InputError, exit_code_for

# transformers' advisories (e.g. "PyTorch was not found", which is expected for span/DTW runs without the models
# extra) are noise on the command line; library users keep transformers' own defaults.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

#: Default limit on text read from --file or stdin (raise it with --max-text-bytes).
MAX_TEXT_BYTES = 16 * 1024 * 1024

# -------------------------------------------------------------------------------------------------------------
# consoles


def stdout_console():
    from rich.console import Console

    # Off a terminal rich would assume 80 columns; tables of token pieces read better wider, and a pipe or file
    # has no width of its own. COLUMNS still wins when set.
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 120
    return Console(soft_wrap=False, highlight=False, width=width)


def stderr_console():
    from rich.console import Console

    # messages are not re-wrapped: the terminal wraps them, and logs and tests read whole lines
    return Console(stderr=True, highlight=False, soft_wrap=True)


def note(message: str) -> None:
    """A one-line note for people on stderr (never stdout, which carries data)."""
    if is_quiet():
        return
    from rich.markup import escape

    stderr_console().print(f"[dim]{escape(message)}[/]")


# -------------------------------------------------------------------------------------------------------------
# progress


_QUIET = False


def is_quiet() -> bool:
    return _QUIET or os.environ.get("CTKD_INSPECT_QUIET", "") not in ("", "0")


class LineReporter:
    """Progress off a terminal: one line per stage on stderr, when the stage starts (logs stay readable)."""

    def __init__(self, stream=None):
        self.stream = stream

    def start(self, stage) -> None:
        total = f" ({_amount(stage.total, stage.unit)})" if stage.total else ""
        print(f"ctkd-inspect: {stage.name}{total} ...", file=self.stream or sys.stderr, flush=True)

    def update(self, stage) -> None:
        pass

    def finish(self, stage) -> None:
        pass


class RichReporter:
    """Progress on a terminal: one rich bar per running stage (a spinner when the total is unknown), removed when
    the stage ends."""

    def __init__(self):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[amount]}"), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TimeRemainingColumn(), console=stderr_console(), transient=True)
        self.tasks: dict[int, int] = {}
        self.running = 0

    def start(self, stage) -> None:
        if self.running == 0:
            self.progress.start()
        self.running += 1
        self.tasks[id(stage)] = self.progress.add_task(stage.name, total=stage.total, amount="")

    def update(self, stage) -> None:
        task = self.tasks.get(id(stage))
        if task is not None:
            amount = _amount(stage.completed, stage.unit) if stage.unit == "bytes" else stage.detail
            self.progress.update(task, completed=stage.completed, total=stage.total, amount=amount)

    def finish(self, stage) -> None:
        task = self.tasks.pop(id(stage), None)
        if task is not None:
            self.progress.remove_task(task)
        self.running -= 1
        if self.running == 0:
            self.progress.stop()


def _amount(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if unit == "bytes":
        return f"{value / 1e6:,.1f} MB"
    return f"{value:,.0f} {unit}".strip()


def make_reporter():
    """The reporter for this process: none with ``--quiet``, a rich bar on a terminal, lines elsewhere."""
    if is_quiet():
        return None
    return RichReporter() if sys.stderr.isatty() else LineReporter()


# -------------------------------------------------------------------------------------------------------------
# the error guard


def fail(exc: BaseException) -> None:
    """Print an error for people on stderr and exit with its code (never a traceback)."""
    console = stderr_console()
    if isinstance(exc, KeyboardInterrupt):
        console.print("[yellow]interrupted[/]")
    else:
        from rich.markup import escape

        console.print(f"[bold red]error:[/] {escape(str(exc))}")
    sys.exit(exit_code_for(exc))


def guard(function: Callable) -> Callable:
    """Run a command body with progress shown and this package's errors mapped to exit codes and messages."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        global _QUIET
        from ..progress import reporting

        try:
            with reporting(make_reporter()):
                return function(*args, **kwargs)
        except (CtkdError, KeyboardInterrupt) as exc:
            fail(exc)
        except BrokenPipeError:  # `ctkd-inspect ... | head` closed the pipe: not an error
            os._exit(0)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except MemoryError:
            # past every budget check (a budget raised with --max-memory, memory taken by other processes since)
            stderr_console().print("[bold red]error:[/] ran out of memory; nothing was written. Align in pieces "
                                   "(--chunking anchors), keep the default memory budget or lower --max-memory, "
                                   "or use the span engine")
            sys.exit(int(ExitCode.RUNTIME))
        except Exception as exc:  # a defect of ours or of a library: still a message, not a traceback
            if os.environ.get("CTKD_INSPECT_DEBUG"):
                raise
            from rich.markup import escape

            stderr_console().print(f"[bold red]error:[/] unexpected {type(exc).__name__}: {escape(str(exc)[:500])}\n"
                                   "[dim]this is a bug in ctkd-inspect or a library it uses; rerun with "
                                   "CTKD_INSPECT_DEBUG=1 for the traceback and report it[/]")
            sys.exit(int(ExitCode.RUNTIME))
        finally:
            _QUIET = False  # --quiet belongs to this invocation (several run in one process under test runners)

    return wrapper


# -------------------------------------------------------------------------------------------------------------
# shared flags


def _set_quiet(ctx, param, value):
    global _QUIET
    if value:
        _QUIET = True
    return value


def cache_option(function: Callable) -> Callable:
    return click.option("--cache-dir", type=click.Path(file_okay=False), envvar="CTKD_INSPECT_CACHE",
                        help="Cache folder (default: $CTKD_INSPECT_CACHE or ~/.cache/ctkd-inspect).")(function)


def quiet_option(function: Callable) -> Callable:
    return click.option("--quiet", "-q", is_flag=True, expose_value=False, is_eager=True, callback=_set_quiet,
                        help="No progress bars or notes on stderr (errors and warnings still show).")(function)


def output_options(suffixes: Iterable[str], what: str = "the result") -> Callable:
    """``-o/--output FILE`` and ``--overwrite`` for a command that writes ``what`` to a file."""
    listed = ", ".join(suffixes)

    def decorate(function: Callable) -> Callable:
        function = click.option("--overwrite", is_flag=True,
                                help="Replace an existing output file (otherwise it is refused).")(function)
        return click.option("--output", "-o", "output", type=click.Path(dir_okay=False), metavar="FILE",
                            help=f"Write {what} to FILE ({listed}); checked before any work, written "
                                 "atomically.")(function)

    return decorate


def text_input_options(function: Callable) -> Callable:
    """``--file`` and ``--max-text-bytes`` for commands that read one text."""
    function = click.option("--max-text-bytes", type=click.IntRange(min=1), default=MAX_TEXT_BYTES,
                            show_default=True, metavar="N",
                            help="Refuse text from --file or stdin longer than N bytes.")(function)
    return click.option("--file", "-f", "file", metavar="PATH",
                        help="Read the text from a file ('-' for stdin).")(function)


# -------------------------------------------------------------------------------------------------------------
# input


def _read_limited(stream, limit: int, where: str) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise InputError(f"the text from {where} is longer than {limit:,} bytes; raise --max-text-bytes to align "
                         "it (the span engine handles long texts; DTW engines check their memory budget)")
    return data


def read_text(text: str | None, file: str | None, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The text from the TEXT argument, ``--file`` or stdin, verbatim, cleaned of invalid code points (with a note).

    Raises:
        click.UsageError: no text, or both TEXT and --file.
        click.BadParameter: the file cannot be read or is not a regular file.
        InputError: the text is longer than ``max_bytes``, or empty.
    """
    from ..text import clean_text

    if text is not None and file is not None:
        raise click.UsageError("give the text either as an argument or with --file, not both")
    if file is not None:
        if file == "-":
            raw = _read_limited(sys.stdin.buffer, max_bytes, "stdin")
        else:
            path = Path(file)
            try:
                if path.exists() and not path.is_file():
                    raise click.BadParameter(f"{file} is not a regular file", param_hint="--file")
                with open(path, "rb") as stream:
                    raw = _read_limited(stream, max_bytes, file)
            except OSError as exc:
                raise click.BadParameter(f"cannot read {file}: {exc.strerror}", param_hint="--file") from exc
        decoded = raw.decode("utf-8", errors="surrogateescape")
    elif text is not None:
        decoded = text
    elif not sys.stdin.isatty():
        decoded = _read_limited(sys.stdin.buffer, max_bytes, "stdin").decode("utf-8", errors="surrogateescape")
    else:
        raise click.UsageError("no text: pass TEXT, --file PATH, or pipe text on stdin")
    cleaned, replaced = clean_text(decoded)
    if replaced:
        stderr_console().print(f"[yellow]note:[/] {replaced} invalid code point(s) (undecodable bytes or lone "
                               "surrogates) were replaced by U+FFFD; spans index the cleaned text")
    if not cleaned:
        raise InputError("the text is empty; nothing to align")
    return cleaned


def load_tokenizers(names: Iterable[str], cache_dir: str | None) -> list:
    """Load tokenizers by name (downloads and conversions report progress through the current reporter), with the
    light Rust backend: the commands need no transformers tokenizer, and importing transformers alone costs most of
    a second."""
    from ..sources import load_tokenizers as load

    return load(list(names), cache_dir=cache_dir)


# -------------------------------------------------------------------------------------------------------------
# the end of the process

_FAST_EXIT = False


def allow_fast_exit() -> None:
    """Declare this command's work finished: when it was started as the process itself (the console script or
    ``python -m ctkd_inspect``), the process may end without the interpreter's teardown (see :func:`fast_exit`).
    A command calls it last, on success, only when it started nothing with teardown of its own (models, pools)."""
    global _FAST_EXIT
    _FAST_EXIT = True


def fast_exit() -> None:
    """End the process with status 0 now, if the command allowed it and nothing still needs the interpreter;
    return (for the normal exit) otherwise.

    The interpreter's teardown frees every object one by one; after ``ctkd-inspect llama3 gemma2 TEXT`` that is
    mostly the two Rust tokenizers' vocabularies and merge tables, about 0.1 s of a command that takes under 2
    (the Rust-only floor pays it too). Nothing in it is ours to wait for, so it is skipped, and only it: the
    atexit handlers still run (logging's shutdown, coverage, whatever a library registered) and stdout and stderr
    are flushed first. It does not apply, and the exit is the normal one, when the command did not allow it, when
    a thread other than daemons is alive, under a profiler, a tracer or a debugger (their reports are written at
    the normal exit), or when flushing fails (a closed pipe keeps its usual handling).
    """
    global _FAST_EXIT
    allowed, _FAST_EXIT = _FAST_EXIT, False
    if not allowed or sys.getprofile() is not None or sys.gettrace() is not None:
        return
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.current_thread()):
        return
    import atexit

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    atexit._run_exitfuncs()  # what the normal exit would run first; they may print, so flush once more
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(0)


def json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value).__name__)


def dumps(data, indent: int | None = None) -> str:
    return json.dumps(data, ensure_ascii=False, indent=indent, default=json_default)


def write_or_echo(text: str, output: str | None) -> None:
    """Write ``text`` to ``output`` atomically (already checked by :func:`check_output`), or print it on stdout."""
    if output is None:
        click.echo(text)
        return
    from ..outputs import atomic_write_text

    atomic_write_text(output, text + "\n")
    note(f"written to {output}")


def check_output(output: str | None, suffixes: Iterable[str], overwrite: bool) -> None:
    """Check an output path before any work (see :func:`ctkd_inspect.outputs.check_output_path`)."""
    if output is not None:
        from ..outputs import check_output_path

        check_output_path(output, suffixes=tuple(suffixes), overwrite=overwrite, option="--output")


def check_mapping_spec(spec: str, flag: str) -> None:
    """Refuse a vocabulary-mapping spec that is neither one computed by name (``exact``, ``mined:reference``, ...)
    nor an existing mapping file, before any tokenizer loads.

    Raises:
        click.BadParameter: naming ``flag``.
    """
    from ..diffs import MAPPING_SPECS, MAPPING_SUFFIXES

    if spec.strip().lower() in MAPPING_SPECS:
        return
    if os.path.splitext(spec)[1].lower() not in MAPPING_SUFFIXES:
        raise click.BadParameter(f"{spec!r} is not a mapping: use one of {', '.join(MAPPING_SPECS)}, or a file saved "
                                 f"by `ctkd-inspect vocab --out` ({', '.join(MAPPING_SUFFIXES)})", param_hint=flag)
    if not os.path.isfile(spec):
        raise click.BadParameter(f"no such mapping file: {spec}", param_hint=flag)


# -------------------------------------------------------------------------------------------------------------
# engine options as flags, generated from the engines' declarations


class EngineOptionFlag(click.Option):
    """A flag generated from an engine option declaration; it carries the declaration's name so the command can
    collect the values that were given."""

    def __init__(self, declaration, engines: list[str]):
        self.declaration = declaration
        applies = ", ".join(engines)
        help_text = f"{declaration.describe()} [{applies}]"
        if declaration.type is bool:
            super().__init__([f"{declaration.flag}/--no-{declaration.flag[2:]}"], default=None,
                             help=help_text)
        else:
            super().__init__([declaration.flag], type=str, default=None, help=help_text,
                             metavar=declaration.metavar or declaration.type.__name__.upper())
        self.option_name = declaration.name


def engine_option_flags(reserved: Iterable[str] = ()) -> list[click.Option]:
    """One flag per option name declared by any registered engine (CLI options only), each noting which engines
    take it; built from the registry at call time, so engines registered later appear too. Names in ``reserved``
    (the command's own parameters) are left out, so a plugin cannot shadow ``--json`` or ``--file``."""
    from ..engines.base import engine_classes
    from ..engines.options import options_of

    taken = set(reserved)
    by_name: dict[str, tuple[object, list[str]]] = {}
    for engine_name, cls in engine_classes().items():
        for option in options_of(cls):
            if not option.cli or option.name in taken:
                continue
            entry = by_name.setdefault(option.name, (option, []))
            entry[1].append(engine_name)
    return [EngineOptionFlag(option, engines) for option, engines in by_name.values()]


def given_engine_options(ctx: click.Context) -> dict:
    """The engine-option flags the user gave, by option name (values as typed: strings, or booleans)."""
    out = {}
    for param in ctx.command.get_params(ctx):
        if isinstance(param, EngineOptionFlag):
            value = ctx.params.get(param.name)
            if value is not None:
                out[param.option_name] = value
    return out


def parse_engine_options(engine: str, given: dict) -> dict:
    """Validate the given flags against ``engine``'s declaration (messages name the flags).

    Raises:
        OptionError: a flag the engine does not take, or a value its declaration refuses.
    """
    from ..engines.base import engine_class
    from ..engines.options import parse_options

    return parse_options(engine_class(engine), given, "cli")


class EngineCommand(click.Command):
    """A command whose engine-option flags are generated from the engine registry when it runs (or shows help)."""

    def __init__(self, *args, usage: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.usage_line = usage
        self._static = list(self.params)

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        # rebuilt every time: an engine registered after this module was imported still gets its flags
        self.params = self._static + engine_option_flags(reserved={p.name for p in self._static})
        return super().get_params(ctx)

    def format_usage(self, ctx: click.Context, formatter) -> None:
        if self.usage_line is None:
            return super().format_usage(ctx, formatter)
        program = ctx.parent.command_path if ctx.parent else "ctkd-inspect"
        formatter.write(f"Usage: {program} {self.usage_line}\n")
