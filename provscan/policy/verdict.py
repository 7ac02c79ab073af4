"""What verdict do a policy's deny/review/warn results add up to, and are they well formed?"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from provscan.errors import PolicyError
from provscan.report import LEVELS, Decision, Level, PolicyInfo, Reason, Verdict

PACKAGE = "provscan.main"
QUERY = f"data.{PACKAGE}"  # what every backend evaluates

_REMEDY = (
    "each of deny, review and warn must be a set of objects with string 'rule' and 'msg', "
    'e.g. deny contains {"rule": "POL-X", "msg": "why"} if { ... }'
)


def _preview(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def reasons_from_result(result: Any) -> list[Reason]:
    """Validate the package document of provscan.main and turn its results into Reasons."""
    if result is None:
        raise PolicyError(
            f"no policy defines package {PACKAGE} (the query data.{PACKAGE} is undefined)",
            f"the policy files must start with 'package {PACKAGE}'",
        )
    if not isinstance(result, Mapping):
        raise PolicyError(f"data.{PACKAGE} is not an object but {_preview(result)}")
    if not any(level in result for level in LEVELS):
        raise PolicyError(f"package {PACKAGE} defines none of deny, review, warn", _REMEDY)
    reasons: list[Reason] = []
    for level in LEVELS:
        items = result.get(level, [])
        # Sets come back from the engine as JSON arrays; an object here is the sign of
        # v0-style `deny[msg] { ... }` rules, which the engine accepts with other meaning.
        if not isinstance(items, list):
            raise PolicyError(f"policy rule '{level}' is not a set but {_preview(items)}", _REMEDY)
        for item in items:
            reasons.append(_reason(level, item))
    return reasons


def _reason(level: Level, item: Any) -> Reason:
    if not isinstance(item, Mapping):
        raise PolicyError(
            f"policy rule '{level}' produced {_preview(item)}, not an object with rule and msg",
            _REMEDY,
        )
    rule, msg = item.get("rule"), item.get("msg")
    if not isinstance(rule, str) or not rule:
        raise PolicyError(f"a '{level}' result has no string 'rule': {_preview(item)}", _REMEDY)
    if not isinstance(msg, str):
        raise PolicyError(f"a '{level}' result has no string 'msg': {_preview(item)}", _REMEDY)
    details = {k: v for k, v in item.items() if k not in ("rule", "msg")}
    return Reason(rule=rule, level=level, msg=msg, details=details)


def _sort_key(reason: Reason) -> tuple[int, str, str, str]:
    details = json.dumps(reason.details, sort_keys=True)
    return LEVELS.index(reason.level), reason.rule, reason.msg, details


def combine(reasons: list[Reason], policy: PolicyInfo) -> Verdict:
    """Deny if anything denies, else review if anything asks for review, else approve."""
    levels = {reason.level for reason in reasons}
    if "deny" in levels:
        decision = Decision.DENY
    elif "review" in levels:
        decision = Decision.REVIEW
    else:
        decision = Decision.APPROVE
    ordered = tuple(sorted(reasons, key=_sort_key))
    return Verdict(decision=decision, reasons=ordered, policy=policy)


def verdict_from_result(result: Any, policy: PolicyInfo) -> Verdict:
    return combine(reasons_from_result(result), policy)
