"""Reading texts: JSONL (malformed lines, missing fields, chat messages, prompt/response), plain text, Parquet and
saved dataset folders, streamed lazily with a report of what was skipped."""

from __future__ import annotations

import gzip
import json

import pytest

from ctkd_inspect.data import read_texts, render_messages
from ctkd_inspect.errors import InputError


def _write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_with_malformed_lines_skipped_and_counted(tmp_path):
    path = _write_lines(tmp_path / "d.jsonl", [
        json.dumps({"text": "first"}),
        "{not json",
        json.dumps({"text": "second", "id": 2}),
        "",  # blank lines are not records
        json.dumps(["a", "list"]),
        json.dumps({"text": 42}),
        json.dumps({"text": ""}),
        json.dumps({"other": "x"}),
        json.dumps({"text": "third"}),
    ])
    reader = read_texts(path)
    assert list(reader) == ["first", "second", "third"]
    report = reader.report
    # line numbers are 1-based file lines: 2 (bad JSON), 5 (array), 6 (number), 8 (no field)
    assert report.skipped == 4 and report.skipped_lines == [2, 5, 6, 8]
    assert report.reasons == {"not valid JSON": 1, "not a JSON object": 1, "not text": 1, "no field 'text'": 1}
    assert report.empty == 1 and report.texts == 3 and report.records == 8
    assert report.summary() == ("skipped 4 malformed lines (lines 2, 5, 6, 8; not valid JSON: 1; not a JSON "
                                "object: 1; not text: 1; no field 'text': 1); skipped 1 empty text")


def test_only_the_first_five_line_numbers_are_kept(tmp_path):
    path = _write_lines(tmp_path / "d.jsonl", [json.dumps({"text": "ok"})] + ["bad"] * 8)
    reader = read_texts(path)
    assert list(reader) == ["ok"]
    assert reader.report.skipped == 8 and reader.report.skipped_lines == [2, 3, 4, 5, 6]
    assert "lines 2, 3, 4, 5, 6, ..." in reader.report.summary()


def test_strict_stops_at_the_first_malformed_line_lazily(tmp_path):
    path = _write_lines(tmp_path / "d.jsonl", [json.dumps({"text": "a"}), json.dumps({"text": "b"}), "{oops"])
    texts = iter(read_texts(path, strict=True))
    # streaming: the texts before the bad line come out first
    assert next(texts) == "a" and next(texts) == "b"
    with pytest.raises(InputError, match="line 3: not valid JSON"):
        next(texts)


def test_missing_field_is_a_usage_error_naming_the_fields(tmp_path):
    path = _write_lines(tmp_path / "d.jsonl", [json.dumps({"content": "x", "id": 1})])
    with pytest.raises(InputError, match=r"no field 'text' \(fields found: 'content', 'id'\); choose one with "
                                         r"--field"):
        list(read_texts(path))
    with pytest.raises(InputError, match="no field 'body'"):
        list(read_texts(path, field="body"))
    assert list(read_texts(path, field="content")) == ["x"]


def test_chat_messages_rendered_as_role_lines(tmp_path):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]}]
    path = _write_lines(tmp_path / "chat.jsonl", [json.dumps({"messages": messages})])
    expected = "system: Be brief.\nuser: Hi\nassistant: Hello"
    assert render_messages(messages) == expected
    # no "text" field: the messages are used without naming them
    assert list(read_texts(path)) == [expected]
    assert list(read_texts(path, field="messages")) == [expected]


def test_prompt_and_response_fields(tmp_path):
    record = {"input": [{"role": "user", "content": "2+2?"}], "ideal": "4"}
    path = _write_lines(tmp_path / "evals.jsonl", [json.dumps(record)])
    assert list(read_texts(path, prompt_field="input", response_field="ideal")) == ["user: 2+2?\n4"]
    assert list(read_texts(path, prompt_field="input", response_field="ideal", separator="\n\nResponse: ")) == [
        "user: 2+2?\n\nResponse: 4"]
    with pytest.raises(InputError, match="both"):
        read_texts(path, prompt_field="input")


def test_limit_and_gzip(tmp_path):
    path = tmp_path / "d.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for i in range(10):
            handle.write(json.dumps({"text": f"t{i}"}) + "\n")
    assert list(read_texts(path, limit=3)) == ["t0", "t1", "t2"]
    with pytest.raises(InputError, match="at least 1"):
        read_texts(path, limit=0)


def test_json_array(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"text": "a"}, {"text": "b"}, 3]), encoding="utf-8")
    reader = read_texts(path)
    assert list(reader) == ["a", "b"] and reader.report.skipped_lines == [3]
    strings = tmp_path / "s.json"
    strings.write_text(json.dumps(["x", "y"]), encoding="utf-8")
    assert list(read_texts(strings)) == ["x", "y"]


def test_plain_text_lines_and_paragraphs(tmp_path):
    path = tmp_path / "d.txt"
    path.write_bytes(b"line one\nline two\n\npara \xff end\n\n\nlast\n")  # 0xFF is never valid UTF-8
    reader = read_texts(path)
    assert list(reader) == ["line one", "line two", "para \ufffd end", "last"]
    assert reader.report.empty == 3 and reader.report.replaced_lines == 1
    assert list(read_texts(path, split_paragraphs=True)) == ["line one\nline two", "para \ufffd end", "last"]
    with pytest.raises(InputError, match="plain text"):
        read_texts(path, field="text")


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"body": ["a", None, "b", ""], "n": [1, 2, 3, 4]}), path)
    reader = read_texts(path, field="body")
    assert list(reader) == ["a", "b"]
    assert reader.report.skipped_lines == [2] and reader.report.empty == 1
    with pytest.raises(InputError, match=r"no column 'text' \(columns found: 'body', 'n'\)"):
        list(read_texts(path))


def test_dataset_folders(tmp_path):
    import datasets

    folder = tmp_path / "ds"
    datasets.Dataset.from_dict({"text": ["a", "b", "c"]}).save_to_disk(str(folder))
    assert list(read_texts(folder)) == ["a", "b", "c"]
    both = tmp_path / "dd"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["t"]}),
                          "test": datasets.Dataset.from_dict({"text": ["u", "v"]})}).save_to_disk(str(both))
    assert list(read_texts(both)) == ["t"]
    assert list(read_texts(both, split="test")) == ["u", "v"]
    with pytest.raises(InputError, match="splits train, test"):
        list(read_texts(both, split="validation"))


def test_bad_paths(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_texts(tmp_path / "missing.jsonl")
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputError, match="not a saved dataset"):
        read_texts(tmp_path / "plain")
    broken = tmp_path / "x.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        list(read_texts(broken))
