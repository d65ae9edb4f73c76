"""tiktoken BPE files: a file cut short or corrupted is refused, a different valid vocabulary still loads."""

import warnings

import pytest

from ctkd_inspect.errors import TokenizerLoadError
from ctkd_inspect.sources import resolve_tokenizer
from ctkd_inspect.sources.assets import asset_path
from ctkd_inspect.sources.builders import TiktokenFileError, read_tiktoken_ranks


@pytest.fixture(scope="module")
def llama3_bytes():
    return asset_path("llama-models", "llama3/tokenizer.model").read_bytes()


def _write(tmp_path, data: bytes, name="tokenizer.model"):
    target = tmp_path / name
    target.write_bytes(data)
    return target


@pytest.mark.parametrize("cut", [3000, 2999, 2995, 2990, 2988, 50_000, 1_000_001])
def test_a_file_cut_inside_a_line_is_refused(tmp_path, llama3_bytes, cut):
    """`head -c N tokenizer.model`: wherever the cut falls inside a line (even just before its newline)."""
    data = llama3_bytes[:cut]
    if data.endswith(b"\n"):
        data = data[:-1]  # cut just before the newline: the last line looks whole but is not terminated
    target = _write(tmp_path, data)
    with pytest.raises(TokenizerLoadError) as info:
        resolve_tokenizer(str(target))
    assert str(target) in str(info.value)
    assert "truncated" in str(info.value)
    assert info.value.exit_code == 3


@pytest.mark.parametrize("content, what", [
    (b"IQ== 0\nIg== 1\nIw== 1\n", "repeats rank 1"),
    (b"IQ== 0\nIg== 1\nIQ== 2\n", "repeats the token"),
    (b"IQ== 0\nIg== 1\nIw== 5\n", "rank 2 is missing"),
    (b"IQ== 0\nIg== x\n", "is not `<base64> <rank>`"),
    (b"IQ== 0\nIg== 1 2\n", "is not `<base64> <rank>`"),
    (b"IQ== 0\n!!!! 1\n", "not base64"),
    (b"IQ== 0\nIg== 1\nIw== 2\n", "single bytes"),  # well formed, but not a byte-level vocabulary
])
def test_malformed_rank_files_are_refused(tmp_path, content, what):
    target = _write(tmp_path, content)
    with pytest.raises(TiktokenFileError, match=what):
        read_tiktoken_ranks(target)
    with pytest.raises(TokenizerLoadError):
        resolve_tokenizer(str(target))


def test_a_different_valid_vocabulary_still_loads_as_generic_tiktoken(tmp_path, llama3_bytes):
    lines = llama3_bytes.splitlines(keepends=True)
    target = _write(tmp_path, b"".join(lines[:1000]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # far from a known size: no truncation warning
        tok, source = resolve_tokenizer(str(target))
    assert source.kind == "path" and len(tok) == 1000
    assert tok("Hello world", add_special_tokens=False)["input_ids"]


def test_a_llama3_file_missing_its_last_line_loads_but_warns(tmp_path, llama3_bytes):
    """`head -n 127999`: well formed, so it cannot be refused; it loads as generic tiktoken, with a warning."""
    lines = llama3_bytes.splitlines(keepends=True)
    assert len(lines) == 128000
    target = _write(tmp_path, b"".join(lines[:-1]))
    with pytest.warns(UserWarning, match="127999 ranks.*truncated"):
        tok, _ = resolve_tokenizer(str(target))
    assert len(tok) == 127999 and "<|begin_of_text|>" not in tok.get_vocab()


def test_the_complete_llama3_file_is_accepted(llama3_bytes):
    ranks = read_tiktoken_ranks(asset_path("llama-models", "llama3/tokenizer.model"))
    assert len(ranks) == 128000 and sorted(ranks.values()) == list(range(128000))
