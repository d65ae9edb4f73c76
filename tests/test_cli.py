"""The ctkd-inspect command as a user runs it: output, JSON, input channels, exit codes, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from ctkd_inspect.cli import main

TEXT = "The café costs 3.50€ 🦙 — naïve\tcode: x+=1"


def run(*args, stdin=None):
    return CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)


def test_default_command_renders_ribbons_groups_and_metrics():
    out = run("llama3", "gemma2", TEXT)
    assert out.exit_code == 0, out.output
    assert "teacher llama3" in out.output and "student gemma2" in out.output
    assert "alignment rate" in out.output and "n:m" in out.output and "🦙×3" in out.output
    assert "⇥" in out.output  # the tab is visible


def test_json_is_the_schema_with_real_tokens():
    out = run("llama3", "gemma2", TEXT, "--json")
    assert out.exit_code == 0
    data = json.loads(out.stdout)
    assert data["teacher"]["tokens"][1]["token"] == "The" and data["student"]["tokens"][1]["token"] == "The"
    assert data["engine"] == "span" and 0 < data["metrics"]["alignment_rate"] < 1


def test_console_script_and_stdout_stderr_split(tmp_path):
    """The installed `ctkd-inspect` command: JSON alone on stdout, nothing on stderr on success."""
    exe = os.path.join(os.path.dirname(sys.executable), "ctkd-inspect")
    proc = subprocess.run([exe, "llama3", "gemma2", "hello world", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0
    json.loads(proc.stdout)
    assert proc.stderr == ""


# run in a child process as the command would be, reporting whether numba was imported by the time it exits
HI_WITHOUT_NUMBA = """
import atexit, sys
atexit.register(lambda: print("numba imported:", "numba" in sys.modules, file=sys.stderr))
from ctkd_inspect.cli import main
main(["llama3", "gemma2", "hi", "--json"])
"""


def test_hi_needs_no_numba_and_gives_the_compiled_kernels_alignment(monkeypatch):
    """`ctkd-inspect llama3 gemma2 hi` aligns with the numpy form of the span sweep, so numba (half a second to
    import and load) is never imported; its JSON is the alignment the compiled kernel gives."""
    from ctkd_inspect import align
    from ctkd_inspect.engines import span

    proc = subprocess.run([sys.executable, "-c", HI_WITHOUT_NUMBA], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "numba imported: False"
    monkeypatch.setattr(span, "ONE_TEXT_BUDGET_S", 0.0)  # here, every span_groups call takes the compiled kernel
    expected = align("llama3", "gemma2", "hi").to_dict()
    assert span._KERNEL is not None
    assert json.loads(proc.stdout) == expected
    assert expected["groups"] == [{"teacher": [1], "student": [1], "shape": "1:1", "start": 0, "end": 2,
                                   "exact": True}]


def test_console_script_writes_long_output_whole_and_python_m_too(tmp_path):
    """The command ends without the interpreter's teardown after a successful align: everything written before
    reaches the pipe, also when it is far longer than the pipe's buffer; `python -m ctkd_inspect` does the same."""
    from ctkd_inspect import align

    text = " ".join(f"word{i} café 🦙 {i * 7}" for i in range(3000))
    path = tmp_path / "long.txt"
    path.write_text(text, encoding="utf-8")
    expected = align("llama3", "gemma2", text).to_dict()
    exe = os.path.join(os.path.dirname(sys.executable), "ctkd-inspect")
    for command in ([exe], [sys.executable, "-m", "ctkd_inspect"]):
        proc = subprocess.run([*command, "llama3", "gemma2", "--file", str(path), "--json"], capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        assert len(proc.stdout) > 1_000_000
        assert json.loads(proc.stdout) == expected


FAST_EXIT_PROBE = """
import atexit, sys, threading
from ctkd_inspect.cli.common import allow_fast_exit, fast_exit
atexit.register(lambda: print("atexit ran"))
sys.stdout.write("x" * 200000)
if sys.argv[1] == "thread":
    release = threading.Event()
    threading.Thread(target=release.wait).start()
    atexit.register(release.set)
if sys.argv[1] != "not-allowed":
    allow_fast_exit()
fast_exit()
sys.stdout.write("returned")
if sys.argv[1] == "thread":
    release.set()
"""


@pytest.mark.parametrize(("case", "tail"), [("allowed", "atexit ran\n"), ("not-allowed", "returnedatexit ran\n"),
                                            ("thread", "returnedatexit ran\n")])
def test_fast_exit_runs_the_atexit_handlers_and_only_ends_the_process_when_nothing_needs_it(case, tail):
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE")}  # a tracer keeps the normal exit
    proc = subprocess.run([sys.executable, "-c", FAST_EXIT_PROBE, case], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "x" * 200000 + tail


@pytest.mark.parametrize(("main_module", "expected"), [
    ({"__file__": "/venv/bin/ctkd-inspect", "__spec__": None}, True),
    ({"__file__": "/somewhere/ctkd_inspect/__main__.py", "__spec__": "ctkd_inspect.__main__"}, True),
    ({"__file__": "/venv/bin/pytest", "__spec__": None}, False),
    ({"__file__": "/x/other/__main__.py", "__spec__": "other.__main__"}, False),
    ({"__spec__": None}, False),  # python -c
])
def test_only_the_command_itself_may_end_without_teardown(monkeypatch, main_module, expected):
    import importlib.machinery
    import types

    from ctkd_inspect.cli import _started_as_the_command

    module = types.ModuleType("__main__")
    spec = main_module["__spec__"]
    module.__spec__ = importlib.machinery.ModuleSpec(spec, None) if spec else None
    if "__file__" in main_module:
        module.__file__ = main_module["__file__"]
    monkeypatch.setitem(sys.modules, "__main__", module)
    assert _started_as_the_command() is expected


def test_text_from_stdin_and_file(tmp_path):
    assert json.loads(run("llama3", "gemma2", "--json", stdin="from stdin").stdout)["text"] == "from stdin"
    path = tmp_path / "text.txt"
    path.write_bytes(b"from a file\n" + b"\xff")  # one undecodable byte
    out = CliRunner().invoke(main, ["llama3", "gemma2", "--file", str(path), "--json"])
    assert out.exit_code == 0
    assert json.loads(out.stdout)["text"] == "from a file\n\ufffd"
    assert "replaced by U+FFFD" in out.stderr


@pytest.mark.parametrize(("args", "code", "message"), [
    (["lama3", "gemma2", "x"], 3, "Did you mean: llama3"),
    (["./missing/tok.json", "gemma2", "x"], 3, "no such file"),
    (["llama3", "gemma2", ""], 2, "empty"),
    (["llama3", "gemma2", "x", "--engine", "nope"], 2, "unknown engine"),
    (["llama3", "gemma2", "x", "--file", "also.txt"], 2, "not both"),
    (["llama3"], 2, "Missing argument"),
    (["fetch"], 2, "pass --all"),
    (["fetch", "nonsense-alias"], 3, "neither an alias nor an asset"),
])
def test_bad_input_gets_a_message_and_an_exit_code(args, code, message):
    out = CliRunner().invoke(main, args)
    assert out.exit_code == code, out.output
    assert message in out.output
    assert "Traceback" not in out.output


def test_corrupt_tokenizer_file_exit_code_3(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text('{"model": {"type": "BPE", "vocab": {')
    out = CliRunner().invoke(main, [str(path), "gemma2", "x"])
    assert out.exit_code == 3 and "could not load a tokenizer" in out.output


@pytest.mark.parametrize("text", ["   ", "\x00\x07 NUL and bell", "שלום עולם", "e\u0301 combining",
                                  "👩‍👩‍👧‍👦 family", "🦙" * 3])
def test_hard_texts_render_without_errors(text):
    out = run("llama3", "bert", text)
    assert out.exit_code == 0
    assert "alignment rate" in out.output


def test_long_text_table_is_capped_but_json_is_complete():
    text = TEXT * 3000  # ~120k characters
    out = run("llama3", "gemma2", text, "--max-groups", "5")
    assert out.exit_code == 0 and "more groups" in out.output
    data = json.loads(run("llama3", "gemma2", text, "--json").stdout)
    assert data["metrics"]["groups"] == len(data["groups"]) > 30000


def test_no_special_tokens_flag():
    data = json.loads(run("llama3", "gemma2", "hi", "--json", "--no-special-tokens").stdout)
    assert not any(t["special"] for t in data["teacher"]["tokens"] + data["student"]["tokens"])


def test_tokenizers_and_fetch_commands():
    out = run("tokenizers", "--json")
    rows = json.loads(out.stdout)
    assert {"llama3", "gemma2", "bert", "xlm-r"} <= {r["alias"] for r in rows}
    assert all(r["cached"] for r in rows if r["alias"] in ("llama3", "gemma2"))
    assert "meta-llama/Meta-Llama-3-8B" in run("tokenizers").output
    out = CliRunner().invoke(main, ["fetch", "llama3", "gemma2"])
    assert out.exit_code == 0 and "llama-models" in out.output and "draive" in out.output
    out = CliRunner().invoke(main, ["fetch", "llama3", "--verify"])
    assert out.exit_code == 0 and "ok" in out.output


def test_help_and_version():
    assert "Examples" in run("--help").output
    assert run("--version").output.startswith("ctkd-inspect")
    usage = CliRunner().invoke(main, ["--help"], prog_name="ctkd-inspect").output.splitlines()[:2]
    assert usage == ["Usage: ctkd-inspect TEACHER STUDENT [TEXT] [OPTIONS]", "       ctkd-inspect COMMAND [ARGS]..."]
    out = CliRunner().invoke(main, ["llama3"], prog_name="ctkd-inspect")
    assert out.exit_code == 2 and "Usage: ctkd-inspect TEACHER STUDENT" in out.output


def test_an_unexpected_error_is_a_message_not_a_traceback(monkeypatch):
    from ctkd_inspect.engines import span

    def broken(*args, **kwargs):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(span.SpanEngine, "align", broken)
    out = CliRunner().invoke(main, ["llama3", "gemma2", "hi"])
    assert out.exit_code == 1 and "unexpected RuntimeError: kernel exploded" in out.output
    assert "Traceback" not in out.output and "CTKD_INSPECT_DEBUG" in out.output


def test_warnings_are_one_line_on_stderr(monkeypatch):
    import warnings

    from ctkd_inspect import api
    from ctkd_inspect.sources import cache

    original = api.align

    def warn_then_align(*args, **kwargs):
        warnings.warn("the cache is read-only", cache.CacheWarning, stacklevel=1)
        return original(*args, **kwargs)

    monkeypatch.setattr(api, "align", warn_then_align)
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # restored after the test
    out = CliRunner().invoke(main, ["llama3", "gemma2", "hi", "--json"])
    assert out.exit_code == 0
    assert "warning: the cache is read-only" in out.stderr and "CacheWarning" not in out.stderr
    json.loads(out.stdout)


def test_vocab_mapping_option(tmp_path):
    path = tmp_path / "exact.parquet"
    assert CliRunner().invoke(main, ["vocab", "llama3", "gemma2", "--exact-only", "--out", str(path)]).exit_code == 0
    out = run("llama3", "gemma2", TEXT, "--engine", "mined", "--vocab-mapping", str(path), "--json")
    metrics = json.loads(out.stdout)["metrics"]
    assert metrics["onehot_fallback_basis"] == "mapping" and 0 < metrics["onehot_fallback_rate"] < 1
    out = CliRunner().invoke(main, ["gpt2", "gemma2", "x", "--engine", "mined", "--vocab-mapping", str(path)])
    assert out.exit_code == 2 and "not these tokenizers" in out.output
    out = CliRunner().invoke(main, ["llama3", "gemma2", "x", "--vocab-mapping", str(path)])
    assert out.exit_code == 2 and "--vocab-mapping applies to --engine mined or --engine cdm" in out.output
    missing = str(tmp_path / "no.npz")
    out = CliRunner().invoke(main, ["llama3", "gemma2", "x", "-e", "mined", "--vocab-mapping", missing])
    assert out.exit_code == 2 and "no such mapping file" in out.output
