"""Exports for peer trainers: TRL GOLD's groups, tokenkit's alignment matrices, DSKD's id maps. Each round-trips,
and the GOLD and tokenkit forms are checked against their own algorithms (GOLD's byte-offset walk and tokenkit's
cumulative-length walk, re-implemented here from their descriptions) on real texts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from ctkd_inspect import align
from ctkd_inspect.cli import main
from ctkd_inspect.errors import InputError
from ctkd_inspect.exports import (
    DSKD_FILES,
    GoldGroups,
    gold_groups_to_table,
    matrices_to_groups,
    read_dskd_mapping,
    read_gold_groups,
    read_tokenkit_matrices,
    to_gold_groups,
    to_tokenkit_matrices,
    write_dskd_mapping,
    write_gold_groups,
    write_tokenkit_matrices,
)
from ctkd_inspect.vocab import VocabMapping

README_TEXT = "The café costs 3.50€ 🦙 — naïve\tcode: x+=1"


def _groups(alignment):
    return [(g.teacher, g.student) for g in alignment.groups]


def _table_groups(table):
    return [(list(map(int, table.teacher(g))), list(map(int, table.student(g)))) for g in range(len(table))]


# ---------------------------------------------------------------------------------------------------------------
# oracles: the peers' own grouping walks


def _gold_walk(s_offsets, t_offsets):
    """GOLD's _align_by_byte_offsets as TRL describes it: walk both byte-offset arrays, advancing the side whose
    current token ends earlier; a group closes when both reach the same boundary. Returns (student, teacher)."""
    s_groups, t_groups, s_start, t_start, s, t = [], [], 0, 0, 0, 0
    while s < len(s_offsets) and t < len(t_offsets):
        if s_offsets[s][1] < t_offsets[t][1]:
            s += 1
        elif s_offsets[s][1] > t_offsets[t][1]:
            t += 1
        else:
            s, t = s + 1, t + 1
            s_groups.append(list(range(s_start, s)))
            t_groups.append(list(range(t_start, t)))
            s_start, t_start = s, t
    if s < len(s_offsets) or t < len(t_offsets):
        s_groups.append(list(range(s_start, len(s_offsets))))
        t_groups.append(list(range(t_start, len(t_offsets))))
    return s_groups, t_groups


def _byte_offsets(text, offsets):
    """Character offsets → UTF-8 byte offsets."""
    cumulative = np.concatenate([[0], np.cumsum([len(ch.encode("utf-8")) for ch in text])])
    return [(int(cumulative[a]), int(cumulative[b])) for a, b in offsets]


def _tokenkit_chunks(t_lengths, s_lengths):
    """tokenkit's get_alignment_indices core (no special-token replacements): at each step compare the cumulative
    length through teacher token i with that through student token j; equal closes a chunk (start_i, end_i,
    start_j, end_j) and advances both, otherwise the shorter side advances."""
    chunks, cum_t, cum_s = [], {}, {}
    i = j = start_i = start_j = 0
    while i < len(t_lengths) and j < len(s_lengths):
        cum_t[i] = cum_t.get(i - 1, 0) + t_lengths[i]
        cum_s[j] = cum_s.get(j - 1, 0) + s_lengths[j]
        if cum_t[i] == cum_s[j]:
            i, j = i + 1, j + 1
            chunks.append((start_i, i, start_j, j))
            start_i, start_j = i, j
        elif cum_t[i] < cum_s[j]:
            i += 1
        else:
            j += 1
    return chunks


@pytest.fixture(scope="module")
def plain_texts(corpus, tok):
    """Corpus texts where neither llama3 nor gemma2 splits a character across byte tokens (GOLD's walk over byte
    offsets and the span engine's character spans then see the same boundaries)."""
    from ctkd_inspect.text import tokenize

    out = []
    for text in corpus[:120]:
        t = tokenize(tok("llama3"), text, add_special_tokens=False)
        s = tokenize(tok("gemma2"), text, add_special_tokens=False)
        if not t.clusters and not s.clusters:
            out.append(text)
    assert len(out) > 80
    return out


# ---------------------------------------------------------------------------------------------------------------
# GOLD


def test_gold_groups_round_trip(tmp_path):
    alignment = align("llama3", "gemma2", README_TEXT)
    path = write_gold_groups(alignment, tmp_path / "groups.json")
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["format"] == "trl-gold-groups"
    groups = read_gold_groups(path)
    student_groups, teacher_groups = groups.as_tuple()  # GOLD's order: student first
    assert list(zip(teacher_groups, student_groups)) == _groups(alignment)
    assert _table_groups(gold_groups_to_table(groups)) == _groups(alignment)
    assert groups.teacher_ids == alignment.teacher.ids.tolist()
    assert groups.student_ids == alignment.student.ids.tolist()
    # the README's group 8: three Llama 3 byte tokens of " 🦙" against Gemma's ▁ and 🦙
    eight = _groups(alignment)[8]
    assert [alignment.teacher.tokens[i] for i in eight[0]] == ["ĠðŁ", "¦", "Ļ"]
    assert [alignment.student.tokens[j] for j in eight[1]] == ["▁", "🦙"]


def test_gold_groups_equal_golds_own_walk(plain_texts, tok):
    for text in plain_texts:
        alignment = align("llama3", "gemma2", text, add_special_tokens=False)
        t = tok("llama3").backend_tokenizer.encode(text, add_special_tokens=False)
        s = tok("gemma2").backend_tokenizer.encode(text, add_special_tokens=False)
        expected = _gold_walk(_byte_offsets(text, s.offsets), _byte_offsets(text, t.offsets))
        assert to_gold_groups(alignment).as_tuple() == expected, text[:60]


def test_gold_positions_without_special_tokens():
    alignment = align("llama3", "gemma2", "Hello world 12")
    with_specials = to_gold_groups(alignment)
    without = to_gold_groups(alignment, positions="non-special")
    # both sides start with a BOS: every index moves down by one, and the BOS ids leave the sequences
    assert [[i - 1 for i in g] for g in with_specials.teacher_groups] == without.teacher_groups
    assert [[j - 1 for j in g] for g in with_specials.student_groups] == without.student_groups
    assert without.teacher_ids == alignment.teacher.ids[1:].tolist()
    assert without.student_groups[0] == [0]
    # the same groups as aligning without special tokens in the first place
    plain = align("llama3", "gemma2", "Hello world 12", add_special_tokens=False)
    assert to_gold_groups(plain).as_tuple() == without.as_tuple()


def test_gold_pairs_with_an_empty_side():
    # BERT drops the second space: llama3's token for it has no partner (BERT's "bc" spans the dropped 0x01 and
    # pairs with llama3's "Ġb", "ā", "c")
    alignment = align("bert", "llama3", "a  b\x01c")
    groups = to_gold_groups(alignment)
    lonely = [(t, s) for s, t in zip(*groups.as_tuple()) if not t or not s]
    assert lonely and all(not t and len(s) == 1 for t, s in lonely)
    assert [alignment.student.tokens[s[0]] for _, s in lonely] == ["Ġ"]
    # GOLD drops pairs with an empty side; what remains are ours with partners on both sides
    kept = [(s, t) for s, t in zip(*groups.as_tuple()) if s and t]
    assert len(kept) == sum(1 for t, s in _groups(alignment) if t and s)


def test_gold_bad_documents(tmp_path):
    with pytest.raises(InputError, match="not a GOLD groups file"):
        read_gold_groups({"format": "other"})
    with pytest.raises(InputError, match="in pairs"):
        gold_groups_to_table(GoldGroups([[0]], [], [1], [1]))
    with pytest.raises(InputError, match="outside"):
        gold_groups_to_table(GoldGroups([[3]], [[0]], [1], [1]))
    with pytest.raises(InputError, match="no such file"):
        read_gold_groups(tmp_path / "missing.json")


# ---------------------------------------------------------------------------------------------------------------
# tokenkit


def test_tokenkit_matrices_round_trip(tmp_path):
    alignment = align("llama3", "gemma2", README_TEXT)
    path = write_tokenkit_matrices(alignment, tmp_path / "m.npz")
    matrices = read_tokenkit_matrices(path)
    # 16 groups, all with tokens on both sides: 16 chunks; BOS rows are all False
    assert matrices.teacher.shape == (len(alignment.teacher), 16) and matrices.student.shape == (20, 16)
    assert not matrices.teacher[0].any() and not matrices.student[0].any()
    assert (matrices.teacher[1:].sum(axis=1) == 1).all() and (matrices.student[1:].sum(axis=1) == 1).all()
    table = matrices_to_groups(matrices.teacher, matrices.student, matrices.teacher_special, matrices.student_special)
    assert _table_groups(table) == _groups(alignment)
    # tokenkit's collator layout: a = student rows, b = teacher rows, min(len) columns
    with np.load(path) as data:
        a, b = data["alignment_matrix_a_unconstrained"], data["alignment_matrix_b_unconstrained"]
    shared = min(len(alignment.teacher), len(alignment.student))
    assert a.shape == (1, len(alignment.student), shared) and b.shape == (1, len(alignment.teacher), shared)
    assert (a[0, :, :16] == matrices.student).all() and not a[0, :, 16:].any()
    assert (b[0, :, :16] == matrices.teacher).all()


def test_tokenkit_chunks_equal_tokenkits_own_walk(plain_texts, tok):
    from ctkd_inspect.vocab import canonical_bytes

    for text in plain_texts[:40]:
        alignment = align("llama3", "gemma2", text, add_special_tokens=False)
        matrices = to_tokenkit_matrices(alignment)
        # tokenkit walks byteified tokens; the canonical bytes of a token are exactly that
        t_len = [len(canonical_bytes(t, "byte-level")) for t in alignment.teacher.tokens]
        s_len = [len(canonical_bytes(t, "sentencepiece")) for t in alignment.student.tokens]
        chunks = _tokenkit_chunks(t_len, s_len)
        assert matrices.n_chunks == len(chunks), text[:60]
        for column, (si, ei, sj, ej) in enumerate(chunks):
            assert np.flatnonzero(matrices.teacher[:, column]).tolist() == list(range(si, ei))
            assert np.flatnonzero(matrices.student[:, column]).tolist() == list(range(sj, ej))


def test_tokenkit_tokens_without_partner_come_back_as_lonely_groups():
    alignment = align("bert", "llama3", "Hello  World\x01x ok")
    matrices = to_tokenkit_matrices(alignment)
    lonely_student = [g.student[0] for g in alignment.groups if not g.teacher]
    assert lonely_student  # llama3's space and control character tokens
    assert all(not matrices.student[j].any() for j in lonely_student)
    table = matrices_to_groups(matrices.teacher, matrices.student, matrices.teacher_special, matrices.student_special)
    assert _table_groups(table) == _groups(alignment)


def test_tokenkit_bad_matrices(tmp_path):
    with pytest.raises(InputError, match="same chunks"):
        matrices_to_groups(np.zeros((2, 2), bool), np.zeros((2, 3), bool))
    with pytest.raises(InputError, match="two chunks"):
        matrices_to_groups(np.ones((1, 2), bool), np.eye(2, dtype=bool))
    other = tmp_path / "x.npz"
    np.savez(other, a=np.zeros(2))
    with pytest.raises(InputError, match="not an alignment-matrices file"):
        read_tokenkit_matrices(other)


# ---------------------------------------------------------------------------------------------------------------
# DSKD


def _hand_mapping():
    # 5 teacher ids, 4 student ids; teacher 4 unmapped, student 3 unmapped; teacher 1 and 2 map to student 0
    return VocabMapping("mined", "canonical", "T", "S", np.array([2, 0, 0, 1, -1]), np.array([0, 1, 2, 0, -1]),
                        np.array([1, 3, 0, -1]), np.array([1, 0, 0, -1]), {"teacher_mappable": 4})


def _dskd_stu2tea(tea2stu: dict) -> dict:
    """DSKD's distiller.py: student id -> the list of teacher ids mapped to it, cut to max_align_num = 1."""
    stu2tea: dict = {}
    for tea_id in tea2stu:
        stu2tea.setdefault(tea2stu[tea_id], []).append(int(tea_id))
    return {stu: ids[:1] for stu, ids in stu2tea.items()}


def test_dskd_folder_round_trip(tmp_path):
    mapping = _hand_mapping()
    written = write_dskd_mapping(mapping, tmp_path / "maps")
    assert [p.name for p in written] == list(DSKD_FILES)
    tea2stu = json.loads((tmp_path / "maps" / "tea2stu_id_mapping.json").read_text())
    # string keys, every id in order: DSKD's torch.LongTensor(list(values())) is then indexed by teacher id
    assert tea2stu == {"0": 2, "1": 0, "2": 0, "3": 1, "4": -1}
    assert list(tea2stu.values()) == [2, 0, 0, 1, -1]
    stu2tea = json.loads((tmp_path / "maps" / "stu2tea_id_mapping.json").read_text())
    assert stu2tea == {"0": 1, "1": 3, "2": 0, "3": -1}
    again = read_dskd_mapping(tmp_path / "maps")
    for name in ("kind", "mode", "teacher", "student", "info"):
        assert getattr(again, name) == getattr(mapping, name)
    for name in ("teacher_to_student", "teacher_distance", "student_to_teacher", "student_distance"):
        assert np.array_equal(getattr(again, name), getattr(mapping, name))


def test_dskd_single_file_derives_the_inverse_as_dskd_does(tmp_path):
    path = write_dskd_mapping(_hand_mapping(), tmp_path / "tea2stu.json")[0]
    tea2stu = json.loads(path.read_text())
    again = read_dskd_mapping(path, teacher="T", student="S", student_size=4)
    assert again.kind == "dskd" and again.teacher_to_student.tolist() == [2, 0, 0, 1, -1]
    # DSKD keeps the first teacher id per student id (its -1 key aside, which is why unmapped ids stay -1 here)
    expected = _dskd_stu2tea(tea2stu)
    assert {s: [int(again.student_to_teacher[s])] for s in range(4) if again.student_to_teacher[s] >= 0} == {
        s: ids for s, ids in expected.items() if s >= 0}
    assert again.student_to_teacher.tolist() == [1, 3, 0, -1]


def test_dskd_real_exact_mapping_round_trip(tmp_path, tok):
    from ctkd_inspect.vocab import exact_mapping, vocabulary

    mapping = exact_mapping(vocabulary(tok("llama3"), "llama3"), vocabulary(tok("gemma2"), "gemma2"))
    write_dskd_mapping(mapping, tmp_path / "maps")
    tea2stu = json.loads((tmp_path / "maps" / "tea2stu_id_mapping.json").read_text())
    assert len(tea2stu) == 128_256 and sum(v >= 0 for v in tea2stu.values()) == 85_699
    assert tok("gemma2").convert_ids_to_tokens(tea2stu[str(tok("llama3").convert_tokens_to_ids("Ġthe"))]) == "▁the"
    again = read_dskd_mapping(tmp_path / "maps")
    assert np.array_equal(again.teacher_to_student, mapping.teacher_to_student)
    assert np.array_equal(again.student_to_teacher, mapping.student_to_teacher)
    assert again.coverage() == mapping.coverage()


def test_dskd_bad_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="lacks"):
        read_dskd_mapping(tmp_path / "empty")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"a": "b"}))
    with pytest.raises(InputError, match="integer ids"):
        read_dskd_mapping(bad)


# ---------------------------------------------------------------------------------------------------------------
# the command


def _run(*args):
    return CliRunner().invoke(main, ["export", *args])


def test_cli_gold_and_tokenkit(tmp_path):
    out = _run("llama3", "gemma2", README_TEXT, "--format", "gold", "-o", str(tmp_path / "g.json"),
               "--no-special-tokens")
    assert out.exit_code == 0, out.output
    groups = read_gold_groups(tmp_path / "g.json")
    alignment = align("llama3", "gemma2", README_TEXT, add_special_tokens=False)
    assert list(zip(groups.teacher_groups, groups.student_groups)) == _groups(alignment)
    out = _run("llama3", "gemma2", README_TEXT, "--format", "tokenkit", "-o", str(tmp_path / "m.npz"),
               "--engine", "mined")
    assert out.exit_code == 0, out.output
    matrices = read_tokenkit_matrices(tmp_path / "m.npz")
    assert matrices.meta["engine"] == "mined"
    mined = align("llama3", "gemma2", README_TEXT, engine="mined")
    table = matrices_to_groups(matrices.teacher, matrices.student, matrices.teacher_special, matrices.student_special)
    assert _table_groups(table) == _groups(mined)


def test_cli_dskd(tmp_path):
    out = _run("llama3", "gemma2", "--format", "dskd", "--mapping", "exact", "-o", str(tmp_path / "maps"))
    assert out.exit_code == 0, out.output
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == sorted(DSKD_FILES)
    # the exact map leaves 128,256 - 85,699 Llama 3 ids without a target, written as -1: DSKD cannot express that
    written = json.loads((tmp_path / "maps" / DSKD_FILES[0]).read_text())
    assert sum(v == -1 for v in written.values()) == 42_557
    assert "warning: 42,557 of 128,256 llama3 ids have no gemma2 target and are written as -1" in out.stderr
    # the files are there: a second export is refused before any work, then allowed with --overwrite
    out = _run("no-such-tokenizer", "gemma2", "--format", "dskd", "--mapping", "exact", "-o", str(tmp_path / "maps"))
    assert out.exit_code == 2 and "--overwrite" in out.stderr
    out = _run("llama3", "gemma2", "--format", "dskd", "--mapping", "exact", "-o", str(tmp_path / "t2s.json"))
    assert out.exit_code == 0
    assert len(json.loads((tmp_path / "t2s.json").read_text())) == 128_256


@pytest.mark.parametrize(("args", "message"), [
    (["x", "--format", "dskd", "--mapping", "exact", "-o", "OUT/m"], "takes no TEXT"),
    (["--format", "dskd", "-o", "OUT/m"], "needs --mapping"),
    (["x", "--format", "gold", "--mapping", "exact", "-o", "OUT/g.json"], "--mapping applies to --format dskd"),
    (["x", "--format", "gold", "-o", "OUT/g.npz"], "unknown extension"),
    (["x", "--format", "tokenkit", "-o", "OUT/missing/m.npz"], "does not exist"),
    (["x", "--format", "tokenkit", "--positions", "non-special", "-o", "OUT/m.npz"], "--positions applies"),
    (["x", "--format", "gold", "--engine", "nope", "-o", "OUT/g.json"], "nope"),
    (["--format", "dskd", "--mapping", "fuzzy", "-o", "OUT/m"], "'fuzzy' is not a mapping"),
    (["--format", "dskd", "--mapping", "OUT/none.npz", "-o", "OUT/m"], "no such mapping file"),
])
def test_cli_bad_requests_fail_before_any_work(tmp_path, args, message):
    # an unknown tokenizer would exit 3: exit 2 shows each request was refused before tokenizers were looked up
    args = [a.replace("OUT", str(tmp_path)) for a in args]
    out = _run("no-such-tokenizer", "gemma2", *args)
    assert out.exit_code == 2, out.output
    assert message in out.output


def test_cli_dskd_folder_under_a_file_is_refused_for_what_it_is(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    out = _run("no-such-tokenizer", "gemma2", "--format", "dskd", "--mapping", "exact", "-o",
               str(tmp_path / "notes.txt" / "maps"))
    assert out.exit_code == 2 and "notes.txt is not a folder (a file has that name)" in out.output
