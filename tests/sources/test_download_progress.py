"""Downloads report their bytes as they arrive, with the pip this environment has (whatever its version), through
the progress stages every front-end draws; unpacking and conversion are stages too.

The registry is a local HTTP server (a PEP 503 simple index) that serves a real wheel slowly, in chunks, so pip
really downloads it over HTTP and the test sees the bytes arrive.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import random
import threading
import zipfile

import pytest

from ctkd_inspect.progress import reporting
from ctkd_inspect.sources import assets

NAME, VERSION = "ctkd-test-blob", "1.0"
WHEEL = f"ctkd_test_blob-{VERSION}-py3-none-any.whl"
CHUNK, CHUNKS, PAUSE_S = 64 * 1024, 48, 0.04  # about 3 MB over about 2 s


def _wheel() -> bytes:
    payload = random.Random(7).randbytes(CHUNK * CHUNKS - 20_000)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as wheel:
        wheel.writestr("ctkd_test_blob/data.bin", payload)
        info = f"ctkd_test_blob-{VERSION}.dist-info"
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n")
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                        "Tag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "")
    return buffer.getvalue()


class _Index(http.server.BaseHTTPRequestHandler):
    wheel = b""

    def do_GET(self):
        digest = hashlib.sha256(self.wheel).hexdigest()
        if self.path.rstrip("/") == f"/simple/{NAME}":
            body = f'<html><body><a href="/files/{WHEEL}#sha256={digest}">{WHEEL}</a></body></html>'.encode()
            self._send(body, "text/html")
        elif self.path == f"/files/{WHEEL}":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(self.wheel)))
            self.end_headers()
            for start in range(0, len(self.wheel), CHUNK):  # slowly, so the download is seen growing
                self.wfile.write(self.wheel[start:start + CHUNK])
                self.wfile.flush()
                threading.Event().wait(PAUSE_S)
        else:
            self.send_error(404)

    def _send(self, body: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def local_index(monkeypatch):
    wheel = _wheel()
    _Index.wheel = wheel
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Index)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    for key, value in {"PIP_INDEX_URL": f"http://127.0.0.1:{port}/simple/", "PIP_TRUSTED_HOST": "127.0.0.1",
                       "PIP_CONFIG_FILE": os.devnull, "PIP_NO_CACHE_DIR": "1", "PIP_FIND_LINKS": "",
                       "PIP_EXTRA_INDEX_URL": ""}.items():
        monkeypatch.setenv(key, value)
    package = assets.Package(NAME, VERSION, hashlib.sha256(wheel).hexdigest(), len(wheel))
    asset = assets.Asset("blob-test", "a test archive", (package,),
                         assets._extract_from_wheel({"ctkd_test_blob/data.bin": "data.bin"}), ("data.bin",), "none")
    monkeypatch.setitem(assets.ASSETS, "blob-test", asset)
    yield wheel
    server.shutdown()
    server.server_close()


class Recorder:
    """A progress reporter that keeps every event."""

    def __init__(self):
        self.events = []

    def start(self, stage):
        self.events.append(("start", stage.name, stage.completed, stage.total, stage.unit))

    def update(self, stage):
        self.events.append(("update", stage.name, stage.completed, stage.total, stage.unit))

    def finish(self, stage):
        self.events.append(("finish", stage.name, stage.completed, stage.total, stage.unit))


@pytest.fixture(scope="module")
def fresh_venv_pip(tmp_path_factory):
    """The pip a new virtual environment ships (``python -m venv``, from the interpreter's bundled wheel; pip
    23.2 for Python 3.11.7, older than the ``--progress-bar raw`` of pip 24.1). No network is needed."""
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("fresh-venv")
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, capture_output=True, timeout=300)
    python = folder / ("Scripts" if os.name == "nt" else "bin") / "python"
    version = subprocess.run([str(python), "-m", "pip", "--version"], capture_output=True, text=True, check=True)
    return [str(python), "-m", "pip"], version.stdout.split()[1]


@pytest.mark.parametrize("pip", ["this environment's pip", "a fresh venv's pip"])
def test_a_download_reports_its_bytes_as_they_arrive(tmp_path, local_index, pip, request, monkeypatch):
    wheel = local_index
    if pip == "a fresh venv's pip":
        command, _version = request.getfixturevalue("fresh_venv_pip")
        monkeypatch.setattr(assets, "pip_command", lambda: command)
    recorder, callback_calls = Recorder(), []
    with reporting(recorder):
        entry = assets.fetch_asset("blob-test", tmp_path / "cache",
                                   progress=lambda *args: callback_calls.append(args))
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        assert (entry / "data.bin").read_bytes() == archive.read("ctkd_test_blob/data.bin")

    download = [e for e in recorder.events if e[1] == "downloading blob-test"]
    assert download[0][0] == "start" and download[-1][0] == "finish"
    assert {e[3] for e in download} == {len(wheel)} and {e[4] for e in download} == {"bytes"}
    done = [e[2] for e in download if e[0] == "update"]
    assert done == sorted(done) and done[-1] == len(wheel)
    partial = {d for d in done if 0 < d < len(wheel)}
    assert len(partial) >= 3, f"the download was not seen growing: {done}"
    # the unpacking stage follows the download
    names = [e[1] for e in recorder.events if e[0] == "start"]
    assert names == ["downloading blob-test", "unpacking blob-test"]
    # the old callback still sees the same bytes
    assert [c[1] for c in callback_calls if c[3] == "download"][-1] == len(wheel)
    assert len({c[1] for c in callback_calls if 0 < c[1] < len(wheel)}) >= 3


def test_a_corrupted_download_is_refused_by_pip_and_nothing_is_kept(tmp_path, local_index, monkeypatch):
    bad = assets.Package(NAME, VERSION, "0" * 64, len(local_index))
    asset = assets.ASSETS["blob-test"]
    monkeypatch.setitem(assets.ASSETS, "blob-test", assets.Asset(asset.key, asset.description, (bad,), asset.unpack,
                                                                  asset.files, asset.license))
    with pytest.raises(assets.FetchError, match="does not match its pinned SHA-256"):
        assets.fetch_asset("blob-test", tmp_path / "cache")
    assert not (tmp_path / "cache" / "assets" / "blob-test").exists()
    assert not list((tmp_path / "cache" / "assets").glob(".staging-*"))


def test_a_conversion_is_a_stage(private_cache):
    from ctkd_inspect.sources import resolve_tokenizer

    root = private_cache("draive")
    recorder = Recorder()
    with reporting(recorder):
        resolve_tokenizer("mistral", cache_dir=root, backend="rust")  # converted: a stage
        resolve_tokenizer("mistral", cache_dir=root, backend="rust")  # cached: none
    assert [e[:2] for e in recorder.events if e[0] != "update"] == [("start", "converting the mistral tokenizer"),
                                                                   ("finish", "converting the mistral tokenizer")]
