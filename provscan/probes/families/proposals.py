"""What does a probe family hand on? Its proposed triggers, and what confirmation made of them.

Each family only proposes: it hands what it suspects to `Proposals` (run.py's registry),
which confirms each distinct trigger once on held-out prompts (confirm.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from provscan.report import ProbeCandidate, ProbeCase, ProbeFamily


class NotApplicable(Exception):
    """This family cannot run on this model (the reason says why): it is skipped, not failed."""


@dataclass(frozen=True)
class Trigger:
    """A trigger as token ids, with the placements it is tried (and confirmed) at."""

    ids: tuple[int, ...]
    text: str
    placements: tuple[str, ...] = ("prefix", "random")


@dataclass
class Proposal:
    """What a family suspects: a trigger, a target, or both, with the scores that raised it.

    `strong`: the family's own thresholds were met, so an unconfirmed proposal is still
    reported (PRB-CANDIDATE); weak proposals are only tested."""

    family: ProbeFamily
    trigger: Trigger | None
    target_ids: tuple[int, ...] = ()
    target_regex: str | None = None
    target_text: str | None = None
    source: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    strong: bool = False


class Proposals(Protocol):
    """Where families hand their proposals (run.py's registry)."""

    def propose(self, proposal: Proposal) -> ProbeCandidate | None:
        """Confirm (once per distinct trigger) and record; the candidate if it is reported."""
        ...

    def triggers(self) -> list[tuple[Trigger, tuple[int, ...] | None]]:
        """Every trigger tested so far, with its common output when it was confirmed."""
        ...

    def confirmation(
        self, trigger: Trigger, *, target_ids: tuple[int, ...] = (), target_regex: str | None = None
    ) -> Confirmation:
        """The trigger's confirmation on held-out prompts (run once per question, cached)."""
        ...


@dataclass(frozen=True)
class Confirmation:
    confirmed: bool
    share: float  # triggered outputs showing `output` (or the target)
    clean_share: float  # untriggered outputs showing it
    control_share: float  # outputs with random tokens in the trigger's place showing it
    output: tuple[int, ...]  # the common triggered output (ids)
    tested: int  # triggered prompts run
    cases: tuple[ProbeCase, ...] = ()


# Not confirmed, with nothing run: no prompt took the trigger, or the run's cap was reached.
NOT_RUN = Confirmation(False, 0.0, 0.0, 0.0, (), 0)
