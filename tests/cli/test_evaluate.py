"""`provscan evaluate`: stored reports and AI-BOMs decided again, without the model.

Models are scanned once per module with `provscan check`; every test then works on copies of
the reports and BOMs those checks wrote, as a team would with the evidence of models it
admitted long ago.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fixtures.models import build_demo_model, build_malicious_pickle_model
from fixtures.signing import write_key
from fixtures.signing_attacks import sign
from provscan.cli.summary import Row, json_line, render_table, worst_exit
from provscan.emit.bom.report import REPORT_REF, sha256_text
from provscan.report import SCHEMA_VERSION, Decision, Report
from tests.conftest import CliResult

MAJOR, MINOR, _ = (int(part) for part in SCHEMA_VERSION.split("."))
READS = f"this provscan reads {MAJOR}.x up to {MAJOR}.{MINOR}"


@pytest.fixture
def evaluate(cli: Callable[..., CliResult]) -> Callable[..., CliResult]:
    """`provscan evaluate ARGS` through provscan's entry point."""
    return lambda *args: cli("evaluate", *args)


def lines(result: CliResult) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.out.splitlines()]


@dataclass(frozen=True)
class Scanned:
    model: Path
    report: Path  # check --json
    bom: Path  # check --bom
    verdict: dict[str, Any]  # what check decided
    code: int


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Scanned]:
    """Four models the production pack judges differently, each checked once.

    demo: unsigned (deny, POL-SIG-REQUIRED); signed: the demo signed by a trusted key
    (approve); unlicensed: signed, but no licence anywhere (review, POL-LICENCE-UNKNOWN);
    pickle: a checkpoint whose pickle runs a command (deny, SER-* findings).
    """
    from provscan.cli import main

    root = tmp_path_factory.mktemp("evaluate")
    key = write_key(root / "keys", "publisher")
    models = {"demo": build_demo_model(root / "demo")}
    models["signed"] = build_demo_model(root / "signed")
    sign(models["signed"], key, models["signed"] / "model.sig", by="provscan")
    unlicensed = build_demo_model(root / "unlicensed")
    (unlicensed / "LICENSE").unlink()
    card = (unlicensed / "README.md").read_text(encoding="utf-8")
    (unlicensed / "README.md").write_text(re.sub(r"(?m)^license:.*\n", "", card))
    sign(unlicensed, key, unlicensed / "model.sig", by="provscan")
    models["unlicensed"] = unlicensed
    models["pickle"] = build_malicious_pickle_model(root / "pickle", root / "canary")
    found = {}
    for name, model in models.items():
        report, bom = root / f"{name}.json", root / f"{name}.cdx.json"
        args = ["check", str(model), "--policy", "production", "--trusted-key", str(key.public)]
        with pytest.raises(SystemExit) as exited:
            main([*args, "-q", "--json", str(report), "--bom", str(bom)])
        verdict = json.loads(report.read_text())["verdict"]
        found[name] = Scanned(model, report, bom, verdict, int(exited.value.code))
    assert not (root / "canary").exists()
    return found


@pytest.fixture
def copies(scanned: dict[str, Scanned], tmp_path: Path) -> Callable[[str, str], Path]:
    """A fresh copy of one stored input ("report" or "bom") to change in a test."""

    def copy_of(name: str, kind: str = "report") -> Path:
        source = getattr(scanned[name], kind)
        return Path(shutil.copyfile(source, tmp_path / source.name))

    return copy_of


def edit(path: Path, change: Callable[[dict[str, Any]], Any]) -> Path:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    return path


def rules(reasons: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(r["rule"], r["level"], r["msg"]) for r in reasons]


# ---------------------------------------------------------------- the same decision, again


def test_each_report_and_bom_is_decided_as_check_decided_it(
    scanned: dict[str, Scanned], evaluate
) -> None:
    decisions = {name: s.verdict["decision"] for name, s in scanned.items()}
    assert decisions == {
        "demo": "deny",
        "signed": "approve",
        "unlicensed": "review",
        "pickle": "deny",
    }
    assert [s.code for s in scanned.values()] == [1, 0, 4, 1]
    assert "POL-LICENCE-UNKNOWN" in {r["rule"] for r in scanned["unlicensed"].verdict["reasons"]}
    assert any(r["rule"].startswith("SER-") for r in scanned["pickle"].verdict["reasons"])
    inputs = [path for s in scanned.values() for path in (s.report, s.bom)]
    result = evaluate("--policy", "production", *inputs, "--json", "-")
    assert result.code == 1  # the worst: deny
    rows = lines(result)
    assert [row["input"] for row in rows] == [str(path) for path in inputs]
    for row, (name, stored) in zip(rows, [(n, s) for n, s in scanned.items() for _ in "rb"]):
        assert row["old"] == row["new"] == stored.verdict["decision"], (name, row)
        assert rules(row["reasons"]) == rules(stored.verdict["reasons"]), name
        assert (row["added"], row["removed"], row["error"], row["notes"]) == ([], [], None, [])
        assert row["exit_code"] == stored.code
    # --json - takes stdout: the table goes to stderr.
    assert result.err.count("no change") == 8
    assert result.err.rstrip().endswith("8 input(s): 2 approve, 2 review, 4 deny")


def test_a_policy_change_flips_the_verdict_and_names_the_rule(
    scanned: dict[str, Scanned], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, evaluate
) -> None:
    stored = scanned["signed"]
    monkeypatch.chdir(tmp_path)  # short input names: each table row on one line
    monkeypatch.setenv("COLUMNS", "120")
    shutil.copyfile(stored.report, "r.json")
    shutil.copyfile(stored.bom, "b.json")
    # The team adds Apache-2.0 to its deny list after the model was admitted.
    Path("provscan.toml").write_text('[licence]\ndenied = ["Apache-2.0"]\n')
    result = evaluate("--policy", "production", "r.json", "b.json", "--json", "rows.jsonl")
    assert result.code == 1, result.out + result.err
    cells = [[cell.strip() for cell in line.split("│")] for line in result.out.splitlines()]
    assert [row for row in cells if row[0] in ("r.json", "b.json")] == [
        [name, "signed", "approve", "deny", "+POL-LICENCE-DENIED"] for name in ("r.json", "b.json")
    ]
    rows = [json.loads(line) for line in Path("rows.jsonl").read_text().splitlines()]
    assert [(r["old"], r["new"], r["added"], r["removed"]) for r in rows] == [
        ("approve", "deny", ["POL-LICENCE-DENIED"], [])
    ] * 2
    # Without the config and back to the default pack: the production-only rule goes.
    Path("provscan.toml").unlink()
    relaxed = evaluate(scanned["demo"].report)
    assert relaxed.code == 0, relaxed.out
    assert "-POL-SIG-REQUIRED" in relaxed.out


# ---------------------------------------------------------------- schema versions


def _as_1_3(document: dict[str, Any]) -> None:
    """Today's report less what schema 1.4.0 added, in 1.3.0's shape."""
    document["schema_version"] = "1.3.0"
    for field in ("records", "fact_sources"):
        document.pop(field, None)
    for entry in document["files"]:
        entry.pop("signed_by", None)
    for check in document["signatures"]["signatures"]:
        check["not_covered"] = [item["path"] for item in check["not_covered"]]
        for field in (
            "certificate_not_before",
            "certificate_not_after",
            "validity_checked_at",
            "validity_basis",
        ):
            (check.get("signer") or {}).pop(field, None)


def test_an_older_minor_report_is_decided_but_cannot_approve(copies, evaluate) -> None:
    old = edit(copies("signed"), _as_1_3)
    result = evaluate("--policy", "production", old, "--json", "-")
    (row,) = lines(result)
    assert (row["old"], row["new"], row["error"]) == ("approve", "approve", None)
    assert row["exit_code"] == 4 and result.code == 4
    assert row["notes"][0].startswith("evidence of report schema 1.3.0: facts recorded only")
    assert "note: evidence of report schema 1.3.0" in result.err


def test_an_older_minor_signature_coverage_reads_fail_closed(copies, evaluate) -> None:
    """1.3.0 listed uncovered files by path only: each is taken as read by a loader."""

    def uncovered_config(document: dict[str, Any]) -> None:
        _as_1_3(document)
        document["signatures"]["signatures"][0]["not_covered"] = ["config.json"]

    old = edit(copies("signed"), uncovered_config)
    result = evaluate("--policy", "production", old, "--json", "-")
    (row,) = lines(result)
    assert row["new"] == "deny" and row["added"] == ["POL-SIG-NOT-COVERED"], row
    assert result.code == 1


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (f"{MAJOR}.{MINOR + 1}.0", f"written by a newer provscan (schema {MAJOR}.{MINOR + 1}.0)"),
        (f"{MAJOR + 1}.0.0", f"written by a newer provscan (schema {MAJOR + 1}.0.0)"),
        ("0.9.0", "written by an older provscan (schema 0.9.0)"),
        ("1.4", "schema_version '1.4' is not a MAJOR.MINOR.PATCH version"),
    ],
)
def test_another_schema_stops_the_command_naming_the_file(
    copies, version: str, message: str, evaluate
) -> None:
    good = copies("demo")
    other = edit(copies("signed"), lambda d: d.update(schema_version=version))
    result = evaluate(good, other)
    assert result.code == 2
    assert result.out == ""  # nothing was decided
    assert result.err.splitlines()[0] == f"provscan: error: {other}: {message}; {READS}"


def test_a_bom_without_an_embedded_report_stops_the_command(copies, evaluate) -> None:
    def strip(bom: dict[str, Any]) -> None:
        bom["components"] = [c for c in bom["components"] if c.get("bom-ref") != REPORT_REF]

    bom = edit(copies("demo", "bom"), strip)
    result = evaluate(bom)
    assert result.code == 2 and result.out == ""
    assert result.err.startswith(
        f"provscan: error: {bom}: an AI-BOM without an embedded provscan report"
    )


def test_a_document_that_is_neither_stops_the_command(tmp_path: Path, evaluate) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"name": "not a report"}')
    result = evaluate(other)
    assert result.code == 2
    assert result.err.startswith(f"provscan: error: {other}: neither a provscan report")


# ---------------------------------------------------------------- hostile and damaged inputs


def test_a_damaged_input_is_an_error_row_and_the_others_are_decided(
    copies, tmp_path: Path, evaluate
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": "1.4.0", "tool": ')
    result = evaluate("--policy", "production", copies("signed"), broken, "--json", "-")
    good, bad = lines(result)
    assert (good["new"], good["exit_code"]) == ("approve", 0)
    assert (bad["new"], bad["exit_code"], bad["target"]) == (None, 3, "")
    assert bad["error"].startswith("not valid JSON (Expecting value: line 1")
    assert result.code == 3
    assert "error: not valid JSON" in result.err


def test_a_tampered_verdict_is_shown_as_stored_and_decided_anew(copies, evaluate) -> None:
    def approve(document: dict[str, Any]) -> None:
        document["verdict"]["decision"] = "approve"
        document["verdict"]["reasons"] = []

    tampered = edit(copies("pickle"), approve)
    result = evaluate("--policy", "production", tampered, "--json", "-")
    (row,) = lines(result)
    assert (row["old"], row["new"], result.code) == ("approve", "deny", 1)
    assert "SER-PICKLE-DANGEROUS-GLOBAL" in row["added"]


def _approve_inside(bom: dict[str, Any], *, rehash: bool) -> None:
    """The embedded report's verdict made approve; its hash made to match or not."""
    (component,) = [c for c in bom["components"] if c.get("bom-ref") == REPORT_REF]
    attachment = component["data"][0]["contents"]["attachment"]
    report = json.loads(attachment["content"])
    report["verdict"]["decision"] = "approve"
    attachment["content"] = json.dumps(report)
    if rehash:
        component["hashes"] = [{"alg": "SHA-256", "content": sha256_text(attachment["content"])}]


def test_a_bom_whose_embedded_report_was_changed_is_an_error(copies, evaluate) -> None:
    changed = edit(copies("pickle", "bom"), lambda bom: _approve_inside(bom, rehash=False))
    result = evaluate(changed, "--json", "-")
    assert result.code == 3
    assert lines(result)[0]["error"] == (
        "AI-BOM: the embedded report's SHA-256 does not match the component's hashes"
    )
    # The hash made to match: the BOM's own verdict still says deny.
    rehashed = edit(copies("pickle", "bom"), lambda bom: _approve_inside(bom, rehash=True))
    assert lines(evaluate(rehashed, "--json", "-"))[0]["error"] == (
        "AI-BOM: the embedded report does not match the BOM's own verdict; one of them was "
        "changed after provscan wrote it"
    )


def test_an_invalid_report_is_an_error_naming_the_field(copies, evaluate) -> None:
    bad = edit(copies("demo"), lambda d: d["files"][0].update(size=-1))
    (row,) = lines(evaluate(bad, "--json", "-"))
    assert row["error"] == (
        f"not a valid schema {SCHEMA_VERSION} report: files.0.size: "
        "Input should be greater than or equal to 0"
    )


def test_too_large_and_too_deep_inputs_are_refused_unread(
    copies, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, evaluate
) -> None:
    from provscan.diff import load

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100 + "]" * 100)
    large = copies("demo")
    monkeypatch.setattr(load, "MAX_INPUT_BYTES", 1000)
    result = evaluate(large, deep, "--json", "-")
    assert [row["error"] for row in lines(result)] == [
        "larger than 1000 bytes; not a provscan report or BOM",
        "JSON nested deeper than 64 levels",
    ]
    assert result.code == 3


# ---------------------------------------------------------------- the model is not needed


def test_the_model_folder_may_be_gone(tmp_path: Path, cli, evaluate) -> None:
    model = build_demo_model(tmp_path / "gone")
    report, bom = tmp_path / "r.json", tmp_path / "b.json"
    checked = cli("check", model, "-q", "--json", report, "--bom", bom)
    assert checked.code == 0, checked.out + checked.err
    # While the folder exists, a config inside it is refused, as check refuses it.
    (model / "provscan.toml").write_text('[licence]\ndenied = ["Apache-2.0"]\n')
    inside = evaluate(report, "--config", model / "provscan.toml")
    assert inside.code == 2 and inside.out == ""
    assert inside.err.startswith(f"provscan: error: config {model / 'provscan.toml'} lies inside")
    shutil.rmtree(model)
    result = evaluate(report, bom, "--json", "-")
    assert [(row["old"], row["new"], row["added"], row["removed"]) for row in lines(result)] == [
        ("approve", "approve", [], [])
    ] * 2
    assert result.code == 0


def test_write_stores_each_report_with_its_new_verdict(
    scanned: dict[str, Scanned], tmp_path: Path, evaluate
) -> None:
    stored = scanned["demo"]
    out = tmp_path / "decided"
    result = evaluate(stored.report, stored.bom, "--write", out)
    assert result.code == 0, result.out + result.err
    assert sorted(p.name for p in out.iterdir()) == [
        "demo.cdx.evaluated.json",
        "demo.evaluated.json",
    ]
    for name in ("demo.evaluated.json", "demo.cdx.evaluated.json"):
        report = Report.model_validate_json((out / name).read_text())
        assert report.verdict is not None and report.verdict.decision is Decision.APPROVE
        assert report.verdict.policy.packs == ("default",)
    # The BOM's copy of the report never held the local paths the scan ran with.
    from_bom = Report.model_validate_json((out / "demo.cdx.evaluated.json").read_text())
    assert (from_bom.target.input, from_bom.target.root) == ("demo", "")


def test_write_refuses_two_inputs_of_one_name(copies, tmp_path: Path, evaluate) -> None:
    first = copies("demo")
    second = tmp_path / "elsewhere" / "demo.json"
    second.parent.mkdir()
    shutil.copyfile(first, second)
    result = evaluate(first, second, "--write", tmp_path / "out")
    assert result.code == 2
    assert "would both be written as demo.evaluated.json" in result.err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- rows, tables and lines


def _row(**change: Any) -> Row:
    values: dict[str, Any] = {
        "input": "r.json",
        "target": "m",
        "old": Decision.APPROVE,
        "new": Decision.DENY,
        "added": ("POL-X",),
        "removed": (),
        "error": None,
        "exit_code": 1,
    }
    return Row(**{**values, **change})


def test_worst_exit_orders_deny_then_failures_then_review() -> None:
    assert worst_exit([0, 4, 3, 1]) == 1
    assert worst_exit([0, 4, 2, 3]) == 3
    assert worst_exit([4, 0, 2]) == 2
    assert worst_exit([0, 4]) == 4
    assert worst_exit([0, 0]) == 0
    assert worst_exit([]) == 3  # nothing decided is no approval
    assert worst_exit([0, 77]) == 3  # an unknown code is a failure, never a pass


def test_hostile_text_is_escaped_in_the_table_and_the_json_line() -> None:
    row = _row(target="evil\x1b[2J[bold]model\u202e", error=None)
    table = render_table([row], color=True, width=120)
    assert "\x1b[2J" not in table and "\u202e" not in table
    assert "evil\\x1b[2J[bold]model" in table  # shown, not obeyed
    line = json_line(row)
    assert line.endswith("\n") and "\n" not in line[:-1] and line.isascii()
    assert json.loads(line)["target"] == row.target


def test_the_table_shows_changes_errors_and_notes() -> None:
    rows = [
        _row(removed=("POL-Y",)),
        _row(old=None, new=None, added=(), error="not valid JSON", exit_code=3),
        _row(old=Decision.APPROVE, new=Decision.APPROVE, added=(), notes=("older schema",)),
    ]
    text = render_table(rows, color=False, width=120)
    assert "+POL-X -POL-Y" in text
    assert "error: not valid JSON" in text
    assert "no change" in text and "note: older schema" in text
