"""Fault injection on every kind of output file (the reliability issue, points 4 and 7): a full disk (a 64 KiB
tmpfs), a process killed with SIGKILL mid-write, read-only and impossible folders, FIFOs and links. Each case checks
the exit code, the message, that a previous file is byte-identical and that no partial file is left.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

from ctkd_inspect import align
from ctkd_inspect.columns import read_parquet, write_parquet
from ctkd_inspect.errors import OutputError, OutputWriteError
from ctkd_inspect.outputs import atomic_path, atomic_write_bytes, atomic_write_text, check_output_path

from .conftest import cli

PREVIOUS = b"the previous file\n\x00\xff keep me"


def listing(folder) -> list[str]:
    return sorted(os.listdir(folder))


# -------------------------------------------------------------------------------------------------------------
# a full disk


@pytest.mark.parametrize("suffix", [".json", ".npz", ".parquet"])
def test_vocab_out_on_a_full_disk_keeps_the_previous_file(tiny_disk, suffix):
    target = tiny_disk / f"map{suffix}"
    target.write_bytes(PREVIOUS)
    out = cli("vocab", "gpt2", "bert", "--exact-only", "--out", target, "--overwrite", "-q")
    assert out.exit_code == 1, out.output  # a runtime failure, not a usage error
    assert f"could not write {target}: no space left on the device" in out.stderr
    assert f"the previous map{suffix} is unchanged and no partial file was left" in out.stderr
    assert "Free some space" in out.stderr and "this is a bug" not in out.stderr
    assert target.read_bytes() == PREVIOUS
    assert listing(tiny_disk) == [f"map{suffix}"]


def test_align_output_on_a_full_disk(tiny_disk, corpus):
    target = tiny_disk / "alignment.json"
    target.write_bytes(PREVIOUS)
    text = "\n\n".join(corpus[:10])  # a JSON document of well over 64 KiB
    out = cli("llama3", "gemma2", text, "--json", "-o", target, "--overwrite")
    assert out.exit_code == 1 and "no space left on the device" in out.stderr
    assert target.read_bytes() == PREVIOUS and listing(tiny_disk) == ["alignment.json"]
    fresh = cli("llama3", "gemma2", text, "--json", "-o", tiny_disk / "new.json")
    assert fresh.exit_code == 1 and "nothing was written there" in fresh.stderr
    assert listing(tiny_disk) == ["alignment.json"]


def test_parquet_on_a_full_disk(tiny_disk, corpus):
    target = tiny_disk / "run.parquet"
    small = align("llama3", "gemma2", "hi")
    write_parquet(small, target)
    before = target.read_bytes()
    rows = [align("llama3", "gemma2", text) for text in corpus[:60]]
    with pytest.raises(OutputWriteError, match="no space left") as caught:
        write_parquet(rows, target, overwrite=True)
    assert isinstance(caught.value, OSError)  # code that tolerates failed writes keeps catching it
    assert target.read_bytes() == before and listing(tiny_disk) == ["run.parquet"]
    assert [a.to_dict() for a in read_parquet(target)] == [small.to_dict()]


def test_the_named_fallback_also_leaves_nothing_behind(tiny_disk, monkeypatch):
    """Where unnamed files are not available the temporary file has a name; a failure still removes it."""
    from ctkd_inspect import outputs

    monkeypatch.setattr(outputs, "_open_unnamed", lambda folder: None)
    target = tiny_disk / "big.bin"
    target.write_bytes(PREVIOUS)
    with pytest.raises(OutputWriteError, match="no space left"):
        atomic_write_bytes(target, b"x" * 200_000)
    assert target.read_bytes() == PREVIOUS and listing(tiny_disk) == ["big.bin"]
    atomic_write_bytes(target, b"small")
    assert target.read_bytes() == b"small" and listing(tiny_disk) == ["big.bin"]


# -------------------------------------------------------------------------------------------------------------
# a process killed mid-write

KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from ctkd_inspect import outputs, vocab
    moment = sys.argv[1]
    if moment == "named":
        outputs._open_unnamed = lambda folder: None
    real = vocab.VocabMapping._write

    def write_then_wait(self, path, suffix, teacher_vocab, student_vocab):
        if moment == "mid-content":
            with open(path, "wb") as stream:  # half a document, as a writer leaves it when killed
                stream.write(b'{"kind": "exact", "teacher_to_student": [1, 2, 3')
        else:
            real(self, path, suffix, teacher_vocab, student_vocab)  # complete, but not yet in place
        print("WRITING", flush=True)
        time.sleep(120)

    vocab.VocabMapping._write = write_then_wait
    from ctkd_inspect.cli import main
    main(sys.argv[2:])
""")


def _kill_while_writing(moment: str, target) -> int:
    process = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, moment, "vocab", "gpt2", "bert", "--exact-only",
                                "--out", str(target), "--overwrite", "-q"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.strip() == "WRITING", (line, process.stderr.read() if process.poll() is not None else "")
        process.send_signal(signal.SIGKILL)
        return process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize(("moment", "suffix"), [("complete", ".json"), ("mid-content", ".json"),
                                                ("complete", ".parquet"), ("mid-content", ".npz")])
def test_sigkill_mid_write_keeps_the_previous_file_and_leaves_no_partial_file(tmp_path, moment, suffix):
    target = tmp_path / f"map{suffix}"
    target.write_bytes(PREVIOUS)
    assert _kill_while_writing(moment, target) == -signal.SIGKILL
    assert target.read_bytes() == PREVIOUS
    assert listing(tmp_path) == [f"map{suffix}"]  # the unfinished file never had a name


def test_sigkill_with_named_temporaries_is_swept_by_the_next_write(tmp_path):
    target = tmp_path / "map.json"
    target.write_bytes(PREVIOUS)
    assert _kill_while_writing("named", target) == -signal.SIGKILL
    assert target.read_bytes() == PREVIOUS
    left = [name for name in listing(tmp_path) if name != "map.json"]
    assert len(left) == 1 and left[0].startswith(".map.json.") and left[0].endswith(".partial.json")
    # a temporary of a process that still runs (this one's parent) is never touched
    alive = tmp_path / f".map.json.{os.getppid()}.abcd.partial.json"
    alive.write_bytes(b"in progress elsewhere")
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n"
    assert listing(tmp_path) == sorted(["map.json", alive.name])


# -------------------------------------------------------------------------------------------------------------
# folders that cannot be written, and paths that must not be replaced: refused before any work


@pytest.fixture
def no_work(monkeypatch):
    """Loading a tokenizer fails the test: the output check must come first."""
    from ctkd_inspect.cli import vocab as vocab_command

    monkeypatch.setattr(vocab_command, "load_tokenizers", lambda *a, **k: pytest.fail("work started"))


def test_a_read_only_folder_is_refused_before_any_work(read_only_folder, no_work):
    out = cli("vocab", "gpt2", "bert", "--out", read_only_folder / "map.json")
    assert out.exit_code == 2
    assert f"the folder {read_only_folder} cannot be written (read-only file system)" in out.stderr
    assert listing(read_only_folder) == []


@pytest.mark.parametrize("case", ["file-as-folder", "missing-folder", "proc", "folder-as-file", "exists",
                                  "unknown-extension"])
def test_impossible_outputs_are_refused_before_any_work(tmp_path, no_work, case):
    blocker = tmp_path / "notes.txt"
    blocker.write_bytes(PREVIOUS)
    path, message = {
        "file-as-folder": (blocker / "map.json", "is not a folder (a file has that name)"),
        "missing-folder": (tmp_path / "nowhere" / "map.json", "does not exist; create it first"),
        "proc": ("/proc/map.json", "cannot be written"),
        "folder-as-file": (tmp_path, "is a directory"),
        "exists": (blocker.with_suffix(".json"), "exists; pass --overwrite"),
        "unknown-extension": (tmp_path / "map.csv", "unknown extension '.csv'; use one of .json, .npz, .parquet"),
    }[case]
    if case == "exists":
        path.write_bytes(PREVIOUS)
    before = listing(tmp_path)
    out = cli("vocab", "gpt2", "bert", "--out", path)
    assert out.exit_code == 2 and message in out.stderr and "--out" in out.stderr and "Traceback" not in out.output
    assert listing(tmp_path) == before and blocker.read_bytes() == PREVIOUS
    if case == "exists":
        assert path.read_bytes() == PREVIOUS


def test_a_fifo_is_never_replaced(tmp_path, no_work):
    fifo = tmp_path / "map.json"
    os.mkfifo(fifo)
    out = cli("vocab", "gpt2", "bert", "--out", fifo, "--overwrite")
    assert out.exit_code == 2 and "is not a regular file" in out.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_symlinked_output_keeps_its_link(tmp_path):
    real = tmp_path / "store" / "map.json"
    real.parent.mkdir()
    real.write_bytes(PREVIOUS)
    link = tmp_path / "map.json"
    link.symlink_to(real)
    out = cli("vocab", "gpt2", "bert", "--exact-only", "--out", link, "--overwrite", "-q")
    assert out.exit_code == 0, out.output
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert json.loads(real.read_text())["kind"] == "exact"
    assert listing(real.parent) == ["map.json"] and listing(tmp_path) == ["map.json", "store"]


def test_new_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == 0o640


def test_an_exception_inside_the_block_leaves_nothing(tmp_path):
    target = tmp_path / "x.parquet"
    target.write_bytes(PREVIOUS)
    with pytest.raises(RuntimeError, match="writer bug"), atomic_path(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("writer bug")
    assert target.read_bytes() == PREVIOUS and listing(tmp_path) == ["x.parquet"]


def test_check_output_path_refuses_non_paths():
    for bad in (3, None, b"x.json", ["x.json"]):
        with pytest.raises(OutputError, match="must be a file path"):
            check_output_path(bad, option="path")
