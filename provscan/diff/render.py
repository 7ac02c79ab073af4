"""How does a diff read, for a person (text) and for a program (JSON)?

The JSON document (DIFF_SCHEMA_VERSION):

    {"schema_version": "1.0.0", "material": bool, "changed": bool, "complete": bool,
     "old": SIDE, "new": SIDE,
     "sections": {"target" | "files" | "licences" | "lineage" | "findings" | "signatures" |
                  "verdict" | "model" | "probes" | "steps":
                  {"compared": bool, "material": bool, "reason": str | null,
                   "changes": [{"change": "added" | "removed" | "changed", "subject": str,
                                "material": bool, "old": VALUE, "new": VALUE}]}}}
    SIDE = {"path", "kind": "report" | "bom", "tool_version", "scanned_at",
            "target": {"name", "revision", "purl", "manifest_digest"}}

Every section is present, in that order; changes are sorted by subject. For findings,
"added" is a new finding and "removed" a resolved one.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from provscan.diff.changes import DIFF_SCHEMA_VERSION, Change, ChangeKind, Diff, SectionDiff
from provscan.diff.snapshot import Section, Snapshot
from provscan.visible import visible

_MARK = {ChangeKind.ADDED: "+", ChangeKind.REMOVED: "-", ChangeKind.CHANGED: "~"}
_FINDING_MARK = {ChangeKind.ADDED: "new", ChangeKind.REMOVED: "resolved", ChangeKind.CHANGED: "~"}
# Names come from hostile files; a terminal line shows this much of one value.
_VALUE_MAX = 200


def to_json(diff: Diff) -> dict[str, Any]:
    return {
        "schema_version": DIFF_SCHEMA_VERSION,
        "material": diff.material,
        "changed": diff.changed,
        "complete": diff.complete,
        "old": _side(diff.old),
        "new": _side(diff.new),
        "sections": {s.section.value: _section_json(s) for s in diff.sections},
    }


def render_json(diff: Diff) -> str:
    # ASCII only: control and bidi characters in hostile names arrive escaped.
    return json.dumps(to_json(diff), indent=2, ensure_ascii=True) + "\n"


def _side(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "path": snapshot.path,
        "kind": snapshot.kind.value,
        "tool_version": snapshot.tool_version,
        "scanned_at": snapshot.scanned_at,
        "target": asdict(snapshot.target),
    }


def _section_json(section: SectionDiff) -> dict[str, Any]:
    return {
        "compared": section.compared,
        "material": section.material,
        "reason": section.reason,
        "changes": [
            {
                "change": c.kind.value,
                "subject": c.subject,
                "material": c.material,
                "old": c.old,
                "new": c.new,
            }
            for c in section.changes
        ],
    }


def render_text(diff: Diff) -> str:
    lines = ["provscan diff", _side_line("old", diff.old), _side_line("new", diff.new)]
    for section in diff.sections:
        if section.changes:
            lines += ["", _heading(section)]
            lines += [line for change in section.changes for line in _change_lines(section, change)]
    skipped = [s for s in diff.sections if not s.compared]
    if skipped:
        lines += ["", "NOT COMPARED"]
        lines += [f"  {s.section.value}: {s.reason}" for s in skipped]
    lines += ["", _summary(diff)]
    return "\n".join(clean(line) for line in lines) + "\n"


def _side_line(label: str, snap: Snapshot) -> str:
    details = [snap.kind.value, snap.path]
    if snap.tool_version:
        details.append(f"provscan {snap.tool_version}")
    if snap.scanned_at:
        details.append(f"scanned {snap.scanned_at}")
    return f"  {label}  {_short(snap.target.name)}  ({'; '.join(_short(d) for d in details)})"


def _heading(section: SectionDiff) -> str:
    return section.section.value.upper() + ("  (material)" if section.material else "")


def _change_lines(section: SectionDiff, change: Change) -> list[str]:
    note = "" if change.material else "  (not material)"
    if section.section is Section.FINDINGS:
        return [_finding_line(change) + note]
    mark = _MARK[change.kind]
    if change.kind is ChangeKind.CHANGED and isinstance(change.old, dict):
        lines = [f"  {mark} {_short(change.subject)}{note}"]
        for key, before in change.old.items():
            after = change.new.get(key) if isinstance(change.new, dict) else None
            if before != after:
                lines.append(f"      {key}: {_short(before)} -> {_short(after)}")
        return lines
    if change.kind is ChangeKind.CHANGED:
        return [f"  {mark} {change.subject}: {_short(change.old)} -> {_short(change.new)}{note}"]
    value = change.new if change.kind is ChangeKind.ADDED else change.old
    # The subject already names the thing (a path, a rule, a licence key): show the rest.
    detail = _details(value, skip={"base", "key", "standing", "rule", "level"})
    return [f"  {mark} {_short(change.subject)}{f'  ({detail})' if detail else ''}{note}"]


def _finding_line(change: Change) -> str:
    value = change.new if change.new is not None else change.old
    assert isinstance(value, dict)
    label = _FINDING_MARK[change.kind]
    count = f" x{value['count']}" if value["count"] > 1 else ""
    if change.kind is ChangeKind.CHANGED:
        old = change.old
        assert isinstance(old, dict)
        count = f" x{old['count']} -> x{value['count']}"
        if old["severity"] != value["severity"]:
            label = f"{old['severity']} ->"
    return (
        f"  {label} {value['severity']} {_short(change.subject)}{count}: {_short(value['message'])}"
    )


def _details(value: Any, skip: set[str]) -> str:
    if not isinstance(value, dict):
        return ""
    shown = [(k, v) for k, v in value.items() if v is not None and k not in skip]
    return ", ".join(_short(v) if k == "label" else f"{k} {_short(v)}" for k, v in shown)


def _summary(diff: Diff) -> str:
    material = [s.section.value for s in diff.sections if s.material]
    if material:
        return f"RESULT: material change ({', '.join(material)})"
    listed = sum(len(s.changes) for s in diff.sections)
    tail = f"; {listed} change(s) listed, none material" if listed else ""
    if not diff.complete:
        skipped = ", ".join(s.section.value for s in diff.sections if not s.compared)
        return (
            f"RESULT: no material change in the sections compared (not compared: {skipped}){tail}"
        )
    return f"RESULT: no material change{tail}"


def _short(value: Any) -> str:
    text = "none" if value is None else str(value)
    return text if len(text) <= _VALUE_MAX else text[: _VALUE_MAX - 3] + "..."


def clean(text: str) -> str:
    """The text as the terminal may show it: hidden characters written out (provscan.visible)."""
    return visible(text)
