"""Checking the whole cache: fetched assets and converted tokenizers, byte for byte (``ctkd-inspect fetch --verify``).

Threat model, stated plainly:

- **What is checked.** Every file of a fetched asset and of a converted tokenizer is recorded in its entry's
  manifest with its size and SHA-256 (written last, once the files are in place). :func:`verify_cache` re-hashes
  every recorded file, and also reports a missing file, a file that is not a regular file (a link, a FIFO), a
  file the manifest does not list, and a manifest that is missing, empty, malformed or lists no files.
- **On every load.** A converted tokenizer is verified in full each time it is loaded: every file is hashed and
  compared with the manifest before the tokenizer is returned (the ``rust`` backend parses exactly the bytes it
  hashed; the ``transformers`` backend lets transformers read the files again after the check, a window of
  milliseconds). Hashing the two largest tokenizers of the headline command (Llama 3 and Gemma 2, 21 MB) takes
  about 20 ms and runs in a second thread while the tokenizer is parsed, so a check by file size and modification
  time alone, which an attacker who resets the modification time would pass, is not used: a changed byte is
  caught by the next load whoever changed it and however.
- **Assets** (the downloaded packages' files, up to 250 MB for a model) are checked by size on every use, by
  SHA-256 before a tokenizer is converted from one and before a model alias's GGUF is read (once per process and
  file; a file that changes afterwards has a new modification time and is hashed again), and in full by
  ``fetch --verify``.
- **What is not covered.** Someone who can rewrite a file *and* its manifest (the same user, or root) can make
  the cache say anything; the manifests protect against damage and accidental or partial changes, not against an
  attacker who owns the cache folder. Downloads themselves are checked by pip against the SHA-256 pinned in
  :mod:`ctkd_inspect.sources.assets`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .assets import ASSETS, asset_dir, asset_problem
from .cache import cache_root, entry_problem

__all__ = ["CacheCheck", "verify_cache"]


@dataclass(frozen=True)
class CacheCheck:
    """The verdict on one cache entry.

    ``kind`` is ``"asset"`` or ``"tokenizer"`` (a converted tokenizer); ``name`` the asset key or the tokenizer's
    name (alias, or hub id for a hub copy); ``status`` one of ``"ok"``, ``"damaged"`` (``problem`` says why),
    ``"missing"`` (an asset not fetched) or ``"absent"`` (a tokenizer not converted yet: not an error).
    """

    kind: str
    name: str
    location: Path
    status: str
    problem: str | None = None

    @property
    def failed(self) -> bool:
        """True for a damaged entry or a missing asset (what makes ``fetch --verify`` exit with 1)."""
        return self.status in ("damaged", "missing")

    def line(self) -> str:
        """One line for people: ``tokenizer gemma2: damaged (tokenizer.json differs from its manifest ...)``."""
        verdicts = {"ok": "ok", "missing": "not fetched", "absent": "not converted yet",
                    "damaged": f"damaged ({self.problem}); it is rebuilt on next use" if self.kind == "tokenizer"
                    else f"damaged ({self.problem}); run `ctkd-inspect fetch --force {self.name}`"}
        return f"{self.kind} {self.name}: {verdicts[self.status]}"


def _tokenizer_entries(root: Path) -> list[Path]:
    folder = root / "tokenizers"
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and (p.is_dir() or p.is_symlink()))
    except OSError:
        return []


def _check_tokenizer(entry: Path, name: str) -> CacheCheck:
    if not os.path.lexists(entry):
        return CacheCheck("tokenizer", name, entry, "absent")
    problem = entry_problem(entry, deep=True)
    return CacheCheck("tokenizer", name, entry, "ok" if problem is None else "damaged", problem)


def verify_cache(names: list[str] | None = None, root: str | Path | None = None) -> list[CacheCheck]:
    """Verify fetched assets and converted tokenizers against their manifests, re-hashing every file.

    Args:
        names: aliases or asset keys; an alias covers its asset and its converted tokenizer. ``None`` checks
            every known asset and every converted tokenizer in the cache (hub copies included).
        root: the cache root (default: :func:`~ctkd_inspect.sources.cache.cache_root`).

    Returns:
        One :class:`CacheCheck` per entry, assets first, in a stable order.

    Raises:
        KeyError: a name is neither an alias nor an asset key (the CLI turns it into a message with suggestions).
    """
    from .registry import find_alias

    root = Path(root).expanduser() if root else cache_root()
    assets: list[str] = []
    tokenizers: dict[str, Path] = {}
    if names is None:
        assets = list(ASSETS)
        for entry in _tokenizer_entries(root):
            tokenizers[entry.name.replace("--", "/")] = entry
    else:
        for name in names:
            alias = find_alias(name)
            key = alias.asset if alias else name
            if key not in ASSETS:
                raise KeyError(name)
            if key not in assets:
                assets.append(key)
            if alias is not None:
                tokenizers[alias.name] = root / "tokenizers" / alias.name
    checks = []
    for key in assets:
        entry = asset_dir(key, root)
        if not os.path.lexists(entry):
            checks.append(CacheCheck("asset", key, entry, "missing"))
            continue
        problem = asset_problem(key, root)
        checks.append(CacheCheck("asset", key, entry, "ok" if problem is None else "damaged", problem))
    checks += [_check_tokenizer(entry, name) for name, entry in tokenizers.items()]
    return checks
