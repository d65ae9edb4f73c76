"""The ``ctkd-inspect`` command (click + rich).

``ctkd-inspect TEACHER STUDENT [TEXT]`` is the default command; subcommands: ``tokenizers``, ``fetch``.
Data goes to stdout (the rendered view, or JSON with ``--json``); progress, warnings and errors go to stderr.
Exit codes: 0 ok, 1 runtime error, 2 usage (bad option, empty text), 3 a tokenizer or model could not be
resolved or loaded, 130 interrupted.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from .errors import CtkdError, ExitCode, InputError, exit_code_for

# transformers' advisories (e.g. "PyTorch was not found", which is expected for span/DTW runs without the models
# extra) are noise on the command line; library users keep transformers' own defaults.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

# -------------------------------------------------------------------------------------------------------------
# consoles and progress


def _stdout_console():
    from rich.console import Console

    # Off a terminal rich would assume 80 columns; tables of token pieces read better wider, and a pipe or file
    # has no width of its own. COLUMNS still wins when set.
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 120
    return Console(soft_wrap=False, highlight=False, width=width)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


@contextmanager
def _download_progress():
    """A progress bar on stderr for asset downloads; yields the callback to pass to the sources."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                        TimeRemainingColumn(), console=_stderr_console(), transient=True)
    tasks: dict[str, int] = {}

    def callback(asset: str, done: int, total: int, stage: str) -> None:
        if asset not in tasks:
            progress.start()
            tasks[asset] = progress.add_task(f"fetching {asset}", total=total)
        description = f"{'unpacking' if stage == 'unpack' else 'fetching'} {asset}"
        progress.update(tasks[asset], completed=done, total=total, description=description)

    try:
        yield callback
    finally:
        if tasks:  # stopping a display that never started would still print a newline on stderr
            progress.stop()


def _fail(exc: BaseException) -> None:
    """Print an error for people on stderr and exit with its code (never a traceback)."""
    console = _stderr_console()
    if isinstance(exc, KeyboardInterrupt):
        console.print("[yellow]interrupted[/]")
    else:
        from rich.markup import escape

        console.print(f"[bold red]error:[/] {escape(str(exc))}")
    sys.exit(exit_code_for(exc))


def _guard(function):
    """Run a command body, mapping this package's errors to exit codes and messages."""
    import functools

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (CtkdError, KeyboardInterrupt) as exc:
            _fail(exc)
        except BrokenPipeError:  # `ctkd-inspect ... | head` closed the pipe: not an error
            os._exit(0)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:  # a defect of ours or of a library: still a message, not a traceback
            if os.environ.get("CTKD_INSPECT_DEBUG"):
                raise
            console = _stderr_console()
            from rich.markup import escape

            console.print(f"[bold red]error:[/] unexpected {type(exc).__name__}: {escape(str(exc)[:500])}\n"
                          "[dim]this is a bug in ctkd-inspect or a library it uses; rerun with CTKD_INSPECT_DEBUG=1 "
                          "for the traceback and report it[/]")
            sys.exit(int(ExitCode.RUNTIME))

    return wrapper


# -------------------------------------------------------------------------------------------------------------
# the group with a default command


class _DefaultGroup(click.Group):
    """A group whose first argument, when it is not a subcommand, starts the default ``align`` command."""

    default_command = "align"

    def parse_args(self, ctx, args):
        group_flags = {"--help", "-h", "--version"}
        if args and args[0] not in self.commands and args[0] not in group_flags:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx, formatter):
        formatter.write(f"Usage: {ctx.command_path} TEACHER STUDENT [TEXT] [OPTIONS]\n"
                        f"       {ctx.command_path} COMMAND [ARGS]...\n")

    def invoke(self, ctx):
        import warnings

        def show(message, category, filename, lineno, file=None, line=None):
            from rich.markup import escape

            _stderr_console().print(f"[yellow]warning:[/] {escape(str(message))}")

        # our warnings (a cache that cannot be written, a suspicious tokenizer file) as one line for people
        warnings.showwarning = show
        return super().invoke(ctx)


class _AlignCommand(click.Command):
    """The default command: its usage line names no subcommand, since none is typed."""

    def format_usage(self, ctx, formatter):
        formatter.write(f"Usage: {ctx.parent.command_path if ctx.parent else 'ctkd-inspect'} TEACHER STUDENT "
                        "[TEXT] [OPTIONS]\n")


@click.group(cls=_DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ctkd-inspect", prog_name="ctkd-inspect")
def main() -> None:
    """Show how two tokenizers cut a text, which teacher tokens belong with which student tokens, and how well
    they align.

    \b
    Examples:
      ctkd-inspect llama3 gemma2 "The café costs 3.50€ 🦙"
      echo "some text" | ctkd-inspect llama3 gemma2 --json
      ctkd-inspect ./my-tokenizer/ bert --file notes.txt
      ctkd-inspect tokenizers            # the offline aliases
      ctkd-inspect fetch --all           # download every offline asset now

    TEACHER and STUDENT are aliases (see `ctkd-inspect tokenizers`), paths to tokenizer files or folders, or
    Hugging Face hub ids (used only when the hub is reachable).
    """


def _read_text(text: str | None, file: str | None) -> str:
    if text is not None and file is not None:
        raise click.UsageError("give the text either as an argument or with --file, not both")
    if file is not None:
        if file == "-":
            raw = sys.stdin.buffer.read()
        else:
            try:
                raw = Path(file).read_bytes()
            except OSError as exc:
                raise click.BadParameter(f"cannot read {file}: {exc.strerror}", param_hint="--file") from exc
        return raw.decode("utf-8", errors="surrogateescape")
    if text is not None:
        return text
    if not sys.stdin.isatty():
        return sys.stdin.buffer.read().decode("utf-8", errors="surrogateescape")
    raise click.UsageError("no text: pass TEXT, --file PATH, or pipe text on stdin")


@main.command("align", cls=_AlignCommand, hidden=True)
@click.argument("teacher")
@click.argument("student")
@click.argument("text", required=False)
@click.option("--file", "-f", "file", metavar="PATH", help="Read the text from a file ('-' for stdin).")
@click.option("--engine", "-e", default="span", show_default=True, metavar="NAME",
              help="Alignment engine: span (character-span components, SeDi), mined (DTW over token strings, "
                   "FuseLLM/DSKD), cdm (entropy-weighted DTW, needs models), softdtw (DWA-KD banded Soft-DTW over "
                   "model representations, needs models).")
@click.option("--mode", type=click.Choice(["canonical", "reference"]), default=None,
              help="mined/cdm: canonical (default, fixes the published defects) or reference (as published).")
@click.option("--teacher-model", metavar="MODEL", help="Teacher LM for cdm/softdtw and the Top-1 accuracy: an alias "
              "(gemma3, smollm2), a .gguf, a folder or a hub id. Default: the model the teacher alias names.")
@click.option("--student-model", metavar="MODEL", help="Student LM, as --teacher-model.")
@click.option("--gamma", type=float, default=None, help="softdtw: Soft-DTW smoothing γ > 0 (default 0.1).")
@click.option("--band-width", type=float, default=None, help="softdtw: band base width b (default 5).")
@click.option("--band-beta", type=float, default=None, help="softdtw: band entropy factor β (default 2.0).")
@click.option("--band-alpha", type=float, default=None, help="softdtw: band centre mix α (default 0.7).")
@click.option("--band-penalty", type=float, default=None, help="softdtw: penalty λ outside the band (default 1.0).")
@click.option("--vocab-mapping", type=click.Path(dir_okay=False), metavar="FILE",
              help="mined/cdm: a vocabulary mapping from `ctkd-inspect vocab --out` (.json/.npz/.parquet); the "
                   "one-hot fallback rate then follows DSKD's rule (SeDi's Table 1) and Top-1 converts through it.")
@click.option("--fit-texts", type=click.IntRange(min=0), default=0, show_default=True,
              help="softdtw: also fit the teacher→student map on this many texts of the offline corpus.")
@click.option("--json", "as_json", is_flag=True, help="Print the alignment as JSON (schema in the README).")
@click.option("--indent", type=int, default=None, help="Indent the JSON output.")
@click.option("--no-special-tokens", is_flag=True, help="Tokenize without BOS/EOS/CLS/SEP.")
@click.option("--max-groups", type=click.IntRange(min=0), default=80, show_default=True,
              help="Rows of the group table to show (0 hides it); JSON always has every group.")
@click.option("--cache-dir", type=click.Path(file_okay=False), envvar="CTKD_INSPECT_CACHE",
              help="Cache folder (default: $CTKD_INSPECT_CACHE or ~/.cache/ctkd-inspect).")
@_guard
def align_command(teacher, student, text, file, engine, mode, teacher_model, student_model, gamma, band_width,
                  band_beta, band_alpha, band_penalty, vocab_mapping, fit_texts, as_json, indent, no_special_tokens,
                  max_groups, cache_dir):
    """Align TEXT as cut by TEACHER and STUDENT and show both tokenizations, the groups and the metrics."""
    from .api import align
    from .engines import engine_names, get_engine
    from .sources import load_tokenizer
    from .text import clean_text

    if engine not in engine_names():
        raise click.BadParameter(f"unknown engine {engine!r}; available: {', '.join(engine_names())}",
                                 param_hint="--engine")
    softdtw_options = {"gamma": gamma, "band_width": band_width, "band_beta": band_beta, "band_alpha": band_alpha,
                       "band_penalty": band_penalty}
    given = [f"--{k.replace('_', '-')}" for k, v in softdtw_options.items() if v is not None]
    if fit_texts:
        given.append("--fit-texts")
    if engine != "softdtw" and given:
        raise click.UsageError(f"{', '.join(given)} apply to --engine softdtw only")
    if engine in ("span", "softdtw") and mode:
        raise click.UsageError("--mode applies to the DTW engines (--engine mined or cdm)")
    if engine in ("span", "softdtw") and vocab_mapping:
        raise click.UsageError("--vocab-mapping applies to the DTW engines (--engine mined or cdm)")
    mapping = None
    if vocab_mapping:
        from .vocab import VocabMapping

        mapping = VocabMapping.load(vocab_mapping)  # before any tokenizer or model is loaded
    if engine == "span" and (teacher_model or student_model):
        raise click.UsageError("the span engine uses no model; --teacher-model/--student-model apply to "
                               "mined, cdm and softdtw")
    raw = _read_text(text, file)
    cleaned, replaced = clean_text(raw)
    if replaced:
        _stderr_console().print(f"[yellow]note:[/] {replaced} invalid code point(s) (undecodable bytes or lone "
                                "surrogates) were replaced by U+FFFD; spans index the cleaned text")
    if not cleaned:
        raise InputError("the text is empty; nothing to align")
    with _download_progress() as progress:
        teacher_tok = load_tokenizer(teacher, cache_dir=cache_dir, progress=progress)
        student_tok = load_tokenizer(student, cache_dir=cache_dir, progress=progress)
    options = {}
    if engine in ("mined", "cdm"):
        options["mode"] = mode or "canonical"
        if mapping is not None:
            # a Vocabulary spans ids 0 … largest id (see ctkd_inspect.vocab.vocabulary)
            sizes = tuple(max(tok.get_vocab().values()) + 1 for tok in (teacher_tok, student_tok))
            if (len(mapping.teacher_to_student), len(mapping.student_to_teacher)) != sizes:
                raise InputError(f"{vocab_mapping} maps {mapping.teacher} ({len(mapping.teacher_to_student):,} ids) "
                                 f"to {mapping.student} ({len(mapping.student_to_teacher):,} ids), not these "
                                 f"tokenizers ({sizes[0]:,} and {sizes[1]:,} ids)")
            options["vocab_mapping"] = mapping
    if engine == "softdtw":
        options.update({k: v for k, v in softdtw_options.items() if v is not None})
        if fit_texts:
            from .sources.corpus import llama_cpp_corpus

            options["anchor_texts"] = llama_cpp_corpus()[:fit_texts]
    if engine != "span" and (teacher_model or student_model or get_engine(engine).needs_signals):
        _stderr_console().print("[dim]computing model signals (the first load of a GGUF model takes up to a "
                                "minute; results are cached)[/]")
    result = align(teacher_tok, student_tok, cleaned, engine=engine, add_special_tokens=not no_special_tokens,
                   teacher_model=teacher_model, student_model=student_model, **options)
    if as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=indent, default=_json_default))
        return
    from .rich_view import render_alignment

    render_alignment(_stdout_console(), result, max_groups=max_groups)


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value).__name__)


@main.command("tokenizers")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.option("--cache-dir", type=click.Path(file_okay=False), envvar="CTKD_INSPECT_CACHE", help="Cache folder.")
@_guard
def tokenizers_command(as_json, cache_dir):
    """List the offline aliases: family, vocabulary, source package, official hub id, whether cached."""
    from .sources.assets import ASSETS, is_fetched
    from .sources.registry import ALIASES

    root = Path(cache_dir).expanduser() if cache_dir else None
    rows = []
    for alias in ALIASES.values():
        package = ", ".join(f"{p.name}=={p.version}" for p in ASSETS[alias.asset].packages[:1])
        rows.append({"alias": alias.name, "family": alias.family, "kind": alias.kind, "vocab_size": alias.vocab_size,
                     "source": package, "file": alias.file, "hub_id": alias.hub_id,
                     "cached": is_fetched(alias.asset, root), "note": alias.note})
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    from rich import box
    from rich.table import Table

    table = Table(title="offline tokenizer aliases", title_justify="left", box=box.SIMPLE_HEAD)
    widths = {"alias": 14, "kind": 16, "vocab": 7, "source package": 16, "official hub id": 26, "cached": 6}
    for column, width in widths.items():
        table.add_column(column, min_width=width, overflow="fold", justify="right" if column == "vocab" else "left")
    for row in rows:
        table.add_row(row["alias"], row["kind"], f"{row['vocab_size']:,}", row["source"],
                      row["hub_id"], "[green]yes[/]" if row["cached"] else "no")
    _stdout_console().print(table)


@main.command("fetch")
@click.argument("names", nargs=-1)
@click.option("--all", "fetch_all", is_flag=True, help="Fetch every offline asset (about 420 MB).")
@click.option("--force", is_flag=True, help="Download again even when cached.")
@click.option("--verify", is_flag=True, help="Re-hash cached files against their manifests instead of fetching.")
@click.option("--cache-dir", type=click.Path(file_okay=False), envvar="CTKD_INSPECT_CACHE", help="Cache folder.")
@_guard
def fetch_command(names, fetch_all, force, verify, cache_dir):
    """Download the files behind aliases (or assets) into the cache, with checksums, so later runs are offline.

    NAMES are aliases (llama3, gemma2, ...) or asset keys (llama-cpp, draive, ...). The package client (pip)
    downloads pinned, hash-checked archives; set PIP_INDEX_URL to use a mirror.
    """
    from .sources.assets import ASSETS, asset_summary, fetch_asset, verify_asset
    from .sources.registry import find_alias

    if not names and not fetch_all:
        raise click.UsageError("name the aliases to fetch, or pass --all")
    root = Path(cache_dir).expanduser() if cache_dir else None
    keys: list[str] = []
    for name in (ASSETS if fetch_all else names):
        alias = find_alias(name)
        key = alias.asset if alias else name
        if key not in ASSETS:
            from .errors import TokenizerNotFound
            from .sources import _suggest

            suggestions = _suggest(name)
            hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
            raise TokenizerNotFound(f"{name!r} is neither an alias nor an asset.{hint}", suggestions)
        if key not in keys:
            keys.append(key)
    err = _stderr_console()
    if verify:
        bad = [key for key in keys if not verify_asset(key, root)]
        for key in keys:
            err.print(f"{key}: {'[red]damaged or missing[/]' if key in bad else '[green]ok[/]'}")
        if bad:
            sys.exit(int(ExitCode.RUNTIME))
        return
    with _download_progress() as progress:
        for key in keys:
            entry = fetch_asset(key, root, force=force, progress=progress)
            summary = asset_summary(key, root)
            err.print(f"[green]✓[/] {key}: {summary['bytes_on_disk'] / 1e6:.1f} MB in {entry}")


@main.command("vocab")
@click.argument("teacher")
@click.argument("student")
@click.option("--mode", type=click.Choice(["canonical", "reference"]), default="canonical", show_default=True,
              help="canonical: compare canonical bytes (Ġ/▁/## and byte pieces normalised); reference: FuseLLM's "
                   "marker replacement on raw strings.")
@click.option("--exact-only", is_flag=True, help="Skip the MinED nearest-neighbour mapping (seconds instead of "
              "a minute or two the first time; MinED results are cached).")
@click.option("--limit", type=click.IntRange(min=0), default=15, show_default=True,
              help="Rows of closest non-exact pairs and of unmapped tokens to show.")
@click.option("--json", "as_json", is_flag=True, help="Print coverage and samples as JSON.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the mapping to FILE (.json, .npz or .parquet).")
@click.option("--cache-dir", type=click.Path(file_okay=False), envvar="CTKD_INSPECT_CACHE", help="Cache folder.")
@_guard
def vocab_command(teacher, student, mode, exact_only, limit, as_json, out, cache_dir):
    """Map TEACHER's vocabulary onto STUDENT's: exact (canonical bytes) and MinED nearest by edit distance.

    Prints the coverage of both directions, the closest non-exact pairs and a sample of tokens without an exact
    match.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .sources import load_tokenizer
    from .vocab import closest_non_exact, exact_mapping, mined_mapping, unmapped_sample, vocabulary

    with _download_progress() as progress:
        teacher_tok = load_tokenizer(teacher, cache_dir=cache_dir, progress=progress)
        student_tok = load_tokenizer(student, cache_dir=cache_dir, progress=progress)
    teacher_vocab, student_vocab = vocabulary(teacher_tok, teacher), vocabulary(student_tok, student)
    exact = exact_mapping(teacher_vocab, student_vocab, mode)
    mined = None
    if not exact_only:
        bar = Progress(TextColumn("MinED {task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeRemainingColumn(), console=_stderr_console(), transient=True)
        tasks: dict[str, int] = {}

        def report(direction: str, done: int, total: int) -> None:
            if direction not in tasks:
                tasks[direction] = bar.add_task(direction, total=total)
            bar.update(tasks[direction], completed=done)

        with bar:
            mined = mined_mapping(teacher_vocab, student_vocab, mode, cache_dir=cache_dir, progress=report)
    chosen = mined or exact
    report_data = {
        "teacher": teacher, "student": student, "mode": mode,
        "exact": exact.coverage(),
        "mined": mined.coverage() if mined else None,
        "closest_non_exact": closest_non_exact(mined, teacher_vocab, student_vocab, limit) if mined else [],
        "unmapped_exactly": unmapped_sample(exact, teacher_vocab, limit),
    }
    if out:
        path = chosen.save(out, teacher_vocab, student_vocab)
        _stderr_console().print(f"[green]✓[/] {chosen.kind} mapping written to {path}")
    if as_json:
        click.echo(json.dumps(report_data, ensure_ascii=False, indent=1))
        return
    from .rich_view import render_vocab_report

    render_vocab_report(_stdout_console(), report_data)
