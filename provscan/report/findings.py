"""What did a check find, how bad is it, and where does it point?"""

from __future__ import annotations

import re
from enum import Enum

from pydantic import Field, field_validator

from provscan.report.base import JsonValue, ReportModel

RULE_ID_PATTERN = r"^(INV|HSH|SIG|SER|LIC|ORG|PRB|POL)-[A-Z0-9]+(-[A-Z0-9]+)*$"
_RULE_ID_RE = re.compile(RULE_ID_PATTERN)


# How bad a finding is. The members run from the least to the most severe (a docstring
# here would change the committed JSON schema).
class Severity(str, Enum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """The severity's place in that order: 0 for info up to 4 for critical."""
        return _RANKS[self]


_RANKS = {severity: rank for rank, severity in enumerate(Severity)}
# Most severe first: the order findings are reported, kept and summarised in.
SEVERITY_ORDER: tuple[Severity, ...] = tuple(reversed(Severity))


class Location(ReportModel):
    """Where a finding points: a file, optionally a member inside it, and an offset."""

    path: str | None = None
    member: str | None = None
    offset: int | None = Field(default=None, ge=0)


class Finding(ReportModel):
    rule_id: str
    severity: Severity
    message: str
    location: Location | None = None
    evidence: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("rule_id")
    @classmethod
    def _rule_id_shape(cls, value: str) -> str:
        if not _RULE_ID_RE.match(value):
            raise ValueError(f"rule id {value!r} does not match {RULE_ID_PATTERN}")
        return value


def located_finding(
    rule_id: str, severity: Severity, message: str, location: Location, /, **evidence: JsonValue
) -> Finding:
    """A finding at a location (file, archive member, offset), evidence as keywords.

    Positional-only, so evidence may use any key (an ONNX finding records `location`).
    """
    return Finding(
        rule_id=rule_id, severity=severity, message=message, location=location, evidence=evidence
    )


def target_finding(
    rule_id: str, severity: Severity, message: str, /, **evidence: JsonValue
) -> Finding:
    """A finding about the target as a whole (its licence, its origin), not one file."""
    return Finding(rule_id=rule_id, severity=severity, message=message, evidence=evidence)


def file_finding(
    rule_id: str, severity: Severity, path: str, message: str, /, **evidence: JsonValue
) -> Finding:
    """A finding about one file of the target (the common case)."""
    return located_finding(rule_id, severity, message, Location(path=path), **evidence)
