"""Which findings does a scan record, keyed so that the same finding matches across two scans?

A finding is keyed by rule id, file and archive member: its message and offset can change
with the tool's wording or a rebuilt file while it is still the same problem.
"""

from __future__ import annotations

from typing import Any

from provscan.diff.fields import BadInput, opt_obj, opt_text, text
from provscan.diff.snapshot import FindingGroup, FindingKey
from provscan.report import Severity

_SEVERITIES = frozenset(severity.value for severity in Severity)


def severity_rank(severity: str) -> int:
    """How severe a recorded severity (info .. critical) is: higher is worse."""
    return Severity(severity).rank


def add_finding(
    findings: dict[FindingKey, FindingGroup], finding: dict[str, Any], where: str
) -> None:
    """Count one finding (a report's `findings[]` entry, as JSON) under its key."""
    severity = text(finding.get("severity"), f"{where}.severity")
    if severity not in _SEVERITIES:
        raise BadInput(f"{where}.severity: {severity[:40]!r} is not a provscan severity")
    location = opt_obj(finding.get("location"), f"{where}.location") or {}
    key = FindingKey(
        rule_id=text(finding.get("rule_id"), f"{where}.rule_id"),
        path=opt_text(location.get("path"), f"{where}.location.path") or "",
        member=opt_text(location.get("member"), f"{where}.location.member") or "",
    )
    message = text(finding.get("message"), f"{where}.message")
    seen = findings.get(key)
    if seen is None:
        findings[key] = FindingGroup(count=1, severity=severity, message=message)
        return
    worst = max(seen.severity, severity, key=severity_rank)
    findings[key] = FindingGroup(count=seen.count + 1, severity=worst, message=seen.message)
