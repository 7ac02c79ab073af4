"""What did the policy decide, and why? Its reasons, their levels, and the decision."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import Field

from provscan.report.base import JsonValue, ReportModel

Level = Literal["deny", "review", "warn"]
# The policy's levels, the most serious first: deny outweighs review, review outweighs warn.
LEVELS: tuple[Level, ...] = ("deny", "review", "warn")


class Reason(ReportModel):
    """One policy result: a rule that fired, at one level, with its message."""

    rule: str
    level: Level
    msg: str
    details: dict[str, JsonValue] = Field(default_factory=dict)


class Decision(str, Enum):
    APPROVE = "approve"
    REVIEW = "review"
    DENY = "deny"


class PolicyInfo(ReportModel):
    packs: tuple[str, ...]
    digest: str  # sha256 over the policy sources, data and effective config
    engine: str
    engine_version: str


class Verdict(ReportModel):
    decision: Decision
    reasons: tuple[Reason, ...]
    policy: PolicyInfo
