"""Every wrong argument to the public Python API raises the package's documented exception, with a message naming
the argument (the reliability issue, point 6) — never a bare TypeError, AttributeError or KeyError from inside.

The expected value of each case is the argument's own keyword, written here by hand.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import ctkd_inspect
from ctkd_inspect import Alignment, align
from ctkd_inspect.errors import CtkdError, EngineError, InputError, InputTypeError, OutputError

TEXT = "Hi there, café 🦙"

_ENTROPY = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]


@pytest.fixture(scope="module")
def alignment():
    return align("llama3", "gemma2", TEXT)


def _entropies(**changed):
    teacher, student = ctkd_inspect.tokenize_pair("llama3", "gemma2", TEXT)
    options = {"teacher_entropy": np.arange(len(teacher), dtype=float),
               "student_entropy": np.arange(len(student), dtype=float)}
    options.update(changed)
    return options


ALIGN_CASES = [
    ("text", {"text": value}) for value in (3, None, b"hi", ["hi"], np.array(["hi"]))
] + [
    ("add_special_tokens", {"add_special_tokens": value}) for value in (1, "yes", None, [True])
] + [
    ("engine", {"engine": value}) for value in (3, None, ["span"], b"span", "nope")
] + [
    ("teacher", {"teacher": value}) for value in (3, None, b"llama3", ["llama3"], {"name": "llama3"})
] + [
    ("mode", {"engine": "mined", "mode": value}) for value in (1, "fast", b"canonical")
] + [
    ("chunking", {"engine": "mined", "chunking": value}) for value in (1, "lines", ["anchors"])
] + [
    ("chunk_tokens", {"engine": "mined", "chunk_tokens": value}) for value in (0, -3, 1.5, "64", True)
] + [
    ("max_memory", {"engine": "mined", "max_memory": value}) for value in (0, -1, "4X", "", [1], 1.5, True,
                                                                           float("inf"), b"4G")
] + [
    ("vocab_mapping", {"engine": "mined", "vocab_mapping": value}) for value in (3, "no-such-map.json", b"m.json",
                                                                                 ["m.json"])
] + [
    ("teacher_entropy", {"engine": "cdm", **_entropies(teacher_entropy=value)})
    for value in ("abc", [[1.0, 2.0]], [1.0, float("nan")], {"a": 1}, object(), [1j, 2j], np.zeros((2, 2)))
] + [
    ("student_entropy", {"engine": "cdm", **_entropies(student_entropy=value)}) for value in ("x", [None, 1.0])
] + [
    ("teacher_entropy", {"engine": "mined", "teacher_entropy": _ENTROPY}),  # not an option of mined
    ("gamma", {"engine": "mined", "gamma": 0.1}),
]


def _named(exc: BaseException, name: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w])", str(exc)) is not None


@pytest.mark.parametrize(("name", "changed"), ALIGN_CASES,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(ALIGN_CASES)])
def test_align_names_the_wrong_argument(name, changed):
    call = {"teacher": "llama3", "student": "gemma2", "text": TEXT, **changed}
    with pytest.raises(CtkdError) as caught:
        align(**call)
    assert _named(caught.value, name), str(caught.value)
    assert isinstance(caught.value, (InputError, EngineError))


def test_entropy_of_the_wrong_length_names_the_side():
    with pytest.raises(EngineError, match="teacher entropy has 3 values"):
        align("llama3", "gemma2", TEXT, engine="cdm", **_entropies(teacher_entropy=[1.0, 2.0, 3.0]))


def test_tokenize_pair_and_load_tokenizer():
    for value in (3, None, b"x"):
        with pytest.raises(InputError, match="text"):
            ctkd_inspect.tokenize_pair("llama3", "gemma2", value)
        with pytest.raises(InputTypeError, match=r"^name must be a tokenizer name") as caught:
            ctkd_inspect.load_tokenizer(value)
        assert isinstance(caught.value, TypeError)
    for value in ([1], {"a": 1}, np.zeros(2)):  # unhashable: must not reach the memo
        with pytest.raises(InputTypeError, match="name"):
            ctkd_inspect.load_tokenizer(value)
    with pytest.raises(InputTypeError, match="cache_dir"):
        ctkd_inspect.load_tokenizer("llama3", cache_dir=3)
    with pytest.raises(InputError, match="backend"):
        ctkd_inspect.load_tokenizer("llama3", backend=np.zeros((2, 2)))


@pytest.mark.parametrize("value", [3, None, [1, 2], {"groups": []}, "alignment", np.zeros(2)])
def test_functions_of_an_alignment(value, alignment):
    for function in (ctkd_inspect.compute_metrics, ctkd_inspect.classify_groups):
        with pytest.raises(InputTypeError, match=r"^alignment must be an Alignment"):
            function(value)
    with pytest.raises(InputError, match=r"^a must be an Alignment"):
        ctkd_inspect.diff(value, alignment)
    with pytest.raises(InputError, match=r"^b must be an Alignment"):
        ctkd_inspect.diff(alignment, value)


def test_alignment_documents(alignment):
    for value in (3, None, [1], "text"):
        with pytest.raises(InputTypeError, match=r"^data must be a dict"):
            Alignment.from_dict(value)
    with pytest.raises(InputError, match="no schema_version"):
        Alignment.from_dict({"a": 1})
    broken = alignment.to_dict()
    del broken["teacher"]
    with pytest.raises(InputError, match="the key 'teacher' is missing"):
        Alignment.from_dict(broken)
    broken = alignment.to_dict()
    broken["groups"] = 5
    with pytest.raises(InputError, match="not a well-formed alignment document"):
        Alignment.from_dict(broken)
    for value in (3, None, ["{}"]):
        with pytest.raises(InputTypeError, match=r"^text must be the JSON document"):
            Alignment.from_json(value)
    with pytest.raises(InputError, match="text is not JSON"):
        Alignment.from_json("{not json")


def test_check_pair_arguments():
    for value in (3, None, b"gpt2", ["gpt2"]):
        with pytest.raises(InputTypeError, match=r"^teacher must be a tokenizer name"):
            ctkd_inspect.check_pair(value, "bert")
        with pytest.raises(InputTypeError, match=r"^student must be a tokenizer name"):
            ctkd_inspect.check_pair("gpt2", value)
    for value in ("one text", b"bytes", 3):
        with pytest.raises(InputTypeError, match=r"^texts must be a list"):
            ctkd_inspect.check_pair("gpt2", "bert", texts=value)
    for value in ("2", 1.5, None.__class__):
        with pytest.raises(InputTypeError, match=r"^limit must be an integer"):
            ctkd_inspect.check_pair("gpt2", "bert", texts=["a"], limit=value)
    with pytest.raises(InputError, match="limit"):
        ctkd_inspect.check_pair("gpt2", "bert", texts=["a"], limit=0)


def test_soft_dtw_arguments():
    x, y = torch.randn(2, 5, 3, dtype=torch.float64), torch.randn(2, 4, 3, dtype=torch.float64)
    for value in (np.zeros((5, 3)), [[1.0]], None, 3):
        with pytest.raises(InputTypeError, match=r"^x must be a torch tensor"):
            ctkd_inspect.soft_dtw(value, y)
        with pytest.raises(InputTypeError, match=r"^y must be a torch tensor"):
            ctkd_inspect.soft_dtw_divergence(x, value)
        with pytest.raises(InputTypeError, match=r"^C must be a torch tensor"):
            ctkd_inspect.soft_dtw_from_cost(value)
    for value in ("a", float("nan"), 0, -1, None, [1.0]):
        with pytest.raises(InputError, match=r"^gamma must be a finite number > 0"):
            ctkd_inspect.soft_dtw(x, y, gamma=value)
    with pytest.raises(InputError, match="x_lengths"):
        ctkd_inspect.soft_dtw(x, y, x_lengths=["a", "b"])
    with pytest.raises(InputError, match="x_lengths"):
        ctkd_inspect.soft_dtw(x, y, x_lengths=[0.5, 1.0])
    with pytest.raises(InputError, match="dtypes"):
        ctkd_inspect.soft_dtw(x, y.float())
    with pytest.raises(InputError, match="cost"):
        ctkd_inspect.soft_dtw(x, y, cost="manhattan")


def test_engines_and_data(tmp_path):
    for value in (3, None, ["span"]):
        with pytest.raises(EngineError, match=r"^engine must be the name of a registered engine"):
            ctkd_inspect.get_engine(value)
    for value in (3, None, b"data.txt", ["data.txt"]):
        with pytest.raises(InputTypeError, match=r"^path must be a file path"):
            ctkd_inspect.read_texts(value)
    data = tmp_path / "data.txt"
    data.write_text("one\ntwo\n")
    for keyword, value in (("limit", "2"), ("limit", 1.5), ("split_paragraphs", "yes"), ("strict", 1),
                           ("field", 3), ("separator", None), ("max_text_bytes", "1K")):
        with pytest.raises(InputTypeError, match=rf"^{keyword} must be"):
            ctkd_inspect.read_texts(data, **{keyword: value})


def test_vocabulary_mappings_and_columns(tmp_path, alignment):
    from ctkd_inspect import columns, vocab

    gpt2 = vocab.vocabulary(ctkd_inspect.load_tokenizer("gpt2"), "gpt2")
    for value in (3, None, "gpt2", ctkd_inspect.load_tokenizer("gpt2")):
        with pytest.raises(InputTypeError, match=r"^teacher must be a Vocabulary"):
            vocab.exact_mapping(value, gpt2)
        with pytest.raises(InputTypeError, match=r"^student must be a Vocabulary"):
            vocab.mined_mapping(gpt2, value)
    with pytest.raises(InputTypeError, match=r"^mode must be"):
        vocab.exact_mapping(gpt2, gpt2, np.zeros((2, 2)))
    mapping = vocab.exact_mapping(gpt2, gpt2)
    for value in (3, None, b"m.json"):
        with pytest.raises(InputTypeError, match=r"^path must be a file path"):
            mapping.save(value)
        with pytest.raises(InputTypeError, match=r"^path must be the path of a saved mapping"):
            vocab.VocabMapping.load(value)
        with pytest.raises(InputTypeError, match=r"^path must be a file path"):
            columns.read_parquet(value)
        with pytest.raises(OutputError, match=r"^path must be a file path"):
            columns.write_parquet(alignment, value)
    for value in (3, None, "rows", {"a": 1}):
        with pytest.raises(InputTypeError, match=r"^alignments must be an Alignment or an iterable"):
            columns.to_arrow(value)
    with pytest.raises(InputError, match=r"alignments\[1\] is a int"):
        columns.to_arrow([alignment, 3])
    # an upper-case extension passes the CLI's check, so saving must accept it too
    assert vocab.VocabMapping.load(mapping.save(tmp_path / "MAP.JSON")).kind == "exact"
