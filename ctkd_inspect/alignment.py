"""The alignment result schema every engine fills, and its JSON form.

An :class:`Alignment` holds both tokenizations (teacher first, student second), the groups the engine found,
the engine's name and options, extra engine output (a DTW path, a soft alignment matrix, ...) and metrics.

**Groups.** A group is a pair of ordered, non-empty-overall index lists ``(teacher, student)`` into the full
token lists (special tokens included in the indexing). Every engine's groups obey the same invariants, tested
for all of them:

- every non-special token of each side is in exactly one group; special tokens are in none;
- groups are monotone: both sides' indices increase from one group to the next;
- a group may have one empty side: tokens that found no partner (a zero-width token, or text the other
  tokenizer covers with no token). These are the "unmatched" tokens, reported per side with a reason.

**JSON** (``to_dict`` / ``--json``)::

    {"schema_version": "1.0", "engine": "span", "options": {...}, "text": "...",
     "teacher": {"name", "scheme", "tokens": [{"id", "token", "piece", "start", "end", "special"}, ...], ...},
     "student": {... same ...},
     "groups": [{"teacher": [i, ...], "student": [j, ...], "shape": "1:1", "start": a, "end": b,
                 "exact": true, ...}, ...],
     "unmatched": {"teacher": [{"index", "reason"}], "student": [...]},
     "metrics": {"alignment_rate": ..., ...}}

Engines may add keys (``path`` for DTW engines, ``cost`` per group, ``soft`` matrices); readers ignore keys they
do not know. ``schema_version`` changes its major number only when an existing key changes meaning.

**Columns**: :mod:`ctkd_inspect.columns` stores alignments as flat Arrow rows (one per text, per-token group
columns; Parquet for corpus runs) and reads a row back into the same ``Alignment``. **Diffs**:
:func:`ctkd_inspect.diffs.diff` compares two alignments of one text. Alignments have no ``__eq__`` (they compare by
identity); compare ``to_dict()`` for equal content.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .text import Tokenization

SCHEMA_VERSION = "1.0"


def shape_of(n_teacher: int, n_student: int) -> str:
    """Group shape name, teacher first: ``1:1``, ``1:n``, ``n:1``, ``n:m``, or ``unmatched`` (one side empty)."""
    if n_teacher == 0 or n_student == 0:
        return "unmatched"
    if n_teacher == 1:
        return "1:1" if n_student == 1 else "1:n"
    return "n:1" if n_student == 1 else "n:m"


@dataclass
class Group:
    """One aligned group. ``teacher``/``student`` are token indices (ascending); ``extra`` holds engine-specific
    per-group values (e.g. ``cost``) that are written to JSON as they are."""

    teacher: list[int]
    student: list[int]
    extra: dict = field(default_factory=dict)

    @property
    def shape(self) -> str:
        return shape_of(len(self.teacher), len(self.student))


class GroupTable:
    """Groups in compact CSR form: group ``g`` is ``teacher_indices[teacher_offsets[g]:teacher_offsets[g+1]]``
    and likewise for the student. ``columns`` holds per-group values (e.g. ``cost``), one array entry per group.

    Engines build this (it costs a few numpy arrays, not a Python object per group); :attr:`Alignment.groups`
    turns it into :class:`Group` objects only when asked.
    """

    __slots__ = ("columns", "student_indices", "student_offsets", "teacher_indices", "teacher_offsets")

    def __init__(self, teacher_offsets, teacher_indices, student_offsets, student_indices, columns=None):
        self.teacher_offsets = np.asarray(teacher_offsets, dtype=np.int64)
        self.teacher_indices = np.asarray(teacher_indices, dtype=np.int64)
        self.student_offsets = np.asarray(student_offsets, dtype=np.int64)
        self.student_indices = np.asarray(student_indices, dtype=np.int64)
        self.columns = {k: np.asarray(v) for k, v in (columns or {}).items()}
        if len(self.teacher_offsets) != len(self.student_offsets):
            raise ValueError("teacher and student offsets describe different numbers of groups")

    def __len__(self) -> int:
        return len(self.teacher_offsets) - 1

    @classmethod
    def from_arrays(cls, teacher_offsets: np.ndarray, teacher_indices: np.ndarray, student_offsets: np.ndarray,
                    student_indices: np.ndarray) -> GroupTable:
        """A table from arrays that are already int64 and consistent, without re-checking them.

        For compiled engines whose per-text call is a few microseconds, where the constructor's conversions and
        checks would cost more than the sweep. The caller guarantees the contract of the class docstring.
        """
        table = cls.__new__(cls)
        table.teacher_offsets, table.teacher_indices = teacher_offsets, teacher_indices
        table.student_offsets, table.student_indices = student_offsets, student_indices
        table.columns = {}
        return table

    @classmethod
    def from_lists(cls, teacher: Sequence[Sequence[int]], student: Sequence[Sequence[int]],
                   columns: dict | None = None) -> GroupTable:
        def pack(lists):
            sizes = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
            offsets = np.concatenate([[0], np.cumsum(sizes)])
            flat = np.fromiter((int(i) for x in lists for i in x), dtype=np.int64, count=int(offsets[-1]))
            return offsets, flat

        t_off, t_idx = pack(teacher)
        s_off, s_idx = pack(student)
        return cls(t_off, t_idx, s_off, s_idx, columns)

    @property
    def teacher_sizes(self) -> np.ndarray:
        return np.diff(self.teacher_offsets)

    @property
    def student_sizes(self) -> np.ndarray:
        return np.diff(self.student_offsets)

    def teacher(self, g: int) -> np.ndarray:
        return self.teacher_indices[self.teacher_offsets[g]:self.teacher_offsets[g + 1]]

    def student(self, g: int) -> np.ndarray:
        return self.student_indices[self.student_offsets[g]:self.student_offsets[g + 1]]

    def to_groups(self) -> list[Group]:
        t_split = np.split(self.teacher_indices, self.teacher_offsets[1:-1])
        s_split = np.split(self.student_indices, self.student_offsets[1:-1])
        names = list(self.columns)
        values = [self.columns[k].tolist() for k in names]
        return [Group(t.tolist(), s.tolist(), {k: v[g] for k, v in zip(names, values)})
                for g, (t, s) in enumerate(zip(t_split, s_split))] if len(self) else []


class Alignment:
    """The result of aligning one text under two tokenizers (teacher first).

    Attributes:
        teacher, student: the two :class:`~ctkd_inspect.text.Tokenization` objects (same text).
        table: the groups in compact form (:class:`GroupTable`); :attr:`groups` gives them as objects.
        engine, options: the engine's name and the options it ran with (JSON-ready).
        extra: engine output beyond groups, written as top-level JSON keys (e.g. ``{"path": [[i, j], ...]}``).
        metrics: filled by :func:`ctkd_inspect.metrics.compute_metrics` (engines call it).
    """

    def __init__(self, teacher: Tokenization, student: Tokenization, table: GroupTable, engine: str,
                 options: dict | None = None, extra: dict | None = None, metrics: dict | None = None,
                 schema_version: str = SCHEMA_VERSION):
        if teacher.text != student.text:
            raise ValueError("teacher and student tokenizations are of different texts")
        self.teacher = teacher
        self.student = student
        self.table = table
        self.engine = engine
        self.options = dict(options or {})
        self.extra = dict(extra or {})
        self.metrics = dict(metrics or {})
        self.schema_version = schema_version
        self._groups: list[Group] | None = None

    @property
    def text(self) -> str:
        return self.teacher.text

    @property
    def groups(self) -> list[Group]:
        """The groups as :class:`Group` objects (built once, on first access)."""
        if self._groups is None:
            self._groups = self.table.to_groups()
        return self._groups

    # -- derived views ---------------------------------------------------------------------------------------

    def group_spans(self) -> np.ndarray:
        """``(G, 2)`` array: the ``[start, end)`` hull of the characters each group's tokens cover (both sides);
        ``(0, 0)`` for a group whose tokens are all zero-width at position 0."""
        table, t, s = self.table, self.teacher, self.student
        n = len(table)
        starts = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        ends = np.zeros(n, dtype=np.int64)
        for offsets, indices, side in ((table.teacher_offsets, table.teacher_indices, t),
                                       (table.student_offsets, table.student_indices, s)):
            owner = np.repeat(np.arange(n), np.diff(offsets))
            np.minimum.at(starts, owner, side.starts[indices])
            np.maximum.at(ends, owner, side.ends[indices])
        starts[starts == np.iinfo(np.int64).max] = 0
        return np.stack([starts, ends], axis=1)

    def exact_mask(self) -> np.ndarray:
        """``(G,)`` bool: 1:1 groups whose two tokens cover exactly the same, non-empty characters."""
        table, t, s = self.table, self.teacher, self.student
        one = (table.teacher_sizes == 1) & (table.student_sizes == 1)
        out = np.zeros(len(table), dtype=bool)
        if one.any():
            ti = table.teacher_indices[table.teacher_offsets[:-1][one]]
            sj = table.student_indices[table.student_offsets[:-1][one]]
            out[one] = (t.starts[ti] == s.starts[sj]) & (t.ends[ti] == s.ends[sj]) & (t.ends[ti] > t.starts[ti])
        return out

    def shapes(self) -> list[str]:
        """Shape name of every group (see :func:`shape_of`)."""
        return [shape_of(a, b) for a, b in zip(self.table.teacher_sizes.tolist(), self.table.student_sizes.tolist())]

    def unmatched(self) -> dict[str, list[dict]]:
        """Tokens without a partner, per side, each with a reason: ``special``, ``zero-width`` or ``no-partner``."""
        out: dict[str, list[dict]] = {}
        table = self.table
        for name, side, mine_off, mine_idx, other_sizes in (
                ("teacher", self.teacher, table.teacher_offsets, table.teacher_indices, table.student_sizes),
                ("student", self.student, table.student_offsets, table.student_indices, table.teacher_sizes)):
            lonely_groups = np.repeat(other_sizes == 0, np.diff(mine_off))
            lonely = mine_idx[lonely_groups]
            records = [(int(i), "special") for i in np.flatnonzero(side.special)]
            records += [(int(i), "zero-width" if side.ends[i] <= side.starts[i] else "no-partner") for i in lonely]
            out[name] = [{"index": i, "reason": r} for i, r in sorted(records)]
        return out

    def group_of(self, side: str) -> np.ndarray:
        """For each token of ``side`` ("teacher" or "student"), the index of its group, or -1 (special tokens)."""
        tokens = self.teacher if side == "teacher" else self.student
        offsets = self.table.teacher_offsets if side == "teacher" else self.table.student_offsets
        indices = self.table.teacher_indices if side == "teacher" else self.table.student_indices
        owner = np.full(len(tokens), -1, dtype=np.int64)
        owner[indices] = np.repeat(np.arange(len(self.table)), np.diff(offsets))
        return owner

    # -- serialisation ---------------------------------------------------------------------------------------

    def group_dicts(self) -> list[dict]:
        spans = self.group_spans().tolist()
        exact = self.exact_mask().tolist()
        out = []
        for g, group in enumerate(self.groups):
            record = {"teacher": group.teacher, "student": group.student, "shape": group.shape,
                      "start": spans[g][0], "end": spans[g][1], "exact": exact[g]}
            record.update(group.extra)
            out.append(record)
        return out

    def to_dict(self) -> dict:
        """The JSON-ready dict that ``ctkd-inspect ... --json`` prints."""
        return {
            "schema_version": self.schema_version,
            "engine": self.engine,
            "options": self.options,
            "text": self.text,
            "teacher": self.teacher.to_dict(),
            "student": self.student.to_dict(),
            "groups": self.group_dicts(),
            "unmatched": self.unmatched(),
            **self.extra,
            "metrics": self.metrics,
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent, default=_json_default)

    @classmethod
    def from_dict(cls, data: dict) -> Alignment:
        """Rebuild an alignment from :meth:`to_dict` output (any 1.x schema).

        Raises:
            InputError (a ``ValueError``): ``data`` is not a dict, the schema's major version is not 1, or required
                keys are missing or malformed.
        """
        from .errors import InputError, InputTypeError

        if not isinstance(data, dict):
            raise InputTypeError(f"data must be a dict from Alignment.to_dict() (or --json), got "
                                 f"{type(data).__name__}")
        if "schema_version" not in data:
            raise InputError("data has no schema_version: it is not a dict from Alignment.to_dict() (or --json)")
        version = str(data.get("schema_version", ""))
        if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise InputError(f"unsupported schema_version {version!r} (this version reads {SCHEMA_VERSION})")
        try:
            return cls._from_dict(data, version)
        except InputError:
            raise
        except KeyError as exc:
            raise InputError(f"data is not an alignment document: the key {exc} is missing") from None
        except (TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
            raise InputError(f"data is not a well-formed alignment document ({type(exc).__name__}: "
                             f"{str(exc)[:200]})") from None

    @classmethod
    def _from_dict(cls, data: dict, version: str) -> Alignment:
        text = data["text"]
        known = {"schema_version", "engine", "options", "text", "teacher", "student", "groups", "unmatched",
                 "metrics"}
        derived = {"teacher", "student", "shape", "start", "end", "exact"}
        groups = data["groups"]
        column_names = sorted({k for g in groups for k in g if k not in derived})
        columns = {k: [g.get(k) for g in groups] for k in column_names}
        table = GroupTable.from_lists([g["teacher"] for g in groups], [g["student"] for g in groups], columns)
        return cls(
            teacher=Tokenization.from_dict(data["teacher"], text),
            student=Tokenization.from_dict(data["student"], text),
            table=table,
            engine=data["engine"],
            options=data.get("options", {}),
            extra={k: v for k, v in data.items() if k not in known},
            metrics=data.get("metrics", {}),
            schema_version=version,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Alignment:
        """Rebuild an alignment from :meth:`to_json` output (the ``--json`` document).

        Raises:
            InputError (a ``ValueError``): ``text`` is not a string, not JSON, or not an alignment document.
        """
        from .errors import InputError, InputTypeError

        if not isinstance(text, (str, bytes, bytearray)):
            raise InputTypeError(f"text must be the JSON document (a str) from to_json() or --json, got "
                                 f"{type(text).__name__}")
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"text is not JSON ({exc})") from None
        return cls.from_dict(data)

    def to_networkx(self):
        """The bipartite graph of this alignment as a ``networkx.Graph``.

        Nodes are ``("teacher", i)`` and ``("student", j)`` for every token, with attributes ``side``, ``token``,
        ``piece``, ``start``, ``end``, ``special`` and ``bipartite`` (0 teacher, 1 student). Edges join a teacher and
        a student token of the same group whose spans overlap (``overlap=True``). Engines that group tokens whose
        spans do not overlap (DTW) get extra teacher-student edges marked ``overlap=False`` that keep each group
        connected. The connected components are the groups, plus one singleton per special token.
        """
        import networkx as nx

        graph = nx.Graph()
        for side_index, (side_name, side) in enumerate((("teacher", self.teacher), ("student", self.student))):
            for i in range(len(side)):
                graph.add_node((side_name, i), side=side_name, bipartite=side_index, token=side.tokens[i],
                               piece=side.pieces[i], start=int(side.starts[i]), end=int(side.ends[i]),
                               special=bool(side.special[i]))
        t, s = self.teacher, self.student
        for group in self.groups:
            local = nx.Graph()
            local.add_nodes_from([("teacher", i) for i in group.teacher] + [("student", j) for j in group.student])
            local.add_edges_from((("teacher", i), ("student", j)) for i in group.teacher for j in group.student
                                 if t.starts[i] < s.ends[j] and s.starts[j] < t.ends[i])
            graph.add_edges_from(local.edges, overlap=True)
            if not (group.teacher and group.student):
                continue
            # DTW engines may group tokens whose spans do not overlap: link every piece of the group to it
            # through the other side (edges are always teacher-student, so the graph stays bipartite).
            anchor_t, anchor_s = ("teacher", group.teacher[0]), ("student", group.student[0])
            for component in nx.connected_components(local):
                if anchor_t in component or anchor_s in component:
                    continue
                node = next(iter(sorted(component)))
                graph.add_edge(node, anchor_s if node[0] == "teacher" else anchor_t, overlap=False)
            if not nx.has_path(graph, anchor_t, anchor_s):
                graph.add_edge(anchor_t, anchor_s, overlap=False)
        return graph

    def summary(self) -> str:
        """One line: engine, token counts, groups and the alignment rate."""
        rate = self.metrics.get("alignment_rate")
        rate_text = "n/a" if rate is None else f"{rate:.1%}"
        return (f"{self.engine}: {self.teacher.name} ({len(self.teacher)} tokens) → {self.student.name} "
                f"({len(self.student)} tokens), {len(self.table)} groups, alignment rate {rate_text}")

    def __repr__(self) -> str:
        return f"<Alignment {self.summary()}>"

    def _repr_html_(self) -> str:
        """The notebook view (:func:`ctkd_inspect.html.alignment_html`): both ribbons, the groups, the metrics."""
        from .html import alignment_html  # deferred: only notebooks and reports need it

        return alignment_html(self)


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
