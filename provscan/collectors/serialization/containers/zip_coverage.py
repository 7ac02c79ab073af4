"""Which bytes of a zip does no part of a reader's view account for, or do two parts share?"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from provscan.collectors.serialization.containers.zip_entries import (
    DESCRIPTOR,
    EOCD,
    EOCD64,
    EOCD64_SIZE,
    EOCD_SIZE,
    LOCATOR,
    LOCATOR_SIZE,
    MAX16,
    Entry,
    Span,
    read_at,
    span_of,
)
from provscan.collectors.serialization.containers.zip_miniz import BLOCK


def _descriptor_length(handle: IO[bytes], entry: Entry, end: int) -> int:
    """Bytes of the data descriptor after the data (flag bit 3), in whichever of its four
    shapes (signature or not, 32- or 64-bit sizes) matches the central entry."""
    tail = read_at(handle, end, 24)
    for signed in (True, False):
        body = tail[4:] if signed else tail
        if signed and tail[:4] != DESCRIPTOR:
            continue
        for width, shape in ((4, "<3L"), (8, "<LQQ")):
            need = 4 + 2 * width
            if len(body) >= need:
                crc, csize, usize = struct.unpack_from(shape, body)
                if (crc, csize, usize) == (entry.crc, entry.compress_size, entry.file_size):
                    return need + (4 if signed else 0)
    return 0


@dataclass(frozen=True)
class Region:
    start: int
    end: int
    what: str


def regions(
    handle: IO[bytes],
    entries: list[Entry],
    size: int,
    directory: tuple[int, int],
    tail: list[Region],
    spans: dict[int, Span | None] | None = None,
) -> list[Region]:
    """Every byte range one reader's view accounts for: local headers with their data and
    descriptors, the central directory, the end records (`tail`)."""
    found: list[Region] = []
    known = spans if spans is not None else {}
    for entry in entries:
        span = known[id(entry)] if id(entry) in known else span_of(handle, entry, size)
        if span is None:
            continue
        end = span.data_offset + span.compress_size
        if entry.flags & 0x08:
            end += _descriptor_length(handle, entry, end)
        found.append(Region(entry.header_offset, end, f"member {entry.name}"))
    offset, length = directory
    found.append(Region(offset, offset + length, "central directory"))
    found.extend(tail)
    return sorted(found, key=lambda r: (r.start, r.end))


def end_records(handle: IO[bytes], size: int) -> list[int]:
    """Offsets of every end-record signature in the window both readers search."""
    start = max(size - (MAX16 + EOCD_SIZE + BLOCK), 0)
    tail = read_at(handle, start, size - start)
    found: list[int] = []
    at = tail.find(EOCD)
    while at >= 0:
        found.append(start + at)
        at = tail.find(EOCD, at + 1)
    return found


def coverage_problems(found: list[Region], size: int) -> list[dict[str, Any]]:
    """Leading, trailing, unaccounted and overlapping byte ranges of one view."""
    problems: list[dict[str, Any]] = []
    if not found:
        return problems
    if found[0].start > 0:
        problems.append({"kind": "leading", "start": 0, "end": found[0].start})
    reach = found[0]
    for region in found[1:]:
        if region.start < reach.end:
            problems.append(
                {
                    "kind": "overlap",
                    "start": region.start,
                    "end": min(region.end, reach.end),
                    "parts": [reach.what, region.what],
                }
            )
        elif region.start > reach.end:
            problems.append({"kind": "gap", "start": reach.end, "end": region.start})
        if region.end > reach.end:
            reach = region
    if reach.end < size:
        problems.append({"kind": "trailing", "start": reach.end, "end": size})
    return problems


def zipfile_end(handle: IO[bytes], size: int) -> tuple[int, int | None] | None:
    """zipfile._EndRecData's choice: (end record offset, zip64 end record offset or None)."""
    if size < EOCD_SIZE:
        return None
    last = read_at(handle, size - EOCD_SIZE, EOCD_SIZE)
    if last[:4] == EOCD and last[-2:] == b"\x00\x00":
        end = size - EOCD_SIZE
    else:
        start = max(size - (1 << 16) - EOCD_SIZE, 0)
        at = read_at(handle, start, size - start).rfind(EOCD)
        if at < 0 or size - (start + at) < EOCD_SIZE:
            return None
        end = start + at
    zip64 = end - LOCATOR_SIZE - EOCD64_SIZE
    if zip64 < 0:
        return end, None
    if read_at(handle, end - LOCATOR_SIZE, 4) != LOCATOR:
        return end, None
    return end, zip64 if read_at(handle, zip64, 4) == EOCD64 else None


def tail_regions(
    view_end: int, end_length: int, zip64: int | None, handle: IO[bytes]
) -> list[Region]:
    found = [Region(view_end, view_end + end_length, "end of central directory")]
    if zip64 is not None:
        (record_size,) = struct.unpack("<Q", read_at(handle, zip64 + 4, 8))
        found.append(Region(zip64, zip64 + 12 + min(record_size, 1 << 20), "zip64 end record"))
        found.append(Region(view_end - LOCATOR_SIZE, view_end, "zip64 end locator"))
    return found


def covered(ranges: list[tuple[int, int]]) -> Callable[[int], bool]:
    """A test for "does this offset fall inside one of the (start, end) ranges"."""
    ranges = sorted(ranges)
    starts = [start for start, _ in ranges]
    reach: list[int] = []  # the furthest end among ranges starting at or before each start
    for _, end in ranges:
        reach.append(max(end, reach[-1]) if reach else end)

    def inside(offset: int) -> bool:
        at = bisect.bisect_right(starts, offset) - 1
        return at >= 0 and reach[at] > offset

    return inside


def directory_size(handle: IO[bytes], py_end: tuple[int, int | None] | None) -> int:
    if py_end is None:
        return 0
    end, zip64 = py_end
    if zip64 is not None:
        (cd_size,) = struct.unpack("<Q", read_at(handle, zip64 + 40, 8))
        return int(cd_size)
    (cd_size,) = struct.unpack("<L", read_at(handle, end + 12, 4))
    return int(cd_size)
