"""``ctkd-inspect corpus TEACHER STUDENT DATA -o OUT.parquet``: align a whole data set, resumably, with a report.

The engine-option flags are generated from the engines' declarations, as for the align command; the work itself
is :func:`ctkd_inspect.corpus.runner.run_corpus`.
"""

from __future__ import annotations

import sys

import click

from .align import _engine_help, _EngineChoice
from .common import (
    MAX_TEXT_BYTES,
    EngineCommand,
    cache_option,
    dumps,
    given_engine_options,
    guard,
    note,
    quiet_option,
    stderr_console,
    stdout_console,
)


class CorpusCommand(EngineCommand):
    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if param.name == "engine":
                param.help = _engine_help()
        return params


def _print_summary(summary, result) -> None:
    """A short summary for people on stdout (``--json`` prints the whole summary instead)."""
    from rich.table import Table

    data = summary.to_dict()
    rate, ratio, failures = data["alignment_rate"], data["length_ratio"], data["failures"]

    def pct(value):
        return "n/a" if value is None else f"{value:.1%}"

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="dim")
    table.add_column()
    table.add_row("texts", f"{data['texts']:,}" + (" (response statistics)" if data["response_only"] else ""))
    table.add_row("tokens", f"{data['teacher']} {data['tokens']['teacher']:,} · {data['student']} "
                            f"{data['tokens']['student']:,}")
    table.add_row("alignment rate", f"{pct(rate['corpus'])} of student tokens · per text median "
                                    f"{pct(rate['median'])}, mean {pct(rate['mean'])}")
    total = sum(data["shapes"].values()) or 1
    table.add_row("group shapes", "  ".join(f"{k} {v / total:.0%}" for k, v in data["shapes"].items() if v))
    median = ratio["median"]
    table.add_row("length ratio", f"{data['teacher']}/{data['student']} tokens: median "
                                  f"{'n/a' if median is None else f'{median:.3f}'}")
    kinds = sorted(((k, v.get("student_token_share") or 0.0) for k, v in failures.get("kinds", {}).items()),
                   key=lambda item: -item[1])
    table.add_row("failures", "  ".join(f"{k} {share:.1%}" for k, share in kinds[:4] if share) or "none")
    worst = data["worst_texts"][:3]
    if worst:
        table.add_row("worst rows", ", ".join(f"{w['index']} ({pct(w['alignment_rate'])})" for w in worst))
    written = [str(result.output)] + [str(p) for p in (result.summary_path, result.report) if p is not None]
    table.add_row("written", " · ".join(written))
    stdout_console().print(table)


@click.command("corpus", cls=CorpusCommand, usage="TEACHER STUDENT DATA -o OUT.parquet [OPTIONS]")
@click.argument("teacher")
@click.argument("student")
@click.argument("data")
@click.option("--output", "-o", "output", required=True, type=click.Path(dir_okay=False), metavar="OUT.parquet",
              help="The Parquet file of alignment rows (one per text; checked before any work, written atomically; "
                   "partial work lives in OUT.parquet.work/ until the run ends).")
@click.option("--field", metavar="NAME", help="The record field (JSONL) or column (Parquet, dataset) holding the "
              "text; default text, else messages (a chat list, rendered as 'role: content' lines).")
@click.option("--prompt-field", metavar="NAME", help="With --response-field: texts are prompt + separator + "
              "response, and every statistic covers the response only, as the distillation losses see it.")
@click.option("--response-field", metavar="NAME", help="See --prompt-field.")
@click.option("--separator", default="\n", show_default="a newline", metavar="TEXT",
              help="What joins the prompt and the response (it ends the prompt).")
@click.option("--split-paragraphs", is_flag=True, help="Plain text: one text per paragraph (blank-line "
              "separated) instead of one per line.")
@click.option("--split", metavar="NAME", help="The split of a dataset folder holding several.")
@click.option("--engine", "-e", default="span", show_default=True, metavar="NAME", type=_EngineChoice(),
              help="Alignment engine.")
@click.option("--no-special-tokens", is_flag=True, help="Tokenize without BOS/EOS/CLS/SEP.")
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Align only the first N texts.")
@click.option("--workers", type=click.IntRange(min=1), metavar="N",
              help="Worker processes (local) or CPUs of the local Ray runtime [default: every core].")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: processes on this machine; ray: Ray Data map_batches (a local runtime, or --ray-address).")
@click.option("--ray-address", metavar="ADDR", help="Join this Ray cluster (HOST:PORT, ray://HOST:PORT or auto) "
              "with --backend ray; refused within seconds when it does not answer.")
@click.option("--report", type=click.Path(dir_okay=False), metavar="report.html",
              help="Also write a self-contained HTML report (plots, failure taxonomy with examples, worst texts).")
@click.option("--summary", "summary_file", type=click.Path(dir_okay=False), metavar="summary.json",
              help="Also write the summary as JSON.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--strict", is_flag=True, help="Stop at the first malformed record or too-long text instead of "
              "skipping it (skips are counted and reported with their line numbers).")
@click.option("--overwrite", is_flag=True, help="Replace existing output, report and summary files.")
@click.option("--max-text-bytes", type=click.IntRange(min=1), default=MAX_TEXT_BYTES, show_default=True,
              metavar="N", help="Skip (count and report) texts longer than N bytes; raise it to align them.")
@click.option("--shard-size", type=click.IntRange(min=1), default=2048, show_default=True, metavar="N",
              help="Texts per shard, the unit of resuming (a killed run loses at most the shards in flight).")
@click.option("--keep-work", is_flag=True, help="Keep the work folder (the shards) after the run.")
@cache_option
@quiet_option
@click.pass_context
@guard
def corpus_command(ctx, teacher, student, data, output, field, prompt_field, response_field, separator,
                   split_paragraphs, split, engine, no_special_tokens, limit, workers, backend, ray_address, report,
                   summary_file, as_json, strict, overwrite, max_text_bytes, shard_size, keep_work, cache_dir,
                   **_engine_flags):
    """Align every text of DATA as cut by TEACHER and STUDENT; write the rows to OUT.parquet, a summary and a
    report.

    DATA is a JSONL file (--field, chat messages, or --prompt-field/--response-field), a plain text file (one
    text per line, or --split-paragraphs), a Parquet file, or a folder written by datasets' save_to_disk.
    Malformed records are skipped and counted with their line numbers (--strict stops instead). The run is
    resumable: if it is interrupted (Ctrl-C, a kill), run the same command again and it continues from the
    finished shards in OUT.parquet.work/. Engine options (below --engine's list) apply to the engines named in
    brackets.
    """
    from ..corpus.runner import CorpusInterrupted, run_corpus

    options = given_engine_options(ctx)

    def started(work) -> None:
        if work.cleared:
            note(f"{work.path} held partial work of another run (other data or options); starting afresh")
        if work.done:
            texts = sum(int(entry["rows"]) for entry in work.done.values())
            note(f"resuming: {len(work.done)} shard(s) ({texts:,} texts) already done in {work.path}")
        else:
            note(f"partial work is kept in {work.path} until the run ends (if it is interrupted, run the same "
                 "command again to continue)")

    try:
        result = run_corpus(teacher, student, data, output, field=field, prompt_field=prompt_field,
                            response_field=response_field, separator=separator, split_paragraphs=split_paragraphs,
                            split=split, engine=engine, options=options, add_special_tokens=not no_special_tokens,
                            limit=limit, workers=workers, backend=backend, ray_address=ray_address, report=report,
                            summary=summary_file, strict=strict, overwrite=overwrite, max_text_bytes=max_text_bytes,
                            shard_texts=shard_size, cache_dir=cache_dir, keep_work=keep_work, style="cli",
                            on_start=started)
    except CorpusInterrupted as exc:
        stderr_console().print(f"[yellow]interrupted:[/] {exc.done} finished shard(s) ({exc.texts:,} texts) are kept "
                               f"in {exc.work}; run the same command again to continue where it stopped")
        sys.exit(130)
    summary = result.summary
    skipped = _skipped(result.read)
    if skipped:
        from rich.markup import escape

        stderr_console().print(f"[yellow]warning:[/] {escape(skipped)}")
    if as_json:
        click.echo(dumps(summary.to_dict()))
        return
    _print_summary(summary, result)


def _skipped(read: dict) -> str | None:
    from ..data import ReadReport

    report = ReadReport(**{k: v for k, v in read.items() if k in ReadReport.__dataclass_fields__})
    return report.summary()
