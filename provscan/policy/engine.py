"""What does the Rego policy decide about a report? Loads packs, runs the chosen engine isolated.

The default engine (regopy, a ctypes binding of rego-cpp) runs in a child process
(provscan.policy._child): a native crash, a hang or stray output from Rego print() must
never pass for a verdict. The child is bounded in wall-clock time (``timeout_s``), CPU
time (``cpu_limit_s``, by default the timeout) and memory (``memory_limit``); it dies with
provscan. The other backends (the `opa` binary, an OPA server; see
provscan.policy.backends) go through the same `verdict_from_result`. Every failure becomes
a PolicyError (fail closed, exit 3), a limit reached one that names the limit.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from provscan.errors import PolicyError
from provscan.limits import DEFAULT_LIMITS, GiB, KiB, MiB
from provscan.policy._bounded import (
    MAX_ENGINE_OUTPUT,
    PACKAGE_ROOT,
    CommandTimeout,
    Completed,
    OutputTooLarge,
    child_command,
    child_env,
    run_bounded,
    tail,
)
from provscan.policy._child import EXIT_MEMORY, EXIT_ORPHANED, limit_args
from provscan.policy.backends import REGOPY, PolicyBackend, PolicySetupError
from provscan.policy.input import bounded_policy_input
from provscan.policy.opa_cli import evaluate_with_opa

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

# Memory the regopy child may allocate: address space on top of what the engine's library
# maps when it loads (see provscan.policy._child.bounded_self). The engine's time and memory
# grow faster than its input (a whole report of 30,000 files: 704 MiB and 23 s; of 6,000
# findings: 61 s), so it sees a bounded input (provscan.policy.input): a report of 100,000
# files and 100,000 findings hands it 232 KB, evaluated in 2.2 s at 226 MiB peak RSS; the
# tiny-llama demo's report needs 37 MiB. The bound is limits.policy_memory_max.
DEFAULT_MEMORY_LIMIT = DEFAULT_LIMITS.policy_memory_max


def _child_command() -> list[str]:
    return child_command()


def _with_stderr(message: str, stderr: bytes) -> str:
    end = tail(stderr)
    return f"{message}; engine stderr:\n{end}" if end else message


def _size(n: int) -> str:
    for unit, name in ((GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if n >= unit and n % unit == 0:
            return f"{n // unit} {name}"
    return f"{n} bytes"


def cpu_limit_for(timeout_s: float) -> int:
    """The default CPU-time limit: the timeout, rounded up to whole seconds.

    A single-threaded engine uses no more CPU time than wall-clock time, so the timeout
    normally stops it first; the CPU limit holds when provscan cannot (stopped, or gone on a
    system without a parent-death signal). With a short timeout either may end it first.
    """
    return max(1, math.ceil(timeout_s))


def _limit_failure(proc: Completed, memory_limit: int, cpu_limit_s: int) -> PolicyError | None:
    """The PolicyError naming the limit the child ran into, or None if it did not."""
    remedy = "simplify the policy (a rule that builds a large collection, or pairs items up)"
    out_of_memory = proc.returncode == EXIT_MEMORY or (
        # rego-cpp's allocation failure: libstdc++ reports the uncaught exception, then aborts.
        proc.returncode == -signal.SIGABRT and b"std::bad_alloc" in proc.stderr
    )
    if out_of_memory:
        message = f"policy evaluation exceeded its memory limit of {_size(memory_limit)}"
        return PolicyError(message, remedy)
    if proc.returncode == -signal.SIGXCPU:
        message = f"policy evaluation exceeded its CPU-time limit of {cpu_limit_s} s"
        return PolicyError(message, remedy)
    if proc.returncode == -signal.SIGKILL:
        # Not the timeout (raised as CommandTimeout) and not provscan's own kill on the way
        # out: the CPU limit's hard stop (a second after SIGXCPU) or the system's OOM killer.
        message = (
            f"policy engine was killed (SIGKILL): it exceeded its CPU-time limit of "
            f"{cpu_limit_s} s, or the system ran out of memory"
        )
        return PolicyError(_with_stderr(message, proc.stderr), remedy)
    return None


def run_engine(
    request: Mapping[str, Any],
    timeout_s: float,
    *,
    memory_limit: int | None = None,
    cpu_limit_s: int | None = None,
) -> dict[str, Any]:
    """Run one request in the child; return its reply or raise PolicyError.

    ``memory_limit`` (bytes, default `DEFAULT_MEMORY_LIMIT`) and ``cpu_limit_s`` (default
    `cpu_limit_for` the timeout) bound the child besides ``timeout_s``.
    """
    memory = DEFAULT_MEMORY_LIMIT if memory_limit is None else memory_limit
    cpu_s = cpu_limit_for(timeout_s) if cpu_limit_s is None else cpu_limit_s
    if memory < 1 or cpu_s < 1:
        raise ValueError("the policy engine's memory and CPU-time limits must be positive")
    try:
        proc = run_bounded(
            [*_child_command(), *limit_args(os.getpid(), memory, cpu_s)],
            json.dumps(request).encode("utf-8"),
            timeout_s,
            MAX_ENGINE_OUTPUT,
            PACKAGE_ROOT,
            env=child_env(),
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
    limit_hit = _limit_failure(proc, memory, cpu_s)
    if limit_hit is not None:
        raise limit_hit
    if proc.returncode < 0:
        try:
            signame = f", {signal.Signals(-proc.returncode).name}"
        except ValueError:
            signame = ""
        raise PolicyError(
            _with_stderr(f"policy engine crashed (signal {-proc.returncode}{signame})", proc.stderr)
        )
    if proc.returncode == EXIT_ORPHANED:
        # Its parent is not this process: sys.executable is a launcher that forks.
        raise PolicyError(
            f"policy engine stopped: its parent is not provscan (pid {os.getpid()}), so it "
            "could not be tied to provscan's lifetime",
            f"run provscan with a Python interpreter that is not a forking launcher ({sys.executable})",
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
        raise PolicySetupError(
            f"policy could not be loaded: {message}", "fix the Rego file named above"
        )
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
    memory_limit: int | None = None,
    cpu_limit_s: int | None = None,
) -> Verdict:
    """Decide approve/review/deny for ``report`` with the packs in ``policy_dirs``.

    ``config`` (the user's provscan.toml table) is merged over the packs' defaults and
    seen by Rego as ``data.provscan.config``. ``backend`` picks the engine; for an OPA
    server, ``policy_dirs`` may be empty (the server's own policy decides) and, when given,
    must match what the server holds (see provscan.policy.opa_server). ``memory_limit``
    (bytes) and ``cpu_limit_s`` bound the regopy child (see `run_engine`) and the opa binary
    (CPU time; memory as Go's soft GOMEMLIMIT); an OPA server by ``timeout_s`` only.
    """
    if backend.kind == "opa-server":
        # Imported here: its HTTP client costs a tenth of a second that regopy users never need.
        from provscan.policy.opa_server import evaluate_on_server

        return evaluate_on_server(report, policy_dirs, config, backend, timeout_s)
    packs = load_packs(policy_dirs)
    merged = effective_config(packs, config)
    # Named by their files: an engine's error then points at the file to fix.
    modules = [module for pack in packs for module in pack.module_files()]
    data = {"provscan": {"config": merged}}
    if backend.kind == "opa":
        answer = evaluate_with_opa(
            backend.opa_binary,
            modules,
            data,
            bounded_policy_input(report),
            timeout_s,
            memory_limit=DEFAULT_MEMORY_LIMIT if memory_limit is None else memory_limit,
            cpu_limit_s=cpu_limit_for(timeout_s) if cpu_limit_s is None else cpu_limit_s,
        )
        result, engine, version = answer.result, "opa", answer.version
    else:
        request = {
            "modules": [list(module) for module in modules],
            "data": data,
            "input": bounded_policy_input(report),
            "query": QUERY,
        }
        reply = run_engine(request, timeout_s, memory_limit=memory_limit, cpu_limit_s=cpu_limit_s)
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
