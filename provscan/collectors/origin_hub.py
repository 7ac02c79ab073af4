"""What does the Hub add to a model's origin? Its recorded roots, and what it could not follow.

For hf:// targets the pipeline walks `base_model` on the Hub (provscan.hub.lineage); the
origin step then takes the lineage's far ends as the root models (whose publishers and
licences the model inherits) and turns each gap in the walk into a finding.
"""

from __future__ import annotations

from provscan.hub.lineage import HubLineage
from provscan.report import Finding, Severity, TargetInfo, target_finding

# Where an edge read from the Hub's model_info says it came from.
HUB_SOURCE = "hub model_info"


def hub_root_models(target: TargetInfo, hub: HubLineage | None) -> tuple[str, ...]:
    """The lineage's far ends on the Hub: roots (no base) and ancestors that could not be
    followed, which are as far as anyone can tell. Empty without Hub data or a lineage."""
    if hub is None:
        return ()
    own = (target.repo_id or "").casefold()
    ends = [r for r in hub.roots if r.casefold() != own]
    ends += [n.repo_id for n in hub.nodes if n.error is not None and n.depth > 0]
    return tuple(dict.fromkeys(ends))


def hub_lineage_findings(hub: HubLineage | None) -> list[Finding]:
    """What the Hub walk could not establish: a finding each, so the policy sees it."""
    findings = []
    for problem in hub.problems if hub is not None else ():
        if problem.startswith("cycle:"):
            rule, severity = "ORG-LINEAGE-CYCLE", Severity.MEDIUM
        elif " limit" in problem or "followed" in problem:
            rule, severity = "ORG-LINEAGE-LIMIT", Severity.LOW
        else:
            rule, severity = "ORG-LINEAGE-INCOMPLETE", Severity.MEDIUM
        message = f"base-model lineage on the Hub: {problem}"
        findings.append(target_finding(rule, severity, message, source=HUB_SOURCE))
    return findings
