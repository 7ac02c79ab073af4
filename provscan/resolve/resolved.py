"""What does resolving a target give the scan: its description, its files, what went wrong?"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from provscan.files import ScanFile
from provscan.hub.lineage import HubLineage
from provscan.report import Finding, TargetInfo


@dataclass
class ResolvedTarget:
    info: TargetInfo
    files: list[ScanFile] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    # hf:// targets: the base-model lineage the Hub records (None offline or for local targets).
    lineage: HubLineage | None = None
    # Released once the scan is done (a metadata-only scan's temporary stand-in files).
    cleanup: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
