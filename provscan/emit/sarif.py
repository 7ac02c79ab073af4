"""What do code-scanning dashboards see? The findings and verdict as schema-valid SARIF 2.1.0."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

from provscan import __version__
from provscan.emit.sarif_rules import (
    POLICY_LEVEL,
    PROJECT_URL,
    SEVERITY_LEVEL,
    rules_for,
    truncate,
    validate_sarif,
)
from provscan.errors import ExitCode, OutputError
from provscan.report import LEVELS, Finding, Reason, Report, StepStatus, TargetKind

__all__ = ["render_sarif", "validate_sarif"]

SARIF_SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
TARGET_ROOT = "TARGETROOT"
FINGERPRINT_KEY = "provscan/v1"
_WAIVED = "POL-WAIVED"
# A result's outcome: its most serious policy level (LEVELS, most serious first), then waived.
_OUTCOMES = (*LEVELS, "waived")
# Policy details that tell two results of one policy rule apart, for their fingerprints.
_IDENTIFYING = ("step", "licence", "via", "key", "country", "org", "role", "metric", "signature")
_ERRORS_SHOWN = 5


def _uri_path(path: str) -> str:
    """RFC 3986 path: every byte outside the unreserved set is percent-encoded ('/' kept).

    ':' is encoded too, so a first segment like 'c:x' never reads as a scheme; a name that
    is not valid UTF-8 keeps its original bytes (surrogateescape) rather than crashing.
    """
    try:
        raw = path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = path.encode("utf-8", "backslashreplace")
    return quote(raw, safe="/")


class _Locator:
    """Turns report paths into SARIF artifactLocations for one target."""

    def __init__(self, report: Report, base_dir: Path | None) -> None:
        target = report.target
        self.base_ids: dict[str, Any] = {}
        self.prefix: str | None = None  # set: uris are relative to base_dir (the repository)
        if target.kind is TargetKind.HUB_METADATA:
            # The files were never on disk: point at the commit on the Hub.
            endpoint = (target.hub.endpoint if target.hub else "https://huggingface.co").rstrip("/")
            where = f"{endpoint}/{_uri_path(target.repo_id or target.name)}/blob/"
            where += f"{_uri_path(target.revision or 'main')}/"
            self.base_ids[TARGET_ROOT] = {"uri": where}
            return
        root = Path(target.root)
        root = root.parent if target.kind is TargetKind.FILE else root
        inside = _relative(root, base_dir) if base_dir is not None else None
        if inside is not None:
            self.prefix = "" if inside == "." else _uri_path(inside) + "/"
        else:
            self.base_ids[TARGET_ROOT] = {"uri": "file://" + _uri_path(root.as_posix()) + "/"}

    def artifact(self, path: str | None) -> dict[str, Any]:
        """The file's location; None: the target root itself."""
        uri = _uri_path(path) if path else ""
        if self.prefix is not None:
            # Never an empty uri: GitHub cannot place one (codeql-action#2456).
            return {"uri": self.prefix + uri or "./"}
        return {"uri": uri or "./", "uriBaseId": TARGET_ROOT}


def _relative(root: Path, base_dir: Path) -> str | None:
    """root relative to base_dir ('/'-separated), or None when it lies outside."""
    for resolved in (False, True):
        try:  # a root read back from a report may hold a NUL, which resolve() refuses
            left, right = (root.resolve(), base_dir.resolve()) if resolved else (root, base_dir)
            return left.relative_to(right).as_posix()
        except (ValueError, OSError):
            continue
    return None


def _anchor_file(report: Report) -> str | None:
    """Where a result about the whole target is shown (GitHub needs a file for every result)."""
    # The model card (README.md), else config.json, else the first file: what a reader of
    # a model opens first. None: no files at all, so the target root itself.
    paths = [entry.path for entry in report.files]
    card = report.card.path if report.card is not None else "README.md"
    return next((p for p in (card, "config.json") if p in paths), paths[0] if paths else None)


def _path(finding: Finding) -> str | None:
    return finding.location.path if finding.location is not None else None


def _refers_to(reason: Reason, finding: Finding) -> bool:
    """Is this policy result the pass-through (or the waiver) of this finding?"""
    details = reason.details
    rule = details.get("finding_rule") if reason.rule == _WAIVED else reason.rule
    return (
        rule == finding.rule_id
        and details.get("file") == _path(finding)
        and details.get("severity", finding.severity.value) == finding.severity.value
    )


def _outcome(reasons: list[Reason]) -> str:
    outcomes = ["waived" if r.rule == _WAIVED else r.level for r in reasons]
    return min(outcomes, key=_OUTCOMES.index, default="none")


def _identity(report: Report) -> str:
    return report.target.repo_id or report.target.name


def _fingerprint(*parts: str) -> str:
    # Only what names the problem and its place: no message, absolute path or time.
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _location(locator: _Locator, path: str | None, member: str | None) -> dict[str, Any]:
    # GitHub shows only text regions and places a result without one nowhere useful, so
    # line 1 stands for "this file" (a weight file has no lines); the exact byte offset,
    # where known, is a binary region in relatedLocations, which is what SARIF means by it.
    location: dict[str, Any] = {
        "physicalLocation": {"artifactLocation": locator.artifact(path), "region": {"startLine": 1}}
    }
    if member is not None and path is not None:
        location["logicalLocations"] = [
            {"name": member, "fullyQualifiedName": f"{path}!/{member}", "kind": "member"}
        ]
    return location


def _finding_result(
    finding: Finding, reasons: list[Reason], locator: _Locator, anchor: str | None
) -> dict[str, Any]:
    loc = finding.location
    path, member = _path(finding), loc.member if loc is not None else None
    shown = path if path is not None else anchor
    text = finding.message
    if member is not None and member not in text:
        text += f" (archive member {member})"
    properties: dict[str, Any] = {
        "severity": finding.severity.value,
        "policyOutcome": _outcome(reasons),
    }
    if member is not None:
        properties["archiveMember"] = member
    result: dict[str, Any] = {
        "ruleId": finding.rule_id,
        "level": SEVERITY_LEVEL[finding.severity.value],
        "message": {"text": _scope_note(text, path, shown, properties)},
        "locations": [_location(locator, shown, member if path else None)],
        "properties": properties,
        "_key": (finding.rule_id, path or "", member or ""),
    }
    if loc is not None and loc.offset is not None and path is not None:
        properties["byteOffset"] = loc.offset
        region = {"byteOffset": loc.offset}
        physical = {"artifactLocation": locator.artifact(path), "region": region}
        result["relatedLocations"] = [
            {"id": 1, "physicalLocation": physical, "message": {"text": f"byte {loc.offset}"}}
        ]
    waivers = [r for r in reasons if r.rule == _WAIVED]
    if waivers and properties["policyOutcome"] == "waived":
        result["suppressions"] = [
            {"kind": "external", "status": "accepted", "justification": _waiver_text(r)}
            for r in waivers
        ]
    return result


def _waiver_text(reason: Reason) -> str:
    return str(reason.details.get("reason") or reason.msg)


def _scope_note(text: str, path: str | None, shown: str | None, props: dict[str, Any]) -> str:
    """A result about the whole target says where it is shown, and why there."""
    if path is not None:
        props["scope"] = "file"
        return text
    props["scope"] = "target"
    where = shown if shown is not None else "the target root"
    return f"{text} [about the whole model; shown on {where}]"


def _reason_result(
    reason: Reason, locator: _Locator, anchor: str | None, files: set[str]
) -> dict[str, Any]:
    # A policy result that names a file of the target (a signature file) is shown there.
    named = [reason.details.get("file"), reason.details.get("signature")]
    path = next((p for p in named if isinstance(p, str) and p in files), None)
    properties: dict[str, Any] = {"policyOutcome": reason.level, "policyRule": True}
    shown = path if path is not None else anchor
    ident = [f"{k}={reason.details[k]}" for k in _IDENTIFYING if k in reason.details]
    return {
        "ruleId": reason.rule,
        "level": POLICY_LEVEL[reason.level],
        "message": {"text": _scope_note(reason.msg, path, shown, properties)},
        "locations": [_location(locator, shown, None)],
        "properties": properties,
        "_key": (reason.rule, path or "", ";".join(ident)),
    }


def _results(report: Report, locator: _Locator) -> list[dict[str, Any]]:
    """One result per finding, then one per policy result that no finding accounts for."""
    reasons = list(report.verdict.reasons) if report.verdict is not None else []
    anchor, files = _anchor_file(report), {entry.path for entry in report.files}
    used: set[int] = set()
    results = []
    for finding in report.findings:
        mine = [i for i, r in enumerate(reasons) if _refers_to(r, finding)]
        used.update(mine)
        results.append(_finding_result(finding, [reasons[i] for i in mine], locator, anchor))
    results += [
        _reason_result(r, locator, anchor, files) for i, r in enumerate(reasons) if i not in used
    ]
    return results


def _add_fingerprints(results: list[dict[str, Any]], identity: str) -> None:
    seen: Counter[str] = Counter()
    for result in results:
        digest = _fingerprint(identity, *result.pop("_key"))
        seen[digest] += 1
        result["partialFingerprints"] = {
            FINGERPRINT_KEY: digest,
            "primaryLocationLineHash": f"{digest[:16]}:{seen[digest]}",
        }


def _invocation(report: Report) -> dict[str, Any]:
    notes = [
        {
            "level": "error" if step.status is StepStatus.FAILED else "note",
            "message": {
                "text": f"step {step.name} {step.status.value}: {step.reason or 'no reason given'}"
            },
            "descriptor": {"id": step.name},
        }
        for step in report.steps
        if step.status is not StepStatus.COMPLETED
    ]
    invocation: dict[str, Any] = {
        "executionSuccessful": not any(s.status is StepStatus.FAILED for s in report.steps),
        "toolExecutionNotifications": notes,
    }
    if report.verdict is not None:
        decision = report.verdict.decision
        invocation["exitCode"] = int(ExitCode.of(decision.value))
        invocation["exitCodeDescription"] = decision.value
    return invocation


def _run_properties(report: Report, dropped: Counter[str]) -> dict[str, Any]:
    target = report.target
    properties: dict[str, Any] = {
        "reportSchemaVersion": report.schema_version,
        "target": {"name": target.name, "kind": target.kind.value},
        "truncated": {key: dropped[key] for key in ("results", "tags", "locations")},
    }
    if target.repo_id is not None:
        properties["target"]["repoId"] = target.repo_id
    if target.revision is not None:
        properties["target"]["revision"] = target.revision
    if report.verdict is not None:
        policy = report.verdict.policy
        properties["decision"] = report.verdict.decision.value
        properties["policy"] = {"packs": list(policy.packs), "digest": policy.digest}
        properties["policy"]["engine"] = f"{policy.engine} {policy.engine_version}"
    return properties


def _build_document(report: Report, base_dir: Path | None) -> dict[str, Any]:
    locator = _Locator(report, base_dir)
    dropped: Counter[str] = Counter()
    results = _results(report, locator)
    _add_fingerprints(results, _identity(report))
    results, dropped["results"], dropped["locations"] = truncate(results)
    rules, results, dropped["tags"] = rules_for(results)
    driver = {
        "name": "provscan",
        "semanticVersion": __version__,
        "version": __version__,
        "informationUri": PROJECT_URL,
        "rules": rules,
    }
    run: dict[str, Any] = {
        "tool": {"driver": driver},
        "automationDetails": {"id": f"provscan/{report.target.name}/"},
        "invocations": [_invocation(report)],
    }
    if locator.base_ids:
        run["originalUriBaseIds"] = locator.base_ids
    run["results"] = results
    run["properties"] = _run_properties(report, dropped)
    return {"$schema": SARIF_SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def render_sarif(report: Report, *, base_dir: Path | None = None) -> str:
    """The report as one SARIF 2.1.0 run; raises OutputError if it is not schema-valid.

    base_dir is the repository root code scanning resolves uris against (the CLI passes the
    working directory); a target outside it gets uris relative to a TARGETROOT base id.
    """
    text = json.dumps(_build_document(report, base_dir), indent=2, ensure_ascii=False)
    # A lone surrogate (from a file name that is not UTF-8) cannot be written as UTF-8;
    # as a JSON escape it can, and it reads back as the same string.
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    errors = validate_sarif(text)
    if errors:
        shown = "\n  ".join(errors[:_ERRORS_SHOWN])
        more = f"\n  ... and {len(errors) - _ERRORS_SHOWN} more" if errors[_ERRORS_SHOWN:] else ""
        raise OutputError(
            f"the SARIF 2.1.0 log provscan built is invalid and was not written:\n  {shown}{more}",
            remedy="this is a provscan bug; please report it together with the scan report JSON",
        )
    return text + "\n"
