"""``ctkd-inspect check TEACHER STUDENT``: preflight findings for a pair, on probe texts or the user's data."""

from __future__ import annotations

import click

from .common import cache_option, check_output, dumps, guard, load_tokenizers, output_options, quiet_option

_STYLES = {"error": "bold red", "warning": "yellow", "info": "cyan"}
_HEADINGS = {"error": "errors", "warning": "warnings", "info": "facts"}


def render_findings(console, findings, teacher: str, student: str) -> None:
    """The readable report: a summary line, then the findings grouped by severity, most severe first."""
    from rich.markup import escape
    from rich.padding import Padding
    from rich.rule import Rule
    from rich.text import Text

    from ..checks import SEVERITIES, severity_counts

    counts = severity_counts(findings)
    summary = ", ".join(f"[{_STYLES[s]}]{counts[s]} {_HEADINGS[s] if counts[s] != 1 else _HEADINGS[s][:-1]}[/]"
                        for s in SEVERITIES)
    console.print(f"[bold]check[/] teacher [bold]{escape(teacher)}[/] → student [bold]{escape(student)}[/]: "
                  f"{summary}")
    for severity in SEVERITIES:
        group = [f for f in findings if f.severity == severity]
        if not group:
            continue
        console.print(Rule(f"[{_STYLES[severity]}]{_HEADINGS[severity]}[/]", align="left"))
        for finding in group:
            head = Text()
            head.append(f"{severity.upper():8}", style=_STYLES[severity])
            head.append(finding.title, style="bold")
            head.append(f" ({finding.kind})", style="dim")
            console.print(head)
            body = Text()
            body.append(finding.detail + "\n", style="dim")
            body.append("example: " + finding.example + "\n")
            body.append("→ " + finding.advice)
            # indented, so wrapped lines stay under their finding
            console.print(Padding(body, (0, 0, 1, 8), expand=False))


@click.command("check")
@click.argument("teacher")
@click.argument("student")
@click.option("--data", "data", type=click.Path(), metavar="PATH",
              help="Run the text-driven checks on your data: .jsonl/.json (one object per line, or an array), "
                   "plain text (one text per line), .parquet, or a saved dataset folder; .gz works too. Without "
                   "it, built-in probe texts are used.")
@click.option("--field", default=None, metavar="NAME",
              help="The field or column holding the text (default: text, else a chat 'messages' list, rendered as "
                   "'role: content' lines).")
@click.option("--prompt-field", default=None, metavar="NAME",
              help="Build each text from a prompt field and --response-field (JSONL).")
@click.option("--response-field", default=None, metavar="NAME", help="The response field (with --prompt-field).")
@click.option("--split-paragraphs", is_flag=True,
              help="Plain text data: one text per paragraph (blank-line separated) instead of per line.")
@click.option("--split", default=None, metavar="NAME", help="The split of a saved DatasetDict (default: train).")
@click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N", help="Use at most N texts of --data.")
@click.option("--strict", is_flag=True,
              help="Exit 5 when any finding is an error; stop at the first malformed data line (exit 2) instead of "
                   "skipping it.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the findings as a JSON list (kind, severity, title, detail, example, advice, data).")
@click.option("--indent", type=click.IntRange(min=0), default=None, help="Indent the JSON output.")
@output_options((".json",), "the JSON list of findings")
@cache_option
@quiet_option
@click.pass_context
@guard
def check_command(ctx, teacher, student, data, field, prompt_field, response_field, split_paragraphs, split, limit,
                  strict, as_json, indent, output, overwrite, cache_dir):
    """Preflight checks for distilling TEACHER into STUDENT: what will break before you train.

    BOS/EOS asymmetry, characters split across byte tokens, decode round trip on each side, digit and whitespace
    runs, special tokens and chat templates with a suggested mapping, vocab_size against len(tokenizer) and the
    model's embedding rows, padding, vocabulary overlap and tokens that can never align 1:1. Each finding has a
    severity (error, warning, info), an example of real tokens and advice. With --data the text-driven checks
    measure your data.
    """
    from ..errors import ExitCode, InputError

    # the output path and the data file are checked before any tokenizer loads
    check_output(output, (".json",), overwrite)
    if data is None and any(v is not None for v in (field, prompt_field, response_field, split)):
        raise click.UsageError("--field, --prompt-field, --response-field and --split apply to --data")
    if data is None and (split_paragraphs or limit is not None):
        raise click.UsageError("--split-paragraphs and --limit apply to --data")
    texts = None
    if data is not None:
        from ..data import read_texts
        from .common import stderr_console

        reader = read_texts(data, field=field, strict=strict, limit=limit, split_paragraphs=split_paragraphs,
                            prompt_field=prompt_field, response_field=response_field, split=split)
        texts = list(reader)
        message = reader.report.summary()
        if message:
            from rich.markup import escape

            stderr_console().print(f"[yellow]warning:[/] --data {escape(data)}: {escape(message)}")
        if not texts:
            raise InputError(f"--data {data} holds no non-empty text ({reader.report.records} records read); "
                             "check --field, or leave --data out to run on the probe texts")
    from ..checks import check_pair, findings_to_json, has_errors

    teacher_tok, student_tok = load_tokenizers((teacher, student), cache_dir)
    findings = check_pair(teacher_tok, student_tok, texts)
    document = findings_to_json(findings)
    if output is not None:
        from .common import write_or_echo

        write_or_echo(dumps(document, indent), output)
    if as_json:
        click.echo(dumps(document, indent))
    else:
        from .common import stdout_console

        render_findings(stdout_console(), findings, teacher, student)
    if strict and has_errors(findings):
        ctx.exit(int(ExitCode.FINDINGS))
