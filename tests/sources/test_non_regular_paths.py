"""FIFOs, devices and sockets given as tokenizer or model paths are refused at once, never opened.

Every check runs in a subprocess under a timeout: opening a FIFO for reading blocks until a writer appears, so a
regression would hang instead of failing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

TIMEOUT_S = 120  # generous for a loaded machine; the refusal itself takes milliseconds


@pytest.fixture
def specials(tmp_path):
    """Real non-regular files: a FIFO, a Unix socket, a character device, and a folder holding a FIFO in the
    place of its tokenizer.json."""
    fifo = tmp_path / "tokenizer.json"
    os.mkfifo(fifo)
    sock_path = tmp_path / "tokenizer.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "tokenizer_config.json").write_text("{}")
    os.mkfifo(folder / "tokenizer.json")
    model_folder = tmp_path / "model"
    model_folder.mkdir()
    os.mkfifo(model_folder / "config.json")
    link = tmp_path / "zero.gguf"
    link.symlink_to("/dev/zero")
    yield {"fifo": (fifo, "a FIFO (named pipe)"), "socket": (sock_path, "a socket"),
           "device": ("/dev/zero", "a character device"), "link to a device": (link, "a character device"),
           "folder with a FIFO": (folder, "a FIFO (named pipe)"), "model folder with a FIFO": (model_folder,
                                                                                             "a FIFO (named pipe)")}
    server.close()


def _run(args, **kwargs):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=TIMEOUT_S,
                          stdin=subprocess.DEVNULL, **kwargs)


@pytest.mark.parametrize("kind", ["fifo", "socket", "device", "link to a device", "folder with a FIFO"])
def test_the_python_api_refuses_a_non_regular_tokenizer_path(specials, kind):
    path, description = specials[kind]
    code = ("from ctkd_inspect.errors import TokenizerLoadError\n"
            "from ctkd_inspect.sources import resolve_tokenizer\n"
            "import sys\n"
            "for backend in ('transformers', 'rust'):\n"
            "    try:\n"
            "        resolve_tokenizer(sys.argv[1], backend=backend)\n"
            "    except TokenizerLoadError as exc:\n"
            "        print(exc.exit_code, exc)\n"
            "    else:\n"
            "        print('loaded')\n")
    out = _run(["-c", code, str(path)])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("3 ") for line in lines), out.stdout
    assert description in lines[0] and "regular files and folders" in lines[0]


@pytest.mark.parametrize("kind", ["fifo", "device", "socket"])
def test_the_command_line_exits_with_3_and_a_message(specials, kind):
    path, description = specials[kind]
    out = _run(["-m", "ctkd_inspect", str(path), "gemma2", "hi"])
    assert out.returncode == 3, (out.stdout, out.stderr)
    assert description in out.stderr and str(path) in out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


@pytest.mark.parametrize("kind", ["fifo", "device", "link to a device", "model folder with a FIFO"])
def test_a_non_regular_model_path_is_refused(specials, kind):
    path, description = specials[kind]
    code = ("from ctkd_inspect.errors import ModelError\n"
            "from ctkd_inspect.signals import resolve_model\n"
            "import sys\n"
            "try:\n"
            "    resolve_model(sys.argv[1])\n"
            "except ModelError as exc:\n"
            "    print(exc.exit_code, exc)\n")
    out = _run(["-c", code, str(path)])
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("3 ") and description in out.stdout, out.stdout


def test_non_regular_kind_of_ordinary_paths(tmp_path):
    from ctkd_inspect.sources.files import non_regular_kind

    regular = tmp_path / "file"
    regular.write_text("x")
    assert non_regular_kind(regular) is None
    assert non_regular_kind(tmp_path) is None
    assert non_regular_kind(tmp_path / "missing") is None
    assert non_regular_kind("/dev/null") == "a character device"
