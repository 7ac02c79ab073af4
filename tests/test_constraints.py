"""Does the test install pin what changes results, and does the drift tool read pins right?

CI installs `.[test]` under constraints.txt: every package the test extras pull in must be
pinned exactly, or a new release of one (transformers 5.25 did) changes what CI tests without
a commit. tools/dependency_drift.py installs the newest releases instead and lists the
differences; its parsing is checked here (its install and test run need the package index).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent


def drift_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "dependency_drift", REPO / "tools" / "dependency_drift.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["dependency_drift"] = module
    spec.loader.exec_module(module)
    return module


def test_constraints_pin_every_direct_dependency_of_the_test_install_exactly() -> None:
    tool = drift_tool()
    pins = tool.read_pins(REPO / "constraints.txt")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    requirements = [Requirement(r) for r in wanted]
    names = {
        tool.normalise(r.name) for r in requirements if r.marker is None or r.marker.evaluate()
    }
    assert names - set(pins) == set()
    for name in ("torch", "transformers", "tokenizers", "numpy", "huggingface-hub", "safetensors"):
        assert pins[name][0].isdigit(), name
    assert pins["torch"] == "2.13.0"  # the CPU wheel: a local build label would not resolve
    lines = [
        line.strip()
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert all("==" in line and not any(c in line for c in "<>~!*;") for line in lines)


def test_drift_lists_changed_new_and_gone_packages(tmp_path: Path) -> None:
    tool = drift_tool()
    pins_file = tmp_path / "constraints.txt"
    pins_file.write_text("# header\nTransformers==5.25.0  # comment\nnumpy==2.4.6\nold_pkg==1.0\n")
    pins = tool.read_pins(pins_file)
    assert pins == {"transformers": "5.25.0", "numpy": "2.4.6", "old-pkg": "1.0"}
    lines = tool.drift(pins, {"transformers": "5.26.0", "numpy": "2.4.6", "new-pkg": "0.1"})
    assert [line.split()[0] for line in lines] == ["new-pkg", "old-pkg", "transformers"]
    assert "5.25.0" in lines[2] and "5.26.0" in lines[2]
    assert "(gone)" in lines[1] and "(not pinned)" in lines[0]
