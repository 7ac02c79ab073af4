"""Which policy does a set of pack folders make: modules, merged config, and their digests?"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from provscan.errors import ConfigError, PolicyError, UsageError
from provscan.policy.config import merge_config
from provscan.policy.verdict import PACKAGE
from provscan.resources import shipped_policy_dir

DATA_FILES = ("data.yaml", "data.json")
# regopy 1.5.2 silently accepts v0 `deny[msg] { ... }` and builds an object instead of
# a set (research §4.1), so such rules are refused before they can mean something else.
_V0_RULE = re.compile(r"^(deny|review|warn)\s*\[", re.MULTILINE)
_LEVEL_RULE = re.compile(r"^(deny|review|warn)\b", re.MULTILINE)
# Module ids on an OPA server: provscan owns everything under this prefix (push_packs).
SERVED_PREFIX = "provscan/"


@dataclass(frozen=True)
class PolicyPack:
    """One policy directory: its Rego modules and the defaults from its data file."""

    name: str
    root: Path
    modules: tuple[tuple[str, str], ...]  # (display name, source)
    defaults: dict[str, Any]
    sources: tuple[tuple[str, bytes], ...]  # every file that changes a decision
    extends: str | None = None  # a shipped pack this one builds on (loaded before it)

    def module_files(self) -> list[tuple[str, str]]:
        """The modules named by their files (as the pack folder was given), for an engine
        whose errors should point at the file to fix rather than at ``<pack>/<file>``."""
        prefix = f"{self.name}/"
        return [
            (str(self.root / display.removeprefix(prefix)), source)
            for display, source in self.modules
        ]


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
            raise PolicyError(f"policy {path} is not UTF-8 text: {exc.reason}") from exc
        _lint(str(path), text)
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


def _hash_files(files: Sequence[tuple[str, bytes]], config: Any) -> str:
    digest = hashlib.sha256()
    for name, raw in sorted(files):
        # Length prefixes keep (name, bytes) boundaries unambiguous.
        encoded = name.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
        digest.update(len(raw).to_bytes(8, "big") + raw)
    digest.update(_canonical(config))
    return digest.hexdigest()


def policy_digest(packs: Sequence[PolicyPack], config: Mapping[str, Any]) -> str:
    """sha256 over every policy and data file (by name) and the effective config."""
    return _hash_files([source for pack in packs for source in pack.sources], config)


def module_id(display: str) -> str:
    """The id a module gets on an OPA server: ``provscan/<pack>/<file>``, no empty segments.

    A pack named by its path (two packs sharing a folder name) would otherwise give ``//``,
    which an HTTP router may normalise into a redirect.
    """
    return SERVED_PREFIX + "/".join(part for part in display.split("/") if part)


def module_url_path(mod_id: str) -> str:
    """The Policy API path of a module id, each segment percent-encoded."""
    return "/v1/policies/" + "/".join(quote(part, safe="") for part in mod_id.split("/"))


def served_modules(packs: Sequence[PolicyPack]) -> dict[str, str]:
    """The modules of ``packs`` as an OPA server holds them after push_packs: id -> text."""
    return {module_id(display): text for pack in packs for display, text in pack.modules}


def served_digest(modules: Mapping[str, str], config: Any) -> str:
    """sha256 over a server's modules (by id) and its data.provscan.config.

    Not policy_digest: a server holds module texts and the merged config, not the packs'
    data files, so this digest is computed the same way from both sides (local packs and
    what GET /v1/policies returns) and the two can be compared.
    """
    files = [(name, text.encode("utf-8")) for name, text in modules.items()]
    # An absent config (None) hashes as JSON null, unlike an empty one: Rego tells them apart.
    return _hash_files(files, config)
