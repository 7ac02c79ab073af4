"""`provscan diff` over real BOMs and reports of the demo model, before and after one change."""

from __future__ import annotations

import json
from pathlib import Path

from tests.diff.conftest import Scan


def _section(doc: dict, name: str) -> dict:
    return doc["sections"][name]


def _subjects(doc: dict, name: str, change: str) -> list[str]:
    return [c["subject"] for c in _section(doc, name)["changes"] if c["change"] == change]


def _sha(report: Path, path: str) -> str:
    files = json.loads(report.read_text())["files"]
    return next(f["sha256"] for f in files if f["path"] == path)


def test_changed_file_is_named_with_both_hashes(cli, scans: dict[str, Scan]) -> None:
    old, new = scans["base"], scans["config_changed"]
    old_sha, new_sha = _sha(old.report, "config.json"), _sha(new.report, "config.json")
    assert old_sha != new_sha
    result = cli("diff", old.bom, new.bom)
    assert result.code == 1, result.out + result.err
    assert "config.json" in result.out
    assert f"sha256: {old_sha} -> {new_sha}" in result.out
    assert "size: 564 -> 565" in result.out
    assert "RESULT: material change (files)" in result.out


def test_changed_file_in_json(cli, scans: dict[str, Scan]) -> None:
    old, new = scans["base"], scans["config_changed"]
    result = cli("diff", old.bom, new.bom, "--format", "json")
    assert result.code == 1
    doc = result.json()
    assert doc["material"] is True and doc["changed"] is True and doc["complete"] is True
    [change] = _section(doc, "files")["changes"]
    assert change["change"] == "changed" and change["subject"] == "config.json"
    assert change["material"] is True
    assert change["old"]["sha256"] == _sha(old.report, "config.json")
    assert change["new"]["sha256"] == _sha(new.report, "config.json")
    assert (change["old"]["size"], change["new"]["size"]) == (564, 565)
    assert change["new"]["format"] == "json" and change["new"]["role"] == "config"


def test_identical_boms_report_no_change(cli, scans: dict[str, Scan]) -> None:
    bom = scans["base"].bom
    result = cli("diff", bom, bom)
    assert result.code == 0, result.out + result.err
    assert result.out.rstrip().endswith("RESULT: no material change")
    assert "FILES" not in result.out


def test_two_scans_of_one_model_differ_only_in_time(cli, scans: dict[str, Scan]) -> None:
    first, again = scans["base"], scans["base_again"]
    old_bom, new_bom = json.loads(first.bom.read_text()), json.loads(again.bom.read_text())
    assert old_bom["metadata"]["timestamp"] != new_bom["metadata"]["timestamp"]
    assert old_bom["serialNumber"] != new_bom["serialNumber"]
    for old, new in ((first.bom, again.bom), (first.report, again.report)):
        result = cli("diff", old, new, "--format", "json")
        assert result.code == 0, result.out
        doc = result.json()
        assert doc["material"] is False and doc["changed"] is False
        assert doc["old"]["scanned_at"] != doc["new"]["scanned_at"]


def test_reports_diff_like_boms(cli, scans: dict[str, Scan]) -> None:
    result = cli("diff", scans["base"].report, scans["config_changed"].report)
    assert result.code == 1
    assert "~ config.json" in result.out
    same = cli("diff", scans["base"].report, scans["base"].report)
    assert same.code == 0 and "RESULT: no material change" in same.out


def test_bom_against_report(cli, scans: dict[str, Scan]) -> None:
    same = cli("diff", scans["base"].bom, scans["base"].report, "--format", "json")
    assert same.code == 0, same.out
    doc = same.json()
    assert (doc["old"]["kind"], doc["new"]["kind"]) == ("bom", "report")
    assert doc["changed"] is False and doc["complete"] is True
    changed = cli("diff", scans["base"].report, scans["config_changed"].bom, "--format", "json")
    assert changed.code == 1
    assert _subjects(changed.json(), "files", "changed") == ["config.json"]


def test_file_added_and_removed(cli, scans: dict[str, Scan]) -> None:
    added = cli("diff", scans["base"].bom, scans["file_added"].bom, "--format", "json")
    assert added.code == 1
    doc = added.json()
    assert _subjects(doc, "files", "added") == ["notes.txt"]
    [change] = _section(doc, "files")["changes"]
    assert change["old"] is None and change["new"]["size"] == len("release notes\n")
    removed = cli("diff", scans["base"].bom, scans["file_removed"].bom)
    assert removed.code == 1
    assert "- generation_config.json" in removed.out


def test_licence_change(cli, scans: dict[str, Scan]) -> None:
    result = cli("diff", scans["base"].bom, scans["licence_changed"].bom, "--format", "json")
    assert result.code == 1
    doc = result.json()
    licences = _section(doc, "licences")
    assert licences["compared"] is True and licences["material"] is True
    assert "declared mit" in _subjects(doc, "licences", "added")
    assert "declared apache-2.0" in _subjects(doc, "licences", "removed")
    text = cli("diff", scans["base"].report, scans["licence_changed"].report).out
    assert "+ declared mit" in text and "LICENCES  (material)" in text


def test_lineage_change(cli, scans: dict[str, Scan]) -> None:
    result = cli("diff", scans["base"].bom, scans["lineage_changed"].bom, "--format", "json")
    assert result.code == 1
    doc = result.json()
    [ancestor] = [
        c for c in _section(doc, "lineage")["changes"] if c["subject"] == "Qwen/Qwen2.5-0.5B"
    ]
    assert ancestor["change"] == "added" and ancestor["material"] is True
    assert ancestor["new"]["base"] == "Qwen/Qwen2.5-0.5B"
    # The report and the BOM record the same lineage.
    mixed = cli("diff", scans["lineage_changed"].report, scans["lineage_changed"].bom)
    assert mixed.code == 0, mixed.out


def test_new_finding_and_verdict_change(cli, scans: dict[str, Scan]) -> None:
    result = cli("diff", scans["base"].bom, scans["pickle_added"].bom, "--format", "json")
    assert result.code == 1
    doc = result.json()
    new = [c for c in _section(doc, "findings")["changes"] if c["change"] == "added"]
    assert new and all(c["material"] for c in new)
    assert {c["new"]["path"] for c in new} == {"extra.pkl"}
    assert any(c["new"]["severity"] == "critical" for c in new), new
    decision = [c for c in _section(doc, "verdict")["changes"] if c["subject"] == "decision"]
    assert [(c["old"], c["new"]) for c in decision] == [("approve", "deny")]
    text = cli("diff", scans["base"].report, scans["pickle_added"].report).out
    assert "new critical " in text and "extra.pkl" in text
    assert "~ decision: approve -> deny" in text


def test_resolved_findings_are_listed(cli, scans: dict[str, Scan]) -> None:
    result = cli("diff", scans["pickle_added"].bom, scans["base"].bom, "--format", "json")
    assert result.code == 1  # the pickle file was removed: material
    resolved = [c for c in _section(result.json(), "findings")["changes"]]
    assert resolved and all(c["change"] == "removed" and not c["material"] for c in resolved)


def test_hostile_file_name_is_escaped(cli, scans: dict[str, Scan]) -> None:
    result = cli("diff", scans["base"].bom, scans["hostile_name"].bom)
    assert result.code == 1
    assert "\x1b" not in result.out and "\u202e" not in result.out
    assert "evil\\x1b[2J\\u202etxt.json" in result.out
    as_json = cli("diff", scans["base"].bom, scans["hostile_name"].bom, "--format", "json")
    assert "\x1b" not in as_json.out and "\u202e" not in as_json.out
    assert _subjects(as_json.json(), "files", "added") == ["evil\x1b[2J\u202etxt.json"]


def test_json_file_matches_stdout(cli, scans: dict[str, Scan], tmp_path: Path) -> None:
    out = tmp_path / "diff.json"
    text = cli("diff", scans["base"].bom, scans["file_added"].bom, "--json", out)
    assert text.code == 1 and "+ notes.txt" in text.out
    printed = cli("diff", scans["base"].bom, scans["file_added"].bom, "--format", "json")
    assert json.loads(out.read_text()) == printed.json()
