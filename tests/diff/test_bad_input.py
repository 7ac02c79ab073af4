"""Bad and hostile inputs: each is refused with exit 2, naming the file and the problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.diff.conftest import Scan, bom_model


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _refused(cli, bad: Path, good: Path, problem: str) -> None:
    for args in ((bad, good), (good, bad)):
        result = cli("diff", *args)
        assert result.code == 2, (result.code, result.out, result.err)
        assert f"{bad}: " in result.err, result.err
        assert problem in result.err, result.err
        assert result.out == ""


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json at all", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        ("[1, 2]", "the document: expected an object, found an array"),
        ('{"hello": "world"}', "neither a provscan report"),
        ('{"bomFormat": "SPDX"}', "bomFormat is 'SPDX', not 'CycloneDX'"),
        ('{"a": 1, "a": 2}', "the key 'a' appears twice"),
        ('{"a": NaN}', "NaN is not a JSON number"),
        ("[" * 100 + "]" * 100, "nested deeper than 64"),
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 64"),
        ('{"n": 1' + "0" * 5000 + "}", "not valid JSON"),
    ],
    ids=[
        "garbage",
        "utf16",
        "array",
        "neither",
        "spdx",
        "dup-key",
        "nan",
        "deep",
        "very-deep",
        "huge-int",
    ],
)
def test_not_a_usable_document(cli, scans: dict[str, Scan], tmp_path, content, problem) -> None:
    _refused(cli, _write(tmp_path, "bad.json", content), scans["base"].bom, problem)


def _report(scans: dict[str, Scan]) -> dict[str, Any]:
    return json.loads(scans["base"].report.read_text())


def _bom(scans: dict[str, Scan]) -> dict[str, Any]:
    return json.loads(scans["base"].bom.read_text())


def test_unsupported_report_major(cli, scans, edited) -> None:
    future = edited(scans["base"].report, lambda d: {**d, "schema_version": "2.0.0"})
    _refused(cli, future, scans["base"].report, "report schema 2.0.0 is not supported")
    garbled = edited(scans["base"].report, lambda d: {**d, "schema_version": "one"})
    _refused(cli, garbled, scans["base"].report, "is not a MAJOR.MINOR.PATCH version")


def test_newer_minor_report_with_unknown_fields_is_read(cli, scans, edited) -> None:
    newer = edited(
        scans["base"].report, lambda d: {**d, "schema_version": "1.99.0", "new_section": {"x": 1}}
    )
    result = cli("diff", scans["base"].report, newer)
    assert result.code == 0, result.err


def test_bom_from_a_newer_report_major(cli, scans, edited) -> None:
    def bump(bom: dict[str, Any]) -> dict[str, Any]:
        for prop in bom["metadata"]["properties"]:
            if prop["name"] == "provscan:report:schema_version":
                prop["value"] = "9.0.0"
        return bom

    _refused(cli, edited(scans["base"].bom, bump), scans["base"].bom, "report schema 9.0.0")


def test_duplicate_file_paths(cli, scans, edited) -> None:
    def twice_in_report(report: dict[str, Any]) -> dict[str, Any]:
        report["files"].append(dict(report["files"][0]))
        return report

    def twice_in_bom(bom: dict[str, Any]) -> dict[str, Any]:
        files = bom_model(bom)["components"]
        files.append(dict(files[0], **{"bom-ref": "file:other"}))
        return bom

    _refused(
        cli,
        edited(scans["base"].report, twice_in_report),
        scans["base"].bom,
        "'LICENSE' is listed twice",
    )
    _refused(
        cli, edited(scans["base"].bom, twice_in_bom), scans["base"].bom, "'LICENSE' is listed twice"
    )


def test_malformed_components(cli, scans, edited) -> None:
    def files_not_array(bom: dict[str, Any]) -> dict[str, Any]:
        bom_model(bom)["components"] = {"LICENSE": "x"}
        return bom

    def name_not_string(bom: dict[str, Any]) -> dict[str, Any]:
        bom_model(bom)["components"][2]["name"] = 7
        return bom

    def size_not_number(bom: dict[str, Any]) -> dict[str, Any]:
        bom_model(bom)["components"][0]["properties"][2]["value"] = "-1"
        return bom

    base = scans["base"].bom
    _refused(
        cli,
        edited(base, files_not_array),
        base,
        "the model's components: expected an array, found an object",
    )
    _refused(
        cli,
        edited(base, name_not_string),
        base,
        "components[2].name: expected a string, found a number",
    )
    _refused(
        cli,
        edited(base, size_not_number),
        base,
        "provscan:file:size: expected a non-negative integer",
    )
    _refused(
        cli,
        edited(base, lambda b: {**b, "components": []}),
        base,
        "no machine-learning-model components",
    )
    two = edited(base, lambda b: {**b, "components": b["components"] * 2})
    _refused(cli, two, base, "2 machine-learning-model components")


def test_report_with_malformed_fields(cli, scans, edited) -> None:
    report = scans["base"].report
    no_files = edited(report, lambda d: {**d, "files": "all of them"})
    _refused(cli, no_files, report, "files: expected an array, found a string")
    bad_size = edited(report, lambda d: {**d, "files": [{**d["files"][0], "size": True}]})
    _refused(
        cli, bad_size, report, "files[0].size: expected a non-negative integer, found a boolean"
    )
    bad_severity = edited(
        report,
        lambda d: {
            **d,
            "findings": [{"rule_id": "SER-X", "severity": "apocalyptic", "message": "m"}],
        },
    )
    _refused(cli, bad_severity, report, "'apocalyptic' is not a provscan severity")


def test_bom_contradicting_itself(cli, scans, edited) -> None:
    def strip_evidence(bom: dict[str, Any]) -> dict[str, Any]:
        bom["declarations"].pop("evidence", None)
        return bom

    pickled = scans["pickle_added"].bom
    _refused(cli, edited(pickled, strip_evidence), pickled, "declarations.evidence carries 0")

    def other_verdict(bom: dict[str, Any]) -> dict[str, Any]:
        for prop in bom_model(bom)["properties"]:
            if prop["name"] == "provscan:verdict":
                prop["value"] = "deny"
        return bom

    base = scans["base"].bom
    _refused(
        cli,
        edited(base, other_verdict),
        base,
        "provscan:verdict is 'deny' but the attestation says 'approve'",
    )

    def repeated_property(bom: dict[str, Any]) -> dict[str, Any]:
        bom_model(bom)["properties"].append({"name": "provscan:verdict", "value": "deny"})
        return bom

    _refused(
        cli, edited(base, repeated_property), base, "'provscan:verdict' has two different values"
    )


def test_attached_finding_that_is_not_json(cli, scans, edited) -> None:
    def garble(bom: dict[str, Any]) -> dict[str, Any]:
        bom["declarations"]["evidence"][0]["data"][0]["contents"]["attachment"]["content"] = "{oops"
        return bom

    pickled = scans["pickle_added"].bom
    _refused(
        cli,
        edited(pickled, garble),
        pickled,
        "declarations.evidence[0]: the attached finding is not valid JSON",
    )


def test_file_too_big(cli, scans, monkeypatch) -> None:
    from provscan.diff import load

    report = scans["base"].report
    size = report.stat().st_size
    monkeypatch.setattr(load, "MAX_INPUT_BYTES", size - 1)
    result = cli("diff", report, report)
    assert result.code == 2 and result.out == ""
    assert f"{report}: larger than {size - 1} bytes" in result.err
    monkeypatch.setattr(load, "MAX_INPUT_BYTES", size)  # exactly at the bound: read
    assert cli("diff", report, report).code == 0


def test_missing_and_directory_inputs(cli, scans, tmp_path: Path) -> None:
    good = scans["base"].bom
    missing = cli("diff", tmp_path / "nope.json", good)
    assert missing.code == 2 and "does not exist" in missing.err
    directory = cli("diff", good, tmp_path)
    assert directory.code == 2 and "is a directory" in directory.err
