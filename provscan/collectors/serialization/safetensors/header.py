"""Is this safetensors header well formed, and what tensors does it declare?

Reads only the 8-byte length and the JSON header, with the length checked against
the limit and the file size before anything is allocated; tensor data is never read.
The checks follow the reference implementation (huggingface/safetensors,
src/tensor.rs: HeaderTooLarge, InvalidHeaderLength, InvalidOffset, TensorInvalidInfo,
MetadataIncompleteBuffer) so that provscan rejects what the loader would reject, and
reports it with the tensor's name. The library's own `safe_open` is also run by the
serialization scanner as the consumer's reading; this module exists because the
library offers no header-only API with bounded reads and per-tensor diagnostics.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from provscan.parsing import HostileData, parse_json

# Bits per element, from safetensors' Dtype enum.
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "F64": 64,
    "I64": 64,
    "U64": 64,
    "C64": 64,
}


_U64_MAX = 2**64 - 1


class SafetensorsError(Exception):
    """The header cannot be read at all; `code` names the problem, like the Rust errors."""

    def __init__(self, code: str, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.offset = offset


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def elements(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Problem:
    """A structural problem that does not stop us from reading the rest of the header."""

    code: str
    message: str
    tensor: str | None = None


@dataclass
class SafetensorsHeader:
    header_len: int
    file_size: int
    tensors: list[TensorInfo] = field(default_factory=list)
    metadata: dict[str, Any] | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def parameter_count(self) -> int:
        return sum(t.elements for t in self.tensors)

    @property
    def dtypes(self) -> set[str]:
        return {t.dtype for t in self.tensors}


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise SafetensorsError("DuplicateKey", f"header declares {key!r} twice")
        seen[key] = value
    return seen


def read_header(handle: BinaryIO, *, max_header: int) -> SafetensorsHeader:
    """Read and check a safetensors header. Raises SafetensorsError if it is unreadable."""
    file_size = handle.seek(0, 2)
    handle.seek(0)
    if file_size < 8:
        raise SafetensorsError(
            "HeaderTooSmall",
            f"file is {file_size} bytes, shorter than the 8-byte length prefix",
        )
    (header_len,) = struct.unpack("<Q", handle.read(8))
    if header_len > max_header:
        raise SafetensorsError(
            "HeaderTooLarge",
            f"header length {header_len} exceeds the limit of {max_header} bytes",
            offset=0,
        )
    if 8 + header_len > file_size:
        raise SafetensorsError(
            "InvalidHeaderLength",
            f"header length {header_len} runs past the end of the {file_size}-byte file (truncated?)",
            offset=0,
        )
    raw = handle.read(header_len)
    header = SafetensorsHeader(header_len=header_len, file_size=file_size)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SafetensorsError(
            "InvalidHeader",
            f"header is not UTF-8 ({exc.reason} at byte {8 + exc.start})",
            8 + exc.start,
        ) from exc
    if not text.startswith("{"):
        raise SafetensorsError("InvalidHeaderStart", "header does not start with '{'", offset=8)
    try:
        document = parse_json(text, object_pairs_hook=_reject_duplicate_keys)
    except HostileData as exc:
        raise SafetensorsError(
            "InvalidHeaderDeserialization", f"header {exc.problem}", offset=8
        ) from exc
    except RecursionError as exc:
        raise SafetensorsError(
            "InvalidHeaderDeserialization", "header JSON nests too deeply to parse", offset=8
        ) from exc
    except json.JSONDecodeError as exc:
        raise SafetensorsError(
            "InvalidHeaderDeserialization",
            f"header is not valid JSON: {exc.msg} at byte {8 + exc.pos}",
            8 + exc.pos,
        ) from exc
    if not isinstance(document, dict):
        raise SafetensorsError(
            "InvalidHeaderDeserialization", "header JSON is not an object", offset=8
        )

    metadata = document.pop("__metadata__", None)
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            header.problems.append(
                Problem("InvalidMetadata", "__metadata__ must map strings to strings")
            )
        else:
            header.metadata = metadata
    for name, info in document.items():
        tensor = _tensor(name, info, header.problems)
        if tensor is not None:
            header.tensors.append(tensor)
    _check_layout(header)
    return header


def _tensor(name: str, info: Any, problems: list[Problem]) -> TensorInfo | None:
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        problems.append(
            Problem(
                "TensorInvalidInfo", "entry must have exactly dtype, shape and data_offsets", name
            )
        )
        return None
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:  # a list or map is unhashable
        problems.append(Problem("InvalidDtype", f"unknown dtype {dtype!r}", name))
        return None
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        problems.append(
            Problem("InvalidShape", f"shape {shape!r} is not a list of non-negative integers", name)
        )
        return None
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(type(o) is int and o >= 0 for o in offsets)
        or offsets[0] > offsets[1]
    ):
        problems.append(
            Problem(
                "InvalidOffset",
                f"data_offsets {offsets!r} is not [start, end] with start <= end",
                name,
            )
        )
        return None
    # The reference reader computes sizes in 64-bit unsigned arithmetic and refuses any
    # overflow, even for zero-element tensors; Python's big integers would not notice.
    product = 1
    for dim in shape:
        product *= dim
        if dim > _U64_MAX or product > _U64_MAX:
            problems.append(
                Problem(
                    "ValidationOverflow", f"shape {shape!r} overflows 64-bit size arithmetic", name
                )
            )
            return None
    if product * DTYPE_BITS[dtype] > _U64_MAX or offsets[1] > _U64_MAX:
        problems.append(
            Problem(
                "ValidationOverflow", f"size of shape {shape!r} in {dtype} overflows 64 bits", name
            )
        )
        return None
    tensor = TensorInfo(name, dtype, tuple(shape), offsets[0], offsets[1])
    bits = tensor.elements * DTYPE_BITS[dtype]
    if bits % 8:
        problems.append(
            Problem(
                "MisalignedSlice",
                f"{tensor.elements} elements of {dtype} are not a whole number of bytes",
                name,
            )
        )
    elif bits // 8 != tensor.end - tensor.start:
        problems.append(
            Problem(
                "TensorInvalidInfo",
                f"shape {list(shape)} of {dtype} needs {bits // 8} bytes but data_offsets span {tensor.end - tensor.start}",
                name,
            )
        )
    return tensor


def _check_layout(header: SafetensorsHeader) -> None:
    """Tensors must tile the data buffer exactly, and the buffer must end the file."""
    expected = 0
    for tensor in sorted(header.tensors, key=lambda t: (t.start, t.end)):
        if tensor.start != expected:
            kind = (
                "overlaps the previous tensor"
                if tensor.start < expected
                else "leaves a gap before it"
            )
            header.problems.append(
                Problem(
                    "InvalidOffset",
                    f"data starts at {tensor.start}, expected {expected}: {kind}",
                    tensor.name,
                )
            )
        expected = max(expected, tensor.end)
    data_len = header.file_size - 8 - header.header_len
    if expected > data_len:
        header.problems.append(
            Problem(
                "MetadataIncompleteBuffer",
                f"tensors need {expected} data bytes but only {data_len} follow the header (truncated?)",
            )
        )
    elif expected < data_len:
        header.problems.append(
            Problem(
                "MetadataIncompleteBuffer",
                f"{data_len - expected} bytes after the last tensor are not declared by the header (appended payload?)",
            )
        )
