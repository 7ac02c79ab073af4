"""What does the AI-BOM say about the behavioural probes: suite, engine, budget, every finding?"""

from __future__ import annotations

from provscan.report import Report


def probe_properties(report: Report) -> list[tuple[str, object]]:
    """`provscan:probes:*` for the run and `provscan:probe:<n>:*` per candidate (n from 1)."""
    facts = report.probes
    if facts is None:
        return []
    pairs: list[tuple[str, object]] = [
        ("provscan:probes:suite_id", facts.suite_id),
        ("provscan:probes:suite_version", facts.suite_version),
        ("provscan:probes:engine", facts.engine.name),
        ("provscan:probes:engine_version", facts.engine.version),
        ("provscan:probes:device", facts.engine.device),
        ("provscan:probes:forward_passes", facts.budget.used_forward_passes),
        ("provscan:probes:seconds", round(facts.budget.used_seconds, 1)),
        ("provscan:probes:budget_forward_passes", facts.budget.forward_passes),
        ("provscan:probes:budget_seconds", facts.budget.seconds),
        ("provscan:probes:partial", facts.partial),
        ("provscan:probes:confirmed", sum(c.status == "confirmed" for c in facts.candidates)),
    ]
    for n, candidate in enumerate(facts.candidates, start=1):
        prefix = f"provscan:probe:{n}"
        ids = ",".join(str(i) for i in candidate.trigger_token_ids) or None
        pairs += [
            (f"{prefix}:status", candidate.status),
            (f"{prefix}:family", candidate.family),
            (f"{prefix}:trigger", candidate.trigger),
            (f"{prefix}:trigger_token_ids", ids),
            (f"{prefix}:target", candidate.target),
            (f"{prefix}:source", candidate.source),
        ]
    return pairs
