"""What does the Rego policy decide about a report? Loads packs, runs the engine isolated.

The engine (regopy, a ctypes binding of rego-cpp) runs in a child process
(provscan.policy._child): a native crash, a hang or stray output from Rego print() must
never pass for a verdict. Every failure becomes a PolicyError (fail closed, exit 3).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from provscan.config import merge_config
from provscan.errors import ConfigError, PolicyError, UsageError
from provscan.policy.verdict import PACKAGE, verdict_from_result
from provscan.report import PolicyInfo, Report, Verdict
from provscan.resources import shipped_policy_dir

log = logging.getLogger(__name__)

ENGINE = "regopy"
QUERY = f"data.{PACKAGE}"
DATA_FILES = ("data.yaml", "data.json")
# regopy 1.5.2 silently accepts v0 `deny[msg] { ... }` and builds an object instead of
# a set (research §4.1), so such rules are refused before they can mean something else.
_V0_RULE = re.compile(r"^(deny|review|warn)\s*\[", re.MULTILINE)
_LEVEL_RULE = re.compile(r"^(deny|review|warn)\b", re.MULTILINE)
# Run the child from the directory that holds the provscan package: `-m` puts the
# working directory first on sys.path, and the user's (possibly the scanned model's)
# directory must not be able to shadow regopy or json with a file of its own.
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]
_STDERR_TAIL = 2000


@dataclass(frozen=True)
class PolicyPack:
    """One policy directory: its Rego modules and the defaults from its data file."""

    name: str
    root: Path
    modules: tuple[tuple[str, str], ...]  # (display name, source)
    defaults: dict[str, Any]
    sources: tuple[tuple[str, bytes], ...]  # every file that changes a decision
    extends: str | None = None  # a shipped pack this one builds on (loaded before it)


def _is_policy_file(rel: Path) -> bool:
    return not rel.name.endswith("_test.rego") and "tests" not in rel.parts[:-1]


def load_pack(root: Path, name: str | None = None) -> PolicyPack:
    """Read a pack's .rego files (tests excluded) and its default config, and lint them."""
    if not root.is_dir():
        raise UsageError(f"policy pack {root} is not a directory")
    name = name or root.name
    modules: list[tuple[str, str]] = []
    sources: list[tuple[str, bytes]] = []
    for path in sorted(root.rglob("*.rego")):
        rel = path.relative_to(root)
        if not path.is_file() or not _is_policy_file(rel):
            continue
        display = f"{name}/{rel.as_posix()}"
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyError(f"policy {display} is not UTF-8 text: {exc.reason}") from exc
        _lint(display, text)
        modules.append((display, text))
        sources.append((display, raw))
    if not modules:
        raise PolicyError(f"policy pack {root} holds no .rego files")
    if not any(_LEVEL_RULE.search(text) for _, text in modules):
        raise PolicyError(
            f"policy pack {root} defines none of deny, review, warn",
            f"a pack must add rules to package {PACKAGE}: "
            'deny contains {"rule": "ID", "msg": "why"} if { ... }',
        )
    defaults, extends, data_source = _load_defaults(root, name)
    if data_source is not None:
        sources.append(data_source)
    return PolicyPack(name, root, tuple(modules), defaults, tuple(sources), extends)


def _lint(display: str, text: str) -> None:
    found = _V0_RULE.search(text)
    if found is not None:
        line = text.count("\n", 0, found.start()) + 1
        raise PolicyError(
            f"policy {display}:{line}: v0 rule syntax '{found.group(0)}' is not supported",
            f"write Rego v1: '{found.group(1)} contains msg if {{ ... }}'",
        )


def _load_defaults(
    root: Path, name: str
) -> tuple[dict[str, Any], str | None, tuple[str, bytes] | None]:
    """(config defaults, the shipped pack it extends, the data file) of a pack."""
    present = [root / f for f in DATA_FILES if (root / f).is_file()]
    if not present:
        return {}, None, None
    if len(present) > 1:
        raise PolicyError(f"policy pack {root} has both data.yaml and data.json; keep one")
    path = present[0]
    display = f"{name}/{path.name}"
    raw = path.read_bytes()
    try:
        doc = yaml.safe_load(raw) if path.suffix == ".yaml" else json.loads(raw)
    except (yaml.YAMLError, ValueError) as exc:
        raise PolicyError(f"policy data {display} cannot be parsed: {exc}") from exc
    if doc is None:
        return {}, None, (display, raw)
    if not isinstance(doc, dict) or set(doc) - {"config", "extends"}:
        raise PolicyError(
            f"policy data {display} must be a mapping with the keys 'config' and optionally 'extends'"
        )
    config = doc.get("config") or {}
    if not isinstance(config, dict):
        raise PolicyError(f"policy data {display}: 'config' must be a mapping")
    extends = doc.get("extends")
    if extends is not None and not isinstance(extends, str):
        raise PolicyError(f"policy data {display}: 'extends' must name a shipped pack")
    return config, extends, (display, raw)


def load_packs(policy_dirs: Sequence[Path]) -> list[PolicyPack]:
    """Load the packs in order; a pack that `extends` a shipped pack gets it loaded first."""
    if not policy_dirs:
        raise UsageError("no policy pack given")
    packs: list[PolicyPack] = []
    names: set[str] = set()
    loaded: set[Path] = set()

    def add(root: Path, chain: tuple[Path, ...]) -> None:
        resolved = root.resolve()
        if resolved in loaded:
            return
        if resolved in chain:
            raise PolicyError(
                f"policy pack {root} extends itself (through {', '.join(map(str, chain))})"
            )
        # Two packs may share a folder name; module names must stay unique.
        name = root.name if root.name not in names else str(root)
        pack = load_pack(root, name)
        if pack.extends is not None:
            base = shipped_policy_dir(pack.extends)
            if base is None:
                raise PolicyError(
                    f"policy pack {root} extends {pack.extends!r}, which is not a shipped pack"
                )
            add(base, (*chain, resolved))
        names.add(name)
        loaded.add(resolved)
        packs.append(pack)

    for root in policy_dirs:
        add(root, ())
    return packs


def effective_config(packs: Sequence[PolicyPack], config: Mapping[str, Any]) -> dict[str, Any]:
    """The pack defaults (in pack order), with the user's config merged over them."""
    merged: dict[str, Any] = {}
    for pack in packs:
        merged = merge_config(merged, pack.defaults)
    merged = merge_config(merged, config)
    try:
        json.dumps(merged, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the policy config cannot be passed to Rego as JSON: {exc}") from exc
    return merged


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def policy_digest(packs: Sequence[PolicyPack], config: Mapping[str, Any]) -> str:
    """sha256 over every policy and data file (by name) and the effective config."""
    digest = hashlib.sha256()
    files = sorted(source for pack in packs for source in pack.sources)
    for name, raw in files:
        # Length prefixes keep (name, bytes) boundaries unambiguous.
        encoded = name.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
        digest.update(len(raw).to_bytes(8, "big") + raw)
    digest.update(_canonical(config))
    return digest.hexdigest()


def _child_command() -> list[str]:
    return [sys.executable, "-m", "provscan.policy._child"]


def _child_env() -> dict[str, str]:
    # Also on PYTHONPATH, so a source checkout works even when PYTHONSAFEPATH is set.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH")]))
    return env


def _stderr_tail(stderr: bytes) -> str:
    text = stderr.decode("utf-8", errors="replace").strip()
    return text[-_STDERR_TAIL:]


def _with_stderr(message: str, stderr: bytes) -> str:
    tail = _stderr_tail(stderr)
    return f"{message}; engine stderr:\n{tail}" if tail else message


def run_engine(request: Mapping[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run one request in the child; return its reply or raise PolicyError."""
    try:
        proc = subprocess.run(  # noqa: S603 - fixed command, no shell
            _child_command(),
            input=json.dumps(request).encode("utf-8"),
            capture_output=True,
            timeout=timeout_s,
            cwd=_PACKAGE_ROOT,
            env=_child_env(),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise PolicyError(
            f"policy engine timed out after {timeout_s:g} s",
            "simplify the policy, or raise the timeout if the report is very large",
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
        log.debug(
            "policy engine stderr (Rego print output included):\n%s", _stderr_tail(proc.stderr)
        )
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
) -> Verdict:
    """Decide approve/review/deny for ``report`` with the packs in ``policy_dirs``.

    ``config`` (the user's provscan.toml table) is merged over the packs' defaults and
    seen by Rego as ``data.provscan.config``.
    """
    packs = load_packs(policy_dirs)
    merged = effective_config(packs, config)
    request = {
        "modules": [list(module) for pack in packs for module in pack.modules],
        "data": {"provscan": {"config": merged}},
        "input": report.policy_input(),
        "query": QUERY,
    }
    reply = run_engine(request, timeout_s)
    _raise_for_status(reply)
    info = PolicyInfo(
        packs=tuple(pack.name for pack in packs),
        digest=policy_digest(packs, merged),
        engine=ENGINE,
        engine_version=str(reply.get("engine_version", "unknown")),
    )
    return verdict_from_result(reply.get("result"), info)
