"""What does a zip member's local header say, and which bytes follow it for a loader?"""

from __future__ import annotations

import struct
import zipfile
import zlib
from typing import IO, Any

from provscan.collectors.serialization.members import read_bounded
from provscan.limits import Limits

_LOCAL = b"PK\x03\x04"
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")


def header_disagreement(handle: IO[bytes], info: zipfile.ZipInfo) -> dict[str, Any] | None:
    """How the member's local header differs from its central directory entry, if it does.

    Scanners that walk local headers and loaders that trust the central directory (zipfile,
    PyTorch) then see different files (picklescan/modelscan bypass history).
    """
    handle.seek(info.header_offset)
    fixed = handle.read(_LOCAL_HEADER.size)
    if len(fixed) < _LOCAL_HEADER.size or fixed[:4] != _LOCAL:
        return {"local_header": "missing", "offset": info.header_offset}
    fields = _LOCAL_HEADER.unpack(fixed)
    flags, method, crc, csize, usize, name_len = fields[3], fields[4], *fields[7:11]
    local_name = handle.read(name_len)  # name_len is 16 bits: bounded
    encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
    central_name = info.orig_filename.encode(encoding, errors="replace")
    differences: dict[str, Any] = {}
    if local_name != central_name:
        differences["name"] = [info.orig_filename, local_name.decode(encoding, "replace")]
    if method != info.compress_type:
        differences["method"] = [info.compress_type, method]
    # With a data descriptor (flag bit 3) the local sizes are zero by design; 0xFFFFFFFF
    # defers to the zip64 extra field.
    if not flags & 0x08 and 0xFFFFFFFF not in (csize, usize):
        for key, local, central in (
            ("crc", crc, info.CRC),
            ("compressed_size", csize, info.compress_size),
            ("size", usize, info.file_size),
        ):
            if local != central:
                differences[key] = [central, local]
    return differences or None


def raw_member(handle: IO[bytes], info: zipfile.ZipInfo, limits: Limits) -> bytes | None:
    """A member's bytes read as PyTorch's reader finds them (local header lengths, central
    sizes), ignoring what makes zipfile refuse it: CRC, flag bits, a differing local name."""
    handle.seek(info.header_offset)
    fixed = handle.read(_LOCAL_HEADER.size)
    if len(fixed) < _LOCAL_HEADER.size or fixed[:4] != _LOCAL:
        return None
    name_len, extra_len = _LOCAL_HEADER.unpack(fixed)[-2:]
    handle.seek(info.header_offset + _LOCAL_HEADER.size + name_len + extra_len)
    raw = read_bounded(handle, min(info.compress_size, limits.archive_max_member_bytes))
    if info.compress_type == zipfile.ZIP_STORED:
        return raw[: limits.pickle_max]
    if info.compress_type == zipfile.ZIP_DEFLATED:
        # max_length bounds the output whatever the ratio.
        return zlib.decompressobj(-15).decompress(raw, limits.pickle_max)
    return None
