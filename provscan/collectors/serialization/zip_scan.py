"""Does this zip archive (usually a PyTorch checkpoint) hide code in its pickles or TorchScript?"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

from provscan.collectors.base import ScanFile
from provscan.collectors.serialization.pickle_scan import (
    looks_like_pickle,
    scan_pickle_bytes,
    walk_pickles,
)
from provscan.limits import Limits
from provscan.report import Finding, Location, Severity

_PICKLE_SUFFIXES = (".pkl", ".pickle")
_TOO_LARGE = "SER-PICKLE-TOO-LARGE"
_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
# What zipfile raises on a broken central directory (OSError: seeks to a hostile offset).
_ARCHIVE_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,
    ValueError,
    EOFError,
    struct.error,
    OSError,
)
# What zipfile raises on a member it will not read (bad CRC, encrypted, name mismatch ...).
_MEMBER_ERRORS = (
    zipfile.BadZipFile,
    RuntimeError,
    NotImplementedError,
    ValueError,
    EOFError,
    zlib.error,
    OSError,
)


def _finding(
    rule_id: str, severity: Severity, message: str, location: Location, **evidence: Any
) -> Finding:
    return Finding(
        rule_id=rule_id, severity=severity, message=message, location=location, evidence=evidence
    )


def _declared_member_count(path: Path) -> int | None:
    """The entry count the end-of-central-directory record claims, read before zipfile
    builds a ZipInfo for every entry (which is where a huge count would cost memory)."""
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        tail_len = min(size, 22 + 0xFFFF)
        handle.seek(size - tail_len)
        tail = handle.read(tail_len)
        at = tail.rfind(_EOCD)
        if at < 0 or len(tail) - at < 22:
            return None
        (count,) = struct.unpack_from("<H", tail, at + 10)
        locator = at - 20
        if count == 0xFFFF and locator >= 0 and tail[locator : locator + 4] == _EOCD64_LOCATOR:
            (eocd64_offset,) = struct.unpack_from("<Q", tail, locator + 8)
            handle.seek(eocd64_offset)
            record = handle.read(56)
            if len(record) == 56 and record[:4] == _EOCD64:
                (count,) = struct.unpack_from("<Q", record, 32)
        return int(count)


def _is_torchscript(name: str) -> bool:
    # torch.jit.save writes <archive>/code/... and <archive>/constants.pkl; <archive> is the
    # file's stem, so a plain torch.save to code.pt has code/data.pkl and is not TorchScript.
    parts = name.split("/")
    return (len(parts) > 2 and parts[1] == "code") or parts[-1] == "constants.pkl"


def _layout_findings(rel: str, infos: list[zipfile.ZipInfo]) -> list[Finding]:
    findings: list[Finding] = []
    where = Location(path=rel)
    script = [i.filename for i in infos if _is_torchscript(i.filename)]
    if script:
        message = (
            f"{rel}: archive holds TorchScript ({script[0]} ...); torch.load used to hand such "
            "archives to torch.jit.load, which runs their code (CVE-2025-32434)"
        )
        evidence = {"members": script[:10], "count": len(script)}
        findings.append(_finding("SER-TORCHSCRIPT", Severity.HIGH, message, where, **evidence))
    data_pkls = [i.filename for i in infos if i.filename.rsplit("/", 1)[-1] == "data.pkl"]
    if len(data_pkls) > 1:
        message = (
            f"{rel}: archive has {len(data_pkls)} data.pkl members; which one loads is ambiguous"
        )
        evidence = {"members": data_pkls[:10]}
        findings.append(
            _finding("SER-ZIP-MULTIPLE-DATA-PKL", Severity.HIGH, message, where, **evidence)
        )
    duplicates = sorted(n for n, c in Counter(i.filename for i in infos).items() if c > 1)
    if duplicates:
        message = (
            f"{rel}: archive names {duplicates[0]!r} twice or more; readers differ on which counts"
        )
        evidence = {"members": duplicates[:10]}
        findings.append(
            _finding("SER-ZIP-DUPLICATE-MEMBER", Severity.HIGH, message, where, **evidence)
        )
    return findings


def _may_be_pickle(prefix: bytes, limits: Limits) -> bool:
    probe = walk_pickles(
        io.BytesIO(prefix), limit=len(prefix), max_opcodes=limits.pickle_max_opcodes
    )
    return probe.error is None or probe.exhausted or probe.events > 0


def _scan_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, rel: str, limits: Limits
) -> list[Finding]:
    location = Location(path=rel, member=info.filename)
    named = info.filename.lower().endswith(_PICKLE_SUFFIXES)
    try:
        with archive.open(info) as member:
            head = member.read(2)
            # Decide by content too: a pickle hidden under any name (CVE-2025-1889, -10155).
            if not named and not looks_like_pickle(head):
                return []
            want = min(info.file_size, limits.pickle_max)
            data = head + member.read(max(0, min(want, limits.sniff_bytes) - len(head)))
            # A storage can start like a pickle by chance; read all of it only if its start parses.
            if len(data) < want and (named or _may_be_pickle(data, limits)):
                data += member.read(want - len(data))
    except _MEMBER_ERRORS as exc:
        message = (
            f"{rel}: cannot read member {info.filename}: {exc}; it was not scanned, "
            "though PyTorch's own zip reader may still load it"
        )
        error = str(exc)[:500]
        return [
            _finding("SER-ZIP-MEMBER-UNREADABLE", Severity.HIGH, message, location, error=error)
        ]
    findings: list[Finding] = []
    if named and info.file_size > limits.pickle_max:
        message = (
            f"{rel}: member {info.filename} is {info.file_size} bytes, over the "
            f"{limits.pickle_max}-byte pickle limit; only its start was scanned"
        )
        evidence = {"size": info.file_size, "max_bytes": limits.pickle_max}
        findings.append(_finding(_TOO_LARGE, Severity.HIGH, message, location, **evidence))
    scanned = scan_pickle_bytes(
        data, location, limits, total_size=info.file_size, sniffed=not named
    )
    if findings:
        scanned = [f for f in scanned if f.rule_id != _TOO_LARGE]
    return findings + scanned


def scan_zip(file: ScanFile, limits: Limits) -> list[Finding]:
    """Scan every pickle in a zip archive, by name or by content; never extracts to disk."""
    where = Location(path=file.rel)
    bound = limits.zip_max_members
    declared = _declared_member_count(file.path)
    if declared is not None and declared > bound:
        message = (
            f"{file.rel}: archive declares {declared} members, over the limit {bound}; not scanned"
        )
        evidence = {"declared": declared, "max_members": bound}
        return [_finding("SER-ZIP-TOO-MANY-MEMBERS", Severity.HIGH, message, where, **evidence)]
    try:
        archive = zipfile.ZipFile(file.path)
    except _ARCHIVE_ERRORS as exc:
        message = f"{file.rel}: zip archive cannot be opened: {exc}"
        return [_finding("SER-ZIP-MALFORMED", Severity.HIGH, message, where, error=str(exc)[:500])]
    findings: list[Finding] = []
    with archive:
        infos = archive.infolist()
        if len(infos) > bound:
            message = (
                f"{file.rel}: archive has {len(infos)} members; only the first {bound} were scanned"
            )
            evidence = {"members": len(infos), "max_members": bound}
            findings.append(
                _finding("SER-ZIP-TOO-MANY-MEMBERS", Severity.HIGH, message, where, **evidence)
            )
            infos = infos[:bound]
        findings.extend(_layout_findings(file.rel, infos))
        for info in infos:
            if not info.is_dir():
                findings.extend(_scan_member(archive, info, file.rel, limits))
    return findings
