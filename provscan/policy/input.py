"""The document the policy sees: the report, with every per-file list bounded.

A target of a million files would hand the policy engine a million file entries, a
million-path Hub record and, from hostile files, findings by the hundred thousand; the
embedded engine's time grows faster than the size of its input (20,000 files: 8 MB of
JSON, 11 s and 500 MB in the policy child). The policy sees instead:

- ``file_summary``: counts and bytes of all files, by format, by what was read and by where
  their SHA-256 comes from. ``files`` lists at most ``policy_max_files`` entries (the files
  not downloaded first, then in path order); ``file_summary.listed`` says how many.
- ``findings``: the ``policy_max_findings`` most severe findings one by one; the rest as one
  finding per (rule, severity) with ``evidence.not_listed`` = how many it stands for, and no
  location (so a path-scoped waiver never covers findings it cannot see: fail closed).
- Long path lists (a record's ``consistent`` / ``mismatched`` / ``not_compared``, a
  signature's ``changed`` / ``missing`` / ``extra`` / ``not_covered``, the model's
  ``weight_files``, the card's ``tags``) keep ``policy_max_list`` entries, with the full
  length beside them as ``<name>_count``. A signature's ``not_covered`` lists files a loader
  reads first, and says how many there are in all (``not_covered_loader_read_count``).
- No ``manifest`` (every hash is on its file entry) and no ``verdict``.

The report itself (JSON, SARIF, AI-BOM) keeps everything. The packs' rules read the counts,
never the length of a bounded list; see policies/default/README.md ("The policy input").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from provscan.limits import DEFAULT_LIMITS
from provscan.report import FileEntry, Finding, Report

_RECORD_LISTS = ("consistent", "mismatched", "not_compared")
_SIGNATURE_LISTS = ("changed", "missing", "extra")


def policy_caps(limits: Mapping[str, Any]) -> tuple[int, int, int]:
    """(files, findings, list entries) the policy input keeps: the scan's recorded limits,
    else the defaults. A report read back from disk cannot widen them past the defaults'
    ten-fold, whatever its parameters say."""

    def cap(name: str) -> int:
        default: int = getattr(DEFAULT_LIMITS, name)
        value = limits.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return default
        return min(value, 10 * default)

    return cap("policy_max_files"), cap("policy_max_findings"), cap("policy_max_list")


def bounded_policy_input(report: Report) -> dict[str, Any]:
    max_files, max_findings, max_list = policy_caps(report.parameters.limits)
    data: dict[str, Any] = report.model_dump(
        mode="json", exclude={"verdict", "manifest", "files", "findings"}
    )
    data["file_summary"] = file_summary(report.files, max_files)
    data["files"] = [entry.model_dump(mode="json") for entry in _listed(report.files, max_files)]
    data["findings"] = bounded_findings(report.findings, max_findings)
    for record in data["records"]:
        for name in _RECORD_LISTS:
            _cap(record, name, max_list)
    if data.get("signatures") is not None:
        for check in data["signatures"]["signatures"]:
            for name in _SIGNATURE_LISTS:
                _cap(check, name, max_list)
            uncovered = check["not_covered"]
            check["not_covered_loader_read_count"] = sum(1 for e in uncovered if e["loader_read"])
            # Files a loader reads first: they are what POL-SIG-NOT-COVERED names one by one.
            check["not_covered"] = sorted(uncovered, key=lambda e: not e["loader_read"])
            _cap(check, "not_covered", max_list)
    if data.get("model") is not None:
        _cap(data["model"], "weight_files", max_list)
    if data.get("card") is not None:
        _cap(data["card"], "tags", max_list)
    return data


def _cap(obj: dict[str, Any], name: str, most: int) -> None:
    values = obj[name]
    obj[f"{name}_count"] = len(values)
    obj[name] = values[:most]


def _listed(files: Iterable[FileEntry], most: int) -> list[FileEntry]:
    """The files listed one by one: those whose hash is only the Hub's record first (the
    Hub rule names them), then the rest, each group in the report's (path) order."""
    remote = [f for f in files if f.sha256_source == "hub-recorded" or f.read != "whole"]
    local = [f for f in files if not (f.sha256_source == "hub-recorded" or f.read != "whole")]
    return (remote + local)[:most]


def file_summary(files: tuple[FileEntry, ...], max_files: int) -> dict[str, Any]:
    hub_recorded = [f for f in files if f.sha256_source == "hub-recorded"]
    return {
        "count": len(files),
        "listed": min(len(files), max_files),
        "bytes": sum(f.size for f in files),
        "by_format": dict(Counter(f.format.value for f in files)),
        "by_role": dict(Counter(f.role.value for f in files)),
        "by_read": dict(Counter(f.read for f in files)),
        "by_sha256_source": dict(Counter(f.sha256_source for f in files)),
        "hub_recorded": {"count": len(hub_recorded), "bytes": sum(f.size for f in hub_recorded)},
    }


def bounded_findings(findings: tuple[Finding, ...], most: int) -> list[dict[str, Any]]:
    """The ``most`` most severe findings as they are; the rest one per (rule, severity).

    The report orders findings most severe first already; sorting again keeps that true for
    a report read back from disk."""
    ordered = sorted(findings, key=lambda f: -f.severity.rank)
    kept = [f.model_dump(mode="json") for f in ordered[:most]]
    rest: dict[tuple[str, str], list[Finding]] = {}
    for finding in ordered[most:]:
        rest.setdefault((finding.rule_id, finding.severity.value), []).append(finding)
    for (rule_id, severity), group in rest.items():
        paths = sorted({f.location.path for f in group if f.location and f.location.path})
        shown = ", ".join(paths[:3]) + (
            f" and {len(paths) - 3} more files" if len(paths) > 3 else ""
        )
        where = f" ({shown})" if shown else ""
        kept.append(
            {
                "rule_id": rule_id,
                "severity": severity,
                "message": f"{len(group)} more {rule_id} findings{where}, past the "
                f"{most} findings the policy sees one by one: see the report for each",
                "location": None,
                "evidence": {"not_listed": len(group), "files": len(paths)},
            }
        )
    return kept
