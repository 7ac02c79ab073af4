"""What did the probe suite find on this model? Run the families within the budget, confirm.

Families run in a fixed order: leakage, sweep and phrase propose, replay tries the published
triggers, inversion looks for forced targets and links them to the triggers found before it.
Every proposal goes through one registry that confirms each distinct trigger once on
held-out prompts. The engine is metered, and a forward-pass budget is shared: each family may
use what is left less a floor kept for each family after it (`budget_share`), its calls are cut
to fit, and when its share runs out it ends `partial` and the next family starts. Once the
whole budget (or the time budget) is spent, the running family ends `partial`, the later ones
are `skipped` with the reason, and a PRB-PARTIAL finding says what was used of the budget and
what did not finish. An EngineError is not caught: the caller fails the probe step (never a pass).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, cast

from provscan.probes.confirm import confirm
from provscan.probes.engine import Budget, BudgetExhausted, Engine, EngineName, Metered
from provscan.probes.families.context import Context, Progress
from provscan.probes.families.inversion import inversion_passes, run_inversion
from provscan.probes.families.leakage import leakage_passes, run_leakage
from provscan.probes.families.phrase import phrase_passes, run_phrase
from provscan.probes.families.proposals import (
    NOT_RUN,
    Confirmation,
    NotApplicable,
    Proposal,
    Proposals,
    Trigger,
)
from provscan.probes.families.replay import replay_passes, run_replay
from provscan.probes.families.sweep import run_sweep, sweep_passes
from provscan.probes.findings import findings_for
from provscan.probes.stats import contains
from provscan.probes.suite import FAMILY_ORDER, Suite
from provscan.probes.tokenizer import ProbeTokenizer
from provscan.report import (
    Finding,
    ProbeBudget,
    ProbeCandidate,
    ProbeEngine,
    ProbeFacts,
    ProbeFamilyRun,
)

FAMILIES: dict[str, Callable[[Context, Proposals], list[Proposal]]] = {
    "leakage": run_leakage,
    "sweep": run_sweep,
    "phrase": run_phrase,
    "replay": run_replay,
    "inversion": run_inversion,
}


class Registry:
    """Every proposal of a run: confirmed once per (trigger, target), recorded when it counts."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.candidates: list[ProbeCandidate] = []
        self._confirmations: dict[tuple[Any, ...], Confirmation] = {}
        self._tested: dict[tuple[int, ...], tuple[Trigger, tuple[int, ...] | None]] = {}

    def triggers(self) -> list[tuple[Trigger, tuple[int, ...] | None]]:
        return list(self._tested.values())

    def confirmation(
        self, trigger: Trigger, *, target_ids: tuple[int, ...] = (), target_regex: str | None = None
    ) -> Confirmation:
        # Where it is confirmed is part of the question: a token found in the system turn and a
        # token found in the user's words are confirmed where each was found.
        key = (trigger.ids, trigger.placements, tuple(target_ids), target_regex)
        plain = self._confirmations.get((trigger.ids, trigger.placements, (), None))
        # Already confirmed with a common output that holds this target: no new passes.
        if (
            plain is not None
            and plain.confirmed
            and target_ids
            and contains(plain.output, target_ids[:4])
        ):
            self._confirmations.setdefault(key, plain)
        if key not in self._confirmations:
            if (
                trigger.ids not in self._tested
                and len(self._tested) >= self.ctx.suite.confirm.max_triggers
            ):
                return NOT_RUN  # the suite's cap: reported unconfirmed
            self.ctx.plan(len(self.ctx.held_out) * 4 * self.ctx.suite.confirm.max_tokens)
            result = confirm(self.ctx, trigger, target_ids=target_ids, target_regex=target_regex)
            self._confirmations[key] = result
            known = self._tested.get(trigger.ids)
            if known is None or (result.confirmed and known[1] is None):
                self._tested[trigger.ids] = (trigger, result.output if result.confirmed else None)
        return self._confirmations[key]

    def propose(self, proposal: Proposal) -> ProbeCandidate | None:
        conf = None
        if proposal.trigger is not None:
            conf = self.confirmation(
                proposal.trigger, target_ids=proposal.target_ids, target_regex=proposal.target_regex
            )
        confirmed = conf is not None and conf.confirmed
        if not confirmed and not proposal.strong:
            return None
        scores, thresholds = dict(proposal.scores), dict(proposal.thresholds)
        if conf is not None:
            scores.update(
                share=round(conf.share, 4),
                clean_share=round(conf.clean_share, 4),
                control_share=round(conf.control_share, 4),
            )
            thresholds.update(
                share=self.ctx.suite.confirm.share,
                clean_max_share=self.ctx.suite.confirm.clean_max_share,
                control_max_share=self.ctx.suite.confirm.control_max_share,
            )
        target = proposal.target_text
        if confirmed and conf is not None and not proposal.target_ids:
            target = self.ctx.tok.decode(conf.output, skip_special=True)
        candidate = ProbeCandidate(
            family=proposal.family,
            status="confirmed" if confirmed else "candidate",
            trigger=proposal.trigger.text if proposal.trigger else None,
            trigger_token_ids=proposal.trigger.ids if proposal.trigger else (),
            target=target,
            source=proposal.source,
            scores=scores,
            thresholds=thresholds,
            cases=conf.cases if conf is not None and confirmed else (),
        )
        self.candidates.append(candidate)
        return candidate


def run_suite(
    engine: Engine,
    tokenizer: ProbeTokenizer,
    suite: Suite,
    *,
    budget: Budget,
    progress: Progress | None = None,
    priority: Sequence[int] = (),
) -> tuple[ProbeFacts, list[Finding]]:
    """Run the suite's families on the model, within the budget: the facts and the findings.

    `progress(family, done, total)` is called as forward passes are spent (total is the
    family's estimate, an upper bound; the last call of a family has done == total).
    `priority`: token ids the weights single out, scored first by the sweep."""
    metered = Metered(engine, budget)
    ctx = Context(metered, tokenizer, suite, progress)
    ctx.priority = list(priority)
    registry = Registry(ctx)
    runs: list[ProbeFamilyRun] = []
    stopped: str | None = None
    enabled = [f for f in FAMILY_ORDER if suite.enabled(f)]
    limit = budget.forward_passes
    estimates = {f: estimate_passes(ctx, f) for f in enabled} if limit is not None else {}
    for family in FAMILY_ORDER:
        if not suite.enabled(family):
            runs.append(
                ProbeFamilyRun(family=family, status="skipped", reason="disabled by the suite")
            )
            continue
        if stopped is None and limit is not None and metered.passes >= limit:
            stopped = f"the budget ran out: all {limit:,} forward passes used"
        if stopped is not None:
            why = f"not started: {stopped}"
            runs.append(ProbeFamilyRun(family=family, status="skipped", reason=why))
            continue
        passes, start, ctx.tested = metered.passes, metered.seconds, 0
        if limit is not None:
            later = enabled[enabled.index(family) + 1 :]
            metered.share(budget_share(limit - passes, [estimates[f] for f in later]))
        work = _work(metered)
        status: Literal["completed", "partial", "skipped"] = "completed"
        reason: str | None = None
        try:
            FAMILIES[family](ctx, registry)
            ctx.finish()
        except BudgetExhausted as exc:
            status, reason = "partial", str(exc)
            if exc.whole:
                stopped = str(exc)
        except NotApplicable as exc:
            status, reason = "skipped", str(exc)
        metered.share(None)
        runs.append(
            ProbeFamilyRun(
                family=family,
                status=status,
                reason=reason,
                forward_passes=metered.passes - passes,
                seconds=round(metered.seconds - start, 3),
                candidates_tested=ctx.tested,
                **{k: v - work[k] for k, v in _work(metered).items()},
            )
        )
    ctx.baseline["chat_template_used"] = 1.0 if tokenizer.template_used else 0.0
    info = metered.info
    facts = ProbeFacts(
        suite_id=suite.id,
        suite_version=suite.version,
        engine=ProbeEngine(
            name=cast(EngineName, info.name),
            version=info.version,
            model=info.model,
            device=info.device,
            dtype=info.dtype,
        ),
        budget=ProbeBudget(
            forward_passes=budget.forward_passes,
            seconds=budget.seconds,
            used_forward_passes=metered.passes,
            used_seconds=round(metered.seconds, 3),
        ),
        partial=stopped is not None or any(r.status == "partial" for r in runs),
        families=tuple(runs),
        candidates=tuple(registry.candidates),
        baseline=dict(sorted(ctx.baseline.items())),
    )
    return facts, findings_for(facts, tokenizer.template_note)


def budget_share(left: int, later: Sequence[int]) -> int:
    """Forward passes the next family may use of the `left` in the budget, given the
    estimated needs of the families after it.

    All that is left, less a floor kept for each later family: its estimated need or half
    an equal share of what is left, whichever is less. So a budget too small for the whole
    suite is spent on every family instead of all going to the first one; a budget that
    covers every estimate cuts no family short; and as no floor is more than half an equal
    share, a budget close to what the suite really needs (the estimates take every pool at
    its largest, so they overshoot) seldom does. Each family gets at least half of what is
    left when it starts, and what it leaves unused passes on to the next."""
    if not later:
        return left
    floor = left // (2 * (len(later) + 1))
    return left - sum(min(need, floor) for need in later)


def estimate_passes(ctx: Context, family: str) -> int:
    """The forward passes a family is expected to need, from the suite and the vocabulary
    (no pass spent): the estimate each family starts its progress bar with, its pools at
    their largest (phrase's whole seed pool, every replay trigger at every placement);
    confirmation comes on top."""
    suite = ctx.suite
    if family == "leakage":
        return leakage_passes(ctx)
    if family == "sweep":
        return sweep_passes(ctx)
    if family == "phrase":
        return phrase_passes(ctx, suite.phrase.pool)
    if family == "replay":
        return replay_passes(ctx, sum(len(k.placements) for k in suite.corpus))
    return inversion_passes(ctx)


def _work(metered: Metered) -> dict[str, int]:
    """The engine-unit counters so far (a family's are the difference across its run)."""
    return {
        "prompts": metered.prompts,
        "prompt_tokens": metered.prompt_tokens,
        "prefill_tokens": metered.prefill_tokens,
        "generated_tokens": metered.generated_tokens,
    }
