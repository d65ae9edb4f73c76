"""``ctkd-inspect vocab TEACHER STUDENT``: vocabulary mappings (exact, MinED) and their coverage."""

from __future__ import annotations

from pathlib import Path

import click

from .common import (
    cache_option,
    check_mapping_spec,
    dumps,
    guard,
    load_tokenizers,
    note,
    quiet_option,
    stdout_console,
)


@click.command("vocab")
@click.argument("teacher")
@click.argument("student")
@click.option("--mode", type=click.Choice(["canonical", "reference"]), default="canonical", show_default=True,
              help="canonical: compare canonical bytes (Ġ/▁/## and byte pieces normalised); reference: FuseLLM's "
                   "marker replacement on raw strings.")
@click.option("--exact-only", is_flag=True, help="Skip the MinED nearest-neighbour mapping (seconds instead of "
              "a minute or two the first time; MinED results are cached).")
@click.option("--limit", type=click.IntRange(min=0), default=15, show_default=True,
              help="Rows of closest non-exact pairs and of unmapped tokens to show.")
@click.option("--diff", "diff_spec", default=None, metavar="SPEC",
              help="Compare the mapping computed here (a: MinED, or exact with --exact-only, in --mode) with SPEC "
                   "(b): exact, mined, exact:reference, mined:reference, or a file saved by --out; prints what "
                   "`ctkd-inspect vocab-diff` prints (with --limit examples per kind).")
@click.option("--json", "as_json", is_flag=True, help="Print coverage and samples (with --diff: the comparison) as "
              "JSON.")
@click.option("--out", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write the mapping to FILE (.json, .npz, or .parquet with the parquet extra); checked before any "
                   "work, written atomically.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file (otherwise it is refused).")
@cache_option
@quiet_option
@guard
def vocab_command(teacher, student, mode, exact_only, limit, diff_spec, as_json, out, overwrite, cache_dir):
    """Map TEACHER's vocabulary onto STUDENT's: exact (canonical bytes) and MinED nearest by edit distance.

    Prints the coverage of both directions, the closest non-exact pairs and a sample of tokens without an exact
    match. With --diff SPEC, compares the mapping computed here with another one instead (as vocab-diff --a
    <this mapping> --b SPEC does).
    """
    if diff_spec is not None:
        check_mapping_spec(diff_spec, "--diff")
    if out is not None:
        from ..diffs import MAPPING_SUFFIXES
        from ..outputs import check_output_path

        check_output_path(out, suffixes=MAPPING_SUFFIXES, overwrite=overwrite, option="--out")
        if Path(out).suffix.lower() == ".parquet":
            from ..extras import require

            require("parquet", "--out with a .parquet file")
    from ..vocab import closest_non_exact, exact_mapping, mined_mapping, unmapped_sample, vocabulary

    teacher_tok, student_tok = load_tokenizers((teacher, student), cache_dir)
    teacher_vocab, student_vocab = vocabulary(teacher_tok, teacher), vocabulary(student_tok, student)
    exact = exact_mapping(teacher_vocab, student_vocab, mode)
    mined = None if exact_only else mined_mapping(teacher_vocab, student_vocab, mode, cache_dir=cache_dir)
    chosen = mined or exact
    if out:
        path = chosen.save(out, teacher_vocab, student_vocab)
        note(f"{chosen.kind} mapping written to {path}")
    if diff_spec is not None:
        from ..diffs import mapping_from_spec, vocab_diff

        other = mapping_from_spec(diff_spec, teacher_vocab, student_vocab, cache_dir=cache_dir, option="--diff")
        compared = vocab_diff(chosen, other, teacher_vocab=teacher_vocab, student_vocab=student_vocab, limit=limit)
        if as_json:
            click.echo(dumps(compared.to_dict(), indent=1))
            return
        from ..rich_view import render_vocab_diff

        render_vocab_diff(stdout_console(), compared)
        return
    report_data = {
        "teacher": teacher, "student": student, "mode": mode,
        "exact": exact.coverage(),
        "mined": mined.coverage() if mined else None,
        "closest_non_exact": closest_non_exact(mined, teacher_vocab, student_vocab, limit) if mined else [],
        "unmapped_exactly": unmapped_sample(exact, teacher_vocab, limit),
    }
    if as_json:
        click.echo(dumps(report_data, indent=1))
        return
    from ..rich_view import render_vocab_report

    render_vocab_report(stdout_console(), report_data)
