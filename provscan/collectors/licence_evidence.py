"""Which licences do the target's licence texts identify, and which are changed or unknown?

A licence split over several files (sections 1-3 in LICENSE, the rest in LICENSE-2) is
identified from the files' texts put together when no single one is identified.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath

from provscan.collectors.licence_sources import LicenceText, find_licence_texts
from provscan.collectors.licence_text import TextIdentity, TextMatch, identify
from provscan.files import SniffedFile
from provscan.report import Finding, LicenceEvidence, Severity, file_finding, target_finding

# Licence texts put together when none of them is identified alone.
_RECOMBINE_MAX = 6


def licence_text_evidence(
    files: Sequence[SniffedFile],
) -> tuple[list[LicenceEvidence], list[Finding]]:
    """Evidence and findings from every licence text in the target. Never raises: a failure
    on one file is a finding naming it."""
    evidence: list[LicenceEvidence] = []
    findings: list[Finding] = []
    try:
        texts, read_findings = find_licence_texts(files)
    except Exception as exc:  # noqa: BLE001 - a scan must go on with its other findings
        findings.append(
            target_finding(
                "LIC-FILE-UNREADABLE",
                Severity.HIGH,
                f"licence files not read ({type(exc).__name__}: {exc}); their terms are unknown",
            )
        )
        return evidence, findings
    findings.extend(read_findings)
    identities: dict[str, TextIdentity] = {}
    for item in texts:
        try:
            identities[item.rel] = identify(item.text)
        except Exception as exc:  # noqa: BLE001
            findings.append(
                file_finding(
                    "LIC-FILE-UNREADABLE",
                    Severity.HIGH,
                    item.rel,
                    f"{item.rel}: licence text could not be compared ({type(exc).__name__})",
                )
            )
    try:
        combined = _recombine(texts, identities)
    except Exception:  # noqa: BLE001 - each part is still reported on its own
        combined = {}
    for item in texts:
        identity = identities.get(item.rel)
        if identity is None:
            continue
        recombined = combined.get(item.rel)
        if recombined is not None:
            if recombined[0] == item.rel:  # report the whole once, on its first part
                _report(item.rel, recombined[2], evidence, findings, parts=recombined[1])
            continue
        _report(item.rel, identity, evidence, findings)
    return evidence, findings


def _licence_match(identity: TextIdentity) -> TextMatch | None:
    return next((m for m in identity.matches if m.kind == "licence"), None)


def _quality(identity: TextIdentity) -> tuple[bool, int, float]:
    """Identified as a licence at all, then fewer changed clauses, then a higher score."""
    match = _licence_match(identity)
    if match is None:
        return (False, 0, 0.0)
    return (True, -len(match.modified), match.score or 0.0)


def _recombine(
    texts: Sequence[LicenceText], identities: dict[str, TextIdentity]
) -> dict[str, tuple[str, tuple[str, ...], TextIdentity]]:
    """Texts that identify a licence only together: {part: (first part, parts, identity)}."""
    incomplete = [
        t
        for t in texts
        if t.rel in identities
        and (
            not identities[t.rel].matches
            or any(m.modified for m in identities[t.rel].matches if m.kind == "licence")
        )
    ]
    if len(incomplete) < 2:
        return {}
    groups: dict[str, list[LicenceText]] = {}
    for item in incomplete:
        groups.setdefault(str(PurePosixPath(item.rel).parent), []).append(item)
    candidates = [g for g in groups.values() if len(g) >= 2]
    if len(groups) > 1:
        candidates.append(incomplete)  # the parts may sit in different folders
    out: dict[str, tuple[str, tuple[str, ...], TextIdentity]] = {}
    for group in candidates:
        parts = sorted(group, key=lambda t: t.rel)[:_RECOMBINE_MAX]
        if any(p.rel in out for p in parts):
            continue
        identity = identify("\n\n".join(p.text for p in parts))
        whole = _licence_match(identity)
        if whole is None or _quality(identity) <= max(_quality(identities[p.rel]) for p in parts):
            continue
        names = tuple(p.rel for p in parts)
        for p in parts:
            out[p.rel] = (names[0], names, identity)
    return out


def _report(
    rel: str,
    identity: TextIdentity,
    evidence: list[LicenceEvidence],
    findings: list[Finding],
    parts: tuple[str, ...] = (),
) -> None:
    value = identity.title
    if parts:
        value = f"{value} (one text split over {', '.join(parts)})"
    for match in identity.matches:
        changed = tuple(c.describe() for c in match.modified)
        evidence.append(
            LicenceEvidence(
                source="file",
                path=rel,
                value=value,
                key=match.key,
                kind=match.kind,  # type: ignore[arg-type]  # a LicenceKind from the knowledge base
                score=match.score,
                sha256=identity.sha256,
                modified_clauses=changed,
            )
        )
        if changed:
            where = f"{rel} (with {', '.join(parts[1:])})" if parts else rel
            findings.append(
                file_finding(
                    "LIC-TEXT-MODIFIED",
                    Severity.HIGH,
                    rel,
                    f"{where}: the text is the {match.key} {match.kind} with clauses missing or "
                    f"changed: {'; '.join(changed)}; the licensor's terms still bind, so it is "
                    f"read as {match.key}",
                    key=match.key,
                    score=match.score,
                    sha256=identity.sha256,
                    clauses=[
                        {"clause": c.label, "status": c.status, "share": c.share}
                        for c in match.modified
                    ],
                    parts=list(parts),
                )
            )
    if not identity.matches:
        evidence.append(
            LicenceEvidence(source="file", path=rel, value=value, sha256=identity.sha256)
        )
        findings.append(
            file_finding(
                "LIC-TEXT-UNKNOWN",
                Severity.HIGH,
                rel,
                f"{rel}: licence text not identified (sha256 {identity.sha256[:16]}..., "
                f"begins {identity.title[:60]!r}); a person must read its terms",
                sha256=identity.sha256,
                title=identity.title,
            )
        )
