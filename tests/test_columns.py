"""The schema in columns: one Arrow row per alignment, a lossless round trip for every engine, versioned Parquet."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ctkd_inspect import align, load_tokenizer, tokenize
from ctkd_inspect import columns as columns_module
from ctkd_inspect.alignment import Alignment, GroupTable
from ctkd_inspect.columns import (
    COLUMNS_VERSION,
    AlignmentParquetWriter,
    alignments_from_arrow,
    arrow_schema,
    check_columns_version,
    from_arrow,
    iter_alignments,
    read_parquet,
    read_parquet_row,
    read_table,
    to_arrow,
    to_record_batch,
    write_parquet,
)
from ctkd_inspect.engines.dtw import CdmEngine, MinedEngine
from ctkd_inspect.engines.softdtw import SoftDTWEngine
from ctkd_inspect.errors import InputError, OutputError
from ctkd_inspect.metrics import compute_metrics
from ctkd_inspect.signals import Signals
from tests.engines.helpers import from_spans

TEXT = "The café costs 3.50€ 🦙 — naïve\tcode: x+=1"


def round_trip(alignment: Alignment) -> Alignment:
    again = from_arrow(to_arrow(alignment))
    assert again.to_dict() == alignment.to_dict()
    assert again.to_json() == alignment.to_json()  # same key order too
    return again


# -- every engine's output --------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["span", "mined"])
def test_round_trip_with_specials_and_byte_clusters(engine):
    alignment = align("llama3", "gemma2", TEXT, engine=engine)
    assert alignment.teacher.clusters and alignment.teacher.special[0]  # the case is really exercised
    round_trip(alignment)


def test_round_trip_reference_mode_and_no_special_tokens():
    round_trip(align("llama2", "gpt2", TEXT, engine="mined", mode="reference", add_special_tokens=False))


def test_round_trip_wordpiece_with_no_partner_tokens():
    alignment = align("gemma2", "bert", "a\n\nb  [x]")
    assert alignment.metrics["unmatched"]["teacher"]["no-partner"] > 0
    again = round_trip(alignment)
    assert again.student.scheme == "wordpiece" and again.student.continuation_prefix == "##"


@pytest.mark.parametrize("text", ["", " ", "\n"])
def test_round_trip_empty_and_blank_texts(text):
    for engine in ("span", "mined"):
        round_trip(align("llama3", "bert", text, engine=engine))


def synthetic_signals(tokens, topk, seed):
    rng = np.random.default_rng(seed)
    n = len(tokens)
    return Signals("synthetic", tokens.ids, rng.uniform(0.1, 3.0, n), np.tile(np.asarray(topk), (n, 1)),
                   np.full((n, len(topk)), 1 / len(topk)))


def test_round_trip_cdm_with_cdm_groups_path_and_dynamic_mapping():
    teacher_tok, student_tok = load_tokenizer("llama2"), load_tokenizer("smollm2")
    teacher, student = tokenize(teacher_tok, TEXT), tokenize(student_tok, TEXT)
    # llama2 "▁princi" and "▁grande" have no exact smollm2 match; "Ġprinc" and "Ġgrand" are within θ
    alignment = CdmEngine().align(teacher, student, teacher_signals=synthetic_signals(teacher, [2623, 6815], 0),
                                  student_signals=synthetic_signals(student, [4074, 5295], 1),
                                  teacher_tokenizer=teacher_tok, student_tokenizer=student_tok)
    assert alignment.extra["dynamic_mapping"] == {"2623": 4074, "6815": 5295}
    assert alignment.extra["cdm_groups"] and alignment.extra["path"] and "teacher_factors" in alignment.options
    again = round_trip(alignment)
    assert again.table.columns["cost"].dtype == np.float64


def test_round_trip_softdtw_with_its_soft_alignment_matrix():
    text = "abcdefghij"
    teacher = from_spans("t", text, [(0, 0), (0, 2), (2, 4), (4, 5), (5, 6), (6, 8), (8, 10)],
                         special=[True] + [False] * 6)
    student = from_spans("s", text, [(0, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 8), (8, 10)])
    rng = np.random.default_rng(3)
    vectors_t, vectors_s = rng.normal(size=(7, 4)), rng.normal(size=(7, 4))

    def signals(tokens, vectors):
        n = len(tokens)
        return Signals("synthetic", tokens.ids, np.zeros(n), np.zeros((n, 1), np.int64), np.ones((n, 1)), vectors,
                       vectors)

    alignment = SoftDTWEngine().align(teacher, student, teacher_signals=signals(teacher, vectors_t),
                                      student_signals=signals(student, vectors_s), ridge=1.0)
    assert len(alignment.extra["soft_alignment"]["matrix"]) == 7
    again = round_trip(alignment)
    assert list(again.table.columns) == ["cost", "soft_mass"]


def test_a_file_may_mix_engines_and_the_metadata_says_so():
    rows = [align("llama3", "gemma2", TEXT), align("llama3", "gemma2", TEXT, engine="mined"),
            align("llama3", "gemma2", "other text")]
    table = to_arrow(rows)
    assert table.column("engine").to_pylist() == ["span", "mined", "span"]
    metadata = table.schema.metadata
    assert metadata[b"ctkd_inspect.schema_version"].decode() == COLUMNS_VERSION
    assert json.loads(metadata[b"ctkd_inspect.engines"]) == ["span", "mined"]
    assert json.loads(metadata[b"ctkd_inspect.options"]) == {"span": {"add_special_tokens": True},
                                                            "mined": {"add_special_tokens": True,
                                                                      "mode": "canonical"}}
    assert [a.to_dict() for a in alignments_from_arrow(table)] == [a.to_dict() for a in rows]


def test_metadata_options_keep_only_what_every_row_of_an_engine_shares():
    rows = [align("llama3", "gemma2", TEXT, engine="mined"),
            align("llama3", "gemma2", TEXT, engine="mined", mode="reference")]
    options = json.loads(to_arrow(rows).schema.metadata[b"ctkd_inspect.options"])
    assert options == {"mined": {"add_special_tokens": True}}


# -- the required columns, checked by hand ----------------------------------------------------------------------


def hand_built() -> Alignment:
    """Teacher ``<s> ab c d`` and student ``a bc | d``, with a one-sided group (the teacher's zero-width token)."""
    text = "abcd"
    teacher = from_spans("t", text, [(0, 0), (0, 2), (2, 3), (3, 3), (3, 4)], special=[True, False, False, False,
                                                                                        False])
    student = from_spans("s", text, [(0, 1), (1, 3), (3, 4)])
    table = GroupTable.from_lists([[1, 2], [3], [4]], [[0, 1], [], [2]], {"cost": [0.5, 0.0, 1.25],
                                                                         "note": ["x", None, "z"]})
    alignment = Alignment(teacher, student, table, engine="hand", options={"k": [1, 2]}, extra={"path": [[1, 0]]})
    alignment.metrics = compute_metrics(alignment)
    return alignment


def test_required_columns_hold_the_values_worked_out_by_hand():
    alignment = hand_built()
    table = to_arrow(alignment)
    row = table.to_pylist()[0]
    assert row["text"] == "abcd" and row["engine"] == "hand"
    assert row["teacher_ids"] == [0, 1, 2, 3, 4] and row["student_ids"] == [0, 1, 2]
    assert row["teacher_group"] == [-1, 0, 0, 1, 2]  # the special token is in no group
    assert row["student_group"] == [0, 0, 2]  # group 1 has no student side
    assert row["alignment_rate"] == pytest.approx(1 / 3)  # only "d" ↔ "d" is an exact 1:1 group
    assert row["n_groups"] == 3
    assert row["group_cost"] == [0.5, 0.0, 1.25]
    assert json.loads(row["group_columns"]) == {"cost": None, "note": ["x", None, "z"]}
    assert json.loads(row["options"]) == {"k": [1, 2]} and json.loads(row["extra"]) == {"path": [[1, 0]]}
    schema = table.schema
    for name in ("teacher_ids", "student_ids"):
        assert schema.field(name).type == pa.list_(pa.int64())
    for name in ("teacher_group", "student_group"):
        assert schema.field(name).type == pa.list_(pa.int32())
    assert schema.field("alignment_rate").type == pa.float64()
    again = round_trip(alignment)
    assert again.groups[1].teacher == [3] and again.groups[1].student == []
    assert again.groups[1].extra == {"cost": 0.0, "note": None}


def test_a_group_with_both_sides_empty_and_trailing_one_sided_groups_survive():
    text = "ab"
    teacher = from_spans("t", text, [(0, 1), (1, 2)])
    student = from_spans("s", text, [(0, 2)])
    table = GroupTable.from_lists([[0, 1], [], []], [[0], [], []])  # two empty groups at the end
    again = round_trip(Alignment(teacher, student, table, engine="hand"))
    assert len(again.table) == 3


def test_groups_that_list_a_token_twice_or_out_of_order_are_refused():
    text = "ab"
    teacher = from_spans("t", text, [(0, 1), (1, 2)])
    student = from_spans("s", text, [(0, 2)])
    for t_groups in ([[1, 0]], [[0, 1], [1]]):
        s_groups = [[0]] + [[] for _ in t_groups[1:]]
        bad = Alignment(teacher, student, GroupTable.from_lists(t_groups, s_groups), engine="hand")
        with pytest.raises(InputError, match="twice or out of ascending order"):
            to_arrow(bad)


def test_pieces_are_stored_when_hand_set_or_asked_for_and_derived_otherwise():
    alignment = align("llama3", "gemma2", "naïve 🦙")
    table = to_arrow(alignment)
    assert table.column("teacher_pieces").null_count == 1  # derived on the way back
    table = to_arrow(alignment, pieces=True)
    assert table.column("teacher_pieces").to_pylist()[0] == alignment.teacher.pieces
    assert from_arrow(table).teacher._pieces == alignment.teacher.pieces
    # pieces that are not what the tokens give (hand-set) are kept as they are
    alignment.student._pieces = [p.upper() for p in alignment.student.pieces]
    assert to_arrow(alignment).column("student_pieces").to_pylist()[0] == alignment.student._pieces
    round_trip(alignment)


def test_hand_set_byte_clusters_are_kept():
    alignment = align("llama3", "gemma2", "a 🦙")
    alignment.teacher._clusters = [(0, 1, "not derived")]
    assert round_trip(alignment).teacher.clusters == [(0, 1, "not derived")]


# -- reading: rows by index, versions ---------------------------------------------------------------------------


def test_one_row_by_index_and_errors_for_bad_indices():
    rows = [align("llama3", "gemma2", text) for text in ("one", "two two", "three three three")]
    table = to_arrow(rows)
    assert from_arrow(table, 1).text == "two two" and from_arrow(table, -1).text == "three three three"
    batch = table.to_batches()[0]
    assert from_arrow(batch, 2).to_dict() == rows[2].to_dict()
    with pytest.raises(InputError, match="index 3 is out of range"):
        from_arrow(table, 3)
    with pytest.raises(InputError, match="3 rows: pass index="):
        from_arrow(table)
    with pytest.raises(InputError, match="pyarrow Table or RecordBatch"):
        from_arrow(rows[0].to_dict())


def test_many_record_batches(monkeypatch):
    monkeypatch.setattr(columns_module, "_BATCH_ROWS", 2)
    rows = [align("llama3", "gemma2", f"text number {k}") for k in range(5)]
    table = to_arrow(rows)
    assert [b.num_rows for b in table.to_batches()] == [2, 2, 1]
    assert [a.text for a in iter_alignments(table)] == [f"text number {k}" for k in range(5)]
    assert from_arrow(table, 3).to_dict() == rows[3].to_dict()


def with_version(table: pa.Table, version: str) -> pa.Table:
    metadata = dict(table.schema.metadata)
    metadata[b"ctkd_inspect.schema_version"] = version.encode()
    return table.replace_schema_metadata(metadata)


def test_versions():
    table = to_arrow(align("llama3", "gemma2", "hi"))
    assert check_columns_version(table.schema) == COLUMNS_VERSION
    major = int(COLUMNS_VERSION.split(".")[0])
    assert from_arrow(with_version(table, f"{major}.99")).text == "hi"  # a newer minor version adds columns only
    with pytest.raises(InputError, match=f"columns version {major + 1}.0, newer than this ctkd-inspect reads"):
        from_arrow(with_version(table, f"{major + 1}.0"))
    with pytest.raises(InputError, match=r"no ctkd_inspect\.schema_version"):
        from_arrow(table.replace_schema_metadata({}))
    with pytest.raises(InputError, match="lacks the columns teacher_tokens"):
        from_arrow(table.drop_columns(["teacher_tokens"]))


def test_rows_come_back_as_writable_arrays():
    again = from_arrow(to_arrow(align("llama3", "gemma2", "hi there")))
    for array in (again.teacher.ids, again.teacher.starts, again.student.special, again.table.teacher_indices):
        assert array.flags.writeable
    assert again.teacher.ids.dtype == np.int64 and again.teacher.starts.dtype == np.int64


# -- Parquet ----------------------------------------------------------------------------------------------------


def test_parquet_round_trip_overwrite_and_suffix(tmp_path):
    rows = [align("llama3", "gemma2", TEXT), align("llama3", "gemma2", TEXT, engine="mined")]
    path = tmp_path / "run.parquet"
    assert write_parquet(rows, path) == path
    assert [a.to_dict() for a in read_parquet(path)] == [a.to_dict() for a in rows]
    assert read_table(path).schema.metadata[b"ctkd_inspect.schema_version"] == COLUMNS_VERSION.encode()
    before = path.read_bytes()
    with pytest.raises(OutputError, match="exists; pass --overwrite"):
        write_parquet(rows[:1], path)
    assert path.read_bytes() == before
    write_parquet(rows[:1], path, overwrite=True)
    assert len(read_parquet(path)) == 1
    with pytest.raises(OutputError, match="unknown extension"):
        write_parquet(rows, tmp_path / "run.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.parquet"]  # no temporary file left behind


def test_a_failed_write_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "run.parquet"
    write_parquet(align("llama3", "gemma2", "hi"), path)
    before = path.read_bytes()
    bad = align("llama3", "gemma2", "hi")
    bad.extra["oops"] = object()  # not JSON-ready
    with pytest.raises(InputError, match="cannot store the alignment in columns"):
        write_parquet(bad, path, overwrite=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.parquet"]


def test_incremental_writer_and_one_row_from_its_row_groups(tmp_path):
    texts = [f"text {k} 🦙" for k in range(7)]
    rows = [align("llama3", "gemma2", t) for t in texts]
    path = tmp_path / "corpus.parquet"
    with AlignmentParquetWriter(path, engines=["span"], options={"span": {"add_special_tokens": True}}) as writer:
        assert writer.write(rows[:3]) == 3
        assert not path.exists()  # the file appears only when the block ends
        writer.write(rows[3:])
    handle = pq.ParquetFile(path)
    assert handle.num_row_groups == 2 and handle.metadata.num_rows == 7
    assert read_parquet_row(path, 5).to_dict() == rows[5].to_dict()
    assert read_parquet_row(path, -7).text == texts[0]
    with pytest.raises(InputError, match="out of range"):
        read_parquet_row(path, 7)
    assert [a.text for a in read_parquet(path)] == texts


def test_a_failing_writer_block_leaves_no_file(tmp_path):
    path = tmp_path / "corpus.parquet"
    with pytest.raises(RuntimeError), AlignmentParquetWriter(path) as writer:
        writer.write(align("llama3", "gemma2", "hi"))
        raise RuntimeError("the corpus run failed")
    assert list(tmp_path.iterdir()) == []


def test_plain_parquet_writer_with_the_published_schema(tmp_path):
    rows = [align("llama3", "gemma2", "a b"), align("llama3", "gemma2", "c d", engine="mined")]
    schema = arrow_schema(engines=["span", "mined"])
    path = tmp_path / "plain.parquet"
    with pq.ParquetWriter(path, schema) as writer:
        for row in rows:
            writer.write_batch(to_record_batch(row, schema=schema))
    assert [a.to_dict() for a in read_parquet(path)] == [a.to_dict() for a in rows]


def test_reading_something_else_is_a_clear_error(tmp_path):
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1]}), other)
    with pytest.raises(InputError, match="not an alignment table"):
        read_parquet(other)
    with pytest.raises(InputError, match="no such file"):
        read_parquet(tmp_path / "missing.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        read_parquet_row(tmp_path / "junk.parquet", 0)


def test_round_trip_over_real_corpus_texts(corpus):
    from ctkd_inspect.engines.span import SpanEngine
    from ctkd_inspect.text import tokenize_corpus

    texts = corpus[:300]
    teacher = tokenize_corpus(load_tokenizer("llama2"), texts)
    student = tokenize_corpus(load_tokenizer("bert"), texts)
    rows = [SpanEngine().align(teacher[k], student[k]) for k in range(len(texts))]
    rows += [MinedEngine().align(teacher[k], student[k]) for k in range(20)]
    again = alignments_from_arrow(to_arrow(rows))
    assert all(a.to_dict() == b.to_dict() for a, b in zip(rows, again)) and len(again) == len(rows)
    # the per-token group columns are the alignment's own group_of
    for a, b in zip(rows[:50], again[:50]):
        assert np.array_equal(a.group_of("teacher"), b.group_of("teacher"))


def test_importing_the_module_does_not_import_pyarrow():
    import subprocess
    import sys

    code = "import sys, ctkd_inspect.columns; print('pyarrow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
