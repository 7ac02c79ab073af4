"""What does every collector receive and return?"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from provscan.report import FileFormat, Finding

T = TypeVar("T")


@dataclass(frozen=True)
class ScanFile:
    """One regular file of the target, as the resolver admitted it.

    `rel` is the name inside the target ('/'-separated); `path` is what to open: the
    file itself, or for an allowed symlink (HF cache snapshot -> blob) its resolved
    target. Escaping symlinks never become a ScanFile.
    """

    rel: str
    path: Path
    size: int
    symlink: bool = False
    in_manifest: bool = True


@dataclass(frozen=True)
class SniffedFile:
    """A ScanFile together with the format its content shows."""

    file: ScanFile
    format: FileFormat


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
