"""Does this HDF5 file hold a Keras model whose config carries Lambda code or foreign callables?

Keras 2 `.h5` models keep their architecture as a JSON string in the root group's
`model_config` attribute. The only real HDF5 reader is libhdf5 (through h5py), a C
library with its own history of memory-safety bugs on crafted files, so the attribute is
read in a child process under a memory limit and a timeout: a crash or hang there is a
finding about the file, never a crash of the scan. Only attributes are read, no datasets.
The config itself is then checked like a `.keras` archive's (keras.scan).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from provscan.collectors.serialization.keras.config import keras_config_findings
from provscan.files import ScanFile, open_scanned
from provscan.limits import Limits
from provscan.parsing import (
    HostileData,
    hostile_number_findings,
    parse_json_as_loaded,
)
from provscan.report import Finding, Severity, file_finding

TIMEOUT_S = 30.0
CHILD_MEMORY = 1024 * 1024 * 1024  # address-space cap for libhdf5 in the child

# Runs in the child: prints {"model_config": str | null, "attrs": [...]} or exits non-zero.
_CHILD = r"""
import json, resource, sys
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import h5py
max_len = int(sys.argv[3])
with h5py.File(sys.argv[1], "r") as f:
    names = list(f.attrs.keys())[:1000]
    config = f.attrs.get("model_config") if "model_config" in names else None
    if isinstance(config, bytes):
        config = config.decode("utf-8", "replace")
    if config is not None and not isinstance(config, str):
        config = str(config)
    if config is not None and len(config) > max_len:
        config = config[:max_len]
        truncated = True
    else:
        truncated = False
    json.dump({"model_config": config, "attrs": names, "truncated": truncated}, sys.stdout)
"""


def h5py_available() -> bool:
    return importlib.util.find_spec("h5py") is not None


def scan_hdf5(file: ScanFile, limits: Limits) -> list[Finding]:
    if not h5py_available():
        return [
            file_finding(
                "SER-UNSCANNED-FORMAT",
                Severity.HIGH,
                file.rel,
                f"{file.rel}: HDF5 content is not inspected (h5py is not installed: pip install 'provscan[formats]'); Keras HDF5 models can embed Lambda-layer code",
            )
        ]
    try:
        # The child reads the file this process opened the hardened way (its fd, passed on
        # under the same number), never whatever the path names by the time it starts.
        with open_scanned(file) as stream:
            fd = stream.fileno()
            command = [
                sys.executable,
                "-I",
                "-c",
                _CHILD,
                f"/proc/self/fd/{fd}",
                str(CHILD_MEMORY),
                str(limits.json_file_max),
            ]
            # Fixed code, no shell; -I keeps the scanned directory off the child's import path.
            proc = subprocess.run(  # noqa: S603
                command,
                capture_output=True,
                timeout=TIMEOUT_S,
                cwd=Path(file.path).parent,
                check=False,
                pass_fds=(fd,),
            )
    except subprocess.TimeoutExpired:
        return [
            file_finding(
                "SER-HDF5-UNREADABLE",
                Severity.HIGH,
                file.rel,
                f"{file.rel}: reading the HDF5 attributes did not finish in {TIMEOUT_S:g} s",
            )
        ]
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [
            f"exit status {proc.returncode}"
        ]
        return [
            file_finding(
                "SER-HDF5-UNREADABLE",
                Severity.HIGH,
                file.rel,
                f"{file.rel}: libhdf5 could not read the file ({tail[0][:300]})",
            )
        ]
    try:
        reply = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return [
            file_finding(
                "SER-HDF5-UNREADABLE",
                Severity.HIGH,
                file.rel,
                f"{file.rel}: the HDF5 reader gave no usable answer",
            )
        ]
    config_text = reply.get("model_config")
    if config_text is None:
        return []  # an HDF5 file without a Keras architecture (plain weights)
    if reply.get("truncated"):
        return [
            file_finding(
                "SER-KERAS-MALFORMED",
                Severity.HIGH,
                file.rel,
                f"{file.rel}: Keras model_config is larger than {limits.json_file_max} bytes",
            )
        ]
    try:
        config, problems = parse_json_as_loaded(config_text)  # hostile numbers: reported below
    except HostileData as exc:
        return [
            file_finding(
                "SER-KERAS-MALFORMED",
                Severity.HIGH,
                file.rel,
                f"{file.rel}: Keras model_config {exc.problem}",
            )
        ]
    except (json.JSONDecodeError, RecursionError) as exc:
        return [
            file_finding(
                "SER-KERAS-MALFORMED",
                Severity.HIGH,
                file.rel,
                f"{file.rel}: Keras model_config is not valid JSON ({type(exc).__name__})",
            )
        ]
    numbers = hostile_number_findings(file.rel, problems, "attrs/model_config")
    try:
        return numbers + keras_config_findings(config, file.rel, "attrs/model_config")
    except ValueError as exc:
        malformed = file_finding(
            "SER-KERAS-MALFORMED", Severity.HIGH, file.rel, f"{file.rel}: {exc}"
        )
        return [*numbers, malformed]
