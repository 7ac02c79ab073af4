"""Does a document satisfy the CycloneDX 1.6 JSON schema, in time linear in its size?

cyclonedx-python-lib's JsonStrictValidator checks `uniqueItems` with jsonschema's
pairwise fallback for objects, which is quadratic: a BOM with 20,000 file components
took over five minutes. This validator uses the same schema files and registry as the
library's, with only `uniqueItems` replaced by a hash-based check of equal meaning.
tests/emit/test_cyclonedx.py checks that both validators agree.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from cyclonedx.schema import SchemaVersion
from cyclonedx.schema._res import BOM_JSON_STRICT, CRYPTOGRAPHY_DEFS, JSF, SPDX_JSON
from jsonschema.exceptions import ValidationError
from jsonschema.validators import Draft7Validator, extend
from referencing import Registry
from referencing.jsonschema import DRAFT7

_SCHEMA_PREFIX = "http://cyclonedx.org/schema/"


def _canonical(value: Any) -> Any:
    """A hashable form in which equal JSON values (1 and 1.0, key order) coincide."""
    if isinstance(value, dict):
        return ("object", tuple(sorted((k, _canonical(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("array", tuple(_canonical(v) for v in value))
    if isinstance(value, bool):  # JSON Schema: true is not 1
        return ("bool", value)
    if isinstance(value, float) and value.is_integer():
        return ("number", int(value))
    if isinstance(value, (int, float)):
        return ("number", value)
    return (type(value).__name__, value)


def _unique_items(
    validator: Any, unique: bool, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[Any] = set()
    for item in instance:
        key = _canonical(item)
        if key in seen:
            yield ValidationError(f"array has non-unique elements, e.g. {json.dumps(item)[:120]}")
            return
        seen.add(key)


_LinearDraft7Validator = extend(Draft7Validator, {"uniqueItems": _unique_items})


def _read(path: str | None) -> Any:
    if path is None:
        raise NotImplementedError("cyclonedx-python-lib ships no JSON schema for this version")
    return json.loads(Path(path).read_text(encoding="utf-8"))


@lru_cache(maxsize=4)
def schema_validator(version: SchemaVersion) -> Any:
    """A jsonschema validator for the library's strict JSON schema of `version`."""
    registry: Registry[Any] = Registry().with_resources(
        (f"{_SCHEMA_PREFIX}{Path(path).name}", DRAFT7.create_resource(_read(path)))
        for path in (SPDX_JSON, CRYPTOGRAPHY_DEFS, JSF)
    )
    return _LinearDraft7Validator(
        _read(BOM_JSON_STRICT.get(version)),
        registry=registry,
        format_checker=Draft7Validator.FORMAT_CHECKER,
    )
