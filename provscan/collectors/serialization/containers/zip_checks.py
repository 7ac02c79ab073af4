"""Which findings does a zip's structure give before any member is read?"""

from __future__ import annotations

import struct
from typing import IO

from provscan.collectors.serialization.containers.members import (
    member_location,
)
from provscan.collectors.serialization.containers.zip_entries import EOCD, EOCD64, LOCATOR, Entry
from provscan.collectors.serialization.containers.zip_layout import Problem
from provscan.collectors.serialization.containers.zip_local import header_disagreement
from provscan.collectors.serialization.pickle.scan import describe
from provscan.report import Finding, Location, Severity, located_finding


def declared_member_count(handle: IO[bytes]) -> int | None:
    """The entry count the end-of-central-directory record claims, read before zipfile
    builds a ZipInfo for every entry (which is where a huge count would cost memory)."""
    size = handle.seek(0, 2)
    tail_len = min(size, 22 + 0xFFFF)
    handle.seek(size - tail_len)
    tail = handle.read(tail_len)
    at = tail.rfind(EOCD)
    if at < 0 or len(tail) - at < 22:
        return None
    (count,) = struct.unpack_from("<H", tail, at + 10)
    locator = at - 20
    if count == 0xFFFF and locator >= 0 and tail[locator : locator + 4] == LOCATOR:
        (eocd64_offset,) = struct.unpack_from("<Q", tail, locator + 8)
        if eocd64_offset + 56 <= size:  # past the end it is absent (and past seek's range)
            handle.seek(eocd64_offset)
            record = handle.read(56)
            if len(record) == 56 and record[:4] == EOCD64:
                (count,) = struct.unpack_from("<Q", record, 32)
    return int(count)


def _is_torchscript(name: str) -> bool:
    # torch.jit.save writes <archive>/code/... and <archive>/constants.pkl; <archive> is the
    # file's stem, so a plain torch.save to code.pt has code/data.pkl and is not TorchScript.
    parts = name.split("/")
    return (len(parts) > 2 and parts[1] == "code") or parts[-1] == "constants.pkl"


def layout_findings(where: Location, names: list[str]) -> list[Finding]:
    findings: list[Finding] = []
    rel = describe(where)
    script = [n for n in names if _is_torchscript(n)]
    if script:
        message = (
            f"{rel}: archive holds TorchScript ({script[0]} ...); torch.load used to hand such "
            "archives to torch.jit.load, which runs their code (CVE-2025-32434)"
        )
        evidence = {"members": script[:10], "count": len(script)}
        findings.append(
            located_finding("SER-TORCHSCRIPT", Severity.HIGH, message, where, **evidence)
        )
    data_pkls = sorted({n for n in names if n.rsplit("/", 1)[-1] == "data.pkl"})
    if len(data_pkls) > 1:
        message = (
            f"{rel}: archive has {len(data_pkls)} data.pkl members; which one loads is ambiguous"
        )
        evidence = {"members": data_pkls[:10]}
        findings.append(
            located_finding("SER-ZIP-MULTIPLE-DATA-PKL", Severity.HIGH, message, where, **evidence)
        )
    return findings


def problem_findings(where: Location, problems: list[Problem]) -> list[Finding]:
    """Reader disagreements and layouts no zip writer produces: critical, because each one
    lets a loader run bytes that another reader (a reviewer, a scanner) never saw."""
    findings: list[Finding] = []
    for problem in problems:
        location = where if problem.member is None else member_location(where, problem.member)
        message = f"{describe(where)}: {problem.text}"
        findings.append(
            located_finding(
                problem.rule_id, Severity.CRITICAL, message, location, **problem.evidence
            )
        )
    return findings


def mismatch_findings(handle: IO[bytes], entries: list[Entry], where: Location) -> list[Finding]:
    findings: list[Finding] = []
    checked: set[int] = set()
    for entry in entries:
        if entry.header_offset in checked:
            continue
        checked.add(entry.header_offset)
        try:
            differences = header_disagreement(handle, entry)
        except (OSError, ValueError, OverflowError, struct.error) as exc:
            differences = {"error": str(exc)[:200]}
        if differences is None:
            continue
        message = (
            f"{describe(where)}: member {entry.name}'s local header disagrees with the "
            f"central directory ({', '.join(sorted(differences))}); readers differ on what it holds"
        )
        location = member_location(where, entry.name)
        evidence = {"differences": differences, "offset": entry.header_offset}
        findings.append(
            located_finding(
                "SER-ZIP-HEADER-MISMATCH", Severity.CRITICAL, message, location, **evidence
            )
        )
    return findings


def malformed(where: Location, exc: BaseException, torch_error: str | None) -> Finding:
    message = f"{describe(where)}: zip archive cannot be opened: {exc}"
    if torch_error:
        message += f"; PyTorch's reader refuses it too ({torch_error})"
    return located_finding("SER-ZIP-MALFORMED", Severity.HIGH, message, where, error=str(exc)[:500])
