"""Every subpackage is listed in pyproject.toml (the list is explicit because of the tui/ mapping)."""

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_all_subpackages_are_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "ctkd_inspect").rglob("__init__.py")}
    assert found <= listed, f"missing from [tool.setuptools] packages: {sorted(found - listed)}"
    assert config["package-dir"]["ctkd_inspect_tui"] == "tui"
    assert "ctkd_inspect_tui" in listed


def test_tui_installs_under_its_own_name():
    import ctkd_inspect_tui

    assert Path(ctkd_inspect_tui.__file__).parent.name == "tui"
