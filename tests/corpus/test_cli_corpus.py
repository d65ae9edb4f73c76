"""`ctkd-inspect corpus` as a user runs it: every input format, prompt/response and chat data, engine flags, the
summary and report outputs, and bad input (malformed lines, --strict, a missing field, empty and huge texts,
outputs that exist or cannot be written, a Ray address that does not answer)."""

from __future__ import annotations

import json
import socket

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from ctkd_inspect import align
from ctkd_inspect.cli import main
from ctkd_inspect.columns import arrow_schema, read_parquet_row, to_record_batch
from ctkd_inspect.corpus.runner import WorkFolder, work_folder_of

from .helpers import write_jsonl

ALIGNMENT_COLUMNS = arrow_schema().names


def run(*args):
    return CliRunner().invoke(main, ["corpus", *map(str, args)], catch_exceptions=False)


@pytest.fixture(scope="module")
def texts(corpus):
    return corpus[:120]


@pytest.fixture
def data(tmp_path, texts):
    return write_jsonl(tmp_path / "data.jsonl", texts)


def _alignment_columns(path):
    table = pq.read_table(path)
    return table.select(ALIGNMENT_COLUMNS)


def test_jsonl_run_writes_rows_summary_and_json(tmp_path, data, texts):
    out = tmp_path / "out.parquet"
    result = run("llama3", "gemma2", data, "-o", out, "--workers", 1, "--json", "--summary", tmp_path / "s.json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # stdout is the summary alone
    assert summary["texts"] == len(texts) and summary["teacher"] == "llama3"
    assert json.loads((tmp_path / "s.json").read_text())["tokens"] == summary["tokens"]
    table = pq.read_table(out)
    assert table.column("source_line").to_pylist() == list(range(1, len(texts) + 1))
    reference = to_record_batch([align("llama3", "gemma2", t) for t in texts])
    assert table.select(ALIGNMENT_COLUMNS).equals(pa.Table.from_batches([reference]).select(ALIGNMENT_COLUMNS))
    assert not work_folder_of(out).exists()  # removed once the run is complete
    assert "partial work is kept in" in result.stderr


def test_every_input_format_gives_the_same_rows(tmp_path, texts):
    lines = [t.replace("\n", " ") for t in texts[:60]]  # one text per line for the plain-text format
    import datasets

    sources = {
        "jsonl": write_jsonl(tmp_path / "d.jsonl", lines),
        "text": tmp_path / "d.txt",
        "parquet": tmp_path / "d.parquet",
        "dataset": tmp_path / "saved",
    }
    sources["text"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    pq.write_table(pa.table({"body": lines}), sources["parquet"])
    datasets.Dataset.from_dict({"text": lines}).save_to_disk(str(sources["dataset"]))
    tables = {}
    for name, path in sources.items():
        extra = ("--field", "body") if name == "parquet" else ()
        out = tmp_path / f"{name}.parquet"
        result = run("llama3", "gemma2", path, "-o", out, "--workers", 1, "-q", *extra)
        assert result.exit_code == 0, (name, result.output)
        tables[name] = pq.read_table(out)
    for name, table in tables.items():
        assert table.select(ALIGNMENT_COLUMNS).equals(tables["jsonl"].select(ALIGNMENT_COLUMNS)), name
        # line numbers for line formats, row numbers for tables: 1, 2, 3, ... here either way
        assert table.column("source_line").to_pylist() == list(range(1, 61)), name


def test_paragraphs_of_a_text_file(tmp_path):
    path = tmp_path / "doc.md"
    path.write_text("# Title\n\nFirst paragraph,\nstill the first.\n\n\nSecond one.\n", encoding="utf-8")
    out = tmp_path / "p.parquet"
    assert run("llama3", "gemma2", path, "-o", out, "--split-paragraphs", "--workers", 1, "-q").exit_code == 0
    table = pq.read_table(out)
    assert table.column("text").to_pylist() == ["# Title", "First paragraph,\nstill the first.", "Second one."]
    assert table.column("source_line").to_pylist() == [1, 3, 7]


def test_prompt_and_response_fields_give_response_statistics(tmp_path):
    records = [{"q": "What is the capital of France?", "a": "Paris is the capital of France."},
               {"q": "Sum 12345 and 1", "a": "12346"},
               {"q": "Say hi", "a": "hi 🦙"}]
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    out = tmp_path / "qa.parquet"
    result = run("llama3", "gemma2", path, "-o", out, "--prompt-field", "q", "--response-field", "a",
                 "--workers", 1, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    table = pq.read_table(out)
    texts = table.column("text").to_pylist()
    starts = table.column("response_start").to_pylist()
    assert texts[0] == records[0]["q"] + "\n" + records[0]["a"]
    assert [t[s:] for t, s in zip(texts, starts)] == [r["a"] for r in records]
    assert summary["response_only"] is True
    assert summary["counted_tokens"]["student"] == sum(table.column("response_student_tokens").to_pylist())
    assert summary["counted_tokens"]["student"] < summary["tokens"]["student"]
    # the responses alone: "12346" is cut 123|46 by Llama 3 and digit by digit by Gemma 2, never exact
    assert table.column("response_alignment_rate").to_pylist()[1] == 0.0


def test_chat_messages_are_rendered_to_text(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi there"},
                                             {"role": "assistant", "content": "Hello!"}]}) + "\n")
    out = tmp_path / "chat.parquet"
    assert run("llama3", "gemma2", path, "-o", out, "--field", "messages", "--workers", 1, "-q").exit_code == 0
    assert pq.read_table(out).column("text").to_pylist() == ["user: Hi there\nassistant: Hello!"]


def test_engine_flags_are_the_align_commands(tmp_path, data, texts):
    out = tmp_path / "m.parquet"
    result = run("llama3", "gemma2", data, "-o", out, "--engine", "mined", "--mode", "reference", "--limit", 4,
                 "--workers", 1, "-q")
    assert result.exit_code == 0, result.output
    row = read_parquet_row(out, 3)
    assert row.to_dict() == align("llama3", "gemma2", texts[3], engine="mined", mode="reference").to_dict()
    bad = run("llama3", "gemma2", data, "-o", tmp_path / "b.parquet", "--engine", "mined", "--mode", "bogus")
    assert bad.exit_code == 2 and "--mode" in bad.stderr
    unknown = run("llama3", "gemma2", data, "-o", tmp_path / "c.parquet", "--gamma", "0.1")
    assert unknown.exit_code == 2 and "--gamma" in unknown.stderr
    assert not (tmp_path / "b.parquet").exists() and not (tmp_path / "c.parquet").exists()


# ---------------------------------------------------------------------------------------------------------------
# bad input


def test_malformed_lines_are_skipped_with_their_line_numbers(tmp_path, texts):
    path = tmp_path / "bad.jsonl"
    lines = [json.dumps({"text": t}) for t in texts[:8]]
    lines.insert(1, "{not json")
    lines.insert(4, json.dumps(["not", "an", "object"]))
    lines.insert(7, json.dumps({"text": 12}))
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.parquet"
    result = run("llama3", "gemma2", path, "-o", out, "--workers", 1, "--json")
    assert result.exit_code == 0, result.output
    assert "skipped 3 malformed lines (lines 2, 5, 8;" in result.stderr
    table = pq.read_table(out)
    assert table.num_rows == 8
    assert table.column("source_line").to_pylist() == [1, 3, 4, 6, 7, 9, 10, 11]
    assert json.loads(result.stdout)["read"]["skipped_lines"] == [2, 5, 8]
    strict = run("llama3", "gemma2", path, "-o", tmp_path / "strict.parquet", "--strict")
    assert strict.exit_code == 2
    assert "line 2: not valid JSON" in strict.stderr
    assert not (tmp_path / "strict.parquet").exists() and not work_folder_of(tmp_path / "strict.parquet").exists()


def test_missing_field_names_the_fields_found(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"body": "x", "id": 1}) + "\n")
    result = run("llama3", "gemma2", path, "-o", tmp_path / "o.parquet", "--field", "content")
    assert result.exit_code == 2
    assert "no field 'content'" in result.stderr and "'body', 'id'" in result.stderr and "--field" in result.stderr
    assert not work_folder_of(tmp_path / "o.parquet").exists()


def test_empty_texts_are_skipped_and_counted(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ["one", "", "two", ""])
    out = tmp_path / "o.parquet"
    result = run("llama3", "gemma2", path, "-o", out, "--workers", 1, "-q")
    assert result.exit_code == 0 and "skipped 2 empty texts" in result.stderr
    assert pq.read_table(out).column("text").to_pylist() == ["one", "two"]
    nothing = run("llama3", "gemma2", write_jsonl(tmp_path / "e.jsonl", ["", ""]), "-o", tmp_path / "e.parquet")
    assert nothing.exit_code == 2 and "no text to align" in nothing.stderr and "2 empty texts" in nothing.stderr


def test_a_100_mb_text_is_refused_by_default(tmp_path):
    path = tmp_path / "huge.txt"
    with open(path, "w") as handle:
        handle.write("word " * (20 * 1024 * 1024) + "\n")  # 100 MiB on one line
    result = run("llama3", "gemma2", path, "-o", tmp_path / "o.parquet")
    assert result.exit_code == 2
    assert "longer than 16,777,216 bytes (line 1; raise --max-text-bytes" in result.stderr
    assert not (tmp_path / "o.parquet").exists()


def test_a_long_text_is_aligned_when_the_limit_is_raised(tmp_path, corpus):
    text = " ".join(corpus[:1200])[:400_000]
    path = write_jsonl(tmp_path / "long.jsonl", [text, "short"])
    out = tmp_path / "o.parquet"
    refused = run("llama3", "gemma2", path, "-o", out, "--max-text-bytes", 100_000, "--workers", 1, "-q")
    assert refused.exit_code == 0 and "skipped 1 text longer than 100,000 bytes (line 1;" in refused.stderr
    assert pq.read_table(out).num_rows == 1
    result = run("llama3", "gemma2", path, "-o", out, "--max-text-bytes", 1_000_000, "--workers", 1, "-q",
                 "--overwrite")
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    reference = pa.Table.from_batches([to_record_batch([align("llama3", "gemma2", text)])])
    assert table.slice(0, 1).select(ALIGNMENT_COLUMNS).equals(reference.select(ALIGNMENT_COLUMNS))


def test_existing_outputs_are_refused_without_overwrite(tmp_path, data):
    out = tmp_path / "out.parquet"
    out.write_bytes(b"precious")
    report = tmp_path / "r.html"
    result = run("llama3", "gemma2", data, "-o", out)
    assert result.exit_code == 2 and "exists; pass --overwrite" in result.stderr
    assert out.read_bytes() == b"precious" and not work_folder_of(out).exists()
    report.write_text("mine")
    other = run("llama3", "gemma2", data, "-o", tmp_path / "new.parquet", "--report", report)
    assert other.exit_code == 2 and "--report" in other.stderr and report.read_text() == "mine"
    assert not (tmp_path / "new.parquet").exists()


@pytest.mark.parametrize("where", ["missing/out.parquet", "a-file/out.parquet", "folder", "out.csv"])
def test_outputs_that_cannot_be_written_are_refused_before_any_work(tmp_path, data, where):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "folder").mkdir()
    result = run("llama3", "gemma2", data, "-o", tmp_path / where)
    assert result.exit_code == 2
    assert "-o" in result.stderr and any(m in result.stderr for m in ("does not exist", "not a folder",
                                                                        "is a directory", "unknown extension"))
    assert "aligning" not in result.stderr and "partial work" not in result.stderr


def test_a_run_holding_the_work_folder_locks_out_a_second_one(tmp_path, data):
    out = tmp_path / "out.parquet"
    holder = WorkFolder(work_folder_of(out), "another run", {}).open()
    try:
        result = run("llama3", "gemma2", data, "-o", out, "--workers", 1)
        assert result.exit_code == 2 and "another corpus run is writing to the same output" in result.stderr
    finally:
        holder.close()


def test_a_ray_address_that_does_not_answer_is_refused(tmp_path, data):
    with socket.socket() as probe:  # a local port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run("llama3", "gemma2", data, "-o", tmp_path / "o.parquet", "--backend", "ray", "--ray-address",
                 f"127.0.0.1:{port}")
    assert result.exit_code == 2
    assert f"--ray-address 127.0.0.1:{port} does not answer" in result.stderr and "ray start --head" in result.stderr
    assert not work_folder_of(tmp_path / "o.parquet").exists()
    local = run("llama3", "gemma2", data, "-o", tmp_path / "o.parquet", "--ray-address", f"127.0.0.1:{port}")
    assert local.exit_code == 2 and "--backend ray" in local.stderr
