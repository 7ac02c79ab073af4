"""Where does each zip entry's data lie, as a reader resolves its records?"""

from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass
from typing import IO

# Record signatures and fixed sizes (PKWARE APPNOTE.TXT 4.3).
EOCD = b"PK\x05\x06"
EOCD64 = b"PK\x06\x06"
LOCATOR = b"PK\x06\x07"
CENTRAL = b"PK\x01\x02"
LOCAL = b"PK\x03\x04"
DESCRIPTOR = b"PK\x07\x08"
EOCD_SIZE = 22
EOCD64_SIZE = 56
LOCATOR_SIZE = 20
CENTRAL_SIZE = 46
LOCAL_SIZE = 30
MAX16 = 0xFFFF
MAX32 = 0xFFFFFFFF


@dataclass(frozen=True)
class Entry:
    """One central directory entry as a reader resolved it (offsets already adjusted)."""

    raw_name: bytes
    name: str  # the name as zipfile would show it (cp437 or UTF-8 by flag bit 11)
    header_offset: int
    compress_size: int
    file_size: int
    method: int
    flags: int
    crc: int
    # miniz also takes the DOS directory attribute for a directory, and reads no bytes of it.
    directory: bool = False


@dataclass(frozen=True)
class Span:
    """Where a member's data lies once its local header is read: what the loader reads."""

    data_offset: int
    compress_size: int
    method: int


def read_at(handle: IO[bytes], offset: int, size: int) -> bytes:
    """Up to `size` bytes at `offset`; nothing for an offset before the file (zipfile moves
    member offsets by its "concat", which a hostile end record can make negative)."""
    if offset < 0 or size <= 0 or offset >= 1 << 62:
        return b""
    handle.seek(offset)
    return handle.read(size)


def zipfile_entries(archive: zipfile.ZipFile) -> list[Entry]:
    """The entries zipfile listed (offsets already moved by its "concat")."""
    return [
        Entry(
            raw_name=info.orig_filename.encode(
                "utf-8" if info.flag_bits & 0x800 else "cp437", errors="replace"
            ),
            name=info.filename,
            header_offset=info.header_offset,
            compress_size=info.compress_size,
            file_size=info.file_size,
            method=info.compress_type,
            flags=info.flag_bits,
            crc=info.CRC,
            # Not is_dir(): CPython 3.11's indexes the name's last character, and a
            # central entry may have an empty name.
            directory=info.filename.endswith("/"),
        )
        for info in archive.infolist()
    ]


def span_of(handle: IO[bytes], entry: Entry, size: int) -> Span | None:
    """Where the loader reads the entry's data: local header lengths, central sizes."""
    local = read_at(handle, entry.header_offset, LOCAL_SIZE)
    if len(local) < LOCAL_SIZE or local[:4] != LOCAL:
        return None
    name_len, extra_len = struct.unpack_from("<2H", local, 26)
    start = entry.header_offset + LOCAL_SIZE + name_len + extra_len
    if start + entry.compress_size > size:
        return None
    return Span(start, entry.compress_size, entry.method)
