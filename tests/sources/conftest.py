"""Fixtures of the source and cache tests: private caches built from the real fetched assets."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def _link_or_copy(source: str, target: str) -> None:
    """Hard-link when the file systems allow it (the model assets are hundreds of MB), copy otherwise."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


@pytest.fixture
def private_cache(tmp_path):
    """``private_cache(*asset_keys, copy=False)``: a new cache root under ``tmp_path`` holding those fetched assets
    and nothing else. Their files are hard-linked from the default cache, so a test must not change them in
    place; pass ``copy=True`` for real copies that a test may damage."""
    from ctkd_inspect.sources.assets import asset_dir

    root = tmp_path / "cache"

    def make(*keys: str, copy: bool = False) -> Path:
        for key in keys:
            target = root / "assets" / key
            if not target.exists():
                shutil.copytree(asset_dir(key), target, copy_function=shutil.copy2 if copy else _link_or_copy)
        (root / "assets").mkdir(parents=True, exist_ok=True)
        return root

    return make
