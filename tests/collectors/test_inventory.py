"""Inventory: formats come from content, roles from names, and lying names are findings."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import struct
import tarfile
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from fixtures.models import malicious_pickle
from provscan.collectors.inventory import collect_inventory, role_of
from provscan.collectors.serialization.sniff import sniff
from provscan.files import ScanFile
from provscan.limits import DEFAULT_LIMITS
from provscan.report import FileFormat, FileRole
from tests.conftest import REPO

F = FileFormat


def sniff_bytes(data: bytes) -> FileFormat:
    return sniff(data[: DEFAULT_LIMITS.sniff_bytes], len(data))


def safetensors_bytes(tmp_path: Path) -> bytes:
    save_file({"w": np.zeros((2, 2), dtype=np.float32)}, str(tmp_path / "w.safetensors"))
    return (tmp_path / "w.safetensors").read_bytes()


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.txt", "a")
    return buffer.getvalue()


def tar_bytes() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("a.txt")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"a"))
    return buffer.getvalue()


def npy_bytes() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.arange(4))
    return buffer.getvalue()


@pytest.mark.parametrize("protocol", range(0, 6))
def test_pickles_of_every_protocol_are_recognised(protocol: int) -> None:
    data = pickle.dumps(OrderedDict(a=[1, 2.5, "x"]), protocol=protocol)
    assert sniff_bytes(data) is F.PICKLE


def test_protocol_zero_payload_is_recognised() -> None:
    assert sniff_bytes(b"cos\nsystem\n(S'touch x'\ntR.") is F.PICKLE
    assert sniff_bytes(malicious_pickle("touch x")) is F.PICKLE


def test_formats_from_content(tmp_path: Path) -> None:
    assert sniff_bytes(safetensors_bytes(tmp_path)) is F.SAFETENSORS
    assert sniff_bytes(zip_bytes()) is F.ZIP
    assert sniff_bytes(tar_bytes()) is F.TAR
    assert sniff_bytes(npy_bytes()) is F.NUMPY
    assert sniff_bytes(gzip.compress(b"x")) is F.GZIP
    assert sniff_bytes(b"GGUF\x03\x00\x00\x00" + bytes(16)) is F.GGUF
    assert sniff_bytes(b"\x89HDF\r\n\x1a\n" + bytes(16)) is F.HDF5
    assert sniff_bytes(b"7z\xbc\xaf\x27\x1c" + bytes(16)) is F.SEVENZIP
    # ONNX ModelProto: ir_version=8, then opset_import/producer_name fields.
    assert sniff_bytes(b"\x08\x08\x12\x07pytorch\x1a\x032.1") is F.ONNX
    assert sniff_bytes(json.dumps({"a": 1}).encode()) is F.JSON
    assert sniff_bytes(b"\xef\xbb\xbf  [1, 2]") is F.JSON
    assert sniff_bytes("plain text, with ünïcode\n".encode()) is F.TEXT
    assert sniff_bytes(b"") is F.EMPTY
    assert sniff_bytes(bytes(range(256)) * 4) is F.BINARY


def test_safetensors_whose_header_does_not_fit_is_still_safetensors() -> None:
    # Routed to the safetensors checks, which then name the problem.
    assert sniff_bytes(struct.pack("<Q", 2**40) + b'{"a": 1}') is F.SAFETENSORS


def test_text_that_happens_to_start_like_a_pickle_is_text() -> None:
    licence = REPO / "fixtures" / "data" / "apache-2.0.txt"
    assert sniff_bytes(licence.read_bytes()) is F.TEXT
    assert sniff_bytes(b"(c) 2024 Example Corp. All rights reserved.\n") is F.TEXT
    assert sniff_bytes(b"hello") is F.TEXT


def test_multibyte_character_cut_at_the_sniff_boundary_is_still_text() -> None:
    data = ("a" * (DEFAULT_LIMITS.sniff_bytes - 1) + "é" * 100).encode()
    assert sniff(data[: DEFAULT_LIMITS.sniff_bytes], len(data)) is F.TEXT


@pytest.mark.parametrize(
    ("name", "fmt", "role"),
    [
        ("model-00001-of-00002.safetensors", F.SAFETENSORS, FileRole.WEIGHTS),
        ("pytorch_model.bin", F.ZIP, FileRole.WEIGHTS),
        ("config.json", F.JSON, FileRole.CONFIG),
        ("adapter_config.json", F.JSON, FileRole.CONFIG),
        ("tokenizer.json", F.JSON, FileRole.TOKENIZER),
        ("tokenizer.model", F.BINARY, FileRole.TOKENIZER),
        ("README.md", F.TEXT, FileRole.MODEL_CARD),
        ("docs/README.md", F.TEXT, FileRole.OTHER),
        ("LICENSE", F.TEXT, FileRole.LICENCE),
        ("USE_POLICY.md", F.TEXT, FileRole.LICENCE),
        ("modeling_custom.py", F.TEXT, FileRole.CODE),
        ("notes.txt", F.TEXT, FileRole.OTHER),
    ],
)
def test_roles(name: str, fmt: FileFormat, role: FileRole) -> None:
    assert role_of(name, fmt) is role


def inventory(tmp_path: Path, files: dict[str, bytes]):
    scan_files = []
    for name, data in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        scan_files.append(ScanFile(rel=name, path=path, size=len(data)))
    return collect_inventory(scan_files, DEFAULT_LIMITS)


def test_python_code_is_a_finding(tmp_path: Path) -> None:
    result = inventory(tmp_path, {"modeling_evil.py": b"import os\n"})
    finding = next(f for f in result.findings if f.rule_id == "INV-PYTHON-CODE")
    assert finding.severity.value == "high"
    assert "trust_remote_code" in finding.message and "modeling_evil.py" in finding.message


def test_pickle_named_safetensors_is_a_mismatch(tmp_path: Path) -> None:
    result = inventory(tmp_path, {"model.safetensors": malicious_pickle("true")})
    assert result.value[0].format is F.PICKLE  # routed by content, not name
    mismatch = next(f for f in result.findings if f.rule_id == "INV-FORMAT-MISMATCH")
    assert "model.safetensors" in mismatch.message and "pickle" in mismatch.message


def test_matching_names_give_no_findings(tmp_path: Path) -> None:
    result = inventory(
        tmp_path,
        {
            "w.safetensors": safetensors_bytes(tmp_path),
            "config.json": b"{}",
            "pytorch_model.bin": zip_bytes(),
            "README.md": b"# hi\n",
        },
    )
    assert result.findings == ()


def test_zip_named_json_is_a_mismatch(tmp_path: Path) -> None:
    result = inventory(tmp_path, {"config.json": zip_bytes()})
    assert [f.rule_id for f in result.findings] == ["INV-FORMAT-MISMATCH"]
