"""What is inside an archive member, judged by its content, and can loading it run code?

Locations: `Location.path` is the file on disk; `Location.member` is the chain of member
names from the outermost archive inwards, joined with "!/" (as in jar: URLs). A zip file
holding `inner.zip` that holds `data.pkl` gives member "inner.zip!/data.pkl". Compression
layers (gzip, bz2, xz, lzma, zlib, lz4) wrap one stream and add no link to the chain.

Depth: `depth` is how many containers (archives or compression layers) enclose the bytes
being routed; the members of a file on disk are at depth 1. A container found at depth d
is opened only if d + 1 <= limits.archive_max_depth.
"""

from __future__ import annotations

import io
import posixpath
from typing import Protocol

from provscan.collectors.serialization.numpy_scan import scan_npy_stream
from provscan.collectors.serialization.pickle.scan import (
    describe,
    scan_pickle_bytes,
    walk_pickles,
)
from provscan.collectors.sniff import is_tar_header, sniff
from provscan.limits import Limits
from provscan.report import FileFormat, Finding, Location, Severity, located_finding

CHAIN = "!/"
_CHUNK = 1024 * 1024
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Rejoined:
    """A stream whose first bytes were already taken to sniff it, put back in front."""

    def __init__(self, head: bytes, rest: Readable) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            head, self._head = self._head, b""
            return head + self._rest.read()
        if self._head:
            head, self._head = self._head[:size], self._head[size:]
            return head if len(head) == size else head + self._rest.read(size - len(head))
        return self._rest.read(size)


def read_bounded(stream: Readable, count: int) -> bytes:
    """Read up to `count` bytes in chunks, so a claimed length never allocates up front."""
    parts: list[bytes] = []
    left = count
    while left > 0:
        piece = stream.read(min(left, _CHUNK))
        if not piece:
            break
        parts.append(piece)
        left -= len(piece)
    return b"".join(parts)


def member_location(parent: Location, name: str) -> Location:
    member = name if parent.member is None else f"{parent.member}{CHAIN}{name}"
    return Location(path=parent.path, member=member)


def escapes(name: str) -> bool:
    """Whether an archive path leaves the extraction folder (absolute, drive, or ..)."""
    path = name.replace("\\", "/")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        return True
    return posixpath.normpath(path).split("/")[0] == ".."


def name_findings(name: str, location: Location) -> list[Finding]:
    if not escapes(name):
        return []
    message = f"{describe(location)}: member name {name!r} points outside the extraction folder"
    return [
        located_finding(
            "SER-ARCHIVE-PATH-TRAVERSAL", Severity.HIGH, message, location, name=name[:500]
        )
    ]


def too_deep(location: Location, limits: Limits, depth: int) -> Finding | None:
    """A finding when a container at `depth` is one level too many to open."""
    if depth + 1 <= limits.archive_max_depth:
        return None
    message = (
        f"{describe(location)}: archive nested {depth + 1} levels deep, over the limit "
        f"{limits.archive_max_depth}; its content was not scanned"
    )
    evidence = {"depth": depth + 1, "max_depth": limits.archive_max_depth}
    return located_finding("SER-ARCHIVE-TOO-DEEP", Severity.HIGH, message, location, **evidence)


def may_be_pickle(prefix: bytes, limits: Limits) -> bool:
    """Whether a prefix parses as a pickle start (raw storage can begin like one by chance)."""
    probe = walk_pickles(
        io.BytesIO(prefix), limit=len(prefix), max_opcodes=limits.pickle_max_opcodes
    )
    return probe.error is None or probe.exhausted or probe.events > 0


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
    # Imported here: the container scanners route their own members back to this function.
    from provscan.collectors.serialization.containers import archives, compression, zip_scan

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
            return archives.scan_tar_stream(joined, location, limits, depth + 1)
        return archives.scan_compressed_stream(joined, detected, size, location, limits, depth + 1)
    if fmt in (FileFormat.ZIP, FileFormat.SEVENZIP):
        deep = too_deep(location, limits, depth)
        if deep is not None:
            return [deep]
        data = _read_whole(head, stream, size, location, limits)
        if isinstance(data, Finding):
            return [data]
        if fmt is FileFormat.ZIP:
            return zip_scan.scan_zip_archive(io.BytesIO(data), location, limits, depth + 1)
        return archives.scan_7z_archive(io.BytesIO(data), location, limits, depth + 1)
    # Named like a pickle but not sniffed as one: pickle.load still reads it, so walk it.
    return _scan_pickle(head, stream, size, location, limits, named) if named else []


def scan_member_bytes(
    data: bytes, location: Location, limits: Limits, depth: int, *, name: str = ""
) -> list[Finding]:
    """Route an in-memory member (a 7z member) by its content."""
    return scan_member_stream(io.BytesIO(data), len(data), location, limits, depth, name=name)
