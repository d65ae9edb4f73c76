"""`ctkd-inspect check`: the readable report, --json, --strict exit codes, --data input and its bad cases, and the
output file checked before any work."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from ctkd_inspect.cli import main


def run(*args):
    return CliRunner().invoke(main, ["check", *args], catch_exceptions=False)


def test_llama3_gemma2_report_strict_passes_and_writes_the_json(tmp_path):
    output = tmp_path / "findings.json"
    out = run("llama3", "gemma2", "--strict", "-o", str(output))
    # no error-level finding for this pair: --strict exits 0
    assert out.exit_code == 0, out.output
    text = out.stdout
    assert "check teacher llama3 → student gemma2: 0 errors" in text
    # the real differences of the pair, with their real tokens
    assert "[123][45]" in text and "[1][2][3][4][5]" in text  # digit runs
    assert "[x][␣␣␣][␣y]" in text and "[x][␣␣␣␣][y]" in text  # whitespace runs
    assert "<|begin_of_text|> ↔ <bos>" in text and "<|eot_id|> ↔ <end_of_turn>" in text  # special tokens
    assert "85,699" in text and "65,728" in text  # vocabulary overlap
    assert text.index("WARNING") < text.index("INFO")  # grouped by severity, most severe first
    findings = json.loads(output.read_text(encoding="utf-8"))
    assert not [f for f in findings if f["severity"] == "error"]
    assert {f["kind"] for f in findings} >= {"bos-eos", "digit-runs", "never-1to1"}
    assert not [p for p in os.listdir(tmp_path) if p != "findings.json"]  # no temporary file left behind


def test_gemma3_smollm2_json_and_strict_exit_code():
    out = run("gemma3", "smollm2", "--json", "--strict")
    # Gemma 3 adds <bos>, SmolLM2 nothing: an error-level finding, so --strict exits 5
    assert out.exit_code == 5
    findings = json.loads(out.stdout)
    errors = [f for f in findings if f["severity"] == "error"]
    assert [f["kind"] for f in errors] == ["bos-eos"]
    assert errors[0]["data"]["teacher"]["leading"] == ["<bos>"] and errors[0]["data"]["student"]["leading"] == []
    assert findings[0] == errors[0]  # most severe first


def test_data_with_malformed_lines_is_measured_and_reported(tmp_path):
    data = tmp_path / "train.jsonl"
    lines = [json.dumps({"text": "Order 12345 shipped."}), "{broken", json.dumps({"text": ""}),
             json.dumps({"messages": [{"role": "user", "content": "hi"}]}), json.dumps({"text": "    indented"})]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = run("llama3", "gemma2", "--data", str(data), "--json")
    assert out.exit_code == 0, out.output
    # the malformed line 2 is skipped and named on stderr; the record without "text" has messages, rendered
    assert "skipped 1 malformed line (line 2; not valid JSON: 1)" in out.stderr
    assert "skipped 1 empty text" in out.stderr
    findings = {f["kind"]: f for f in json.loads(out.stdout) if f["kind"] != "round-trip"}
    assert findings["split-characters"]["data"]["texts"] == 3
    digits = findings["digit-runs"]["data"]
    # "12345" is the only digit run: 5 of the characters of the three texts
    assert digits["data_characters"] == len("Order 12345 shipped.") + len("user: hi") + len("    indented")
    assert digits["data_digit_run_characters"] == 5
    assert findings["data-alignment"]["data"]["failures"]["texts"] == 3


def test_data_strict_stops_at_a_malformed_line(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"text": "ok"}) + "\nnot json\n", encoding="utf-8")
    out = CliRunner().invoke(main, ["check", "llama3", "gemma2", "--data", str(data), "--strict"])
    assert out.exit_code == 2
    assert "line 2: not valid JSON" in out.stderr


@pytest.mark.parametrize(("make", "args", "message"), [
    (lambda p: p.write_text(json.dumps({"body": "x", "id": 1}) + "\n"), [],
     "no field 'text' (fields found: 'body', 'id'); choose one with --field"),
    (lambda p: p.write_text(json.dumps({"text": "x"}) + "\n"), ["--field", "content"], "no field 'content'"),
    (lambda p: p.write_text(json.dumps({"text": ""}) + "\n"), [], "holds no non-empty text"),
])
def test_bad_data_is_a_usage_error(tmp_path, make, args, message):
    data = tmp_path / "d.jsonl"
    make(data)
    out = CliRunner().invoke(main, ["check", "llama3", "gemma2", "--data", str(data), *args])
    assert out.exit_code == 2
    assert message in out.stderr
    assert "Traceback" not in out.output


def test_output_is_checked_before_any_work(tmp_path):
    existing = tmp_path / "old.json"
    existing.write_text("keep me", encoding="utf-8")
    # an unknown tokenizer would exit 3: exit 2 proves the output was refused before any tokenizer was looked up
    out = CliRunner().invoke(main, ["check", "no-such-tokenizer", "gemma2", "-o", str(existing)])
    assert out.exit_code == 2 and "--overwrite" in out.stderr
    assert existing.read_text(encoding="utf-8") == "keep me"
    out = CliRunner().invoke(main, ["check", "no-such-tokenizer", "gemma2", "-o", str(tmp_path / "no" / "x.json")])
    assert out.exit_code == 2 and "does not exist" in out.stderr
    out = CliRunner().invoke(main, ["check", "no-such-tokenizer", "gemma2", "-o", str(tmp_path / "x.txt")])
    assert out.exit_code == 2 and "extension" in out.stderr
    out = CliRunner().invoke(main, ["check", "no-such-tokenizer", "gemma2", "--data", str(tmp_path / "none.jsonl")])
    assert out.exit_code == 2 and "no such file" in out.stderr


def test_data_options_need_data():
    out = CliRunner().invoke(main, ["check", "llama3", "gemma2", "--field", "text"])
    assert out.exit_code == 2 and "apply to --data" in out.output
