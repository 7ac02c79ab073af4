"""Which value does each setting take, and where did it come from? (`provscan config show`)"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from provscan.policy.config import ConfigFile, merge_config


@dataclass(frozen=True)
class Layer:
    """One source of settings, in merge order (later layers win)."""

    source: str
    table: Mapping[str, Any]


@dataclass(frozen=True)
class Setting:
    key: str  # dotted: licence.commercial_use
    value: Any
    source: str


def effective_settings(layers: Sequence[Layer]) -> tuple[dict[str, Any], list[Setting]]:
    """The merged config and, for each leaf, the last layer that set it.

    Tables merge key by key and anything else replaces (provscan.policy.config.merge_config), so a
    leaf's source is the last layer holding a non-table value at that dotted path.
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = merge_config(merged, layer.table)
    settings = [
        Setting(".".join(path), value, _source_of(path, layers))
        for path, value in _leaves(merged, ())
    ]
    return merged, settings


def _leaves(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(value, Mapping) and (value or not path):
        for key in sorted(value):
            yield from _leaves(value[key], (*path, str(key)))
    else:
        yield path, value


def _source_of(path: tuple[str, ...], layers: Sequence[Layer]) -> str:
    for layer in reversed(layers):
        node: Any = layer.table
        for part in path:
            if not isinstance(node, Mapping) or part not in node:
                break
            node = node[part]
        else:
            if not isinstance(node, Mapping) or not node:
                return layer.source
    return "unknown"


def render_text(config_file: ConfigFile, packs: Sequence[str], settings: Sequence[Setting]) -> str:
    """One line per setting, TOML-like (``key = value  # source``), keys sorted."""
    lines = [f"# config file: {config_file.label}", f"# policy packs: {', '.join(packs)}"]
    rows = [(f"{s.key} = {_show(s.value)}", s.source) for s in settings]
    # Align the comments, except after values too long to line up with the rest.
    width = max((len(text) for text, _ in rows if len(text) <= 60), default=0)
    lines.extend(f"{text:<{width}}  # {source}" for text, source in rows)
    return "\n".join(lines) + "\n"


def render_json(
    config_file: ConfigFile,
    packs: Sequence[str],
    merged: Mapping[str, Any],
    settings: Sequence[Setting],
) -> str:
    document = {
        "config_file": str(config_file.path) if config_file.path is not None else None,
        "config_origin": config_file.origin,
        "packs": list(packs),
        "effective": merged,
        "sources": {s.key: s.source for s in settings},
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _show(value: Any) -> str:
    # JSON spelling: the same words Rego sees (null, true, quoted strings).
    return json.dumps(value, ensure_ascii=False)
