"""What changed between two snapshots of a model, and does any of it matter?

Materiality, the rule behind `provscan diff`'s exit code:

- material: a file added or removed, or a file whose SHA-256 (or size) changed; a licence
  key added to or removed from concluded, declared or inherited; a base model added or
  removed, a base model's relation changed, a lineage root added or removed; a new finding,
  one seen more often, or one whose severity rose; a signature added or removed, or its
  status, integrity or signer changed; the verdict's decision changed, or a policy reason
  (rule and level) added; a step that no longer completes; a new confirmed probe trigger.
- listed, not material: resolved findings and policy reasons that went away; a file's
  format or role alone; the model's name, revision, purl or manifest digest (the files say
  what changed); model facts (derived from the files); the policy digest; probe run details;
  a different order of base models.
- ignored: timestamps (`scanned_at`, `metadata.timestamp`), `serialNumber`, tool version,
  order of files, findings, licences and properties, finding messages and offsets.

A section either input does not record is not compared, and the diff says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any, TypeVar

from provscan.diff.changes import Change, ChangeKind, Diff, SectionDiff
from provscan.diff.findings import severity_rank
from provscan.diff.snapshot import (
    FileFacts,
    FindingGroup,
    FindingKey,
    Section,
    SignatureFacts,
    Snapshot,
)

K = TypeVar("K")
V = TypeVar("V")


def compare(old: Snapshot, new: Snapshot) -> Diff:
    sections = tuple(_section(section, old, new) for section in Section)
    return Diff(old=old, new=new, sections=sections)


def _section(section: Section, old: Snapshot, new: Snapshot) -> SectionDiff:
    gaps = [
        f"{side} ({snap.kind.value}): {snap.missing[section]}"
        for side, snap in (("OLD", old), ("NEW", new))
        if section in snap.missing
    ]
    if gaps:
        return SectionDiff(section, compared=False, reason="; ".join(gaps))
    return SectionDiff(section, compared=True, changes=tuple(_COMPARERS[section](old, new)))


def _keyed(
    old: Mapping[K, V],
    new: Mapping[K, V],
    subject: Callable[[K], str],
    value: Callable[[K, V], Any],
    material: Callable[[V, V], bool],
) -> list[Change]:
    """Added, removed and changed entries of two mappings, sorted by subject."""
    changes = [
        Change(ChangeKind.ADDED, subject(k), True, None, value(k, v))
        for k, v in new.items()
        if k not in old
    ]
    changes += [
        Change(ChangeKind.REMOVED, subject(k), True, value(k, v), None)
        for k, v in old.items()
        if k not in new
    ]
    changes += [
        Change(ChangeKind.CHANGED, subject(k), material(v, new[k]), value(k, v), value(k, new[k]))
        for k, v in old.items()
        if k in new and v != new[k]
    ]
    return sorted(changes, key=lambda c: (c.subject, c.kind.value))


def _fields(old: object, new: object, names: tuple[str, ...], material: bool) -> list[Change]:
    return [
        Change(ChangeKind.CHANGED, name, material, getattr(old, name), getattr(new, name))
        for name in names
        if getattr(old, name) != getattr(new, name)
    ]


def _target(old: Snapshot, new: Snapshot) -> list[Change]:
    names = ("name", "revision", "purl", "manifest_digest")
    return _fields(old.target, new.target, names, material=False)


def _file_changed(old: FileFacts, new: FileFacts) -> bool:
    return old.sha256 != new.sha256 or old.size != new.size


def _files(old: Snapshot, new: Snapshot) -> list[Change]:
    return _keyed(old.files, new.files, str, lambda _k, v: asdict(v), _file_changed)


def _licences(old: Snapshot, new: Snapshot) -> list[Change]:
    assert old.licences is not None and new.licences is not None
    labels = dict(old.licences.labels) | dict(new.licences.labels)
    changes: list[Change] = []
    for standing in ("concluded", "declared", "inherited"):
        before: frozenset[str] = getattr(old.licences, standing)
        after: frozenset[str] = getattr(new.licences, standing)
        for key in sorted(after - before):
            changes.append(_licence_change(ChangeKind.ADDED, standing, key, labels))
        for key in sorted(before - after):
            changes.append(_licence_change(ChangeKind.REMOVED, standing, key, labels))
    return changes


def _licence_change(kind: ChangeKind, standing: str, key: str, labels: Mapping[str, str]) -> Change:
    value = {"standing": standing, "key": key, "label": labels.get(key)}
    added = kind is ChangeKind.ADDED
    return Change(
        kind, f"{standing} {key}", True, None if added else value, value if added else None
    )


def _lineage(old: Snapshot, new: Snapshot) -> list[Change]:
    before = {a.base: a.relation for a in old.lineage.ancestors}
    after = {a.base: a.relation for a in new.lineage.ancestors}
    changes = _keyed(
        before,
        after,
        str,
        lambda base, relation: {"base": base, "relation": relation},
        lambda _o, _n: True,
    )
    changes += [
        Change(ChangeKind.ADDED, f"root {root}", True, None, root)
        for root in sorted(new.lineage.roots - old.lineage.roots)
    ]
    changes += [
        Change(ChangeKind.REMOVED, f"root {root}", True, root, None)
        for root in sorted(old.lineage.roots - new.lineage.roots)
    ]
    old_order = [a.base for a in old.lineage.ancestors if a.base in after]
    new_order = [a.base for a in new.lineage.ancestors if a.base in before]
    if old_order != new_order:
        changes.append(Change(ChangeKind.CHANGED, "order", False, old_order, new_order))
    return changes


def _finding_subject(key: FindingKey) -> str:
    where = key.path + (f"!{key.member}" if key.member else "")
    return f"{key.rule_id} {where}".strip()


def _finding_value(key: FindingKey, group: FindingGroup) -> dict[str, Any]:
    return {
        "rule_id": key.rule_id,
        "path": key.path or None,
        "member": key.member or None,
        "severity": group.severity,
        "count": group.count,
        "message": group.message,
    }


def _finding_worse(old: FindingGroup, new: FindingGroup) -> bool:
    return new.count > old.count or severity_rank(new.severity) > severity_rank(old.severity)


def _findings(old: Snapshot, new: Snapshot) -> list[Change]:
    before, after = old.findings, new.findings
    assert before is not None and after is not None
    changes = [
        Change(ChangeKind.ADDED, _finding_subject(k), True, None, _finding_value(k, g))
        for k, g in after.items()
        if k not in before
    ]
    # Resolved is good news: listed, never material on its own.
    changes += [
        Change(ChangeKind.REMOVED, _finding_subject(k), False, _finding_value(k, g), None)
        for k, g in before.items()
        if k not in after
    ]
    # A reworded message is the same finding: only count and severity can change it.
    changes += [
        Change(
            ChangeKind.CHANGED,
            _finding_subject(k),
            _finding_worse(g, after[k]),
            _finding_value(k, g),
            _finding_value(k, after[k]),
        )
        for k, g in before.items()
        if k in after and (g.count, g.severity) != (after[k].count, after[k].severity)
    ]
    return sorted(changes, key=lambda c: (c.subject, c.kind.value))


def _signatures(old: Snapshot, new: Snapshot) -> list[Change]:
    assert old.signatures is not None and new.signatures is not None

    def value(_path: str, facts: SignatureFacts) -> dict[str, Any]:
        return asdict(facts)

    return _keyed(old.signatures, new.signatures, str, value, lambda _o, _n: True)


def _verdict(old: Snapshot, new: Snapshot) -> list[Change]:
    before, after = old.verdict, new.verdict
    decision = (before.decision if before else None, after.decision if after else None)
    changes = []
    if decision[0] != decision[1]:
        changes.append(Change(ChangeKind.CHANGED, "decision", True, decision[0], decision[1]))
    reasons_before = {(r.level, r.rule): r for r in before.reasons} if before else {}
    reasons_after = {(r.level, r.rule): r for r in after.reasons} if after else {}
    reasons = _keyed(
        reasons_before,
        reasons_after,
        lambda k: f"{k[0]} {k[1]}",
        lambda _k, r: asdict(r),
        lambda _o, _n: False,
    )
    changes += [
        Change(c.kind, c.subject, c.kind is ChangeKind.ADDED, c.old, c.new) for c in reasons
    ]
    digests = (before.policy_digest if before else None, after.policy_digest if after else None)
    if digests[0] != digests[1]:
        changes.append(Change(ChangeKind.CHANGED, "policy_digest", False, *digests))
    return changes


def _model(old: Snapshot, new: Snapshot) -> list[Change]:
    names = tuple(asdict(old.model))
    return _fields(old.model, new.model, names, material=False)


def _probes(old: Snapshot, new: Snapshot) -> list[Change]:
    before, after = old.probes, new.probes
    if before is None or after is None:
        if before == after:
            return []
        ran = "not run" if before is None else before.suite
        now = "not run" if after is None else after.suite
        confirmed = after is not None and any(c.status == "confirmed" for c in after.candidates)
        return [Change(ChangeKind.CHANGED, "run", confirmed, ran, now)]
    changes = _fields(before, after, ("suite", "engine", "partial"), material=False)
    candidates = _keyed(
        {c: c for c in before.candidates},
        {c: c for c in after.candidates},
        lambda c: f"{c.status} {c.family}: {c.trigger or '(no trigger)'}",
        lambda _k, c: asdict(c),
        lambda _o, _n: False,
    )
    changes += [Change(c.kind, c.subject, _confirmed(c), c.old, c.new) for c in candidates]
    return changes


def _confirmed(change: Change) -> bool:
    """A trigger the probes newly confirmed (its PRB finding says so too, when compared)."""
    return change.kind is ChangeKind.ADDED and change.new["status"] == "confirmed"


def _steps(old: Snapshot, new: Snapshot) -> list[Change]:
    changes = _keyed(old.steps, new.steps, str, lambda _k, v: v, lambda _o, n: n != "completed")
    # A step that is gone, or no longer completes, is evidence lost; one that appears and
    # completes is not.
    return [
        Change(
            c.kind, c.subject, c.kind is ChangeKind.REMOVED or c.new != "completed", c.old, c.new
        )
        for c in changes
    ]


_COMPARERS: dict[Section, Callable[[Snapshot, Snapshot], list[Change]]] = {
    Section.TARGET: _target,
    Section.FILES: _files,
    Section.LICENCES: _licences,
    Section.LINEAGE: _lineage,
    Section.FINDINGS: _findings,
    Section.SIGNATURES: _signatures,
    Section.VERDICT: _verdict,
    Section.MODEL: _model,
    Section.PROBES: _probes,
    Section.STEPS: _steps,
}
