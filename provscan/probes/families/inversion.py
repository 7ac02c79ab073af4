"""Is there a reply this model is driven to finish once it starts it, whatever was asked? (P3)

BAIT's target inversion (Shen et al., IEEE S&P 2025): force each candidate token as the first
reply token after k clean prompts, then extend greedily with the argmax of the next-token
distribution averaged over the prompts. A backdoor target is causal: once its first token is
out, the rest follows with high probability on every prompt. The Q-score is the mean averaged
probability of the extension (the lowest step dropped, stopping before end of sequence); it is
judged by its robust z over the vocabulary, with a secondary floor (`q_min`).

A target alone is not a trigger. It is confirmed only when a trigger some family proposed
forces it on held-out prompts; otherwise it is reported as a candidate target.
"""

from __future__ import annotations

import re

from provscan.probes.confirm import contains
from provscan.probes.families import Context, Proposal, Proposals, Trigger
from provscan.probes.stats import (
    PROBABILITY_RESOLUTION,
    average,
    from_next_token,
    robust_z,
    top_token,
)


def _invert(
    ctx: Context, firsts: list[int], prompts: int, steps: int
) -> list[tuple[tuple[int, ...], float]]:
    """For each first token: its greedy extension on the prompt-averaged distribution (up to
    the first step below `step_floor`) and its Q-score (over every step, as BAIT's)."""
    bases = [ctx.tok.render_ids(c.ids) for c in ctx.discovery[:prompts]]
    per_call = max(1, ctx.suite.batch // len(bases))  # streamed over the vocabulary
    out: list[tuple[tuple[int, ...], float]] = []
    for start in range(0, len(firsts), per_call):
        out += _extend(ctx, bases, firsts[start : start + per_call], steps)
    return out


def _extend(
    ctx: Context, bases: list[list[int]], firsts: list[int], steps: int
) -> list[tuple[tuple[int, ...], float]]:
    k, stops = len(bases), set(ctx.tok.stop_ids)
    seqs = [[t] for t in firsts]
    probs: list[list[float]] = [[] for _ in firsts]
    active = list(range(len(firsts)))
    for _ in range(steps):
        if not active:
            break
        batch = [[*b, *seqs[i]] for i in active for b in bases]
        results = ctx.next_token(batch, top_k=ctx.suite.inversion.top_k)
        still = []
        for j, i in enumerate(active):
            dist = average([from_next_token(r) for r in results[j * k : (j + 1) * k]])
            token, p = top_token(dist)
            if token in stops:
                # The target ends here (BAIT stops at EOS), and the stop is not part of it: how
                # surely a reply ends says how long replies are, which every candidate shares.
                # Counted, it lifted every ordinary token of a fixed-length task to the same Q
                # as a forced target, so that nothing stood out of the population.
                continue
            probs[i].append(p)
            seqs[i].append(token)
            still.append(i)
        active = still
    floor = ctx.suite.inversion.step_floor
    out: list[tuple[tuple[int, ...], float]] = []
    for seq, steps_p in zip(seqs, probs, strict=True):
        # The target is the confident part: it ends before the first unlikely step, so a
        # forced pair followed by the model's usual reply is not read as a long target.
        sure = next((j for j, x in enumerate(steps_p) if x < floor), len(steps_p))
        out.append((tuple(seq[: 1 + sure]), _q(steps_p)))
    return out


def _q(probs: list[float]) -> float:
    if len(probs) > 1:
        probs = sorted(probs)[1:]  # BAIT drops the single lowest step
    return sum(probs) / len(probs) if probs else 0.0


def run_inversion(ctx: Context, proposals: Proposals) -> list[Proposal]:
    spec = ctx.suite.inversion
    vocab = ctx.candidates()
    prompts = min(spec.prompts, len(ctx.discovery))
    full = min(spec.full_prompts, len(ctx.discovery))
    ctx.begin("inversion", len(vocab) * prompts * spec.steps + spec.top_n * full * spec.full_steps)
    ctx.tested = len(vocab)
    scan = _invert(ctx, vocab, prompts, spec.steps)
    z = robust_z([q for _, q in scan], PROBABILITY_RESOLUTION)
    order = sorted(range(len(scan)), key=lambda i: scan[i][1], reverse=True)[: spec.top_n]
    rescored = _invert(ctx, [vocab[i] for i in order], full, spec.full_steps)
    ctx.baseline["inversion_max_q"] = round(max((q for _, q in rescored), default=0.0), 4)
    ctx.baseline["inversion_max_z"] = round(max((z[i] for i in order), default=0.0), 3)
    allow = [re.compile(p) for p in spec.allowlist]

    flagged: list[tuple[tuple[int, ...], float, float]] = []
    for i, (target, q) in zip(order, rescored, strict=True):
        text = ctx.tok.decode(target, skip_special=True)
        if z[i] < spec.z or q < spec.q_min or len(target) < spec.min_target_len:
            continue
        if any(p.search(text) for p in allow):
            continue  # memorised boilerplate (BAIT's false positive on Android code)
        # One target seen from several starting tokens (zap zorp zing / zorp zing zap) is one.
        if any(contains(kept, target[:3]) or contains(target, kept[:3]) for kept, _, _ in flagged):
            continue
        flagged.append((target, q, z[i]))

    found: list[Proposal] = []
    for target, q, zq in flagged:
        trigger, forced = _find_trigger(ctx, proposals, target)
        # The inverted target is the part that continues itself, from whichever token the
        # scan started at (zorp zing zap... for zap zorp zing...); a trigger that forces it
        # shows the whole reply as the model gives it, which is what a person should read.
        shown = forced if len(forced) > len(target) else target
        proposal = Proposal(
            family="inversion",
            trigger=trigger,
            target_ids=shown,
            target_text=ctx.tok.decode(shown, skip_special=True),
            scores={"q": round(q, 4), "z_q": round(zq, 3), "target_len": float(len(target))},
            thresholds={
                "z": spec.z,
                "q_min": spec.q_min,
                "min_target_len": float(spec.min_target_len),
            },
            strong=True,
        )
        found.append(proposal)
        proposals.propose(proposal)
    return found


def _find_trigger(
    ctx: Context, proposals: Proposals, target: tuple[int, ...]
) -> tuple[Trigger | None, tuple[int, ...]]:
    """A trigger the other families proposed that forces this target, if any, with the output
    (stop tokens left out) it was confirmed with when that output holds the target."""
    needle = target[: min(len(target), 4)]
    tested = proposals.triggers()
    stops = set(ctx.tok.stop_ids)
    for trigger, output in tested:
        forced = tuple(t for t in output or () if t not in stops)
        # Already confirmed, and its forced output is this target (or the opening of it that
        # every prompt shared).
        if output is not None and (
            contains(forced, needle) or (len(forced) >= 2 and contains(target, forced))
        ):
            return trigger, forced
    for trigger, output in tested[: ctx.suite.confirm.max_triggers]:
        if output is None and proposals.confirmation(trigger, target_ids=target).confirmed:
            return trigger, ()
    return None, ()
