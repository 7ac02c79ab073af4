"""Does this Keras v3 `.keras` archive carry code: Lambda bytecode or references to non-Keras callables?

A `.keras` file is a zip holding `config.json` (the architecture), `metadata.json` and
`model.weights.h5` (or `model.weights.npz`). Keras 3's saving_lib opens `config.json` by exact
name with Python's zipfile (which, when a name is stored twice, returns the last copy) and
builds the whole model from it before it even looks for the weights, so an archive holding
only `config.json` still runs what its config names. The config is read as JSON (bounded),
never deserialised by Keras; every copy of `config.json` in the archive is checked.

What loading can run, by the spellings `deserialize_keras_object` accepts
(keras/src/saving/serialization_lib.py):

- a Lambda layer, however its class is spelt: `class_name` "Lambda" under `module`
  "keras.layers", or "layers.Lambda" under `module` "keras" (the exported API name), or the
  implementation module "keras.src.layers.core.lambda_layer". Its `function`, `output_shape`
  (and a Keras 2 `mask`) may be `{"class_name": "__lambda__", "config": {"code": ...}}`, base64
  marshalled bytecode that runs with safe_mode off (CVE-2024-3660); Keras 2 / legacy HDF5
  configs store `[code, defaults, closure]`, or a function name plus `module` when
  `function_type` is "function";
- `{"class_name": "__lambda__", "config": {"value": ...}}` anywhere in the config (the generic
  lambda spelling);
- TFOpLambda / SlicingOpLambda (tf.keras 2): `function` names any TensorFlow API, `tf.<name>`;
- a class or function named by `module` plus `class_name` (or, for `"class_name": "function"`,
  plus the function name in `config`), nested anywhere: Keras < 3.9 imports any module
  (CVE-2025-1550); `"module": "builtins"` functions are looked up among Keras' own built-ins,
  and by Keras < 3.9 among Python's builtins too; a `registered_name` such as "package>Name"
  needs that package's code;
- Keras' own non-modeling APIs (keras.utils.get_file, keras.config.enable_unsafe_deserialization,
  keras.models.load_model, ...), which Keras 3.11 and later refuse by name (CVE-2025-8747,
  CVE-2025-9906), and TFSMLayer, which loads a TensorFlow SavedModel from a path
  (CVE-2026-1462).
"""

from __future__ import annotations

import base64
import binascii
import builtins
import json
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from provscan.collectors.serialization.pickle.globals import GlobalVerdict, classify_global
from provscan.files import ScanFile, open_scanned, read_scanned
from provscan.limits import Limits
from provscan.parsing import (
    HostileData,
    hostile_number_findings,
    parse_json_as_loaded,
)
from provscan.report import Finding, Location, Severity

# Packages a Keras config may reference in ordinary models.
KERAS_MODULE_PREFIXES = (
    "keras",
    "keras_hub",
    "keras_nlp",
    "keras_cv",
    "tensorflow.keras",
    "tf_keras",
)
# References into these run code whatever Keras' safe_mode says (any name inside them).
DANGEROUS_MODULES = (
    "os",
    "posix",
    "nt",
    "subprocess",
    "sys",
    "shutil",
    "runpy",
    "pty",
    "socket",
    "importlib",
    "pickle",
    "marshal",
    "ctypes",
    "webbrowser",
    "code",
)
# Keras APIs that are not model building blocks: they read, write or download files, load
# other models, or switch safe_mode off. Keras 3.11 and later refuse all but TFSMLayer by
# these names (serialization_lib.NON_MODELING_APIS, after CVE-2025-8747 and CVE-2025-9906);
# TFSMLayer loads a SavedModel from a path (CVE-2026-1462).
KERAS_UNSAFE_NAMES = frozenset(
    {
        "enable_unsafe_deserialization",
        "get_file",
        "load_model",
        "model_from_json",
        "load_weights",
        "save_model",
        "save_weights",
        "deserialize_keras_object",
        "serialize_keras_object",
        "register_keras_serializable",
        "load_img",
        "save_img",
        "image_dataset_from_directory",
        "text_dataset_from_directory",
        "audio_dataset_from_directory",
        "clear_session",
        "TFSMLayer",
    }
)
LAMBDA_LAYERS = frozenset({"Lambda"})
TF_OP_LAYERS = frozenset({"TFOpLambda", "SlicingOpLambda"})
# TensorFlow APIs a TFOpLambda can name that read or write files, run Python or load code.
TF_UNSAFE_PREFIXES = (
    "io.",
    "py_function",
    "numpy_function",
    "compat.v1.py_func",
    "compat.v1.io.",
    "compat.v1.gfile.",
    "compat.v1.read_file",
    "compat.v1.write_file",
    "raw_ops.",
    "saved_model.",
    "load_op_library",
    "load_library",
    "keras.",
)
# Keras' own special objects: values, not callables.
SPECIAL_CLASS_NAMES = frozenset(
    {
        "__keras_tensor__",
        "__tensor__",
        "__numpy__",
        "__bytes__",
        "__ellipsis__",
        "__slice__",
    }
)
# Every member with this base name is read from an archive that looks like a Keras archive.
CONFIG_NAME = "config.json"
KERAS_MARKERS = frozenset({"metadata.json", "model.weights.h5", "model.weights.npz"})
MAX_CONFIG_MEMBERS = 16
MAX_NODES = 1_000_000
# What zipfile raises on a member it will not read: a bad CRC, encryption, an unknown
# method, and data that ends early (EOFError) or does not inflate (zlib.error).
_UNREADABLE_MEMBER = (
    zipfile.BadZipFile,
    OSError,
    ValueError,
    RuntimeError,
    NotImplementedError,
    EOFError,
    zlib.error,
)


def _walk(node: Any, path: str = "$") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every JSON object in the config, with its JSON path; iterative to bound recursion."""
    stack: list[tuple[str, Any]] = [(path, node)]
    seen = 0
    while stack:
        where, value = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise ValueError(f"config has more than {MAX_NODES} JSON nodes")
        if isinstance(value, dict):
            yield where, value
            stack.extend((f"{where}.{k}", v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", v) for i, v in reversed(list(enumerate(value))))


def _is_keras_module(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in KERAS_MODULE_PREFIXES)


def _last(name: Any) -> str:
    """The final component of a dotted or registered ('package>Name') name."""
    if not isinstance(name, str):
        return ""
    return name.replace(">", ".").rsplit(".", 1)[-1]


def _layer_kind(obj: dict[str, Any]) -> str | None:
    """'lambda' or 'tfop' when this object is such a layer under any spelling, else None."""
    names = {_last(obj.get("class_name")), _last(obj.get("registered_name"))}
    module = obj.get("module")
    if isinstance(module, str) and module.rsplit(".", 1)[-1] == "lambda_layer":
        names.add("Lambda")
    if names & LAMBDA_LAYERS:
        return "lambda"
    if names & TF_OP_LAYERS:
        return "tfop"
    return None


def _looks_like_bytecode(text: str) -> bool:
    """Whether a string is base64 marshalled code, as Keras' func_dump writes it (a function
    name such as "relu" or "my_loss" is not valid base64 of a code object)."""
    try:
        raw = base64.b64decode("".join(text.split()).encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return False
    # marshal's TYPE_CODE (with or without FLAG_REF); even `lambda: 0` marshals to over 48 bytes
    return len(raw) >= 48 and raw[0] in (0x63, 0xE3)


def _is_dumped_function(value: Any) -> bool:
    """func_dump's [base64 code, defaults, closure] triple."""
    return (
        isinstance(value, list)
        and len(value) == 3
        and isinstance(value[0], str)
        and _looks_like_bytecode(value[0])
    )


def _is_code_lambda(value: Any) -> bool:
    """A `__lambda__` object whose config carries code (`code`, or the generic `value`)."""
    if not isinstance(value, dict) or value.get("class_name") != "__lambda__":
        return False
    config = value.get("config")
    return isinstance(config, dict) and ("code" in config or "value" in config)


@dataclass
class _Report:
    rel: str
    member: str
    note: str = ""
    findings: list[Finding] = field(default_factory=list)

    def add(self, rule: str, severity: Severity, message: str, **evidence: Any) -> None:
        self.findings.append(
            Finding(
                rule_id=rule,
                severity=severity,
                message=f"{self.rel} ({self.member}{self.note}): {message}"
                if self.member
                else f"{self.rel}: {message}",
                location=Location(path=self.rel, member=self.member or None),
                evidence=evidence,
            )
        )


def _judge_callable(module: str, name: str) -> tuple[Severity, str] | None:
    """Severity and reason for a config reference to module.name, or None when it is fine."""
    if _is_keras_module(module):
        if _last(name) in KERAS_UNSAFE_NAMES:
            return Severity.CRITICAL, (
                "a Keras API that is not a model building block (reads, writes or downloads "
                "files, loads other models, or turns safe_mode off)"
            )
        return None
    qualified = f"{module}.{name}"
    verdict, why = classify_global(qualified, name=name)
    if verdict is GlobalVerdict.DANGEROUS:
        return Severity.CRITICAL, why or "runs code"
    if module.split(".")[0] in DANGEROUS_MODULES:
        return Severity.CRITICAL, f"{module} runs code, processes, files or network access"
    if verdict is GlobalVerdict.ALLOWED:
        return None
    return Severity.HIGH, "a module outside Keras"


def _reference(obj: dict[str, Any]) -> tuple[str, str, str] | None:
    """(module, name, kind) of the class or function an object names, or None."""
    class_name = obj.get("class_name")
    if not isinstance(class_name, str) or class_name in SPECIAL_CLASS_NAMES:
        return None
    if class_name == "__lambda__":
        return None
    module = obj.get("module")
    registered = obj.get("registered_name")
    inner = obj.get("config")
    kind = "class"
    name = class_name
    if class_name == "__typespec__":
        spec = obj.get("spec_name")
        name = spec if isinstance(spec, str) else class_name
    elif class_name == "function":
        kind = "function"
        if isinstance(inner, str):
            name = inner
        elif isinstance(registered, str):
            name = registered
    if isinstance(module, str) and module:
        return module, name, kind
    if isinstance(registered, str) and ">" in registered:
        return "", registered, "registered"
    return None


def _check_reference(report: _Report, where: str, module: str, name: str, kind: str) -> None:
    if kind == "registered":
        report.add(
            "SER-KERAS-FOREIGN-CALLABLE",
            Severity.HIGH,
            f"{where} names the registered custom object {name}; loading needs (and runs) "
            "the code that registered it",
            json_path=where,
            callable=name,
        )
        return
    if module == "builtins" and kind == "function":
        # Keras looks the name up among its own built-in functions (losses, activations...);
        # Keras < 3.9 then fell back to Python's builtins module.
        if not hasattr(builtins, name):
            return
        severity, why = _judge_callable("builtins", name) or (
            Severity.HIGH,
            "not a Keras function; Keras < 3.9 resolves it to Python's builtins",
        )
    else:
        judged = _judge_callable(module, name)
        if judged is None:
            return
        severity, why = judged
    report.add(
        "SER-KERAS-FOREIGN-CALLABLE",
        severity,
        f"{where} names {module}.{name} ({why}); loading imports and calls it",
        json_path=where,
        callable=f"{module}.{name}",
    )


def _lambda_layer(report: _Report, where: str, obj: dict[str, Any], consumed: set[int]) -> None:
    """A Lambda layer: critical when it carries code, with the callables it names checked."""
    config = obj.get("config")
    config = config if isinstance(config, dict) else {}
    function_type = config.get("function_type")
    carries: list[str] = []
    for key in ("function", "output_shape", "mask"):
        value = config.get(key)
        if isinstance(value, dict) and _is_code_lambda(value):
            consumed.update((id(value), id(value["config"])))
            carries.append(key)
        elif isinstance(value, list) and value and isinstance(value[0], str):
            carries.append(key)  # Keras 2: [base64 code, defaults, closure]
        elif isinstance(value, str) and key == "function":
            if function_type == "lambda" or _looks_like_bytecode(value):
                carries.append(key)
            elif function_type == "function" or "." in value:
                module = config.get("module")
                if isinstance(module, str) and module and "." not in value:
                    _check_reference(report, f"{where}.config.function", module, value, "function")
                elif "." in value:
                    left, right = value.rsplit(".", 1)
                    _check_reference(report, f"{where}.config.function", left, right, "function")
    detail = (
        f" carries marshalled Python bytecode ({', '.join(carries)})"
        if carries
        else " (no bytecode found; its function is a reference, checked on its own)"
    )
    report.add(
        "SER-KERAS-LAMBDA",
        Severity.CRITICAL if carries else Severity.HIGH,
        f"Lambda layer at {where}{detail}; loading with safe_mode=False runs it",
        json_path=where,
        carries=carries,
    )


def _tf_op_layer(report: _Report, where: str, obj: dict[str, Any]) -> None:
    config = obj.get("config")
    function = config.get("function") if isinstance(config, dict) else None
    target = f"tf.{function}" if isinstance(function, str) else "an unnamed TensorFlow API"
    unsafe = isinstance(function, str) and function.startswith(TF_UNSAFE_PREFIXES)
    report.add(
        "SER-KERAS-LAMBDA",
        Severity.CRITICAL if unsafe else Severity.HIGH,
        f"{_last(obj.get('class_name')) or 'TFOpLambda'} layer at {where} calls {target}"
        + (" (file access, Python callbacks or code loading)" if unsafe else "")
        + "; tf.keras resolves the name and calls it when the model is built",
        json_path=where,
        callable=target,
    )


def keras_config_findings(config: Any, rel: str, member: str, note: str = "") -> list[Finding]:
    """Findings for a parsed Keras config document."""
    report = _Report(rel, member, note)
    objects = list(_walk(config))
    consumed: set[int] = set()  # __lambda__ objects reported with their Lambda layer
    for where, obj in objects:
        kind = _layer_kind(obj)
        if kind == "lambda":
            _lambda_layer(report, where, obj, consumed)
        elif kind == "tfop":
            _tf_op_layer(report, where, obj)
    for where, obj in objects:
        if id(obj) in consumed:
            continue
        if obj.get("class_name") == "__lambda__":
            if isinstance(obj.get("config"), dict):
                consumed.add(id(obj["config"]))
            has_code = _is_code_lambda(obj)
            report.add(
                "SER-KERAS-LAMBDA",
                Severity.CRITICAL if has_code else Severity.HIGH,
                f"Python lambda at {where}"
                + (" carries marshalled Python bytecode" if has_code else "")
                + "; Keras rebuilds it with safe_mode=False",
                json_path=where,
            )
            continue
        if "class_name" not in obj and _is_dumped_function(obj.get("value")):
            # func_dump's (code, defaults, closure) without its __lambda__ wrapper, as Keras 3
            # saves a lambda passed as an activation.
            report.add(
                "SER-KERAS-LAMBDA",
                Severity.CRITICAL,
                f"marshalled Python bytecode at {where}; a Keras version that rebuilds it runs it",
                json_path=where,
            )
            continue
        reference = _reference(obj)
        if reference is not None:
            _check_reference(report, where, *reference)
    return report.findings


def _config_members(infos: list[zipfile.ZipInfo], keras_like: bool) -> list[zipfile.ZipInfo]:
    """The config.json members to check: every one in a Keras-looking archive (copies and
    subfolders too: another reader, or an extracted copy, may pick a different one), else the
    root config.json that Keras would read if the zip were renamed .keras."""
    if keras_like:
        return [i for i in infos if PurePosixPath(i.filename).name == CONFIG_NAME]
    return [i for i in infos if i.filename == CONFIG_NAME]


def scan_keras_zip(file: ScanFile, limits: Limits) -> list[Finding]:
    """Check every config.json of a zip that is (or could be loaded as) a `.keras` archive."""
    try:
        with open_scanned(file) as handle, zipfile.ZipFile(handle) as archive:
            infos = archive.infolist()
            names = {PurePosixPath(i.filename).name for i in infos}
            keras_like = file.rel.lower().endswith(".keras") or bool(names & KERAS_MARKERS)
            members = _config_members(infos, keras_like)
            if len(members) > MAX_CONFIG_MEMBERS:
                problem = f"{len(members)} config.json members, over {MAX_CONFIG_MEMBERS}"
                return [_malformed(file.rel, problem)]
            copies = sum(1 for i in members if i.filename == CONFIG_NAME)
            keras_like = keras_like or copies > 1
            findings: list[Finding] = []
            seen = 0
            for info in members:
                note = ""
                if info.filename == CONFIG_NAME and copies > 1:
                    seen += 1
                    read = " (the one zipfile, and so Keras, reads)" if seen == copies else ""
                    note = f", copy {seen} of {copies}{read}"
                findings.extend(_check_member(archive, info, file.rel, limits, keras_like, note))
            return findings
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, NotImplementedError):
        return []  # the zip scanner reports archives it cannot read


def _check_member(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    rel: str,
    limits: Limits,
    keras_like: bool,
    note: str,
) -> list[Finding]:
    if info.file_size > limits.json_file_max:
        return [
            _malformed(
                rel,
                f"{info.filename} is {info.file_size} bytes, over the "
                f"{limits.json_file_max}-byte limit",
                info.filename,
            )
        ]
    try:
        with archive.open(info) as stream:
            raw = stream.read(limits.json_file_max + 1)
    except _UNREADABLE_MEMBER as exc:
        if not keras_like:
            return []  # the zip scanner reports members it cannot read
        # Keras cannot load it either, but the zip scanner may not run (a .keras whose zip
        # starts after other bytes): the config is reported unchecked, as broken JSON is.
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        problem = f"{info.filename} cannot be read ({why})"
        return [_malformed(rel, problem, info.filename)]
    if len(raw) > limits.json_file_max:
        return [_malformed(rel, f"{info.filename} inflates past the size limit", info.filename)]
    try:
        # bytes: UTF-8, UTF-16 or UTF-32, as Keras' json.loads reads; a hostile number is
        # reported and read as Keras reads it, so that it hides nothing from the walk.
        config, problems = parse_json_as_loaded(raw)
    except HostileData as exc:
        return [_malformed(rel, f"{info.filename} {exc.problem}", info.filename)]
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        if not keras_like:
            return []
        return [_malformed(rel, f"{info.filename} is not valid JSON ({exc})", info.filename)]
    except RecursionError:
        return [_malformed(rel, f"{info.filename} nests too deeply to parse", info.filename)]
    numbers = hostile_number_findings(rel, problems, info.filename)
    try:
        return numbers + keras_config_findings(config, rel, info.filename, note)
    except ValueError as exc:
        return [*numbers, _malformed(rel, str(exc), info.filename)]


def scan_keras_folder_config(file: ScanFile, limits: Limits) -> list[Finding]:
    """The config.json of a Keras model saved as a folder (beside model.weights.h5): Keras 3
    loads a directory as it loads the archive's members."""
    if file.size > limits.json_file_max:
        return [_malformed(file.rel, f"over the {limits.json_file_max}-byte limit", "")]
    try:
        config, problems = parse_json_as_loaded(read_scanned(file, limits.json_file_max))
    except HostileData as exc:
        return [_malformed(file.rel, exc.problem, "")]
    except (UnicodeDecodeError, json.JSONDecodeError):
        return []  # not JSON: not a Keras config, and the inventory reports broken JSON
    except RecursionError:
        return [_malformed(file.rel, "nests too deeply to parse", "")]
    numbers = hostile_number_findings(file.rel, problems)
    try:
        return numbers + keras_config_findings(config, file.rel, "")
    except ValueError as exc:
        return [*numbers, _malformed(file.rel, str(exc), "")]


def _malformed(rel: str, problem: str, member: str = CONFIG_NAME) -> Finding:
    return Finding(
        rule_id="SER-KERAS-MALFORMED",
        severity=Severity.HIGH,
        message=f"{rel}: Keras {'archive' if member else 'config'} cannot be checked: {problem}",
        location=Location(path=rel, member=member or None),
    )
