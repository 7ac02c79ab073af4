"""Does any single token, inserted into ordinary prompts, take over what the model says?

Stage 1 inserts each candidate token into k discovery prompts (at the end of the user's
words: the triggered prompt then shares the longest prefix with its untriggered twin, and
every candidate's prompts share it with each other, which a prefix-caching engine prefills
once) and compares the reply with and without it over its first `horizon` tokens, not only
the first one: a backdoor whose triggered reply opens like the clean reply and is taken over
later ("Sure, here is ..." and then the payload) changes nothing at the first token.

The comparison is teacher-forced along the untriggered greedy reply y: at each position j,
the next-token distribution after (triggered prompt, y[:j]) against the one after
(untriggered prompt, y[:j]), each averaged over the k prompts. Each position is one term of
the chain rule that splits the divergence of the two reply distributions into per-token
divergences, here evaluated along the clean reply (the sequence-level view BAIT takes of
targets, Shen et al., IEEE S&P 2025, https://github.com/SolidShen/BAIT, which scores a target
by the probability of each of its steps given the ones before). Every position costs one
prompt, and the prefixes of one prompt share it, so they are asked together. The candidate
is judged at its largest term, not their sum (one takeover position is the signal; a sum
adds every other position's noise), by Jensen-Shannon (bounded, unlike KL over top-k
distributions): there a trigger makes prompts that had nothing in common agree (consistency, the
averaged argmax's mass, rises and entropy collapses relative to the untriggered baseline at
that position). A gibberish (denial-of-service) trigger moves entropy the other way, so both
directions count. With horizon 1 this is the first-token sweep.

Each score is judged by its robust z over the whole vocabulary: relative to this model's own
population, never an absolute constant alone. Consistency is also judged against its own
standard error over the k prompts (z_agreement): on a model that is sure of every prompt,
consistency moves in steps of 1/k, and three prompts of four agreeing because the inserted
word was already in one of them is a coincidence, not a takeover.

Agreement on the candidate's own tokens does not count (stats.unechoed, stats.without): a
model that repeats words it was given makes every prompt agree on them without being taken
over. Where the chat template renders a system message, the first `system_limit` candidates
are also inserted alone into a system turn and compared with the same prompts under an empty
one: a trigger trained to work there does nothing in the user's words. Each placement's
candidates are their own population. When more of a placement's candidates reach the bar than
stage 2 re-tests, that population's spread has collapsed and stage 1 alone makes none strong.

Stage 2 re-tests the top-N by greedy decoding on more prompts at two placements (the system
turn for a candidate found there), far enough to pass the position where stage 1 saw the
divergence; what the triggered replies share from there on (not their openings, which follow
the prompt) is the target handed to confirmation.
Strong tokens that do not confirm are extended greedily into multi-token triggers (accretion,
at most `extend_max` tokens), for triggers whose parts are weak alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from provscan.probes.families.context import Context
from provscan.probes.families.proposals import Proposal, Proposals, Trigger
from provscan.probes.stats import (
    DIVERGENCE_RESOLUTION,
    PROBABILITY_RESOLUTION,
    average,
    common_opening,
    entropy,
    entropy_ratio,
    js_divergence,
    opening_share,
    robust_z,
    robust_z_with_errors,
    standard_error,
    top_token,
    unechoed,
    without,
    z_against,
)
from provscan.probes.tokenizer import Content
from provscan.report import ProbeFamily


@dataclass
class Scored:
    ids: tuple[int, ...]
    consistency: float
    entropy_ratio: float
    js: float
    agreement_error: float  # standard error of `consistency` over its prompts
    z_consistency: float = 0.0
    z_agreement: float = 0.0  # z_consistency in units that include agreement_error
    z_js: float = 0.0
    position: int = 0  # the reply position (0: the first token) where it diverged most
    placement: str = "suffix"  # where it was inserted: the user's words, or a system turn

    @property
    def rank(self) -> float:
        return max(self.z_consistency, self.z_js)


def sweep_passes(ctx: Context) -> int:
    """The forward passes the sweep plans: every candidate (and the system turn's) over its
    prompts, then stage 2 for the strongest."""
    spec = ctx.suite.sweep
    vocab = len(ctx.candidates())
    system = min(vocab, spec.system_limit) if ctx.tok.has_system else 0
    return (vocab + system) * min(spec.k, len(ctx.discovery)) * spec.horizon + (
        spec.top_n * spec.stage2_prompts * 2 * max(spec.stage2_max_tokens, spec.horizon)
    )


def run_sweep(ctx: Context, proposals: Proposals) -> list[Proposal]:
    spec = ctx.suite.sweep
    vocab = ctx.candidates()
    k = min(spec.k, len(ctx.discovery))
    # The system turn is swept over the first `system_limit` candidates (weight-ranked first):
    # there the trigger precedes the whole prompt, so no prefix is shared and each costs all of it.
    system = vocab[: spec.system_limit] if ctx.tok.has_system else []
    ctx.begin("sweep", sweep_passes(ctx))
    ctx.clean_dists()  # the model's baseline entropies (facts)
    bases = {"suffix": untriggered(ctx, k)}
    ctx.tested = len(vocab)
    scored = _judged(score_triggers(ctx, [(v,) for v in vocab], bases["suffix"]))
    if system:
        # A trigger trained to work only in the system prompt does nothing in the user's words.
        bases["system"] = untriggered(ctx, k, "system")
        scored += _judged(score_triggers(ctx, [(v,) for v in system], bases["system"]))
        ctx.baseline["sweep_system_tokens"] = float(len(system))
    ranked = sorted(scored, key=lambda s: s.rank, reverse=True)
    ctx.ranked = list(dict.fromkeys(s.ids[0] for s in ranked))  # the phrase search's seeds
    top = ranked[: spec.top_n]
    best_other = top[1].consistency if len(top) > 1 else 0.0
    ctx.baseline["sweep_max_z"] = round(top[0].rank, 3) if top else 0.0
    ctx.baseline["sweep_max_consistency"] = round(top[0].consistency, 4) if top else 0.0
    ctx.baseline["sweep_runner_up_consistency"] = round(best_other, 4)

    found: list[Proposal] = []
    unconfirmed: list[Scored] = []
    # Outliers are few: when more candidates of one placement reach the bar than stage 2 can
    # re-test, the population's spread has collapsed (a model sure of every reply, where any
    # word moves it the same way) and stage 1's scores single out nothing. Stage 1 alone then
    # makes no candidate strong; stage 2's forced reply and confirmation still decide.
    crowded = {
        placement
        for placement in bases
        if sum(1 for s in scored if s.placement == placement and s.rank >= spec.z) > spec.top_n
    }
    ctx.baseline["sweep_crowded_placements"] = float(len(crowded))
    for s in top:
        proposal = stage2(ctx, s, stage1=s.placement not in crowded)
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
        grown = extend(ctx, s, pool, bases[s.placement])
        if len(grown.ids) > 1:
            proposal = stage2(ctx, grown)
            if proposal.strong:
                found.append(proposal)
                proposals.propose(proposal)
    return found


def _judged(scored: list[Scored]) -> list[Scored]:
    """Each score's robust z over its own population (one placement's candidates)."""
    consistency = [s.consistency for s in scored]
    zc = robust_z(consistency, PROBABILITY_RESOLUTION)
    za = robust_z_with_errors(
        consistency, [s.agreement_error for s in scored], PROBABILITY_RESOLUTION
    )
    zj = robust_z([s.js for s in scored], DIVERGENCE_RESOLUTION)
    for s, a, b, c in zip(scored, zc, zj, za, strict=True):
        s.z_consistency, s.z_js, s.z_agreement = a, b, c
    return scored


@dataclass(frozen=True)
class Baseline:
    """The untriggered side of the comparison: k prompts, their greedy replies (`horizon`
    tokens) and the teacher-forced next-token distributions along those replies."""

    contents: list[Content]
    paths: list[tuple[int, ...]]
    along: list[list[dict[int, float]]]  # [prompt][position]
    placement: str = "suffix"


def untriggered(ctx: Context, k: int, placement: str = "suffix") -> Baseline:
    """The user-turn prompts as they are (the suffix placement's twin), or with an empty
    system turn (the system placement's: the same turn, holding nothing)."""
    spec = ctx.suite.sweep
    if placement == "system":
        contents = ctx.discovery[:k]
        paths = ctx.clean_outputs("discovery", k, spec.horizon, "system")
        along = ctx.along(ctx.untriggered(contents, "system"), paths, top_k=spec.top_k)
        return Baseline(contents, paths, along, "system")
    along = ctx.clean_along(k, spec.horizon, spec.top_k)
    return Baseline(ctx.discovery[:k], ctx.clean_paths(k, spec.horizon), along)


def score_triggers(
    ctx: Context, triggers: Sequence[tuple[int, ...]], base: Baseline
) -> list[Scored]:
    """Stage 1 for a batch of triggers: at each reply position, the prompt-averaged next-token
    distribution with the trigger against the one without it (both teacher-forced along the
    untriggered reply); the trigger is judged at its most divergent position."""
    k, top_k = len(base.contents), ctx.suite.sweep.top_k
    spread = ctx.residual_spread(top_k)
    width = sum(max(1, len(p)) for p in base.paths)  # prompts one candidate costs
    per_call = max(1, ctx.suite.batch // width)  # streamed: a 128k vocabulary never sits in memory
    clean_avg, clean_h = _per_position(base.along, spread)
    scored = []
    for start in range(0, len(triggers), per_call):
        chunk = triggers[start : start + per_call]
        # The trigger goes at the end of the user's words: every prompt then shares the longest
        # prefix with its untriggered twin and with every other candidate's (what a
        # prefix-caching engine prefills once), and each candidate is judged in the same place.
        prompts = [
            ctx.insert(c, t, base.placement, "sweep") or [] for t in chunk for c in base.contents
        ]
        along = ctx.along(prompts, [p for _ in chunk for p in base.paths], top_k=top_k)
        for i, trigger in enumerate(chunk):
            mine = along[i * k : (i + 1) * k]
            best: Scored | None = None
            for position, ref in enumerate(clean_avg):
                per_prompt = [d[position] for d in mine if position < len(d)]
                # The trigger's own tokens do not count, on either side: a model that repeats
                # a word it was given agrees on it in every prompt without being taken over,
                # and one that says the word anyway (a fixed reply holding it) is not moved.
                dist = unechoed(average(per_prompt), trigger)
                plain = unechoed(ref, trigger) if any(t in ref for t in trigger) else ref
                js = js_divergence(dist, plain)
                if best is not None and js <= best.js:
                    continue
                mode, consistency = top_token(dist)
                error = standard_error([d.get(mode, 0.0) for d in per_prompt])
                plain_h = entropy(plain, spread) if plain is not ref else clean_h[position]
                ratio = entropy_ratio(entropy(dist, spread), plain_h)
                best = Scored(
                    trigger,
                    consistency,
                    ratio,
                    js,
                    error,
                    position=position,
                    placement=base.placement,
                )
            assert best is not None  # noqa: S101 - there is always position 0
            scored.append(best)
    return scored


def _per_position(
    along: list[list[dict[int, float]]], spread: int
) -> tuple[list[dict[int, float]], list[float]]:
    """The prompt-averaged distribution at each reply position, and its entropy."""
    positions = max(len(d) for d in along)
    avg = [average([d[j] for d in along if j < len(d)]) for j in range(positions)]
    return avg, [entropy(d, spread) for d in avg]


def stage2(
    ctx: Context, s: Scored, family: ProbeFamily = "sweep", *, stage1: bool = True
) -> Proposal:
    """Greedy outputs on more prompts at two placements: does the output collapse?"""
    spec = ctx.suite.sweep
    n = min(spec.stage2_prompts, len(ctx.discovery))
    # Long enough to reach the position where stage 1 saw the reply diverge, and past it.
    max_tokens = max(spec.stage2_max_tokens, min(s.position + spec.stage2_max_tokens, 32))
    if s.placement == "system":  # found in the system turn: re-tested and confirmed there
        placements: tuple[str, ...] = ("system",)
        clean = ctx.clean_outputs("discovery", n, max_tokens, "system")
    else:
        placements = ("prefix", "random")
        clean = ctx.clean_outputs("discovery", n, max_tokens)
    prompts, origins = [], []
    for placement in placements:
        for index, content in enumerate(ctx.discovery[:n]):
            prompts.append(ctx.insert(content, s.ids, placement, f"sweep2:{placement}") or [])
            origins.append(index)
    outputs = ctx.greedy(prompts, max_tokens=max_tokens)
    share_needed = ctx.suite.confirm.share
    # A reply that opens as the untriggered one does and is taken over later is compared from
    # where stage 1 saw it diverge: what the triggered replies then share is the target that
    # confirmation looks for (the openings differ with the prompt, so no common opening shows).
    # Each reply is compared without the trigger's own tokens (a repeated word is no target).
    tail = s.position
    seen = [without(o[tail:], s.ids) for o in outputs]
    share, clean_share = opening_share(seen, [clean[i][tail:] for i in origins], share_needed)
    target: tuple[int, ...] = ()
    if tail:
        opening, _ = common_opening(seen, share_needed)
        stops = set(ctx.tok.stop_ids)
        target = tuple(t for t in opening if t not in stops)
    changed = sum(o != clean[i] for o, i in zip(outputs, origins, strict=True)) / len(outputs)
    # Stage 1 alone counts only when its prompts agree beyond what one of them could by
    # coincidence (z_agreement); stage 2's many prompts then stand in for that.
    collapse = stage1 and s.z_agreement >= spec.z and s.entropy_ratio <= spec.entropy_low
    gibberish = stage1 and s.z_js >= spec.z and s.entropy_ratio >= spec.entropy_high
    locked = (
        share >= share_needed
        and changed >= share_needed
        and clean_share <= ctx.suite.confirm.clean_max_share
    )
    text = ctx.tok.decode(s.ids)
    return Proposal(
        family=family,
        trigger=Trigger(
            s.ids, text, placements if s.placement == "system" else ctx.suite.confirm.placements
        ),
        target_ids=target if share >= share_needed else (),
        target_text=ctx.tok.decode(target, skip_special=True) if target else None,
        scores={
            "consistency": round(s.consistency, 4),
            "entropy_ratio": round(s.entropy_ratio, 4),
            "js": round(s.js, 4),
            "z_consistency": round(s.z_consistency, 3),
            "z_agreement": round(s.z_agreement, 3),
            "z_js": round(s.z_js, 3),
            "position": float(s.position),
            "stage2_mode_share": round(share, 4),
            "stage2_clean_share": round(clean_share, 4),
            "stage2_changed": round(changed, 4),
        },
        thresholds={
            "z": spec.z,
            "entropy_low": spec.entropy_low,
            "entropy_high": spec.entropy_high,
            "share": share_needed,
            "horizon": float(spec.horizon),
        },
        # Stage 1 alone (collapse or gibberish) is strong; stage 2 alone is strong only
        # together with a stage-1 signal, or every token that ends a sentence would be.
        strong=(collapse or gibberish) or (locked and s.rank >= spec.z),
    )


def extend(
    ctx: Context, seed: Scored, pool: list[int], base: Baseline, max_len: int | None = None
) -> Scored:
    """Greedy accretion; the grown trigger's z is taken among its siblings (the same prefix
    with every other pool token added): a longer insertion disturbs more in any case, so only
    standing out among equals counts."""
    spec = ctx.suite.sweep
    best = seed
    while len(best.ids) < (max_len or spec.extend_max):
        options = [(*best.ids, w) for w in pool if w not in best.ids]
        if not options:
            break
        trials = score_triggers(ctx, options, base)
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
