"""What corpus runs need of the data reader: each text's line (row) number, where a response starts, and texts
over the size limit skipped with their line numbers (or refused with strict)."""

from __future__ import annotations

import json

import pytest

from ctkd_inspect.data import TextRecord, read_texts
from ctkd_inspect.errors import InputError


def test_records_carry_line_numbers_of_jsonl_and_paragraphs(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join([json.dumps({"text": "a"}), "{bad", "", json.dumps({"text": "b"})]) + "\n")
    assert list(read_texts(path).records()) == [TextRecord("a", 1), TextRecord("b", 4)]
    text = tmp_path / "t.txt"
    text.write_text("first para\nstill first\n\n\nsecond\n\nthird\n")
    records = list(read_texts(text, split_paragraphs=True).records())
    assert [(r.text, r.number) for r in records] == [("first para\nstill first", 1), ("second", 5), ("third", 7)]


def test_prompt_and_response_records_know_where_the_response_starts(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"q": "What is 2+2?", "a": "4"}) + "\n"
                    + json.dumps({"q": [{"role": "user", "content": "hi"}], "a": "hello"}) + "\n")
    records = list(read_texts(path, prompt_field="q", response_field="a", separator="\n").records())
    assert records[0] == TextRecord("What is 2+2?\n4", 1, 13)
    assert records[0].text[records[0].response_start:] == "4"
    assert records[1].text == "user: hi\nhello" and records[1].text[records[1].response_start:] == "hello"


def test_texts_over_the_size_limit_are_skipped_with_line_numbers_or_refused(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = [json.dumps({"text": t}) for t in ["short", "é" * 600, "ok", "x" * 2000, "end"]]
    path.write_text("\n".join(lines) + "\n")
    reader = read_texts(path, max_text_bytes=1000)  # "é" is two bytes: 1200 bytes in 600 characters
    assert list(reader) == ["short", "ok", "end"]
    assert reader.report.too_long == 2 and reader.report.too_long_lines == [2, 4]
    assert "skipped 2 texts longer than 1,000 bytes (lines 2, 4; raise --max-text-bytes" in reader.report.summary()
    assert reader.report.to_dict()["too_long"] == 2
    strict = iter(read_texts(path, max_text_bytes=1000, strict=True))
    assert next(strict) == "short"
    with pytest.raises(InputError, match=r"line 2: the text is 1,200 bytes, longer than --max-text-bytes 1,000"):
        next(strict)
    assert list(read_texts(path, max_text_bytes=1200)) == ["short", "é" * 600, "ok", "end"]
