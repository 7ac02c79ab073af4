"""The policy sees a bounded document: counts for everything, lists cut to the limits.

Each test runs a pack table case (a full report) with small caps written into the report's
recorded limits, and checks the verdict is the one the whole report gets, or, where what
was cut could matter, a stricter one (fail closed), never a milder one.
"""

from __future__ import annotations

import json
from typing import Any

from provscan.limits import DEFAULT_LIMITS
from provscan.policy.engine import evaluate
from provscan.policy.input import bounded_policy_input, policy_caps
from provscan.report import (
    Decision,
    FileEntry,
    FileFormat,
    FileRole,
    Finding,
    Location,
    Report,
    Severity,
)
from provscan.resources import default_policy_dir

CASES = default_policy_dir() / "tests"


def case(name: str) -> Report:
    return Report.model_validate(json.loads((CASES / name / "input.json").read_text()))


def capped(report: Report, **caps: int) -> Report:
    limits = {**report.parameters.limits, **caps}
    parameters = report.parameters.model_copy(update={"limits": limits})
    return report.model_copy(update={"parameters": parameters})


def rules(report: Report, config: dict[str, Any] | None = None) -> dict[str, list[str]]:
    verdict = evaluate(report, [default_policy_dir()], config or {})
    out: dict[str, list[str]] = {"decision": [verdict.decision.value]}
    for reason in verdict.reasons:
        out.setdefault(reason.level, []).append(reason.rule)
    return out


def test_file_summary_counts_every_file_and_lists_the_hub_recorded_first() -> None:
    report = case("hub_not_downloaded_review")
    files = [
        FileEntry(path=f"extra/{i:03d}.txt", size=3, format=FileFormat.TEXT, role=FileRole.OTHER)
        for i in range(20)
    ]
    report = capped(
        report.model_copy(update={"files": (*files, *report.files)}), policy_max_files=2
    )
    data = bounded_policy_input(report)
    assert data["file_summary"]["count"] == 22
    assert data["file_summary"]["listed"] == 2
    assert data["file_summary"]["bytes"] == sum(f.size for f in report.files)
    assert len(data["files"]) == 2
    assert data["files"][0]["sha256_source"] == "hub-recorded"  # listed first, whatever the path
    assert "manifest" not in data and "verdict" not in data
    verdict = evaluate(report, [default_policy_dir()], {})
    assert verdict.decision is Decision.REVIEW
    [reason] = [r for r in verdict.reasons if r.rule == "POL-HUB-NOT-DOWNLOADED"]
    recorded = [f for f in report.files if f.sha256_source == "hub-recorded"]
    assert reason.msg.startswith(f"{len(recorded)} file(s), {sum(f.size for f in recorded)} bytes")


def test_no_files_is_judged_from_the_count_not_the_list() -> None:
    report = case("clean_approve")
    assert rules(capped(report, policy_max_files=1))["decision"] == ["approve"]
    empty = report.model_copy(update={"files": ()})
    assert "POL-NO-FILES" in rules(empty).get("deny", [])


def test_the_hubs_record_covers_every_file_by_count() -> None:
    report = case("hub_record_matched_unsigned_warn")
    config = {"hub": {"unsigned_matched": "warn"}}

    def unsigned_message(r: Report) -> str:
        verdict = evaluate(r, [default_policy_dir()], config)
        [reason] = [x for x in verdict.reasons if x.rule == "POL-SIG-UNSIGNED"]
        return reason.msg

    matched = "matches the Hub's own record"
    assert matched in unsigned_message(report)
    small = capped(report, policy_max_files=1, policy_max_list=1)
    data = bounded_policy_input(small)
    assert len(data["files"]) == 1 and data["records"][0]["consistent_count"] == 2
    assert matched in unsigned_message(small)  # the counts prove it, not the cut lists
    # One file not consistent: the record no longer covers the target, cut lists or not.
    record = report.records[0]
    worse = record.model_copy(
        update={"consistent": record.consistent[:1], "mismatched": record.consistent[1:]}
    )
    tampered = capped(
        report.model_copy(update={"records": (worse, *report.records[1:])}),
        policy_max_files=1,
        policy_max_list=1,
    )
    assert matched not in unsigned_message(tampered)


def test_a_signature_whose_uncovered_list_was_cut_covers_nothing() -> None:
    report = case("sig_not_covered_other_trusted_covers_approve")
    assert rules(report)["decision"] == ["approve"]
    facts = report.signatures
    assert facts is not None
    model_sig, publisher = facts.signatures
    assert not publisher.not_covered
    pictures = tuple(
        model_sig.not_covered[0].model_copy(
            update={"path": f"img/{i}.png", "role": FileRole.OTHER, "loader_read": False}
        )
        for i in range(3)
    )
    wider = publisher.model_copy(update={"not_covered": pictures})
    report = report.model_copy(
        update={"signatures": facts.model_copy(update={"signatures": (model_sig, wider)})}
    )
    assert rules(report)["decision"] == ["approve"]  # pictures nobody loads: still covered
    # With the list cut, which files publisher.sig leaves out is unknown: it proves nothing.
    cut = rules(capped(report, policy_max_list=2))
    assert cut["decision"] == ["review"] and "POL-SIG-NOT-COVERED" in cut["review"]


def test_loader_read_files_past_the_list_are_counted_in_one_reason() -> None:
    report = case("sig_not_covered_loader_read_review")
    facts = report.signatures
    assert facts is not None
    [sig] = facts.signatures
    entry = sig.not_covered[0]
    many = tuple(entry.model_copy(update={"path": f"code/m{i}.py"}) for i in range(5))
    report = report.model_copy(
        update={
            "signatures": facts.model_copy(
                update={"signatures": (sig.model_copy(update={"not_covered": (*many, entry)}),)}
            )
        }
    )
    full = evaluate(report, [default_policy_dir()], {})
    assert sum(r.rule == "POL-SIG-NOT-COVERED" for r in full.reasons) == 6
    small = evaluate(capped(report, policy_max_list=2), [default_policy_dir()], {})
    reasons = [r for r in small.reasons if r.rule == "POL-SIG-NOT-COVERED"]
    assert small.decision is Decision.REVIEW and len(reasons) == 3
    assert any(r.msg.startswith("4 more files a loader reads") for r in reasons)


def _critical(i: int) -> Finding:
    return Finding(
        rule_id="SER-PICKLE-DANGEROUS-GLOBAL",
        severity=Severity.CRITICAL,
        message=f"m{i}.pkl: imports os.system",
        location=Location(path=f"m{i}.pkl"),
    )


def test_findings_past_the_cap_still_decide_and_a_path_waiver_cannot_see_them() -> None:
    report = case("clean_approve")
    info = Finding(rule_id="INV-NOTE", severity=Severity.INFO, message="a note")
    findings = (*(_critical(i) for i in range(5)), info)
    report = capped(report.model_copy(update={"findings": findings}), policy_max_findings=2)
    data = bounded_policy_input(report)
    assert [f["location"] for f in data["findings"][:2]] == [
        {"path": f"m{i}.pkl", "member": None, "offset": None} for i in range(2)
    ]
    grouped = [f for f in data["findings"] if f["evidence"].get("not_listed")]
    assert [(f["rule_id"], f["severity"], f["evidence"]) for f in grouped] == [
        ("SER-PICKLE-DANGEROUS-GLOBAL", "critical", {"not_listed": 3, "files": 3}),
        ("INV-NOTE", "info", {"not_listed": 1, "files": 0}),
    ]
    # Waive the three unlisted files one by one: they are not seen, so not waived: deny.
    waivers = [
        {"rule": "SER-PICKLE-DANGEROUS-GLOBAL", "path": f"m{i}.pkl", "reason": "vetted"}
        for i in range(5)
    ]
    assert rules(report, {"waivers": waivers})["decision"] == ["deny"]
    # The same waivers with every finding listed: all waived.
    whole = capped(report, policy_max_findings=10)
    assert rules(whole, {"waivers": waivers})["decision"] == ["approve"]
    # A waiver for the whole rule covers the unlisted ones too.
    rule_wide = [{"rule": "SER-PICKLE-DANGEROUS-GLOBAL", "reason": "vetted"}]
    assert rules(report, {"waivers": rule_wide})["decision"] == ["approve"]


def test_a_report_cannot_widen_the_caps_past_ten_times_the_defaults() -> None:
    default = DEFAULT_LIMITS.policy_max_files
    assert policy_caps({})[0] == default
    assert policy_caps({"policy_max_files": 10**9})[0] == 10 * default
    assert policy_caps({"policy_max_files": True})[0] == default
    assert policy_caps({"policy_max_files": -1})[0] == default
    assert policy_caps({"policy_max_files": 5})[0] == 5


def test_a_hundred_thousand_files_and_findings_reach_the_policy_bounded() -> None:
    report = case("clean_approve")
    files = tuple(
        FileEntry(path=f"d/{i:06d}.pkl", size=9, format=FileFormat.PICKLE, role=FileRole.OTHER)
        for i in range(100_000)
    )
    findings = tuple(_critical(i) for i in range(100_000))
    report = report.model_copy(update={"files": files, "findings": findings})
    data = bounded_policy_input(report)
    size = len(json.dumps(data))
    assert size < 2_000_000, size  # the whole report's JSON is some 30 MB
    assert data["file_summary"]["count"] == 100_000
    assert data["file_summary"]["by_format"] == {"pickle": 100_000}
    verdict = evaluate(report, [default_policy_dir()], {})
    assert verdict.decision is Decision.DENY
    assert any("99800 more SER-PICKLE-DANGEROUS-GLOBAL findings" in r.msg for r in verdict.reasons)
