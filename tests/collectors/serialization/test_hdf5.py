"""Keras HDF5 models: the architecture attribute is read by libhdf5 in a child process, then checked."""

from __future__ import annotations

import base64
import json
import marshal
from pathlib import Path

import pytest

from provscan.collectors.serialization.keras import hdf5 as hdf5_scan
from provscan.collectors.serialization.keras.hdf5 import scan_hdf5
from provscan.files import ScanFile
from provscan.limits import Limits

h5py = pytest.importorskip(
    "h5py"
)  # test extra; without it the scanner reports the format unscanned


def write(tmp_path: Path, config: dict | None, name: str = "model.h5") -> ScanFile:
    path = tmp_path / name
    with h5py.File(path, "w") as handle:
        if config is not None:
            handle.attrs["model_config"] = json.dumps(config)
            handle.attrs["keras_version"] = "2.15.0"
        handle.create_dataset("model_weights/dense/kernel", data=[[1.0, 2.0]])
    return ScanFile(rel=name, path=path, size=path.stat().st_size)


def keras2_model(layers: list[dict]) -> dict:
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers}}


def test_plain_keras2_model_is_clean(tmp_path: Path) -> None:
    model = keras2_model([{"class_name": "Dense", "config": {"units": 2}}])
    assert scan_hdf5(write(tmp_path, model), Limits()) == []


def test_weights_only_file_is_clean(tmp_path: Path) -> None:
    assert scan_hdf5(write(tmp_path, None), Limits()) == []


def test_keras2_lambda_with_bytecode_is_critical(tmp_path: Path) -> None:
    # Keras 2 stores a Lambda's function as [base64 marshalled code, defaults, closure].
    code = base64.b64encode(marshal.dumps((lambda x: x).__code__)).decode()
    model = keras2_model(
        [
            {
                "class_name": "Lambda",
                "config": {"function": [code, None, None], "function_type": "lambda"},
            }
        ]
    )
    findings = scan_hdf5(write(tmp_path, model), Limits())
    assert [(f.rule_id, f.severity.value) for f in findings] == [("SER-KERAS-LAMBDA", "critical")]
    assert findings[0].location is not None and findings[0].location.member == "attrs/model_config"


def test_corrupt_hdf5_is_unreadable_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "bad.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\xff" * 2000)
    findings = scan_hdf5(ScanFile(rel="bad.h5", path=path, size=path.stat().st_size), Limits())
    assert [f.rule_id for f in findings] == ["SER-HDF5-UNREADABLE"]


def test_without_h5py_the_format_is_reported_unscanned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hdf5_scan, "h5py_available", lambda: False)
    findings = scan_hdf5(write(tmp_path, None), Limits())
    assert [(f.rule_id, f.severity.value) for f in findings] == [("SER-UNSCANNED-FORMAT", "high")]
