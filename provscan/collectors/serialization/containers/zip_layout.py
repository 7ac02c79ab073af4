"""Which bytes does each zip reader take for each member, and where do the readers part ways?

`torch.load` opens a zip checkpoint with `torch._C.PyTorchFileReader`
(caffe2/serialize/inline_container.cc over the miniz 3.0.2 that PyTorch vendors,
https://github.com/pytorch/pytorch/blob/main/caffe2/serialize/inline_container.cc ,
https://github.com/pytorch/pytorch/tree/main/third_party/miniz-3.0.2); numpy (`.npz`), Keras and most
scanners use Python's `zipfile`. This module models miniz's reader byte for byte and compares
it with what `zipfile` resolves. Facts below were established by experiment with torch
2.13.0+cpu and CPython 3.11.7 `zipfile` (hand-built archives, read with
`PyTorchFileReader(path).get_all_records()` / `.get_record(name)`, `torch.load(...,
weights_only=False)` and `zipfile.ZipFile`):

- `torch.load` takes the zip path only when the file starts with `PK\\x03\\x04`
  (`torch.serialization._is_zipfile`); anything else goes to the legacy tar / stacked-pickle
  reader, so a pickle prepended to a zip runs as a pickle.
- End record: miniz scans back from the end for the last `PK\\x05\\x06` with at least 22
  bytes after it (about 64 KiB back at most). zipfile takes the last signature in that window
  whatever follows it, and refuses the file when fewer than 22 bytes follow: a truncated
  signature at the end hides the archive from zipfile but not from torch.
- ZIP64: miniz reads the zip64 end record at the offset the locator names; zipfile ignores
  that offset and reads the 56 bytes just before the locator, so two zip64 end records make
  the readers use two different central directories.
- Central directory: miniz reads it at the offset the end record gives. zipfile reads it
  just before the end record ("concat" = its position minus that offset, added to every
  member offset), so prepended bytes move zipfile's members but break miniz, and a second
  directory at the stated offset is what torch reads.
- Entry count: miniz reads exactly the count the end record gives; zipfile reads entries
  until the directory's byte size is used up, so extra entries are zipfile's alone.
- Names: miniz sorts the directory (heap sort of ASCII-lowercased names) and binary-searches
  it, so lookups ignore case and, with duplicates, return whichever copy the search lands on
  (for 3 copies the middle one; zipfile returns the last). zipfile cuts a name at its first
  NUL; miniz compares all its bytes.
- Prefix: torch takes the first entry's name up to its first `/` as the archive folder and
  looks up `<folder>/data.pkl`, `<folder>/version` ...; `get_all_records()` (called by
  `torch.load`) raises when any entry is outside that folder, so torch 2.13 refuses such
  archives (older releases ignored those entries).
- Local headers: both readers take the name and extra lengths from the local header to find
  the data, and the sizes, method and flags from the central directory; neither checks the
  local name (zipfile refuses a differing name, miniz does not), CRCs (miniz is built
  without them) or local sizes.
- Leading / trailing bytes are ignored by both when the offsets still fit; data descriptors
  (torch.save writes them, flag bit 3) are ignored by both.
- An entry with the DOS directory attribute (0x10) is a directory to miniz, which hands out
  no bytes for it (zipfile only goes by a trailing `/`).
- Methods: miniz reads stored and deflate only (bz2 / lzma members fail at `get_record`);
  encryption flags (bits 0 and 6) and patch data (bit 5) fail in both readers.
- Overlapping entries (two directory entries on one local header, or data running into
  another member) are read by both (zipfile 3.11.7 has no overlap check; 3.12.2+ refuses
  some).
"""

from __future__ import annotations

import bisect
import struct
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

_EOCD = b"PK\x05\x06"
_EOCD64 = b"PK\x06\x06"
_LOCATOR = b"PK\x06\x07"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_DESCRIPTOR = b"PK\x07\x08"
_EOCD_SIZE = 22
_EOCD64_SIZE = 56
_LOCATOR_SIZE = 20
_CENTRAL_SIZE = 46
_LOCAL_SIZE = 30
_MAX16 = 0xFFFF
_MAX32 = 0xFFFFFFFF
# miniz reads the tail in 4 KiB blocks, stepping back 4093 bytes at a time.
_BLOCK = 4096
# General purpose flags miniz refuses at get_record: encrypted, patch data, strong encryption.
_REFUSED_FLAGS = 0x01 | 0x20 | 0x40
# Records torch.load asks its reader for by name, under the archive folder
# (torch/serialization.py _load, inline_container.cc init).
TORCH_RECORDS = (
    "data.pkl",
    "version",
    ".data/version",
    "byteorder",
    ".format_version",
    ".storage_alignment",
    ".data/serialization_id",
    "constants.pkl",
)
_MASKED_DIRECTORY = 0x2000


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


def read_at(handle: IO[bytes], offset: int, size: int) -> bytes:
    """Up to `size` bytes at `offset`; nothing for an offset before the file (zipfile moves
    member offsets by its "concat", which a hostile end record can make negative)."""
    if offset < 0 or size <= 0 or offset >= 1 << 62:
        return b""
    handle.seek(offset)
    return handle.read(size)


def _locate_end(handle: IO[bytes], size: int) -> int | None:
    """mz_zip_reader_locate_header_sig: the last end-record signature with 22 bytes after it."""
    if size < _EOCD_SIZE:
        return None
    cursor = max(size - _BLOCK, 0)
    while True:
        block = read_at(handle, cursor, min(_BLOCK, size - cursor))
        at = len(block) - 4
        while at >= 0:
            at = block.rfind(_EOCD, 0, at + 4)
            if at < 0:
                break
            if size - (cursor + at) >= _EOCD_SIZE:
                return cursor + at
            at -= 1
        if cursor == 0 or size - cursor >= _MAX16 + _EOCD_SIZE:
            return None
        cursor = max(cursor - (_BLOCK - 3), 0)


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
                if value == _MAX32:
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
    record = read_at(handle, end, _EOCD_SIZE)
    (disk, cd_disk, on_disk, total, cd_size, cd_offset, comment) = struct.unpack_from(
        "<4H2LH", record, 4
    )
    view.end_offset = end
    view.end_length = min(_EOCD_SIZE + comment, size - end)
    if end >= _LOCATOR_SIZE + _EOCD64_SIZE:
        locator = read_at(handle, end - _LOCATOR_SIZE, _LOCATOR_SIZE)
        if locator[:4] == _LOCATOR:
            _, z64_offset, disks = struct.unpack_from("<LQL", locator, 4)
            if z64_offset > size - _EOCD64_SIZE:
                view.error = "zip64 end record offset is past the end"
                return view
            z64 = read_at(handle, z64_offset, _EOCD64_SIZE)
            if z64[:4] == _EOCD64:
                view.zip64_offset = z64_offset
                (record_size, _, _, disk, cd_disk, on_disk, total, cd_size, cd_offset) = (
                    struct.unpack_from("<Q2H2L4Q", z64, 4)
                )
                if record_size < _EOCD64_SIZE - 12:
                    view.error = "zip64 end record is too short"
                elif disks != 1:
                    view.error = "multi-disk archive"
                elif max(total, on_disk, cd_size) > _MAX32:
                    view.error = "zip64 directory too large for miniz"
                if view.error:
                    return view
    if total != on_disk or ((disk | cd_disk) != 0 and (disk != 1 or cd_disk != 1)):
        view.error = "multi-disk archive"
        return view
    if cd_size < total * _CENTRAL_SIZE or cd_offset + cd_size > size:
        view.error = "central directory does not fit the file"
        return view
    view.directory = (cd_offset, cd_size)
    if total > max_entries:
        view.error = f"declares {total} entries"
        return view
    handle.seek(cd_offset)
    left = cd_size
    for _ in range(total):
        fixed = handle.read(_CENTRAL_SIZE)
        if left < _CENTRAL_SIZE or len(fixed) < _CENTRAL_SIZE or fixed[:4] != _CENTRAL:
            view.error = "central directory entry is corrupt"
            return view
        fields = struct.unpack_from("<6H3L5H2L", fixed, 4)
        flags, method, crc, csize, usize = fields[2], fields[3], *fields[6:9]
        name_len, extra_len, comment_len, disk_start = fields[9:13]
        external, offset = fields[14], fields[15]
        variable = handle.read(name_len + extra_len + comment_len)
        if (csize != _MAX32 and usize != _MAX32) and (
            (method == 0 and usize != csize) or (usize and not csize)
        ):
            view.error = "entry sizes are inconsistent"
            return view
        if disk_start == _MAX16 or (disk_start != disk and disk_start != 1):
            view.error = "multi-disk archive"
            return view
        if csize != _MAX32 and offset + _LOCAL_SIZE + csize > size:
            view.error = "entry runs past the end of the file"
            return view
        if flags & _MASKED_DIRECTORY:
            view.error = "masked local directory (encrypted)"
            return view
        whole = _CENTRAL_SIZE + name_len + extra_len + comment_len
        if whole > left or len(variable) < whole - _CENTRAL_SIZE:
            view.error = "central directory entry runs past the directory"
            return view
        left -= whole
        raw_name = variable[:name_len]
        extra = variable[name_len : name_len + extra_len]
        if _MAX32 in (csize, usize, offset):
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
    local = read_at(handle, entry.header_offset, _LOCAL_SIZE)
    if len(local) < _LOCAL_SIZE or local[:4] != _LOCAL:
        return None
    name_len, extra_len = struct.unpack_from("<2H", local, 26)
    start = entry.header_offset + _LOCAL_SIZE + name_len + extra_len
    if start + entry.compress_size > size:
        return None
    return Span(start, entry.compress_size, entry.method)


def refusal(entry: Entry) -> str | None:
    """Why miniz's get_record refuses this entry, if it does."""
    if entry.method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return f"compression method {entry.method} (torch reads stored and deflate only)"
    if entry.flags & _REFUSED_FLAGS:
        return f"flag bits {entry.flags & _REFUSED_FLAGS:#x} (encryption or patch data)"
    return None


def _descriptor_length(handle: IO[bytes], entry: Entry, end: int) -> int:
    """Bytes of the data descriptor after the data (flag bit 3), in whichever of its four
    shapes (signature or not, 32- or 64-bit sizes) matches the central entry."""
    tail = read_at(handle, end, 24)
    for signed in (True, False):
        body = tail[4:] if signed else tail
        if signed and tail[:4] != _DESCRIPTOR:
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
    start = max(size - (_MAX16 + _EOCD_SIZE + _BLOCK), 0)
    tail = read_at(handle, start, size - start)
    found: list[int] = []
    at = tail.find(_EOCD)
    while at >= 0:
        found.append(start + at)
        at = tail.find(_EOCD, at + 1)
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
    if size < _EOCD_SIZE:
        return None
    last = read_at(handle, size - _EOCD_SIZE, _EOCD_SIZE)
    if last[:4] == _EOCD and last[-2:] == b"\x00\x00":
        end = size - _EOCD_SIZE
    else:
        start = max(size - (1 << 16) - _EOCD_SIZE, 0)
        at = read_at(handle, start, size - start).rfind(_EOCD)
        if at < 0 or size - (start + at) < _EOCD_SIZE:
            return None
        end = start + at
    zip64 = end - _LOCATOR_SIZE - _EOCD64_SIZE
    if zip64 < 0:
        return end, None
    if read_at(handle, end - _LOCATOR_SIZE, 4) != _LOCATOR:
        return end, None
    return end, zip64 if read_at(handle, zip64, 4) == _EOCD64 else None


@dataclass(frozen=True)
class Problem:
    """One way the archive departs from a plain zip, or the readers from each other."""

    rule_id: str
    text: str
    evidence: dict[str, Any]
    member: str | None = None


@dataclass
class Layout:
    problems: list[Problem] = field(default_factory=list)
    # Entries torch reads whose bytes zipfile never hands out: scan them raw as well.
    torch_only: list[Entry] = field(default_factory=list)
    # What torch.load reads as <folder>/data.pkl, if it opens the archive.
    torch_data_pkl: Entry | None = None


def _describe_span(entry: Entry | None, span: Span | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    shown: dict[str, Any] = {"entry": entry.name, "header_offset": entry.header_offset}
    if span is not None:
        shown.update(data_offset=span.data_offset, size=span.compress_size, method=span.method)
    return shown


def _tail(view_end: int, end_length: int, zip64: int | None, handle: IO[bytes]) -> list[Region]:
    found = [Region(view_end, view_end + end_length, "end of central directory")]
    if zip64 is not None:
        (record_size,) = struct.unpack("<Q", read_at(handle, zip64 + 4, 8))
        found.append(Region(zip64, zip64 + 12 + min(record_size, 1 << 20), "zip64 end record"))
        found.append(Region(view_end - _LOCATOR_SIZE, view_end, "zip64 end locator"))
    return found


def _coverage(
    handle: IO[bytes],
    size: int,
    entries: list[Entry],
    directory: tuple[int, int],
    tail: list[Region],
    spans: dict[int, Span | None],
) -> list[dict[str, Any]]:
    return coverage_problems(regions(handle, entries, size, directory, tail, spans), size)


def compare(
    handle: IO[bytes], size: int, archive: zipfile.ZipFile | None, miniz: MinizView
) -> Layout:
    """Everything that makes torch's reader and zipfile see different archives, or that a
    plain zip writer never produces (several end records, overlaps, stray bytes)."""
    layout = Layout()
    problems = layout.problems
    py_end = zipfile_end(handle, size)
    # ------------------------------------------------------------ which reader opens it
    if (archive is not None) != (miniz.error is None):
        opened, refused = ("zipfile", "torch") if archive is not None else ("torch", "zipfile")
        why = miniz.error if archive is not None else "zipfile cannot open it"
        problems.append(
            Problem(
                "SER-ZIP-READER-DISAGREEMENT",
                f"{opened} opens the archive but {refused} refuses it ({why})",
                {"opens": opened, "refuses": refused, "why": why},
            )
        )
    # ------------------------------------------------------------ end records
    used: set[int] = set()
    if miniz.end_offset is not None:
        used.add(miniz.end_offset)
    if py_end is not None:
        used.add(py_end[0])
    if len(used) > 1:
        problems.append(
            Problem(
                "SER-ZIP-READER-DISAGREEMENT",
                f"torch uses the end record at offset {miniz.end_offset}, zipfile the one at "
                f"{py_end[0] if py_end else None}",
                {"torch_end": miniz.end_offset, "zipfile_end": py_end[0] if py_end else None},
            )
        )
    py_zip64 = py_end[1] if py_end else None
    if miniz.zip64_offset is not None and py_zip64 is not None and miniz.zip64_offset != py_zip64:
        problems.append(
            Problem(
                "SER-ZIP-MULTIPLE-END-RECORDS",
                f"two zip64 end records: torch follows the locator to offset "
                f"{miniz.zip64_offset}, zipfile reads the one at {py_zip64}",
                {"torch_zip64_end": miniz.zip64_offset, "zipfile_zip64_end": py_zip64},
            )
        )
    py_entries = zipfile_entries(archive) if archive is not None else []
    data_ranges: list[tuple[int, int]] = []
    spans: dict[int, Span | None] = {}
    for entry in [*miniz.entries, *py_entries]:
        span = span_of(handle, entry, size)
        spans[id(entry)] = span
        if span is not None:
            data_ranges.append((span.data_offset, span.data_offset + span.compress_size))
    in_data = _covered(data_ranges)
    stray = [at for at in end_records(handle, size) if at not in used and not in_data(at)]
    if stray:
        problems.append(
            Problem(
                "SER-ZIP-MULTIPLE-END-RECORDS",
                f"{len(stray) + len(used)} end-of-central-directory signatures outside member "
                "data; readers that pick another one see another archive",
                {"used": sorted(used), "others": stray[:10]},
            )
        )
    # ------------------------------------------------------------ central directories
    py_directory: tuple[int, int] | None = None
    if archive is not None:
        py_directory = (archive.start_dir, _directory_size(handle, py_end))
    if (
        miniz.directory is not None
        and py_directory is not None
        and miniz.directory[0] != py_directory[0]
    ):
        problems.append(
            Problem(
                "SER-ZIP-READER-DISAGREEMENT",
                f"torch reads the central directory at offset {miniz.directory[0]}, "
                f"zipfile at {py_directory[0]} (the end record's offset is not where the "
                "directory lies)",
                {"torch_directory": miniz.directory[0], "zipfile_directory": py_directory[0]},
            )
        )
    # ------------------------------------------------------------ names
    if miniz.error is None and archive is not None:
        _compare_names(handle, size, miniz, archive, py_entries, spans, problems)
    _duplicates(miniz, py_entries, problems)
    # ------------------------------------------------------------ byte coverage
    seen: set[tuple[str, int, int]] = set()
    views: list[tuple[list[Entry], tuple[int, int] | None, list[Region]]] = []
    if miniz.error is None and miniz.end_offset is not None:
        views.append(
            (
                miniz.entries,
                miniz.directory,
                _tail(miniz.end_offset, miniz.end_length, miniz.zip64_offset, handle),
            )
        )
    if archive is not None and py_end is not None:
        comment = len(archive.comment)
        views.append(
            (py_entries, py_directory, _tail(py_end[0], _EOCD_SIZE + comment, py_zip64, handle))
        )
    for entries, directory, tail in views:
        if directory is None:
            continue
        for problem in _coverage(handle, size, entries, directory, tail, spans):
            key = (problem["kind"], problem["start"], problem["end"])
            if key in seen:
                continue
            seen.add(key)
            problems.append(_coverage_problem(problem))
    # ------------------------------------------------------------ what torch reads
    if miniz.error is None:
        zip_spans = {spans[id(e)] for e in py_entries if spans[id(e)] is not None}
        layout.torch_only = [
            e for e in miniz.entries if spans[id(e)] is None or spans[id(e)] not in zip_spans
        ]
        prefix = miniz.prefix
        if prefix is not None:
            layout.torch_data_pkl = miniz.locate(prefix + b"/data.pkl")
    return layout


def _covered(ranges: list[tuple[int, int]]) -> Callable[[int], bool]:
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


def _directory_size(handle: IO[bytes], py_end: tuple[int, int | None] | None) -> int:
    if py_end is None:
        return 0
    end, zip64 = py_end
    if zip64 is not None:
        (cd_size,) = struct.unpack("<Q", read_at(handle, zip64 + 40, 8))
        return int(cd_size)
    (cd_size,) = struct.unpack("<L", read_at(handle, end + 12, 4))
    return int(cd_size)


_COVERAGE_RULES = {
    "leading": ("SER-ZIP-LEADING-DATA", "bytes before the first member"),
    "trailing": ("SER-ZIP-TRAILING-DATA", "bytes after the end of the archive"),
    "gap": ("SER-ZIP-GAP", "bytes between members that no entry accounts for"),
    "overlap": ("SER-ZIP-OVERLAP", "byte range shared by two parts of the archive"),
}


def _coverage_problem(problem: dict[str, Any]) -> Problem:
    rule_id, what = _COVERAGE_RULES[problem["kind"]]
    start, end = problem["start"], problem["end"]
    text = f"{end - start} {what} (offsets {start} to {end})"
    if problem["kind"] == "overlap":
        text += f": {problem['parts'][0]} and {problem['parts'][1]}"
    return Problem(rule_id, text, problem)


def _compare_names(
    handle: IO[bytes],
    size: int,
    miniz: MinizView,
    archive: zipfile.ZipFile,
    py_entries: list[Entry],
    spans: dict[int, Span | None],
    problems: list[Problem],
) -> None:
    """For every name either reader lists: does a lookup by that name give the same bytes?"""
    by_name = {e.name: e for e in py_entries}  # zipfile's NameToInfo: the last copy wins
    queries: dict[str, bytes] = {}
    for entry in py_entries:
        queries.setdefault(entry.name, entry.name.encode("utf-8"))
    for entry in miniz.entries:
        shown = entry.name.split("\x00", 1)[0]
        queries.setdefault(shown, entry.raw_name if not shown.isascii() else shown.encode())
    prefix = miniz.prefix
    if prefix is not None and prefix.isascii():
        for record in TORCH_RECORDS:
            name = f"{prefix.decode()}/{record}"
            queries.setdefault(name, name.encode())
    reported = 0
    for name, raw in queries.items():
        torch_entry = miniz.locate(raw)
        py_entry = by_name.get(name)
        if torch_entry is None and py_entry is None:
            continue
        torch_span = _span(handle, size, torch_entry, spans)
        py_span = _span(handle, size, py_entry, spans)
        if torch_entry is not None and py_entry is not None:
            # miniz reads nothing of what it takes for a directory (a DOS attribute too).
            if torch_entry.directory and py_entry.directory:
                continue
            if not torch_entry.directory and torch_span == py_span:
                continue
        if reported >= 10:
            break
        reported += 1
        problems.append(
            Problem(
                "SER-ZIP-READER-DISAGREEMENT",
                f"member {name!r}: torch reads "
                f"{_where(torch_entry, torch_span)}, zipfile reads {_where(py_entry, py_span)}",
                {
                    "name": name,
                    "torch": _describe_span(torch_entry, torch_span),
                    "zipfile": _describe_span(py_entry, py_span),
                },
                member=name,
            )
        )


def _span(
    handle: IO[bytes], size: int, entry: Entry | None, spans: dict[int, Span | None]
) -> Span | None:
    if entry is None:
        return None
    if id(entry) not in spans:
        spans[id(entry)] = span_of(handle, entry, size)
    return spans[id(entry)]


def _where(entry: Entry | None, span: Span | None) -> str:
    if entry is None:
        return "nothing"
    if entry.directory:
        return f"entry {entry.name!r} as a directory (no bytes)"
    if span is None:
        return f"entry {entry.name!r} (no local header at {entry.header_offset})"
    return f"entry {entry.name!r} ({span.compress_size} bytes at offset {span.data_offset})"


def _duplicates(miniz: MinizView, py_entries: list[Entry], problems: list[Problem]) -> None:
    exact = sorted(n for n, c in Counter(e.name for e in py_entries).items() if c > 1)
    folded = miniz.duplicates()
    shown = exact or folded
    if not shown:
        return
    how = "" if exact else " (ignoring case, as torch's reader does)"
    problems.append(
        Problem(
            "SER-ZIP-DUPLICATE-MEMBER",
            f"archive names {shown[0]!r} twice or more{how}; readers differ on which copy counts",
            {"members": shown[:10], "torch_duplicates": folded[:10]},
            member=shown[0],
        )
    )
