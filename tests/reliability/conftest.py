"""Shared by the fuzz and fault tests: the CLI in-process, a size-limited and a read-only folder, the corpus text."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from click.testing import CliRunner


def cli(*args, stdin=None):
    """Run ``ctkd-inspect ARGS`` in this process; a traceback or an unexpected exception fails the test."""
    from ctkd_inspect.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args], input=stdin, prog_name="ctkd-inspect")
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def _mount(folder, options: str):
    if shutil.which("mount") is None:
        pytest.skip("no mount command on this system")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here ({done.stderr.strip()})")


@pytest.fixture
def tiny_disk(tmp_path):
    """A folder on a 64 KiB tmpfs: writing more than that fails with ENOSPC (skipped where mounting is refused)."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    _mount(folder, "size=64k")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder on a read-only tmpfs (root ignores permission bits, not a read-only mount)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    _mount(folder, "ro,size=64k")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture(scope="session")
def long_text(corpus):
    """A real 100,000-character text: the corpus texts joined by blank lines, cut at 100k characters."""
    return "\n\n".join(corpus)[:100_000]
