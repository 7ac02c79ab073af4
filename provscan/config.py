"""Which policy settings did the user give? Reads provscan.toml (or the --config file).

The whole top-level table of the TOML file becomes ``data.provscan.config`` in Rego,
merged over the policy pack's defaults (the ``config:`` key of the pack's data.yaml):
tables merge key by key, every other value (arrays included) replaces the default.
For the default pack, for example::

    required_steps = ["inventory", "hashing", "serialization"]

    [severity_levels]
    high = "deny"

    [[waivers]]
    rule = "SER-PICKLE-DANGEROUS-GLOBAL"
    path = "pytorch_model.bin"
    reason = "reviewed by the security team, ticket SEC-123"

TOML dates and times become ISO 8601 strings, since Rego sees JSON only.
Without --config, ``provscan.toml`` in the working directory is read when present;
otherwise the config is empty and the pack defaults apply unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from provscan.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

CONFIG_FILE_NAME = "provscan.toml"
# A policy config is a few keys and waivers; anything bigger is a mistake.
CONFIG_MAX_BYTES = 1024 * 1024


def load_config(path: Path | None, cwd: Path) -> tuple[dict[str, Any], Path | None]:
    """Return the user's policy config and the file it came from (None when there is none).

    ``path`` is the --config option (relative paths are taken from ``cwd``); a file named
    there must exist. Without it, ``cwd/provscan.toml`` is used when it exists.
    """
    if path is None:
        implicit = cwd / CONFIG_FILE_NAME
        if not implicit.exists():
            return {}, None
        path = implicit
    elif not path.is_absolute():
        path = cwd / path
    return _read_toml(path), path


def _read_toml(path: Path) -> dict[str, Any]:
    remedy = "pass an existing TOML file to --config, or remove the option"
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist", remedy)
    if not path.is_file():
        raise ConfigError(f"config file {path} is not a regular file", remedy)
    try:
        with path.open("rb") as handle:
            raw = handle.read(CONFIG_MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from exc
    if len(raw) > CONFIG_MAX_BYTES:
        raise ConfigError(f"config file {path} is larger than {CONFIG_MAX_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text: {exc.reason}") from exc
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not valid TOML: {exc}",
            "see https://toml.io for the syntax",
        ) from exc
    safe: dict[str, Any] = _json_safe(table)
    try:
        json.dumps(safe, allow_nan=False)
    except ValueError as exc:
        raise ConfigError(f"config file {path}: inf and nan cannot be passed to Rego") from exc
    return safe


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    return value


def merge_config(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` over ``base``: mappings merge, anything else replaces."""
    merged: dict[str, Any] = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_config(current, value)
        else:
            merged[key] = value
    return merged
