"""`ctkd-inspect diff` and `ctkd-inspect vocab-diff` as a user runs them: views, JSON, --check exit codes, the
positional rules of --teachers, usage errors (exit 2), unresolvable tokenizers (exit 3), outputs, no tracebacks."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ctkd_inspect import align, diff, load_tokenizer
from ctkd_inspect.cli import main
from ctkd_inspect.diffs import vocab_diff
from ctkd_inspect.vocab import exact_mapping, vocabulary

TEXT = "The café costs 3.50€ 🦙"


def run(*args, stdin=None):
    result = CliRunner().invoke(main, list(args), input=stdin, prog_name="ctkd-inspect")
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    return result


def as_json(result) -> dict:
    return json.loads(result.stdout)


# -- diff --engines ---------------------------------------------------------------------------------------------


def test_engines_view_highlights_the_disagreeing_groups():
    out = run("diff", "llama3", "gemma2", TEXT, "--engines", "span,mined")
    assert out.exit_code == 0, out.output
    assert "a  span · llama3 → gemma2" in out.stdout and "b  mined · llama3 → gemma2" in out.stdout
    # off a terminal the view is plain: disagreeing cells are marked «…»; "50" is one span group with 5 0
    assert "«50»" in out.stdout and "split" in out.stdout and "boundaries" in out.stdout


def test_engines_json_is_the_diff_of_the_two_alignments():
    out = run("diff", "llama3", "gemma2", TEXT, "--engines", "span,mined", "--json")
    assert out.exit_code == 0, out.output
    data = as_json(out)
    expected = diff(align("llama3", "gemma2", TEXT), align("llama3", "gemma2", TEXT, engine="mined")).to_dict()
    assert data == json.loads(json.dumps(expected))
    assert {"agree", "split", "merge", "cross", "boundary_precision", "boundary_recall", "boundary_f1",
            "disagreeing", "differs"} <= set(data)
    assert data["a"]["engine"] == "span" and data["b"]["engine"] == "mined"
    assert data["agree"] + data["split"] + data["cross"] == data["groups"]["a"]


def test_check_exit_codes():
    assert run("diff", "llama3", "gemma2", TEXT, "--engines", "span,mined", "--check").exit_code == 4
    differs = run("diff", "llama3", "gemma2", TEXT, "--engines", "span,mined", "--check", "--json")
    assert differs.exit_code == 4 and as_json(differs)["differs"] is True
    same = run("diff", "llama3", "gemma2", "The cat sat on the mat.", "--engines", "span,mined", "--check",
               "--json")
    assert same.exit_code == 0 and as_json(same)["differs"] is False
    assert as_json(same)["boundary_f1"] == 1.0
    # without --check a difference is not an error
    assert run("diff", "llama3", "gemma2", TEXT, "--engines", "span,mined", "--json").exit_code == 0


def test_engine_flags_go_to_the_engines_that_declare_them():
    out = run("diff", "llama2", "gpt2", TEXT, "--engines", "span,mined", "--mode", "reference", "--json")
    assert out.exit_code == 0, out.output
    reference = diff(align("llama2", "gpt2", TEXT), align("llama2", "gpt2", TEXT, engine="mined", mode="reference"))
    canonical = diff(align("llama2", "gpt2", TEXT), align("llama2", "gpt2", TEXT, engine="mined"))
    assert as_json(out) == json.loads(json.dumps(reference.to_dict()))
    assert reference.to_dict() != canonical.to_dict()  # the flag made a difference that the test can see
    bad = run("diff", "llama3", "gemma2", TEXT, "--engines", "span,mined", "--gamma", "0.5")
    assert bad.exit_code == 2 and "--gamma is not an option of the span or the mined engine" in bad.stderr
    bad = run("diff", "llama3", "gemma2", TEXT, "--engines", "span,mined", "--mode", "sideways")
    assert bad.exit_code == 2 and "--mode" in bad.stderr


# -- diff --teachers --------------------------------------------------------------------------------------------


def test_teachers_with_every_positional_form():
    expected = json.loads(json.dumps(diff(align("llama2", "gemma2", TEXT), align("llama3", "gemma2", TEXT)).to_dict()))
    three = run("diff", "llama3", "gemma2", TEXT, "--teachers", "llama2,llama3", "--json")
    assert three.exit_code == 0, three.output
    assert as_json(three) == expected  # a is the first of --teachers, whichever TEACHER names
    assert as_json(three)["boundaries"]["basis"] == {"teacher": "offset", "student": "index"}
    student_text = run("diff", "gemma2", TEXT, "--teachers", "llama2,llama3", "--json")
    assert as_json(student_text) == expected
    teacher_student = run("diff", "llama2", "gemma2", "--teachers", "llama2,llama3", "--json", stdin=TEXT)
    assert as_json(teacher_student) == expected
    student_only = run("diff", "gemma2", "--teachers", "llama2,llama3", "--json", stdin=TEXT)
    assert as_json(student_only) == expected
    view = run("diff", "gemma2", TEXT, "--teachers", "llama2,llama3")
    assert "teacher llama2 / llama3" in view.stdout and "a  span · llama2 → gemma2" in view.stdout


def test_teachers_check_and_engine():
    # gpt2 and llama3 cut "hello world" into the same pieces ("hello", "Ġworld"): the same groups
    same = run("diff", "gemma2", "hello world", "--teachers", "gpt2,llama3", "--check")
    assert same.exit_code == 0, same.output
    assert run("diff", "gemma2", TEXT, "--teachers", "llama2,llama3", "--check").exit_code == 4
    mined = run("diff", "gemma2", TEXT, "--teachers", "llama2,llama3", "--engine", "mined", "--json")
    assert mined.exit_code == 0 and as_json(mined)["a"]["engine"] == "mined" == as_json(mined)["b"]["engine"]


@pytest.mark.parametrize(("args", "message"), [
    (["llama3", "gemma2", TEXT], "pass --engines A,B"),
    (["llama3", "gemma2", TEXT, "--engines", "span,mined", "--teachers", "llama2,llama3"], "exactly one of them"),
    (["llama3", "gemma2", TEXT, "--engines", "span"], "name exactly two engines"),
    (["llama3", "gemma2", TEXT, "--engines", "span,mined,cdm"], "name exactly two engines"),
    (["llama3", "gemma2", TEXT, "--engines", "span,span"], "two different engines"),
    (["llama3", "gemma2", TEXT, "--engines", "span,fuzzy"], "unknown engine 'fuzzy'"),
    (["llama3", "gemma2", TEXT, "--engines", "span,mined", "--engine", "cdm"], "--engine applies with --teachers"),
    (["llama3", TEXT, "x", "y", "--engines", "span,mined"], "TEACHER STUDENT [TEXT] (4 arguments given)"),
    (["gemma2", TEXT, "--engines", "span,mined"], "the text is empty"),  # TEACHER STUDENT; stdin is empty
    (["gpt2", "gemma2", TEXT, "--teachers", "llama2,llama3"], "names one of those teachers ('gpt2' is neither)"),
    (["--teachers", "llama2,llama3"], "(0 arguments given)"),
    (["gemma2", TEXT, "--teachers", "llama2"], "name exactly two teachers"),
    (["gemma2", TEXT, "--teachers", "llama2,llama3", "--engine", "fuzzy"], "unknown engine 'fuzzy'"),
    (["llama3", "gemma2", "", "--engines", "span,mined"], "the text is empty"),
])
def test_usage_errors_exit_2_with_a_message(args, message):
    out = run("diff", *args)
    assert out.exit_code == 2, out.output
    if message is not None:
        assert message in out.stderr
    assert out.stdout == ""


def test_unresolvable_tokenizer_exits_3():
    out = run("diff", "no-such-tokenizer-xyz", "gemma2", TEXT, "--engines", "span,mined")
    assert out.exit_code == 3 and "no-such-tokenizer-xyz" in out.stderr


def test_output_file_is_checked_first_and_written_atomically(tmp_path):
    path = tmp_path / "diff.json"
    out = run("diff", "llama3", "gemma2", TEXT, "--engines", "span,mined", "-o", str(path), "--check")
    assert out.exit_code == 4
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["differs"] is True and "a  span" in out.stdout  # the view still goes to stdout
    refused = run("diff", "llama3", "gemma2", TEXT, "--engines", "span,mined", "-o", str(path))
    assert refused.exit_code == 2 and "--overwrite" in refused.stderr
    replaced = run("diff", "llama3", "gemma2", "The cat", "--engines", "span,mined", "-o", str(path), "--overwrite",
                   "--json")
    assert replaced.exit_code == 0 and json.loads(path.read_text(encoding="utf-8")) == as_json(replaced)
    wrong = run("diff", "llama3", "gemma2", TEXT, "--engines", "span,mined", "-o", str(tmp_path / "diff.txt"))
    assert wrong.exit_code == 2 and "unknown extension" in wrong.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diff.json"]


def test_help_lists_the_commands():
    out = run("--help")
    assert "diff" in out.stdout and "vocab-diff" in out.stdout
    out = run("diff", "--help")
    assert out.exit_code == 0 and "--engines" in out.stdout and "--teachers" in out.stdout
    assert "--mode" in out.stdout  # engine flags generated from the declarations
    # the usage line names the command, in the help and above a usage error
    usage = "Usage: ctkd-inspect diff TEACHER STUDENT [TEXT] --engines A,B | diff [TEACHER] STUDENT [TEXT] --teachers"
    assert out.stdout.startswith(usage)
    assert run("diff", "llama3", "gemma2", "x").stderr.startswith(usage)


# -- vocab-diff -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llama2_gpt2():
    teacher = vocabulary(load_tokenizer("llama2"), "llama2")
    student = vocabulary(load_tokenizer("gpt2"), "gpt2")
    return teacher, student


def test_vocab_diff_json_view_and_check(llama2_gpt2):
    teacher, student = llama2_gpt2
    out = run("vocab-diff", "llama2", "gpt2", "--a", "exact", "--b", "exact:reference", "--json", "--limit", "3")
    assert out.exit_code == 0, out.output
    data = as_json(out)
    expected = vocab_diff(exact_mapping(teacher, student), exact_mapping(teacher, student, "reference"),
                          teacher_vocab=teacher, student_vocab=student, limit=3).to_dict()
    assert data == json.loads(json.dumps(expected))
    t2s = data["directions"]["teacher_to_student"]
    assert t2s["agree"] + t2s["differ"] + t2s["only_a"] + t2s["only_b"] + t2s["neither"] == len(teacher)
    assert len(t2s["examples"]["only_a"]) == 3 and data["coverage"]["a"]["teacher"]["mapped"] > 0
    view = run("vocab-diff", "llama2", "gpt2", "--a", "exact", "--b", "exact:reference")
    assert "a  exact (canonical) · llama2 → gpt2" in view.stdout and "only a" in view.stdout
    assert run("vocab-diff", "llama2", "gpt2", "--a", "exact", "--b", "exact:reference", "--check").exit_code == 4
    assert run("vocab-diff", "llama2", "gpt2", "--a", "exact", "--b", "exact", "--check").exit_code == 0


def test_vocab_diff_saved_file_against_a_fresh_mapping(tmp_path, llama2_gpt2):
    teacher, student = llama2_gpt2
    saved = exact_mapping(teacher, student).save(tmp_path / "exact.npz")
    out = run("vocab-diff", "llama2", "gpt2", "--a", str(saved), "--b", "exact", "--json", "--check")
    assert out.exit_code == 0 and as_json(out)["differs"] is False
    other = run("vocab-diff", "llama3", "gpt2", "--a", str(saved), "--b", "exact")
    assert other.exit_code == 2 and "--a" in other.stderr and "not llama3" in other.stderr
    missing = run("vocab-diff", "llama2", "gpt2", "--a", str(tmp_path / "none.json"))
    assert missing.exit_code == 2 and "no such mapping file" in missing.stderr
    unknown = run("vocab-diff", "llama2", "gpt2", "--b", "fuzzy")
    assert unknown.exit_code == 2 and "'fuzzy' is not a mapping" in unknown.stderr


def test_vocab_diff_alias_compares_the_mapping_vocab_computes(tmp_path, llama2_gpt2):
    teacher, student = llama2_gpt2
    alias = run("vocab", "llama2", "gpt2", "--exact-only", "--mode", "reference", "--diff", "exact", "--json",
                "--limit", "2")
    assert alias.exit_code == 0, alias.output
    # a is the mapping vocab computes (exact, reference mode, with --exact-only), b the spec
    expected = vocab_diff(exact_mapping(teacher, student, "reference"), exact_mapping(teacher, student),
                          teacher_vocab=teacher, student_vocab=student, limit=2).to_dict()
    assert as_json(alias) == json.loads(json.dumps(expected))
    assert as_json(alias)["a"]["mode"] == "reference" and as_json(alias)["b"]["mode"] == "canonical"
    view = run("vocab", "llama2", "gpt2", "--exact-only", "--diff", "exact:reference")
    assert view.exit_code == 0 and "a  exact (canonical) · llama2 → gpt2" in view.stdout
    assert "b  exact (reference) · llama2 → gpt2" in view.stdout and "only a" in view.stdout
    # a saved file: the same mapping, so nothing differs; --out still writes the computed mapping
    saved = exact_mapping(teacher, student).save(tmp_path / "exact.npz")
    same = run("vocab", "llama2", "gpt2", "--exact-only", "--diff", str(saved), "--json", "--out",
               str(tmp_path / "again.json"))
    assert same.exit_code == 0 and as_json(same)["differs"] is False and (tmp_path / "again.json").is_file()
    # a bad spec is refused before any tokenizer is looked up (an unknown one would exit 3)
    bad = run("vocab", "no-such-tokenizer", "gpt2", "--diff", "fuzzy")
    assert bad.exit_code == 2 and "--diff" in bad.stderr and "'fuzzy' is not a mapping" in bad.stderr
