"""What does a diff consist of? The values compare.py produces and render.py shows."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from provscan.diff.snapshot import Section, Snapshot

# Version of the diff JSON document (render.py). Minor: additive; major: breaking.
DIFF_SCHEMA_VERSION = "1.0.0"


class ChangeKind(str, Enum):
    ADDED = "added"  # findings: a new finding
    REMOVED = "removed"  # findings: a resolved finding
    CHANGED = "changed"


@dataclass(frozen=True)
class Change:
    """One difference. `old`/`new` are JSON values (None where the side has nothing)."""

    kind: ChangeKind
    subject: str  # what changed: a file path, a licence key, a field name ...
    material: bool
    old: Any = None
    new: Any = None


@dataclass(frozen=True)
class SectionDiff:
    section: Section
    compared: bool
    changes: tuple[Change, ...] = ()
    reason: str | None = None  # why the section was not compared

    @property
    def material(self) -> bool:
        return any(change.material for change in self.changes)


@dataclass(frozen=True)
class Diff:
    old: Snapshot
    new: Snapshot
    sections: tuple[SectionDiff, ...]

    @property
    def material(self) -> bool:
        return any(section.material for section in self.sections)

    @property
    def changed(self) -> bool:
        return any(section.changes for section in self.sections)

    @property
    def complete(self) -> bool:
        """Every section was compared (none missing from either input)."""
        return all(section.compared for section in self.sections)
