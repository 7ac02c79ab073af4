"""How does the AI-BOM record findings and the policy verdict (CycloneDX 1.6 attestations)?"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from cyclonedx.model.definition import Definitions, Requirement, Standard

from provscan.report import Decision, Finding, Reason, Report, Step, StepStatus, Verdict

ASSESSOR_REF = "assessor:provscan"
STANDARD_REF = "standard:provscan-admission"
ADMISSION = "ADMISSION"
ADMISSION_CLAIM_REF = "claim:admission"

# Conformance of the model with the admission policy, as CycloneDX scores it (0..1).
DECISION_SCORE = {Decision.APPROVE: 1.0, Decision.REVIEW: 0.5, Decision.DENY: 0.0}
# A warn result does not block admission, so the rule's requirement is still met.
LEVEL_SCORE = {"deny": 0.0, "review": 0.5, "warn": 1.0}


def requirement_ref(identifier: str) -> str:
    return f"requirement:{identifier}"


def _digest_short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def definitions(verdict: Verdict) -> Definitions:
    """The admission policy as a standard: one requirement per rule that fired, plus ADMISSION."""
    policy = verdict.policy
    requirements = [
        Requirement(
            bom_ref=requirement_ref(ADMISSION),
            identifier=ADMISSION,
            title="Admission",
            text="The model passes the admission policy.",
        )
    ]
    for rule in sorted({reason.rule for reason in verdict.reasons}):
        requirements.append(
            Requirement(
                bom_ref=requirement_ref(rule),
                identifier=rule,
                title=rule,
                text=f"Policy rule {rule} gives no deny or review result.",
                parent=requirement_ref(ADMISSION),
            )
        )
    standard = Standard(
        bom_ref=STANDARD_REF,
        name="provscan admission policy",
        version=_digest_short(policy.digest),
        owner="provscan",
        description=(
            f"Policy packs {', '.join(policy.packs) or '(none)'} evaluated by {policy.engine} "
            f"{policy.engine_version}; policy digest {policy.digest}."
        ),
        requirements=requirements,
    )
    return Definitions(standards=[standard])


def _json_attachment(name: str, value: dict[str, Any]) -> dict[str, Any]:
    content = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return {
        "name": name,
        "contents": {"attachment": {"content": content, "contentType": "application/json"}},
    }


def _finding_evidence(ref: str, finding: Finding, created: str) -> dict[str, Any]:
    where = ""
    if finding.location is not None and finding.location.path:
        member = f"!{finding.location.member}" if finding.location.member else ""
        where = f" ({finding.location.path}{member})"
    return {
        "bom-ref": ref,
        "propertyName": "provscan:finding",
        "description": f"{finding.severity.value} {finding.rule_id}: {finding.message}{where}",
        "data": [_json_attachment(finding.rule_id, finding.model_dump(mode="json"))],
        "created": created,
    }


def _step_evidence(ref: str, step: Step, created: str) -> dict[str, Any]:
    return {
        "bom-ref": ref,
        "propertyName": "provscan:step",
        "description": f"step {step.name} {step.status.value}: {step.reason or 'no reason given'}",
        "data": [_json_attachment(step.name, step.model_dump(mode="json"))],
        "created": created,
    }


def _claim(index: int, reason: Reason, target: str, evidence: list[str]) -> dict[str, Any]:
    claim: dict[str, Any] = {
        "bom-ref": f"claim:reason:{index}",
        "target": target,
        "predicate": f"{reason.level} {reason.rule}: {reason.msg}",
    }
    if reason.details:
        details = reason.model_dump(mode="json")["details"]
        claim["reasoning"] = json.dumps(details, sort_keys=True, ensure_ascii=False)
    if evidence:
        claim["evidence"] = evidence
    return claim


def _rationale(verdict: Verdict) -> str:
    if not verdict.reasons:
        return "No policy rule gave a deny, review or warn result."
    lines = [f"{r.level} {r.rule}: {r.msg}" for r in verdict.reasons]
    return f"Decision {verdict.decision.value} from {len(lines)} policy result(s): " + "; ".join(
        lines
    )


def _reason_evidence(
    reason: Reason, findings: list[tuple[str, Finding]], steps: list[tuple[str, Step]]
) -> list[str]:
    """Evidence behind a reason: findings with the rule's id, and a step the reason names."""
    refs = [ref for ref, finding in findings if finding.rule_id == reason.rule]
    step_name = reason.details.get("step")
    refs += [ref for ref, step in steps if step.name == step_name]
    return refs


def _evidence(
    report: Report, stamp: str
) -> tuple[list[tuple[str, Finding]], list[tuple[str, Step]], list[dict[str, Any]]]:
    """Evidence entries for findings and failed/skipped steps, with their refs."""
    findings = [(f"evidence:finding:{i}", f) for i, f in enumerate(report.findings, start=1)]
    steps: list[tuple[str, Step]] = []
    for step in report.steps:
        if step.status is not StepStatus.COMPLETED:
            # Step names are unique in practice; the index keeps refs unique if one repeats.
            ref = f"evidence:step:{step.name}"
            steps.append((ref if all(r != ref for r, _ in steps) else f"{ref}:{len(steps)}", step))
    evidence = [_finding_evidence(ref, f, stamp) for ref, f in findings]
    evidence += [_step_evidence(ref, s, stamp) for ref, s in steps]
    return findings, steps, evidence


def _attestation(verdict: Verdict, claims: list[dict[str, Any]]) -> dict[str, Any]:
    """The verdict: ADMISSION with every claim, then one map entry per rule that fired."""
    by_rule: dict[str, list[tuple[str, Reason]]] = {}
    for claim, reason in zip(claims[1:], verdict.reasons, strict=True):
        by_rule.setdefault(reason.rule, []).append((claim["bom-ref"], reason))
    admission_map = {
        "requirement": requirement_ref(ADMISSION),
        "claims": [c["bom-ref"] for c in claims],
        "conformance": {
            "score": DECISION_SCORE[verdict.decision],
            "rationale": _rationale(verdict),
        },
    }
    rule_maps = [
        {
            "requirement": requirement_ref(rule),
            "claims": [ref for ref, _ in fired],
            "conformance": {
                "score": min(LEVEL_SCORE[r.level] for _, r in fired),
                "rationale": "; ".join(f"{r.level}: {r.msg}" for _, r in fired),
            },
        }
        for rule, fired in sorted(by_rule.items())
    ]
    return {
        "summary": f"provscan verdict: {verdict.decision.value.upper()}",
        "assessor": ASSESSOR_REF,
        "map": [admission_map, *rule_maps],
    }


def declarations(report: Report, target_ref: str, created: datetime) -> dict[str, Any] | None:
    """Findings and failed/skipped steps as evidence; with a verdict, claims and an attestation."""
    findings, steps, evidence = _evidence(report, created.isoformat())
    verdict = report.verdict
    if verdict is None and not evidence:
        return None
    result: dict[str, Any] = {
        "assessors": [
            {"bom-ref": ASSESSOR_REF, "thirdParty": False, "organization": {"name": "provscan"}}
        ]
    }
    if evidence:
        result["evidence"] = evidence
    if verdict is None:
        return result
    overall: dict[str, Any] = {
        "bom-ref": ADMISSION_CLAIM_REF,
        "target": target_ref,
        "predicate": f"provscan verdict: {verdict.decision.value}",
    }
    if evidence:
        # Every piece of evidence stays reachable from the overall claim.
        overall["evidence"] = [e["bom-ref"] for e in evidence]
    claims = [overall] + [
        _claim(index, reason, target_ref, _reason_evidence(reason, findings, steps))
        for index, reason in enumerate(verdict.reasons, start=1)
    ]
    result["claims"] = claims
    result["attestations"] = [_attestation(verdict, claims)]
    return result
