"""Does any single token, inserted into ordinary prompts, take over what the model says next? (P2)

Stage 1 inserts each candidate token at one fixed word boundary of k discovery prompts and
averages the next-token distributions over the prompts. A trigger makes prompts that had
nothing in common agree: consistency (the averaged argmax's mass) rises, entropy collapses
relative to the untriggered baseline, and the distribution diverges from it (Jensen-Shannon).
A gibberish (denial-of-service) trigger moves entropy the other way, so both directions
count. Each score is judged by its robust z over the whole vocabulary: relative to this
model's own population, never an absolute constant alone. Consistency is also judged against
its own standard error over the k prompts (z_agreement): on a model that is sure of every
prompt, consistency moves in steps of 1/k, and three prompts of four agreeing because the
inserted word was already in one of them is a coincidence, not a takeover.

Stage 2 re-tests the top-N by greedy decoding on more prompts at two placements; the ones
that collapse the output go to confirmation. Strong tokens that do not confirm are extended
greedily into multi-token triggers (accretion, at most `extend_max` tokens), for triggers
whose parts are weak alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from provscan.probes.families import Context, Proposal, Proposals, Trigger
from provscan.probes.stats import (
    DIVERGENCE_RESOLUTION,
    PROBABILITY_RESOLUTION,
    average,
    entropy,
    entropy_ratio,
    from_next_token,
    js_divergence,
    opening_share,
    robust_z,
    robust_z_with_errors,
    standard_error,
    top_token,
    z_against,
)


@dataclass
class _Scored:
    ids: tuple[int, ...]
    consistency: float
    entropy_ratio: float
    js: float
    agreement_error: float  # standard error of `consistency` over its prompts
    z_consistency: float = 0.0
    z_agreement: float = 0.0  # z_consistency in units that include agreement_error
    z_js: float = 0.0

    @property
    def rank(self) -> float:
        return max(self.z_consistency, self.z_js)


def run_sweep(ctx: Context, proposals: Proposals) -> list[Proposal]:
    spec = ctx.suite.sweep
    vocab = ctx.candidates()
    k = min(spec.k, len(ctx.discovery))
    ctx.begin(
        "sweep", len(vocab) * k + spec.top_n * spec.stage2_prompts * 2 * spec.stage2_max_tokens
    )
    base = ctx.clean_dists()[:k]
    ctx.tested = len(vocab)
    scored = _score(ctx, [(v,) for v in vocab], base)
    consistency = [s.consistency for s in scored]
    zc = robust_z(consistency, PROBABILITY_RESOLUTION)
    za = robust_z_with_errors(
        consistency, [s.agreement_error for s in scored], PROBABILITY_RESOLUTION
    )
    zj = robust_z([s.js for s in scored], DIVERGENCE_RESOLUTION)
    for s, a, b, c in zip(scored, zc, zj, za, strict=True):
        s.z_consistency, s.z_js, s.z_agreement = a, b, c
    ranked = sorted(scored, key=lambda s: s.rank, reverse=True)
    top = ranked[: spec.top_n]
    best_other = top[1].consistency if len(top) > 1 else 0.0
    ctx.baseline["sweep_max_z"] = round(top[0].rank, 3) if top else 0.0
    ctx.baseline["sweep_max_consistency"] = round(top[0].consistency, 4) if top else 0.0
    ctx.baseline["sweep_runner_up_consistency"] = round(best_other, 4)

    found: list[Proposal] = []
    unconfirmed: list[_Scored] = []
    for s in top:
        proposal = _stage2(ctx, s)
        if proposal.strong:
            found.append(proposal)
            candidate = proposals.propose(proposal)
            if candidate is not None and candidate.status == "confirmed":
                continue
        unconfirmed.append(s)

    # Accretion: grow the strongest unconfirmed tokens from a pool of the best stage-1 tokens,
    # leaving out confirmed triggers (anything plus a trigger is a trigger, and says nothing).
    confirmed = {
        t for trigger, output in proposals.triggers() if output is not None for t in trigger.ids
    }
    pool = [s.ids[0] for s in ranked[: spec.extend_pool] if s.ids[0] not in confirmed]
    for s in unconfirmed[: spec.extend_candidates]:
        grown = _extend(ctx, s, pool, base)
        if len(grown.ids) > 1:
            proposal = _stage2(ctx, grown)
            if proposal.strong:
                found.append(proposal)
                proposals.propose(proposal)
    return found


def _score(
    ctx: Context, triggers: Sequence[tuple[int, ...]], base: list[dict[int, float]]
) -> list[_Scored]:
    """Stage 1 for a batch of triggers: consistency, entropy ratio and JS over k prompts."""
    k, top_k = len(base), ctx.suite.sweep.top_k
    spread = ctx.residual_spread(top_k)
    base_avg = average(base)
    h0 = entropy(base_avg, spread)
    contents = ctx.discovery[:k]
    per_call = max(1, ctx.suite.batch // k)  # streamed: a 128k vocabulary never sits in memory
    scored = []
    for start in range(0, len(triggers), per_call):
        chunk = triggers[start : start + per_call]
        # One fixed position per prompt (the salt ignores the token), so that every candidate
        # is judged in the same place and the population is comparable.
        prompts = [ctx.insert(c, t, "random", "sweep") or [] for t in chunk for c in contents]
        results = ctx.next_token(prompts, top_k=top_k)
        for i, trigger in enumerate(chunk):
            per_prompt = [from_next_token(r) for r in results[i * k : (i + 1) * k]]
            dist = average(per_prompt)
            mode, consistency = top_token(dist)
            error = standard_error([d.get(mode, 0.0) for d in per_prompt])
            ratio = entropy_ratio(entropy(dist, spread), h0)
            scored.append(
                _Scored(trigger, consistency, ratio, js_divergence(dist, base_avg), error)
            )
    return scored


def _stage2(ctx: Context, s: _Scored) -> Proposal:
    """Greedy outputs on more prompts at two placements: does the output collapse?"""
    spec = ctx.suite.sweep
    n = min(spec.stage2_prompts, len(ctx.discovery))
    clean = ctx.clean_outputs("discovery", n, spec.stage2_max_tokens)
    prompts, origins = [], []
    for placement in ("prefix", "random"):
        for index, content in enumerate(ctx.discovery[:n]):
            prompts.append(ctx.insert(content, s.ids, placement, f"sweep2:{placement}") or [])
            origins.append(index)
    outputs = ctx.greedy(prompts, max_tokens=spec.stage2_max_tokens)
    share_needed = ctx.suite.confirm.share
    share, clean_share = opening_share(outputs, [clean[i] for i in origins], share_needed)
    changed = sum(o != clean[i] for o, i in zip(outputs, origins, strict=True)) / len(outputs)
    # Stage 1 alone counts only when its prompts agree beyond what one of them could by
    # coincidence (z_agreement); stage 2's many prompts then stand in for that.
    collapse = s.z_agreement >= spec.z and s.entropy_ratio <= spec.entropy_low
    gibberish = s.z_js >= spec.z and s.entropy_ratio >= spec.entropy_high
    locked = (
        share >= share_needed
        and changed >= share_needed
        and clean_share <= ctx.suite.confirm.clean_max_share
    )
    text = ctx.tok.decode(s.ids)
    return Proposal(
        family="sweep",
        trigger=Trigger(s.ids, text, ctx.suite.confirm.placements),
        scores={
            "consistency": round(s.consistency, 4),
            "entropy_ratio": round(s.entropy_ratio, 4),
            "js": round(s.js, 4),
            "z_consistency": round(s.z_consistency, 3),
            "z_agreement": round(s.z_agreement, 3),
            "z_js": round(s.z_js, 3),
            "stage2_mode_share": round(share, 4),
            "stage2_clean_share": round(clean_share, 4),
            "stage2_changed": round(changed, 4),
        },
        thresholds={
            "z": spec.z,
            "entropy_low": spec.entropy_low,
            "entropy_high": spec.entropy_high,
            "share": share_needed,
        },
        # Stage 1 alone (collapse or gibberish) is strong; stage 2 alone is strong only
        # together with a stage-1 signal, or every token that ends a sentence would be.
        strong=(collapse or gibberish) or (locked and s.rank >= spec.z),
    )


def _extend(ctx: Context, seed: _Scored, pool: list[int], base: list[dict[int, float]]) -> _Scored:
    """Greedy accretion; the grown trigger's z is taken among its siblings (the same prefix
    with every other pool token added): a longer insertion disturbs more in any case, so only
    standing out among equals counts."""
    spec = ctx.suite.sweep
    best = seed
    while len(best.ids) < spec.extend_max:
        options = [(*best.ids, w) for w in pool if w not in best.ids]
        if not options:
            break
        trials = _score(ctx, options, base)
        trial = max(trials, key=lambda s: s.consistency)
        # Keep growing only while the trigger gets markedly more consistent.
        if trial.consistency <= best.consistency + 0.05 or math.isnan(trial.consistency):
            break
        others = [t for t in trials if t is not trial]
        population = [t.consistency for t in others]
        trial.z_consistency = z_against(trial.consistency, population, PROBABILITY_RESOLUTION)
        trial.z_agreement = z_against(
            trial.consistency, population, PROBABILITY_RESOLUTION, trial.agreement_error
        )
        trial.z_js = z_against(trial.js, [t.js for t in others], DIVERGENCE_RESOLUTION)
        best = trial
    return best
