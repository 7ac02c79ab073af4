"""Keras .keras archives: Lambda bytecode and callables from outside Keras, read as JSON only."""

from __future__ import annotations

import base64
import json
import marshal
import zipfile
from pathlib import Path

from provscan.collectors.base import ScanFile
from provscan.collectors.serialization.keras_scan import scan_keras_zip
from provscan.limits import Limits


def layer(class_name: str, config: dict, module: str = "keras.layers") -> dict:
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None}


def keras_model(layers: list[dict]) -> dict:
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {
            "name": "sequential",
            "layers": [layer("InputLayer", {"batch_shape": [None, 4]}), *layers],
        },
        "registered_name": None,
        "build_config": {"input_shape": [None, 4]},
        "compile_config": {
            "optimizer": {"module": "keras.optimizers", "class_name": "Adam", "config": {}}
        },
    }


def write(tmp_path: Path, config: dict, name: str = "model.keras") -> ScanFile:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.6.0"}))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n")
    return ScanFile(rel=name, path=path, size=path.stat().st_size)


def lambda_code() -> str:
    # The bytecode of a harmless function, as Keras 3 stores a Lambda's function.
    return base64.b64encode(marshal.dumps((lambda x: x).__code__)).decode()


def test_ordinary_keras_model_is_clean(tmp_path: Path) -> None:
    model = keras_model(
        [
            layer(
                "Dense",
                {
                    "units": 2,
                    "kernel_initializer": {
                        "module": "keras.initializers",
                        "class_name": "GlorotUniform",
                        "config": {},
                    },
                },
            )
        ]
    )
    assert scan_keras_zip(write(tmp_path, model), Limits()) == []


def test_lambda_with_bytecode_is_critical(tmp_path: Path) -> None:
    function = {
        "class_name": "__lambda__",
        "config": {"code": lambda_code(), "defaults": None, "closure": None},
    }
    findings = scan_keras_zip(
        write(tmp_path, keras_model([layer("Lambda", {"function": function})])), Limits()
    )
    assert [(f.rule_id, f.severity.value) for f in findings] == [("SER-KERAS-LAMBDA", "critical")]
    assert findings[0].location is not None and findings[0].location.member == "config.json"


def test_callable_from_os_is_critical_and_unknown_module_is_high(tmp_path: Path) -> None:
    evil = layer(
        "Dense",
        {
            "units": 1,
            "kernel_initializer": {
                "module": "os",
                "class_name": "system",
                "config": {"command": "true"},
            },
        },
    )
    other = layer("MyLayer", {}, module="acme_layers")
    findings = scan_keras_zip(write(tmp_path, keras_model([evil, other])), Limits())
    assert sorted((f.evidence["callable"], f.severity.value) for f in findings) == [
        ("acme_layers.MyLayer", "high"),
        ("os.system", "critical"),
    ]


def test_zip_that_is_not_keras_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{not json")
    assert (
        scan_keras_zip(ScanFile(rel="other.zip", path=path, size=path.stat().st_size), Limits())
        == []
    )


def test_broken_config_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bad.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", "{}")
        archive.writestr("config.json", "{not json")
    findings = scan_keras_zip(
        ScanFile(rel="bad.keras", path=path, size=path.stat().st_size), Limits()
    )
    assert [f.rule_id for f in findings] == ["SER-KERAS-MALFORMED"]


def test_deeply_nested_config_is_walked_or_refused_never_a_crash(tmp_path: Path) -> None:
    for depth, expected in ((900, []), (200_000, ["SER-KERAS-MALFORMED"])):
        path = tmp_path / f"deep{depth}.keras"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("metadata.json", "{}")
            archive.writestr("config.json", '{"a": ' * depth + "1" + "}" * depth)
        findings = scan_keras_zip(
            ScanFile(rel=path.name, path=path, size=path.stat().st_size), Limits()
        )
        assert [f.rule_id for f in findings] == expected


def test_keras_archives_are_checked_through_the_router(tmp_path: Path) -> None:
    from provscan.collectors.base import SniffedFile
    from provscan.collectors.serialization.scan import scan_serialization
    from provscan.report import FileFormat

    function = {"class_name": "__lambda__", "config": {"code": lambda_code()}}
    file = write(tmp_path, keras_model([layer("Lambda", {"function": function})]))
    findings = scan_serialization([SniffedFile(file, FileFormat.ZIP)], Limits()).findings
    assert "SER-KERAS-LAMBDA" in [f.rule_id for f in findings]
