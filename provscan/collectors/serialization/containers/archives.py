"""What do tar, 7z and compressed wrappers hold, read the way their loaders read them?

Tars are read as tarfile reads them (any header with a valid checksum, "ustar" magic or not),
and a legacy torch tar checkpoint's `storages`, `tensors` and `pickle` as torch.load reads
them (tar_legacy). Compressed streams are recognised by every signature joblib and the
stdlib decompressors accept (compression) and decompressed in bounded steps (inflate).
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from functools import partial
from typing import IO, Any

from provscan.collectors.base import isolated
from provscan.collectors.serialization.containers.compression import Detected, inflater
from provscan.collectors.serialization.containers.members import (
    Route,
    escapes,
    member_location,
    name_findings,
    route_bytes,
)
from provscan.collectors.serialization.containers.streams import Readable
from provscan.collectors.serialization.containers.tar_legacy import (
    LAYOUT_MEMBERS,
    PICKLE_MEMBERS,
    READ_BY_TORCH,
    scan_layout_member,
)
from provscan.collectors.serialization.pickle.scan import describe
from provscan.limits import Limits
from provscan.report import Finding, Location, Severity, located_finding


def _unreadable(location: Location, what: str, why: str) -> Finding:
    message = f"{describe(location)}: {what} cannot be read ({why}); its content was not scanned"
    return located_finding(
        "SER-ARCHIVE-UNREADABLE", Severity.HIGH, message, location, error=why[:500]
    )


_TAR_ERRORS = (tarfile.TarError, EOFError, OSError)


def _member_unreadable(location: Location, exc: Exception) -> list[Finding]:
    return [_unreadable(location, "tar member", f"{type(exc).__name__}: {exc}")]


def _too_many(location: Location, limits: Limits) -> Finding:
    bound = limits.archive_max_members
    message = f"{describe(location)}: archive has over {bound} members; the rest were not scanned"
    return located_finding(
        "SER-ARCHIVE-TOO-MANY-MEMBERS", Severity.HIGH, message, location, max_members=bound
    )


def _too_large(location: Location, limits: Limits, read: int) -> Finding:
    bound = limits.archive_max_total_bytes
    message = (
        f"{describe(location)}: archive content passes the {bound}-byte total limit; "
        "the rest was not scanned"
    )
    return located_finding(
        "SER-ARCHIVE-TOO-LARGE", Severity.HIGH, message, location, max_bytes=bound, read=read
    )


def _link_findings(info: tarfile.TarInfo, location: Location) -> list[Finding]:
    # A symlink resolves from its own folder; a hard link names a member from the root.
    base = posixpath.dirname(info.name) if info.issym() else ""
    target = info.linkname.replace("\\", "/")
    if not target.startswith("/"):
        target = posixpath.join(base, target)
    if not escapes(target):
        return []
    kind = "symlink" if info.issym() else "hard link"
    message = (
        f"{describe(location)}: {kind} to {info.linkname!r} points outside the archive; "
        "extracting it lets later members write anywhere"
    )
    evidence = {"kind": kind, "target": info.linkname[:500]}
    return [located_finding("SER-ARCHIVE-LINK", Severity.HIGH, message, location, **evidence)]


def _legacy_link(info: tarfile.TarInfo, location: Location) -> Finding:
    kind = "symlink" if info.issym() else "hard link"
    message = (
        f"{describe(location)}: {info.name!r} is a {kind} to {info.linkname!r}; torch.load's "
        "legacy tar reader extracts that name and loads whatever the link points to"
    )
    evidence = {"kind": kind, "target": info.linkname[:500]}
    return located_finding("SER-TAR-LEGACY-LINK", Severity.CRITICAL, message, location, **evidence)


def _legacy_duplicate(name: str, where: Location) -> Finding:
    message = (
        f"{describe(where)}: tar holds {name!r} more than once; torch.load reads the last "
        "copy (tarfile.getmember), a reader that stops at the first sees another checkpoint"
    )
    return located_finding(
        "SER-TAR-DUPLICATE-MEMBER", Severity.CRITICAL, message, where, member=name
    )


def _scan_tar_member(
    member: Readable,
    info: tarfile.TarInfo,
    location: Location,
    limits: Limits,
    depth: int,
    route: Route,
) -> list[Finding]:
    def by_content(stream: Readable) -> list[Finding]:
        return route(
            stream,
            info.size,
            location,
            limits,
            depth,
            name=info.name,
            as_pickle=info.name in PICKLE_MEMBERS,
        )

    if info.name in LAYOUT_MEMBERS:
        return scan_layout_member(member, info.size, info.name, location, limits, by_content)
    return by_content(member)


def scan_tar_stream(
    stream: Readable, where: Location, limits: Limits, depth: int, route: Route
) -> list[Finding]:
    """Walk an uncompressed tar once, in order, as a stream; never extracts anything.
    `route` scans each member by its content."""
    findings: list[Finding] = []
    count = total = 0
    legacy_seen: set[str] = set()
    try:
        # "r|": streaming and uncompressed. Decompression is ours (bounded), not tarfile's.
        with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
            for info in tar:
                count += 1
                if count > limits.archive_max_members:
                    findings.append(_too_many(where, limits))
                    break
                location = member_location(where, info.name)
                findings.extend(name_findings(info.name, location))
                if info.name in READ_BY_TORCH:
                    if info.name in legacy_seen:
                        findings.append(_legacy_duplicate(info.name, where))
                    legacy_seen.add(info.name)
                if info.issym() or info.islnk():
                    if info.name in READ_BY_TORCH:
                        findings.append(_legacy_link(info, location))
                    findings.extend(_link_findings(info, location))
                    continue
                if not info.isreg():
                    continue  # folders, devices, fifos hold no bytes to load
                total += info.size
                if total > limits.archive_max_total_bytes:
                    findings.append(_too_large(where, limits, total))
                    break
                member = tar.extractfile(info)
                if member is not None:
                    findings.extend(
                        isolated(
                            partial(_scan_tar_member, member, info, location, limits, depth, route),
                            partial(_member_unreadable, location),
                            reraise=_TAR_ERRORS,  # the stream broke: the archive's, below
                        )
                    )
                tar.members.clear()  # streaming: keep no per-member state
    except (*_TAR_ERRORS, ValueError) as exc:
        findings.append(_unreadable(where, "tar archive", f"{type(exc).__name__}: {exc}"))
    return findings


def scan_compressed_stream(
    stream: Readable,
    detected: Detected,
    compressed_size: int | None,
    where: Location,
    limits: Limits,
    depth: int,
    route: Route,
) -> list[Finding]:
    """Decompress in bounded steps, `route` what comes out by content, then drain the rest."""
    inflated = inflater(stream, detected, compressed_size, limits)
    findings = route(inflated, None, where, limits, depth)
    inflated.drain()
    if detected.weak and inflated.produced == 0 and inflated.error:
        # Bytes that happen to look like a zlib or lzma header, inside raw data: not a stream.
        return []
    evidence: dict[str, Any] = {
        "codec": detected.label,
        "compressed_read": inflated.consumed,
        "decompressed": inflated.produced,
    }
    if inflated.bomb:
        message = (
            f"{describe(where)}: {detected.label} data expands past {inflated.ratio_bound()} "
            f"bytes (over {limits.decompression_max_ratio}x its compressed size); "
            "decompression stopped"
        )
        evidence["max_ratio"] = limits.decompression_max_ratio
        findings.append(
            located_finding("SER-DECOMPRESSION-BOMB", Severity.HIGH, message, where, **evidence)
        )
    elif inflated.too_large:
        findings.append(_too_large(where, limits, inflated.produced))
    elif inflated.error:
        findings.append(_unreadable(where, f"{detected.label} data", inflated.error))
    return findings


def scan_7z_archive(
    handle: IO[bytes], where: Location, limits: Limits, depth: int, route: Route
) -> list[Finding]:
    """List a 7z archive, refuse what its listing says is too big, `route` members in memory."""
    try:
        from provscan.collectors.serialization.containers import sevenzip
    except ImportError as exc:  # py7zr is optional: unscanned is a finding, not a pass
        return [_unreadable(where, "7z archive", f"py7zr is not installed ({exc})")]
    size = handle.seek(0, io.SEEK_END)
    handle.seek(0)
    findings: list[Finding] = []

    def visit(name: str, data: bytes) -> None:
        location = member_location(where, name)
        findings.extend(route_bytes(route, data, location, limits, depth, name=name))

    findings.extend(sevenzip.read_members(handle, size, where, limits, visit))
    return findings
