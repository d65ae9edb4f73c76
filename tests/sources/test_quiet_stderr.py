"""No command prints a third-party progress bar or advisory on stderr.

Each command runs as a subprocess with stderr a pipe (not a terminal), as in a log or CI job, and loads real
tokenizers (cached, and converted on first use through transformers) or real models (a GGUF de-quantisation,
whose transformers/tqdm bars would otherwise fill stderr). What ctkd-inspect reports itself (one line per stage
off a terminal, warnings as one line) is allowed; tqdm bars and transformers' messages are not.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import pytest

THIRD_PARTY = [
    (re.compile(r"\d+%\|"), "a tqdm bar"),
    (re.compile(r"it/s\]|s/it\]"), "a tqdm rate"),
    (re.compile(r"[█▏▎▍▌▋▊▉]"), "bar blocks"),
    (re.compile(r"\r"), "a carriage return (a redrawn bar)"),
    (re.compile(r"de-quantizing|Loading weights|Loading checkpoint"), "a transformers progress bar"),
    (re.compile(r"PyTorch was not found|None of PyTorch|huggingface/tokenizers"), "a transformers advisory"),
    (re.compile(r"(UserWarning|FutureWarning|DeprecationWarning|RuntimeWarning):"), "a raw Python warning"),
    (re.compile(r"^\s*(transformers|huggingface_hub|torch|accelerate)[./]", re.M), "a library's log line"),
    (re.compile(r"Traceback"), "a traceback"),
]


def third_party_output(stderr: str) -> list[str]:
    return [f"{what}: {match.group(0)!r}" for pattern, what in THIRD_PARTY for match in [pattern.search(stderr)]
            if match]


def run_cli(*args, env=None, timeout=600):
    environment = dict(os.environ, **(env or {}))
    environment.pop("TRANSFORMERS_VERBOSITY", None)  # the command must quiet things itself
    environment.pop("TQDM_DISABLE", None)
    environment.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    return subprocess.run([sys.executable, "-m", "ctkd_inspect", *args], capture_output=True, text=True,
                          env=environment, timeout=timeout, stdin=subprocess.DEVNULL)


def test_the_pattern_list_catches_a_real_tqdm_bar():
    """The check itself: a tqdm bar written to a pipe, and a transformers warning, are caught."""
    code = ("import sys, tqdm\n"
            "for _ in tqdm.tqdm(range(3), desc='Converting and de-quantizing GGUF tensors...', file=sys.stderr):\n"
            "    pass\n"
            "import warnings; warnings.warn('something', FutureWarning)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    found = third_party_output(out.stderr)
    assert any("tqdm bar" in f for f in found) and any("raw Python warning" in f for f in found)


def test_a_warm_alignment_prints_nothing_third_party():
    out = run_cli("llama3", "gemma2", "The café costs 3.50€ 🦙")
    assert out.returncode == 0, out.stderr
    assert third_party_output(out.stderr) == [], out.stderr


def test_first_use_conversions_print_only_our_stages(private_cache):
    """gemma2 converts through transformers' GemmaTokenizer, mistral through our builder."""
    root = private_cache("draive")
    out = run_cli("gemma2", "mistral", "hello world", "--cache-dir", str(root))
    assert out.returncode == 0, out.stderr
    assert third_party_output(out.stderr) == [], out.stderr
    assert "converting the gemma2 tokenizer" in out.stderr and "converting the mistral tokenizer" in out.stderr
    quiet = run_cli("gemma2", "mistral", "hello again", "--cache-dir", str(root), "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_vocab_and_fetch_verify_print_nothing_third_party():
    for args in (["vocab", "llama3", "gemma2", "--exact-only"], ["fetch", "--verify", "llama3", "gemma2"]):
        out = run_cli(*args)
        assert out.returncode == 0, out.stderr
        assert third_party_output(out.stderr) == [], (args, out.stderr)


@pytest.mark.slow
@pytest.mark.models
def test_model_loading_prints_only_our_stage(private_cache):
    """Both small LMs load from their GGUFs (a text never seen, in a fresh cache, so no signal is cached): the
    de-quantisation bars of transformers go into our stage, not onto stderr."""
    pytest.importorskip("torch")
    root = private_cache("gemma3-270m", "smollm2")
    text = f"The capital of France is Paris ({uuid.uuid4().hex[:8]})."
    out = run_cli("gemma3", "smollm2", text, "--engine", "cdm", "--cache-dir", str(root), timeout=900)
    assert out.returncode == 0, out.stderr
    assert third_party_output(out.stderr) == [], out.stderr
    assert "loading the model gemma3" in out.stderr and "loading the model smollm2" in out.stderr
