"""End to end through the real command line: verdicts, exit codes, outputs, bad inputs."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.models import (
    DEMO_DIR,
    build_malicious_pickle_model,
    build_symlink_escape_model,
    build_truncated_safetensors_model,
)
from provscan.emit.cyclonedx import validate_cyclonedx
from tests.conftest import REPO


def test_demo_model_is_approved_with_a_valid_bom(provscan, tmp_path: Path) -> None:
    result = provscan(
        "check",
        str(DEMO_DIR),
        "--bom",
        str(tmp_path / "bom.json"),
        "--json",
        str(tmp_path / "report.json"),
    )
    assert result.code == 0, result.out + result.err
    assert "VERDICT: APPROVE" in result.out
    bom_text = (tmp_path / "bom.json").read_text()
    assert validate_cyclonedx(bom_text) == []
    bom = json.loads(bom_text)
    assert bom["specVersion"] == "1.6"
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["verdict"]["decision"] == "approve"
    assert all(step["status"] == "completed" for step in report["steps"])


def test_malicious_pickle_is_denied_naming_file_and_global(provscan, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    model = build_malicious_pickle_model(tmp_path / "evil", canary)
    result = provscan("check", str(model), "--format", "json")
    assert result.code == 1, result.out + result.err
    reasons = result.json()["verdict"]["reasons"]
    deny = [r for r in reasons if r["level"] == "deny"]
    assert any("pytorch_model.bin" in r["msg"] and "os.system" in r["msg"] for r in deny), deny
    assert not canary.exists()


def test_escaping_symlink_is_denied(provscan, tmp_path: Path) -> None:
    outside = tmp_path / "outside-secret"
    outside.write_text("secret")
    model = build_symlink_escape_model(tmp_path / "m", outside)
    result = provscan("check", str(model), "--format", "json")
    assert result.code == 1
    report = result.json()
    assert any(r["rule"] == "INV-SYMLINK-ESCAPE" for r in report["verdict"]["reasons"])
    assert "tokenizer.model" not in [f["path"] for f in report["files"]]


def test_truncated_safetensors_is_denied(provscan, tmp_path: Path) -> None:
    model = build_truncated_safetensors_model(tmp_path / "m")
    result = provscan("check", str(model))
    assert result.code == 1
    assert "model.safetensors" in result.out and "truncated" in result.out


def test_oversized_safetensors_header_is_denied_without_reading_it(
    provscan, tmp_path: Path
) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "model.safetensors").write_bytes(struct.pack("<Q", 2**40) + b"{}")
    result = provscan("check", str(model), "--format", "json")
    assert result.code == 1
    messages = " ".join(r["msg"] for r in result.json()["verdict"]["reasons"])
    assert "model.safetensors" in messages and "HeaderTooLarge" in messages


def test_malformed_card_needs_review(provscan, demo_model: Path) -> None:
    (demo_model / "README.md").write_text("---\nlicense: [apache-2.0\n---\n# card\n")
    result = provscan("check", str(demo_model))
    assert result.code == 4, result.out + result.err
    assert "INV-CARD-MALFORMED" in result.out and "README.md" in result.out


def test_python_code_needs_review(provscan, demo_model: Path) -> None:
    (demo_model / "modeling_tiny.py").write_text("import os\n")
    result = provscan("check", str(demo_model))
    assert result.code == 4
    assert "modeling_tiny.py" in result.out


def test_missing_path_is_a_usage_error(provscan, tmp_path: Path) -> None:
    result = provscan("check", str(tmp_path / "nope"))
    assert result.code == 2
    assert "no such file or directory" in result.err


def test_empty_directory_cannot_complete(provscan, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = provscan("check", str(tmp_path / "empty"))
    assert result.code == 3
    assert "nothing to scan" in result.err


def test_unknown_flag_is_a_usage_error(provscan) -> None:
    assert provscan("check", "--no-such-flag", str(DEMO_DIR)).code == 2


def test_unreadable_file_is_denied_with_the_file_named(demo_model: Path) -> None:
    (demo_model / "tokenizer.json").chmod(0)
    command = [sys.executable, "-m", "provscan", "check", str(demo_model), "--format", "json", "-q"]
    if os.geteuid() == 0:
        # root reads any file; drop the capabilities that bypass permission bits.
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without util-linux setpriv: cannot make a file unreadable")
        drop = "-dac_override,-dac_read_search"
        command = [setpriv, f"--inh-caps={drop}", f"--bounding-set={drop}", *command]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 1, result.stdout + result.stderr
    reasons = json.loads(result.stdout)["verdict"]["reasons"]
    assert any(r["rule"] == "POL-STEP-INCOMPLETE" and "hashing" in r["msg"] for r in reasons)
    assert any("tokenizer.json" in r["msg"] for r in reasons if r["level"] == "deny")


def test_inspect_reports_without_verdict(provscan, tmp_path: Path) -> None:
    result = provscan("inspect", str(DEMO_DIR), "--format", "json")
    assert result.code == 0
    report = result.json()
    assert report["verdict"] is None
    assert report["model"]["parameter_count"] == 107_200
    assert report["manifest"]["root_digest"]


def test_broken_policy_fails_closed(provscan, tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "bad.rego").write_text("package provscan.main\nimport rego.v1\ndeny contains x if {\n")
    result = provscan("check", str(DEMO_DIR), "--policy", str(pack))
    assert result.code == 3
    assert "bad.rego" in result.err


def test_slow_policy_times_out_and_fails_closed(provscan, tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "slow.rego").write_text(
        "package provscan.main\nimport rego.v1\n"
        "n := numbers.range(1, 3000)\n"
        'deny contains {"rule": "X", "msg": "m"} if { count([1 | some a in n; some b in n; a == b + 100000]) > 0 }\n'
    )
    result = provscan("check", str(DEMO_DIR), "--policy", str(pack), "--policy-timeout", "1")
    assert result.code == 3
    # The wall clock or the CPU-time limit (the timeout rounded up), whichever stops it first.
    assert "timed out" in result.err or "CPU-time limit of 1 s" in result.err


def test_output_that_cannot_be_written_fails_closed(provscan, tmp_path: Path) -> None:
    result = provscan(
        "check", str(DEMO_DIR), "--bom", str(tmp_path / "no" / "such" / "dir" / "bom.json")
    )
    assert result.code == 3
    assert "cannot write" in result.err


def test_config_file_reaches_the_policy(provscan, demo_model: Path, tmp_path: Path) -> None:
    (demo_model / "modeling_tiny.py").write_text("import os\n")
    config = tmp_path / "strict.toml"
    config.write_text('[severity_levels]\nhigh = "deny"\n')
    assert provscan("check", str(demo_model), "--config", str(config)).code == 1
    waiver = tmp_path / "waive.toml"
    waiver.write_text(
        '[[waivers]]\nrule = "INV-PYTHON-CODE"\npath = "modeling_tiny.py"\nreason = "reviewed"\n'
    )
    assert provscan("check", str(demo_model), "--config", str(waiver)).code == 0


def test_malformed_config_is_a_usage_error(provscan, tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("severity_levels = [unclosed\n")
    result = provscan("check", str(DEMO_DIR), "--config", str(config))
    assert result.code == 2
    assert "bad.toml" in result.err


@pytest.mark.slow  # the whole table through the CLI
def test_policy_test_command_passes_on_the_shipped_pack(provscan) -> None:
    result = provscan("policy", "test")
    assert result.code == 0, result.out + result.err
    assert " 0 failed" in result.out


@pytest.mark.slow  # the whole table through the CLI
def test_policy_test_command_fails_on_a_wrong_expectation(provscan, tmp_path: Path) -> None:
    from provscan.resources import default_policy_dir

    pack = tmp_path / "pack"
    shutil.copytree(default_policy_dir(), pack)
    case = next(p for p in sorted((pack / "tests").iterdir()) if p.is_dir())
    for other in (pack / "tests").iterdir():  # one case is enough, and a second per case less
        if other.is_dir() and other != case:
            shutil.rmtree(other)
    expected = case / "expected.yaml"
    text = expected.read_text()
    flipped = (
        text.replace("verdict: approve", "verdict: deny")
        if "verdict: approve" in text
        else "verdict: approve\n"
    )
    expected.write_text(flipped)
    result = provscan("policy", "test", "--policy", str(pack))
    assert result.code == 1
    assert f"FAIL pack/{case.name}: verdict: expected" in result.out


def test_console_script_is_installed() -> None:
    script = shutil.which("provscan", path=str(Path(sys.executable).parent))
    if script is None:
        if os.environ.get("CI"):
            pytest.fail("CI installs provscan, but the console script is missing")
        pytest.skip("provscan is not installed in this environment (pip install -e .)")
    assert subprocess.run([script, "--version"], capture_output=True, text=True).stdout.startswith(
        "provscan"
    )


def test_hf_cache_snapshot_end_to_end_records_repo_and_revision(
    provscan, demo_model: Path, tmp_path: Path
) -> None:
    from fixtures.models import build_hf_cache_snapshot

    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = build_hf_cache_snapshot(tmp_path / "hub", "acme/tiny-llama", revision, demo_model)
    result = provscan("check", str(snapshot), "--bom", str(tmp_path / "bom.json"), "-q")
    assert result.code == 0, result.out + result.err
    assert f"acme/tiny-llama@{revision}" in result.out
    model = json.loads((tmp_path / "bom.json").read_text())["components"][0]
    assert model["purl"] == f"pkg:huggingface/acme/tiny-llama@{revision}"
