"""Where does each GGUF tensor's data lie, and is that inside the file, aligned and unshared?"""

from __future__ import annotations

from dataclasses import dataclass

GGML_MAX_DIMS = 4  # ggml.h
GGML_MAX_NAME = 64  # ggml.h; gguf.cpp refuses names of this length or more
INT64_MAX = 2**63 - 1  # ggml keeps dims and element counts in int64_t

# ggml type id -> (elements per block, bytes per block), from ggml.c type_traits
# (as mirrored by gguf-py constants.GGML_QUANT_SIZES, gguf 0.19.0).
GGML_TYPE_SIZES: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24),  # F32 F16 Q4_0/1 Q5_0/1
    8: (32, 34), 9: (32, 40), 10: (256, 84), 11: (256, 110), 12: (256, 144),  # Q8_0/1 Q2_K-Q4_K
    13: (256, 176), 14: (256, 210), 15: (256, 292), 16: (256, 66), 17: (256, 74),  # Q5_K- IQ2_XS
    18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82),  # IQ3_XXS-IQ2_S
    23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8),  # IQ4_XS I8-F64
    29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66), 39: (32, 17),  # IQ1_M BF16 TQ MXFP4
    40: (64, 36), 41: (128, 18),  # NVFP4 Q1_0
}  # fmt: skip
# ggml type id -> its name, as ggml.c type_traits names it (gguf-py GGMLQuantizationType, 0.19.0).
GGML_TYPE_NAMES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
    10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
    17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
    23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M",
    30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4", 40: "NVFP4", 41: "Q1_0",
}  # fmt: skip


Problem = tuple[str, str, int]  # (code, message, offset)


@dataclass(frozen=True)
class GgufTensor:
    name: str
    dims: tuple[int, ...]
    ggml_type: int
    offset: int  # relative to the start of the data section
    info_offset: int  # where its tensor-info record starts in the file


def alignment_problem(value: object, is_u32: bool) -> str | None:
    """Why general.alignment cannot be used (gguf.cpp refuses it), or None when it can."""
    if is_u32 and isinstance(value, int) and value > 0 and value % 8 == 0 == value & (value - 1):
        return None
    return f"general.alignment is {value!r}: it must be a u32 power of two, a multiple of 8"


def _tensor_bytes(tensor: GgufTensor) -> tuple[int | None, Problem | None]:
    """The tensor's data size, computed without overflow, or why it has none."""
    where, name = tensor.info_offset, tensor.name
    n_elements = 1
    for dim in tensor.dims:
        n_elements *= dim  # Python ints: the overflow is detected, not suffered
    if any(dim > INT64_MAX for dim in tensor.dims) or n_elements > INT64_MAX:
        # CVE-2025-53630 / CVE-2026-33298: element counts and byte sizes that wrap in C.
        message = f"tensor {name!r}: dims {list(tensor.dims)} overflow int64 element counts"
        return None, ("tensor-size-overflow", message, where)
    sizes = GGML_TYPE_SIZES.get(tensor.ggml_type)
    if sizes is None:
        message = f"tensor {name!r}: unknown ggml type {tensor.ggml_type}; its size is unchecked"
        return None, ("unknown-tensor-type", message, where)
    block, block_bytes = sizes
    if tensor.dims and tensor.dims[0] % block:
        message = f"tensor {name!r}: row of {tensor.dims[0]} is not a multiple of block {block}"
        return None, ("tensor-block-mismatch", message, where)
    n_bytes = n_elements // block * block_bytes
    if n_bytes > INT64_MAX:
        message = f"tensor {name!r}: {n_bytes} bytes overflows a 64-bit size"
        return None, ("tensor-size-overflow", message, where)
    return n_bytes, None


def check_tensors(
    tensors: list[GgufTensor], data_offset: int, alignment: int, file_size: int
) -> list[Problem]:
    """Every tensor aligned, inside the file, not overlapping, where llama.cpp expects it."""
    problems: list[Problem] = []
    ranges: list[tuple[int, int, str]] = []
    expected: int | None = 0  # gguf.cpp wants each offset == padded sizes of those before it
    for tensor in tensors:
        n_bytes, problem = _tensor_bytes(tensor)
        if n_bytes is None:
            problems.extend([problem] if problem is not None else [])
            expected = None
            continue
        name, where = tensor.name, tensor.info_offset
        if tensor.offset % alignment:
            message = f"tensor {name!r}: offset {tensor.offset} is not {alignment}-aligned"
            problems.append(("tensor-misaligned", message, where))
        start = data_offset + tensor.offset
        if start + n_bytes > file_size:
            message = (
                f"tensor {name!r}: data [{start}, {start + n_bytes}) runs past EOF {file_size}"
            )
            problems.append(("tensor-data-past-eof", message, where))
        elif expected is not None and tensor.offset != expected:
            message = f"tensor {name!r}: offset {tensor.offset}, llama.cpp expects {expected}"
            problems.append(("tensor-layout-differs", message, where))
        if expected is not None:
            expected = tensor.offset + -(-n_bytes // alignment) * alignment
        if n_bytes:
            ranges.append((start, start + n_bytes, name))
    ranges.sort()
    reach, holder = -1, ""  # the furthest end seen so far, and whose it is
    for start, end, name in ranges:
        if start < reach:
            message = f"tensor {name!r} overlaps tensor {holder!r}"
            problems.append(("tensors-overlap", message, start))
        if end > reach:
            reach, holder = end, name
    return problems
