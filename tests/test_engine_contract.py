"""Engines declare themselves: options and signals, validated before any tokenizer or model is touched, and every
front-end derives its option handling from the declarations — a third-party engine appears in the CLI untouched."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import ClassVar

import numpy as np
import pytest
from click.testing import CliRunner

import ctkd_inspect
from ctkd_inspect.alignment import Alignment, GroupTable
from ctkd_inspect.cli import main
from ctkd_inspect.engines import (
    MODEL_OPTIONS,
    SIGNALS,
    EngineOption,
    OptionError,
    describe_engine,
    engine_class,
    engine_names,
    options_of,
    register_engine,
)
from ctkd_inspect.engines import base as engine_base
from ctkd_inspect.errors import EngineError, TokenizerNotFound
from ctkd_inspect.metrics import compute_metrics


class TinyEngine:
    """A third-party engine: pairs the i-th non-special tokens of both sides, ``stride`` at a time."""

    name: ClassVar[str] = "tiny"
    description: ClassVar[str] = "pairs tokens by position (a test plugin)"
    options: ClassVar[tuple] = (
        EngineOption("stride", int, 1, "Tokens per group on each side", minimum=1, maximum=8),
        EngineOption("flavour", str, "plain", "A choice", choices=("plain", "fancy")),
        EngineOption("loud", bool, False, "A switch"),
    )
    requires_signals: ClassVar[frozenset] = frozenset()
    optional_signals: ClassVar[frozenset] = frozenset()
    differentiable: ClassVar[bool] = False
    batched: ClassVar[bool] = False

    def align(self, teacher, student, stride=1, flavour="plain", loud=False):
        t_idx, s_idx = np.flatnonzero(~teacher.special), np.flatnonzero(~student.special)
        n = min(len(t_idx), len(s_idx))
        groups_t = [t_idx[i:i + stride].tolist() for i in range(0, n, stride)]
        groups_s = [s_idx[i:i + stride].tolist() for i in range(0, n, stride)]
        groups_t += [[int(i)] for i in t_idx[n:]] + [[] for _ in s_idx[n:]]
        groups_s += [[] for _ in t_idx[n:]] + [[int(j)] for j in s_idx[n:]]
        alignment = Alignment(teacher, student, GroupTable.from_lists(groups_t, groups_s), engine=self.name,
                              options={"stride": stride, "flavour": flavour, "loud": loud})
        alignment.metrics = compute_metrics(alignment)
        return alignment


@pytest.fixture
def tiny_engine():
    saved = dict(engine_base._REGISTRY)
    register_engine("tiny", TinyEngine)
    yield
    engine_base._REGISTRY.clear()
    engine_base._REGISTRY.update(saved)


def test_every_builtin_engine_declares_typed_documented_options():
    assert {"span", "mined", "cdm", "softdtw"} <= set(engine_names())
    for name in ("span", "mined", "cdm", "softdtw"):
        cls = engine_class(name)
        assert cls.description and set(cls.requires_signals | cls.optional_signals) <= set(SIGNALS)
        for option in options_of(cls):
            assert option.name.isidentifier() and option.help and option.type in (int, float, bool, str, object)
            # every default is itself valid
            assert option.validate(option.default) == option.default or option.type is object
        description = describe_engine(name)
        json.dumps(description)  # JSON-ready for the TUI and the widgets
        assert description["uses_models"] == (name != "span")
    assert engine_class("cdm").requires_signals == {"entropy"}
    assert engine_class("softdtw").requires_signals == {"hidden_states", "embeddings"}
    assert engine_class("span").options == () and "teacher_model" not in {o.name for o in options_of("span")}
    names = [o.name for o in options_of(engine_class("softdtw"))]
    assert names[-3:] == [o.name for o in MODEL_OPTIONS]


@pytest.mark.parametrize(("options", "message"), [
    ({"gamma": 0}, "gamma must be > 0 (got 0)"),
    ({"gamma": "abc"}, "gamma must be a number (got 'abc')"),
    ({"band_alpha": 1.5}, "band_alpha must be in [0, 1] (got 1.5)"),
    ({"band_width": float("nan")}, "band_width must be a finite number"),
    ({"ridge": "loo"}, "ridge must be a number or 'auto' (got 'loo')"),
    ({"representation": "logits"}, "representation must be one of hidden, embedding"),
    ({"fit_texts": -1}, "fit_texts must be ≥ 0 (got -1)"),
    ({"top_k": 0}, "top_k must be ≥ 1 (got 0)"),
    ({"teacher_model": 3}, "teacher_model must be a string"),
    ({"mode": "reference"}, "mode applies to engine='mined' or engine='cdm', not to the softdtw engine"),
])
def test_python_validation_names_the_keyword_before_any_tokenizer_is_loaded(options, message):
    # the tokenizer names do not exist: validation must fail first, without trying to resolve them
    with pytest.raises(EngineError) as caught:
        ctkd_inspect.align("no-such-tokenizer-a", "no-such-tokenizer-b", "x", engine="softdtw", **options)
    assert message in str(caught.value)
    assert not isinstance(caught.value, TokenizerNotFound)


def test_other_api_arguments_are_checked_with_the_package_errors():
    with pytest.raises(EngineError, match="unknown engine 'nope'"):
        ctkd_inspect.align("llama3", "gemma2", "x", engine="nope")
    with pytest.raises(ctkd_inspect.InputError, match="add_special_tokens must be True or False"):
        ctkd_inspect.align("llama3", "gemma2", "x", add_special_tokens="yes")
    with pytest.raises(ctkd_inspect.InputError, match="teacher must be a tokenizer name"):
        ctkd_inspect.align(42, "gemma2", "x")
    with pytest.raises(EngineError, match="teacher_model applies to engine='mined' or engine='cdm' or "
                                          "engine='softdtw', not to the span engine"):
        ctkd_inspect.align("llama3", "gemma2", "x", teacher_model="smollm2")


@pytest.mark.parametrize(("args", "message"), [
    (["--engine", "softdtw", "--gamma", "-1"], "--gamma must be > 0 (got -1)"),
    (["--engine", "softdtw", "--fit-texts", "1.5"], "--fit-texts must be an integer (got '1.5')"),
    (["--engine", "softdtw", "--band-alpha", "2"], "--band-alpha must be in [0, 1] (got 2)"),
    (["--engine", "mined", "--mode", "fast"], "--mode must be one of canonical, reference (got 'fast')"),
    (["--teacher-model", "smollm2"], "--teacher-model applies to --engine mined or --engine cdm or --engine softdtw"),
    (["--engine", "cdm", "--top-k", "x"], "--top-k must be an integer (got 'x')"),
    (["--engine", "mined", "--vocab-mapping", "missing.npz"], "--vocab-mapping: no such mapping file"),
])
def test_cli_validation_names_the_flag_before_any_tokenizer_is_loaded(args, message):
    out = CliRunner().invoke(main, ["no-such-tokenizer-a", "no-such-tokenizer-b", "x", *args])
    assert out.exit_code == 2, out.output
    assert message in out.output and "Traceback" not in out.output


def test_a_registered_third_party_engine_appears_in_the_cli_with_its_options(tiny_engine):
    help_text = " ".join(CliRunner().invoke(main, ["align", "--help"]).output.split())  # unwrapped
    assert "--stride" in help_text and "Tokens per group on each side; in [1, 8]; default 1. [tiny]" in help_text
    assert "--flavour" in help_text and "--loud / --no-loud" in help_text
    assert "tiny (pairs tokens by position (a test plugin))" in help_text
    out = CliRunner().invoke(main, ["llama3", "gemma2", "one two three four", "--engine", "tiny", "--stride", "2",
                                    "--flavour", "fancy", "--loud", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["engine"] == "tiny" and data["options"]["stride"] == 2 and data["options"]["flavour"] == "fancy"
    assert data["options"]["loud"] is True
    assert data["groups"][0]["teacher"] == [1, 2] and data["groups"][0]["student"] == [1, 2]
    out = CliRunner().invoke(main, ["llama3", "gemma2", "x", "--engine", "tiny", "--stride", "9"])
    assert out.exit_code == 2 and "--stride must be in [1, 8] (got 9)" in out.output
    out = CliRunner().invoke(main, ["llama3", "gemma2", "x", "--engine", "span", "--stride", "2"])
    assert out.exit_code == 2 and "--stride applies to --engine tiny, not to the span engine" in out.output
    # the Python API validates the same declaration, naming the keyword
    with pytest.raises(OptionError, match=r"^stride must be in \[1, 8\] \(got 0\)$"):
        ctkd_inspect.align("llama3", "gemma2", "x", engine="tiny", stride=0)
    assert ctkd_inspect.align("llama3", "gemma2", "a b c", engine="tiny", stride=3).options["stride"] == 3


def test_register_engine_refuses_what_is_not_an_engine():
    with pytest.raises(EngineError, match="give the engine class"):
        register_engine("bad", "no_colon_here")
    with pytest.raises(EngineError, match="non-empty string"):
        register_engine("", TinyEngine)


def test_a_missing_models_extra_is_reported_before_any_download(tmp_path):
    """Without torch, a model engine says how to install it before fetching anything (the cache stays empty)."""
    cache = tmp_path / "cache"
    code = ("import sys; sys.modules['torch'] = None\n"
            "from ctkd_inspect.cli import main\n"
            f"main(['gemma3', 'smollm2', 'hi', '--engine', 'cdm', '--cache-dir', {str(cache)!r}])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert 'pip install torch==2.13.0 && pip install -e ".[models]"' in proc.stderr.replace("\n", " ")
    assert not cache.exists() or not any(cache.rglob("*"))
