"""Which entries does PyTorch's zip reader (miniz) list, look up by name, and refuse?"""

from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass, field
from typing import IO

from provscan.collectors.serialization.containers.zip_entries import (
    CENTRAL,
    CENTRAL_SIZE,
    EOCD,
    EOCD64,
    EOCD64_SIZE,
    EOCD_SIZE,
    LOCAL_SIZE,
    LOCATOR,
    LOCATOR_SIZE,
    MAX16,
    MAX32,
    Entry,
    read_at,
)

# miniz reads the tail in 4 KiB blocks, stepping back 4093 bytes at a time.
BLOCK = 4096
# General purpose flags miniz refuses at get_record: encrypted, patch data, strong encryption.
_REFUSED_FLAGS = 0x01 | 0x20 | 0x40
_MASKED_DIRECTORY = 0x2000


@dataclass
class MinizView:
    """The archive as PyTorch's reader (miniz) opens it; `error` says why it refuses."""

    entries: list[Entry] = field(default_factory=list)
    end_offset: int | None = None
    end_length: int = 0  # the end record with its comment, as far as the file holds it
    zip64_offset: int | None = None
    directory: tuple[int, int] | None = None  # (offset, size)
    error: str | None = None
    _index: dict[bytes, list[int]] = field(default_factory=dict)
    _sorted: list[int] | None = None

    @property
    def prefix(self) -> bytes | None:
        """The archive folder torch looks names up in: the first entry's top directory."""
        if not self.entries or b"/" not in self.entries[0].raw_name:
            return None
        return self.entries[0].raw_name.split(b"/", 1)[0]

    def duplicates(self) -> list[str]:
        """Names miniz holds more than once, compared as it compares them (ignoring case)."""
        return sorted(self.entries[hits[0]].name for hits in self._index.values() if len(hits) > 1)

    def locate(self, name: bytes) -> Entry | None:
        """mz_zip_reader_locate_file(name, flags=0): case-insensitive binary search."""
        folded = _lower(name)
        hits = self._index.get(folded)
        if not hits:
            return None
        if len(hits) == 1:
            return self.entries[hits[0]]
        if self._sorted is None:
            self._sorted = _heap_sort([_lower(e.raw_name) for e in self.entries])
        keys = [_lower(e.raw_name) for e in self.entries]
        low, high = 0, len(self._sorted) - 1
        while low <= high:
            middle = low + ((high - low) >> 1)
            index = self._sorted[middle]
            order = _compare(keys[index], folded)
            if order == 0:
                return self.entries[index]
            if order < 0:
                low = middle + 1
            else:
                high = middle - 1
        return None  # pragma: no cover - the index says a copy exists


def _lower(name: bytes) -> bytes:
    # MZ_TOLOWER: ASCII letters only.
    return name.translate(_LOWER)


_LOWER = bytes(c + 32 if 65 <= c <= 90 else c for c in range(256))


def _compare(left: bytes, right: bytes) -> int:
    """mz_zip_filename_compare on already-lowered names."""
    for a, b in zip(left, right, strict=False):
        if a != b:
            return a - b
    return len(left) - len(right)


def _less(left: bytes, right: bytes) -> bool:
    """mz_zip_reader_filename_less on already-lowered names."""
    for a, b in zip(left, right, strict=False):
        if a != b:
            return a < b
    return len(left) < len(right)


def _heap_sort(keys: list[bytes]) -> list[int]:
    """mz_zip_reader_sort_central_dir_offsets_by_filename: the same (unstable) heap sort, so
    duplicate names end up in the order miniz's binary search sees them."""
    size = len(keys)
    indices = list(range(size))
    if size <= 1:
        return indices

    def sift(root: int, end: int) -> None:
        while True:
            child = (root << 1) + 1
            if child >= end:
                return
            if child + 1 < end and _less(keys[indices[child]], keys[indices[child + 1]]):
                child += 1
            if not _less(keys[indices[root]], keys[indices[child]]):
                return
            indices[root], indices[child] = indices[child], indices[root]
            root = child

    for start in range((size - 2) >> 1, -1, -1):
        sift(start, size)
    for end in range(size - 1, 0, -1):
        indices[end], indices[0] = indices[0], indices[end]
        sift(0, end)
    return indices


def _locate_end(handle: IO[bytes], size: int) -> int | None:
    """mz_zip_reader_locate_header_sig: the last end-record signature with 22 bytes after it."""
    if size < EOCD_SIZE:
        return None
    cursor = max(size - BLOCK, 0)
    while True:
        block = read_at(handle, cursor, min(BLOCK, size - cursor))
        at = len(block) - 4
        while at >= 0:
            at = block.rfind(EOCD, 0, at + 4)
            if at < 0:
                break
            if size - (cursor + at) >= EOCD_SIZE:
                return cursor + at
            at -= 1
        if cursor == 0 or size - cursor >= MAX16 + EOCD_SIZE:
            return None
        cursor = max(cursor - (BLOCK - 3), 0)


def _zip64_extra(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    """The zip64 extended-information field (0x0001) fills the 32-bit fields set to ~0."""
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from("<2H", extra, at)
        body = extra[at + 4 : at + 4 + length]
        if len(body) < length:
            raise ValueError("extra field runs past its entry")
        if kind == 1:
            values = [usize, csize, offset]
            cursor = 0
            for i, value in enumerate(values):
                if value == MAX32:
                    if cursor + 8 > len(body):
                        raise ValueError("zip64 extra field is short")
                    (values[i],) = struct.unpack_from("<Q", body, cursor)
                    cursor += 8
            return values[0], values[1], values[2]
        at += 4 + length
    if at != len(extra):
        raise ValueError("extra field is malformed")
    return usize, csize, offset


def _decode(raw: bytes, flags: int) -> str:
    return raw.decode("utf-8" if flags & 0x800 else "cp437", errors="replace")


def read_miniz(handle: IO[bytes], size: int, max_entries: int) -> MinizView:
    """mz_zip_reader_init + mz_zip_reader_read_central_dir, as torch calls it (flags 0)."""
    view = MinizView()
    end = _locate_end(handle, size)
    if end is None:
        view.error = "no end of central directory record"
        return view
    record = read_at(handle, end, EOCD_SIZE)
    (disk, cd_disk, on_disk, total, cd_size, cd_offset, comment) = struct.unpack_from(
        "<4H2LH", record, 4
    )
    view.end_offset = end
    view.end_length = min(EOCD_SIZE + comment, size - end)
    if end >= LOCATOR_SIZE + EOCD64_SIZE:
        locator = read_at(handle, end - LOCATOR_SIZE, LOCATOR_SIZE)
        if locator[:4] == LOCATOR:
            _, z64_offset, disks = struct.unpack_from("<LQL", locator, 4)
            if z64_offset > size - EOCD64_SIZE:
                view.error = "zip64 end record offset is past the end"
                return view
            z64 = read_at(handle, z64_offset, EOCD64_SIZE)
            if z64[:4] == EOCD64:
                view.zip64_offset = z64_offset
                (record_size, _, _, disk, cd_disk, on_disk, total, cd_size, cd_offset) = (
                    struct.unpack_from("<Q2H2L4Q", z64, 4)
                )
                if record_size < EOCD64_SIZE - 12:
                    view.error = "zip64 end record is too short"
                elif disks != 1:
                    view.error = "multi-disk archive"
                elif max(total, on_disk, cd_size) > MAX32:
                    view.error = "zip64 directory too large for miniz"
                if view.error:
                    return view
    if total != on_disk or ((disk | cd_disk) != 0 and (disk != 1 or cd_disk != 1)):
        view.error = "multi-disk archive"
        return view
    if cd_size < total * CENTRAL_SIZE or cd_offset + cd_size > size:
        view.error = "central directory does not fit the file"
        return view
    view.directory = (cd_offset, cd_size)
    if total > max_entries:
        view.error = f"declares {total} entries"
        return view
    handle.seek(cd_offset)
    left = cd_size
    for _ in range(total):
        fixed = handle.read(CENTRAL_SIZE)
        if left < CENTRAL_SIZE or len(fixed) < CENTRAL_SIZE or fixed[:4] != CENTRAL:
            view.error = "central directory entry is corrupt"
            return view
        fields = struct.unpack_from("<6H3L5H2L", fixed, 4)
        flags, method, crc, csize, usize = fields[2], fields[3], *fields[6:9]
        name_len, extra_len, comment_len, disk_start = fields[9:13]
        external, offset = fields[14], fields[15]
        variable = handle.read(name_len + extra_len + comment_len)
        if (csize != MAX32 and usize != MAX32) and (
            (method == 0 and usize != csize) or (usize and not csize)
        ):
            view.error = "entry sizes are inconsistent"
            return view
        if disk_start == MAX16 or (disk_start != disk and disk_start != 1):
            view.error = "multi-disk archive"
            return view
        if csize != MAX32 and offset + LOCAL_SIZE + csize > size:
            view.error = "entry runs past the end of the file"
            return view
        if flags & _MASKED_DIRECTORY:
            view.error = "masked local directory (encrypted)"
            return view
        whole = CENTRAL_SIZE + name_len + extra_len + comment_len
        if whole > left or len(variable) < whole - CENTRAL_SIZE:
            view.error = "central directory entry runs past the directory"
            return view
        left -= whole
        raw_name = variable[:name_len]
        extra = variable[name_len : name_len + extra_len]
        if MAX32 in (csize, usize, offset):
            try:
                usize, csize, offset = _zip64_extra(extra, usize, csize, offset)
            except ValueError as exc:
                view.error = str(exc)
                return view
        entry = Entry(
            raw_name=raw_name,
            name=_decode(raw_name, flags),
            header_offset=offset,
            compress_size=csize,
            file_size=usize,
            method=method,
            flags=flags,
            crc=crc,
            directory=raw_name.endswith(b"/") or bool(external & 0x10),
        )
        view._index.setdefault(_lower(raw_name), []).append(len(view.entries))
        view.entries.append(entry)
    return view


def refusal(entry: Entry) -> str | None:
    """Why miniz's get_record refuses this entry, if it does."""
    if entry.method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return f"compression method {entry.method} (torch reads stored and deflate only)"
    if entry.flags & _REFUSED_FLAGS:
        return f"flag bits {entry.flags & _REFUSED_FLAGS:#x} (encryption or patch data)"
    return None
