"""Does this zip archive (usually a PyTorch checkpoint) hide code in its pickles or TorchScript?"""

from __future__ import annotations

import struct
import zipfile
import zlib
from collections import Counter
from functools import partial
from typing import IO

from provscan.collectors.base import ScanFile, isolated
from provscan.collectors.serialization.members import (
    Rejoined,
    may_be_pickle,
    member_location,
    read_bounded,
    scan_member_bytes,
    scan_member_stream,
)
from provscan.collectors.serialization.pickle_scan import (
    describe,
    looks_like_pickle,
    scan_pickle_bytes,
)
from provscan.collectors.serialization.zip_local import header_disagreement, raw_member
from provscan.limits import Limits
from provscan.report import Finding, Location, Severity, located_finding

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


def _declared_member_count(handle: IO[bytes]) -> int | None:
    """The entry count the end-of-central-directory record claims, read before zipfile
    builds a ZipInfo for every entry (which is where a huge count would cost memory)."""
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


def _layout_findings(where: Location, infos: list[zipfile.ZipInfo]) -> list[Finding]:
    findings: list[Finding] = []
    rel = describe(where)
    script = [i.filename for i in infos if _is_torchscript(i.filename)]
    if script:
        message = (
            f"{rel}: archive holds TorchScript ({script[0]} ...); torch.load used to hand such "
            "archives to torch.jit.load, which runs their code (CVE-2025-32434)"
        )
        evidence = {"members": script[:10], "count": len(script)}
        findings.append(
            located_finding("SER-TORCHSCRIPT", Severity.HIGH, message, where, **evidence)
        )
    data_pkls = [i.filename for i in infos if i.filename.rsplit("/", 1)[-1] == "data.pkl"]
    if len(data_pkls) > 1:
        message = (
            f"{rel}: archive has {len(data_pkls)} data.pkl members; which one loads is ambiguous"
        )
        evidence = {"members": data_pkls[:10]}
        findings.append(
            located_finding("SER-ZIP-MULTIPLE-DATA-PKL", Severity.HIGH, message, where, **evidence)
        )
    duplicates = sorted(n for n, c in Counter(i.filename for i in infos).items() if c > 1)
    if duplicates:
        message = (
            f"{rel}: archive names {duplicates[0]!r} twice or more; readers differ on which counts"
        )
        evidence = {"members": duplicates[:10]}
        findings.append(
            located_finding("SER-ZIP-DUPLICATE-MEMBER", Severity.HIGH, message, where, **evidence)
        )
    return findings


def _mismatch_findings(
    handle: IO[bytes], infos: list[zipfile.ZipInfo], where: Location
) -> list[Finding]:
    findings: list[Finding] = []
    for info in infos:
        try:
            differences = header_disagreement(handle, info)
        except (OSError, ValueError, struct.error) as exc:
            differences = {"error": str(exc)[:200]}
        if differences is None:
            continue
        message = (
            f"{describe(where)}: member {info.filename}'s local header disagrees with the "
            f"central directory ({', '.join(sorted(differences))}); readers differ on what it holds"
        )
        location = member_location(where, info.filename)
        evidence = {"differences": differences, "offset": info.header_offset}
        findings.append(
            located_finding("SER-ZIP-HEADER-MISMATCH", Severity.HIGH, message, location, **evidence)
        )
    return findings


def _unreadable(
    info: zipfile.ZipInfo, where: Location, location: Location, exc: BaseException
) -> list[Finding]:
    message = (
        f"{describe(where)}: cannot read member {info.filename}: {exc}; it was not scanned, "
        "though PyTorch's own zip reader may still load it"
    )
    error = str(exc)[:500]
    return [
        located_finding("SER-ZIP-MEMBER-UNREADABLE", Severity.HIGH, message, location, error=error)
    ]


def _scan_raw(
    handle: IO[bytes], info: zipfile.ZipInfo, location: Location, limits: Limits, depth: int
) -> list[Finding]:
    try:
        data = raw_member(handle, info, limits)
    except (OSError, ValueError, struct.error, zlib.error):
        return []
    if not data:
        return []
    return scan_member_bytes(data, location, limits, depth, name=info.filename)


def _scan_member(
    archive: zipfile.ZipFile,
    handle: IO[bytes],
    info: zipfile.ZipInfo,
    where: Location,
    limits: Limits,
    depth: int,
) -> list[Finding]:
    location = member_location(where, info.filename)
    named = info.filename.lower().endswith(_PICKLE_SUFFIXES)
    try:
        with archive.open(info) as member:
            head = read_bounded(member, limits.sniff_bytes)
            # Decide by content too: a pickle hidden under any name (CVE-2025-1889, -10155);
            # anything else (a nested archive, an .npy of an .npz) goes to the member router.
            if not named and not looks_like_pickle(head):
                joined = Rejoined(head, member)
                return scan_member_stream(
                    joined, info.file_size, location, limits, depth, name=info.filename
                )
            want = min(info.file_size, limits.pickle_max)
            data = head[:want]
            # Read the rest only if the start parses: a storage can begin like a pickle by
            # chance, and a named data.pkl that is garbage from byte 0 (a deflate bomb of
            # zeros) fails the loader right there, so its remaining bytes cannot matter.
            if len(data) < want and may_be_pickle(data, limits):
                data += read_bounded(member, want - len(data))
    except _MEMBER_ERRORS as exc:
        # Refused by zipfile is not refused by every loader: also scan the raw bytes.
        raw = _scan_raw(handle, info, location, limits, depth)
        return _unreadable(info, where, location, exc) + raw
    findings: list[Finding] = []
    if named and info.file_size > limits.pickle_max:
        message = (
            f"{describe(where)}: member {info.filename} is {info.file_size} bytes, over the "
            f"{limits.pickle_max}-byte pickle limit; only its start was scanned"
        )
        evidence = {"size": info.file_size, "max_bytes": limits.pickle_max}
        findings.append(located_finding(_TOO_LARGE, Severity.HIGH, message, location, **evidence))
    scanned = scan_pickle_bytes(
        data, location, limits, total_size=info.file_size, sniffed=not named
    )
    if findings:
        scanned = [f for f in scanned if f.rule_id != _TOO_LARGE]
    return findings + scanned


def scan_zip_archive(
    handle: IO[bytes], where: Location, limits: Limits, depth: int
) -> list[Finding]:
    """Scan a zip read from `handle` (a file on disk, or a nested member in memory).

    `where` names the archive itself; `depth` is the depth of its members (1 on disk).
    """
    rel = describe(where)
    bound = limits.zip_max_members
    declared = _declared_member_count(handle)
    if declared is not None and declared > bound:
        message = f"{rel}: archive declares {declared} members, over the limit {bound}; not scanned"
        evidence = {"declared": declared, "max_members": bound}
        return [
            located_finding("SER-ZIP-TOO-MANY-MEMBERS", Severity.HIGH, message, where, **evidence)
        ]
    try:
        archive = zipfile.ZipFile(handle)
    except _ARCHIVE_ERRORS as exc:
        message = f"{rel}: zip archive cannot be opened: {exc}"
        return [
            located_finding(
                "SER-ZIP-MALFORMED", Severity.HIGH, message, where, error=str(exc)[:500]
            )
        ]
    findings: list[Finding] = []
    with archive:
        infos = archive.infolist()
        if len(infos) > bound:
            message = (
                f"{rel}: archive has {len(infos)} members; only the first {bound} were scanned"
            )
            evidence = {"members": len(infos), "max_members": bound}
            findings.append(
                located_finding(
                    "SER-ZIP-TOO-MANY-MEMBERS", Severity.HIGH, message, where, **evidence
                )
            )
            infos = infos[:bound]
        findings.extend(_layout_findings(where, infos))
        findings.extend(_mismatch_findings(handle, infos, where))
        for info in infos:
            if info.is_dir():
                continue
            location = member_location(where, info.filename)
            findings.extend(
                isolated(
                    partial(_scan_member, archive, handle, info, where, limits, depth),
                    partial(_unreadable, info, where, location),
                )
            )
    return findings


def scan_zip(file: ScanFile, limits: Limits) -> list[Finding]:
    """Scan every pickle in a zip archive, by name or by content; never extracts to disk."""
    with file.path.open("rb") as handle:
        return scan_zip_archive(handle, Location(path=file.rel), limits, depth=1)
