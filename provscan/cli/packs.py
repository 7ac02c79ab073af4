"""Which packs, which config file and which policy engine does a command decide with?

Shared by check, probe, evaluate, `policy test|push` and `config show`. The policy modules
are imported inside the functions: they load the report model, and `--help` must not.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provscan.cli.settings import EngineChoice
from provscan.errors import UsageError
from provscan.resources import default_policy_dir, shipped_policy_dir

if TYPE_CHECKING:
    from provscan.policy.backends import PolicyBackend
    from provscan.policy.config import ConfigFile

# What `provscan probe` merges over the user's config: policy data shipped with the
# default pack (see the comments in it), not settings written in Python.
PROBE_OVERLAY = "probe-command.toml"


def policy_dirs(values: Sequence[str]) -> list[Path]:
    """The pack directories --policy names (the default pack when none is given)."""
    if not values:
        return [default_policy_dir()]
    dirs = []
    for value in values:
        shipped = shipped_policy_dir(value) if not Path(value).is_dir() else None
        path = shipped or Path(value)
        if not path.is_dir():
            raise UsageError(
                f"--policy {value}: not a directory, nor a shipped pack (default, production)"
            )
        dirs.append(path)
    return dirs


def user_config(config_path: Path | None, packs: Sequence[Path]) -> ConfigFile:
    """The user's config file, checked against the JSON Schema (keys a pack declares allowed)."""
    # Imported here: the config and pack loaders pull in the report model (heavy for --help).
    from provscan.policy.config import find_config, validate_config
    from provscan.policy.engine import load_packs

    found = find_config(config_path, Path.cwd())
    if found.table:
        declared = {key for pack in load_packs(packs) for key in pack.defaults}
        validate_config(found.table, found.label, declared)
    return found


def target_config(
    config_path: Path | None, packs: Sequence[Path], target: str, *, from_target: bool
) -> ConfigFile:
    """The user's config, refused when it lies inside the local model being scanned.

    A config decides which keys are trusted and which findings count, and everything inside
    the model folder came from whoever handed the model over: `cd model && provscan check .`
    must not read the model's own provscan.toml, nor --config point into it unnoticed. The
    check comes before the file's settings are validated: its content does not matter.
    """
    # Imported here: see user_config.
    from provscan.policy.config import find_config

    root = None if from_target or target.startswith("hf://") else Path(target).resolve()
    if root is not None and root.is_dir():
        cwd = Path.cwd()
        if config_path is not None:
            path: Path | None = config_path if config_path.is_absolute() else cwd / config_path
        else:
            path = find_config(None, cwd).path
        if path is not None and path.resolve().is_relative_to(root):
            raise UsageError(
                f"config {path} lies inside the model being scanned ({target}): a config there "
                "was written by whoever handed the model over, so it is not used. Run from "
                "another directory, pass --config with a file outside the model, or add "
                "--config-from-target if you wrote it yourself"
            )
    return user_config(config_path, packs)


def with_identities(
    config: dict[str, Any], identities: Sequence[str], issuers: Sequence[str]
) -> dict[str, Any]:
    """The config with --trusted-identity / --trusted-issuer pairs added to [trust] identities."""
    if len(identities) != len(issuers):
        raise UsageError(
            f"{len(identities)} --trusted-identity but {len(issuers)} --trusted-issuer: give one issuer per identity"
        )
    if not identities:
        return config
    trust = dict(config.get("trust") or {}) if isinstance(config.get("trust"), dict) else {}
    existing = trust.get("identities", [])
    added = [{"identity": i, "issuer": u} for i, u in zip(identities, issuers, strict=True)]
    trust["identities"] = [*(existing if isinstance(existing, list) else []), *added]
    return {**config, "trust": trust}


def probe_command_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config `provscan probe` decides with: the shipped overlay merged over ``config``."""
    # Imported here: provscan.policy.config pulls in the report model (heavy for --help).
    from provscan.policy.config import merge_config, read_toml

    # Read as a user's config file is (bounded, tomli on Python 3.10).
    overlay = read_toml(default_policy_dir() / PROBE_OVERLAY)
    return merge_config(config, overlay)


def backend_from(choice: EngineChoice) -> PolicyBackend:
    """The policy backend the engine flags name; a UsageError for a contradiction."""
    # Imported here: see user_config.
    from provscan.policy.backends import PolicyBackend

    if choice.opa_url is not None:
        if choice.policy_engine != "regopy":
            raise UsageError("--opa-url and --policy-engine opa exclude each other")
        return PolicyBackend("opa-server", opa_url=choice.opa_url, token_env=choice.opa_token_env)
    if choice.opa_token_env is not None:
        raise UsageError("--opa-token-env applies to --opa-url only")
    if choice.policy_engine == "opa":
        return PolicyBackend("opa", opa_binary=choice.opa_binary)
    return PolicyBackend()


def server_scope(
    backend: PolicyBackend, policies: Sequence[str], packs: list[Path], config: dict[str, Any]
) -> tuple[list[Path], dict[str, Any]]:
    """Packs and config to send: an OPA server asked without --policy uses its own."""
    if backend.kind != "opa-server" or policies:
        return packs, config
    settings = sorted(set(config) - {"trust"})
    if settings:
        raise UsageError(
            f"the OPA server decides with its own config, so {', '.join(settings)} from the "
            "config file would be ignored",
            "name the packs with --policy (the server must hold them: provscan policy push), "
            "or keep only [trust] in the config",
        )
    return [], {}
