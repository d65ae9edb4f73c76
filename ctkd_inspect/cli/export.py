"""``ctkd-inspect export TEACHER STUDENT``: alignments and vocabulary mappings in the formats peer trainers read."""

from __future__ import annotations

from pathlib import Path

import click

from .common import (
    EngineCommand,
    cache_option,
    check_mapping_spec,
    given_engine_options,
    guard,
    load_tokenizers,
    note,
    parse_engine_options,
    quiet_option,
    read_text,
    text_input_options,
)

#: --format -> the output suffixes it accepts (None: a folder, or a .json file)
FORMATS = {"gold": (".json",), "tokenkit": (".npz",), "dskd": None}


def _check_dskd_target(output: str, overwrite: bool) -> None:
    """Before any work: a ``.json`` file is checked like any output; a folder must be creatable, and the DSKD files
    already in it are replaced only with ``--overwrite``."""
    from ..errors import OutputError
    from ..exports import DSKD_FILES
    from ..outputs import check_output_path

    target = Path(output).expanduser()
    if target.suffix.lower() == ".json" and not target.is_dir():
        check_output_path(target, suffixes=(".json",), overwrite=overwrite, option="--output")
        return
    if target.exists() and not target.is_dir():
        raise OutputError(f"--output {output} is a file; name a folder (it receives {', '.join(DSKD_FILES)}) or a "
                          ".json file (the teacher→student map alone)")
    if target.is_dir():
        present = [name for name in DSKD_FILES if (target / name).exists()]
        if present and not overwrite:
            raise OutputError(f"--output {output} already holds {', '.join(present)}; pass --overwrite to replace "
                              "them (or choose another folder)")
        for name in DSKD_FILES:  # each file must be writable where it will go
            check_output_path(target / name, overwrite=True, option="--output")
        return
    parent = target.parent if str(target.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"--output {output}: {parent} is not a folder (a file has that name); choose another path")
    if not parent.is_dir():
        raise OutputError(f"--output {output}: the folder {parent} does not exist; create it first")
    import os

    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"--output {output}: the folder {parent} is not writable")


@click.command("export", cls=EngineCommand, usage="export TEACHER STUDENT [TEXT] --format FORMAT -o PATH [OPTIONS]")
@click.argument("teacher")
@click.argument("student")
@click.argument("text", required=False)
@text_input_options
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), required=True,
              help="gold: TRL GOLD's (student_groups, teacher_groups) for the text (.json); tokenkit: dense boolean "
                   "chunk matrices for the text (.npz); dskd: DSKD's id maps of a vocabulary mapping (a folder, or "
                   "a .json file for the teacher→student map alone).")
@click.option("--output", "-o", "output", required=True, metavar="PATH",
              help="Where to write (checked before any work, written atomically).")
@click.option("--overwrite", is_flag=True, help="Replace existing output files (otherwise they are refused).")
@click.option("--engine", "-e", default="span", show_default=True, metavar="NAME",
              help="Alignment engine for gold and tokenkit (span, mined, cdm, softdtw, ...).")
@click.option("--no-special-tokens", is_flag=True,
              help="Tokenize without BOS/EOS/CLS/SEP (GOLD encodes completions this way).")
@click.option("--positions", type=click.Choice(["tokens", "non-special"]), default="tokens", show_default=True,
              help="gold: index the full token lists, or the lists with special tokens removed.")
@click.option("--mapping", default=None, metavar="SPEC",
              help="dskd: exact, mined, exact:reference, mined:reference, or a mapping file saved by "
                   "`ctkd-inspect vocab --out`.")
@cache_option
@quiet_option
@click.pass_context
@guard
def export_command(ctx, teacher, student, text, file, max_text_bytes, fmt, output, overwrite, engine,
                   no_special_tokens, positions, mapping, cache_dir, **_engine_flags):
    """Export what peer trainers consume: TRL GOLD's groups or tokenkit's alignment matrices for one text, or
    DSKD's id-map JSON for a vocabulary mapping.

    \b
    Examples:
      ctkd-inspect export llama3 gemma2 "The café costs 3.50€" --format gold -o groups.json --no-special-tokens
      ctkd-inspect export llama3 gemma2 --file text.txt --format tokenkit -o matrices.npz
      ctkd-inspect export llama3 gemma2 --format dskd --mapping mined -o vocab_alignment/
    """
    from ..outputs import check_output_path

    engine_flags = given_engine_options(ctx)
    if fmt == "dskd":
        if text is not None or file is not None:
            raise click.UsageError("--format dskd exports a vocabulary mapping; it takes no TEXT or --file")
        if engine != "span" or engine_flags or no_special_tokens or positions != "tokens":
            raise click.UsageError("--engine, engine options, --no-special-tokens and --positions apply to --format "
                                   "gold and tokenkit")
        if mapping is None:
            raise click.UsageError("--format dskd needs --mapping (exact, mined, or a saved mapping file)")
        check_mapping_spec(mapping, "--mapping")
        _check_dskd_target(output, overwrite)
        from ..diffs import mapping_from_spec
        from ..exports import write_dskd_mapping
        from ..vocab import vocabulary

        teacher_tok, student_tok = load_tokenizers((teacher, student), cache_dir)
        teacher_vocab, student_vocab = vocabulary(teacher_tok, teacher), vocabulary(student_tok, student)
        chosen = mapping_from_spec(mapping, teacher_vocab, student_vocab, cache_dir=cache_dir, option="--mapping")
        written = write_dskd_mapping(chosen, output)
        coverage = chosen.coverage()["teacher"]
        note(f"{chosen.kind} mapping ({coverage['mapped']:,} of {coverage['vocab']:,} {teacher} ids mapped) written "
             f"to {', '.join(str(p) for p in written)}")
        unmapped = int((chosen.teacher_to_student < 0).sum())
        if unmapped:
            from .common import stderr_console

            # DSKD inverts the map by value, so every -1 becomes a student id of -1: the last student id
            stderr_console().print(
                f"[yellow]warning:[/] {unmapped:,} of {coverage['vocab']:,} {teacher} ids have no {student} target "
                "and are written as -1. DSKD has no value for 'no target': it inverts the map into student→teacher "
                "pairs, and -1 then indexes the last student id. Mask those teacher ids, or map them before "
                "training (--mapping mined maps every id but the special ones).")
        return
    if mapping is not None:
        raise click.UsageError("--mapping applies to --format dskd")
    if fmt == "tokenkit" and positions != "tokens":
        raise click.UsageError("--positions applies to --format gold")
    from ..api import align, check_request

    # options, the output path and the text are checked before any tokenizer, model or download
    options = parse_engine_options(engine, engine_flags)
    check_request(teacher, student, engine, options, style="cli")
    check_output_path(output, suffixes=FORMATS[fmt], overwrite=overwrite, option="--output")
    cleaned = read_text(text, file, max_text_bytes)
    teacher_tok, student_tok = load_tokenizers((teacher, student), cache_dir)
    result = align(teacher_tok, student_tok, cleaned, engine=engine, add_special_tokens=not no_special_tokens,
                   **options)
    if fmt == "gold":
        from ..exports import write_gold_groups

        write_gold_groups(result, output, positions=positions)
        note(f"{len(result.table)} GOLD group pairs (student first) written to {output}")
    else:
        from ..exports import write_tokenkit_matrices

        write_tokenkit_matrices(result, output)
        chunks = int(((result.table.teacher_sizes > 0) & (result.table.student_sizes > 0)).sum())
        note(f"tokenkit alignment matrices ({len(result.teacher)} × {chunks} teacher, {len(result.student)} × "
             f"{chunks} student) written to {output}")
