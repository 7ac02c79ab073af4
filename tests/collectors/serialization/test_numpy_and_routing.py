"""numpy object arrays, formats not yet inspected, overflowing shapes, and a broken scanner install."""

from __future__ import annotations

import io
import ipaddress
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from provscan.collectors.serialization import scan as scan_module
from provscan.collectors.serialization.safetensors import scan as safetensors_scan
from provscan.collectors.serialization.scan import scan_serialization
from provscan.files import ScanFile, SniffedFile
from provscan.limits import Limits
from provscan.report import FileFormat, Severity


def sniffed(path: Path, fmt: FileFormat) -> SniffedFile:
    return SniffedFile(ScanFile(rel=path.name, path=path, size=path.stat().st_size), fmt)


def test_numeric_npy_is_clean(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.arange(10, dtype=np.float32))
    assert (
        scan_serialization([sniffed(tmp_path / "a.npy", FileFormat.NUMPY)], Limits()).findings == ()
    )


def test_object_npy_is_flagged_and_its_pickle_walked(tmp_path: Path) -> None:
    # An object array whose element's class is an unknown global: numpy pickles it.
    array = np.array([{"a": 1}, ipaddress.IPv4Address("10.0.0.1")], dtype=object)
    np.save(tmp_path / "o.npy", array, allow_pickle=True)
    findings = scan_serialization(
        [sniffed(tmp_path / "o.npy", FileFormat.NUMPY)], Limits()
    ).findings
    rules = {f.rule_id for f in findings}
    assert "SER-NUMPY-OBJECT-ARRAY" in rules
    unknown = [f for f in findings if f.rule_id == "SER-PICKLE-UNKNOWN-GLOBAL"]
    assert any("ipaddress" in f.message for f in unknown)


def test_object_npy_with_a_code_execution_payload_is_critical(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "|O", "fortran_order": False, "shape": (1,)}
    )
    buffer.write(b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R.")
    assert buffer.getvalue().startswith(b"\x93NUMPY")
    (tmp_path / "evil.npy").write_bytes(buffer.getvalue())
    findings = scan_serialization(
        [sniffed(tmp_path / "evil.npy", FileFormat.NUMPY)], Limits()
    ).findings
    assert any(
        f.rule_id == "SER-PICKLE-DANGEROUS-GLOBAL" and f.severity is Severity.CRITICAL
        for f in findings
    )


def test_malformed_npy_header(tmp_path: Path) -> None:
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': os.system}    \n")
    findings = scan_serialization(
        [sniffed(tmp_path / "bad.npy", FileFormat.NUMPY)], Limits()
    ).findings
    assert [f.rule_id for f in findings] == ["SER-NUMPY-MALFORMED"]


@pytest.mark.parametrize("shape", [[2**40, 2**40, 0], [2**70, 0]])
def test_shapes_that_overflow_64_bits_are_invalid_like_the_reference_reader(
    tmp_path: Path, shape: list[int]
) -> None:
    header = json.dumps({"t": {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]}}).encode()
    path = tmp_path / "o.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    findings = scan_serialization([sniffed(path, FileFormat.SAFETENSORS)], Limits()).findings
    assert [(f.rule_id, f.evidence.get("code")) for f in findings] == [
        ("SER-SAFETENSORS-INVALID", "ValidationOverflow")
    ]


def test_a_broken_install_fails_the_step_instead_of_blaming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(2, dtype=np.float32)}, str(tmp_path / "w.safetensors"))

    def missing_numpy(*_args, **_kwargs):
        raise ModuleNotFoundError("No module named 'numpy'")

    monkeypatch.setattr(safetensors_scan, "safe_open", missing_numpy)
    with pytest.raises(ModuleNotFoundError):
        scan_module.scan_serialization(
            [sniffed(tmp_path / "w.safetensors", FileFormat.SAFETENSORS)], Limits()
        )


def test_deeply_nested_safetensors_header_is_invalid_not_a_crash(tmp_path: Path) -> None:
    header = ('{"a": ' * 200_000 + "1" + "}" * 200_000).encode()
    path = tmp_path / "deep.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    findings = scan_serialization([sniffed(path, FileFormat.SAFETENSORS)], Limits()).findings
    assert [(f.rule_id, f.evidence.get("code")) for f in findings] == [
        ("SER-SAFETENSORS-INVALID", "InvalidHeaderDeserialization")
    ]
