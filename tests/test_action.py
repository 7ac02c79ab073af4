"""The GitHub Action (action.yml), run end to end by tools/action_dry_run.py, and the README's workflow."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml

from fixtures.models import build_demo_model, build_malicious_pickle_model
from tests.conftest import REPO

DRY_RUN = REPO / "tools" / "action_dry_run.py"
ACTION = yaml.safe_load((REPO / "action.yml").read_text())

sys.path.insert(0, str(REPO / "tools"))
from action_dry_run import DryRunError, condition, evaluate  # noqa: E402


def _dry_run(workspace: Path, out: Path, **inputs: str) -> tuple[int, dict, str]:
    summary = out.parent / f"{out.name}.summary.json"
    args = [sys.executable, str(DRY_RUN), "--out", str(out), "--summary", str(summary)]
    for key, value in inputs.items():
        args += ["--input", f"{key.replace('_', '-')}={value}"]
    proc = subprocess.run(
        args, cwd=workspace, capture_output=True, text=True, timeout=600, check=False
    )
    result = json.loads(summary.read_text()) if summary.exists() else {}
    return proc.returncode, result, proc.stdout + proc.stderr


def _steps(result: dict) -> dict[str, str]:
    return {entry["step"]: entry["result"] for entry in result["steps"]}


@pytest.mark.slow
def test_the_action_approves_the_demo_and_uploads_everything(tmp_path: Path) -> None:
    workspace = tmp_path / "repo"
    build_demo_model(workspace / "models" / "tiny-llama")
    code, result, log = _dry_run(workspace, tmp_path / "run", target="models/tiny-llama")
    assert code == 0, log
    assert result["outputs"]["verdict"] == "approve"
    assert result["outputs"]["exit-code"] == "0"
    assert set(_steps(result).values()) == {"ok"}, result["steps"]
    # The SARIF reached the (stand-in) upload: it exists and passed the schema there.
    uploaded = tmp_path / "run" / "uploaded-sarif" / "provscan.sarif"
    sarif = json.loads(uploaded.read_text())
    assert sarif["version"] == "2.1.0"
    # Its locations are repo-relative: the scan ran from the workspace root.
    uris = {
        loc["physicalLocation"]["artifactLocation"]["uri"]
        for res in sarif["runs"][0]["results"]
        for loc in res["locations"]
    }
    assert uris and all(u.startswith("models/tiny-llama/") for u in uris), uris
    # The reports went to the dry run's folder, not into the workspace (the action's default).
    assert not (workspace / "provscan-results").exists()
    run_results = tmp_path / "run" / "provscan-results"
    assert result["outputs"]["sarif"] == str(run_results / "provscan.sarif")
    artifacts = tmp_path / "run" / "artifacts" / "provscan-results"
    assert sorted(p.name for p in artifacts.iterdir()) == [
        "provscan.cdx.json",
        "provscan.report.html",
        "provscan.report.json",
        "provscan.report.md",
        "provscan.sarif",
    ]
    assert json.loads((artifacts / "provscan.cdx.json").read_text())["bomFormat"] == "CycloneDX"
    # The audit report went to the job summary.
    assert "APPROVE" in (tmp_path / "run" / "step-summary.md").read_text().upper()


@pytest.mark.slow
def test_a_denied_model_fails_the_job_but_its_evidence_is_still_uploaded(tmp_path: Path) -> None:
    workspace = tmp_path / "repo"
    canary = tmp_path / "canary"
    build_malicious_pickle_model(workspace / "model", canary)
    code, result, log = _dry_run(workspace, tmp_path / "run", target="model")
    assert code == 1, log
    assert result["outputs"]["verdict"] == "deny"
    steps = _steps(result)
    assert steps["Apply the verdict"] == "failed (exit 1)"
    assert steps["Upload SARIF to code scanning"] == "ok"
    assert steps["Upload the AI-BOM and reports"] == "ok"
    sarif = json.loads((tmp_path / "run" / "uploaded-sarif" / "provscan.sarif").read_text())
    errors = [r["ruleId"] for r in sarif["runs"][0]["results"] if r["level"] == "error"]
    assert "SER-PICKLE-DANGEROUS-GLOBAL" in errors
    assert not canary.exists()  # nothing was unpickled on the way
    # fail-on never: the verdict is reported, the job goes on.
    code, result, log = _dry_run(workspace, tmp_path / "run2", target="model", fail_on="never")
    assert code == 0, log
    assert result["outputs"]["verdict"] == "deny"


@pytest.mark.slow
def test_review_fails_only_when_asked(tmp_path: Path) -> None:
    workspace = tmp_path / "repo"
    model = build_demo_model(workspace / "model")
    (model / "modeling_custom.py").write_text("import os\n")  # INV-PYTHON-CODE: high -> review
    code, result, log = _dry_run(workspace, tmp_path / "a", target="model")
    assert (code, result["outputs"]["verdict"]) == (4, "review"), log
    code, result, log = _dry_run(workspace, tmp_path / "b", target="model", fail_on="deny")
    assert (code, result["outputs"]["verdict"]) == (0, "review"), log


@pytest.mark.slow
def test_inputs_cannot_inject_shell(tmp_path: Path) -> None:
    workspace = tmp_path / "repo"
    workspace.mkdir()
    hostile = 'x"; touch injected; echo "'
    code, result, log = _dry_run(
        workspace, tmp_path / "run", target=hostile, args="$(touch injected2) `touch injected3`"
    )
    assert not list(workspace.glob("injected*")), log
    assert code == 2, log  # provscan: no such target, a usage error; no verdict
    assert result["outputs"]["verdict"] == ""


def test_a_python_without_the_dependencies_is_told_what_is_missing(tmp_path: Path) -> None:
    # A bare virtual environment: no PyYAML, no pip, no hatchling, none of provscan's deps.
    env = tmp_path / "bare"
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    workspace = tmp_path / "repo"
    workspace.mkdir()
    proc = subprocess.run(
        [str(python), str(DRY_RUN), "--input", "target=m"],
        cwd=workspace, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith(
        f"action dry run: {python} cannot install provscan offline, it lacks "
        "pyyaml, jsonschema, pip, hatchling>=1.25, click>=8.1, "
    ), line
    assert line.endswith("run it with the Python of provscan's development environment "
                         "(pip install -e '.[test]')"), line  # fmt: skip
    assert list(workspace.iterdir()) == []


@pytest.mark.slow
def test_without_out_nothing_is_left_behind(tmp_path: Path) -> None:
    workspace = tmp_path / "repo"
    workspace.mkdir()
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = subprocess.run(
        [sys.executable, str(DRY_RUN), "--input", "target=missing"],
        cwd=workspace, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "TMPDIR": str(temp)},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr  # no such target: a usage error
    assert proc.stdout.splitlines()[-1] == (
        "action exit status 2 (its files removed; --keep or --out DIR keeps them)"
    )
    assert list(workspace.iterdir()) == []
    assert list(temp.iterdir()) == []


def test_a_malformed_input_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(DRY_RUN), "--input", "target"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == (
        "action_dry_run.py: error: --input 'target': expected NAME=VALUE"
    )
    assert "Traceback" not in proc.stderr


def test_an_unknown_input_is_refused(tmp_path: Path) -> None:
    code, _, log = _dry_run(tmp_path, tmp_path / "run", target="m", polcy="production")
    assert code == 2
    assert "unknown input(s): polcy" in log


def test_conditions_follow_github_rules() -> None:
    context = {"inputs": {"upload-sarif": "true"}, "steps": {"check": {"outputs": {"sarif": ""}}}}
    cond = "${{ always() && inputs.upload-sarif == 'true' && steps.check.outputs.sarif != '' }}"
    assert condition(cond, context, "success") is False  # no SARIF written
    context["steps"]["check"]["outputs"]["sarif"] = "out/provscan.sarif"
    assert condition(cond, context, "failure") is True  # always(): even after a failure
    assert condition("${{ inputs.upload-sarif == 'TRUE' }}", context, "success") is True
    assert condition("${{ inputs.upload-sarif == 'true' }}", context, "failure") is False
    assert condition(None, context, "failure") is False
    assert evaluate("a ${{ steps.gone.outputs.x }} b", context) == "a  b"
    with pytest.raises(DryRunError, match="not a context"):
        evaluate("${{ secrets.TOKEN }}", context)
    with pytest.raises(DryRunError, match="not supported"):
        condition("${{ hashFiles() }}", context, "success")


def test_every_run_step_takes_inputs_through_env_only() -> None:
    for step in ACTION["runs"]["steps"]:
        if "run" in step:
            assert "${{" not in step["run"], step["name"]
            assert step["shell"] == "bash"


def test_the_readme_workflow_uses_real_inputs_and_outputs() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
    workflows = [yaml.safe_load(b) for b in blocks if "provscan/provscan@" in b]
    assert workflows, "the README shows no workflow using the action"
    workflow = workflows[0]
    job = next(iter(workflow["jobs"].values()))
    assert job["permissions"]["security-events"] == "write"  # upload-sarif needs it
    step = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("provscan/provscan@"))
    assert set(step["with"]) <= set(ACTION["inputs"])
    for name in re.findall(r"steps\.provscan\.outputs\.([\w-]+)", yaml.safe_dump(workflow)):
        assert name in ACTION["outputs"], name
