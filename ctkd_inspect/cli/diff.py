"""``ctkd-inspect diff`` (two alignments of one text) and ``ctkd-inspect vocab-diff`` (two vocabulary mappings).

``diff TEACHER STUDENT [TEXT] --engines A,B`` aligns the text with two engines on one pair; ``diff [TEACHER]
STUDENT [TEXT] --teachers A,B`` aligns it with one engine (``--engine``, default span) for two teachers of one
student. The first of the two is the reference ``a`` of :func:`ctkd_inspect.diff`. Engine options use the align
command's flags, generated from the engines' declarations; a flag goes to each of the two engines that declares it.
``--check`` exits 4 when the alignments differ (0 when not), as ``git diff --exit-code`` does.
"""

from __future__ import annotations

import click

from .common import (
    EngineCommand,
    cache_option,
    check_mapping_spec,
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


def _pair(value: str | None, flag: str, what: str) -> tuple[str, str] | None:
    """``"A,B"`` as two distinct non-empty names, or a usage error naming ``flag``."""
    if value is None:
        return None
    names = [name.strip() for name in value.split(",")]
    if len(names) != 2 or not all(names):
        raise click.BadParameter(f"name exactly two {what}, separated by a comma (got {value!r})", param_hint=flag)
    if names[0] == names[1]:
        raise click.BadParameter(f"name two different {what} (got {names[0]!r} twice)", param_hint=flag)
    return names[0], names[1]


def _positionals(args: tuple[str, ...], teachers: tuple[str, str] | None) -> tuple[str | None, str, str | None]:
    """(teacher, student, text) from the positional arguments (see the command's help for the rules)."""
    if teachers is None:
        if len(args) not in (2, 3):
            raise click.UsageError(f"with --engines, give TEACHER STUDENT [TEXT] ({len(args)} arguments given)")
        return args[0], args[1], args[2] if len(args) == 3 else None
    if len(args) == 3:
        if args[0] not in teachers:
            raise click.UsageError(f"with --teachers {','.join(teachers)}, a first of three arguments names one of "
                                   f"those teachers ({args[0]!r} is neither); give [TEACHER] STUDENT [TEXT]")
        return args[0], args[1], args[2]
    if len(args) == 2:
        if args[0] in teachers:  # TEACHER STUDENT, the text from --file or stdin
            return args[0], args[1], None
        return None, args[0], args[1]
    if len(args) == 1:
        return None, args[0], None
    raise click.UsageError(f"with --teachers, give [TEACHER] STUDENT [TEXT] ({len(args)} arguments given)")


def _engine_options(ctx: click.Context, engines: tuple[str, ...]) -> dict[str, dict]:
    """The given engine flags, validated per engine: each flag goes to the engines (of these) that declare it."""
    from ..engines.base import engine_class
    from ..engines.options import options_of

    given = given_engine_options(ctx)
    declared = {engine: {option.name for option in options_of(engine_class(engine))} for engine in engines}
    for name in given:
        if not any(name in names for names in declared.values()):
            flag = "--" + name.replace("_", "-")
            raise click.UsageError(f"{flag} is not an option of the {' or the '.join(dict.fromkeys(engines))} "
                                   "engine (see ctkd-inspect diff --help)")
    return {engine: parse_engine_options(engine, {k: v for k, v in given.items() if k in declared[engine]})
            for engine in engines}


@click.command("diff", cls=EngineCommand,
               usage="diff TEACHER STUDENT [TEXT] --engines A,B | diff [TEACHER] STUDENT [TEXT] --teachers A,B "
                     "[OPTIONS]")
@click.argument("args", nargs=-1, metavar="[TEACHER] STUDENT [TEXT]")
@click.option("--engines", metavar="A,B", help="Compare two engines on one pair (a = A, the reference).")
@click.option("--teachers", metavar="A,B", help="Compare two teachers of one student (a = A, the reference).")
@click.option("--engine", "-e", default=None, metavar="NAME",
              help="With --teachers: the engine for both alignments (default span).")
@text_input_options
@click.option("--json", "as_json", is_flag=True,
              help="Print the diff as JSON: counts, boundary figures and sets, the disagreeing groups.")
@click.option("--indent", type=click.IntRange(min=0), default=None, help="Indent the JSON output.")
@output_options((".json",), "the JSON diff")
@click.option("--check", is_flag=True, help="Exit with status 4 when the alignments differ, 0 when they do not.")
@click.option("--no-special-tokens", is_flag=True, help="Tokenize without BOS/EOS/CLS/SEP.")
@click.option("--max-groups", type=click.IntRange(min=0), default=40, show_default=True,
              help="Rows of the disagreeing-group table to show (0 hides it); JSON always has every group.")
@cache_option
@quiet_option
@click.pass_context
@guard
def diff_command(ctx, args, engines, teachers, engine, file, max_text_bytes, as_json, indent, output, overwrite,
                 check, no_special_tokens, max_groups, cache_dir, **_engine_flags):
    """Compare two alignments of one text: two engines on one pair (--engines span,mined), or one engine and
    student with two teachers (--teachers llama2,llama3).

    \b
    Positionals:
      with --engines:   TEACHER STUDENT [TEXT]
      with --teachers:  [TEACHER] STUDENT [TEXT] — three arguments: the first must be one of the two teachers;
                        two: TEACHER STUDENT when the first is one of them (text from --file or stdin), else
                        STUDENT TEXT; one: STUDENT.

    A group of a agrees when b has a group with the same tokens; it is split when it is exactly the union of two
    or more groups of b, cross otherwise; a group of b that is exactly the union of two or more groups of a is a
    merge. Boundary precision and recall compare where each alignment cuts between groups. Disagreeing groups are
    highlighted; --check exits 4 when the alignments differ.
    """
    from ..api import align, check_request
    from ..diffs import diff
    from ..errors import ExitCode

    engine_pair = _pair(engines, "--engines", "engines")
    teacher_pair = _pair(teachers, "--teachers", "teachers")
    if (engine_pair is None) == (teacher_pair is None):
        raise click.UsageError("pass --engines A,B (two engines on one pair) or --teachers A,B (two teachers of one "
                               "student), exactly one of them")
    if engine_pair is not None and engine is not None:
        raise click.UsageError("--engine applies with --teachers; with --engines name both engines there")
    teacher, student, text = _positionals(args, teacher_pair)
    from ..engines.base import engine_names

    # each request: (teacher, engine); the first is the reference a
    if engine_pair is not None:
        requests, flag = [(teacher, name) for name in engine_pair], "--engines"
    else:
        requests, flag = [(name, engine or "span") for name in teacher_pair], "--engine"
    for _, name in requests:
        if name not in engine_names():
            raise click.BadParameter(f"unknown engine {name!r}; available: {', '.join(engine_names())}",
                                     param_hint=flag)
    # every option, the extras and the output path are checked before any tokenizer, model or download
    options = _engine_options(ctx, tuple(dict.fromkeys(name for _, name in requests)))
    needs_models = False
    for side_teacher, name in requests:
        _, _, models = check_request(side_teacher, student, name, options[name], style="cli")
        needs_models |= any(models.values())
    check_output(output, (".json",), overwrite)
    cleaned = read_text(text, file, max_text_bytes)
    names = list(dict.fromkeys([side_teacher for side_teacher, _ in requests] + [student]))
    tokenizers = dict(zip(names, load_tokenizers(names, cache_dir)))
    if needs_models:
        note("computing model signals (the first load of a GGUF model takes up to a minute; results are cached)")
    a, b = (align(tokenizers[side_teacher], tokenizers[student], cleaned, engine=name,
                  add_special_tokens=not no_special_tokens, **options[name]) for side_teacher, name in requests)
    result = diff(a, b)
    if output is not None:
        write_or_echo(dumps(result.to_dict(), indent), output)
    if as_json:
        write_or_echo(dumps(result.to_dict(), indent), None)
    else:
        from ..rich_view import render_diff

        render_diff(stdout_console(), a, b, result, max_groups=max_groups)
    if check and result.differs:
        ctx.exit(int(ExitCode.DIFFERENT))


@click.command("vocab-diff")
@click.argument("teacher")
@click.argument("student")
@click.option("--a", "spec_a", default="exact", show_default=True, metavar="SPEC",
              help="The reference mapping: exact, mined, exact:reference, mined:reference, or a file saved by "
                   "`ctkd-inspect vocab --out` (.json, .npz, .parquet).")
@click.option("--b", "spec_b", default="mined", show_default=True, metavar="SPEC", help="The other mapping, as --a.")
@click.option("--limit", type=click.IntRange(min=0), default=10, show_default=True,
              help="Examples per kind of difference and direction.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.option("--indent", type=click.IntRange(min=0), default=None, help="Indent the JSON output.")
@output_options((".json",), "the JSON comparison")
@click.option("--check", is_flag=True, help="Exit with status 4 when the mappings differ, 0 when they do not.")
@cache_option
@quiet_option
@click.pass_context
@guard
def vocab_diff_command(ctx, teacher, student, spec_a, spec_b, limit, as_json, indent, output, overwrite, check,
                       cache_dir):
    """Compare two vocabulary mappings of TEACHER and STUDENT: exact vs MinED, canonical vs reference, a saved
    file vs a fresh one.

    Per direction: source ids whose entries agree, differ, or exist in one mapping only, with examples, and the
    coverage each mapping gives. MinED mappings come from the cache (the first computation takes a minute or two).
    """
    from ..diffs import mapping_from_spec, vocab_diff
    from ..errors import ExitCode
    from ..vocab import vocabulary

    check_mapping_spec(spec_a, "--a")
    check_mapping_spec(spec_b, "--b")
    check_output(output, (".json",), overwrite)
    teacher_tok, student_tok = load_tokenizers((teacher, student), cache_dir)
    teacher_vocab, student_vocab = vocabulary(teacher_tok, teacher), vocabulary(student_tok, student)
    a = mapping_from_spec(spec_a, teacher_vocab, student_vocab, cache_dir=cache_dir, option="--a")
    b = mapping_from_spec(spec_b, teacher_vocab, student_vocab, cache_dir=cache_dir, option="--b")
    result = vocab_diff(a, b, teacher_vocab=teacher_vocab, student_vocab=student_vocab, limit=limit)
    if output is not None:
        write_or_echo(dumps(result.to_dict(), indent), output)
    if as_json:
        write_or_echo(dumps(result.to_dict(), indent), None)
    else:
        from ..rich_view import render_vocab_diff

        render_vocab_diff(stdout_console(), result)
    if check and result.differs:
        ctx.exit(int(ExitCode.DIFFERENT))
