"""Which differences are material (exit 1) and which are only listed (exit 0)."""

from __future__ import annotations

import copy
from typing import Any

from tests.diff.conftest import Scan, bom_model

SECTIONS = [
    "target", "files", "licences", "lineage", "findings",
    "signatures", "verdict", "model", "probes", "steps",
]  # fmt: skip


def _diff(cli, old, new, *extra: str) -> tuple[int, dict[str, Any]]:
    result = cli("diff", old, new, "--format", "json", *extra)
    assert result.err == "", result.err
    return result.code, result.json()


def _changes(doc: dict[str, Any], section: str) -> list[dict[str, Any]]:
    return doc["sections"][section]["changes"]


def test_json_document_shape(cli, scans: dict[str, Scan]) -> None:
    code, doc = _diff(cli, scans["base"].bom, scans["config_changed"].report)
    assert code == 1
    assert list(doc) == [
        "schema_version",
        "material",
        "changed",
        "complete",
        "old",
        "new",
        "sections",
    ]
    assert doc["schema_version"] == "1.0.0"
    assert list(doc["sections"]) == SECTIONS
    assert doc["old"]["kind"] == "bom" and doc["new"]["kind"] == "report"
    assert doc["old"]["path"] == str(scans["base"].bom)
    assert doc["old"]["tool_version"] == "0.1.0"
    assert doc["old"]["target"]["name"] == "tiny-llama"
    assert set(doc["old"]["target"]) == {"name", "revision", "purl", "manifest_digest"}
    for section in doc["sections"].values():
        assert set(section) == {"compared", "material", "reason", "changes"}
    [change] = _changes(doc, "files")
    assert set(change) == {"change", "subject", "material", "old", "new"}
    assert set(change["old"]) == {"sha256", "size", "format", "role"}


def test_order_timestamps_serial_and_tool_version_are_not_changes(cli, scans, edited) -> None:
    def shuffle_bom(bom: dict[str, Any]) -> dict[str, Any]:
        model = bom_model(bom)
        model["components"].reverse()
        model["properties"].reverse()
        bom["metadata"]["properties"].reverse()
        bom["metadata"]["timestamp"] = "2031-01-01T00:00:00+00:00"
        bom["serialNumber"] = "urn:uuid:00000000-0000-4000-8000-000000000000"
        bom["metadata"]["tools"]["components"][0]["version"] = "9.9.9"
        return bom

    def shuffle_report(report: dict[str, Any]) -> dict[str, Any]:
        report["files"].reverse()
        report["scanned_at"] = "2031-01-01T00:00:00Z"
        report["tool"]["version"] = "9.9.9"
        return report

    for source, shuffle in (
        (scans["base"].bom, shuffle_bom),
        (scans["base"].report, shuffle_report),
    ):
        code, doc = _diff(cli, source, edited(source, shuffle))
        assert code == 0
        assert doc["changed"] is False and doc["material"] is False
        assert doc["new"]["tool_version"] == "9.9.9"


def test_resolved_finding_alone_is_listed_not_material(cli, scans, edited) -> None:
    pickled = scans["pickle_added"].report
    cleared = edited(pickled, lambda r: {**r, "findings": []})
    code, doc = _diff(cli, pickled, cleared)
    assert code == 0
    [resolved] = _changes(doc, "findings")
    assert resolved["change"] == "removed" and resolved["material"] is False
    assert resolved["old"]["rule_id"] == "SER-PICKLE-DANGEROUS-GLOBAL"
    assert resolved["old"]["path"] == "extra.pkl"
    text = cli("diff", pickled, cleared).out
    assert "resolved critical SER-PICKLE-DANGEROUS-GLOBAL extra.pkl" in text
    assert "RESULT: no material change; 1 change(s) listed, none material" in text
    code, doc = _diff(cli, cleared, pickled)  # the other way round it is new
    assert code == 1 and _changes(doc, "findings")[0]["change"] == "added"


def test_finding_keyed_by_rule_and_place_not_wording(cli, scans, edited) -> None:
    pickled = scans["pickle_added"].report

    def reword(report: dict[str, Any]) -> dict[str, Any]:
        report["findings"][0]["message"] = "reworded"
        report["findings"][0]["location"]["offset"] = 99
        return report

    code, doc = _diff(cli, pickled, edited(pickled, reword))
    assert code == 0 and doc["changed"] is False

    def repeat(report: dict[str, Any]) -> dict[str, Any]:
        report["findings"].append(copy.deepcopy(report["findings"][0]))
        return report

    code, doc = _diff(cli, pickled, edited(pickled, repeat))
    assert code == 1
    [more] = _changes(doc, "findings")
    assert (more["change"], more["old"]["count"], more["new"]["count"]) == ("changed", 1, 2)


def _signed(status: str, signer: str = "key-a") -> Any:
    def sign(report: dict[str, Any]) -> dict[str, Any]:
        report["signatures"]["signatures"] = [
            {"path": "model.sig", "status": status, "integrity": "match",
             "signer": {"method": "key", "key_fingerprint": signer}}
        ]  # fmt: skip
        return report

    return sign


def test_signature_changes_are_material(cli, scans, edited) -> None:
    base = scans["base"].report
    verified = edited(base, _signed("verified"))
    code, doc = _diff(cli, base, verified)
    assert code == 1
    [added] = _changes(doc, "signatures")
    assert added["change"] == "added" and added["new"]["status"] == "verified"
    code, doc = _diff(cli, verified, edited(base, _signed("invalid")))
    assert code == 1
    [changed] = _changes(doc, "signatures")
    assert (changed["old"]["status"], changed["new"]["status"]) == ("verified", "invalid")
    code, _ = _diff(cli, verified, edited(base, _signed("verified", "key-b")))
    assert code == 1


def test_verdict_reasons_and_policy_digest(cli, scans, edited) -> None:
    base = scans["base"].report

    def add_reason(report: dict[str, Any]) -> dict[str, Any]:
        report["verdict"]["reasons"].append(
            {"rule": "POL-NEW", "level": "warn", "msg": "m", "details": {}}
        )
        return report

    code, doc = _diff(cli, base, edited(base, add_reason))
    assert code == 1
    assert [(c["change"], c["subject"], c["material"]) for c in _changes(doc, "verdict")] == [
        ("added", "warn POL-NEW", True)
    ]
    code, doc = _diff(cli, edited(base, add_reason), base)
    assert code == 0 and _changes(doc, "verdict")[0]["change"] == "removed"

    def other_policy(report: dict[str, Any]) -> dict[str, Any]:
        report["verdict"]["policy"]["digest"] = "0" * 64
        return report

    code, doc = _diff(cli, base, edited(base, other_policy))
    assert code == 0
    assert [(c["subject"], c["material"]) for c in _changes(doc, "verdict")] == [
        ("policy_digest", False)
    ]


def test_failed_step_is_material(cli, scans, edited) -> None:
    base = scans["base"].report

    def fail(report: dict[str, Any]) -> dict[str, Any]:
        step = next(s for s in report["steps"] if s["name"] == "serialization")
        step.update(status="failed", reason="boom")
        return report

    code, doc = _diff(cli, base, edited(base, fail))
    assert code == 1
    [change] = _changes(doc, "steps")
    assert (change["subject"], change["old"], change["new"]) == (
        "serialization",
        "completed",
        "failed",
    )
    code, _ = _diff(cli, edited(base, fail), base)  # a step that completes again: not material
    assert code == 0


def test_lineage_relation_and_order(cli, scans, edited) -> None:
    source = scans["lineage_changed"].report

    def relation(report: dict[str, Any]) -> dict[str, Any]:
        report["origin"]["lineage"][0]["relation"] = "merge"
        return report

    code, doc = _diff(cli, source, edited(source, relation))
    assert code == 1
    [change] = _changes(doc, "lineage")
    assert (change["old"]["relation"], change["new"]["relation"]) == ("finetune", "merge")

    def two_bases(report: dict[str, Any]) -> dict[str, Any]:
        edge = report["origin"]["lineage"][0]
        report["origin"]["lineage"].append({**edge, "base": "org/other"})
        return report

    forward = edited(source, two_bases)
    backward = edited(
        forward, lambda r: {**r, "origin": {**r["origin"], "lineage": r["origin"]["lineage"][::-1]}}
    )
    code, doc = _diff(cli, forward, backward)
    assert code == 0
    [order] = _changes(doc, "lineage")
    assert order["subject"] == "order" and order["material"] is False


def test_target_rename_alone_is_not_material(cli, scans, edited) -> None:
    base = scans["base"].report
    renamed = edited(base, lambda r: {**r, "target": {**r["target"], "name": "other-model"}})
    code, doc = _diff(cli, base, renamed)
    assert code == 0
    assert [(c["subject"], c["old"], c["new"]) for c in _changes(doc, "target")] == [
        ("name", "tiny-llama", "other-model")
    ]


def test_new_confirmed_probe_trigger_is_material(cli, scans, edited) -> None:
    base = scans["base"].report

    def probed(status: str) -> Any:
        def add(report: dict[str, Any]) -> dict[str, Any]:
            report["probes"] = {
                "suite_id": "default", "suite_version": "1", "partial": False,
                "engine": {"name": "transformers", "version": "4", "model": "m"},
                "budget": {},
                "candidates": [{"family": "replay", "status": status, "trigger": "cf"}],
            }  # fmt: skip
            return report

        return add

    candidate, confirmed = edited(base, probed("candidate")), edited(base, probed("confirmed"))
    code, doc = _diff(cli, candidate, confirmed)
    assert code == 1
    subjects = {(c["change"], c["subject"], c["material"]) for c in _changes(doc, "probes")}
    assert subjects == {
        ("added", "confirmed replay: cf", True),
        ("removed", "candidate replay: cf", False),
    }
    code, doc = _diff(cli, base, candidate)
    assert code == 0 and _changes(doc, "probes")[0]["new"] == "default 1"


def _without_findings(bom: dict[str, Any]) -> dict[str, Any]:
    """A BOM as another tool might write it: no provscan findings properties or evidence."""
    model = bom_model(bom)
    model["properties"] = [
        p for p in model["properties"] if not p["name"].startswith("provscan:findings:")
    ]
    bom.get("declarations", {}).pop("evidence", None)
    return bom


def test_bom_without_findings_says_so(cli, scans, edited) -> None:
    base, pickled = scans["base"].report, edited(scans["pickle_added"].bom, _without_findings)
    code, doc = _diff(cli, base, pickled)
    assert code == 1  # the pickle file itself is still a material change
    findings = doc["sections"]["findings"]
    assert findings["compared"] is False and findings["changes"] == []
    assert (
        findings["reason"]
        == "NEW (bom): the BOM records no provscan findings (provscan:findings:*)"
    )
    assert doc["complete"] is False

    same = edited(scans["base"].bom, _without_findings)
    text = cli("diff", scans["base"].bom, same)
    assert text.code == 0
    assert "NOT COMPARED\n  findings: NEW (bom): the BOM records no provscan findings" in text.out
    assert (
        "RESULT: no material change in the sections compared (not compared: findings)" in text.out
    )
    assert "RESULT: no material change\n" not in text.out
    assert cli("diff", scans["base"].bom, same, "--fail-on", "any").code == 1


def test_fail_on(cli, scans, edited) -> None:
    base, changed = scans["base"].bom, scans["config_changed"].bom
    assert cli("diff", base, changed, "--fail-on", "none").code == 0
    assert cli("diff", base, changed, "--fail-on", "material").code == 1
    renamed = edited(
        scans["base"].report, lambda r: {**r, "target": {**r["target"], "name": "renamed"}}
    )
    assert cli("diff", scans["base"].report, renamed).code == 0
    assert cli("diff", scans["base"].report, renamed, "--fail-on", "any").code == 1
    bad = cli("diff", base, changed, "--fail-on", "sometimes")
    assert bad.code == 2


def test_control_characters_in_bom_names_are_escaped(cli, scans, edited) -> None:
    def hostile(bom: dict[str, Any]) -> dict[str, Any]:
        model = bom_model(bom)
        model["name"] = "tiny\x07llama\u2028"
        model["components"][0]["name"] = "LICENSE\x9b31m\u200b"
        return bom

    result = cli("diff", scans["base"].bom, edited(scans["base"].bom, hostile))
    assert result.code == 1
    for raw in ("\x07", "\x9b", "\u2028", "\u200b"):
        assert raw not in result.out
    assert "tiny\\x07llama\\u2028" in result.out
    assert "+ LICENSE\\x9b31m\\u200b" in result.out
    assert "- LICENSE" in result.out


def test_bom_verdict_without_its_reasons_is_not_compared(cli, scans, edited) -> None:
    def drop_claims(bom: dict[str, Any]) -> dict[str, Any]:
        del bom["declarations"]
        return bom

    code, doc = _diff(cli, scans["base"].report, edited(scans["base"].bom, drop_claims))
    assert code == 0
    verdict = doc["sections"]["verdict"]
    assert verdict["compared"] is False and verdict["changes"] == []
    assert verdict["reason"] == (
        "NEW (bom): the BOM has a verdict but no declarations.claims (its reasons)"
    )
