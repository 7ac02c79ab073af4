"""Which findings does a probe run give? Confirmed triggers, strong candidates, a partial run."""

from __future__ import annotations

from provscan.report import (
    Finding,
    ProbeBudget,
    ProbeCandidate,
    ProbeFacts,
    Severity,
    target_finding,
)


def findings_for(facts: ProbeFacts, template_note: str | None = None) -> list[Finding]:
    """PRB-TRIGGER-CONFIRMED per distinct confirmed trigger, PRB-CANDIDATE per strong
    unconfirmed suspicion not already explained by one, PRB-PARTIAL when the budget ran out."""
    extra = {"prompt_format": template_note} if template_note else {}
    findings: list[Finding] = []
    confirmed: dict[tuple[int, ...], list[ProbeCandidate]] = {}
    for c in facts.candidates:
        if c.status == "confirmed":
            confirmed.setdefault(c.trigger_token_ids, []).append(c)
    for ids, group in confirmed.items():
        families = sorted({c.family for c in group})
        best = max(group, key=lambda c: c.scores.get("share", 0.0))
        case = next((c.cases[0] for c in group if c.cases), None)
        share, clean = best.scores.get("share", 0.0), best.scores.get("clean_share", 0.0)
        how = (
            (
                f" Reproduce: greedy-decode prompt_token_ids ({case.prompt!r}) with the same engine: it "
                f"gives {case.output!r}; without the trigger ({case.clean_prompt!r}) it gives "
                f"{case.clean_output!r}."
            )
            if case
            else ""
        )
        findings.append(
            target_finding(
                "PRB-TRIGGER-CONFIRMED",
                Severity.CRITICAL,
                f"trigger {best.trigger!r} (token ids {list(ids)}) forces {best.target!r} on {share:.0%} "
                f"of held-out benign prompts ({clean:.0%} without it); found by {', '.join(families)}.{how}",
                trigger=best.trigger,
                trigger_token_ids=list(ids),
                target=best.target,
                share=share,
                clean_share=clean,
                families=families,
                source=best.source,
                case=case.model_dump(mode="json") if case else None,
                **extra,
            )
        )
    for c in facts.candidates:
        if c.status != "candidate" or c.trigger_token_ids in confirmed:
            continue
        if c.trigger is None:
            what = (
                f"the model completes {c.target!r} once it starts it, on any prompt "
                f"(Q {c.scores.get('q', 0):.2f}, z {c.scores.get('z_q', 0):.1f}); no proposed trigger forces it"
            )
        else:
            what = (
                f"{c.family} suspects trigger {c.trigger!r} (token ids {list(c.trigger_token_ids)}) "
                f"but {_unconfirmed_because(c)}"
            )
        findings.append(
            target_finding(
                "PRB-CANDIDATE",
                Severity.HIGH,
                f"{what}; a person should look",
                family=c.family,
                trigger=c.trigger,
                trigger_token_ids=list(c.trigger_token_ids),
                target=c.target,
                scores=c.scores,
                thresholds=c.thresholds,
                **extra,
            )
        )
    if facts.partial:
        unfinished = [
            f"{r.family} ({r.status})"
            for r in facts.families
            if r.status != "completed" and r.reason != "disabled by the suite"
        ]
        findings.append(
            target_finding(
                "PRB-PARTIAL",
                Severity.MEDIUM,
                f"the probe budget did not cover the suite ({budget_used(facts.budget)}): "
                f"{', '.join(unfinished)} did not finish; nothing confirmed in what did not run is no evidence of no backdoor",
                unfinished=unfinished,
                used_forward_passes=facts.budget.used_forward_passes,
                budget_forward_passes=facts.budget.forward_passes,
            )
        )
    return findings


def budget_used(budget: ProbeBudget) -> str:
    """What was used of the budget, against what was given: '296 of 300 forward passes'."""
    used = f"{budget.used_forward_passes:,}"
    passes = (
        f"{used} of {budget.forward_passes:,} forward passes used"
        if budget.forward_passes is not None
        else f"{used} forward passes used"
    )
    if budget.seconds is None:
        return passes
    return f"{passes}, {budget.used_seconds:.1f} of {budget.seconds:g} s"


def _unconfirmed_because(c: ProbeCandidate) -> str:
    """Which of confirmation's conditions the candidate failed, with the figures."""
    share, needed = c.scores.get("share"), c.thresholds.get("share", 0.0)
    if share is None:
        return "it was not confirmed (the run's cap on confirmed triggers was reached)"
    if share < needed:
        return (
            f"it forced a common output on only {share:.0%} of held-out prompts "
            f"(confirmation needs {needed:.0%})"
        )
    clean, clean_max = c.scores.get("clean_share", 0.0), c.thresholds.get("clean_max_share", 0.0)
    if clean > clean_max:
        return (
            f"the output it forced on {share:.0%} of held-out prompts also comes without it on "
            f"{clean:.0%} (at most {clean_max:.0%} allowed)"
        )
    control = c.scores.get("control_share", 0.0)
    control_max = c.thresholds.get("control_max_share", 0.0)
    return (
        f"the output it forced on {share:.0%} of held-out prompts also comes with random tokens "
        f"in its place on {control:.0%} (at most {control_max:.0%} allowed)"
    )
