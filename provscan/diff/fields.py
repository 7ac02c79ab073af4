"""Is this value of a hostile JSON document the type the diff expects? Typed accessors that say where."""

from __future__ import annotations

from typing import Any


class BadInput(ValueError):
    """The input is not what it claims to be; the message says where (a JSON path) and why."""


def obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadInput(f"{where}: expected an object, found {_kind(value)}")
    return value


def arr(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise BadInput(f"{where}: expected an array, found {_kind(value)}")
    return value


def opt_obj(value: Any, where: str) -> dict[str, Any] | None:
    return None if value is None else obj(value, where)


def opt_arr(value: Any, where: str) -> list[Any]:
    return [] if value is None else arr(value, where)


def text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise BadInput(f"{where}: expected a string, found {_kind(value)}")
    return value


def opt_text(value: Any, where: str) -> str | None:
    return None if value is None else text(value, where)


def opt_int(value: Any, where: str) -> int | None:
    # bool is an int to Python, never to a JSON reader.
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadInput(f"{where}: expected a non-negative integer, found {_kind(value)}")
    return value


def int_text(value: str, where: str) -> int:
    """A count written as a string (CycloneDX property values are strings)."""
    if not value.isascii() or not value.isdigit() or len(value) > 20:
        raise BadInput(f"{where}: expected a non-negative integer, found {value[:40]!r}")
    return int(value)


def opt_bool(value: Any, where: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise BadInput(f"{where}: expected true or false, found {_kind(value)}")


def texts(value: Any, where: str) -> tuple[str, ...]:
    return tuple(text(item, f"{where}[{i}]") for i, item in enumerate(opt_arr(value, where)))


def joined(values: tuple[str, ...]) -> str | None:
    """The comma-joined form a BOM property uses; None for an empty list."""
    return ",".join(values) if values else None


def split_list(value: str | None) -> frozenset[str]:
    """A comma-joined property value as a set (the emitter joins with ',' or ', ')."""
    if not value:
        return frozenset()
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    names.update({list: "an array", dict: "an object"})
    return names.get(type(value), type(value).__name__)
