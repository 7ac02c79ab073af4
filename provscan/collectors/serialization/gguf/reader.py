"""What does a GGUF file declare in its header, metadata and tensor table, read without trusting a count?

Not llama.cpp's `gguf` package: gguf-py (0.19.0, gguf_reader.py `_get`, `_get_field_parts`)
memory-maps the file, loops `range(count)` over declared counts and silently clips numpy
views at EOF, so a hostile count costs unbounded work, not a finding (and it needs numpy).
Here every length and count is checked against the bytes left *before* reading, reads are
small, and tensor data is never read. Layout: ggml-org/ggml docs/gguf.md (v2/v3, little-endian).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import BinaryIO

from provscan.collectors.serialization.gguf.tensors import (
    GGML_MAX_DIMS,
    GGML_MAX_NAME,
    GgufTensor,
    alignment_problem,
    check_tensors,
)

# GGUF-specific bounds. They belong in provscan/limits.py (to be moved there); kept here
# until then because Limits is owned elsewhere.
METADATA_READ_MAX = 64 * 1024 * 1024  # bytes actually read from the metadata section
STRING_VALUE_MAX = 4 * 1024 * 1024  # one string value (chat templates are tens of KiB)
ARRAY_ITEM_STRING_MAX = 1024  # one kept string element of an array (a token, a tag)
ARRAY_KEEP = 64  # elements kept per array; the rest are skipped (fixed size) or walked
ELEMENT_WALK_MAX = 4_000_000  # string/nested elements walked in one file (vocabs are < 300k)
KV_COUNT_MAX = 65_536  # real files have tens of keys
TENSOR_COUNT_MAX = 262_144  # the largest MoE checkpoints have a few thousand tensors
WALK_CHUNK = 1024 * 1024  # buffer for walking past string elements (reused per array)
TENSOR_NAME_READ_MAX = 1024
KEY_MAX = 65_535  # docs/gguf.md: keys are ASCII, at most 2**16 - 1 bytes
ARRAY_DEPTH_MAX = 3
DIMS_MAX = 8  # beyond GGML_MAX_DIMS is flagged; beyond this the file is refused
DEFAULT_ALIGNMENT = 32
MAGIC = b"GGUF"
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL = range(8)
T_STRING, T_ARRAY, T_UINT64, T_INT64, T_FLOAT64 = range(8, 13)
_SCALAR_FORMATS: dict[int, str] = {
    T_UINT8: "B", T_INT8: "b", T_UINT16: "H", T_INT16: "h", T_UINT32: "I", T_INT32: "i",
    T_FLOAT32: "f", T_BOOL: "?", T_UINT64: "Q", T_INT64: "q", T_FLOAT64: "d",
}  # fmt: skip
_SCALAR_SIZES = {t: struct.calcsize("<" + f) for t, f in _SCALAR_FORMATS.items()}
# The fewest bytes one element can take: a string is at least its length, an array its header.
_MIN_SIZES = {**_SCALAR_SIZES, T_STRING: 8, T_ARRAY: 12}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class GgufError(Exception):
    """The structure cannot be followed past this point; the offset says where."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} (at byte {offset})")
        self.message, self.offset = message, offset


@dataclass(frozen=True)
class GgufArray:
    elem_type: int
    count: int  # as declared (and checked against the file)
    items: list[GgufValue]  # the first ARRAY_KEEP elements only


GgufValue = int | float | bool | str | GgufArray


@dataclass(frozen=True)
class GgufProblem:
    code: str  # stable, e.g. "tensor-misaligned"; the scanner maps it to a severity
    message: str
    offset: int | None = None


@dataclass
class GgufMetadata:
    version: int
    tensor_count: int
    kv: dict[str, GgufValue] = field(default_factory=dict)
    kv_types: dict[str, int] = field(default_factory=dict)
    tensors: list[GgufTensor] = field(default_factory=list)
    problems: list[GgufProblem] = field(default_factory=list)
    alignment: int = DEFAULT_ALIGNMENT
    data_offset: int = 0

    def flag(self, code: str, message: str, offset: int | None = None) -> None:
        self.problems.append(GgufProblem(code, message, offset))


class _Cursor:
    """Reads forward through the file; every read and skip is checked against what is left."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle = handle
        self.size = size
        self.pos = self.read_total = self.walked = 0

    def need(self, n: int, what: str) -> None:
        left = self.size - self.pos
        if n > left:
            raise GgufError(f"{what} needs {n} bytes but only {left} remain in the file", self.pos)

    def read(self, n: int, what: str) -> bytes:
        self.need(n, what)
        if self.read_total + n > METADATA_READ_MAX:
            raise GgufError(f"metadata is over the {METADATA_READ_MAX}-byte read bound", self.pos)
        data = self.handle.read(n)
        if len(data) != n:  # the file shrank under us
            raise GgufError(f"{what}: short read", self.pos)
        self.pos += n
        self.read_total += n
        return data

    def skip(self, n: int, what: str) -> None:
        self.need(n, what)
        self.pos = self.handle.seek(self.pos + n)

    def u32(self, what: str) -> int:
        return int(_U32.unpack(self.read(4, what))[0])

    def u64(self, what: str) -> int:
        return int(_U64.unpack(self.read(8, what))[0])

    def string(self, keep_max: int, what: str) -> tuple[bytes, int]:
        """A gguf string's bytes (at most keep_max of them, the rest skipped) and its length."""
        length = self.u64(f"{what} length")
        self.need(length, what)
        kept = self.read(min(length, keep_max), what)
        if length > keep_max:
            self.skip(length - keep_max, what)
        return kept, length

    def skip_strings(self, count: int, what: str) -> None:
        """Walk past `count` strings, taking their lengths from chunks read WALK_CHUNK at a time."""
        base, buf, off = self.pos, b"", 0  # buf holds the file's bytes [base, base + len(buf))
        for _ in range(count):
            if off + 8 > len(buf):
                base, off = base + off, 0
                self.handle.seek(base)
                buf = self.handle.read(min(WALK_CHUNK, max(self.size - base, 0)))
                if len(buf) < 8:
                    raise GgufError(f"{what}: string length runs past the end", base)
            length = int(_U64.unpack_from(buf, off)[0])
            off += 8
            if length > self.size - (base + off):
                raise GgufError(f"{what}: a {length}-byte string cannot fit", base + off - 8)
            off += length
        self.pos = base + off
        self.handle.seek(self.pos)

    def walk(self, count: int, at: int) -> None:
        self.walked += count
        if self.walked > ELEMENT_WALK_MAX:
            raise GgufError(f"more than {ELEMENT_WALK_MAX} array elements to walk", at)


def _read_array(cur: _Cursor, meta: GgufMetadata, key: str, depth: int) -> GgufArray:
    start = cur.pos
    elem_type = cur.u32(f"key {key!r}: array element type")
    count = cur.u64(f"key {key!r}: array count")
    if elem_type not in _SCALAR_FORMATS and elem_type not in (T_STRING, T_ARRAY):
        raise GgufError(f"key {key!r}: unknown array element type {elem_type}", start)
    # A count that cannot fit in the rest of the file is refused before any element is read.
    cur.need(count * _MIN_SIZES[elem_type], f"key {key!r}: array of {count} elements")
    keep = min(count, ARRAY_KEEP)
    items: list[GgufValue] = []
    if elem_type in _SCALAR_FORMATS:
        size = _SCALAR_SIZES[elem_type]
        fmt = f"<{keep}{_SCALAR_FORMATS[elem_type]}"
        items.extend(struct.unpack(fmt, cur.read(keep * size, f"key {key!r}: array")))
        cur.skip((count - keep) * size, f"key {key!r}: array")
    elif elem_type == T_STRING:
        cur.walk(count, start)
        for index in range(keep):
            raw, _ = cur.string(ARRAY_ITEM_STRING_MAX, f"key {key!r}: element {index}")
            items.append(raw.decode("utf-8", errors="replace"))
        cur.skip_strings(count - keep, f"key {key!r}: array")
    else:
        if depth + 1 >= ARRAY_DEPTH_MAX:
            raise GgufError(f"key {key!r}: arrays nested deeper than {ARRAY_DEPTH_MAX}", start)
        if depth == 0:
            # docs/gguf.md allows nested arrays; llama.cpp's gguf.cpp refuses them.
            meta.flag("nested-array", f"key {key!r} holds nested arrays", start)
        cur.walk(count, start)
        for index in range(count):  # elements past ARRAY_KEEP are read, then dropped
            sub = _read_array(cur, meta, key, depth + 1)
            items.extend([sub] if index < keep else [])
    return GgufArray(elem_type, count, items)


def _read_value(cur: _Cursor, meta: GgufMetadata, key: str, value_type: int) -> GgufValue:
    start = cur.pos
    if value_type in _SCALAR_FORMATS:
        size = _SCALAR_SIZES[value_type]
        value: GgufValue = struct.unpack("<" + _SCALAR_FORMATS[value_type], cur.read(size, key))[0]
        return value
    if value_type == T_STRING:
        raw, length = cur.string(STRING_VALUE_MAX, f"key {key!r}: value")
        if length > STRING_VALUE_MAX:
            message = f"key {key!r}: only the start of its {length}-byte value was checked"
            meta.flag("string-truncated", message, start)
        return raw.decode("utf-8", errors="replace")
    if value_type == T_ARRAY:
        return _read_array(cur, meta, key, 0)
    raise GgufError(f"key {key!r}: unknown value type {value_type}", start - 4)


def _read_key(cur: _Cursor, meta: GgufMetadata, index: int) -> str:
    start = cur.pos
    raw, length = cur.string(KEY_MAX, f"key {index}")
    if length > KEY_MAX:
        meta.flag("key-too-long", f"key {index} is {length} bytes (over {KEY_MAX})", start)
    if not raw.isascii():
        meta.flag("key-not-ascii", f"key {index} is not ASCII: {raw[:80]!r}", start)
    return raw.decode("ascii", errors="backslashreplace")


def _read_header(cur: _Cursor) -> GgufMetadata:
    if cur.size < 4 or cur.read(4, "magic") != MAGIC:
        raise GgufError("not a GGUF file (magic is not b'GGUF')", 0)
    version = cur.u32("version")
    if version == 1:
        # v1 used u32 string lengths and counts; nothing current writes or reads it.
        raise GgufError("GGUF version 1 is obsolete and not read", 4)
    if version not in (2, 3):
        endian = " (a big-endian file?)" if version & 0xFFFF == 0 else ""
        raise GgufError(f"unsupported GGUF version {version}{endian}", 4)
    tensor_count = cur.u64("tensor count")
    kv_count = cur.u64("metadata KV count")
    # Each tensor info needs at least 24 bytes, each KV at least 13: check the claims first.
    if tensor_count > TENSOR_COUNT_MAX or tensor_count * 24 > cur.size - cur.pos:
        raise GgufError(f"tensor count {tensor_count} cannot fit in this file", 8)
    if kv_count > KV_COUNT_MAX or kv_count * 13 > cur.size - cur.pos:
        raise GgufError(f"metadata KV count {kv_count} cannot fit in this file", 16)
    meta = GgufMetadata(version=version, tensor_count=tensor_count)
    for index in range(kv_count):
        key_at = cur.pos
        key = _read_key(cur, meta, index)
        value_type = cur.u32(f"key {key!r}: value type")
        value = _read_value(cur, meta, key, value_type)
        if key in meta.kv:
            # gguf.cpp refuses duplicate keys; other readers keep the first or the last.
            meta.flag("duplicate-key", f"key {key!r} repeats", key_at)
            continue
        meta.kv[key] = value
        meta.kv_types[key] = value_type
    return meta


def _read_tensor_infos(cur: _Cursor, meta: GgufMetadata) -> None:
    seen: set[str] = set()
    for index in range(meta.tensor_count):
        start = cur.pos
        raw, length = cur.string(TENSOR_NAME_READ_MAX, f"tensor {index} name")
        name = raw.decode("utf-8", errors="replace")
        if length >= GGML_MAX_NAME:
            message = f"tensor {index} name is {length} bytes (gguf.cpp refuses >= {GGML_MAX_NAME})"
            meta.flag("tensor-name-too-long", message, start)
        n_dims = cur.u32(f"tensor {name!r}: n_dims")
        if n_dims > DIMS_MAX:
            raise GgufError(f"tensor {name!r}: {n_dims} dimensions", cur.pos - 4)
        if n_dims > GGML_MAX_DIMS:
            meta.flag("too-many-dims", f"tensor {name!r} has {n_dims} dimensions", start)
        dims = struct.unpack(f"<{n_dims}Q", cur.read(8 * n_dims, f"tensor {name!r}: dims"))
        ggml_type = cur.u32(f"tensor {name!r}: type")
        offset = cur.u64(f"tensor {name!r}: offset")
        if name in seen:
            meta.flag("duplicate-tensor", f"tensor {name!r} repeats", start)
        seen.add(name)
        meta.tensors.append(GgufTensor(name, tuple(dims), ggml_type, offset, start))


def _alignment(meta: GgufMetadata) -> int:
    value = meta.kv.get("general.alignment", DEFAULT_ALIGNMENT)
    is_u32 = meta.kv_types.get("general.alignment", T_UINT32) == T_UINT32
    problem = alignment_problem(value, is_u32)
    if problem is None and isinstance(value, int):
        return value
    meta.flag("bad-alignment", problem or "bad alignment")
    return DEFAULT_ALIGNMENT


def read_gguf(handle: BinaryIO) -> GgufMetadata:
    """Read and check a GGUF file's header, metadata and tensor table (never its tensor data)."""
    size = handle.seek(0, 2)
    handle.seek(0)
    cur = _Cursor(handle, size)
    meta = _read_header(cur)
    _read_tensor_infos(cur, meta)
    meta.alignment = _alignment(meta)
    meta.data_offset = -(-cur.pos // meta.alignment) * meta.alignment
    for problem in check_tensors(meta.tensors, meta.data_offset, meta.alignment, size):
        meta.flag(*problem)
    return meta
