"""Fuzzing the command line and the Python API (the reliability issue, point 7): hostile texts, option values,
file contents and damaged documents and caches. Whatever comes in, the result is either a valid alignment or one
of the package's errors with its exit code and a message — never a traceback, and never a file lost.

Hypothesis runs a bounded number of examples per property (deadlines off: the machine is shared); the properties'
expected values are the documented contracts (exit codes 0/2, the engine invariants, the cleaned text).
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ctkd_inspect import Alignment, align
from ctkd_inspect.api import check_request
from ctkd_inspect.engines import engine_class, options_of
from ctkd_inspect.errors import CtkdError, InputError
from tests.engines.helpers import assert_engine_invariants

from .conftest import cli

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])

# any code point, lone surrogates, controls, combining marks and right-to-left text included
TEXTS = st.text(st.characters(codec=None, exclude_categories=()), min_size=0, max_size=60) | st.sampled_from([
    "🦙" * 9, "\u202e\u0645\u0631\u062d\u0628\u0627 abc", "e\u0301\u0301\u0301", "\x00\x1b[31m\r\n\t",
    "👩\u200d👩\u200d👧", " " * 40, "\n" * 30, "a\ud800b", "\ufeff\ufffe", "ǅ" * 5, "1234567890" * 8])

ANY_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 12, 10 ** 12), st.floats(allow_nan=True),
                      st.text(max_size=12), st.binary(max_size=8), st.lists(st.integers(), max_size=3),
                      st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                      st.sampled_from(["4G", "1K", "anchors", "paragraphs", "off", "canonical", "reference",
                                       "auto", "hidden", "-1", "0", "1e400", "nan", "64"]))


JSON_VALUE = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                          | st.text(max_size=12),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                     max_size=3),
                          max_leaves=8)


def _cleaned(text: str) -> str:
    from ctkd_inspect.text import clean_text

    return clean_text(text)[0]


@FUZZ
@given(text=TEXTS, engine=st.sampled_from(["span", "mined"]), chunking=st.sampled_from([None, "anchors",
                                                                                       "paragraphs"]),
       pair=st.sampled_from([("llama3", "gemma2"), ("gpt2", "bert"), ("mistral", "qwen2")]))
def test_cli_with_any_text(text, engine, chunking, pair):
    args = [*pair, "--engine", engine, "--json"]
    if engine == "mined" and chunking:
        args += ["--chunking", chunking, "--chunk-tokens", "3"]
    out = cli(*args, "--", text)  # "--": a text may start with a dash
    if not _cleaned(text):
        assert out.exit_code == 2 and "the text is empty" in out.stderr
        return
    assert out.exit_code == 0, out.stderr
    result = Alignment.from_dict(json.loads(out.stdout))
    assert result.text == _cleaned(text) and result.engine == engine
    assert_engine_invariants(result)


FLAGS = ["--chunk-tokens", "--max-memory", "--chunking", "--mode", "--max-groups", "--max-text-bytes", "--indent",
         "--engine", "--gamma", "--vocab-mapping"]


@FUZZ
@given(flag=st.sampled_from(FLAGS), value=st.text(max_size=12) | st.sampled_from(["0", "-1", "1e400", "nan", "4G",
                                                                                  "anchors", "64", "1"]))
def test_cli_with_any_option_value(flag, value):
    assume(not value.startswith("-") or value.lstrip("-").isdigit())  # else click reads it as another flag
    out = cli("llama3", "gemma2", "The café costs 3.50€", "--engine", "mined", flag, value)
    assert out.exit_code in (0, 2), out.output
    if out.exit_code == 2:
        assert flag in out.stderr or flag.lstrip("-") in out.stderr, out.stderr
        assert "this is a bug" not in out.stderr and out.stdout == ""


@FUZZ
@given(data=st.binary(max_size=400) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
       limit=st.integers(1, 500))
def test_cli_with_any_file_content(tmp_path_factory, data, limit):
    path = tmp_path_factory.mktemp("file") / "input.txt"
    path.write_bytes(data)
    out = cli("llama3", "gemma2", "--file", path, "--max-text-bytes", limit, "--json")
    if len(data) > limit:
        assert out.exit_code == 2 and f"longer than {limit:,} bytes" in out.stderr
    elif not _cleaned(data.decode("utf-8", errors="surrogateescape")):
        assert out.exit_code == 2 and "empty" in out.stderr
    else:
        assert out.exit_code == 0, out.stderr
        assert_engine_invariants(Alignment.from_dict(json.loads(out.stdout)))
    assert path.read_bytes() == data  # an input is never touched


MAPPING_CONTENT = st.one_of(
    st.binary(max_size=200),
    JSON_VALUE.map(lambda v: json.dumps(v).encode()),
    st.just(json.dumps({"kind": "exact", "mode": "canonical", "teacher": "a", "student": "b",
                        "teacher_to_student": [0, 1], "teacher_distance": [0, 0], "student_to_teacher": [1],
                        "student_distance": [0]}).encode()),
)


@FUZZ
@given(content=MAPPING_CONTENT, suffix=st.sampled_from([".json", ".npz", ".parquet", ".txt"]))
def test_cli_with_any_vocab_mapping_file(tmp_path_factory, content, suffix):
    path = tmp_path_factory.mktemp("mapping") / f"map{suffix}"
    path.write_bytes(content)
    out = cli("llama3", "gemma2", "hello there", "--engine", "mined", "--vocab-mapping", path)
    assert out.exit_code == 2 and "--vocab-mapping" in out.stderr, out.output
    assert "this is a bug" not in out.stderr and path.read_bytes() == content


@FUZZ
@given(data=st.data())
def test_api_with_any_option_value(data):
    """Every declared option of every engine, any value: validated (or refused with the package's error naming
    the option) before any tokenizer or model is touched; a value that passes aligns (span, mined)."""
    engine = data.draw(st.sampled_from(["span", "mined", "cdm", "softdtw"]))
    declared = options_of(engine_class(engine))
    name = data.draw(st.sampled_from([o.name for o in declared] + ["bogus_option"]))
    value = data.draw(ANY_VALUE)
    try:
        check_request("llama3", "gemma2", engine, {name: value})
    except CtkdError as exc:
        assert name in str(exc), str(exc)
        return
    # a value that passes aligns; model options would load models, which other tests cover
    if engine in ("span", "mined") and name not in ("vocab_mapping", "teacher_model", "student_model", "top_k"):
        try:
            result = align("llama3", "gemma2", "The café costs 3.50€ 🦙", engine=engine, **{name: value})
        except CtkdError as exc:  # e.g. a budget too small for this text
            assert "memory budget" in str(exc) or name in str(exc), str(exc)
            return
        assert_engine_invariants(result)


@FUZZ
@given(data=st.data())
def test_api_with_any_text_and_engine_arguments(data):
    text = data.draw(st.one_of(TEXTS, ANY_VALUE))
    add = data.draw(st.one_of(st.booleans(), ANY_VALUE))
    engine = data.draw(st.one_of(st.sampled_from(["span", "mined"]), ANY_VALUE))
    try:
        result = align("llama3", "gemma2", text, engine=engine, add_special_tokens=add)
    except CtkdError:
        assume(True)
        return
    assert isinstance(text, str) and isinstance(add, bool) and engine in ("span", "mined")
    assert_engine_invariants(result)


@pytest.fixture(scope="module")
def document():
    return align("llama3", "gemma2", "The café costs 3.50€ 🦙", engine="mined").to_dict()


def _mutations(document: dict):
    keys = sorted(document)
    return st.one_of(
        st.sampled_from(keys).map(lambda k: {k2: v for k2, v in document.items() if k2 != k}),
        st.tuples(st.sampled_from(keys), ANY_VALUE).map(lambda kv: {**document, kv[0]: kv[1]}),
        st.tuples(st.sampled_from(["teacher", "student"]), st.sampled_from(["tokens", "name", "scheme"]),
                  ANY_VALUE).map(lambda t: {**document, t[0]: {**document[t[0]], t[1]: t[2]}}),
        st.tuples(st.integers(0, 5), ANY_VALUE).map(
            lambda t: {**document, "groups": [g if i != t[0] else {**g, "teacher": t[1]}
                                              for i, g in enumerate(document["groups"])]}),
    )


@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_documents_damaged_in_any_way(document, data):
    damaged = data.draw(_mutations(document) | st.text(max_size=40) | st.binary(max_size=40))
    try:
        result = Alignment.from_dict(damaged) if isinstance(damaged, dict) else Alignment.from_json(damaged)
    except InputError:
        return
    assert isinstance(result, Alignment)


@pytest.mark.parametrize("index", [2 ** 63, 2 ** 70, -(2 ** 64)])
def test_a_group_index_beyond_64_bits_is_a_damaged_document(document, index):
    """An index no int64 holds (found by the fuzz test above) is refused like any other damage, not an
    OverflowError."""
    damaged = {**document, "groups": [{**document["groups"][0], "teacher": [index]}, *document["groups"][1:]]}
    with pytest.raises(InputError, match="not a well-formed alignment document"):
        Alignment.from_dict(damaged)
    with pytest.raises(InputError):
        Alignment.from_json(json.dumps(damaged))


@FUZZ
@given(content=st.binary(max_size=300) | st.lists(st.one_of(
           st.dictionaries(st.sampled_from(["text", "messages", "x"]), JSON_VALUE, max_size=2).map(json.dumps),
           st.text(max_size=20)), max_size=6).map(lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass")),
       suffix=st.sampled_from([".jsonl", ".json", ".txt", ".parquet", ".gz"]), strict=st.booleans())
def test_data_files_with_any_content(tmp_path_factory, content, suffix, strict):
    from ctkd_inspect import read_texts

    path = tmp_path_factory.mktemp("data") / f"data{suffix}"
    path.write_bytes(content)
    try:
        texts = list(read_texts(path, strict=strict))
    except CtkdError as exc:
        assert str(exc)
        return
    assert all(isinstance(t, str) for t in texts)


# -------------------------------------------------------------------------------------------------------------
# a damaged cache byte


@pytest.fixture(scope="module")
def private_cache(tmp_path_factory):
    """A cache with only the draive asset (hard links to the real one), so mistral-v1 converts in a moment."""
    from ctkd_inspect.sources.assets import asset_dir

    root = tmp_path_factory.mktemp("cache")

    def link(source, target):
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)

    shutil.copytree(asset_dir("draive"), root / "assets" / "draive", copy_function=link)
    return root


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(file=st.sampled_from(["tokenizer.json", "tokenizer_config.json"]), where=st.floats(0, 1),
       flip=st.integers(1, 255))
def test_a_damaged_cache_byte_is_caught_and_rebuilt(private_cache, file, where, flip):
    from ctkd_inspect.sources import _cached_resolve
    from ctkd_inspect.sources.cache import entry_problem

    text = "Hello world, café 🦙 — naïve"
    args = ["mistral-v1", "mistral-v1", text, "--json", "--cache-dir", private_cache]
    _cached_resolve.cache_clear()
    first = cli(*args)
    assert first.exit_code == 0, first.output
    entry = private_cache / "tokenizers" / "mistral-v1"
    target = entry / file
    data = bytearray(target.read_bytes())
    data[int(where * (len(data) - 1))] ^= flip
    target.write_bytes(bytes(data))
    assert entry_problem(entry, deep=True) is not None
    _cached_resolve.cache_clear()
    again = cli(*args)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == json.loads(first.stdout)  # the same tokens as before the damage
    assert entry_problem(entry, deep=True) is None  # rebuilt from the verified source


def test_a_two_dimensional_entropy_array_is_refused():
    """An entropy array with one value per token but two dimensions is refused naming the option."""
    with pytest.raises(CtkdError, match="teacher_entropy"):
        align("llama3", "gemma2", "hi", engine="cdm", teacher_entropy=np.zeros((3, 1)), student_entropy=[1.0] * 3)
