"""``ctkd-inspect targets TEACHER STUDENT``: the statistics the CTKD papers compare methods by, computed from the
targets each method's loss builds, over a data set, with the two models — before any training.

The work is :func:`ctkd_inspect.losses.statistics.target_statistics`.
"""

from __future__ import annotations

import click

from .common import cache_option, dumps, guard, quiet_option, stdout_console

STATISTIC_LABELS = {"alignment_rate": "alignment rate", "topk_mapping_coverage": "top-K coverage",
                    "onehot_fallback_rate": "one-hot fallback", "top1_accuracy": "Top-1",
                    "top1_accuracy_teacher": "Top-1 (teacher targets)"}


def _methods(ctx, param, value: str) -> tuple[str, ...]:
    from ..losses.statistics import STATISTIC_METHODS

    methods = tuple(m.strip() for m in value.split(",") if m.strip())
    unknown = [m for m in methods if m not in STATISTIC_METHODS]
    if unknown or not methods:
        raise click.BadParameter(f"choose from {', '.join(STATISTIC_METHODS)} (comma-separated); got {value!r}")
    return methods


@click.command("targets")
@click.argument("teacher")
@click.argument("student")
@click.option("--data", type=click.Path(), metavar="FILE", help="The texts: JSONL (text, messages or "
              "--prompt-field/--response-field), JSON, plain text, Parquet or a dataset folder. Default: the offline "
              "llama.cpp corpus.")
@click.option("--field", metavar="NAME", help="The record field or column holding the text (default text, else "
              "messages).")
@click.option("--prompt-field", metavar="NAME", help="With --response-field: only the response is distilled, as "
              "in training (the statistics cover the response positions).")
@click.option("--response-field", metavar="NAME", help="See --prompt-field.")
@click.option("--methods", default="mined,cdm,sedi", show_default=True, callback=_methods, metavar="LIST",
              help="Methods to compare (mined, cdm, sedi), comma-separated.")
@click.option("--teacher-model", metavar="NAME", help="The teacher model (default: TEACHER's alias model).")
@click.option("--student-model", metavar="NAME", help="The student model (default: STUDENT's alias model).")
@click.option("--mode", type=click.Choice(["canonical", "reference"]), default="canonical", show_default=True,
              help="canonical fixes the published defects; reference reproduces the published algorithms.")
@click.option("--limit", type=click.IntRange(min=1), default=16, show_default=True, metavar="N",
              help="Use the first N texts.")
@click.option("--max-length", type=click.IntRange(min=2), default=128, show_default=True, metavar="N",
              help="Tokens per side per text (a longer response is cut at one character for both sides).")
@click.option("--batch-size", type=click.IntRange(min=1), default=2, show_default=True, metavar="N",
              help="Texts per forward pass.")
@click.option("--vocab-mapping", type=click.Choice(["mined", "exact"]), default="mined", show_default=True,
              help="MinED's vocabulary mapping (mined: the paper's, cached after the first run; exact: seconds).")
@click.option("--top-k", type=click.IntRange(min=1), default=100, show_default=True, metavar="K",
              help="K of CDM's and SeDi's candidates and of the coverage.")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
@cache_option
@quiet_option
@guard
def targets_command(teacher, student, data, field, prompt_field, response_field, methods, teacher_model,
                    student_model, mode, limit, max_length, batch_size, vocab_mapping, top_k, as_json, cache_dir):
    """Compare the targets of the distillation methods on your data: alignment rate, top-K mapping coverage,
    one-hot fallback rate and Top-1 accuracy (SeDi's) of MinED, CDM and SeDi, from the targets each loss really
    builds with TEACHER's and STUDENT's models (default: the aliases' models, e.g. gemma3 → smollm2).
    """
    from ..extras import require

    require("models", "ctkd-inspect targets")
    if (prompt_field is None) != (response_field is None):
        raise click.UsageError("give --prompt-field and --response-field together")
    if data is None:
        from ..sources.corpus import llama_cpp_corpus

        records = [text for text in llama_cpp_corpus() if text.strip()][:limit]
    else:
        from ..data import read_texts

        reader = read_texts(data, field=field, prompt_field=prompt_field, response_field=response_field,
                            limit=limit, separator="\n")
        records = list(reader.records())
    from ..losses.statistics import target_statistics

    result = target_statistics(records, teacher, student, methods=methods, teacher_model=teacher_model,
                               student_model=student_model, mode=mode, max_length=max_length,
                               batch_size=batch_size, vocab_mapping=vocab_mapping, top_k=top_k, cache_dir=cache_dir)
    if as_json:
        click.echo(dumps(result, indent=1))
        return
    from rich.table import Table

    table = Table(title=f"targets · {teacher} → {student} · {result['examples']} texts · {result['positions']:,} "
                        f"student positions · {mode}")
    table.add_column("method")
    for label in STATISTIC_LABELS.values():
        table.add_column(label, justify="right")
    for method, stats in result["methods"].items():
        table.add_row(method, *("n/a" if stats.get(key) is None else f"{stats[key]:.1%}"
                                for key in STATISTIC_LABELS))
    stdout_console().print(table)
