"""What is inside an archive member, judged by its content, and can loading it run code?

The one router of nested content: each container reader it calls is handed this router (a
`members.Route`) for the members it finds, so the readers never import it back.
"""

from __future__ import annotations

import io

from provscan.collectors.serialization.containers import archives, compression, zip_scan
from provscan.collectors.serialization.containers.members import may_be_pickle, too_deep
from provscan.collectors.serialization.containers.streams import Readable, Rejoined, read_bounded
from provscan.collectors.serialization.numpy_scan import scan_npy_stream
from provscan.collectors.serialization.pickle.scan import describe, scan_pickle_bytes
from provscan.collectors.serialization.sniff import is_tar_header, sniff
from provscan.limits import Limits
from provscan.report import FileFormat, Finding, Location, Severity, located_finding

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")


def _scan_pickle(
    head: bytes,
    stream: Readable,
    size: int | None,
    location: Location,
    limits: Limits,
    named: bool,
) -> list[Finding]:
    want = limits.pickle_max if size is None else min(size, limits.pickle_max)
    data = head[:want]
    if len(data) < want and (named or may_be_pickle(data, limits)):
        data += read_bounded(stream, want - len(data))
    more = size > len(data) if size is not None else bool(stream.read(1))
    total = len(data) + 1 if more else len(data)
    return scan_pickle_bytes(data, location, limits, total_size=total, sniffed=not named)


def _read_whole(
    head: bytes, stream: Readable, size: int | None, location: Location, limits: Limits
) -> bytes | Finding:
    """A nested zip or 7z needs random access: hold it in memory, bounded."""
    bound = limits.archive_max_member_bytes
    if size is not None and size > bound:
        data = b""
    else:
        data = head + read_bounded(stream, bound + 1 - len(head))
    if len(data) <= bound:
        return data
    message = (
        f"{describe(location)}: nested archive is over the {bound}-byte member limit; "
        "its content was not scanned"
    )
    evidence = {"max_bytes": bound, "size": size}
    return located_finding("SER-ARCHIVE-TOO-LARGE", Severity.HIGH, message, location, **evidence)


def scan_member_stream(
    stream: Readable,
    size: int | None,
    location: Location,
    limits: Limits,
    depth: int,
    *,
    name: str = "",
    as_pickle: bool = False,
) -> list[Finding]:
    """Route one member (or decompressed stream) by its content; `size` None if unknown.

    `as_pickle`: the loader unpickles this member whatever it looks like (a legacy torch
    tar's `pickle`), so it is walked as one.
    """
    head = read_bounded(stream, limits.sniff_bytes)
    if not head:
        return []
    known = size if size is not None else len(head) + 1
    fmt = sniff(head, known)
    named = as_pickle or name.lower().endswith(PICKLE_SUFFIXES)
    if fmt is FileFormat.PICKLE or as_pickle:
        return _scan_pickle(head, stream, size, location, limits, named)
    if fmt is FileFormat.NUMPY:
        return scan_npy_stream(Rejoined(head, stream), size, location, limits)
    # A tar is whatever tarfile accepts (v7 headers have no "ustar" magic), unless it is a
    # zip or 7z first: torch.load tries zip, then tar.
    tar = fmt is FileFormat.TAR or (
        fmt not in (FileFormat.ZIP, FileFormat.SEVENZIP) and is_tar_header(head)
    )
    detected = None if tar else compression.detect(head)
    if tar or detected is not None:
        deep = too_deep(location, limits, depth)
        if deep is not None:
            return [deep]
        joined = Rejoined(head, stream)
        if detected is None:
            return archives.scan_tar_stream(joined, location, limits, depth + 1, scan_member_stream)
        return archives.scan_compressed_stream(
            joined, detected, size, location, limits, depth + 1, scan_member_stream
        )
    if fmt in (FileFormat.ZIP, FileFormat.SEVENZIP):
        deep = too_deep(location, limits, depth)
        if deep is not None:
            return [deep]
        data = _read_whole(head, stream, size, location, limits)
        if isinstance(data, Finding):
            return [data]
        if fmt is FileFormat.ZIP:
            return zip_scan.scan_zip_archive(
                io.BytesIO(data), location, limits, depth + 1, scan_member_stream
            )
        return archives.scan_7z_archive(
            io.BytesIO(data), location, limits, depth + 1, scan_member_stream
        )
    # Named like a pickle but not sniffed as one: pickle.load still reads it, so walk it.
    return _scan_pickle(head, stream, size, location, limits, named) if named else []
