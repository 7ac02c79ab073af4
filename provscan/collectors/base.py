"""What does every collector return, and which helpers do collectors share to read their files?"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from provscan.files import ScanFile, open_scanned, read_capped
from provscan.parsing import HostileData, parse_json
from provscan.report import Finding

T = TypeVar("T")


@dataclass(frozen=True)
class Collected(Generic[T]):
    """A collector's section of the report plus its findings.

    `skipped` is set when the step did not run its checks (turned off by an option, or a
    prerequisite missing); the step is recorded as skipped with that reason, and the
    default policy denies a skipped required step. A step that simply found nothing to
    read (no model card) completes, and the absence is a finding.
    """

    value: T
    findings: tuple[Finding, ...] = ()
    skipped: str | None = None


def load_json_object(file: ScanFile, max_bytes: int) -> tuple[dict[str, Any] | None, str | None]:
    """(object, None) for a JSON object file, else (None, what is wrong with it). Bounded."""
    if file.size > max_bytes:
        return None, f"larger than {max_bytes} bytes"
    try:
        with open_scanned(file) as stream:  # bounded even if the file grew since the inventory
            raw, more = read_capped(stream, max_bytes)
        if more:
            return None, f"larger than {max_bytes} bytes"
        document = parse_json(raw)  # bounded: numbers and nesting that break json.loads
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})"
    except HostileData as exc:
        return None, exc.problem
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"not valid JSON ({exc})"
    except RecursionError:
        return None, "nested too deeply to parse"
    if isinstance(document, dict):
        return document, None
    return None, f"a JSON {type(document).__name__}, not an object"


def string_list(value: object) -> list[str]:
    """The strings of a JSON list field; anything else (a bool, a number, a map) gives none."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


# A scanner that cannot import a module, or runs out of memory, is broken itself: the step
# fails (never a pass). Any other exception is the scanned content's doing.
BROKEN_SCANNER: tuple[type[BaseException], ...] = (ImportError, MemoryError)


def isolated(
    scan: Callable[[], list[Finding]],
    failed: Callable[[Exception], list[Finding]],
    reraise: tuple[type[BaseException], ...] = (),
) -> list[Finding]:
    """scan()'s findings, or failed(exc)'s when it raises: a file, member or scanner that
    breaks is a finding for itself, and what every other one found stands. `reraise` names
    errors that belong to an enclosing reader (a tar stream that broke is the archive's)."""
    try:
        return scan()
    except BROKEN_SCANNER:
        raise
    except reraise:
        raise
    except Exception as exc:  # noqa: BLE001 - hostile content: a finding, never a crash
        return failed(exc)
