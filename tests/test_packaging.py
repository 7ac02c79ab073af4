"""Policy packs, probe data and the AI-BOM profile work from a source checkout and from a wheel."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from provscan.resources import data_dir, default_policy_dir

REPO = Path(__file__).resolve().parent.parent


def test_checkout_finds_the_top_level_folders() -> None:
    for name in ("policies", "probes", "sbom", "docs"):
        assert data_dir(name) in (REPO / name, REPO / "provscan" / "_data" / name)
    assert (default_policy_dir() / "main.rego").is_file()


@pytest.mark.slow
def test_built_wheel_carries_the_data_and_checks_the_demo(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next((tmp_path / "dist").glob("provscan-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for required in (
        "provscan/_data/policies/default/main.rego",
        "provscan/_data/policies/production/production.rego",
        "provscan/_data/sbom/report.schema.json",
        "provscan/_data/probes/README.md",
        "provscan/_data/docs/rules.md",
        "provscan/_data/docs/config.schema.json",
        "provscan/emit/schemas/sarif-2.1.0-rtm.5.json",
        "provscan/emit/templates/audit.css",
    ):
        assert required in names
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    # Run from an unrelated directory with the unpacked wheel first on the path, so
    # neither the checkout nor the editable install can supply the data.
    env = {"PYTHONPATH": str(unpacked), "PATH": "/usr/bin:/bin"}
    where = subprocess.run(
        [sys.executable, "-c", "import provscan.resources as r; print(r.default_policy_dir())"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where == str(unpacked / "provscan" / "_data" / "policies" / "default")
    demo = str(REPO / "fixtures" / "demo" / "tiny-llama")

    def provscan(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "provscan", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        )

    # Every output, rendered from the wheel's own data: the rule catalogue (SARIF help), the
    # SARIF schema, the audit report's stylesheet.
    outputs = ("--bom", "bom.json", "--sarif", "out.sarif", "--html", "out.html")
    result = provscan("check", demo, *outputs, "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "VERDICT: APPROVE" in result.stdout
    assert (tmp_path / "bom.json").is_file()
    sarif = json.loads((tmp_path / "out.sarif").read_text())
    rules = sarif["runs"][0]["tool"]["driver"]["rules"]
    assert any("What to do:" in rule["help"]["text"] for rule in rules)
    assert "<style>" in (tmp_path / "out.html").read_text()
    shown = provscan("config", "schema")
    assert shown.returncode == 0 and json.loads(shown.stdout)["title"] == "provscan configuration"
    # The production pack is found by name in the wheel and extends the shipped default
    # pack: the unsigned demo is denied for want of a trusted signature.
    production = provscan("check", demo, "--policy", "production", "-q")
    assert production.returncode == 1, production.stdout + production.stderr
    assert "POL-SIG-REQUIRED" in production.stdout
    assert "POL-ORIGIN-UNKNOWN" in production.stdout  # a default-pack rule: the base loaded too
