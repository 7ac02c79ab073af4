"""What does the Rego policy decide about a report? Loads packs, runs the chosen engine isolated.

The default engine (regopy, a ctypes binding of rego-cpp) runs in a child process
(provscan.policy._child): a native crash, a hang or stray output from Rego print() must
never pass for a verdict. The other backends (the `opa` binary, an OPA server; see
provscan.policy.backends) go through the same `verdict_from_result`. Every failure becomes
a PolicyError (fail closed, exit 3).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from provscan.errors import PolicyError
from provscan.policy._bounded import (
    MAX_ENGINE_OUTPUT,
    CommandTimeout,
    OutputTooLarge,
    run_bounded,
    tail,
)
from provscan.policy.backends import REGOPY, PolicyBackend
from provscan.policy.opa_cli import evaluate_with_opa
from provscan.policy.opa_server import evaluate_on_server

# Re-exported: pack loading lived here before provscan.policy.packs existed.
from provscan.policy.packs import (
    DATA_FILES,
    PolicyPack,
    effective_config,
    load_pack,
    load_packs,
    policy_digest,
)
from provscan.policy.verdict import QUERY, verdict_from_result
from provscan.report import PolicyInfo, Report, Verdict

__all__ = [
    "DATA_FILES",
    "PolicyBackend",
    "PolicyPack",
    "effective_config",
    "evaluate",
    "load_pack",
    "load_packs",
    "policy_digest",
    "run_engine",
]

log = logging.getLogger(__name__)

ENGINE = "regopy"
# Run the child from the directory that holds the provscan package: `-m` puts the
# working directory first on sys.path, and the user's (possibly the scanned model's)
# directory must not be able to shadow regopy or json with a file of its own.
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def _child_command() -> list[str]:
    return [sys.executable, "-m", "provscan.policy._child"]


def _child_env() -> dict[str, str]:
    # Also on PYTHONPATH, so a source checkout works even when PYTHONSAFEPATH is set.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH")]))
    return env


def _with_stderr(message: str, stderr: bytes) -> str:
    end = tail(stderr)
    return f"{message}; engine stderr:\n{end}" if end else message


def run_engine(request: Mapping[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run one request in the child; return its reply or raise PolicyError."""
    try:
        proc = run_bounded(
            _child_command(),
            json.dumps(request).encode("utf-8"),
            timeout_s,
            MAX_ENGINE_OUTPUT,
            _PACKAGE_ROOT,
            env=_child_env(),
        )
    except CommandTimeout as exc:
        raise PolicyError(
            f"policy engine timed out after {timeout_s:g} s",
            "simplify the policy, or raise the timeout if the report is very large",
        ) from exc
    except OutputTooLarge as exc:
        raise PolicyError(
            f"policy engine wrote more than {MAX_ENGINE_OUTPUT} bytes (Rego print() output included)"
        ) from exc
    except OSError as exc:
        raise PolicyError(f"policy engine could not be started: {exc}") from exc
    if proc.returncode < 0:
        try:
            signame = f", {signal.Signals(-proc.returncode).name}"
        except ValueError:
            signame = ""
        raise PolicyError(
            _with_stderr(f"policy engine crashed (signal {-proc.returncode}{signame})", proc.stderr)
        )
    if proc.returncode != 0:
        raise PolicyError(
            _with_stderr(f"policy engine failed with exit status {proc.returncode}", proc.stderr)
        )
    if proc.stderr:
        log.debug("policy engine stderr (Rego print output included):\n%s", tail(proc.stderr))
    try:
        reply = json.loads(proc.stdout)
    except ValueError as exc:
        raise PolicyError(
            _with_stderr(f"policy engine returned unparseable output: {exc}", proc.stderr)
        ) from exc
    if not isinstance(reply, dict) or not isinstance(reply.get("status"), str):
        raise PolicyError("policy engine returned a reply without a status")
    return reply


def _raise_for_status(reply: Mapping[str, Any]) -> None:
    status, message = reply["status"], str(reply.get("message", ""))
    if status == "ok":
        return
    if status == "load_error":
        raise PolicyError(f"policy could not be loaded: {message}", "fix the Rego file named above")
    if status == "eval_error":
        raise PolicyError(f"policy evaluation failed: {message}")
    raise PolicyError(f"policy engine failed ({status}): {message}")


def evaluate(
    report: Report,
    policy_dirs: Sequence[Path],
    config: Mapping[str, Any],
    *,
    timeout_s: float = 30.0,
    backend: PolicyBackend = REGOPY,
) -> Verdict:
    """Decide approve/review/deny for ``report`` with the packs in ``policy_dirs``.

    ``config`` (the user's provscan.toml table) is merged over the packs' defaults and
    seen by Rego as ``data.provscan.config``. ``backend`` picks the engine; for an OPA
    server, ``policy_dirs`` may be empty (the server's own policy decides) and, when given,
    must match what the server holds (see provscan.policy.opa_server).
    """
    if backend.kind == "opa-server":
        return evaluate_on_server(report, policy_dirs, config, backend, timeout_s)
    packs = load_packs(policy_dirs)
    merged = effective_config(packs, config)
    modules = [module for pack in packs for module in pack.modules]
    data = {"provscan": {"config": merged}}
    if backend.kind == "opa":
        answer = evaluate_with_opa(
            backend.opa_binary, modules, data, report.policy_input(), timeout_s
        )
        result, engine, version = answer.result, "opa", answer.version
    else:
        request = {
            "modules": [list(module) for module in modules],
            "data": data,
            "input": report.policy_input(),
            "query": QUERY,
        }
        reply = run_engine(request, timeout_s)
        _raise_for_status(reply)
        result, engine = reply.get("result"), ENGINE
        version = str(reply.get("engine_version", "unknown"))
    info = PolicyInfo(
        packs=tuple(pack.name for pack in packs),
        digest=policy_digest(packs, merged),
        engine=engine,
        engine_version=version,
    )
    return verdict_from_result(result, info)
