"""The run configuration: YAML, flags generated from the dataclass, precedence, unknown keys named with the closest
known key, values checked per key, --dry-run, --help listing every key, and no torch needed to read a config."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from ctkd_inspect.errors import InputError
from ctkd_inspect.train.config import DistillConfig, config_fields, load_config, parse_value

from .conftest import run_cli

BASE = {"teacher": "gemma3", "student": "smollm2", "data": "train.jsonl"}


def write(path, values):
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def test_every_key_is_documented_and_the_defaults_are_valid():
    for item in config_fields():
        assert len(item.metadata.get("help", "")) > 15, item.name
    config = DistillConfig(**BASE).validate()
    assert config.loss == "sedi" and config.resume == "auto" and config.max_steps == 100


def test_yaml_then_overrides(tmp_path):
    path = write(tmp_path / "run.yaml", {**BASE, "max_steps": 7, "learning_rate": "5e-5", "loss": "mined",
                                         "loss_options": {"kd_rate": 0.3}, "lora_target_modules": ["q_proj"]})
    config = load_config(path, {"max_steps": "9", "lora": "true", "eval_data": "none", "seed": 3})
    assert config.max_steps == 9 and config.learning_rate == 5e-5 and config.loss == "mined"
    assert config.lora is True and config.eval_data is None and config.seed == 3
    assert config.loss_options == {"kd_rate": 0.3} and config.lora_target_modules == ["q_proj"]
    assert load_config(path, {"loss_options": "{kd_rate: 0.1, temperature: 1.5}"}).loss_options == \
        {"kd_rate": 0.1, "temperature": 1.5}
    assert load_config(path, {"lora_target_modules": "all-linear"}).lora_target_modules == "all-linear"


@pytest.mark.parametrize(("values", "pattern"), [
    ({"learnig_rate": 1e-4}, r"unknown config key 'learnig_rate' in .*run.yaml; did you mean 'learning_rate'"),
    ({"max_step": 3}, r"unknown config key 'max_step'.*did you mean 'max_steps'"),
    ({"max_steps": "many"}, r"'max_steps' must be int"),
    ({"max_steps": 0}, r"'max_steps' must be an integer >= 1"),
    ({"learning_rate": -1.0}, r"'learning_rate' must be a finite number > 0"),
    ({"lr_scheduler": "cosine-ish"}, r"'lr_scheduler' must be one of linear, cosine, constant"),
    ({"loss": "sedii"}, r"unknown loss 'sedii'; did you mean 'sedi'"),
    ({"lora": "maybe"}, r"'lora' must be bool"),
    ({"loss_options": [1, 2]}, r"'loss_options' must be dict"),
])
def test_bad_keys_and_values_are_named(tmp_path, values, pattern):
    path = write(tmp_path / "run.yaml", {**BASE, **values})
    with pytest.raises(InputError, match=pattern):
        load_config(path)


def test_required_keys_and_bad_files(tmp_path):
    with pytest.raises(InputError, match="'student' is required"):
        load_config(write(tmp_path / "a.yaml", {"teacher": "gemma3", "data": "x.jsonl"}))
    with pytest.raises(InputError, match="no such file"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(InputError, match="must hold a mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("teacher: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(InputError, match="unknown config key 'epochs'"):
        parse_value("epochs", "3")
    # SFT needs no teacher
    assert load_config(None, {"student": "smollm2", "data": "x.jsonl", "loss": "sft"}).teacher == ""


def test_the_command_dry_run_prints_the_resolved_config(tmp_path):
    path = write(tmp_path / "run.yaml", {**BASE, "max_steps": 7, "output_dir": str(tmp_path / "out")})
    result = run_cli("distill", "--config", str(path), "--max_steps", "11", "--loss-options", "{kd_rate: 0.25}",
                     "--lora", "--save-final-model", "false", "--dry-run")
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.stdout)
    assert resolved["max_steps"] == 11 and resolved["loss_options"] == {"kd_rate": 0.25}
    assert resolved["lora"] is True and resolved["save_final_model"] is False
    assert set(resolved) == {f.name for f in config_fields()}
    assert "would start a new run" in result.stderr


def test_the_command_refuses_unknown_keys_with_exit_2(tmp_path):
    path = write(tmp_path / "run.yaml", {**BASE, "batch_size": 4})
    result = run_cli("distill", "--config", str(path), "--dry-run")
    assert result.exit_code == 2
    assert "unknown config key 'batch_size'" in result.stderr and "Traceback" not in result.stderr
    flag = run_cli("distill", "--config", str(write(tmp_path / "ok.yaml", BASE)), "--max-stepz", "3")
    assert flag.exit_code == 2 and "--max-stepz" in flag.output


def test_help_lists_every_key_as_a_flag():
    result = run_cli("distill", "--help")
    assert result.exit_code == 0
    for item in config_fields():
        assert f"--{item.name.replace('_', '-')}" in result.output, item.name


def test_reading_a_config_imports_no_torch(tmp_path):
    code = ("import sys; from ctkd_inspect.train import load_config; import ctkd_inspect.train.data, "
            "ctkd_inspect.train.launch, ctkd_inspect.train.instructions, ctkd_inspect.train.models; "
            f"load_config(None, {BASE!r}); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_the_readme_documents_every_key_and_the_launch_commands():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Distillation runs"):]
    section = section[:section.index("\n## ", 5)]
    for item in config_fields():
        assert f"| `{item.name}` |" in section, item.name
    for name in ("single_gpu", "multi_gpu", "fsdp", "multi_cpu"):
        assert f"accelerate launch --config_file $(python -m ctkd_inspect.train.launch {name})" in section, name
    assert "GPU figures: pending" in section
