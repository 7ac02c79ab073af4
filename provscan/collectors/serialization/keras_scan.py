"""Does this Keras v3 `.keras` archive carry code: Lambda bytecode or references to non-Keras callables?

A `.keras` file is a zip holding `config.json` (the architecture), `metadata.json` and
`model.weights.h5`. Loading rebuilds every object the config names by (module,
class_name): a Lambda layer carries its Python function as base64 marshalled bytecode
(CVE-2024-3660, runs with safe_mode off), and a config can name any importable callable as
a layer, initializer or function argument (CVE-2025-1550 and later safe_mode bypasses).
The config is read as JSON (bounded), never deserialised by Keras.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from typing import Any

from provscan.collectors.base import ScanFile
from provscan.limits import Limits
from provscan.report import Finding, Location, Severity

# Modules a Keras config may reference in ordinary models.
KERAS_MODULE_PREFIXES = (
    "keras",
    "keras_hub",
    "keras_nlp",
    "keras_cv",
    "tensorflow.keras",
    "tf_keras",
    "builtins.dict",  # plain containers in serialized configs
)
# References that run code whatever Keras' safe_mode says.
DANGEROUS_MODULES = (
    "os",
    "posix",
    "nt",
    "subprocess",
    "builtins",
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
            stack.extend((f"{where}.{k}", v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(value))


def _is_keras_module(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in KERAS_MODULE_PREFIXES)


def keras_config_findings(config: Any, rel: str, member: str) -> list[Finding]:
    """Findings for a parsed Keras config document."""
    findings: list[Finding] = []

    def add(rule: str, severity: Severity, message: str, **evidence: Any) -> None:
        location = Location(path=rel, member=member)
        findings.append(
            Finding(
                rule_id=rule,
                severity=severity,
                message=f"{rel} ({member}): {message}",
                location=location,
                evidence=evidence,
            )
        )

    for where, obj in _walk(config):
        class_name = obj.get("class_name")
        module = obj.get("module")
        if class_name == "Lambda":
            function = (
                obj.get("config", {}).get("function")
                if isinstance(obj.get("config"), dict)
                else None
            )
            has_code = (
                isinstance(function, dict)
                and isinstance(function.get("config"), dict)
                and "code" in function["config"]
            )
            has_code = has_code or isinstance(
                function, (list, str)
            )  # Keras 2 stored (code, defaults, closure)
            severity = Severity.CRITICAL if has_code else Severity.HIGH
            add(
                "SER-KERAS-LAMBDA",
                severity,
                f"Lambda layer at {where}{' carries marshalled Python bytecode' if has_code else ''}; loading with safe_mode=False runs it",
                json_path=where,
            )
        elif class_name == "__lambda__":
            continue  # reported with its Lambda layer
        if isinstance(module, str) and module and not _is_keras_module(module):
            root = module.split(".")[0]
            dangerous = root in DANGEROUS_MODULES
            add(
                "SER-KERAS-FOREIGN-CALLABLE",
                Severity.CRITICAL if dangerous else Severity.HIGH,
                f"{where} names {module}.{class_name}, outside Keras; loading imports and calls it",
                json_path=where,
                callable=f"{module}.{class_name}",
            )
    return findings


def _is_keras_archive(names: set[str]) -> bool:
    return "config.json" in names and ("metadata.json" in names or "model.weights.h5" in names)


def scan_keras_zip(file: ScanFile, limits: Limits) -> list[Finding]:
    """Check a zip's Keras config when the zip is a `.keras` archive; other zips give nothing."""
    try:
        with zipfile.ZipFile(file.path) as archive:
            names = set(archive.namelist())
            if not _is_keras_archive(names):
                return []
            info = archive.getinfo("config.json")
            if info.file_size > limits.json_file_max:
                return [
                    _malformed(
                        file.rel,
                        f"config.json is {info.file_size} bytes, over the {limits.json_file_max}-byte limit",
                    )
                ]
            raw = archive.read(info)
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, NotImplementedError):
        return []  # the zip scanner reports archives it cannot read
    try:
        config = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [_malformed(file.rel, f"config.json is not valid JSON ({exc})")]
    except RecursionError:
        return [_malformed(file.rel, "config.json nests too deeply to parse")]
    try:
        return keras_config_findings(config, file.rel, "config.json")
    except ValueError as exc:
        return [_malformed(file.rel, str(exc))]


def _malformed(rel: str, problem: str) -> Finding:
    return Finding(
        rule_id="SER-KERAS-MALFORMED",
        severity=Severity.HIGH,
        message=f"{rel}: Keras archive cannot be checked: {problem}",
        location=Location(path=rel, member="config.json"),
    )
