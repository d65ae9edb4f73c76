"""Exports in the formats peer trainers consume, each with a reader that round-trips it.

**TRL GOLD's groups** (:func:`to_gold_groups`, :func:`write_gold_groups`, :func:`read_gold_groups`). GOLD's
cross-tokenizer ULD loss (``trl.experimental.gold``) groups the tokens of one completion into
``(student_groups, teacher_groups)``: two equally long lists of token-index lists, **student first**, the k-th
student group aligned with the k-th teacher group (what its ``_build_alignment_groups_from_ids``, and since TRL PR
#5885 ``_align_by_byte_offsets``, return for one example), which ``_merge_probabilities_with_alignment_groups``
then merges group by group. Ours are the alignment's groups in order; a group with one empty side (a token the other
tokenizer covers with no token) is written with an empty list there, which GOLD drops as it drops its own
degenerate pairs. Indices point into the sequences written beside them (``student_ids``/``teacher_ids``): the
alignment's full token lists, or, with ``positions="non-special"``, the lists with special tokens removed — GOLD's
completion sequences are encoded without special tokens, so align with ``add_special_tokens=False`` (CLI
``--no-special-tokens``) or export with ``non-special`` positions to feed GOLD directly. The file is JSON::

    {"format": "trl-gold-groups", "version": 1, "student_groups": [[1], [2, 3], ...],
     "teacher_groups": [[1], [2], ...], "student_ids": [...], "teacher_ids": [...], "positions": "tokens",
     "teacher": "llama3", "student": "gemma2", "text": "...", "engine": "span"}

**tokenkit's dense alignment matrices** (:func:`to_tokenkit_matrices`, :func:`write_tokenkit_matrices`,
:func:`read_tokenkit_matrices`, :func:`matrices_to_groups`). tokenkit (ALM, ``tokenkit/align.py``) marks which
chunk each token belongs to with boolean matrices of shape ``(tokens, chunks)``, one per side; its losses sum
log-probabilities down each column. A chunk is a group with tokens on both sides; special tokens and tokens with no
partner are in no chunk (all-False rows, as tokenkit leaves the tokens its walk drops). The ``.npz`` holds
``teacher`` ``(len_teacher, n_chunks)`` and ``student`` ``(len_student, n_chunks)``, both sides' ``*_ids`` and
``*_special``, a JSON ``meta``, and the same matrices in the layout tokenkit's collator hands its losses for a batch
of one: ``alignment_matrix_a_unconstrained`` (the student, ``(1, len_student, min(len_teacher, len_student))``) and
``alignment_matrix_b_unconstrained`` (the teacher, ``(1, len_teacher, same)``), columns beyond the chunks False.

**DSKD's id maps** (:func:`write_dskd_mapping`, :func:`read_dskd_mapping`). DSKD (``code/distiller.py``) loads
``--teacher-to-student-id-mapping``, a JSON object ``{"teacher_id": student_id}`` with string keys, and turns its
values into a tensor indexed by teacher id (so every id is written, in id order, ``-1`` where the mapping has no
target; prefer the MinED mapping, which maps every non-special id). DSKD has no value for "no target": it inverts
the map by value, so a ``-1`` there indexes the last student id; the command line warns when it writes any.
Written as a folder: ``tea2stu_id_mapping.json``, ``stu2tea_id_mapping.json`` (the student→teacher direction,
same layout) and ``ctkd_mapping.json`` (kind, mode, names and edit distances, so :func:`read_dskd_mapping` restores
the :class:`~ctkd_inspect.vocab.VocabMapping` exactly), or as one ``.json`` file holding the teacher→student map alone
(DSKD derives the other direction itself: the first teacher id of each student id).

Every writer writes atomically (a temporary file renamed into place); paths are checked by the callers
(:func:`ctkd_inspect.outputs.check_output_path`) before any work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .alignment import Alignment, GroupTable
from .errors import InputError
from .outputs import atomic_path, atomic_write_text

__all__ = ["DSKD_FILES", "GoldGroups", "TokenkitMatrices", "gold_groups_to_table", "matrices_to_groups",
           "read_dskd_mapping", "read_gold_groups", "read_tokenkit_matrices", "to_gold_groups",
           "to_tokenkit_matrices", "write_dskd_mapping", "write_gold_groups", "write_tokenkit_matrices"]

GOLD_FORMAT = "trl-gold-groups"
TOKENKIT_FORMAT = "tokenkit-alignment-matrices"
FORMAT_VERSION = 1
#: The files of a DSKD mapping folder: teacher→student, student→teacher, and our metadata.
DSKD_FILES = ("tea2stu_id_mapping.json", "stu2tea_id_mapping.json", "ctkd_mapping.json")


# ---------------------------------------------------------------------------------------------------------------
# TRL GOLD


@dataclass
class GoldGroups:
    """GOLD's groups of one example (student first, as GOLD returns them) and the sequences they index."""

    student_groups: list[list[int]]
    teacher_groups: list[list[int]]
    student_ids: list[int]
    teacher_ids: list[int]
    positions: str = "tokens"
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"format": GOLD_FORMAT, "version": FORMAT_VERSION, "student_groups": self.student_groups,
                "teacher_groups": self.teacher_groups, "student_ids": self.student_ids,
                "teacher_ids": self.teacher_ids, "positions": self.positions, **self.meta}

    def as_tuple(self) -> tuple[list[list[int]], list[list[int]]]:
        """``(student_groups, teacher_groups)``, what GOLD's alignment function returns."""
        return self.student_groups, self.teacher_groups


def _position_maps(alignment: Alignment, positions: str) -> tuple[np.ndarray, np.ndarray]:
    """For each side, token index → position in the exported sequence (-1 for dropped special tokens)."""
    if positions not in ("tokens", "non-special"):
        raise InputError(f"positions must be 'tokens' or 'non-special', got {positions!r}")
    out = []
    for tokens in (alignment.teacher, alignment.student):
        if positions == "tokens":
            out.append(np.arange(len(tokens)))
        else:
            keep = ~tokens.special
            position = np.full(len(tokens), -1, dtype=np.int64)
            position[keep] = np.arange(int(keep.sum()))
            out.append(position)
    return out[0], out[1]


def to_gold_groups(alignment: Alignment, *, positions: str = "tokens") -> GoldGroups:
    """The alignment's groups in GOLD's form (see the module docstring).

    Args:
        alignment: any engine's alignment.
        positions: ``tokens`` (indices into the full token lists) or ``non-special`` (special tokens removed from
            both sequences, as GOLD's completions are encoded).

    Raises:
        InputError: an unknown ``positions``.
    """
    t_map, s_map = _position_maps(alignment, positions)
    table = alignment.table
    teacher_groups = [t_map[table.teacher(g)].tolist() for g in range(len(table))]
    student_groups = [s_map[table.student(g)].tolist() for g in range(len(table))]
    t_keep = t_map >= 0
    s_keep = s_map >= 0
    meta = {"teacher": alignment.teacher.name, "student": alignment.student.name, "text": alignment.text,
            "engine": alignment.engine}
    return GoldGroups(student_groups, teacher_groups, alignment.student.ids[s_keep].tolist(),
                      alignment.teacher.ids[t_keep].tolist(), positions, meta)


def gold_groups_to_table(groups: GoldGroups) -> GroupTable:
    """Our :class:`~ctkd_inspect.alignment.GroupTable` (teacher first) from GOLD's groups.

    Raises:
        InputError: the two lists have different lengths, or an index is outside its sequence.
    """
    if len(groups.student_groups) != len(groups.teacher_groups):
        raise InputError(f"GOLD's groups come in pairs: {len(groups.student_groups)} student groups but "
                         f"{len(groups.teacher_groups)} teacher groups")
    for name, lists, ids in (("student", groups.student_groups, groups.student_ids),
                             ("teacher", groups.teacher_groups, groups.teacher_ids)):
        for group in lists:
            if any(not (0 <= int(i) < len(ids)) for i in group):
                raise InputError(f"a {name} group holds an index outside its {len(ids)}-token sequence")
    return GroupTable.from_lists(groups.teacher_groups, groups.student_groups)


def write_gold_groups(alignment: Alignment, path: str | Path, *, positions: str = "tokens") -> Path:
    """Write :func:`to_gold_groups` as JSON to ``path`` (atomically)."""
    document = to_gold_groups(alignment, positions=positions).to_dict()
    return atomic_write_text(path, json.dumps(document, ensure_ascii=False) + "\n")


def read_gold_groups(source: str | Path | dict) -> GoldGroups:
    """Read GOLD groups written by :func:`write_gold_groups` (a path or the parsed dict).

    Raises:
        InputError: not such a file, or its lists are malformed.
    """
    data = source if isinstance(source, dict) else _read_json(source, "GOLD groups")
    if data.get("format") != GOLD_FORMAT:
        raise InputError(f"{source if not isinstance(source, dict) else 'the document'} is not a GOLD groups file "
                         f"(format {data.get('format')!r}, expected {GOLD_FORMAT!r})")
    try:
        groups = GoldGroups([[int(i) for i in g] for g in data["student_groups"]],
                            [[int(i) for i in g] for g in data["teacher_groups"]],
                            [int(i) for i in data["student_ids"]], [int(i) for i in data["teacher_ids"]],
                            str(data.get("positions", "tokens")),
                            {k: v for k, v in data.items() if k in ("teacher", "student", "text", "engine")})
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"malformed GOLD groups ({type(exc).__name__}: {exc})") from None
    gold_groups_to_table(groups)  # validates pairs and index ranges
    return groups


# ---------------------------------------------------------------------------------------------------------------
# tokenkit


@dataclass
class TokenkitMatrices:
    """tokenkit-style alignment matrices of one example (see the module docstring)."""

    teacher: np.ndarray  # (len_teacher, n_chunks) bool
    student: np.ndarray  # (len_student, n_chunks) bool
    teacher_ids: np.ndarray
    student_ids: np.ndarray
    teacher_special: np.ndarray
    student_special: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def n_chunks(self) -> int:
        return int(self.teacher.shape[1])

    def tokenkit_batch(self) -> dict[str, np.ndarray]:
        """The matrices as tokenkit's collator names and shapes them for a batch of one: ``a`` is the student
        (``(1, len_student, shared)``), ``b`` the teacher, ``shared = min(len_teacher, len_student)`` columns."""
        shared = min(self.teacher.shape[0], self.student.shape[0])
        out = {}
        for key, matrix in (("alignment_matrix_a_unconstrained", self.student),
                            ("alignment_matrix_b_unconstrained", self.teacher)):
            padded = np.zeros((1, matrix.shape[0], shared), dtype=bool)
            padded[0, :, :matrix.shape[1]] = matrix
            out[key] = padded
        return out


def to_tokenkit_matrices(alignment: Alignment) -> TokenkitMatrices:
    """Dense boolean chunk matrices of the alignment: one column per group with tokens on both sides."""
    table = alignment.table
    chunks = np.flatnonzero((table.teacher_sizes > 0) & (table.student_sizes > 0))
    teacher = np.zeros((len(alignment.teacher), len(chunks)), dtype=bool)
    student = np.zeros((len(alignment.student), len(chunks)), dtype=bool)
    for column, g in enumerate(chunks.tolist()):
        teacher[table.teacher(g), column] = True
        student[table.student(g), column] = True
    meta = {"format": TOKENKIT_FORMAT, "version": FORMAT_VERSION, "teacher": alignment.teacher.name,
            "student": alignment.student.name, "text": alignment.text, "engine": alignment.engine}
    return TokenkitMatrices(teacher, student, alignment.teacher.ids.copy(), alignment.student.ids.copy(),
                            alignment.teacher.special.copy(), alignment.student.special.copy(), meta)


def write_tokenkit_matrices(alignment: Alignment, path: str | Path) -> Path:
    """Write :func:`to_tokenkit_matrices` as ``.npz`` to ``path`` (atomically)."""
    matrices = to_tokenkit_matrices(alignment)
    with atomic_path(path) as temporary, open(temporary, "wb") as stream:
        np.savez_compressed(stream, teacher=matrices.teacher, student=matrices.student,
                            teacher_ids=matrices.teacher_ids, student_ids=matrices.student_ids,
                            teacher_special=matrices.teacher_special, student_special=matrices.student_special,
                            meta=np.array(json.dumps(matrices.meta, ensure_ascii=False)),
                            **matrices.tokenkit_batch())
    return Path(path)


def read_tokenkit_matrices(path: str | Path) -> TokenkitMatrices:
    """Read matrices written by :func:`write_tokenkit_matrices`.

    Raises:
        InputError: the file is missing or not such a file.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            matrices = TokenkitMatrices(data["teacher"].astype(bool), data["student"].astype(bool),
                                        data["teacher_ids"], data["student_ids"], data["teacher_special"].astype(bool),
                                        data["student_special"].astype(bool), meta)
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"{path} is not an alignment-matrices file written by ctkd-inspect ({exc})") from None
    if meta.get("format") != TOKENKIT_FORMAT:
        raise InputError(f"{path} is not an alignment-matrices file (format {meta.get('format')!r})")
    return matrices


def matrices_to_groups(teacher: np.ndarray, student: np.ndarray, teacher_special: np.ndarray | None = None,
                       student_special: np.ndarray | None = None) -> GroupTable:
    """Groups from chunk matrices: one group per non-empty column, in column order, and one group with an empty
    partner side for each non-special token in no chunk, placed before the first chunk that comes after it on its
    side (between two chunks, the teacher's lonely tokens come before the student's).

    Raises:
        InputError: the matrices have different numbers of columns, or a token is in two chunks.
    """
    teacher, student = np.asarray(teacher, dtype=bool), np.asarray(student, dtype=bool)
    if teacher.ndim != 2 or student.ndim != 2 or teacher.shape[1] != student.shape[1]:
        raise InputError(f"alignment matrices must be (tokens, chunks) with the same chunks, got {teacher.shape} "
                         f"and {student.shape}")
    for name, matrix in (("teacher", teacher), ("student", student)):
        if (matrix.sum(axis=1) > 1).any():
            raise InputError(f"a {name} token belongs to two chunks; tokenkit chunks partition the tokens")
    t_special = np.zeros(len(teacher), bool) if teacher_special is None else np.asarray(teacher_special, bool)
    s_special = np.zeros(len(student), bool) if student_special is None else np.asarray(student_special, bool)
    columns = [c for c in range(teacher.shape[1]) if teacher[:, c].any() or student[:, c].any()]
    t_lonely = [i for i in np.flatnonzero(~teacher.any(axis=1) & ~t_special).tolist()]
    s_lonely = [j for j in np.flatnonzero(~student.any(axis=1) & ~s_special).tolist()]
    t_groups, s_groups = [], []
    ti = si = 0
    for c in columns:
        t_members = np.flatnonzero(teacher[:, c]).tolist()
        s_members = np.flatnonzero(student[:, c]).tolist()
        t_first = t_members[0] if t_members else len(teacher)
        s_first = s_members[0] if s_members else len(student)
        while ti < len(t_lonely) and t_lonely[ti] < t_first:
            t_groups.append([t_lonely[ti]])
            s_groups.append([])
            ti += 1
        while si < len(s_lonely) and s_lonely[si] < s_first:
            t_groups.append([])
            s_groups.append([s_lonely[si]])
            si += 1
        t_groups.append(t_members)
        s_groups.append(s_members)
    for i in t_lonely[ti:]:
        t_groups.append([i])
        s_groups.append([])
    for j in s_lonely[si:]:
        t_groups.append([])
        s_groups.append([j])
    return GroupTable.from_lists(t_groups, s_groups)


# ---------------------------------------------------------------------------------------------------------------
# DSKD


def _id_map(targets: np.ndarray) -> str:
    # every id in order: DSKD turns the values into a tensor indexed by id
    return json.dumps({str(i): int(t) for i, t in enumerate(np.asarray(targets).tolist())})


def write_dskd_mapping(mapping, path: str | Path) -> list[Path]:
    """Write a :class:`~ctkd_inspect.vocab.VocabMapping` as DSKD's id maps (see the module docstring).

    Args:
        mapping: the mapping (exact, MinED, or loaded).
        path: a ``.json`` file (the teacher→student map alone) or a folder (created when missing; its parent must
            exist) that receives :data:`DSKD_FILES`.

    Returns:
        The files written.
    """
    target = Path(path)
    if target.suffix.lower() == ".json" and not target.is_dir():
        atomic_write_text(target, _id_map(mapping.teacher_to_student) + "\n")
        return [target]
    target.mkdir(exist_ok=True)
    meta = {"format": "dskd-id-mapping", "version": FORMAT_VERSION, "kind": mapping.kind, "mode": mapping.mode,
            "teacher": mapping.teacher, "student": mapping.student, "info": mapping.info,
            "teacher_distance": np.asarray(mapping.teacher_distance).tolist(),
            "student_distance": np.asarray(mapping.student_distance).tolist()}
    written = []
    for name, content in ((DSKD_FILES[0], _id_map(mapping.teacher_to_student)),
                          (DSKD_FILES[1], _id_map(mapping.student_to_teacher)),
                          (DSKD_FILES[2], json.dumps(meta, ensure_ascii=False))):
        written.append(atomic_write_text(target / name, content + "\n"))
    return written


def _read_json(path: str | Path, what: str):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not a {what} file ({exc})") from None


def _dense(data, path, size: int | None = None) -> np.ndarray:
    """A ``{"id": target}`` object as a dense array indexed by id (-1 for ids not listed)."""
    if not isinstance(data, dict):
        raise InputError(f"{path}: an id map is a JSON object {{\"id\": id}}")
    try:
        pairs = {int(k): int(v) for k, v in data.items()}
    except (TypeError, ValueError):
        raise InputError(f"{path}: an id map holds integer ids as keys and values") from None
    length = size if size is not None else (max(pairs) + 1 if pairs else 0)
    out = np.full(length, -1, dtype=np.int64)
    for key, value in pairs.items():
        if not 0 <= key < length:
            raise InputError(f"{path}: id {key} is outside the vocabulary of {length} ids")
        out[key] = value
    return out


def read_dskd_mapping(path: str | Path, *, teacher: str = "teacher", student: str = "student",
                      student_size: int | None = None):
    """Read DSKD id maps back as a :class:`~ctkd_inspect.vocab.VocabMapping`.

    A folder written by :func:`write_dskd_mapping` gives the mapping back exactly. A lone ``tea2stu`` ``.json``
    (DSKD's own files) gives ``kind="dskd"``, ``mode="imported"``: the student→teacher direction derived as DSKD
    derives it (the first teacher id mapped to each student id), distances 0 for mapped ids and -1 otherwise
    (a DSKD map records no distances), ``teacher``/``student`` as given.

    Args:
        path: the folder or the ``.json`` file.
        teacher, student: names to record for a lone file.
        student_size: the student vocabulary size for a lone file (default: one past the largest student id).

    Raises:
        InputError: missing files or malformed maps.
    """
    from .vocab import VocabMapping

    source = Path(path)
    if source.is_dir():
        missing = [name for name in DSKD_FILES if not (source / name).exists()]
        if missing:
            raise InputError(f"{source} lacks {', '.join(missing)}: not a folder written by ctkd-inspect export "
                             "--format dskd")
        meta = _read_json(source / DSKD_FILES[2], "DSKD metadata")
        t2s = _dense(_read_json(source / DSKD_FILES[0], "DSKD id map"), source / DSKD_FILES[0])
        s2t = _dense(_read_json(source / DSKD_FILES[1], "DSKD id map"), source / DSKD_FILES[1])
        try:
            t_dist = np.asarray(meta["teacher_distance"], dtype=np.int64)
            s_dist = np.asarray(meta["student_distance"], dtype=np.int64)
            if len(t_dist) != len(t2s) or len(s_dist) != len(s2t):
                raise ValueError("distance lists of other lengths than the maps")
            return VocabMapping(meta["kind"], meta["mode"], meta["teacher"], meta["student"], t2s, t_dist, s2t,
                                s_dist, meta.get("info", {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{source / DSKD_FILES[2]}: malformed metadata ({exc})") from None
    t2s = _dense(_read_json(source, "DSKD id map"), source)
    size = student_size if student_size is not None else (int(t2s.max()) + 1 if len(t2s) and t2s.max() >= 0 else 0)
    s2t = np.full(size, -1, dtype=np.int64)
    for teacher_id in range(len(t2s) - 1, -1, -1):  # descending, so the first teacher id of each student id wins
        student_id = int(t2s[teacher_id])
        if 0 <= student_id < size:
            s2t[student_id] = teacher_id
    return VocabMapping("dskd", "imported", teacher, student, t2s, np.where(t2s >= 0, 0, -1), s2t,
                        np.where(s2t >= 0, 0, -1), {"source": str(source)})
