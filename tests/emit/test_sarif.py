"""Is the SARIF log schema-valid, and does GitHub code scanning get the rules, places and fingerprints it needs?"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from fixtures.models import build_demo_model, build_malicious_pickle_model
from provscan.emit import sarif
from provscan.emit import sarif_rules as _sarif_rules
from provscan.emit.sarif import render_sarif, validate_sarif
from provscan.emit.sarif_rules import parse_rules, rule_catalogue
from provscan.errors import OutputError
from provscan.pipeline import ScanOptions, scan
from provscan.policy.engine import evaluate
from provscan.report import (
    Decision,
    Finding,
    HubFetch,
    Location,
    Reason,
    Report,
    ScanParameters,
    Severity,
    Step,
    StepStatus,
    TargetInfo,
    TargetKind,
)
from provscan.resources import default_policy_dir
from tests.emit import reports

DOCS = "https://github.com/provscan/provscan/blob/main/docs/rules.md"
REVISION = "8afb486c1db24fe5011ec46dfbe5b5dccdb575c2"


def judged(model: Path, config: dict[str, Any] | None = None, **update: Any) -> Report:
    """Scan a model directory and let the default pack decide, as `provscan check` does."""
    report = scan(str(model), ScanOptions(hash_workers=2))
    report = report.model_copy(update=update)
    verdict = evaluate(report, [default_policy_dir()], config or {})
    return report.model_copy(update={"verdict": verdict})


def sarif_of(report: Report, base_dir: Path | None = None) -> dict[str, Any]:
    text = render_sarif(report, base_dir=base_dir)
    assert text.endswith("}\n")
    assert validate_sarif(text) == []
    return json.loads(text)


def run_of(doc: dict[str, Any]) -> dict[str, Any]:
    assert doc["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    assert doc["version"] == "2.1.0"
    assert len(doc["runs"]) == 1
    run: dict[str, Any] = doc["runs"][0]
    return run


def results_for(run: dict[str, Any], rule_id: str) -> list[dict[str, Any]]:
    return [r for r in run["results"] if r["ruleId"] == rule_id]


def rule(run: dict[str, Any], rule_id: str) -> dict[str, Any]:
    (found,) = [r for r in run["tool"]["driver"]["rules"] if r["id"] == rule_id]
    return found


def uri(result: dict[str, Any]) -> str:
    return str(result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"])


def make_report(
    findings: tuple[Finding, ...] = (),
    reasons: tuple[Reason, ...] | None = (),
    *,
    files: tuple[str, ...] = ("README.md", "config.json", "model.safetensors"),
    target: TargetInfo | None = None,
    steps: tuple[Step, ...] = (Step(name="inventory", status=StepStatus.COMPLETED),),
) -> Report:
    """The emitter tests' report of a small model at /models/tiny (outside any base_dir used
    here), known only by its file names; no verdict when reasons is None."""
    return reports.make_report(
        decision=None if reasons is None else reports.decision_of(reasons),
        reasons=reasons or (),
        findings=findings,
        steps=steps,
        files=reports.entries(files),
        target=target
        or TargetInfo(
            input="/models/tiny", kind=TargetKind.DIRECTORY, root="/models/tiny", name="tiny"
        ),
        with_manifest=False,
        with_model=False,
        scanned_at=datetime(2025, 6, 1, tzinfo=timezone.utc),
        parameters=ScanParameters(hash_workers=1, limits={}),
        policy_digest="ab" * 32,
    )


def at(rule_id: str, severity: Severity, path: str | None, message: str = "problem") -> Finding:
    return Finding(
        rule_id=rule_id,
        severity=severity,
        message=message,
        location=Location(path=path) if path is not None else None,
    )


# ---------------------------------------------------------------- whole documents


def test_clean_demo_model_is_a_valid_approving_run(tmp_path: Path) -> None:
    model = build_demo_model(tmp_path / "tiny-llama")
    report = judged(model)
    assert report.verdict is not None and report.verdict.decision is Decision.APPROVE
    run = run_of(sarif_of(report, base_dir=tmp_path))
    driver = run["tool"]["driver"]
    assert driver["name"] == "provscan"
    assert driver["semanticVersion"] == driver["version"] == report.tool.version
    assert run["automationDetails"] == {"id": "provscan/tiny-llama/"}
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is True
    assert invocation["toolExecutionNotifications"] == []
    assert (invocation["exitCode"], invocation["exitCodeDescription"]) == (0, "approve")
    assert run["properties"]["decision"] == "approve"
    assert run["properties"]["policy"]["digest"] == report.verdict.policy.digest
    assert run["properties"]["truncated"] == {"results": 0, "tags": 0, "locations": 0}
    assert "originalUriBaseIds" not in run  # inside base_dir: plain repo-relative uris
    # The unsigned demo is approved with a warning: a policy-only result, shown on the card.
    (unsigned,) = results_for(run, "POL-SIG-UNSIGNED")
    assert unsigned["level"] == "note"
    assert uri(unsigned) == "tiny-llama/README.md"
    assert unsigned["properties"] == {
        "policyOutcome": "warn",
        "policyRule": True,
        "scope": "target",
    }
    assert "shown on README.md" in unsigned["message"]["text"]
    # One rule per rule id used, sorted, and every ruleIndex points at its own rule.
    ids = [r["id"] for r in driver["rules"]]
    assert ids == sorted({r["ruleId"] for r in run["results"]})
    assert all(ids[r["ruleIndex"]] == r["ruleId"] for r in run["results"])


def test_rendering_is_deterministic(tmp_path: Path) -> None:
    report = judged(build_malicious_pickle_model(tmp_path / "evil", tmp_path / "canary"))
    assert render_sarif(report, base_dir=tmp_path) == render_sarif(report, base_dir=tmp_path)


def test_malicious_pickle_in_a_zip_points_at_the_archive_member(tmp_path: Path) -> None:
    report = judged(build_malicious_pickle_model(tmp_path / "evil", tmp_path / "canary"))
    run = run_of(sarif_of(report, base_dir=tmp_path))
    (result,) = results_for(run, "SER-PICKLE-DANGEROUS-GLOBAL")
    assert result["level"] == "error"
    location = result["locations"][0]
    assert location["physicalLocation"] == {
        "artifactLocation": {"uri": "evil/pytorch_model.bin"},
        "region": {"startLine": 1},
    }
    assert location["logicalLocations"] == [
        {
            "name": "archive/data.pkl",
            "fullyQualifiedName": "pytorch_model.bin!/archive/data.pkl",
            "kind": "member",
        }
    ]
    # The offset moves with the canary path's length: compare with the report's own.
    (finding,) = [f for f in report.findings if f.rule_id == "SER-PICKLE-DANGEROUS-GLOBAL"]
    assert finding.location is not None and finding.location.offset is not None
    (related,) = result["relatedLocations"]
    assert related["physicalLocation"] == {
        "artifactLocation": {"uri": "evil/pytorch_model.bin"},
        "region": {"byteOffset": finding.location.offset},
    }
    assert result["properties"]["byteOffset"] == finding.location.offset
    assert result["properties"]["severity"] == "critical"
    assert result["properties"]["policyOutcome"] == "deny"
    assert result["properties"]["archiveMember"] == "archive/data.pkl"
    assert "os.system" in result["message"]["text"]
    assert (run["invocations"][0]["exitCode"], run["properties"]["decision"]) == (1, "deny")
    # The deny is the finding's pass-through: not repeated as a result of its own.
    assert len(results_for(run, "SER-PICKLE-DANGEROUS-GLOBAL")) == 1
    # No README.md here: target-wide results fall back to config.json.
    (no_card,) = results_for(run, "INV-CARD-MISSING")
    assert uri(no_card) == "evil/config.json"
    assert no_card["properties"]["policyOutcome"] == "warn"


# ---------------------------------------------------------------- rules from docs/rules.md


def test_rule_metadata_comes_from_docs_rules_md(tmp_path: Path) -> None:
    report = judged(build_malicious_pickle_model(tmp_path / "evil", tmp_path / "canary"))
    run = run_of(sarif_of(report, base_dir=tmp_path))
    pickle_rule = rule(run, "SER-PICKLE-DANGEROUS-GLOBAL")
    assert pickle_rule["name"] == "SerPickleDangerousGlobal"
    assert pickle_rule["helpUri"] == f"{DOCS}#ser-pickle-dangerous-global"
    assert pickle_rule["fullDescription"]["text"].startswith(
        "A pickle (plain, or a member of a zip such as a PyTorch checkpoint) imports a callable"
    )
    assert "`os.system`" not in pickle_rule["help"]["text"]  # plain text: code marks gone
    assert "`os.system`" in pickle_rule["help"]["markdown"]
    assert pickle_rule["help"]["text"].endswith(
        "What to do: Do not load the file. Use a safetensors copy from a trusted publisher."
    )
    assert pickle_rule["defaultConfiguration"] == {"level": "error"}
    props = pickle_rule["properties"]
    assert props["tags"] == ["security", "serialization"]
    assert props["security-severity"] == "9.5"
    assert props["precision"] == "high"
    unsigned = rule(run, "POL-SIG-UNSIGNED")
    assert unsigned["defaultConfiguration"] == {"level": "note"}  # documented level: warn
    assert unsigned["properties"]["tags"] == ["security", "policy"]
    assert unsigned["shortDescription"]["text"] == (
        "The model carries no signature: no model.sig, no --signature."
    )


def test_a_rule_missing_from_the_docs_still_gets_a_valid_rule() -> None:
    report = make_report((at("SER-NOT-A-DOCUMENTED-RULE", Severity.HIGH, "model.safetensors"),))
    run = run_of(sarif_of(report))
    made_up = rule(run, "SER-NOT-A-DOCUMENTED-RULE")
    assert "not described" in made_up["fullDescription"]["text"]
    assert made_up["helpUri"] == f"{DOCS}#ser-not-a-documented-rule"
    assert made_up["defaultConfiguration"] == {"level": "error"}
    assert made_up["properties"]["security-severity"] == "8.0"


def test_the_rules_table_parser_is_robust() -> None:
    text = "\n".join(
        [
            "| rule id | severity | what it means | what to do |",
            "|---|---|---|---|",
            '| `SER-A` | high | <a id="ser-a"></a>Uses `a|b` in code. Then more. | Fix it. |',
            "| `SER-B` | `x.y` (review) | Odd | cell | Do. |",
            "| `SER-C` | only two cells |",
            "not a row",
        ]
    )
    rules = parse_rules(text)
    assert set(rules) == {"SER-A", "SER-B"}
    assert rules["SER-A"].meaning == "Uses `a|b` in code. Then more."
    assert rules["SER-A"].remedy == "Fix it."
    assert rules["SER-B"].meaning == "Odd | cell"  # an unescaped '|' stays in the meaning
    # The shipped page parses: every documented id is there, with a remedy.
    catalogue = rule_catalogue()
    assert len(catalogue) > 100
    assert catalogue["POL-WAIVED"].remedy == "Review waivers periodically."


# ---------------------------------------------------------------- levels


def test_levels_and_security_severity_follow_severity_and_policy_level() -> None:
    severities = list(Severity)
    findings = tuple(at(f"SER-LEVEL-{s.value.upper()}", s, "model.safetensors") for s in severities)
    reasons = (
        Reason(rule="POL-NO-FILES", level="deny", msg="d"),
        Reason(rule="POL-ORIGIN-REVIEW", level="review", msg="r", details={"country": "XX"}),
        Reason(rule="POL-ORIGIN-UNKNOWN", level="warn", msg="w"),
    )
    run = run_of(sarif_of(make_report(findings, reasons)))
    levels = {r["ruleId"]: r["level"] for r in run["results"]}
    assert levels == {
        "SER-LEVEL-INFO": "note",
        "SER-LEVEL-LOW": "note",
        "SER-LEVEL-MEDIUM": "warning",
        "SER-LEVEL-HIGH": "error",
        "SER-LEVEL-CRITICAL": "error",
        "POL-NO-FILES": "error",
        "POL-ORIGIN-REVIEW": "warning",
        "POL-ORIGIN-UNKNOWN": "note",
    }
    scores = {
        r["id"]: r["properties"].get("security-severity") for r in run["tool"]["driver"]["rules"]
    }
    assert scores["SER-LEVEL-CRITICAL"] == "9.5"
    assert scores["SER-LEVEL-HIGH"] == "8.0"
    assert scores["SER-LEVEL-MEDIUM"] == "5.5"
    assert scores["SER-LEVEL-LOW"] == "2.0"
    assert scores["SER-LEVEL-INFO"] is None  # GitHub's scale starts at 0.1
    (finding,) = results_for(run, "SER-LEVEL-INFO")
    assert finding["properties"]["policyOutcome"] == "none"
    assert run["invocations"][0]["exitCode"] == 1


# ---------------------------------------------------------------- steps and waivers


def test_failed_and_skipped_steps_become_tool_notifications(tmp_path: Path) -> None:
    model = build_demo_model(tmp_path / "tiny-llama")
    clean = scan(str(model), ScanOptions(hash_workers=2))
    steps = tuple(
        Step(name="hashing", status=StepStatus.FAILED, reason="OSError: disk gone")
        if s.name == "hashing"
        else Step(name="origin", status=StepStatus.SKIPPED, reason="offline")
        if s.name == "origin"
        else s
        for s in clean.steps
    )
    report = judged(model, steps=steps)
    run = run_of(sarif_of(report, base_dir=tmp_path))
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert invocation["toolExecutionNotifications"] == [
        {
            "level": "error",
            "message": {"text": "step hashing failed: OSError: disk gone"},
            "descriptor": {"id": "hashing"},
        },
        {
            "level": "note",
            "message": {"text": "step origin skipped: offline"},
            "descriptor": {"id": "origin"},
        },
    ]
    assert (invocation["exitCode"], invocation["exitCodeDescription"]) == (1, "deny")
    incomplete = results_for(run, "POL-STEP-INCOMPLETE")
    assert len(incomplete) == 2
    assert {r["level"] for r in incomplete} == {"error"}
    prints = {r["partialFingerprints"]["provscan/v1"] for r in incomplete}
    assert len(prints) == 2  # told apart by the step they name, not by their order


def test_a_waived_finding_carries_a_suppression(tmp_path: Path) -> None:
    model = build_malicious_pickle_model(tmp_path / "evil", tmp_path / "canary")
    waivers = [
        {"rule": "INV-CARD-MISSING", "reason": "internal model, no card"},
        {"rule": "SER-PICKLE-DANGEROUS-GLOBAL", "path": "pytorch_model.bin", "reason": "sandbox"},
    ]
    report = judged(model, {"waivers": waivers})
    run = run_of(sarif_of(report, base_dir=tmp_path))
    (pickle,) = results_for(run, "SER-PICKLE-DANGEROUS-GLOBAL")
    assert pickle["suppressions"] == [
        {"kind": "external", "status": "accepted", "justification": "sandbox"}
    ]
    assert pickle["properties"]["policyOutcome"] == "waived"
    assert pickle["level"] == "error"  # still rated by its severity
    (card,) = results_for(run, "INV-CARD-MISSING")
    assert card["suppressions"][0]["justification"] == "internal model, no card"
    # The waivers are on the findings, not extra results.
    assert results_for(run, "POL-WAIVED") == []
    assert all("suppressions" not in r for r in results_for(run, "POL-SIG-UNSIGNED"))


# ---------------------------------------------------------------- locations


def test_hub_metadata_target_points_at_the_commit_on_the_hub() -> None:
    target = TargetInfo(
        input="hf://acme/tiny@main",
        kind=TargetKind.HUB_METADATA,
        root="/home/u/.cache/provscan/snapshot",
        name="tiny",
        repo_id="acme/tiny",
        revision=REVISION,
        hub=HubFetch(
            mode="metadata",
            endpoint="https://huggingface.co",
            requested_revision="main",
            files=3,
            bytes=3,
        ),
    )
    reasons = (
        Reason(
            rule="POL-HUB-NOT-DOWNLOADED",
            level="review",
            msg="1 file(s) not downloaded",
            details={"files": 1},
        ),
    )
    findings = (at("SER-NOT-DOWNLOADED", Severity.HIGH, "sub dir/model.bin"),)
    run = run_of(sarif_of(make_report(findings, reasons, target=target), base_dir=Path.cwd()))
    assert run["originalUriBaseIds"] == {
        "TARGETROOT": {"uri": f"https://huggingface.co/acme/tiny/blob/{REVISION}/"}
    }
    (weights,) = results_for(run, "SER-NOT-DOWNLOADED")
    assert weights["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": "sub%20dir/model.bin",
        "uriBaseId": "TARGETROOT",
    }
    (hub,) = results_for(run, "POL-HUB-NOT-DOWNLOADED")
    assert (hub["level"], uri(hub)) == ("warning", "README.md")
    assert run["invocations"][0]["exitCode"] == 4
    assert run["automationDetails"]["id"] == "provscan/tiny/"
    assert run["properties"]["target"] == {
        "name": "tiny",
        "kind": "hub-metadata",
        "repoId": "acme/tiny",
        "revision": REVISION,
    }


def test_hostile_file_names_are_percent_encoded() -> None:
    names = {
        "dir with space/we#ird%.bin": "dir%20with%20space/we%23ird%25.bin",
        "ünï/c:odé.bin": "%C3%BCn%C3%AF/c%3Aod%C3%A9.bin",
        "ctl\x01\x7f\n.bin": "ctl%01%7F%0A.bin",
        "q?x=1&y.bin": "q%3Fx%3D1%26y.bin",
        # A name that is not UTF-8 (surrogateescape) is escaped in the report itself, so the
        # uri is that of the escaped name every other output shows: bad\xff.bin.
        "bad\udcff.bin": "bad%5Cxff.bin",
    }
    findings = tuple(at("INV-BAD-FILENAME", Severity.HIGH, name, f"{name}: bad") for name in names)
    target = TargetInfo(
        input="x", kind=TargetKind.DIRECTORY, root="/srv/my models#1/m%d", name="m%d"
    )
    text = render_sarif(make_report(findings, None, target=target), base_dir=Path("/elsewhere"))
    assert validate_sarif(text) == []
    run = run_of(json.loads(text))
    assert [uri(r) for r in run["results"]] == list(names.values())
    assert all(unquote(u) == n for n, u in list(names.items())[:4])
    assert run["originalUriBaseIds"]["TARGETROOT"]["uri"] == "file:///srv/my%20models%231/m%25d/"
    assert "exitCode" not in run["invocations"][0]  # inspect: no verdict, no exit code
    assert "decision" not in run["properties"]


def test_target_inside_base_dir_gets_repo_relative_uris(tmp_path: Path) -> None:
    model = build_malicious_pickle_model(tmp_path / "my models" / "evil", tmp_path / "canary")
    run = run_of(sarif_of(judged(model), base_dir=tmp_path))
    (result,) = results_for(run, "SER-PICKLE-DANGEROUS-GLOBAL")
    assert uri(result) == "my%20models/evil/pytorch_model.bin"
    # Scanned from inside the model itself: paths are the model's own.
    run = run_of(sarif_of(judged(model), base_dir=model))
    assert uri(results_for(run, "SER-PICKLE-DANGEROUS-GLOBAL")[0]) == "pytorch_model.bin"


def test_single_file_target_is_located_in_its_directory(tmp_path: Path) -> None:
    target = TargetInfo(
        input="w.bin", kind=TargetKind.FILE, root=str(tmp_path / "w.bin"), name="w.bin"
    )
    report = make_report((at("SER-PICKLE-MALFORMED", Severity.HIGH, "w.bin"),), target=target)
    run = run_of(sarif_of(report, base_dir=tmp_path))
    assert uri(run["results"][0]) == "w.bin"


# ---------------------------------------------------------------- fingerprints


def fingerprints(run: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (
            r["ruleId"],
            r["partialFingerprints"]["provscan/v1"],
            r["partialFingerprints"]["primaryLocationLineHash"],
        )
        for r in run["results"]
    ]


def test_fingerprints_are_stable_across_copies_and_differ_between_files(tmp_path: Path) -> None:
    first = build_malicious_pickle_model(tmp_path / "a" / "evil", tmp_path / "canary")
    second = tmp_path / "b" / "evil"
    shutil.copytree(first, second)
    (second / "pytorch_model.bin").rename(second / "other.bin")
    shutil.copyfile(second / "other.bin", second / "pytorch_model.bin")
    run_a = run_of(sarif_of(judged(first), base_dir=tmp_path / "a"))
    run_a_elsewhere = run_of(sarif_of(judged(first), base_dir=None))
    assert fingerprints(run_a) == fingerprints(run_a_elsewhere)
    run_b = run_of(sarif_of(judged(second), base_dir=None))
    by_file = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]: r
        for r in results_for(run_b, "SER-PICKLE-DANGEROUS-GLOBAL")
    }
    assert set(by_file) == {"other.bin", "pytorch_model.bin"}
    same = by_file["pytorch_model.bin"]["partialFingerprints"]
    (in_a,) = results_for(run_a, "SER-PICKLE-DANGEROUS-GLOBAL")
    assert same == in_a["partialFingerprints"]  # same model name, file and member
    other = by_file["other.bin"]["partialFingerprints"]
    assert other["provscan/v1"] != same["provscan/v1"]
    hash_, count = same["primaryLocationLineHash"].split(":")
    assert (len(hash_), count) == (16, "1")
    assert same["provscan/v1"].startswith(hash_)


def test_repeated_fingerprints_are_counted() -> None:
    findings = (
        at("SER-PICKLE-UNKNOWN-GLOBAL", Severity.HIGH, "m.bin", "imports a.b"),
        at("SER-PICKLE-UNKNOWN-GLOBAL", Severity.HIGH, "m.bin", "imports c.d"),
        at("SER-PICKLE-UNKNOWN-GLOBAL", Severity.HIGH, "n.bin", "imports a.b"),
    )
    run = run_of(sarif_of(make_report(findings)))
    lines = [r["partialFingerprints"]["primaryLocationLineHash"] for r in run["results"]]
    assert lines[0].split(":")[0] == lines[1].split(":")[0] != lines[2].split(":")[0]
    assert [line.split(":")[1] for line in lines] == ["1", "2", "1"]


# ---------------------------------------------------------------- limits and refusal


def test_results_and_tags_over_github_limits_are_truncated_and_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_sarif_rules, "MAX_RESULTS", 3)
    monkeypatch.setattr(_sarif_rules, "MAX_TAGS", 1)
    findings = (
        at("ORG-LINEAGE-LIMIT", Severity.LOW, "a"),
        at("SER-PICKLE-DANGEROUS-GLOBAL", Severity.CRITICAL, "b"),
        at("INV-CARD-TOO-LARGE", Severity.MEDIUM, "c"),
        at("SER-GGUF-MALFORMED", Severity.CRITICAL, "d"),
        at("ORG-LINEAGE-LIMIT", Severity.LOW, "e"),
    )
    run = run_of(sarif_of(make_report(findings)))
    # The most severe are kept, in report order; the count dropped is recorded.
    assert [uri(r) for r in run["results"]] == ["b", "c", "d"]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == [
        "INV-CARD-TOO-LARGE",
        "SER-GGUF-MALFORMED",
        "SER-PICKLE-DANGEROUS-GLOBAL",
    ]
    assert all(r["properties"]["tags"] == ["security"] for r in run["tool"]["driver"]["rules"])
    assert run["properties"]["truncated"] == {"results": 2, "tags": 3, "locations": 0}


def test_an_invalid_document_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    build = sarif._build_document

    def broken(report: Report, base_dir: Path | None) -> dict[str, Any]:
        doc = build(report, base_dir)
        doc["runs"][0]["results"][0]["level"] = "fatal"
        return doc

    monkeypatch.setattr(sarif, "_build_document", broken)
    report = make_report((at("SER-PICKLE-MALFORMED", Severity.HIGH, "m.bin"),))
    with pytest.raises(OutputError, match=r"results\[0\]\.level: 'fatal' is not one of"):
        render_sarif(report)


def test_validate_sarif_reports_bad_json() -> None:
    assert validate_sarif("{")[0].startswith("not JSON")
    assert validate_sarif('{"version": "2.1.0"}') == ["$: 'runs' is a required property"]


# ---------------------------------------------------------------- command line


def test_check_writes_a_valid_sarif_file(provscan, tmp_path: Path) -> None:
    model = build_malicious_pickle_model(tmp_path / "evil", tmp_path / "canary")
    result = provscan("check", "evil", "--sarif", "out.sarif", cwd=tmp_path)
    assert result.code == 1, result.out + result.err
    text = (tmp_path / "out.sarif").read_text(encoding="utf-8")
    assert validate_sarif(text) == []
    run = run_of(json.loads(text))
    (result_,) = results_for(run, "SER-PICKLE-DANGEROUS-GLOBAL")
    assert uri(result_) == "evil/pytorch_model.bin"
    assert run["invocations"][0]["exitCode"] == 1
    assert model.is_dir() and not (tmp_path / "canary").exists()


def test_a_policy_result_naming_a_signature_file_of_the_target_is_shown_there() -> None:
    reasons = (
        Reason(
            rule="POL-SIG-UNTRUSTED", level="review", msg="k", details={"signature": "model.sig"}
        ),
        Reason(rule="POL-SIG-UNTRUSTED", level="review", msg="o", details={"signature": "/o.sig"}),
    )
    report = make_report((), reasons, files=("README.md", "model.sig"))
    run = run_of(sarif_of(report))
    shown = [uri(r) for r in results_for(run, "POL-SIG-UNTRUSTED")]
    assert shown == ["model.sig", "README.md"]  # a signature outside the target: the card
    assert [r["properties"]["scope"] for r in results_for(run, "POL-SIG-UNTRUSTED")] == [
        "file",
        "target",
    ]
