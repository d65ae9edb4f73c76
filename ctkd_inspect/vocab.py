"""Vocabulary mappings between a teacher and a student tokenizer, with coverage statistics.

Three mappings, as CTKD methods use them:

- **exact** — ids whose *canonical byte strings* are equal. The canonical form of a token is the bytes it stands
  for, with the word-start marker spelled as a leading space in every scheme: byte-level ``Ġthe`` → ``b" the"``,
  SentencePiece ``▁the`` → ``b" the"`` and ``<0x0A>`` → ``b"\\n"``, WordPiece ``the`` (a word start) → ``b" the"``
  and ``##ing`` → ``b"ing"``. Comparing these bytes is tokenkit's "byteification": naive string matching would
  miss every byte-level token spelled in the ``Ġ`` alphabet.
- **mined** — MinED (FuseLLM): for every source token the target token at minimum Levenshtein distance, ties to
  the lowest id (canonical mode: regular pieces before SentencePiece byte-fallback ``<0xNN>`` pieces, which share
  their canonical bytes with the piece a text really gets); exact matches first. ``mode="canonical"`` compares
  canonical strings (bytes, one character each); ``mode="reference"`` reproduces FuseLLM's ``vocab_mapping.py``:
  the raw vocabulary string with the teacher's marker replaced by the student's, compared with the raw student
  strings (so byte-level ``Ã¯`` never meets SentencePiece ``ï``, which is why canonical is the default). Both
  directions; cached on disk.
- **CDM's context-aware top-K dynamic mapping** (:func:`cdm_dynamic_mapping`), computed at aligned positions from
  model signals: for each teacher top-K id without a static mapping, the student top-K id at the same aligned
  row with the smallest normalised distance ``Lev(a, b) / (|a| + |b|)`` (spaces removed), accepted when strictly
  below θ = 0.3.

Special (control) tokens are never mapped by the exact and MinED mappings.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from .errors import InputError
from .progress import stage
from .text import _BYTE_PIECE, SPIECE, token_bytes, tokenizer_profile

UNMAPPED = -1


# ---------------------------------------------------------------------------------------------------------------
# vocabularies


@dataclass
class Vocabulary:
    """A tokenizer's vocabulary in id order: raw strings, canonical strings, special flags."""

    name: str
    scheme: str
    raw: list[str]  # convert_ids_to_tokens for every id (ids without a token: "")
    canonical: list[str]  # canonical bytes, one character per byte (latin-1), "" for special/missing ids
    special: np.ndarray  # bool per id

    def __len__(self) -> int:
        return len(self.raw)

    @cached_property
    def digest(self) -> str:
        """A short hash of the vocabulary (changes whenever any token or special flag does)."""
        h = hashlib.sha256()
        h.update(self.scheme.encode())
        for token in self.raw:
            h.update(token.encode("utf-8", "surrogatepass") + b"\0")
        h.update(self.special.tobytes())
        return h.hexdigest()[:16]


def canonical_bytes(token: str, scheme: str, continuation_prefix: str = "##") -> bytes:
    """The canonical byte form of a vocabulary string (see the module docstring).

    >>> canonical_bytes("Ġthe", "byte-level"), canonical_bytes("▁the", "sentencepiece")
    (b' the', b' the')
    >>> canonical_bytes("the", "wordpiece"), canonical_bytes("##ing", "wordpiece")
    (b' the', b'ing')
    """
    if scheme == "wordpiece":
        if token.startswith(continuation_prefix) and len(token) > len(continuation_prefix):
            return token[len(continuation_prefix):].encode("utf-8")
        return b" " + token.encode("utf-8")
    return token_bytes(token, scheme, continuation_prefix)


def vocabulary(tokenizer, name: str | None = None) -> Vocabulary:
    """The :class:`Vocabulary` of a transformers fast tokenizer (all ids up to the largest one).

    Raises:
        InputError: ``name`` is not a string; TokenizerCapabilityError: ``tokenizer`` is not a fast tokenizer.
    """
    if name is not None:
        from .arguments import check_str

        check_str(name, "name", "the tokenizer's name (a str)")
    profile = tokenizer_profile(tokenizer)
    vocab = tokenizer.get_vocab()
    size = max(vocab.values()) + 1 if vocab else 0
    raw = [""] * size
    for token, index in vocab.items():
        raw[index] = token
    special = np.zeros(size, dtype=bool)
    special[[i for i in profile.special_ids if i < size]] = True
    canonical = [
        "" if special[i] or not token else
        canonical_bytes(token, profile.scheme, profile.continuation_prefix).decode("latin-1")
        for i, token in enumerate(raw)
    ]
    source = getattr(tokenizer, "ctkd_source", None)
    label = name or (source.name if source else getattr(tokenizer, "name_or_path", "") or "tokenizer")
    return Vocabulary(label, profile.scheme, raw, canonical, special)


# ---------------------------------------------------------------------------------------------------------------
# MinED nearest neighbour


def nearest_by_edit_distance(source: Sequence[str], target: Sequence[str], *, skip_source: np.ndarray | None = None,
                             skip_target: np.ndarray | None = None, workers: int = -1, chunk: int = 512,
                             progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For every source string, the target index at minimum Levenshtein distance (ties: the lowest index).

    Returns ``(index, distance)`` arrays over the source; skipped sources get ``-1``/``-1``, skipped targets are
    never chosen. Distances count code points (unit costs, as rapidfuzz's ``Levenshtein.distance``). ``workers``
    threads (``-1``: every core this process may use) resolve batches of ``chunk`` sources;
    ``progress(done, total)`` is called after the exact matches and after every batch.

    How it stays fast on 128k × 256k vocabularies (details in :mod:`ctkd_inspect._edit_distance_kernel`): exact
    matches are taken from a dictionary; every other source is resolved in rounds of growing bound k = 1, 2, 4, …
    over the length window L ± k (``Lev(a, b) ≥ |len(a) − len(b)|``), where the exact number of characters it
    shares with each target (as multisets) is counted for the whole window at once, bit-sliced. Since
    ``Lev(a, b) ≥ max(|a|, |b|) − common(a, b)``, with equality when they share nothing, only the targets whose
    bound can still tie or beat the best so far get a real Levenshtein computation. A source whose best distance is
    ≤ k is final: every target that could tie or beat it was in the window and passed the bound.
    """
    from ._edit_distance_kernel import nearest

    n_source, n_target = len(source), len(target)
    index = np.full(n_source, UNMAPPED, dtype=np.int64)
    distance = np.full(n_source, UNMAPPED, dtype=np.int64)
    skip_source = np.zeros(n_source, bool) if skip_source is None else np.asarray(skip_source, bool)
    skip_target = np.zeros(n_target, bool) if skip_target is None else np.asarray(skip_target, bool)
    usable = np.flatnonzero(~skip_target)
    if len(usable) == 0:
        return index, distance
    first_of: dict[str, int] = {}
    for t in usable.tolist():
        first_of.setdefault(target[t], t)
    pending = []
    for s in range(n_source):
        if skip_source[s]:
            continue
        hit = first_of.get(source[s])
        if hit is None:
            pending.append(s)
        else:
            index[s], distance[s] = hit, 0
    total = int((~skip_source).sum())
    done = total - len(pending)
    if progress:
        progress(done, total)
    if not pending:
        return index, distance
    if workers is None or workers < 1:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

    def batch_done(count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress(done, total)

    position, found = nearest([source[s] for s in pending], [target[t] for t in usable.tolist()], workers=workers,
                              chunk=chunk, on_batch=batch_done)
    pending_arr = np.asarray(pending, dtype=np.int64)
    index[pending_arr] = usable[position]
    distance[pending_arr] = found
    return index, distance


# ---------------------------------------------------------------------------------------------------------------
# mappings


@dataclass
class VocabMapping:
    """A mapping between two vocabularies, both directions.

    ``teacher_to_student[i]`` is the student id for teacher id ``i`` (``-1`` unmapped), ``teacher_distance[i]``
    its edit distance (0 exact, ``-1`` unmapped); likewise for the student side.
    """

    kind: str  # "exact" or "mined"
    mode: str  # "canonical" or "reference"
    teacher: str
    student: str
    teacher_to_student: np.ndarray
    teacher_distance: np.ndarray
    student_to_teacher: np.ndarray
    student_distance: np.ndarray
    info: dict = field(default_factory=dict)

    def coverage(self) -> dict:
        """Share of each non-special vocabulary mapped at all and mapped exactly."""
        out = {}
        for side, mapping, dist in (("teacher", self.teacher_to_student, self.teacher_distance),
                                    ("student", self.student_to_teacher, self.student_distance)):
            considered = int(self.info.get(f"{side}_mappable", len(mapping)))
            mapped = int(np.count_nonzero(mapping >= 0))
            exact = int(np.count_nonzero(dist == 0))
            out[side] = {"vocab": len(mapping), "mappable": considered, "mapped": mapped, "exact": exact,
                         "mapped_share": mapped / considered if considered else None,
                         "exact_share": exact / considered if considered else None}
            if self.kind == "mined" and mapped:
                values = dist[mapping >= 0]
                out[side]["distance_histogram"] = {str(d): int(c) for d, c in zip(*np.unique(np.minimum(values, 9),
                                                                                        return_counts=True))}
        return out

    def to_dict(self, include_arrays: bool = False) -> dict:
        data = {"kind": self.kind, "mode": self.mode, "teacher": self.teacher, "student": self.student,
                "coverage": self.coverage(), "info": self.info}
        if include_arrays:
            data.update({"teacher_to_student": self.teacher_to_student.tolist(),
                         "teacher_distance": self.teacher_distance.tolist(),
                         "student_to_teacher": self.student_to_teacher.tolist(),
                         "student_distance": self.student_distance.tolist()})
        return data

    def _repr_html_(self) -> str:
        """The notebook view: coverage per direction and samples by id (:func:`ctkd_inspect.html.vocab_mapping_html`
        also shows the tokens when given the vocabularies)."""
        from .html import vocab_mapping_html  # deferred: only notebooks and reports need it

        return vocab_mapping_html(self)

    def save(self, path: str | Path, teacher_vocab: Vocabulary | None = None,
             student_vocab: Vocabulary | None = None) -> Path:
        """Write the mapping, both directions, so that :meth:`load` reads it back.

        ``.json`` (arrays included), ``.npz``, or ``.parquet`` (needs pyarrow): one row per source id of each
        direction — columns ``direction`` (``teacher_to_student`` / ``student_to_teacher``), ``source_id``,
        ``target_id`` (``-1`` unmapped), ``distance``, and ``source_token`` / ``target_token`` when the
        vocabularies are given; the kind, mode and names travel in the schema metadata.
        """
        from .arguments import check_path
        from .outputs import atomic_path

        path = Path(check_path(path, "path"))
        suffix = path.suffix.lower()  # MAP.JSON passes the CLI's (case-insensitive) check: accept it here too
        if suffix not in (".json", ".npz", ".parquet"):
            raise InputError(f"unsupported mapping file type {path.suffix!r}: use .json, .npz or .parquet")
        # written beside the target and renamed into place: a failed write leaves any previous file intact
        with atomic_path(path) as temporary:
            self._write(temporary, suffix, teacher_vocab, student_vocab)
        return path

    def _write(self, path: Path, suffix: str, teacher_vocab: Vocabulary | None,
               student_vocab: Vocabulary | None) -> None:
        if suffix == ".json":
            path.write_text(json.dumps(self.to_dict(include_arrays=True)), encoding="utf-8")
        elif suffix == ".npz":
            with open(path, "wb") as stream:  # a file object: numpy would append ".npz" to a temporary name
                np.savez_compressed(stream, teacher_to_student=self.teacher_to_student,
                                    teacher_distance=self.teacher_distance,
                                    student_to_teacher=self.student_to_teacher,
                                    student_distance=self.student_distance,
                                    meta=np.array(json.dumps({k: v for k, v in self.to_dict().items()
                                                              if k != "coverage"})))
        else:
            try:
                import pyarrow as pa
                import pyarrow.parquet as pq
            except ImportError as exc:
                raise InputError("writing Parquet needs pyarrow: pip install pyarrow (or use .json / .npz)") from exc
            directions = (("teacher_to_student", self.teacher_to_student, self.teacher_distance, teacher_vocab,
                           student_vocab),
                          ("student_to_teacher", self.student_to_teacher, self.student_distance, student_vocab,
                           teacher_vocab))
            columns: dict[str, list] = {"direction": [], "source_id": [], "target_id": [], "distance": []}
            named = teacher_vocab is not None and student_vocab is not None
            if named:
                columns.update(source_token=[], target_token=[])
            for name, targets, distances, source_vocab, target_vocab in directions:
                columns["direction"] += [name] * len(targets)
                columns["source_id"] += list(range(len(targets)))
                columns["target_id"] += targets.tolist()
                columns["distance"] += distances.tolist()
                if named:
                    columns["source_token"] += source_vocab.raw
                    columns["target_token"] += [target_vocab.raw[j] if j >= 0 else None for j in targets.tolist()]
            meta = {k: v for k, v in self.to_dict().items() if k != "coverage"}
            table = pa.table(columns).replace_schema_metadata({"ctkd_inspect": json.dumps(meta)})
            pq.write_table(table, path)

    @classmethod
    def load(cls, path: str | Path) -> VocabMapping:
        """Read a mapping written by :meth:`save` (``.json``, ``.npz`` or ``.parquet``).

        Raises:
            InputError: the file is missing, of another type, or not a mapping written by ``save``.
        """
        if not isinstance(path, (str, os.PathLike)):
            from .errors import InputTypeError

            raise InputTypeError(f"path must be the path of a saved mapping (a str or a pathlib.Path), got "
                             f"{type(path).__name__}")
        path = Path(path)
        suffix = path.suffix.lower()
        try:
            if suffix == ".npz":
                return cls.load_npz(path)
            if suffix == ".json":
                data = json.loads(path.read_text(encoding="utf-8"))
                arrays = {k: np.asarray(data[k], dtype=np.int64) for k in
                          ("teacher_to_student", "teacher_distance", "student_to_teacher", "student_distance")}
                return cls(data["kind"], data["mode"], data["teacher"], data["student"], **arrays,
                           info=data.get("info", {}))
            if suffix == ".parquet":
                import pyarrow.parquet as pq

                table = pq.read_table(path)
                meta = json.loads(table.schema.metadata[b"ctkd_inspect"])
                direction = np.asarray(table.column("direction").to_pylist())
                target = np.asarray(table.column("target_id").to_pylist(), dtype=np.int64)
                distance = np.asarray(table.column("distance").to_pylist(), dtype=np.int64)
                t2s, s2t = direction == "teacher_to_student", direction == "student_to_teacher"
                return cls(meta["kind"], meta["mode"], meta["teacher"], meta["student"], target[t2s], distance[t2s],
                           target[s2t], distance[s2t], meta.get("info", {}))
        except FileNotFoundError:
            raise InputError(f"no such mapping file: {path}") from None
        except (OSError, ValueError, KeyError, TypeError, ImportError, EOFError, AttributeError, IndexError,
                zipfile.BadZipFile) as exc:  # an empty, truncated or foreign file
            raise InputError(f"{path} is not a vocabulary mapping written by ctkd-inspect ({type(exc).__name__}: "
                             f"{str(exc)[:200]})") from None
        raise InputError(f"unsupported mapping file type {path.suffix!r}: use .json, .npz or .parquet")

    @classmethod
    def load_npz(cls, path: str | Path) -> VocabMapping:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            return cls(meta["kind"], meta["mode"], meta["teacher"], meta["student"], data["teacher_to_student"],
                       data["teacher_distance"], data["student_to_teacher"], data["student_distance"],
                       meta.get("info", {}))


def _check_vocabularies(teacher, student, mode) -> None:
    """Wrong argument types fail naming the argument, not inside the mapping."""
    from .arguments import check_str, type_name
    from .errors import InputTypeError

    for name, value in (("teacher", teacher), ("student", student)):
        if not isinstance(value, Vocabulary):
            raise InputTypeError(f"{name} must be a Vocabulary (ctkd_inspect.vocab.vocabulary(tokenizer)), got "
                                 f"{type_name(value)}")
    check_str(mode, "mode", "'canonical' or 'reference'")


def _mapping_strings(teacher: Vocabulary, student: Vocabulary, mode: str) -> tuple[list[str], list[str]]:
    _check_vocabularies(teacher, student, mode)
    if mode == "canonical":
        return teacher.canonical, student.canonical
    if mode == "reference":
        # FuseLLM: the teacher's marker is replaced by the student's, raw strings are compared
        markers = {"byte-level": "Ġ", "sentencepiece": SPIECE}
        t_marker, s_marker = markers.get(teacher.scheme, ""), markers.get(student.scheme, "")
        source = [t.replace(t_marker, s_marker) if t_marker else t for t in teacher.raw]
        return source, list(student.raw)
    raise InputError(f"unknown mode {mode!r}: use 'canonical' or 'reference'")


def _mappable(vocab: Vocabulary) -> np.ndarray:
    return ~vocab.special & np.array([bool(t) for t in vocab.raw], dtype=bool)


def _preference_order(vocab: Vocabulary, ok: np.ndarray) -> list[int]:
    """Mappable ids in the order a duplicate string is resolved: pieces first, then SentencePiece byte-fallback
    pieces (``<0xNN>``: the tokenizer emits them only for bytes no piece covers, so canonically ``<0x33>`` and
    ``3`` are the same byte but ``3`` is the token a text actually gets), each by increasing id."""
    ids = np.flatnonzero(ok).tolist()
    if vocab.scheme != "sentencepiece":
        return ids
    is_byte = [bool(_BYTE_PIECE.match(vocab.raw[j])) for j in ids]
    return [j for j, b in zip(ids, is_byte) if not b] + [j for j, b in zip(ids, is_byte) if b]


def exact_mapping(teacher: Vocabulary, student: Vocabulary, mode: str = "canonical") -> VocabMapping:
    """Ids whose strings are equal (canonical bytes by default). Among target ids with the same string a
    regular piece wins over a byte-fallback piece, then the lowest id (see :func:`_preference_order`)."""
    t_strings, s_strings = _mapping_strings(teacher, student, mode)
    t_ok, s_ok = _mappable(teacher), _mappable(student)

    def direction(source, source_ok, target, target_vocab, target_ok):
        first: dict[str, int] = {}
        for j in (_preference_order(target_vocab, target_ok) if mode == "canonical"
                  else np.flatnonzero(target_ok).tolist()):
            first.setdefault(target[j], j)
        out = np.full(len(source), UNMAPPED, dtype=np.int64)
        for i in np.flatnonzero(source_ok).tolist():
            out[i] = first.get(source[i], UNMAPPED)
        return out, np.where(out >= 0, 0, UNMAPPED)

    t2s, t_dist = direction(t_strings, t_ok, s_strings, student, s_ok)
    if mode == "reference":
        s_markers = {"byte-level": "Ġ", "sentencepiece": SPIECE}
        s_marker, t_marker = s_markers.get(student.scheme, ""), s_markers.get(teacher.scheme, "")
        back_source = [s.replace(s_marker, t_marker) if s_marker else s for s in student.raw]
        s2t, s_dist = direction(back_source, s_ok, list(teacher.raw), teacher, t_ok)
    else:
        s2t, s_dist = direction(s_strings, s_ok, t_strings, teacher, t_ok)
    return VocabMapping("exact", mode, teacher.name, student.name, t2s, t_dist, s2t, s_dist,
                        {"teacher_mappable": int(t_ok.sum()), "student_mappable": int(s_ok.sum())})


def mined_mapping(teacher: Vocabulary, student: Vocabulary, mode: str = "canonical", *,
                  cache_dir: str | Path | None = None, workers: int = -1,
                  progress: Callable[[str, int, int], None] | None = None) -> VocabMapping:
    """MinED nearest-neighbour mapping in both directions (see :func:`nearest_by_edit_distance`).

    Cached on disk under ``<cache>/vocab/`` keyed by both vocabularies' digests and the mode, so a second call is
    a file read. ``progress(direction, done, total)`` reports the work.
    """
    from .sources.cache import cache_root

    root = Path(cache_dir).expanduser() if cache_dir else cache_root()
    _check_vocabularies(teacher, student, mode)
    key = f"mined-v2-{mode}-{teacher.digest}-{student.digest}"  # v2: byte-fallback pieces lose ties
    cached = root / "vocab" / f"{key}.npz"
    if cached.exists():
        try:
            mapping = VocabMapping.load_npz(cached)
            mapping.teacher, mapping.student = teacher.name, student.name
            return mapping
        except Exception:  # damaged (the compressed stream and its CRC-32 catch a changed byte): recompute
            pass
    t_strings, s_strings = _mapping_strings(teacher, student, mode)
    t_ok, s_ok = _mappable(teacher), _mappable(student)

    @contextmanager
    def report(direction):
        """A ``(done, total)`` callback for one direction: the caller's, else a progress stage."""
        if progress is not None:
            yield lambda done, total: progress(direction, done, total)
            return
        with stage(f"MinED vocabulary mapping {direction}", unit="tokens") as bar:
            yield lambda done, total: bar.update(completed=done, total=total)

    if mode == "canonical":
        # ties go to regular pieces before byte-fallback pieces, then to the lowest id (as the exact mapping)
        def nearest(source, source_ok, target, target_vocab, target_ok, direction):
            order = np.asarray(_preference_order(target_vocab, np.ones(len(target), dtype=bool)), dtype=np.int64)
            with report(direction) as callback:
                index, distance = nearest_by_edit_distance(source, [target[j] for j in order],
                                                           skip_source=~source_ok, skip_target=~target_ok[order],
                                                           workers=workers, progress=callback)
            return np.where(index >= 0, order[np.maximum(index, 0)], index), distance

        t2s, t_dist = nearest(t_strings, t_ok, s_strings, student, s_ok, "teacher→student")
        s2t, s_dist = nearest(s_strings, s_ok, t_strings, teacher, t_ok, "student→teacher")
    else:
        with report("teacher→student") as callback:
            t2s, t_dist = nearest_by_edit_distance(t_strings, s_strings, skip_source=~t_ok, skip_target=~s_ok,
                                                   workers=workers, progress=callback)
    if mode == "reference":
        s_markers = {"byte-level": "Ġ", "sentencepiece": SPIECE}
        s_marker, t_marker = s_markers.get(student.scheme, ""), s_markers.get(teacher.scheme, "")
        back = [s.replace(s_marker, t_marker) if s_marker else s for s in student.raw]
        with report("student→teacher") as callback:
            s2t, s_dist = nearest_by_edit_distance(back, list(teacher.raw), skip_source=~s_ok, skip_target=~t_ok,
                                                   workers=workers, progress=callback)
    mapping = VocabMapping("mined", mode, teacher.name, student.name, t2s, t_dist, s2t, s_dist,
                           {"teacher_mappable": int(t_ok.sum()), "student_mappable": int(s_ok.sum())})
    _write_cached_mapping(mapping, cached)
    return mapping


def _write_cached_mapping(mapping: VocabMapping, cached: Path) -> None:
    """Keep a mapping in the disk cache (written beside it and renamed into place, so a half-written file is never
    read). A cache that cannot be written is not an error: the mapping computed in memory is still used, and a
    :class:`~ctkd_inspect.sources.cache.CacheWarning` says why it was not kept."""
    import warnings

    from .sources.cache import CacheWarning

    tmp = cached.with_name(f"{cached.stem}.{os.getpid()}.tmp.npz")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        mapping.save(tmp)
        os.replace(tmp, cached)
    except OSError as exc:
        if tmp.exists():
            tmp.unlink()
        warnings.warn(f"the vocabulary mapping could not be saved in the cache, so it will be computed again next "
                      f"time: cannot write to {cached.parent} ({exc.strerror or exc})", CacheWarning, stacklevel=3)


def closest_non_exact(mapping: VocabMapping, teacher: Vocabulary, student: Vocabulary, limit: int = 20) -> list[dict]:
    """The teacher tokens mapped at the smallest non-zero distances (the most informative near misses)."""
    dist = mapping.teacher_distance
    candidates = np.flatnonzero(dist > 0)
    order = candidates[np.lexsort((candidates, dist[candidates]))][:limit]
    return [{"teacher_id": int(i), "teacher": teacher.raw[i], "student_id": int(mapping.teacher_to_student[i]),
             "student": student.raw[mapping.teacher_to_student[i]], "distance": int(dist[i])} for i in order]


def unmapped_sample(mapping: VocabMapping, teacher: Vocabulary, limit: int = 20, seed: int = 0) -> list[dict]:
    """A deterministic sample of teacher tokens with no mapping."""
    missing = np.flatnonzero((mapping.teacher_to_student < 0) & _mappable(teacher))
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(missing, size=min(limit, len(missing)), replace=False)) if len(missing) else missing
    return [{"teacher_id": int(i), "teacher": teacher.raw[i]} for i in chosen]


# ---------------------------------------------------------------------------------------------------------------
# CDM's contextual dynamic mapping


@dataclass(frozen=True)
class CodedStrings:
    """A list of strings as one flat array of code points: string ``i`` is ``codes[offsets[i]:offsets[i + 1]]``.

    Built once per vocabulary (a fraction of a second for 256k tokens), it lets compiled code compare tokens
    without Python strings. Lone surrogates (undecodable bytes kept by ``surrogateescape``) are code points too.
    """

    codes: np.ndarray  # uint32
    offsets: np.ndarray  # int64, len(strings) + 1

    @classmethod
    def from_strings(cls, strings: Sequence[str]) -> CodedStrings:
        codes = np.frombuffer("".join(strings).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        lengths = np.fromiter((len(x) for x in strings), dtype=np.int64, count=len(strings))
        return cls(codes, np.concatenate([[0], np.cumsum(lengths)]))

    def __len__(self) -> int:
        return len(self.offsets) - 1


def cdm_dynamic_mapping(teacher_topk: np.ndarray, student_topk: np.ndarray,
                        teacher_decoded: Sequence[str] | Callable[[int], str],
                        student_decoded: Sequence[str] | Callable[[int], str], static_t2s: np.ndarray | None = None,
                        static_s2t: np.ndarray | None = None, threshold: float = 0.3,
                        spaces_removed: bool = False, teacher_coded: CodedStrings | None = None,
                        student_coded: CodedStrings | None = None, reference: bool = False) -> dict:
    """CDM's context-aware top-K dynamic mapping over aligned rows, in both directions (the ``CDMKLD`` variant).

    For each aligned row and each top-K id of one side without a mapping (static, or added earlier in this call),
    the candidates are the other side's top-K ids at the same row; the candidate with the smallest normalised
    distance ``Lev(a, b) / (|a| + |b|)`` (spaces removed; ties to the higher-ranked candidate) is accepted when
    that distance is strictly below θ.

    ``reference=True`` reproduces the published ``get_dymaic_mapper`` instead (see :func:`_reference_direction`):
    the candidates lose a "matched" set (the source ids without a static mapping, subtracted from the other
    vocabulary's candidate ids: a bug that removes unrelated candidates, kept for fidelity), they are visited in
    the order of a Python ``set``, every row re-maps its unmapped ids (the last accepted candidate wins), id 0 is
    CDM's "unmapped" sentinel (never a target, a static target 0 counts as unmapped), the two special-token pairs
    of CDM's distance cost 0, and the coverage counts the slots mapped by the final mapping.

    Args:
        teacher_topk, student_topk: ``(G, K)`` top-K ids at each aligned row (the teacher row and the student row of
            each group, as the alignment pairs them); ``-1`` marks a slot with no vocabulary string (a model's
            padded embedding row), which is never mapped and never a candidate.
        teacher_decoded, student_decoded: the decoded string of every id — a list indexed by id (fast: decode the
            vocabulary once, see :func:`decoded_vocabulary`) or a function of the id.
        static_t2s, static_s2t: static mappings (``-1`` unmapped), e.g. the exact mapping; ``None`` means empty.
        threshold: θ (CDM: 0.3).
        spaces_removed: the decoded lists already have their spaces removed (then they are indexed directly).
        teacher_coded, student_coded: the same strings, spaces removed, as :class:`CodedStrings`; when both are
            given the whole mapping runs as one compiled pass (identical results, ids beyond them have no string).
        reference: reproduce the published algorithm (a Python pass; see above).

    Returns:
        ``{"teacher_to_student": {id: id}, "student_to_teacher": {id: id}`` (the dynamic additions),
        ``"topk_coverage"`` (one minus the mean over the two directions of unmapped top-K slots / (G·K), the
        "mapping coverage" CDM's code logs), ``"teacher_slots_mapped"``, ``"student_slots_mapped"``, ``"rows"``,
        ``"k"``}.
    """
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cdist

    teacher_topk = np.asarray(teacher_topk, dtype=np.int64)
    student_topk = np.asarray(student_topk, dtype=np.int64)
    if teacher_topk.shape != student_topk.shape or teacher_topk.ndim != 2:
        raise InputError("teacher and student top-K arrays must both be (rows, K)")
    rows, k = teacher_topk.shape

    def stripper(decoded):
        if spaces_removed and isinstance(decoded, Sequence):
            return decoded.__getitem__
        memo: dict[int, str] = {}
        lookup = decoded.__getitem__ if isinstance(decoded, Sequence) else decoded

        def text(i: int) -> str:
            value = memo.get(i)
            if value is None:
                value = memo[i] = lookup(i).replace(" ", "")
            return value

        return text

    def one_direction(source_topk, target_topk, source_text, target_text, static):
        # rows of K = 100 ids: Python lists and a bytearray cost less per row than a handful of numpy calls
        added: dict[int, int] = {}
        size = int(max(source_topk.max(initial=0), 0)) + 1
        done = bytearray(size)  # ids with a mapping: static, or added by an earlier row
        if static is not None:
            limit = min(size, len(static))
            done[:limit] = (np.asarray(static)[:limit] >= 0).astype(np.uint8).tobytes()
        mapped = 0
        for source_ids, target_ids in zip(source_topk.tolist(), target_topk.tolist()):
            # -1: a prediction with no vocabulary string (a padded embedding row), never mapped
            known = [i for i in source_ids if i >= 0]
            need = [i for i in known if not done[i]]
            mapped += len(known) - len(need)
            candidates = [j for j in target_ids if j >= 0]
            if not need or not candidates:
                continue
            a = [source_text(i) for i in need]
            b = [target_text(j) for j in candidates]
            distance = cdist(a, b, scorer=Levenshtein.distance, dtype=np.int32)
            total = np.array([len(x) for x in a])[:, None] + np.array([len(y) for y in b])[None, :]
            normalized = distance / np.maximum(total, 1)  # two empty strings: distance 0, d = 0
            best = normalized.argmin(axis=1)  # first minimum: the higher-ranked candidate
            accepted = np.flatnonzero(normalized[np.arange(len(need)), best] < threshold).tolist()
            for position in accepted:
                added[need[position]] = candidates[best[position]]
                done[need[position]] = 1
            mapped += len(accepted)
        return added, mapped

    def compiled_direction(source_topk, target_topk, source: CodedStrings, target: CodedStrings, static):
        from ._dynamic_mapping_kernel import one_direction as kernel

        source_topk = np.where(source_topk < len(source), source_topk, -1)
        target_topk = np.where(target_topk < len(target), target_topk, -1)
        done = np.zeros(len(source), dtype=np.uint8)
        if static is not None:
            limit = min(len(source), len(static))
            done[:limit] = np.asarray(static)[:limit] >= 0
        pairs, mapped = kernel(source_topk, target_topk, source.codes, source.offsets, target.codes,
                               target.offsets, done, float(threshold))
        return dict(zip(pairs[:, 0].tolist(), pairs[:, 1].tolist())), int(mapped)

    if reference:
        t2s, t_mapped = _reference_direction(teacher_topk, student_topk, stripper(teacher_decoded),
                                             stripper(student_decoded), static_t2s, threshold)
        s2t, s_mapped = _reference_direction(student_topk, teacher_topk, stripper(student_decoded),
                                             stripper(teacher_decoded), static_s2t, threshold)
    elif teacher_coded is not None and student_coded is not None:
        t2s, t_mapped = compiled_direction(teacher_topk, student_topk, teacher_coded, student_coded, static_t2s)
        s2t, s_mapped = compiled_direction(student_topk, teacher_topk, student_coded, teacher_coded, static_s2t)
    else:
        t2s, t_mapped = one_direction(teacher_topk, student_topk, stripper(teacher_decoded),
                                      stripper(student_decoded), static_t2s)
        s2t, s_mapped = one_direction(student_topk, teacher_topk, stripper(student_decoded),
                                      stripper(teacher_decoded), static_s2t)
    slots = rows * k
    coverage = None if slots == 0 else 1 - 0.5 * ((slots - t_mapped) / slots + (slots - s_mapped) / slots)
    return {"teacher_to_student": t2s, "student_to_teacher": s2t, "topk_coverage": coverage,
            "teacher_slots_mapped": t_mapped, "student_slots_mapped": s_mapped, "rows": rows, "k": k}


#: CDM's hard-coded special-token equivalences (``specTok_mapper``): distance 0 in either direction.
CDM_SPECIAL_EQUIVALENTS = {"</s>": "<|im_end|>", "<|endoftext|>": "<|endoftext|>"}
_MATCHED_SETS: dict[int, tuple[np.ndarray, frozenset]] = {}


def _cdm_reference_distance(a: str, b: str) -> float:
    """CDM's ``dist_fn``: 0 for its special pairs, else ``Lev/(|a| + |b|)`` with spaces removed, 0 when both are
    empty."""
    from rapidfuzz.distance import Levenshtein

    values = CDM_SPECIAL_EQUIVALENTS.values()
    if (a in CDM_SPECIAL_EQUIVALENTS and b in values) or (b in CDM_SPECIAL_EQUIVALENTS and a in values):
        return 0.0
    a, b = a.replace(" ", ""), b.replace(" ", "")
    if not a and not b:
        return 0.0
    return Levenshtein.distance(a, b) / (len(a) + len(b))


def _reference_matched_set(static: np.ndarray | None) -> frozenset:
    """The published code's "matched" set: the source ids whose (0-padded) static mapping is 0 (unmapped)."""
    if static is None:
        return frozenset()
    entry = _MATCHED_SETS.get(id(static))
    if entry is None or entry[0] is not static:
        unmapped = np.flatnonzero(np.asarray(static) <= 0).tolist()
        # keyed by the array's id; the array is kept in the entry so the id cannot be reused by another one
        entry = _MATCHED_SETS[id(static)] = (static, frozenset(unmapped))
    return entry[1]


def _reference_direction(source_topk: np.ndarray, target_topk: np.ndarray, source_text, target_text,
                         static: np.ndarray | None, threshold: float) -> tuple[dict[int, int], int]:
    """One direction of CDM's published ``get_dymaic_mapper``, step for step.

    - A slot is missing when its id's static target is 0 or unmapped (CDM pads its mapping with 0, the "unmapped"
      sentinel, so a static target id 0 is unmapped too).
    - The candidates of a row are the other side's top-K ids at that row minus the "matched" set (source ids whose
      static mapping is 0, compared with candidate ids of the other vocabulary), iterated in the order of the
      Python ``set`` the published code builds (``set(candidates).difference(matched)``).
    - Every missing slot, row by row, is evaluated again (the static "exact-match" check is the only skip), so a
      later row overwrites an earlier row's choice: the last accepted candidate wins.
    - A candidate is accepted when its distance is strictly below θ and strictly below the best so far; a winner
      with id 0 is discarded (0 is the sentinel), which still blocks candidates that are farther away.

    Returns ``({source id: target id} dynamic pairs, slots mapped by the final mapping)``.
    """
    static = None if static is None else np.asarray(static, dtype=np.int64)
    matched = _reference_matched_set(static)

    def static_target(i: int) -> int:
        return int(static[i]) if static is not None and i < len(static) and static[i] > 0 else 0

    added: dict[int, int] = {}
    for source_ids, target_ids in zip(source_topk.tolist(), target_topk.tolist()):
        # the published order: set(list of ids) minus the matched set, iterated as Python iterates that set
        candidates = [j for j in set(target_ids).difference(matched) if j >= 0]
        if not candidates:
            continue
        texts = [target_text(j) for j in candidates]
        for i in source_ids:
            if i < 0 or static_target(i):
                continue
            token = source_text(i)
            best, best_id = 1000.0, 0
            for j, text in zip(candidates, texts):
                distance = _cdm_reference_distance(token, text)
                if distance < threshold and distance < best:
                    best, best_id = distance, j
            if best_id != 0:
                added[i] = best_id
    mapped = sum(1 for row in source_topk.tolist() for i in row if i >= 0 and (static_target(i) or i in added))
    return added, mapped


def cdm_slot_mapping(source_topk: np.ndarray, target_topk: np.ndarray, segment_starts,
                     source_coded: CodedStrings, target_coded: CodedStrings, static: np.ndarray | None,
                     threshold: float = 0.3, *, reference: bool = False, source_decoded: Sequence[str] | None = None,
                     target_decoded: Sequence[str] | None = None) -> tuple[np.ndarray, int]:
    """One direction of CDM's dynamic top-K mapping for a batch, resolved slot by slot, each example on its own.

    The rows of one example (a segment) are mapped as :func:`cdm_dynamic_mapping` maps one call's rows, and the
    example's final mapping (static, else dynamic) is then read at every one of its top-K slots, as the published
    loss gathers logits with the final mapper. Segments never share dynamic pairs, so an example's targets do not
    depend on the other examples of its batch (nor on earlier steps: CDM's in-place accumulation over training,
    variant (b) of ``research/methods.md`` §3.6, is not reproduced).

    Args:
        source_topk, target_topk: ``(rows, K)`` int64 top-K ids of the rows (``-1``: no string).
        segment_starts: ``(S + 1,)`` offsets of each example's rows.
        source_coded, target_coded: both vocabularies' decoded strings, spaces removed (see :func:`_vocab_tables`
            in :mod:`ctkd_inspect.engines.dtw`); ids beyond them have no string.
        static: the static source→target mapping (``-1`` unmapped), or ``None``.
        threshold: θ.
        reference: CDM's published mapper (:func:`_reference_direction`, a Python pass); then
            ``source_decoded``/``target_decoded`` (the same strings as lists) are required.

    Returns:
        ``(targets, dynamic_pairs)``: ``(rows, K)`` int64 target id of every slot (``-1`` unmapped) and the number
        of dynamic pairs found.
    """
    source_topk = np.ascontiguousarray(source_topk, dtype=np.int64)
    target_topk = np.ascontiguousarray(target_topk, dtype=np.int64)
    starts = np.asarray(segment_starts, dtype=np.int64)
    source_topk = np.where(source_topk < len(source_coded), source_topk, -1)
    target_topk = np.where(target_topk < len(target_coded), target_topk, -1)
    static_array = np.full(0, -1, np.int64) if static is None else np.asarray(static, dtype=np.int64)
    out = np.full(source_topk.shape, -1, np.int64)
    if not reference:
        from ._dynamic_mapping_kernel import slot_mapping

        pairs = slot_mapping(source_topk, target_topk, starts, source_coded.codes, source_coded.offsets,
                             target_coded.codes, target_coded.offsets, static_array, float(threshold), out)
        return out, int(pairs)
    if source_decoded is None or target_decoded is None:
        raise InputError("reference mode needs source_decoded and target_decoded (the decoded vocabularies)")
    pairs = 0
    for a, b in zip(starts[:-1].tolist(), starts[1:].tolist()):
        added, _ = _reference_direction(source_topk[a:b], target_topk[a:b], source_decoded.__getitem__,
                                        target_decoded.__getitem__, static_array, threshold)
        pairs += len(added)
        for r in range(a, b):
            for c, i in enumerate(source_topk[r].tolist()):
                if i < 0:
                    continue
                if i < len(static_array) and static_array[i] > 0:
                    out[r, c] = static_array[i]
                else:
                    out[r, c] = added.get(i, -1)
    return out, pairs


def decoded_vocabulary(vocab: Vocabulary, remove_spaces: bool = False, distinct_bytes: bool = False) -> list[str]:
    """Every id decoded on its own, computed once per vocabulary so the dynamic mapping needs no per-step decoding.

    By default as CDM's ``tokenizer.decode([id])``: a byte fragment that is not valid UTF-8 on its own becomes
    U+FFFD, so all such fragments look alike. ``distinct_bytes`` (the canonical mode) keeps each undecodable byte
    as its own character (``surrogateescape``: byte ``0xNN`` → U+DCNN), so two fragments are equal only when their
    bytes are. ``remove_spaces`` also drops ASCII spaces, as CDM's distance does.
    """
    errors = "surrogateescape" if distinct_bytes else "replace"
    out = []
    for token, special in zip(vocab.raw, vocab.special.tolist()):
        text = token if special or not token else token_bytes(token, vocab.scheme).decode("utf-8", errors=errors)
        out.append(text.replace(" ", "") if remove_spaces else text)
    return out


def cdm_reference_exact_mapping(teacher_tokens: Sequence[str], student_tokens: Sequence[str],
                                marker: str = SPIECE) -> tuple[np.ndarray, np.ndarray]:
    """The static exact mapping as CDM's author script builds it (``-1`` unmapped), for ``reference`` mode.

    The script takes ``convert_ids_to_tokens`` of every base-vocabulary id (``range(vocab_size)``: added tokens
    excluded), removes the marker ``"▁"`` (hard-coded, whatever the tokenizer's scheme), and maps a teacher id to
    the first student id with the same string; the student→teacher inverse keeps the last teacher id per student
    id. Tokens that become empty (``"▁"`` itself) therefore map to the first empty student string, as there.

    Args:
        teacher_tokens, student_tokens: the raw strings of the base vocabularies, in id order.
    """
    first: dict[str, int] = {}
    for j, token in enumerate(student_tokens):
        first.setdefault(token.replace(marker, ""), j)
    t2s = np.array([first.get(token.replace(marker, ""), UNMAPPED) for token in teacher_tokens], dtype=np.int64)
    s2t = np.full(len(student_tokens), UNMAPPED, dtype=np.int64)
    mapped = np.flatnonzero(t2s >= 0)
    s2t[t2s[mapped]] = mapped  # numpy assigns in order: the last teacher id wins
    return t2s, s2t
