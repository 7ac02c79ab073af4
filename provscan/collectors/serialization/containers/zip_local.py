"""What does a zip member's local header say, and which bytes follow it for a loader?"""

from __future__ import annotations

import struct
import zipfile
import zlib
from typing import IO, Any

from provscan.collectors.serialization.containers.streams import read_bounded
from provscan.collectors.serialization.containers.zip_entries import LOCAL, Entry, read_at
from provscan.limits import Limits

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")


def header_disagreement(handle: IO[bytes], entry: Entry) -> dict[str, Any] | None:
    """How the member's local header differs from its central directory entry, if it does.

    Scanners that walk local headers and loaders that trust the central directory (zipfile,
    PyTorch) then see different files (picklescan/modelscan bypass history).
    """
    fixed = read_at(handle, entry.header_offset, _LOCAL_HEADER.size)
    if len(fixed) < _LOCAL_HEADER.size or fixed[:4] != LOCAL:
        return {"local_header": "missing", "offset": entry.header_offset}
    fields = _LOCAL_HEADER.unpack(fixed)
    flags, method, crc, csize, usize, name_len = fields[3], fields[4], *fields[7:11]
    local_name = handle.read(name_len)  # name_len is 16 bits: bounded
    encoding = "utf-8" if entry.flags & 0x800 else "cp437"
    differences: dict[str, Any] = {}
    if local_name != entry.raw_name:
        differences["name"] = [
            entry.raw_name.decode(encoding, "replace"),
            local_name.decode(encoding, "replace"),
        ]
    if method != entry.method:
        differences["method"] = [entry.method, method]
    # With a data descriptor (flag bit 3) the local sizes are zero by design; 0xFFFFFFFF
    # defers to the zip64 extra field.
    if not flags & 0x08 and 0xFFFFFFFF not in (csize, usize):
        for key, local, central in (
            ("crc", crc, entry.crc),
            ("compressed_size", csize, entry.compress_size),
            ("size", usize, entry.file_size),
        ):
            if local != central:
                differences[key] = [central, local]
    return differences or None


def raw_member(handle: IO[bytes], entry: Entry, limits: Limits) -> bytes | None:
    """A member's bytes read as PyTorch's reader finds them (local header lengths, central
    sizes), ignoring what makes zipfile refuse it: CRC, flag bits, a differing local name."""
    fixed = read_at(handle, entry.header_offset, _LOCAL_HEADER.size)
    if len(fixed) < _LOCAL_HEADER.size or fixed[:4] != LOCAL:
        return None
    name_len, extra_len = _LOCAL_HEADER.unpack(fixed)[-2:]
    handle.seek(entry.header_offset + _LOCAL_HEADER.size + name_len + extra_len)
    if entry.method == zipfile.ZIP_STORED:
        return read_bounded(handle, min(entry.compress_size, limits.pickle_max))
    raw = read_bounded(handle, min(entry.compress_size, limits.archive_max_member_bytes))
    if entry.method == zipfile.ZIP_DEFLATED:
        # max_length bounds the output whatever the ratio.
        return zlib.decompressobj(-15).decompress(raw, limits.pickle_max)
    return None


class StoredSlice:
    """A stored member's bytes read straight from the archive, in order, never past its end
    (seeking before each read, so other readers of the same handle do not disturb it)."""

    def __init__(self, handle: IO[bytes], start: int, length: int) -> None:
        self._handle = handle
        self._position = start
        self._end = start + length

    def read(self, size: int = -1, /) -> bytes:
        left = self._end - self._position
        want = left if size < 0 else min(size, left)
        if want <= 0:
            return b""
        self._handle.seek(self._position)
        data = read_bounded(self._handle, want)
        self._position += len(data)
        return data
