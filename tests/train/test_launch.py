"""The packaged launch configurations: listed, resolved by name, valid Accelerate configs of the kind their name
says, shipped as package data; the DDP config itself is exercised by test_ddp.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ctkd_inspect.errors import InputError
from ctkd_inspect.train.launch import CONFIGS, config_path

EXPECTED = {"single_gpu": ("NO", 1, False), "multi_gpu": ("MULTI_GPU", 8, False), "fsdp": ("FSDP", 8, False),
            "multi_cpu": ("MULTI_GPU", 2, True)}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_config_is_an_accelerate_config_of_its_kind(name):
    from accelerate.commands.config.config_args import load_config_from_file

    path = config_path(name)
    data = yaml.safe_load(path.read_text())
    kind, processes, cpu = EXPECTED[name]
    assert (data["distributed_type"], data["num_processes"], data["use_cpu"]) == (kind, processes, cpu)
    loaded = load_config_from_file(str(path))  # accelerate's own reader accepts it
    assert str(loaded.distributed_type).endswith(kind)
    if name == "fsdp":
        assert data["fsdp_config"]["fsdp_version"] == 2
        assert data["fsdp_config"]["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"


def test_names_paths_and_the_command_line():
    assert set(CONFIGS) == set(EXPECTED)
    assert config_path("fsdp.yaml") == config_path("fsdp")
    with pytest.raises(InputError, match="did you mean 'multi_gpu'"):
        config_path("multi-gpus")
    listed = subprocess.run([sys.executable, "-m", "ctkd_inspect.train.launch"], capture_output=True, text=True,
                            check=True).stdout
    assert all(str(config_path(name)) in listed for name in CONFIGS)
    one = subprocess.run([sys.executable, "-m", "ctkd_inspect.train.launch", "multi_gpu"], capture_output=True,
                         text=True, check=True).stdout.strip()
    assert Path(one) == config_path("multi_gpu")
    bad = subprocess.run([sys.executable, "-m", "ctkd_inspect.train.launch", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown launch configuration" in bad.stderr


def test_the_configs_are_package_data():
    import tomllib

    root = Path(__file__).resolve().parents[2]
    setup = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "ctkd_inspect.train.launch" in setup["packages"]
    assert "*.yaml" in setup["package-data"]["ctkd_inspect.train.launch"]
    assert {p.stem for p in config_path("fsdp").parent.glob("*.yaml")} == set(CONFIGS)
