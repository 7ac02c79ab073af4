"""What snapshot does one input file, a provscan report or a CycloneDX BOM, give?"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from provscan.diff.fields import BadInput
from provscan.diff.from_bom import bom_snapshot
from provscan.diff.from_report import report_snapshot
from provscan.diff.load import detect_kind, parse_json, read_bounded
from provscan.diff.snapshot import InputKind, Snapshot
from provscan.errors import UsageError


def load_snapshot(path: Path) -> Snapshot:
    """The snapshot of one input file; UsageError (exit 2) naming the file when it is bad."""
    try:
        document = parse_json(read_bounded(path))
        return _snapshot(document, str(path))
    except BadInput as exc:
        raise UsageError(
            f"{path}: {exc}", remedy="give two provscan reports (--json) or AI-BOMs (--bom)"
        ) from exc


def _snapshot(document: Any, path: str) -> Snapshot:
    kind = detect_kind(document)
    if kind is InputKind.REPORT:
        return report_snapshot(document, path)
    return bom_snapshot(document, path)
