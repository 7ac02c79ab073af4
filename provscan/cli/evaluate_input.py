"""Which scan report does an input to `provscan evaluate` hold, and may this provscan judge it?

An input is a provscan JSON report (`check --json`) or an AI-BOM provscan wrote (`check --bom`,
which carries the report in a data component: provscan/emit/bom/report.py). Every input
is hostile until shown otherwise: read bounded, parsed without repeated keys or deep nesting
(provscan.diff.load), its schema version checked before the typed model sees it, and a BOM's
embedded report compared with what the BOM itself claims.

Two kinds of failure, told apart because they call for different things:

- `Refused` (the command stops, exit 2): an input this provscan must not judge at all. A report
  schema of another major version or a newer minor (its facts may mean something this policy
  does not know), a BOM without an embedded report (another tool's, or one written before
  provscan embedded it), a JSON document that is neither a report nor a BOM.
- `Damaged` (that input's row is an error, exit 3; the others go on): a file that should be a
  provscan report but cannot be read as one: unreadable, not JSON, too large or too deep, a
  report that does not validate, a BOM whose embedded report contradicts the BOM.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provscan.diff.fields import BadInput, obj, opt_arr, opt_obj, text
from provscan.diff.load import detect_kind, parse_json, read_bounded, schema_version_parts
from provscan.diff.snapshot import InputKind

if TYPE_CHECKING:
    from provscan.report import Report

_SHOWN = 200  # characters of a validation error's location or message


class Refused(Exception):
    """This provscan must not judge the input at all (exit 2 for the whole command)."""


class Damaged(Exception):
    """The input cannot be read as a provscan report (an error row, exit 3)."""


@dataclass(frozen=True)
class Evidence:
    """A report to decide again. older: written with an older minor schema than this
    provscan's, so facts added since are absent (the policy sees their defaults)."""

    report: Report
    schema_version: str
    older: bool


def load_evidence(path: Path) -> Evidence:
    """The report `path` holds; Refused or Damaged (messages without the path) when not."""
    try:
        document = parse_json(read_bounded(path))
    except BadInput as exc:
        raise Damaged(str(exc)) from exc
    try:
        kind = detect_kind(document)
    except BadInput as exc:
        raise Refused(str(exc)) from exc
    if kind is InputKind.BOM:
        bom: dict[str, Any] = document
        document = _embedded_report(bom)
    top = _object(document, "the report")
    version, older = check_schema_version(top.get("schema_version"))
    if older:
        top = _upgrade(top)
    report = _validate(top, version)
    if kind is InputKind.BOM:
        _check_bom_claims(bom, report)
    return Evidence(report=report, schema_version=version, older=older)


def check_schema_version(value: Any) -> tuple[str, bool]:
    """(the version, whether its minor is older than this provscan's); Refused unless it
    has this provscan's major and a minor no newer than its own."""
    from provscan.report import SCHEMA_VERSION

    major, minor, _ = schema_version_parts(SCHEMA_VERSION, "SCHEMA_VERSION")
    reads = f"this provscan reads {major}.x up to {major}.{minor}"
    if not isinstance(value, str):
        raise Refused(f"schema_version is missing or not a string; {reads}")
    try:
        found_major, found_minor, _ = schema_version_parts(value, "schema_version")
    except BadInput as exc:
        raise Refused(f"{exc}; {reads}") from exc
    if found_major != major:
        who = "a newer provscan" if found_major > major else "an older provscan"
        raise Refused(f"written by {who} (schema {value}); {reads}")
    if found_minor > minor:
        raise Refused(f"written by a newer provscan (schema {value}); {reads}")
    return value, found_minor < minor


def _object(value: Any, where: str) -> dict[str, Any]:
    try:
        return obj(value, where)
    except BadInput as exc:
        raise Damaged(str(exc)) from exc


def _embedded_report(bom: dict[str, Any]) -> Any:
    """The report JSON in the BOM's data component; Refused when the BOM carries none."""
    from provscan.emit.bom.report import CONTENT_TYPE, REPORT_REF, sha256_text

    try:
        found = [
            item
            for item in opt_arr(bom.get("components"), "components")
            if isinstance(item, dict) and item.get("bom-ref") == REPORT_REF
        ]
        if not found:
            raise Refused(
                "an AI-BOM without an embedded provscan report (not written by "
                "`provscan check --bom`, or by a provscan older than this command); "
                "give its JSON report (--json) instead"
            )
        if len(found) > 1:
            raise BadInput(f"{len(found)} components have bom-ref {REPORT_REF!r}")
        component = found[0]
        data = opt_arr(component.get("data"), f"component {REPORT_REF}.data")
        if len(data) != 1:
            raise BadInput(f"component {REPORT_REF}: expected one data entry, found {len(data)}")
        contents = opt_obj(obj(data[0], "data[0]").get("contents"), "data[0].contents") or {}
        attachment = obj(contents.get("attachment"), "data[0].contents.attachment")
        if attachment.get("contentType") != CONTENT_TYPE or "encoding" in attachment:
            raise BadInput(f"the embedded report is not plain {CONTENT_TYPE}")
        content = text(attachment.get("content"), "data[0].contents.attachment.content")
        hashes = [
            obj(entry, "hashes[]")
            for entry in opt_arr(component.get("hashes"), f"component {REPORT_REF}.hashes")
        ]
        digests = {entry.get("content") for entry in hashes if entry.get("alg") == "SHA-256"}
        if digests != {sha256_text(content)}:
            raise BadInput("the embedded report's SHA-256 does not match the component's hashes")
        return parse_json(content)
    except BadInput as exc:
        raise Damaged(f"AI-BOM: {exc}") from exc


def _upgrade(top: dict[str, Any]) -> dict[str, Any]:
    """An older minor's report in today's shape, where a field's type changed since.

    1.4.0 made a signature's `not_covered` a list of objects (path, role, reason,
    loader_read); 1.3.0 listed paths, each left out by the signature's ignore paths. A path
    becomes reason "ignored", its role from the file list, and loader_read true: what
    cannot be known reads as read by a loader (fail closed).
    """
    signatures = top.get("signatures")
    if not isinstance(signatures, dict) or not isinstance(signatures.get("signatures"), list):
        return top
    files = top.get("files")
    files = files if isinstance(files, list) else []
    roles = {
        f["path"]: f.get("role")
        for f in files
        if isinstance(f, dict) and isinstance(f.get("path"), str)
    }
    checks = []
    for check in signatures["signatures"]:
        paths = check.get("not_covered") if isinstance(check, dict) else None
        if isinstance(paths, list) and all(isinstance(p, str) for p in paths):
            uncovered = [
                {"path": p, "role": roles.get(p, "other"), "reason": "ignored", "loader_read": True}
                for p in paths
            ]
            check = {**check, "not_covered": uncovered}
        checks.append(check)
    return {**top, "signatures": {**signatures, "signatures": checks}}


def _validate(top: dict[str, Any], version: str) -> Report:
    from pydantic import ValidationError

    from provscan.report import Report

    try:
        return Report.model_validate(top)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"])[:_SHOWN] or "the report"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise Damaged(
            f"not a valid schema {version} report: {where}: {str(first['msg'])[:_SHOWN]}{more}"
        ) from exc


def _check_bom_claims(bom: dict[str, Any], report: Report) -> None:
    """The embedded report says what the BOM around it says: the schema version, the
    model's digest, each file's SHA-256 and the verdict. Cheap checks against a careless
    edit of one of the two; a BOM signature (sign-bom, verify-bom) is what proves neither
    was changed."""
    from provscan.diff import bom_parts

    try:
        metadata = opt_obj(bom.get("metadata"), "metadata") or {}
        meta = bom_parts.properties(metadata.get("properties"), "metadata.properties")
        model = bom_parts.model_component(bom)
        props = bom_parts.properties(model.get("properties"), "the model's properties")
        claimed_files = {
            text(c.get("name"), "file name"): bom_parts.sha256_of(c, "file")
            for c in (obj(item, "file") for item in opt_arr(model.get("components"), "files"))
        }
        model_digest = bom_parts.sha256_of(model, "the model")
    except BadInput as exc:
        raise Damaged(f"AI-BOM: {exc}") from exc
    differ = []
    if meta.get("provscan:report:schema_version") != report.schema_version:
        differ.append("schema version")
    root = report.manifest.root_digest if report.manifest is not None else None
    if model_digest != root:
        differ.append("model digest")
    if claimed_files != {f.path: f.sha256 for f in report.files}:
        differ.append("files or their SHA-256")
    decision = report.verdict.decision.value if report.verdict is not None else None
    if props.get("provscan:verdict") != decision:
        differ.append("verdict")
    if differ:
        raise Damaged(
            "AI-BOM: the embedded report does not match the BOM's own "
            + ", ".join(differ)
            + "; one of them was changed after provscan wrote it"
        )
