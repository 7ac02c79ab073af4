"""What was scanned, is it what the signer signed, and what did the scanners find?"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

from provscan.emit.audit.model import Block, Cell, Facts, Para, Section, Sub, Table, Tone
from provscan.emit.audit.text import (
    MAX_EVIDENCE,
    MAX_ROWS,
    capped,
    left_out,
    line,
    names,
)
from provscan.emit.sizes import human_size
from provscan.report import (
    SEVERITY_ORDER,
    FileEntry,
    Finding,
    Location,
    Report,
    SignatureCheck,
    Signer,
)
from provscan.signing.label import files_match_signed

# Serialization first: code that runs on load is the worst thing a model file can hold.
_AREAS = (
    ("SER", "Serialization"),
    ("SIG", "Signatures"),
    ("HSH", "Hashing"),
    ("INV", "Inventory"),
    ("LIC", "Licence"),
    ("ORG", "Origin"),
    ("PRB", "Probes"),
    ("POL", "Policy"),
)
_SEVERITY_TONE: dict[str, Tone] = {"critical": "bad", "high": "bad", "medium": "warn"}
_STATUS_TONE: dict[str, Tone] = {"verified": "good", "unverified": "warn"}


def files_section(report: Report) -> Section:
    files, more = capped(report.files, MAX_ROWS)
    total = human_size(sum(f.size for f in report.files))
    blocks: list[Block] = [Para(f"{len(report.files):,} files, {total} in all.")]
    if files:
        headers = (
            "Path", "Size", "Format", "Role", "SHA-256", "In manifest", "Hash source", "Proven by",
        )  # fmt: skip
        blocks.append(Table(headers, tuple(_file_row(f) for f in files)))
    return Section("files", "Files", (*blocks, *left_out(more, "files")))


def _file_row(entry: FileEntry) -> tuple[Cell, ...]:
    path = line(entry.path) + (" (symlink)" if entry.symlink else "")
    digest = (
        Cell(line(entry.sha256, 80), mono=True) if entry.sha256 else Cell("not hashed", tone="warn")
    )
    source = (
        entry.sha256_source
        if entry.read == "whole"
        else f"{entry.sha256_source}; {entry.read} read"
    )
    return (
        Cell(path, mono=True),
        Cell(human_size(entry.size)),
        Cell(entry.format.value),
        Cell(entry.role.value),
        digest,
        Cell("yes" if entry.in_manifest else "no (ignored)"),
        Cell(source, tone=None if entry.sha256_source == "computed" else "warn"),
        Cell(
            line(", ".join(entry.signed_by), 200) or "–", tone="good" if entry.signed_by else None
        ),
    )


def signatures_section(report: Report) -> Section:
    facts = report.signatures
    if facts is None:
        blocks: tuple[Block, ...] = (Para("The signatures step did not run.", "warn"),)
        return Section("signatures", "Signatures", blocks)
    parts: list[Block] = [_signature(s) for s in facts.signatures[:MAX_EVIDENCE]]
    parts += left_out(len(facts.signatures) - MAX_EVIDENCE, "signatures")
    if not facts.signatures:
        parts.append(
            Para("No signature: the model carries no model.sig and none was given.", "warn")
        )
    if facts.anchors:
        rows = tuple(
            (
                Cell(a.kind),
                Cell(line(a.name, 200) or "–"),
                Cell(line(a.fingerprint, 80), mono=True),
                Cell(line(a.source), mono=True),
            )
            for a in facts.anchors[:MAX_EVIDENCE]
        )
        table = Table(("Kind", "Name", "SHA-256", "Source"), rows)
        parts.append(Sub("Trusted anchors", (table,)))
    unproven = [f for f in report.fact_sources if not f.signed_by]
    if unproven and any(s.status.value == "verified" for s in facts.signatures):
        shown, more = capped(tuple(unproven), MAX_ROWS)
        fact_rows = tuple(
            (Cell(f.fact), Cell(line(f.detail, 200)), Cell(line(f.path), mono=True)) for f in shown
        )
        note = Para(
            "These facts were read from files no verified signature covers: "
            "they are the word of whoever handed over the model.",
            "warn",
        )
        table = Table(("Fact", "What", "File"), fact_rows)
        parts.append(
            Sub("Facts from unsigned files", (note, table, *left_out(more, "facts")), "warn")
        )
    return Section("signatures", "Signatures", tuple(parts))


def _signature(sig: SignatureCheck) -> Sub:
    status_tone = _STATUS_TONE.get(sig.status.value, "bad")
    summary, integrity_tone = _integrity(sig)
    integrity = summary
    rows: list[tuple[str, Cell]] = [("Status", Cell(sig.status.value, tone=status_tone))]
    if sig.reason:
        rows.append(("Why", Cell(line(sig.reason, 1000))))
    if sig.signer is not None:
        rows += _signer(sig.signer)
    rows.append(("Signed files", Cell(f"{sig.signed_files:,}")))
    if sig.signed_root_digest:
        rows.append(("Signed root digest", Cell(line(sig.signed_root_digest, 80), mono=True)))
    if sig.integrity_reason:
        integrity += f" ({line(sig.integrity_reason, 400)})"
    if sig.compared_with:
        integrity += f"; compared with the {sig.compared_with}"
    rows.append(("Files", Cell(integrity, tone=integrity_tone)))
    read = tuple(entry.path for entry in sig.not_covered if entry.loader_read)
    unread = tuple(entry.path for entry in sig.not_covered if not entry.loader_read)
    differences: tuple[tuple[str, tuple[str, ...], Tone], ...] = (
        ("Changed", sig.changed, "bad"),
        ("Missing", sig.missing, "bad"),
        ("Not signed", sig.extra, "bad"),
        ("Not covered, read by loaders", read, "bad"),
        ("Not covered, read by nothing known", unread, "warn"),
    )
    for label, paths, tone in differences:
        if paths:
            rows.append((label, Cell(f"{len(paths):,}: {names(paths)}", tone=tone)))
    title = f"{line(sig.path, 200)}: {sig.status.value}, {summary}"
    return Sub(
        title,
        (Facts(tuple(rows)),),
        "bad" if "bad" in (status_tone, integrity_tone) else status_tone,
    )


def _integrity(sig: SignatureCheck) -> tuple[str, Tone]:
    """How the files compare with the signature's manifest, claiming "signed" only where a
    trusted anchor verified that manifest."""
    if sig.integrity == "not_checked":
        return "files not compared", "warn"
    if files_match_signed(sig):
        return "every signed file matches", "good"
    if sig.status.value == "verified":
        return "files differ from what was signed", "bad"
    if sig.integrity == "mismatch":
        return "files differ from what the bundle claims", "bad"
    if sig.status.value == "unverified":
        return "files match what the bundle claims; its signer is not verified", "warn"
    return "files match what the bundle claims, but its signature does not verify", "bad"


def _signer(signer: Signer) -> list[tuple[str, Cell]]:
    rows: list[tuple[str, Cell]] = [("Method", Cell(signer.method))]
    details = (
        ("Identity", signer.identity, False),
        ("OIDC issuer", signer.oidc_issuer, False),
        ("Certificate subject", signer.certificate_subject, False),
        ("Key", _sha256(signer.key_fingerprint), True),
        ("Key type", signer.key_type, False),
        ("Certificate issuer", signer.certificate_issuer, False),
        ("Certificate", _sha256(signer.certificate_fingerprint), True),
        ("Chain", " › ".join(line(c, 200) for c in signer.chain[:MAX_EVIDENCE]), False),
        ("Transparency log", signer.tlog and f"entry {signer.tlog.log_index}", False),
        ("Certificate valid", _window(signer), False),
        ("Validity checked at", _checked_at(signer), False),
        ("Checked against", signer.trust_anchor or "nothing provscan was given", True),
    )  # fmt: skip
    rows += [(label, Cell(line(value), mono=mono)) for label, value, mono in details if value]
    return rows


def _window(signer: Signer) -> str | None:
    if signer.certificate_not_before is None or signer.certificate_not_after is None:
        return None
    return f"{_utc(signer.certificate_not_before)} to {_utc(signer.certificate_not_after)}"


_VALIDITY_BASIS = {
    "verification-time": "the time of verification: the bundle carries no trusted time",
    "transparency-log": "the transparency-log entry's integrated time",
}


def _checked_at(signer: Signer) -> str | None:
    if signer.validity_checked_at is None:
        return None
    basis = _VALIDITY_BASIS.get(signer.validity_basis or "", "on no stated basis")
    return f"{_utc(signer.validity_checked_at)}, {basis}"


def _utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sha256(digest: str | None) -> str | None:
    return f"sha256:{digest}" if digest else None


def findings_section(report: Report) -> Section:
    findings, more = capped(report.findings, MAX_ROWS)
    if not report.findings:
        return Section("findings", "Findings", (Para("No findings.", "good"),))
    counts = Counter(f.severity.value for f in report.findings)
    summary = ", ".join(f"{counts[s.value]:,} {s.value}" for s in SEVERITY_ORDER if counts[s.value])
    blocks: list[Block] = [Para(f"{len(report.findings):,} findings: {summary}.")]
    known = {prefix for prefix, _ in _AREAS}
    areas = [*_AREAS, ("", "Other")]
    for prefix, title in areas:
        group = [f for f in findings if _area(f, known) == prefix]
        if group:
            rows = tuple(_finding_row(f) for f in group)
            table = Table(("Severity", "Rule", "Location", "Message"), rows)
            tone = _SEVERITY_TONE.get(_worst(group))
            blocks.append(Sub(f"{title} ({len(group):,})", (table,), tone))
    return Section("findings", "Findings", (*blocks, *left_out(more, "findings")))


def _area(finding: Finding, known: set[str]) -> str:
    prefix = finding.rule_id.split("-", 1)[0]
    return prefix if prefix in known else ""


def _worst(group: list[Finding]) -> str:
    return max((f.severity for f in group), key=lambda s: s.rank).value


def _finding_row(finding: Finding) -> tuple[Cell, ...]:
    severity = finding.severity.value
    return (
        Cell(severity, tone=_SEVERITY_TONE.get(severity)),
        Cell(finding.rule_id, mono=True),
        Cell(_location(finding.location), mono=finding.location is not None),
        Cell(line(finding.message, 1000)),
    )


def _location(location: Location | None) -> str:
    if location is None:
        return "the model as a whole"
    text = line(location.path, 200) or "?"
    if location.member is not None:
        text += f" › {line(location.member, 200)}"
    if location.offset is not None:
        text += f" @ {location.offset:,}"
    return text
