"""Smoke test in a real terminal: the installed ``ctkd-inspect tui`` command in tmux, driven with send-keys and
read back with capture-pane. It catches what headless tests cannot: the entry point, the terminal's size and keys.

A private tmux server (its own socket) is used and removed at the end, so no user session is touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (the CI script installs it)")


def _command() -> str:
    script = Path(sys.executable).with_name("ctkd-inspect")
    return str(script) if script.exists() else (shutil.which("ctkd-inspect") or "ctkd-inspect")


class Tmux:
    def __init__(self):
        self.socket = f"ctkd-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.session = "tui"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([TMUX, "-L", self.socket, *args], capture_output=True, text=True, check=check)

    def start(self, command: str, width: int = 120, height: int = 40) -> None:
        self.run("new-session", "-d", "-s", self.session, "-x", str(width), "-y", str(height), command)

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.session, *keys)

    def literal(self, text: str) -> None:
        self.run("send-keys", "-t", self.session, "-l", text)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.session, check=False).stdout

    def wait_for(self, *needles: str, timeout: float = 90.0) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            if all(needle in text for needle in needles):
                return text
            time.sleep(0.25)
        raise AssertionError(f"{needles} not on screen after {timeout} s; the screen shows:\n{text}")

    def alive(self) -> bool:
        return self.run("has-session", "-t", self.session, check=False).returncode == 0

    def close(self) -> None:
        self.run("kill-server", check=False)


@pytest.fixture
def tmux():
    terminal = Tmux()
    try:
        yield terminal
    finally:
        terminal.close()


def test_tui_in_a_real_terminal(tmux, tmp_path):
    env = f"env CTKD_INSPECT_CACHE={os.environ['CTKD_INSPECT_CACHE']} " if os.environ.get("CTKD_INSPECT_CACHE") else ""
    tmux.start(f"{env}{_command()} tui llama3 gemma2 'The café costs 3.50€ 🦙'; echo EXITED-$?; sleep 30")
    screen = tmux.wait_for("teacher llama3", "student gemma2", "café", "costs")
    assert "1 Alignment" in screen and "2 Engines" in screen  # the navigation bar
    assert "[50]" in screen and "[5] [0]" in screen  # the group table: llama3 "50" against gemma2 "5" "0"
    tmux.keys("]")  # the first group that is not an exact pair
    screen = tmux.wait_for("group 6", "1:n")
    assert "digit-run" in screen  # why it is not exact
    tmux.keys("6")  # vocabulary lookup
    tmux.wait_for("token (")
    tmux.literal("Ġthe")
    screen = tmux.wait_for("exact", "▁the", "nearest student tokens")
    tmux.keys("Escape", "1", "C-q")
    screen = tmux.wait_for("EXITED-0", timeout=30)
