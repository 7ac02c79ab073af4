"""Which policy settings did the user give? Reads provscan.toml, [tool.provscan] or --config.

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
Without --config, ``provscan.toml`` in the working directory is read when present, else
the ``[tool.provscan]`` table of ``pyproject.toml`` there; otherwise the config is empty and
the pack defaults apply unchanged. The file's JSON Schema is ``docs/config.schema.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from provscan.errors import ConfigError
from provscan.files import read_capped
from provscan.parsing import MAX_NESTING, MAX_NUMBER_CHARS
from provscan.resources import data_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

CONFIG_FILE_NAME = "provscan.toml"
PYPROJECT_NAME = "pyproject.toml"
SCHEMA_NAME = "config.schema.json"
MAX_PROBLEMS = 10
# A policy config is a few keys and waivers; anything bigger is a mistake.
CONFIG_MAX_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ConfigFile:
    """The user's config table and where it came from (path None: no config file)."""

    table: dict[str, Any]
    path: Path | None = None
    origin: str = "none"  # "--config", "provscan.toml", "pyproject.toml [tool.provscan]"

    @property
    def label(self) -> str:
        if self.path is None:
            return "no config file"
        section = " [tool.provscan]" if self.path.name == PYPROJECT_NAME else ""
        return f"{self.path}{section}"


def load_config(path: Path | None, cwd: Path) -> tuple[dict[str, Any], Path | None]:
    """Return the user's policy config and the file it came from (None when there is none)."""
    found = find_config(path, cwd)
    return found.table, found.path


def find_config(path: Path | None, cwd: Path) -> ConfigFile:
    """Read the config file: ``--config`` when given, else ``cwd/provscan.toml``, else the
    ``[tool.provscan]`` table of ``cwd/pyproject.toml``.

    A file named by ``--config`` must exist; a ``pyproject.toml`` named there must have a
    ``[tool.provscan]`` table. Both a provscan.toml and a ``[tool.provscan]`` table in the
    working directory is an error: which one governs would be a guess.
    """
    if path is not None:
        path = path if path.is_absolute() else cwd / path
        if path.name == PYPROJECT_NAME:
            table = _tool_table(read_toml(path), path)
            if table is None:
                raise ConfigError(
                    f"config file {path} has no [tool.provscan] table",
                    "add one, or pass a provscan.toml to --config",
                )
            return ConfigFile(table, path, "--config")
        return ConfigFile(read_toml(path), path, "--config")
    own, pyproject = cwd / CONFIG_FILE_NAME, cwd / PYPROJECT_NAME
    tool = _tool_table(read_toml(pyproject), pyproject) if pyproject.is_file() else None
    if own.exists():
        if tool is not None:
            raise ConfigError(
                f"both {own} and the [tool.provscan] table of {pyproject} configure provscan",
                "keep one of them, or name the one to use with --config",
            )
        return ConfigFile(read_toml(own), own, CONFIG_FILE_NAME)
    if tool is not None:
        return ConfigFile(tool, pyproject, f"{PYPROJECT_NAME} [tool.provscan]")
    return ConfigFile({})


def _tool_table(document: dict[str, Any], path: Path) -> dict[str, Any] | None:
    tool = document.get("tool")
    if not isinstance(tool, dict) or "provscan" not in tool:
        return None
    table = tool["provscan"]
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: tool.provscan must be a table")
    return table


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a table: bounded, UTF-8, hazards refused; a ConfigError names the file."""
    remedy = "pass an existing TOML file to --config, or remove the option"
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist", remedy)
    if not path.is_file():
        raise ConfigError(f"config file {path} is not a regular file", remedy)
    try:
        with path.open("rb") as handle:
            raw, too_large = read_capped(handle, CONFIG_MAX_BYTES)
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from exc
    if too_large:
        raise ConfigError(f"config file {path} is larger than {CONFIG_MAX_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text: {exc.reason}") from exc
    hazard = _toml_hazard(text)  # before tomllib: it would raise, recurse or take minutes
    if hazard is not None:
        raise ConfigError(f"config file {path}: {hazard}", _HAZARD_REMEDY)
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not valid TOML: {exc}",
            "see https://toml.io for the syntax",
        ) from exc
    except (ValueError, RecursionError) as exc:  # what _toml_hazard did not foresee
        raise ConfigError(f"config file {path} cannot be read: {exc}", _HAZARD_REMEDY) from exc
    for key, value in _leaves(table):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(
                f"config file {path}: key {key}: {value} cannot be passed to Rego",
                "use a finite number",
            )
    safe: dict[str, Any] = _json_safe(table)
    try:
        json.dumps(safe, allow_nan=False)
    except ValueError as exc:
        raise ConfigError(f"config file {path}: inf and nan cannot be passed to Rego") from exc
    return safe


_HAZARD_REMEDY = "a policy config holds a few short keys and values; fix the file"
# One TOML key: bare, or a basic or literal string; a dotted key is several, joined by dots.
_STRING = r'"(?:[^"\\\n]|\\.)*"' r"|'[^'\n]*'"
_KEY = rf"(?:[A-Za-z0-9_-]+|{_STRING})"
_DOTTED = re.compile(rf"[ \t]*({_KEY}(?:[ \t]*\.[ \t]*{_KEY})*)[ \t]*")
_HEADER = re.compile(rf"(\[\[?){_DOTTED.pattern}\]")
_QUOTED = re.compile(_STRING)
_GAP = re.compile(r"(?:[ \t\r\n]+|#[^\n]*)*")
# What a value holds, token by token: strings (so their brackets do not count), comments,
# brackets and separators, and runs of anything else (numbers, dates, booleans).
_VALUE_TOKEN = re.compile(
    r'"""(?:[^\\]|\\.)*?"""'
    r"|'''.*?'''"
    rf"|{_STRING}"
    r"|#[^\n]*|[\[\]{},=\n]|[^\[\]{},=\"'#\n]+|.",
    re.S,
)
_NUMBER = re.compile(r"[+-]?(?:0[xob])?[0-9A-Fa-f_.eE+-]+")


def _parts(dotted: str) -> int:
    """How many tables a dotted key opens: its dots outside quotes, plus one."""
    return _QUOTED.sub("", dotted).count(".") + 1


def _named(key: str) -> str:
    key = " ".join(key.split())
    return key if len(key) <= 80 else f"{key[:60]}…({len(key):,} characters)"


def _toml_hazard(text: str) -> str | None:
    """What in the TOML text tomllib cannot be trusted with, and under which key: a number
    literal over MAX_NUMBER_CHARS characters (a ValueError past 4300 digits), or nesting
    (tables, dotted keys, arrays, inline tables) over MAX_NESTING levels (a RecursionError,
    or minutes of work for a long dotted key). None when there is neither, or when the text
    is not TOML that this scan follows: tomllib then says what is wrong."""
    pos, end = 0, len(text)
    table, table_depth = "", 0
    while True:
        pos = _GAP.match(text, pos).end()  # type: ignore[union-attr]  # always matches
        if pos >= end:
            return None
        header = _HEADER.match(text, pos)
        if header is not None:
            table = header.group(2)
            table_depth = _parts(table) + (header.group(1) == "[[")
            if table_depth > MAX_NESTING:
                return f"table [{_named(table)}] is nested too deeply (over {MAX_NESTING} levels)"
            pos = header.end() + (header.group(1) == "[[")
            continue
        key = _DOTTED.match(text, pos)
        if key is None or not text.startswith("=", key.end()):
            return None
        name = f"{table}.{key.group(1)}" if table else key.group(1)
        # Open containers: for each, the extra levels its inline key's dots add.
        stack: list[int] = []
        depth = table_depth + _parts(key.group(1))
        pos = key.end() + 1
        while pos < end:
            if depth + len(stack) + sum(stack) > MAX_NESTING:
                return f"key {_named(name)} is nested too deeply (over {MAX_NESTING} levels)"
            token = _VALUE_TOKEN.match(text, pos)
            assert token is not None  # "." matches any character
            pos, value = token.end(), token.group()
            if value == "\n" and not stack:
                break  # the statement ends
            if value in "[{":
                stack.append(0)
            elif value in "]}":
                if not stack:
                    return None
                stack.pop()
            if value in "{," and stack:
                inline = _DOTTED.match(text, pos)
                if inline is not None and text.startswith("=", inline.end()):
                    stack[-1] = _parts(inline.group(1))
                    pos = inline.end() + 1
            number = _NUMBER.fullmatch(value.strip())
            if number is not None and len(value.strip()) > MAX_NUMBER_CHARS:
                digits = len(value.strip())
                return (
                    f"key {_named(name)} holds a number written with {digits:,} characters, "
                    f"over the {MAX_NUMBER_CHARS:,}-character limit"
                )
        if stack:
            return None


def _leaves(table: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    """(dotted key, value) for every value in the table, arrays entered ([index]), walked
    without recursion."""
    pending: list[tuple[str, Any]] = [("", table)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, Mapping):
            pending.extend((f"{where}.{k}" if where else str(k), v) for k, v in value.items())
        elif isinstance(value, list):
            pending.extend((f"{where}[{i}]", v) for i, v in enumerate(value))
        else:
            yield where, value


@lru_cache(maxsize=1)
def config_schema() -> dict[str, Any]:
    """The JSON Schema of the config file (docs/config.schema.json)."""
    schema: dict[str, Any] = json.loads((data_dir("docs") / SCHEMA_NAME).read_text("utf-8"))
    return schema


def validate_config(table: Mapping[str, Any], where: str, pack_keys: Iterable[str] = ()) -> None:
    """Raise ConfigError listing what in ``table`` breaks the JSON Schema.

    Top-level keys the schema does not know are accepted only when a loaded policy pack
    declares them in its data file (a custom pack's own settings); any other unknown key
    is most likely a misspelling that would otherwise be ignored.
    """
    import jsonschema

    schema = config_schema()
    known = set(schema["properties"]) | set(pack_keys)
    problems = [f"{key}: not a known setting (misspelt?)" for key in sorted(set(table) - known)]
    checked = {k: v for k, v in table.items() if k in schema["properties"]}
    validator = jsonschema.Draft202012Validator(schema)
    for error in sorted(validator.iter_errors(checked), key=lambda e: list(map(str, e.path))):
        problems.extend(_describe(error))
    if problems:
        shown = problems[:MAX_PROBLEMS]
        more = len(problems) - len(shown)
        raise ConfigError(
            f"config {where} is not valid: "
            + "; ".join(shown)
            + (f"; and {more} more" if more else ""),
            f"see {SCHEMA_NAME} (provscan config schema) and policies/default/README.md",
        )


def _describe(error: Any) -> list[str]:
    """jsonschema's error in the words of a config file: the dotted key and what it takes."""
    where = _dotted(error.absolute_path)
    got = _shown(error.instance)
    kind, schema = error.validator, error.schema
    if kind == "additionalProperties":
        known = sorted(schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(known))
        return [
            f"{where}.{key}: not a known setting (misspelt?); {where} takes {', '.join(known)}"
            for key in extra
        ]
    if kind == "type":
        return [f"{where}: must be {_article(error.validator_value)} (got {got})"]
    if kind == "enum":
        return [f"{where}: must be one of {', '.join(map(str, error.validator_value))} (got {got})"]
    if kind == "required":
        return [f"{where}: {error.message.split(' is a')[0].strip(chr(39))} is required"]
    if kind == "oneOf" and {"identity", "identity_pattern"} <= set(schema.get("properties", {})):
        return [f"{where}: give exactly one of identity (exact) or identity_pattern (regex)"]
    description = schema.get("description")
    detail = f": {description}" if description else ""
    return [f"{where}: {got} is not allowed here{detail}"]


def _dotted(path: Iterable[object]) -> str:
    """licence.allowed, waivers[1].reason: list positions counted from 1, as people count."""
    text = ""
    for part in path:
        text += f"[{part + 1}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "the top level"


def _article(kind: object) -> str:
    names = {
        "object": "a table",
        "array": "a list",
        "string": "a string",
        "boolean": "true or false",
    }
    return names.get(str(kind), f"a {kind}")


def _shown(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


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
