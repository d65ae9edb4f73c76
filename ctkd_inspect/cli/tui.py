"""``ctkd-inspect tui TEACHER STUDENT [TEXT] [--data FILE | --report OUT.parquet]``: the terminal UI.

The engine-option flags are generated from the engines' declarations, as for ``align``; everything that can be
checked before the app opens (the engine and its options, the extras, the files) is checked here, so a mistake is
a message and an exit code rather than an app that opens on an error. Problems that belong to the session (an
unknown tokenizer name, a damaged report, a text an engine refuses) are shown inside the app.
"""

from __future__ import annotations

import click

from .common import EngineCommand, cache_option, given_engine_options, guard, parse_engine_options


@click.command("tui", cls=EngineCommand, usage="tui TEACHER STUDENT [TEXT] [--data FILE | --report OUT.parquet]")
@click.argument("teacher")
@click.argument("student")
@click.argument("text", required=False)
@click.option("--data", type=click.Path(exists=True), metavar="FILE",
              help="Texts to browse, aligned as rows are opened (and in the background for engines without "
                   "models): JSONL ('text' or chat 'messages'), plain text (one text per line), Parquet ('text' "
                   "column) or a saved dataset folder.")
@click.option("--report", type=click.Path(exists=True, dir_okay=False), metavar="OUT.parquet",
              help="A corpus report: a Parquet file of alignment rows (ctkd_inspect.columns).")
@click.option("--engine", "-e", default="span", show_default=True, metavar="NAME", help="The engine to start with.")
@click.option("--theme", type=click.Choice(["dark", "light"]), default="dark", show_default=True,
              help="Colour theme (t switches it in the app).")
@cache_option
@click.pass_context
@guard
def tui_command(ctx, teacher, student, text, data, report, engine, theme, cache_dir, **_engine_flags):
    """Explore TEACHER and STUDENT in the terminal: alignments as you type, engines and their options, diffs,
    metrics over a data set or corpus report, failures and preflight findings, vocabulary lookups.

    Keys: 1–6 switch screens, ? shows every key, ctrl+p opens the command palette, ctrl+q quits.
    """
    from ..extras import require

    require("tui", feature="the terminal UI")
    if data and report:
        raise click.UsageError("give either --data or --report, not both")
    from ..api import check_request
    from ..engines.base import engine_names

    if engine not in engine_names():
        raise click.BadParameter(f"unknown engine {engine!r}; available: {', '.join(engine_names())}",
                                 param_hint="--engine")
    options = parse_engine_options(engine, given_engine_options(ctx))
    check_request(teacher, student, engine, options, style="cli")
    if report:
        require("parquet", feature="--report")
    if text is not None:
        from ..text import clean_text

        text, _ = clean_text(text)
    from ctkd_inspect_tui.app import run_app

    from ..progress import reporting

    # the app draws its own progress; nothing may write over the screen from here
    with reporting(None):
        run_app(teacher, student, text, engine=engine, options=options, data=data, report=report, theme=theme,
                cache_dir=cache_dir)
