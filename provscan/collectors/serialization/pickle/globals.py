"""Is a pickle global known safe, known to run code, or unknown? Decided from YAML data."""

from __future__ import annotations

import fnmatch
import functools
from dataclasses import dataclass
from enum import Enum
from typing import Any

from provscan.knowledge.files import load_yaml


@dataclass
class PickleImport:
    """One distinct global the pickle imports, where first seen, and the first call on it."""

    module: str
    name: str
    raw: str  # "module.name" as written, before the protocol 0-2 renames
    opcode: str
    offset: int
    call_opcode: str | None = None
    call_offset: int | None = None

    @property
    def qualified(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class Unresolved:
    """An import the walk cannot name: a STACK_GLOBAL on non-strings, an unknown EXT code."""

    opcode: str
    offset: int
    detail: str


class GlobalVerdict(str, Enum):
    ALLOWED = "allowed"
    DANGEROUS = "dangerous"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class _Danger:
    pattern: str
    why: str


def _knowledge(name: str) -> dict[str, Any]:
    document = load_yaml(name)
    if not isinstance(document, dict) or not isinstance(document.get("entries"), list):
        raise ValueError(f"provscan/knowledge/{name}: expected a mapping with an 'entries' list")
    return document


def _require(entry: Any, keys: tuple[str, ...], name: str) -> dict[str, Any]:
    if not isinstance(entry, dict) or not all(
        isinstance(entry.get(k), (str, list)) and entry.get(k) for k in keys
    ):
        raise ValueError(
            f"provscan/knowledge/{name}: every entry needs {', '.join(keys)}: {entry!r}"
        )
    return entry


@functools.cache
def allowed_globals() -> frozenset[str]:
    """Exact 'module.name' globals that are safe to import and call."""
    names: set[str] = set()
    for entry in _knowledge("pickle_allowlist.yaml")["entries"]:
        entry = _require(entry, ("globals", "source", "why"), "pickle_allowlist.yaml")
        names.update(str(name) for name in entry["globals"])
    return frozenset(names)


@functools.cache
def dangerous_patterns() -> tuple[_Danger, ...]:
    """Patterns of globals known to run code, in file order (the first match explains)."""
    found: list[_Danger] = []
    for entry in _knowledge("pickle_dangerous.yaml")["entries"]:
        entry = _require(entry, ("patterns", "why", "source"), "pickle_dangerous.yaml")
        found.extend(_Danger(str(p), str(entry["why"])) for p in entry["patterns"])
    return tuple(found)


def _danger(qualified: str) -> _Danger | None:
    for danger in dangerous_patterns():
        # Anything reached through a dangerous object is dangerous too (builtins.eval.__call__).
        for pattern in (danger.pattern, danger.pattern + ".*"):
            if fnmatch.fnmatchcase(qualified, pattern):
                return danger
    return None


def attribute_tails(name: str) -> list[str]:
    """The module-qualified names a dotted global name can reach.

    An unpickler resolves the name inside its module attribute by attribute (pickle.py's
    `_getattribute`, used from protocol 4 on; `_pickle.c` does the same), so `os.system`
    inside `pathlib`, or inside `torch.serialization`, is the module's own `os` and then
    `os.system`. Every tail of the name that starts after a dot is therefore also read as a
    module-qualified name: 'os.system' for 'os.system', 'b.c' and 'a.b.c' for 'a.b.c'. A
    nested class (Outer.Inner) gives a tail that matches nothing dangerous.
    """
    parts = name.split(".")
    return [".".join(parts[i:]) for i in range(len(parts) - 1)]


def classify_global(
    qualified: str, raw: str | None = None, name: str | None = None
) -> tuple[GlobalVerdict, str | None]:
    """Classify an import by the name the unpickler resolves, the name as written, and (given
    the name without its module) whatever its dotted parts reach attribute by attribute."""
    for candidate in (qualified, raw):
        danger = _danger(candidate) if candidate else None
        if danger is not None:
            return GlobalVerdict.DANGEROUS, danger.why
    for tail in attribute_tails(name or ""):
        danger = _danger(tail)
        if danger is not None:
            return GlobalVerdict.DANGEROUS, f"{danger.why}; {qualified} reaches {tail}"
    if qualified in allowed_globals():
        return GlobalVerdict.ALLOWED, None
    return GlobalVerdict.UNKNOWN, None
