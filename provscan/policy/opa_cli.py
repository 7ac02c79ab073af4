"""What does the `opa` binary answer for the packs? (`opa eval` in a private temp folder)

The modules are written to a fresh private folder, never read from the pack folder itself:
`opa eval --data <dir>` loads every .json/.yaml under it as data, and a pack's
`tests/<case>/input.json` would land in `data.tests...`. The config goes in a data.json of
its own, the report on stdin. Every failure (missing binary, non-zero exit, timeout, too
much output, unparseable or unexpected output) is a PolicyError: fail closed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provscan.errors import PolicyError
from provscan.policy._bounded import (
    MAX_ENGINE_OUTPUT,
    CommandTimeout,
    Completed,
    OutputTooLarge,
    child_command,
    child_env,
    run_bounded,
    tail,
)
from provscan.policy._child import limit_args
from provscan.policy.backends import PolicySetupError
from provscan.policy.verdict import QUERY

_VERSION = re.compile(r"^Version:\s*(\S+)", re.MULTILINE)


@dataclass(frozen=True)
class OpaAnswer:
    result: Any  # the value of data.provscan.main, None when undefined
    version: str


def evaluate_with_opa(
    binary: str,
    modules: Sequence[tuple[str, str]],
    data: Mapping[str, Any],
    policy_input: Any,
    timeout_s: float,
    *,
    memory_limit: int,
    cpu_limit_s: int,
) -> OpaAnswer:
    """Evaluate ``data.provscan.main`` with the ``opa`` binary; raise PolicyError on failure.

    The binary runs under provscan.policy._child's launcher: killed with provscan, a CPU-time
    limit of ``cpu_limit_s``, no core file, and ``memory_limit`` as Go's GOMEMLIMIT."""
    exe = find_opa(binary)
    deadline = time.monotonic() + timeout_s
    with tempfile.TemporaryDirectory(prefix="provscan-opa-") as tmp:  # mode 0700
        root = Path(tmp)
        names = _write_modules(root / "modules", modules)
        data_path = root / "data.json"
        data_path.write_text(json.dumps(data, ensure_ascii=True), encoding="utf-8")
        bounds = _Bounds(memory_limit, cpu_limit_s)
        version = _version(exe, root, deadline, bounds)
        argv = [exe, "eval", "--format", "json", "--stdin-input"]
        argv += ["--data", str(root / "modules"), "--data", str(data_path), QUERY]
        stdin = json.dumps(policy_input, ensure_ascii=True).encode("utf-8")
        proc = _run(argv, stdin, root, deadline, bounds)
        return OpaAnswer(_parse_eval(proc, names), version)


def find_opa(binary: str) -> str:
    """The opa binary's path (a name is looked up on PATH); PolicySetupError when absent."""
    exe = shutil.which(binary)
    if exe is None:
        raise PolicySetupError(
            f"the opa binary {binary!r} was not found",
            "install OPA (https://www.openpolicyagent.org/docs/#running-opa) and put it on PATH, "
            "or use the embedded engine",
        )
    return exe


def _write_modules(folder: Path, modules: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Write each module as NNN-<file>.rego; return file path -> display name for errors."""
    folder.mkdir()
    names: dict[str, str] = {}
    for index, (display, source) in enumerate(modules):
        base = re.sub(r"[^A-Za-z0-9._-]", "_", display.rsplit("/", 1)[-1])
        path = folder / f"{index:03d}-{base}"
        if path.suffix != ".rego":
            path = path.with_name(path.name + ".rego")  # opa loads only *.rego as policy
        path.write_text(source, encoding="utf-8")
        names[str(path)] = display
    return names


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise PolicyError("the opa binary ran out of time before it could evaluate")
    return left


@dataclass(frozen=True)
class _Bounds:
    memory: int
    cpu_s: int


def _run(argv: list[str], stdin: bytes, cwd: Path, deadline: float, bounds: _Bounds) -> Completed:
    timeout = _remaining(deadline)
    launcher = [*child_command(), *limit_args(os.getpid(), bounds.memory, bounds.cpu_s)]
    try:
        proc = run_bounded(
            [*launcher, "--exec", *argv], stdin, timeout, MAX_ENGINE_OUTPUT, cwd, env=child_env()
        )
    except CommandTimeout as exc:
        raise PolicyError(
            f"the opa binary timed out after {timeout:g} s ({argv[1]})",
            "simplify the policy, or raise the timeout if the report is very large",
        ) from exc
    except OutputTooLarge as exc:
        raise PolicyError(
            f"the opa binary wrote more than {MAX_ENGINE_OUTPUT} bytes ({argv[1]})"
        ) from exc
    except OSError as exc:
        raise PolicyError(f"the opa binary could not be started: {exc}") from exc
    if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        # Not the timeout (CommandTimeout above) nor provscan's own kill: the CPU limit (its
        # hard stop is SIGKILL, a second after SIGXCPU) or the system's OOM killer.
        raise PolicyError(
            f"the opa binary was stopped by signal {-proc.returncode}: it exceeded its CPU-time "
            f"limit of {bounds.cpu_s} s, or the system ran out of memory ({argv[1]})",
            "simplify the policy (a rule that builds a large collection, or pairs items up)",
        )
    return proc


def _version(exe: str, cwd: Path, deadline: float, bounds: _Bounds) -> str:
    proc = _run([exe, "version"], b"", cwd, deadline, bounds)
    if proc.returncode != 0:
        raise PolicyError(
            f"`opa version` failed with exit status {proc.returncode}: {_tail(proc.stderr)}"
        )
    found = _VERSION.search(proc.stdout.decode("utf-8", errors="replace"))
    return found.group(1) if found else "unknown"


def _tail(raw: bytes, names: Mapping[str, str] | None = None) -> str:
    return _rename(tail(raw), names or {})


def _rename(text: str, names: Mapping[str, str]) -> str:
    # Error locations name the temp files; say which pack file they are.
    for path, display in names.items():
        text = text.replace(path, display)
    return text


@dataclass(frozen=True)
class _Errors:
    text: str  # the first error, 'file:row:col: kind: message', and how many others
    setup: bool  # a parse or compile error: no input could be decided


def _describe_errors(errors: Any, names: Mapping[str, str]) -> _Errors | None:
    """OPA's error list as one line: the first error once, with a count of the others."""
    if not isinstance(errors, list) or not errors:
        return None
    parts: dict[str, None] = {}
    setup = False
    for error in errors:
        if not isinstance(error, dict):
            continue
        message = str(error.get("message") or "no message given")
        code = error.get("code")
        if isinstance(code, str) and code:
            # rego_parse_error, rego_type_error, ... come from parsing and compiling, before
            # any input is read; eval_* from evaluation (https://www.openpolicyagent.org/docs/errors).
            setup = setup or code.startswith("rego_")
            kind = code.removeprefix("rego_").replace("_", " ")
            message = f"{kind}: {message}"
        location = error.get("location")
        if isinstance(location, dict) and location.get("file"):
            where = f"{location.get('file')}:{location.get('row', '?')}:{location.get('col', '?')}"
            message = f"{where}: {message}"
        parts[_rename(message, names)] = None
    if not parts:
        return None
    first, others = next(iter(parts)), len(parts) - 1
    if others:
        first += f" (and {others} other error{'s' if others > 1 else ''})"
    return _Errors(first, setup)


def _parse_eval(proc: Completed, names: Mapping[str, str]) -> Any:
    """The value of the query from `opa eval --format json` output; None when undefined."""
    try:
        doc = json.loads(proc.stdout) if proc.stdout.strip() else None
    except ValueError:
        doc = None
    errors = _describe_errors(doc.get("errors"), names) if isinstance(doc, dict) else None
    failure = PolicySetupError if errors is not None and errors.setup else PolicyError
    if proc.returncode != 0:
        detail = errors.text if errors else _tail(proc.stderr, names) or _tail(proc.stdout, names)
        raise failure(f"opa eval failed with exit status {proc.returncode}: {detail}")
    if errors is not None:
        raise failure(f"opa eval reported errors: {errors.text}")
    if not isinstance(doc, dict):
        raise PolicyError(f"opa eval returned unparseable output: {_tail(proc.stdout)[:200]!r}")
    if "result" not in doc:
        return None  # undefined: OPA prints {} (verdict_from_result fails closed on None)
    results = doc["result"]
    if not isinstance(results, list) or len(results) != 1 or not isinstance(results[0], dict):
        raise PolicyError("opa eval returned a result of unexpected shape (want one result)")
    expressions = results[0].get("expressions")
    if not isinstance(expressions, list) or len(expressions) != 1:
        raise PolicyError("opa eval returned a result without exactly one expression")
    expression = expressions[0]
    if not isinstance(expression, dict) or "value" not in expression:
        raise PolicyError("opa eval returned an expression without a value")
    return expression["value"]
