"""What does a running OPA server decide for a report, with which policy, and how is it loaded?

The server owns its policies and data: `evaluate_on_server` never uploads. It reads the
server's modules (GET /v1/policies) and data.provscan.config before and after asking for
the decision (POST /v1/data/provscan/main?provenance=true), so PolicyInfo.digest
(`served_digest`) describes exactly what was evaluated; a change in between fails closed.
With local packs given as well, the server must hold exactly those packs and their config
(modules under ``provscan/``; others are ignored unless they declare a ``provscan``
package), else PolicyError. `push_packs` loads packs into a server that way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provscan.errors import PolicyError, UsageError
from provscan.policy.backends import PolicyBackend
from provscan.policy.input import bounded_policy_input
from provscan.policy.opa_http import OpaClient
from provscan.policy.packs import (
    SERVED_PREFIX,
    effective_config,
    load_packs,
    module_url_path,
    served_digest,
    served_modules,
)
from provscan.policy.verdict import PACKAGE, verdict_from_result
from provscan.report import PolicyInfo, Report, Verdict

ENGINE = "opa-server"
# The REST data API addresses `data.a.b` as /v1/data/a/b.
DECISION_PATH = "/v1/data/" + PACKAGE.replace(".", "/")
CONFIG_PATH = "/v1/data/provscan/config"  # data.provscan.config, as the packs read it
_PROVSCAN_PACKAGE = re.compile(r"^\s*package\s+provscan(\.|\s|$)", re.MULTILINE)
_PUSH_REMEDY = (
    "load them with `provscan policy push --opa-url URL` and the same --policy and config, "
    "or leave --policy out to use the server's policy as it is"
)


@dataclass(frozen=True)
class ServerPolicy:
    """What a server evaluates with: its modules (id -> text) and data.provscan.config."""

    modules: Mapping[str, str]
    config: Any  # None when the server has no data.provscan.config

    @property
    def digest(self) -> str:
        return served_digest(self.modules, self.config)


@dataclass(frozen=True)
class PushResult:
    url: str
    uploaded: tuple[str, ...]  # module ids written (new or changed)
    unchanged: tuple[str, ...]  # module ids already identical on the server
    deleted: tuple[str, ...]  # stale provscan/ module ids removed
    digest: str  # served_digest of the server's policy after the push


def fetch_server_policy(client: OpaClient) -> ServerPolicy:
    _, listing = client.call("GET", "/v1/policies")
    items = listing.get("result") if listing else None
    if not isinstance(items, list):
        raise PolicyError(f"OPA server {client.base}/v1/policies sent no list of policies")
    modules: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict):
            raise PolicyError(f"OPA server {client.base}/v1/policies sent a malformed entry")
        mod_id, raw = item.get("id"), item.get("raw")
        if not isinstance(mod_id, str) or not isinstance(raw, str):
            raise PolicyError(f"OPA server {client.base}/v1/policies sent an entry without id/raw")
        modules[mod_id] = raw
    _, doc = client.call("GET", CONFIG_PATH)
    return ServerPolicy(modules, doc.get("result") if doc else None)


def _mismatches(server: ServerPolicy, local: Mapping[str, str], config: Any) -> list[str]:
    ours = {i: t for i, t in server.modules.items() if i.startswith(SERVED_PREFIX)}
    problems: list[str] = []
    for label, ids in (
        ("missing on the server", sorted(set(local) - set(ours))),
        ("only on the server", sorted(set(ours) - set(local))),
        ("different", sorted(i for i in set(local) & set(ours) if local[i] != ours[i])),
        (
            "outside provscan/ but in a provscan package",
            sorted(
                i
                for i, t in server.modules.items()
                if i not in ours and _PROVSCAN_PACKAGE.search(t)
            ),
        ),
    ):
        if ids:
            problems.append(f"modules {label}: {', '.join(ids)}")
    # Round-trip the local config through JSON so tuples and lists compare alike.
    if server.config != json.loads(json.dumps(config)):
        problems.append("data.provscan.config differs")
    return problems


def _check_matches(url: str, server: ServerPolicy, local: Mapping[str, str], config: Any) -> None:
    problems = _mismatches(server, local, config)
    if problems:
        raise PolicyError(
            f"the OPA server at {url} does not hold the given policy packs: {'; '.join(problems)}",
            _PUSH_REMEDY,
        )


def _pack_names(modules: Mapping[str, str]) -> tuple[str, ...]:
    names = {
        mod_id[len(SERVED_PREFIX) :].split("/", 1)[0]
        if mod_id.startswith(SERVED_PREFIX)
        else mod_id
        for mod_id in modules
    }
    return tuple(sorted(names))


def _server_version(doc: Mapping[str, Any]) -> str:
    provenance = doc.get("provenance")
    if not isinstance(provenance, dict):
        return "unknown"
    version = str(provenance.get("version") or "unknown")
    bundles = provenance.get("bundles")
    revisions = []
    if isinstance(bundles, dict):
        for name, info in sorted(bundles.items()):
            revision = info.get("revision") if isinstance(info, dict) else None
            revisions.append(f"{name}@{revision or '?'}")
    elif isinstance(provenance.get("revision"), str):  # deprecated single-bundle field
        revisions.append(f"@{provenance['revision']}")
    text = f"{version} (bundles: {', '.join(revisions)})" if revisions else version
    return text[:500]


def evaluate_on_server(
    report: Report,
    policy_dirs: Sequence[Path],
    config: Mapping[str, Any],
    backend: PolicyBackend,
    timeout_s: float,
) -> Verdict:
    """Ask the server for data.provscan.main; with ``policy_dirs``, check it holds them first."""
    with OpaClient(backend, timeout_s) as client:
        before = fetch_server_policy(client)
        if policy_dirs:
            packs = load_packs(policy_dirs)
            merged = effective_config(packs, config)
            _check_matches(client.base, before, served_modules(packs), merged)
            names = tuple(pack.name for pack in packs)
        elif config:
            raise UsageError(
                "a policy config was given, but the OPA server uses its own data.provscan.config",
                _PUSH_REMEDY,
            )
        else:
            names = _pack_names(before.modules)
        body = {"input": bounded_policy_input(report)}
        params = {"provenance": "true"}
        _, doc = client.call("POST", DECISION_PATH, json_body=body, params=params)
        after = fetch_server_policy(client)
    if after != before:
        raise PolicyError(
            f"the policy on the OPA server at {client.base} changed during the evaluation",
            "run the check again",
        )
    doc = doc or {}
    # No "result" key: data.provscan.main is undefined there; verdict_from_result fails closed.
    info = PolicyInfo(
        packs=names, digest=before.digest, engine=ENGINE, engine_version=_server_version(doc)
    )
    return verdict_from_result(doc.get("result"), info)


def _apply(client: OpaClient, deletes: Sequence[str], puts: Mapping[str, str]) -> None:
    """Delete and write modules; retry those OPA refuses (400) while the others progress.

    OPA compiles all its modules on every write, so one that calls a function from a module
    not yet written (or conflicts with a stale one not yet deleted) is refused until then.
    """
    pending: list[tuple[str, str]] = [("DELETE", i) for i in deletes] + [("PUT", i) for i in puts]
    while pending:
        refused: list[tuple[str, str]] = []
        last = ""
        for method, mod_id in pending:
            status, doc = client.call(
                method, module_url_path(mod_id), text_body=puts.get(mod_id), ok=(200, 204, 400, 404)
            )
            if status == 404 and method == "PUT":
                raise PolicyError(f"OPA server {client.base} has no Policy API (404 on PUT)")
            if status == 400:
                refused.append((method, mod_id))
                last = f"{method} {mod_id}: {(doc or {}).get('message', 'refused')}"
        if len(refused) == len(pending):
            raise PolicyError(f"the OPA server at {client.base} refused the policy modules: {last}")
        pending = refused


def push_packs(
    backend: PolicyBackend,
    policy_dirs: Sequence[Path],
    config: Mapping[str, Any],
    *,
    timeout_s: float = 30.0,
) -> PushResult:
    """Load ``policy_dirs`` (modules as ``provscan/<pack>/<file>``) and their effective config
    (user ``config`` merged over the pack defaults) into the OPA server; remove stale
    ``provscan/`` modules. Afterwards the server holds exactly what `evaluate` checks for."""
    if backend.kind != "opa-server":
        raise UsageError("pushing policy packs needs an OPA server URL")
    packs = load_packs(policy_dirs)
    merged = effective_config(packs, config)
    wanted = served_modules(packs)
    with OpaClient(backend, timeout_s) as client:
        current = fetch_server_policy(client)
        stale = sorted(
            i for i in current.modules if i.startswith(SERVED_PREFIX) and i not in wanted
        )
        changed = sorted(i for i in wanted if current.modules.get(i) != wanted[i])
        _apply(client, stale, {i: wanted[i] for i in changed})
        client.call("PUT", CONFIG_PATH, json_body=merged, ok=(200, 204))
        final = fetch_server_policy(client)
    _check_matches(client.base, final, wanted, merged)
    unchanged = tuple(sorted(set(wanted) - set(changed)))
    return PushResult(client.base, tuple(changed), unchanged, tuple(stale), final.digest)
