"""What do tar, 7z and compressed wrappers hold, read the way their loaders read them?"""

from __future__ import annotations

import io
import posixpath
import tarfile
from functools import partial
from typing import IO, Any

from provscan.collectors.base import ScanFile, isolated
from provscan.collectors.serialization.inflate import Codec, Inflated, Readable, codec_of
from provscan.collectors.serialization.members import (
    escapes,
    member_location,
    name_findings,
    scan_member_bytes,
    scan_member_stream,
)
from provscan.collectors.serialization.pickle_scan import describe
from provscan.limits import Limits
from provscan.report import Finding, Location, Severity, located_finding

__all__ = ["codec_of", "scan_7z", "scan_compressed", "scan_gzip", "scan_tar"]


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


def scan_tar_stream(stream: Readable, where: Location, limits: Limits, depth: int) -> list[Finding]:
    """Walk an uncompressed tar once, in order, as a stream; never extracts anything."""
    findings: list[Finding] = []
    count = total = 0
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
                if info.issym() or info.islnk():
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
                            partial(
                                scan_member_stream,
                                member,
                                info.size,
                                location,
                                limits,
                                depth,
                                name=info.name,
                            ),
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
    codec: Codec,
    compressed_size: int | None,
    where: Location,
    limits: Limits,
    depth: int,
) -> list[Finding]:
    """Decompress in bounded steps, route what comes out by content, then drain the rest."""
    inflated = Inflated(stream, codec, compressed_size, limits)
    findings = scan_member_stream(inflated, None, where, limits, depth)
    inflated.drain()
    if codec is Codec.ZLIB and inflated.produced == 0 and inflated.error:
        # Two bytes that happen to look like a zlib header, inside raw data: not a stream.
        return []
    evidence: dict[str, Any] = {
        "codec": codec.value,
        "compressed_read": inflated.consumed,
        "decompressed": inflated.produced,
    }
    if inflated.bomb:
        message = (
            f"{describe(where)}: {codec.value} data expands past {inflated.ratio_bound()} bytes "
            f"(over {limits.decompression_max_ratio}x its compressed size); decompression stopped"
        )
        evidence["max_ratio"] = limits.decompression_max_ratio
        findings.append(
            located_finding("SER-DECOMPRESSION-BOMB", Severity.HIGH, message, where, **evidence)
        )
    elif inflated.too_large:
        findings.append(_too_large(where, limits, inflated.produced))
    elif inflated.error:
        findings.append(_unreadable(where, f"{codec.value} data", inflated.error))
    return findings


def scan_7z_archive(
    handle: IO[bytes], where: Location, limits: Limits, depth: int
) -> list[Finding]:
    """List a 7z archive, refuse what its listing says is too big, scan members in memory."""
    try:
        from provscan.collectors.serialization import sevenzip
    except ImportError as exc:  # py7zr is optional: unscanned is a finding, not a pass
        return [_unreadable(where, "7z archive", f"py7zr is not installed ({exc})")]
    size = handle.seek(0, io.SEEK_END)
    handle.seek(0)
    findings: list[Finding] = []

    def visit(name: str, data: bytes) -> None:
        location = member_location(where, name)
        findings.extend(scan_member_bytes(data, location, limits, depth, name=name))

    findings.extend(sevenzip.read_members(handle, size, where, limits, visit))
    return findings


def _open_and(file: ScanFile, limits: Limits, scan: Any) -> list[Finding]:
    with file.path.open("rb") as handle:
        result: list[Finding] = scan(handle, Location(path=file.rel), limits)
        return result


def scan_tar(file: ScanFile, limits: Limits) -> list[Finding]:
    """Scan a tar file on disk (FileFormat.TAR), including torch's legacy tar checkpoints."""
    return _open_and(file, limits, lambda h, w, lim: scan_tar_stream(h, w, lim, 1))


def scan_compressed(file: ScanFile, limits: Limits) -> list[Finding]:
    """Scan a gzip, bz2, xz, lzma, zlib or joblib-zfile file on disk by what it holds."""

    def scan(handle: IO[bytes], where: Location, lim: Limits) -> list[Finding]:
        codec = codec_of(handle.read(64))
        handle.seek(0)
        if codec is None:
            return []
        return scan_compressed_stream(handle, codec, file.size, where, lim, 1)

    return _open_and(file, limits, scan)


# FileFormat.GZIP today; the same scanner reads every codec that codec_of names.
scan_gzip = scan_compressed


def scan_7z(file: ScanFile, limits: Limits) -> list[Finding]:
    """Scan a 7z file on disk (FileFormat.SEVENZIP)."""
    return _open_and(file, limits, lambda h, w, lim: scan_7z_archive(h, w, lim, 1))
