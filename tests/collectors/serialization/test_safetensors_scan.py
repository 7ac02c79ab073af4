"""safetensors scanning: malformed headers are critical, and so is disagreeing with the library."""

from __future__ import annotations

import json
import struct
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from provscan.collectors.serialization.safetensors import scan as safetensors_scan
from provscan.collectors.serialization.scan import scan_serialization
from provscan.files import ScanFile, SniffedFile
from provscan.limits import Limits
from provscan.report import FileFormat, Finding, Severity


def scan(path: Path) -> list[Finding]:
    sniffed = SniffedFile(
        ScanFile(rel=path.name, path=path, size=path.stat().st_size), FileFormat.SAFETENSORS
    )
    return list(scan_serialization([sniffed], Limits()).findings)


def valid_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.safetensors"
    tensors: dict[str, Any] = {
        "a.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
        "b.bias": np.ones(3, dtype=np.float16),
    }
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path


def hand_made(
    tmp_path: Path, header: Any, data: bytes = b"", raw_header: bytes | None = None
) -> Path:
    encoded = raw_header if raw_header is not None else json.dumps(header).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)
    return path


def only_invalid(findings: list[Finding], code: str) -> Finding:
    assert findings, "expected a finding"
    assert all(
        f.rule_id == "SER-SAFETENSORS-INVALID" and f.severity is Severity.CRITICAL for f in findings
    ), findings
    hits = [f for f in findings if f.evidence["code"] == code]
    assert hits, f"no {code} in {findings}"
    assert hits[0].message.startswith(f"model.safetensors: {code}: ")
    return hits[0]


def test_valid_file_has_no_findings(tmp_path: Path) -> None:
    assert scan(valid_file(tmp_path)) == []


def test_truncated_file(tmp_path: Path) -> None:
    path = valid_file(tmp_path)
    path.write_bytes(path.read_bytes()[:-5])
    finding = only_invalid(scan(path), "MetadataIncompleteBuffer")
    assert "truncated" in finding.message


def test_truncated_inside_the_header(tmp_path: Path) -> None:
    path = valid_file(tmp_path)
    path.write_bytes(path.read_bytes()[:20])
    finding = only_invalid(scan(path), "InvalidHeaderLength")
    assert finding.location is not None and finding.location.offset == 0


def test_huge_header_length_is_refused_without_allocating(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", 200_000_000) + b"{}")
    tracemalloc.start()
    try:
        findings = scan(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    only_invalid(findings, "HeaderTooLarge")


def test_overlapping_offsets_name_the_tensor(tmp_path: Path) -> None:
    header = {
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
    }
    finding = only_invalid(scan(hand_made(tmp_path, header, b"\0" * 12)), "InvalidOffset")
    assert finding.evidence["tensor"] == "b" and "'b'" in finding.message
    assert finding.location is not None and finding.location.member is None


def test_bytes_appended_after_the_data(tmp_path: Path) -> None:
    path = valid_file(tmp_path)
    path.write_bytes(path.read_bytes() + b"\x80\x02cos\nsystem\n")
    finding = only_invalid(scan(path), "MetadataIncompleteBuffer")
    assert "appended" in finding.message


def test_non_string_metadata(tmp_path: Path) -> None:
    header = {
        "__metadata__": {"format": 1},
        "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
    }
    only_invalid(scan(hand_made(tmp_path, header, b"\0" * 4)), "InvalidMetadata")


def test_invalid_json(tmp_path: Path) -> None:
    finding = only_invalid(
        scan(hand_made(tmp_path, None, raw_header=b'{"a": {"dtype": ')),
        "InvalidHeaderDeserialization",
    )
    assert finding.location is not None and finding.location.offset is not None


@pytest.mark.parametrize(
    "shape",
    [[2**40, 2**40, 0], [2**70, 0]],  # the element count overflows 64 bits in the Rust loader
)
def test_a_header_the_loader_refuses_is_never_silent(tmp_path: Path, shape: list[int]) -> None:
    # Python's integers do not overflow, so a zero-element tensor with huge dimensions looks
    # fine to a Python reader; the library refuses it. Either reading must produce a finding.
    header = {"a": {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]}}
    findings = scan(hand_made(tmp_path, header))
    assert findings and all(f.severity is Severity.CRITICAL for f in findings)
    assert {f.rule_id for f in findings} <= {
        "SER-SAFETENSORS-INVALID",
        "SER-SAFETENSORS-LOADER-DISAGREES",
    }


def test_library_refusal_is_reported_with_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(path: Path) -> str:
        return "SafetensorError: nope"

    monkeypatch.setattr(safetensors_scan, "_library_refusal", refuse)
    findings = scan(valid_file(tmp_path))
    assert [f.rule_id for f in findings] == ["SER-SAFETENSORS-LOADER-DISAGREES"]
    assert "nope" in findings[0].message


def test_library_is_not_consulted_when_our_reader_already_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_run(path: Path) -> str:
        raise AssertionError("library consulted")

    monkeypatch.setattr(safetensors_scan, "_library_refusal", must_not_run)
    path = valid_file(tmp_path)
    path.write_bytes(path.read_bytes()[:-1])
    assert {f.rule_id for f in scan(path)} == {"SER-SAFETENSORS-INVALID"}


def test_router_turns_errors_into_unreadable_findings(tmp_path: Path) -> None:
    missing = tmp_path / "gone.safetensors"
    files = [
        SniffedFile(
            ScanFile(rel="gone.safetensors", path=missing, size=10), FileFormat.SAFETENSORS
        ),
        SniffedFile(
            ScanFile(rel="gone.pkl", path=tmp_path / "gone.pkl", size=10), FileFormat.PICKLE
        ),
        SniffedFile(ScanFile(rel="gone.zip", path=tmp_path / "gone.zip", size=10), FileFormat.ZIP),
        SniffedFile(
            ScanFile(rel="model.gguf", path=tmp_path / "model.gguf", size=10), FileFormat.GGUF
        ),
    ]
    collected = scan_serialization(files, Limits())
    assert [(f.rule_id, f.severity, f.location.path) for f in collected.findings] == [  # type: ignore[union-attr]
        ("SER-UNREADABLE", Severity.HIGH, "gone.safetensors"),
        ("SER-UNREADABLE", Severity.HIGH, "gone.pkl"),
        ("SER-UNREADABLE", Severity.HIGH, "gone.zip"),
        ("SER-UNREADABLE", Severity.HIGH, "model.gguf"),
    ]
    assert collected.value is None and collected.skipped is None


def test_router_completes_when_nothing_applies(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")  # walked from byte 0 as a pickle: runs nothing
    files = [
        SniffedFile(
            ScanFile(rel="config.json", path=tmp_path / "config.json", size=2), FileFormat.JSON
        )
    ]
    collected = scan_serialization(files, Limits())
    assert collected.findings == () and collected.skipped is None  # skipped would deny
