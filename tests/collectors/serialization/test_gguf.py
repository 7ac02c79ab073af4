"""GGUF scanning: hostile counts and layouts are findings (never exceptions or big allocations)."""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from provscan.collectors.serialization.gguf.reader import GgufArray, read_gguf
from provscan.collectors.serialization.gguf.scan import gguf_provenance, scan_gguf
from provscan.files import ScanFile
from provscan.limits import Limits
from provscan.report import Finding, Severity

U8, U32, I32, F32, BOOL, STR, ARR, U64 = 0, 4, 5, 6, 7, 8, 9, 10
F32_TYPE, F16_TYPE, Q4_0_TYPE = 0, 1, 2
TEMPLATE = (
    "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
)


# --- a small GGUF writer (little-endian, v3 unless told) ---------------------------------
def gstr(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def scalar(vtype: int, value: Any) -> bytes:
    fmt = {U8: "B", U32: "I", I32: "i", F32: "f", BOOL: "?", U64: "Q"}[vtype]
    return struct.pack("<" + fmt, value)


def kv(key: str | bytes, vtype: int, value: Any) -> bytes:
    body = gstr(value) if vtype == STR else scalar(vtype, value)
    return gstr(key) + struct.pack("<I", vtype) + body


def kv_array(key: str, elem_type: int, items: list[Any]) -> bytes:
    body = b"".join(gstr(i) if elem_type == STR else scalar(elem_type, i) for i in items)
    return gstr(key) + struct.pack("<IIQ", ARR, elem_type, len(items)) + body


def tensor_info(name: str, dims: list[int], ggml_type: int, offset: int) -> bytes:
    packed_dims = struct.pack(f"<I{len(dims)}Q", len(dims), *dims)
    return gstr(name) + packed_dims + struct.pack("<IQ", ggml_type, offset)


def gguf(
    kvs: list[bytes],
    tensors: list[bytes],
    data: bytes = b"",
    version: int = 3,
    counts: tuple[int, int] | None = None,
) -> bytes:
    n_tensors, n_kv = counts if counts is not None else (len(tensors), len(kvs))
    head = b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv) + b"".join(kvs)
    head += b"".join(tensors)
    pad = -len(head) % 32
    return head + b"\0" * pad + data


GENERAL = [
    kv("general.architecture", STR, "llama"),
    kv("general.name", STR, "Tiny Llama"),
    kv("general.license", STR, "apache-2.0"),
    kv("general.author", STR, "Example Org"),
    kv("general.source.repo_url", STR, "https://huggingface.co/example/tiny"),
    kv("general.base_model.count", U32, 1),
    kv("general.base_model.0.name", STR, "Base " + "x" * 5000),
    kv("general.file_type", U32, 1),
    kv("general.quantization_version", U32, 2),
]


def valid_bytes(template: str = TEMPLATE) -> bytes:
    kvs = [
        *GENERAL,
        kv("general.alignment", U32, 32),
        kv("tokenizer.chat_template", STR, template),
        kv_array("tokenizer.ggml.tokens", STR, [f"tok{i}" for i in range(1000)]),
        kv_array("tokenizer.ggml.scores", F32, [0.5] * 1000),
    ]
    tensors = [
        tensor_info("a.weight", [8, 4], F32_TYPE, 0),  # 128 bytes
        tensor_info("b.weight", [32, 2], Q4_0_TYPE, 128),  # 2 blocks of 18 = 36 bytes
    ]
    return gguf(kvs, tensors, b"\1" * 128 + b"\2" * 36)


def write(tmp_path: Path, content: bytes, name: str = "model.gguf") -> ScanFile:
    path = tmp_path / name
    path.write_bytes(content)
    return ScanFile(rel=name, path=path, size=len(content))


def scan_bytes(tmp_path: Path, content: bytes) -> list[Finding]:
    return scan_gguf(write(tmp_path, content), Limits())


def codes(findings: list[Finding]) -> set[str]:
    return {str(f.evidence.get("code")) for f in findings}


# --- the valid file -----------------------------------------------------------------------
def test_valid_file_has_no_findings_and_provenance(tmp_path: Path) -> None:
    file = write(tmp_path, valid_bytes())
    assert scan_gguf(file, Limits()) == []
    with file.path.open("rb") as handle:
        meta = read_gguf(handle)
    assert meta.version == 3 and meta.tensor_count == 2
    tokens = meta.kv["tokenizer.ggml.tokens"]
    assert isinstance(tokens, GgufArray) and tokens.count == 1000
    assert tokens.items[:2] == ["tok0", "tok1"] and len(tokens.items) == 64
    assert [t.name for t in meta.tensors] == ["a.weight", "b.weight"]
    prov = gguf_provenance(meta)
    assert prov["general.license"] == "apache-2.0"
    assert prov["general.source.repo_url"] == "https://huggingface.co/example/tiny"
    assert prov["general.base_model.count"] == 1
    assert len(prov["general.base_model.0.name"]) == 1024
    assert "tokenizer.chat_template" not in prov and "general.alignment" not in prov


# --- hostile structure: each gives a finding ------------------------------------------------
def _hostile() -> dict[str, Callable[[], bytes]]:
    ok_tensor = tensor_info("t", [4], F32_TYPE, 0)
    return {
        "truncated": lambda: valid_bytes()[:200],
        "string-length-2**63": lambda: (
            b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2**63) + b"k" * 64
        ),
        "array-count-2**60": lambda: gguf(
            [gstr("a") + struct.pack("<IIQ", ARR, U32, 2**60) + b"\0" * 64], []
        ),
        "string-array-count-2**60": lambda: gguf(
            [gstr("a") + struct.pack("<IIQ", ARR, STR, 2**60) + b"\0" * 64], []
        ),
        "tensor-count-2**40": lambda: b"GGUF" + struct.pack("<IQQ", 3, 2**40, 0) + b"\0" * 76,
        "kv-count-huge": lambda: b"GGUF" + struct.pack("<IQQ", 3, 0, 2**62) + b"\0" * 76,
        "value-type-99": lambda: gguf([gstr("k") + struct.pack("<I", 99) + b"\0" * 8], []),
        "version-1": lambda: b"GGUF" + struct.pack("<III", 1, 0, 0) + b"\0" * 32,
        "big-endian": lambda: b"GGUF" + struct.pack(">IQQ", 3, 0, 0),
        "n-dims-9": lambda: gguf([], [gstr("t") + struct.pack("<I", 9) + b"\0" * 96]),
        "misaligned": lambda: gguf([], [tensor_info("t", [4], F32_TYPE, 4)], b"\0" * 64),
        "past-eof": lambda: gguf([], [tensor_info("t", [1024], F32_TYPE, 0)], b"\0" * 64),
        "overlap": lambda: gguf([], [ok_tensor, tensor_info("u", [8], F32_TYPE, 0)], b"\0" * 64),
        "element-overflow": lambda: gguf(
            [], [tensor_info("t", [2**32, 2**32], F32_TYPE, 0)], b"\0" * 64
        ),
        "byte-size-overflow": lambda: gguf(
            [], [tensor_info("t", [2**62], F32_TYPE, 0)], b"\0" * 64
        ),
        "dim-over-int64": lambda: gguf(
            [], [tensor_info("t", [2**64 - 1], F32_TYPE, 0)], b"\0" * 64
        ),
        "non-ascii-key": lambda: gguf([kv("général.name".encode(), STR, "x")], []),
        "duplicate-key": lambda: gguf([kv("a", U32, 1), kv("a", U32, 2)], []),
        "bad-alignment": lambda: gguf([kv("general.alignment", U32, 12)], []),
        "block-mismatch": lambda: gguf([], [tensor_info("t", [33], Q4_0_TYPE, 0)], b"\0" * 64),
        "long-tensor-name": lambda: gguf([], [tensor_info("t" * 64, [4], F32_TYPE, 0)], b"\0" * 16),
        "layout-gap": lambda: gguf([], [tensor_info("t", [4], F32_TYPE, 32)], b"\0" * 64),
    }


HOSTILE = _hostile()
EXPECTED_CODE = {
    "misaligned": "tensor-misaligned",
    "past-eof": "tensor-data-past-eof",
    "overlap": "tensors-overlap",
    "element-overflow": "tensor-size-overflow",
    "byte-size-overflow": "tensor-size-overflow",
    "dim-over-int64": "tensor-size-overflow",
    "non-ascii-key": "key-not-ascii",
    "duplicate-key": "duplicate-key",
    "bad-alignment": "bad-alignment",
    "block-mismatch": "tensor-block-mismatch",
    "long-tensor-name": "tensor-name-too-long",
    "layout-gap": "tensor-layout-differs",
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_file_is_a_critical_finding(tmp_path: Path, case: str) -> None:
    findings = scan_bytes(tmp_path, HOSTILE[case]())
    malformed = [f for f in findings if f.rule_id == "SER-GGUF-MALFORMED"]
    assert malformed, findings
    assert all(f.severity is Severity.CRITICAL for f in malformed)
    assert all(f.location is not None and f.location.path == "model.gguf" for f in malformed)
    if case in EXPECTED_CODE:
        assert EXPECTED_CODE[case] in codes(findings)
    else:
        assert codes(malformed) == {"unreadable-structure"}
        assert malformed[0].location is not None and malformed[0].location.offset is not None


@pytest.mark.parametrize(
    "case",
    ["string-length-2**63", "array-count-2**60", "string-array-count-2**60",
     "tensor-count-2**40", "kv-count-huge", "element-overflow"],
)  # fmt: skip
def test_hostile_counts_allocate_nothing_big(tmp_path: Path, case: str) -> None:
    file = write(tmp_path, HOSTILE[case]())
    tracemalloc.start()
    try:
        findings = scan_gguf(file, Limits())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert findings and peak < 10 * 1024 * 1024


def test_refused_counts_are_named(tmp_path: Path) -> None:
    findings = scan_bytes(tmp_path, HOSTILE["tensor-count-2**40"]())
    assert "tensor count 1099511627776" in findings[0].message
    assert findings[0].location is not None and findings[0].location.offset == 8
    v1 = scan_bytes(tmp_path, HOSTILE["version-1"]())
    assert "version 1" in v1[0].message


def test_nested_arrays_are_read_and_flagged(tmp_path: Path) -> None:
    inner = struct.pack("<IQ", U32, 2) + struct.pack("<II", 7, 8)
    nested = gstr("x.nested") + struct.pack("<IIQ", ARR, ARR, 2) + inner + inner
    file = write(tmp_path, gguf([nested, kv("after", U32, 5)], []))
    with file.path.open("rb") as handle:
        meta = read_gguf(handle)
    value = meta.kv["x.nested"]
    assert isinstance(value, GgufArray) and isinstance(value.items[0], GgufArray)
    assert value.items[0].items == [7, 8] and meta.kv["after"] == 5
    findings = scan_gguf(file, Limits())
    assert [(f.rule_id, f.severity) for f in findings] == [("SER-GGUF-NONSTANDARD", Severity.HIGH)]


def test_more_than_four_dims_and_unknown_type_are_high(tmp_path: Path) -> None:
    content = gguf(
        [], [tensor_info("t", [1, 1, 1, 1, 4], F32_TYPE, 0), tensor_info("u", [4], 200, 32)],
        b"\0" * 64,
    )  # fmt: skip
    findings = scan_bytes(tmp_path, content)
    assert codes(findings) == {"too-many-dims", "unknown-tensor-type"}
    assert {f.severity for f in findings} == {Severity.HIGH}


def test_malicious_chat_template_in_gguf_is_critical(tmp_path: Path, canary: Path) -> None:
    payload = "{{ cycler.__init__.__globals__.os.popen('touch " + str(canary) + "').read() }}"
    findings = scan_bytes(tmp_path, valid_bytes(TEMPLATE + payload))
    assert [(f.rule_id, f.severity) for f in findings] == [
        ("SER-CHAT-TEMPLATE-INJECTION", Severity.CRITICAL)
    ]
    assert "dunder-attribute" in findings[0].evidence["patterns"]
    assert any("__globals__" in e for e in findings[0].evidence["excerpts"])


def test_named_chat_templates_are_linted(tmp_path: Path) -> None:
    bad = kv("tokenizer.chat_template.tool_use", STR, "{{ lipsum.__globals__['os'] }}")
    findings = scan_bytes(tmp_path, gguf([bad], []))
    assert findings[0].evidence["template"] == "tokenizer.chat_template.tool_use"


def test_gguf_py_writer_agrees_with_the_reader(tmp_path: Path) -> None:
    gguf_py = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    path = tmp_path / "ref.gguf"
    writer = gguf_py.GGUFWriter(str(path), "llama")
    writer.add_name("Ref")
    writer.add_license("mit")
    writer.add_chat_template(TEMPLATE)
    writer.add_token_list([f"t{i}" for i in range(300)])
    writer.add_tensor("w", np.ones((3, 5), dtype=np.float32))
    writer.add_tensor("v", np.ones(7, dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with path.open("rb") as handle:
        meta = read_gguf(handle)
    assert meta.kv["general.name"] == "Ref" and meta.kv["tokenizer.chat_template"] == TEMPLATE
    assert {t.name: t.dims for t in meta.tensors} == {"w": (5, 3), "v": (7,)}
    file = ScanFile(rel="ref.gguf", path=path, size=path.stat().st_size)
    assert scan_gguf(file, Limits()) == []
    reference = gguf_py.GGUFReader(str(path))
    assert [t.name for t in reference.tensors] == [t.name for t in meta.tensors]
    assert [int(t.data_offset) for t in reference.tensors] == [
        meta.data_offset + t.offset for t in meta.tensors
    ]
