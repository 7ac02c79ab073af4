"""How is an input read safely as JSON, and is it a provscan report or a CycloneDX BOM?

Inputs are read as raw JSON, never through the report model or cyclonedx-python-lib: the
library drops what it cannot model (modelCard, declarations), and a report of a newer minor
schema version has fields the typed model would refuse. Every input is treated as hostile:
its size, nesting depth and keys are bounded or checked before anything else reads it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from provscan.diff.fields import BadInput, obj, text
from provscan.diff.snapshot import InputKind
from provscan.files import read_capped
from provscan.limits import MiB
from provscan.report import SCHEMA_VERSION

# A BOM carries every file, finding and licence text of a model: tens of MiB at most for
# a model with thousands of files. Beyond this the input is not one provscan wrote.
MAX_INPUT_BYTES = 256 * MiB
# provscan's own documents nest about 12 deep (a finding inside BOM evidence).
MAX_JSON_DEPTH = 64


def read_bounded(
    path: Path, limit: int | None = None, what: str = "a provscan report or BOM"
) -> bytes:
    """The file's bytes, refused (BadInput) past ``limit`` (default MAX_INPUT_BYTES, read at
    call time) without reading further. A pipe (`<(...)`) is read like a file."""
    limit = MAX_INPUT_BYTES if limit is None else limit
    try:
        with path.open("rb") as handle:
            data, too_large = read_capped(handle, limit)
    except OSError as exc:
        raise BadInput(f"cannot read it ({exc.strerror or exc})") from exc
    if too_large:
        size = f"{limit // MiB} MiB" if limit % MiB == 0 else f"{limit} bytes"
        raise BadInput(f"larger than {size}; not {what}")
    return data


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two readers of a document with a repeated key can see two different documents.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise BadInput(f"not valid JSON for provscan: the key {key[:80]!r} appears twice")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise BadInput(f"not valid JSON: {name} is not a JSON number")


def parse_json(data: bytes | str) -> Any:
    """JSON with no repeated keys, no NaN/Infinity, nested at most MAX_JSON_DEPTH deep."""
    try:
        source = data.decode("utf-8-sig") if isinstance(data, bytes) else data
        document = json.loads(source, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise BadInput(f"not UTF-8 text (byte {exc.start})") from exc
    except RecursionError as exc:
        raise BadInput(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except ValueError as exc:
        if isinstance(exc, BadInput):
            raise
        raise BadInput(f"not valid JSON ({exc})") from exc
    _check_depth(document)
    return document


def _check_depth(document: Any) -> None:
    """Walk iteratively: a recursive walk of a hostile document is itself a risk."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise BadInput(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)


def detect_kind(document: Any) -> InputKind:
    """Decide by content: a report has schema_version, tool and files; a BOM says CycloneDX."""
    top = obj(document, "the document")
    is_bom = top.get("bomFormat") == "CycloneDX"
    is_report = all(key in top for key in ("schema_version", "tool", "files"))
    if is_bom and is_report:
        raise BadInput("looks like both a provscan report and a CycloneDX BOM; refusing to guess")
    if is_bom:
        return InputKind.BOM
    if is_report:
        return InputKind.REPORT
    if "bomFormat" in top:
        raise BadInput(f"bomFormat is {str(top['bomFormat'])[:40]!r}, not 'CycloneDX'")
    raise BadInput(
        "neither a provscan report (schema_version, tool, files) nor a CycloneDX BOM (bomFormat)"
    )


def schema_version_parts(version: Any, where: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a report schema version; BadInput unless it is three ASCII
    numbers of at most 9 digits."""
    value = text(version, where)
    parts = value.split(".")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() and len(p) <= 9 for p in parts):
        raise BadInput(f"{where} {value[:40]!r} is not a MAJOR.MINOR.PATCH version")
    return int(parts[0]), int(parts[1]), int(parts[2])


def check_schema_major(version: Any, where: str) -> None:
    """Refuse a report schema whose major version this provscan does not read."""
    major = schema_version_parts(version, where)[0]
    supported = schema_version_parts(SCHEMA_VERSION, "SCHEMA_VERSION")[0]
    if major != supported:
        raise BadInput(
            f"report schema {version} is not supported (this provscan reads {supported}.x)"
        )
