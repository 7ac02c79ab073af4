"""What does a GGUF header say the model is: architecture, size, context length, quantization?

Read with the same bounded reader as the safety scan (gguf.reader.read_gguf); tensor data is
never read. The keys are the spec's standardized ones
(https://github.com/ggml-org/ggml/blob/master/docs/gguf.md, "Standardized key-value pairs"):
`general.architecture`, `general.name`, `general.file_type`, and `<arch>.context_length`,
`<arch>.embedding_length`, `<arch>.block_count`, `<arch>.attention.head_count[_kv]`.
Whoever handed over the file wrote them: they are the sender's claims, kept as evidence.
A value of the wrong type, negative or beyond int64 is left out, never guessed at; the
parameter count is exact (the sum over the tensor table of each tensor's element count)
or absent.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from provscan.collectors.serialization.gguf.reader import (
    GgufMetadata,
    GgufValue,
)
from provscan.collectors.serialization.gguf.scan import read_metadata
from provscan.collectors.serialization.gguf.tensors import GGML_TYPE_NAMES, INT64_MAX
from provscan.files import ScanFile

TEXT_MAX = 200  # characters kept of the architecture and the name

# general.file_type: llama.cpp's `enum llama_ftype`
# (https://github.com/ggml-org/llama.cpp/blob/master/include/llama.h; gguf-py LlamaFileType),
# named without its ALL_/MOSTLY_ prefix. 4 and 33-35 are no longer written but older files
# carry them; 5 and 6 (Q4_2, Q4_3) were gone before GGUF existed.
FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 4: "Q4_1_SOME_F16", 7: "Q8_0", 8: "Q5_0",
    9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S",
    15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS",
    21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S",
    27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
    33: "Q4_0_4_4", 34: "Q4_0_4_8", 35: "Q4_0_8_8", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0",
}  # fmt: skip

# A model split by gguf-split is named <prefix>-00001-of-00003.gguf (llama.cpp
# llama_split_path: "%s-%05d-of-%05d.gguf"); only the first split holds the model's metadata.
SPLIT_NAME = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")


# Tensor-table problems that make the table's element counts no count of real weights
# (each is also a critical serialization finding).
_UNCOUNTABLE = frozenset({"tensor-size-overflow", "tensor-data-past-eof", "duplicate-tensor"})


@dataclass(frozen=True)
class GgufModelFacts:
    architecture: str | None
    name: str | None
    context_length: int | None
    embedding_length: int | None
    block_count: int | None
    head_count: int | None
    head_count_kv: int | None
    quantization: str | None  # general.file_type by llama.cpp's name, else the main tensor type
    tensor_count: int
    parameter_count: int | None  # None when an element count overflows int64
    tensor_types: tuple[str, ...]  # ggml type names, "unknown" for ids ggml does not define


def _count(value: GgufValue | None) -> int | None:
    # bool is an int in Python but a distinct GGUF type: a flag is no count.
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= INT64_MAX else None


def _text(value: GgufValue | None) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:TEXT_MAX]


def _parameters(meta: GgufMetadata) -> tuple[int | None, Counter[int]]:
    """The exact parameter count (None past int64 or for a broken table), and the elements
    each ggml type holds."""
    total = 0
    by_type: Counter[int] = Counter()
    for tensor in meta.tensors:
        elements = 1
        for dim in tensor.dims:  # at most DIMS_MAX dims, each < 2**64: Python ints, no wrap
            elements *= dim
        total += elements
        by_type[tensor.ggml_type] += elements
    if total > INT64_MAX or any(p.code in _UNCOUNTABLE for p in meta.problems):
        return None, by_type
    return total, by_type


def _quantization(meta: GgufMetadata, by_type: Counter[int]) -> str | None:
    file_type = _count(meta.kv.get("general.file_type"))
    if file_type is not None and file_type in FILE_TYPES:
        return FILE_TYPES[file_type]
    # No (or an unknown) file type: the ggml type holding the most weights says it, as a
    # tensor type ("Q4_K"), not a mix name llama.cpp's quantizer would have written.
    known = [(n, -t) for t, n in by_type.items() if t in GGML_TYPE_NAMES and n > 0]
    return GGML_TYPE_NAMES[-max(known)[1]] if known else None


def gguf_model_facts(meta: GgufMetadata) -> GgufModelFacts:
    """The model facts a parsed GGUF header declares (see the module docstring)."""
    kv = meta.kv
    architecture = _text(kv.get("general.architecture"))
    arch = architecture or ""

    def arch_count(key: str) -> int | None:
        # A per-layer array (head counts of some models) has no single value: left out.
        return _count(kv.get(f"{arch}.{key}")) if architecture else None

    parameters, by_type = _parameters(meta)
    types = {GGML_TYPE_NAMES.get(t, "unknown") for t in by_type}
    return GgufModelFacts(
        architecture=architecture,
        name=_text(kv.get("general.name")),
        context_length=arch_count("context_length"),
        embedding_length=arch_count("embedding_length"),
        block_count=arch_count("block_count"),
        head_count=arch_count("attention.head_count"),
        head_count_kv=arch_count("attention.head_count_kv"),
        quantization=_quantization(meta, by_type),
        tensor_count=len(meta.tensors),
        parameter_count=parameters,
        tensor_types=tuple(sorted(types)),
    )


def read_gguf_facts(file: ScanFile) -> GgufModelFacts | None:
    """A GGUF file's model facts, None when it does not parse (a serialization finding)."""
    meta = read_metadata(file)
    return gguf_model_facts(meta) if meta is not None else None
