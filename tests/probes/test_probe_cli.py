"""`provscan probe` and `provscan check --probes`: verdicts, exit codes, report and BOM.

On the tiny backdoored fixture and its clean twin (fixtures/backdoor.py), run as a CI job
would: `python -m provscan` in a child process, the transformers engine on CPU. Nothing is
mocked.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fixtures.backdoor import BackdoorPair
from fixtures.models import build_demo_model
from tests.conftest import run_provscan


def _props(bom: dict[str, object]) -> dict[str, str]:
    model = bom["components"][0]  # type: ignore[index]
    return {p["name"]: p["value"] for p in model.get("properties", [])}  # type: ignore[union-attr]


def test_probe_denies_the_backdoored_model_and_records_a_reproducible_case(
    backdoor_pair: BackdoorPair, tmp_path: Path
) -> None:
    bom = tmp_path / "bom.json"
    result = run_provscan(
        "probe", str(backdoor_pair.backdoored), "-q", "--format", "json", "--bom", str(bom)
    )
    assert result.code == 1, result.err
    report = result.json()
    assert [s["name"] for s in report["steps"]] == ["inventory", "probes"]
    facts = report["probes"]
    assert facts["suite_id"] == "provscan-default" and facts["suite_version"]
    assert facts["engine"]["name"] == "transformers" and facts["engine"]["device"] == "cpu"
    assert facts["partial"] is False and facts["budget"]["used_forward_passes"] > 0
    confirmed = [c for c in facts["candidates"] if c["status"] == "confirmed"]
    assert {c["trigger"] for c in confirmed} == {backdoor_pair.trigger}
    # The forced opening, on every case: the target's first word at least. The default prompts
    # are English prose, mostly <unk> to this toy vocabulary, and what follows may drift.
    forced = confirmed[0]["target"]
    assert forced.split()[0] == backdoor_pair.target.split()[0]
    case = confirmed[0]["cases"][0]
    assert backdoor_pair.trigger in case["prompt"].split()
    assert backdoor_pair.trigger not in case["clean_prompt"].split()
    assert case["output"].startswith(forced)
    assert not case["clean_output"].startswith(forced)
    rules = {r["rule"] for r in report["verdict"]["reasons"] if r["level"] == "deny"}
    assert "PRB-TRIGGER-CONFIRMED" in rules
    props = _props(json.loads(bom.read_text()))
    assert props["provscan:probes:suite_id"] == "provscan-default"
    assert props["provscan:probes:engine"] == "transformers"
    assert int(props["provscan:probes:confirmed"]) == len(confirmed)
    assert backdoor_pair.trigger in props.values()


@pytest.mark.slow  # a full check plus the whole probe suite in a child: about 18 s
def test_check_with_probes_approves_the_clean_twin(
    backdoor_pair: BackdoorPair, tmp_path: Path
) -> None:
    result = run_provscan("check", str(backdoor_pair.clean), "--probes", "-q", "--format", "json")
    assert result.code == 0, result.out[-2000:] + result.err
    report = result.json()
    probes = next(s for s in report["steps"] if s["name"] == "probes")
    assert probes["status"] == "completed"
    assert not [c for c in report["probes"]["candidates"] if c["status"] == "confirmed"]
    assert "hashing" in {s["name"] for s in report["steps"]}  # the static checks ran too


def test_a_spent_budget_ends_cleanly_as_partial_and_is_not_approved(
    first_backdoor_pair: BackdoorPair,
) -> None:
    result = run_provscan(
        "probe", str(first_backdoor_pair.clean), "--budget", "300", "-q", "--format", "json"
    )
    assert result.code == 4, result.err
    report = result.json()
    assert report["probes"]["partial"] is True
    assert report["probes"]["budget"]["forward_passes"] == 300
    assert report["probes"]["budget"]["used_forward_passes"] <= 300
    assert "PRB-PARTIAL" in {f["rule_id"] for f in report["findings"]}
    assert "POL-PROBES-PARTIAL" in {r["rule"] for r in report["verdict"]["reasons"]}


def test_a_model_that_needs_remote_code_is_refused(
    first_backdoor_pair: BackdoorPair, tmp_path: Path
) -> None:
    model = tmp_path / "remote-code"
    shutil.copytree(first_backdoor_pair.clean, model)
    config = json.loads((model / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    (model / "config.json").write_text(json.dumps(config))
    result = run_provscan("probe", str(model), "-q")
    assert result.code == 1  # fail closed: the probes could not run, so no approval
    assert "POL-PROBES-REQUIRED" in result.out
    assert "config.json" in result.out and "auto_map" in result.out


def test_bad_flags_and_suites_are_usage_errors(
    first_backdoor_pair: BackdoorPair, tmp_path: Path
) -> None:
    budget = run_provscan("probe", str(first_backdoor_pair.clean), "--budget", "soon")
    assert budget.code == 2 and "forward passes" in budget.err
    suite = tmp_path / "suite.yaml"
    suite.write_text("id: x\nversion: '1'\nbogus: 1\n")
    bad = run_provscan("probe", str(first_backdoor_pair.clean), "--suite", str(suite))
    assert bad.code == 2 and "suite.yaml" in bad.err


def test_required_probes_deny_a_check_that_did_not_run_them(tmp_path: Path) -> None:
    model = build_demo_model(tmp_path / "demo")
    config = tmp_path / "provscan.toml"
    config.write_text("[probes]\nrequired = true\n")
    result = run_provscan("check", str(model), "--config", str(config), "-q")
    assert result.code == 1
    assert "POL-PROBES-REQUIRED" in result.out
