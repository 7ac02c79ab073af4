"""Keras .keras archives: Lambda bytecode and callables from outside Keras, read as JSON only.

The spellings come from Keras 3's own loader (keras/src/saving/saving_lib.py and
serialization_lib.py); the corpus samples are proven against the released keras package (in a
child process, torch backend) when it is installed, and scanned with provscan either way.
"""

from __future__ import annotations

import base64
import json
import marshal
import zipfile
from functools import partial
from pathlib import Path

import pytest

from fixtures.corpus_keras import keras_available, keras_samples
from fixtures.loader_proof import prove_all
from fixtures.serialization_corpus import Sample
from provscan.collectors.serialization.keras.scan import scan_keras_zip
from provscan.files import ScanFile
from provscan.limits import Limits
from provscan.report import Severity
from tests.collectors.serialization.corpus_support import catalogue, critical_on, scan_alone


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
    from provscan.collectors.serialization.scan import scan_serialization
    from provscan.files import SniffedFile
    from provscan.report import FileFormat

    function = {"class_name": "__lambda__", "config": {"code": lambda_code()}}
    file = write(tmp_path, keras_model([layer("Lambda", {"function": function})]))
    findings = scan_serialization([SniffedFile(file, FileFormat.ZIP)], Limits()).findings
    assert "SER-KERAS-LAMBDA" in [f.rule_id for f in findings]


# ---- spellings Keras accepts when it rebuilds objects ------------------------------------


def findings_for(tmp_path: Path, config: dict, name: str = "model.keras") -> list[tuple[str, str]]:
    found = scan_keras_zip(write(tmp_path, config, name), Limits())
    return sorted((f.rule_id, f.severity.value) for f in found)


def callables(tmp_path: Path, config: dict) -> dict[str, str]:
    found = scan_keras_zip(write(tmp_path, config), Limits())
    return {
        str(f.evidence["callable"]): f.severity.value
        for f in found
        if f.rule_id == "SER-KERAS-FOREIGN-CALLABLE"
    }


def function_ref(module: str | None, name: str, registered: str | None = None) -> dict:
    return {
        "module": module,
        "class_name": "function",
        "config": name,
        "registered_name": registered if registered is not None else name,
    }


def code_lambda() -> dict:
    return {
        "class_name": "__lambda__",
        "config": {"code": lambda_code(), "defaults": None, "closure": None},
    }


@pytest.mark.parametrize(
    ("module", "class_name"),
    [
        ("keras.layers", "Lambda"),
        ("keras", "layers.Lambda"),  # the exported API name, split the other way
        ("keras.src.layers", "Lambda"),
        ("keras.src.layers.core.lambda_layer", "Lambda"),
        ("tf_keras.layers", "Lambda"),
    ],
)
def test_lambda_layer_is_critical_under_every_class_spelling(
    tmp_path: Path, module: str, class_name: str
) -> None:
    evil = layer(class_name, {"function": code_lambda()}, module=module)
    assert findings_for(tmp_path, keras_model([evil])) == [("SER-KERAS-LAMBDA", "critical")]


def test_lambda_bytecode_in_output_shape_is_critical(tmp_path: Path) -> None:
    shaped = layer(
        "Lambda",
        {"function": function_ref("builtins", "relu", "function"), "output_shape": code_lambda()},
    )
    assert findings_for(tmp_path, keras_model([shaped])) == [("SER-KERAS-LAMBDA", "critical")]


def test_generic_lambda_anywhere_is_critical(tmp_path: Path) -> None:
    model = keras_model([layer("Dense", {"units": 1})])
    generic = {"class_name": "__lambda__", "config": {"value": [lambda_code(), None, None]}}
    model["compile_config"]["optimizer"]["config"]["learning_rate"] = generic
    model["config"]["layers"][1]["config"]["activation"] = {"value": [lambda_code(), None, None]}
    assert findings_for(tmp_path, model) == [("SER-KERAS-LAMBDA", "critical")] * 2


def test_lambda_inside_a_shared_object_is_reported_whichever_copy_holds_it(
    tmp_path: Path,
) -> None:
    # Keras rebuilds a shared_object_id once and reuses it; the scanner trusts no copy.
    first = layer("Dense", {"units": 1})
    second = layer("Lambda", {"function": code_lambda()})
    first["shared_object_id"] = second["shared_object_id"] = 140000
    assert findings_for(tmp_path, keras_model([first, second])) == [
        ("SER-KERAS-LAMBDA", "critical")
    ]


def test_function_objects_name_their_callable_by_config(tmp_path: Path) -> None:
    dense = layer(
        "Dense",
        {
            "units": 1,
            "activation": function_ref("os", "system"),
            "kernel_constraint": function_ref("subprocess", "getoutput"),
            "bias_constraint": function_ref("my_pkg.constraints", "clip", "my_pkg>clip"),
        },
    )
    assert callables(tmp_path, keras_model([dense])) == {
        "os.system": "critical",
        "subprocess.getoutput": "critical",
        "my_pkg.constraints.clip": "high",
    }


def test_builtins_functions_are_keras_builtins_unless_python_has_them(tmp_path: Path) -> None:
    model = keras_model(
        [layer("Dense", {"units": 1, "activation": function_ref("builtins", "exec")})]
    )
    model["compile_config"]["loss"] = function_ref("builtins", "binary_crossentropy", "function")
    model["compile_config"]["metrics"] = [function_ref("builtins", "abs")]
    assert callables(tmp_path, model) == {"builtins.exec": "critical", "builtins.abs": "high"}


def test_plain_containers_from_builtins_are_not_callables(tmp_path: Path) -> None:
    holder = layer("Dense", {"units": 1, "kernel_regularizer": None})
    holder["config"]["extra"] = {"module": "builtins", "class_name": "dict", "config": {}}
    assert findings_for(tmp_path, keras_model([holder])) == []


@pytest.mark.parametrize(
    ("module", "name", "kind"),
    [
        ("keras.config", "enable_unsafe_deserialization", "function"),  # CVE-2025-9906
        ("keras.utils", "get_file", "function"),  # CVE-2025-8747
        ("keras.src.utils.file_utils", "get_file", "function"),
        ("keras.saving", "load_model", "class"),
        ("keras.layers", "TFSMLayer", "class"),  # CVE-2026-1462
    ],
)
def test_keras_apis_that_are_not_model_parts_are_critical(
    tmp_path: Path, module: str, name: str, kind: str
) -> None:
    ref = function_ref(module, name) if kind == "function" else layer(name, {}, module=module)
    model = keras_model([layer("Lambda", {"function": ref, "arguments": {}})])
    found = callables(tmp_path, model)
    assert found == {f"{module}.{name}": "critical"}


def test_registered_custom_objects_need_outside_code(tmp_path: Path) -> None:
    custom = {
        "module": None,
        "class_name": "MyLayer",
        "config": {},
        "registered_name": "acme>MyLayer",
    }
    renamed = {
        "module": None,
        "class_name": "Custom",
        "config": {"function": code_lambda()},
        "registered_name": "acme>Lambda",
    }
    assert callables(tmp_path, keras_model([custom])) == {"acme>MyLayer": "high"}
    assert ("SER-KERAS-LAMBDA", "critical") in findings_for(tmp_path, keras_model([renamed]))


def test_typespec_module_is_checked(tmp_path: Path) -> None:
    spec = {"class_name": "__typespec__", "spec_name": "system", "module": "os", "config": []}
    holder = layer("Dense", {"units": 1, "spec": spec})
    assert callables(tmp_path, keras_model([holder])) == {"os.system": "critical"}


def test_tf_op_lambda_names_a_tensorflow_api(tmp_path: Path) -> None:
    # tf.keras 2 (tf_keras) rebuilds TFOpLambda from the TensorFlow API name in `function`.
    model = keras2_style(
        [
            {"class_name": "TFOpLambda", "config": {"name": "a", "function": "math.add"}},
            {"class_name": "TFOpLambda", "config": {"name": "w", "function": "io.write_file"}},
        ]
    )
    found = scan_keras_zip(write(tmp_path, model), Limits())
    assert sorted((f.evidence["callable"], f.severity.value) for f in found) == [
        ("tf.io.write_file", "critical"),
        ("tf.math.add", "high"),
    ]


def keras2_style(layers: list[dict]) -> dict:
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers}}


def test_legacy_lambda_spellings(tmp_path: Path) -> None:
    by_name = {
        "class_name": "Lambda",
        "config": {"function": "system", "function_type": "function", "module": "os"},
    }
    dotted = {"class_name": "Lambda", "config": {"function": "posix.system"}}
    raw_code = {"class_name": "Lambda", "config": {"function": lambda_code()}}
    listed = {"class_name": "Lambda", "config": {"function": [lambda_code(), None, None]}}
    named = {"class_name": "Lambda", "config": {"function": "YzIwMTlfc2NhbGVy"}}  # a name
    found = scan_keras_zip(
        write(tmp_path, keras2_style([by_name, dotted, raw_code, listed, named])), Limits()
    )
    assert sorted((f.rule_id, f.severity.value) for f in found) == [
        ("SER-KERAS-FOREIGN-CALLABLE", "critical"),
        ("SER-KERAS-FOREIGN-CALLABLE", "critical"),
        ("SER-KERAS-LAMBDA", "critical"),
        ("SER-KERAS-LAMBDA", "critical"),
        ("SER-KERAS-LAMBDA", "high"),
        ("SER-KERAS-LAMBDA", "high"),
        ("SER-KERAS-LAMBDA", "high"),
    ]


# ---- which config.json is read ----------------------------------------------------------


def write_members(tmp_path: Path, members: list[tuple[str, str | bytes]], name: str) -> ScanFile:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members:
            archive.writestr(member, data)
    return ScanFile(rel=name, path=path, size=path.stat().st_size)


EVIL = json.dumps(keras_model([layer("Lambda", {"function": code_lambda()})]))
CLEAN = json.dumps(keras_model([layer("Dense", {"units": 1})]))


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("order", ["evil_first", "evil_last"])
def test_every_copy_of_a_duplicated_config_is_checked(tmp_path: Path, order: str) -> None:
    copies = [EVIL, CLEAN] if order == "evil_first" else [CLEAN, EVIL]
    file = write_members(
        tmp_path,
        [("metadata.json", "{}"), *(("config.json", c) for c in copies)],
        "model.keras",
    )
    with zipfile.ZipFile(file.path) as archive:  # what Keras reads: zipfile's last entry
        assert archive.read("config.json").decode() == copies[-1]
    [finding] = scan_keras_zip(file, Limits())
    assert finding.severity.value == "critical"
    expected = "copy 1 of 2" if order == "evil_first" else "copy 2 of 2 (the one zipfile"
    assert expected in finding.message


def test_config_only_and_subfolder_configs_are_checked(tmp_path: Path) -> None:
    alone = write_members(tmp_path, [("config.json", EVIL)], "alone.keras")
    assert [f.severity.value for f in scan_keras_zip(alone, Limits())] == ["critical"]
    renamed = write_members(tmp_path, [("config.json", EVIL)], "renamed.zip")
    assert [f.severity.value for f in scan_keras_zip(renamed, Limits())] == ["critical"]
    nested = write_members(
        tmp_path,
        [("config.json", CLEAN), ("model.weights.npz", b""), ("extracted/config.json", EVIL)],
        "nested.keras",
    )
    [finding] = scan_keras_zip(nested, Limits())
    assert finding.location is not None and finding.location.member == "extracted/config.json"
    # A zip that is no Keras archive: only a root config.json would be read by Keras.
    other = write_members(tmp_path, [("sub/config.json", EVIL)], "other.zip")
    assert scan_keras_zip(other, Limits()) == []


def test_utf16_and_escaped_configs_are_decoded_like_keras(tmp_path: Path) -> None:
    escaped = EVIL.replace('"Lambda"', '"Lamb\\u0064a"').replace("__lambda__", "\\u005f_lambda__")
    for name, data in (("utf16.keras", EVIL.encode("utf-16")), ("escaped.keras", escaped.encode())):
        file = write_members(tmp_path, [("config.json", data)], name)
        assert [f.severity.value for f in scan_keras_zip(file, Limits())] == ["critical"], name


# ---- the Keras corpus: real loads, real scans ----------------------------------------------

# Gaps the scanner has, strict: once provscan catches the sample, the xfail fails.
SCAN_XFAIL: dict[str, str] = {}


KERAS_SAMPLES = catalogue(partial(keras_samples, use_keras=False))
KERAS_MALICIOUS = [s for s in KERAS_SAMPLES if s.malicious]
KERAS_BENIGN = [s for s in KERAS_SAMPLES if not s.malicious]


@pytest.fixture(scope="module")
def keras_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("keras-corpus")
    canary = root / "canary"
    built = keras_samples(root / "files", canary)
    assert [s.name for s in built] == [s.name for s in KERAS_SAMPLES]
    return root / "files", canary


@pytest.fixture(scope="module")
def keras_proofs(keras_corpus: tuple[Path, Path]) -> dict[str, bool]:
    """Every malicious sample loaded by Keras in one child process (a Keras import takes
    seconds), the canary cleared before each load and checked after it."""
    if not keras_available():
        return {}
    files, canary = keras_corpus
    proofs = prove_all("keras", [files / s.path for s in KERAS_MALICIOUS], canary)
    return {s.name: proof.ran for s, proof in zip(KERAS_MALICIOUS, proofs, strict=True)}


@pytest.mark.parametrize("sample", [pytest.param(s, id=s.name) for s in KERAS_MALICIOUS])
def test_keras_sample_runs_its_payload_in_keras(
    keras_corpus: tuple[Path, Path], keras_proofs: dict[str, bool], sample: Sample
) -> None:
    if not keras_available():
        pytest.skip("keras is not installed: the payload cannot be proven against the loader")
    assert sample.loader == "keras"
    files, canary = keras_corpus
    ran = keras_proofs[sample.name]
    assert ran, f"{sample.name}: keras.saving.load_model(safe_mode=False) did not run the payload"


@pytest.mark.parametrize(
    "sample",
    [
        pytest.param(
            s,
            id=s.name,
            marks=[pytest.mark.xfail(strict=True, reason=SCAN_XFAIL[s.name])]
            if s.name in SCAN_XFAIL
            else [],
        )
        for s in KERAS_MALICIOUS
    ],
)
def test_keras_sample_is_critical(
    keras_corpus: tuple[Path, Path], sample: Sample, tmp_path: Path
) -> None:
    findings = scan_alone(keras_corpus, sample, tmp_path)
    critical = critical_on(findings, sample)
    assert critical, f"{sample.name}: " + "; ".join(f"{f.rule_id} {f.message}" for f in findings)


@pytest.mark.parametrize("sample", [pytest.param(s, id=s.name) for s in KERAS_BENIGN])
def test_benign_keras_sample_has_no_high_findings(
    keras_corpus: tuple[Path, Path], sample: Sample, tmp_path: Path
) -> None:
    findings = scan_alone(keras_corpus, sample, tmp_path)
    bad = [f for f in findings if f.severity in (Severity.HIGH, Severity.CRITICAL)]
    assert not bad, [f"{f.rule_id}: {f.message}" for f in bad]


def test_a_keras_model_saved_as_a_folder_has_its_config_checked(tmp_path: Path) -> None:
    """Keras 3 loads a directory holding config.json and model.weights.h5 like the archive."""
    from provscan.pipeline import scan

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(EVIL)
    findings = scan(str(model)).findings
    assert not [f for f in findings if f.rule_id.startswith("SER-KERAS")]  # no weights: not Keras
    (model / "model.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    keras = [f for f in scan(str(model)).findings if f.rule_id == "SER-KERAS-LAMBDA"]
    assert keras and keras[0].severity is Severity.CRITICAL
    assert keras[0].location is not None and keras[0].location.path == "config.json"
