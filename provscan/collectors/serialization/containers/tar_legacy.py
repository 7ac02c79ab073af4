"""Which tars does torch.load open, and which bytes of a legacy tar checkpoint does it unpickle?

Established with torch 2.13.0+cpu (torch/serialization.py `_legacy_load`,
https://github.com/pytorch/pytorch/blob/v2.6.0/torch/serialization.py) and CPython 3.11.7
tarfile, by building tars and loading them with `torch.load(path, weights_only=False)`:

- A file that does not start with `PK\\x03\\x04`, opened from a path, goes to
  `tarfile.open(fileobj=f, mode="r:", format=tarfile.PAX_FORMAT)` before anything else.
  `format` only matters when writing: tarfile accepts any first header whose checksum is
  right (unsigned or signed sum), so v7 headers with no "ustar" magic at 257, GNU
  ("ustar  \\0") and POSIX headers all open. Only if tarfile refuses does torch unpickle the
  file itself. weights_only=True refuses a tar checkpoint after opening it.
- It reads three members by exact name through `tar.getmember`: `storages`, `tensors` and
  `pickle`. With two members of one name it reads the last. A hard link or symlink under one
  of these names is read as the member it points to (tested: `pickle` as either, `storages`
  as a hard link, each to a member holding the payload). `sys_info` is written but never
  read.
- `storages`: pickle(count), then for each storage pickle((key, location, storage type)),
  an int64 little-endian element count and count x element-size raw bytes, then
  pickle(storage_views). The element size comes from the storage type's class name alone
  (`UnpicklerWrapper.find_class` turns any `<module>.<X>Storage` into `StorageType("<X>Storage")`).
- `tensors`: pickle(count), then for each tensor pickle((key, storage id, type)), an int32
  ndim, 4 skipped bytes, ndim int64 sizes, ndim int64 strides and an int64 offset.
- `pickle`: the object, unpickled with the same permissive unpickler.

Every pickle in these layouts runs when loaded, including the ones after raw storage bytes,
which a walk that stops at the first non-pickle byte never reaches.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from typing import Any

from provscan.collectors.serialization.containers.streams import Readable, Rejoined, read_bounded
from provscan.collectors.serialization.pickle.scan import describe, scan_pickle_bytes
from provscan.collectors.serialization.pickle.values import Global, PickleWalk, Reader
from provscan.collectors.serialization.pickle.walk import Walker
from provscan.limits import Limits
from provscan.report import Finding, Location, Severity, located_finding

# Members torch.load reads by name, and how.
LAYOUT_MEMBERS = frozenset({"storages", "tensors"})
PICKLE_MEMBERS = frozenset({"pickle", "sys_info"})
READ_BY_TORCH = frozenset({"storages", "tensors", "pickle"})

# torch/storage.py _dtype_to_storage_type_map, with each dtype's element size.
STORAGE_ELEMENT_SIZES = {
    "DoubleStorage": 8,
    "FloatStorage": 4,
    "HalfStorage": 2,
    "LongStorage": 8,
    "IntStorage": 4,
    "ShortStorage": 2,
    "CharStorage": 1,
    "ByteStorage": 1,
    "BoolStorage": 1,
    "BFloat16Storage": 2,
    "ComplexDoubleStorage": 16,
    "ComplexFloatStorage": 8,
    "QInt8Storage": 1,
    "QInt32Storage": 4,
    "QUInt8Storage": 1,
    "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1,
}


def _evaluate(data: bytes) -> tuple[int, Any]:
    """Where the first pickle in `data` ends and the value it builds, read by the same
    CPython-faithful walker as every other pickle (`_pickle.c` rules: torch's legacy loader
    unpickles these records with pickle.load). Imports come back as stand-ins, calls as
    opaque values. Raises EOFError when `data` ends before STOP, ValueError when it is not
    a pickle."""
    walk = PickleWalk()
    stream = io.BytesIO(data)
    walker = Walker(stream, walk, Reader.C, limit=len(data), max_opcodes=1_000_000)
    if walker.run():
        return stream.tell(), walker.value
    if walk.exhausted:
        raise EOFError("pickle continues past the bytes read")
    raise ValueError(walk.error or "not a pickle")


class _Cannot(Exception):
    """torch's layout cannot be followed past this point (nor, mostly, by torch)."""


class _Records:
    """A member read front to back: pickles (bounded) and raw runs skipped without keeping."""

    def __init__(self, stream: Readable, size: int | None, limits: Limits) -> None:
        self.stream = stream
        self.size = size
        self.limits = limits
        self.buffer = b""
        self.offset = 0  # member offset of buffer[0]
        self.ended = False

    def _fill(self, want: int) -> None:
        while len(self.buffer) < want and not self.ended:
            piece = self.stream.read(min(want - len(self.buffer), 1 << 20))
            if not piece:
                self.ended = True
                break
            self.buffer += piece

    def at_end(self) -> bool:
        self._fill(1)
        return not self.buffer

    def pickle(self, *, consume: bool = True) -> tuple[int, bytes, Any]:
        want = 4096
        while True:
            self._fill(want)
            try:
                end, value = _evaluate(self.buffer)
            except EOFError as exc:
                if self.ended or len(self.buffer) >= self.limits.pickle_max:
                    raise _Cannot(
                        f"pickle at offset {self.offset} ends early or passes "
                        f"{self.limits.pickle_max} bytes"
                    ) from exc
                want = min(max(want * 2, len(self.buffer) + 1), self.limits.pickle_max)
                continue
            except ValueError as exc:
                raise _Cannot(f"no pickle at offset {self.offset}: {exc}") from exc
            start, data = self.offset, self.buffer[:end]
            if consume:
                self.buffer = self.buffer[end:]
                self.offset += end
            return start, data, value

    def exact(self, count: int) -> bytes:
        self._fill(count)
        if len(self.buffer) < count:
            raise _Cannot(f"member ends at offset {self.offset + len(self.buffer)}")
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        self.offset += count
        return data

    def skip(self, count: int) -> None:
        if self.size is not None and self.offset + count > self.size:
            raise _Cannot(f"{count} raw bytes at offset {self.offset} run past the member")
        taken = min(count, len(self.buffer))
        self.buffer = self.buffer[taken:]
        left = count - taken
        while left > 0:
            piece = read_bounded(self.stream, min(left, 1 << 20))
            if not piece:
                raise _Cannot(f"member ends inside raw bytes at offset {self.offset + taken}")
            left -= len(piece)
            taken += len(piece)
        self.offset += count


def _count(value: Any, what: str) -> int:
    if not isinstance(value, int):
        raise _Cannot(f"{what} count is not an integer")
    return max(value, 0)


def _three(value: Any, what: str) -> tuple[Any, Any, Any]:
    if not isinstance(value, (tuple, list)) or len(value) != 3:
        raise _Cannot(f"{what} record is not a 3-item tuple")
    return value[0], value[1], value[2]


def scan_layout_member(
    stream: Readable,
    size: int | None,
    kind: str,
    location: Location,
    limits: Limits,
    other: Callable[[Readable], list[Finding]],
) -> list[Finding]:
    """Walk a legacy `storages` or `tensors` member record by record, as torch reads it, and
    scan every pickle in it. A member that does not even start with a pickle is no torch
    record (torch.load fails on it at once): `other` scans it by content instead."""
    records = _Records(stream, size, limits)
    findings: list[Finding] = []
    try:
        records.pickle(consume=False)
    except _Cannot:
        return other(Rejoined(records.buffer, stream))

    def scan_next() -> Any:
        start, data, value = records.pickle()
        found = scan_pickle_bytes(data, location, limits, total_size=len(data))
        findings.extend(_shifted(f, start) for f in found)
        return value

    try:
        count = _count(scan_next(), kind)
        if count > limits.archive_max_members:
            raise _Cannot(f"{count} records, over the limit {limits.archive_max_members}")
        for _ in range(count):
            if kind == "storages":
                _, _, storage_type = _three(scan_next(), "storage")
                name = storage_type.record.name if isinstance(storage_type, Global) else None
                element = STORAGE_ELEMENT_SIZES.get(name or "")
                if element is None:
                    raise _Cannot(f"storage type {name!r} has no known element size")
                (elements,) = struct.unpack("<q", records.exact(8))
                if elements < 0:
                    raise _Cannot(f"storage declares {elements} elements")
                records.skip(elements * element)
            else:
                _three(scan_next(), "tensor")
                (ndim,) = struct.unpack("<i", records.exact(4))
                if ndim < 0:
                    raise _Cannot(f"tensor declares {ndim} dimensions")
                records.skip(4 + 16 * ndim + 8)
        if kind == "storages":
            scan_next()  # storage_views
    except _Cannot as exc:
        if not records.at_end():
            message = (
                f"{describe(location)}: legacy torch {kind} member cannot be followed the way "
                f"torch.load reads it ({exc}); the rest was not scanned"
            )
            findings.append(
                located_finding(
                    "SER-ARCHIVE-UNREADABLE", Severity.HIGH, message, location, error=str(exc)
                )
            )
    return findings


def _shifted(finding: Finding, start: int) -> Finding:
    where = finding.location
    if where is None or where.offset is None or not start:
        return finding
    moved = where.model_copy(update={"offset": where.offset + start})
    return finding.model_copy(update={"location": moved})
