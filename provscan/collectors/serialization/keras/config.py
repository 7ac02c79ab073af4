"""What in a Keras model config can run code when the model is loaded?

The config is read as JSON (bounded), never deserialised by Keras; scan.py hands every copy of
a `.keras` archive's `config.json`, and hdf5.py the config of a legacy HDF5 model, to
`keras_config_findings`.

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
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from provscan.collectors.serialization.keras.callables import (
    LAMBDA_LAYERS,
    SPECIAL_CLASS_NAMES,
    TF_OP_LAYERS,
    TF_UNSAFE_PREFIXES,
    judge_callable,
    last_part,
)
from provscan.report import Finding, Location, Severity

MAX_NODES = 1_000_000


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


def _layer_kind(obj: dict[str, Any]) -> str | None:
    """'lambda' or 'tfop' when this object is such a layer under any spelling, else None."""
    names = {last_part(obj.get("class_name")), last_part(obj.get("registered_name"))}
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
        severity, why = judge_callable("builtins", name) or (
            Severity.HIGH,
            "not a Keras function; Keras < 3.9 resolves it to Python's builtins",
        )
    else:
        judged = judge_callable(module, name)
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
        f"{last_part(obj.get('class_name')) or 'TFOpLambda'} layer at {where} calls {target}"
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
