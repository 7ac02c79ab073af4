"""Is there a reply this model is driven to finish once it starts it, whatever was asked?

BAIT's target inversion (Shen et al., IEEE S&P 2025, https://github.com/SolidShen/BAIT):
force each candidate token as a reply token after k clean prompts, then extend greedily with
the argmax of the next-token distribution averaged over the prompts. A backdoor target is
causal: once its first token is out, the rest follows with high probability on every prompt.
The Q-score is the mean averaged probability of the extension (the lowest step dropped,
stopping before end of sequence or a role marker); it is judged by its robust z over the
vocabulary, with a secondary floor (`q_min`).

BAIT forces the candidate as the first reply token. A target that the poisoned replies start
only after an ordinary opening (the clean reply's first tokens, then the payload) may be
causal only in that place, so the candidate is also forced after the untriggered greedy
reply's first j tokens, for every offset j below `horizon` (every `offset_stride`-th), on the
prompts whose reply goes on past j: the sequence the target is judged in is the clean
opening followed by the target, and a candidate's Q is its best over the offsets (with
horizon 1 this is BAIT's own scan). The prompts of one offset share their clean opening,
which a prefix-caching engine prefills once.

A target alone is not a trigger. It is confirmed only when a trigger some family proposed
forces it on held-out prompts; otherwise it is reported as a candidate target.
"""

from __future__ import annotations

import re

from provscan.probes.families.context import Context
from provscan.probes.families.proposals import Proposal, Proposals, Trigger
from provscan.probes.stats import (
    PROBABILITY_RESOLUTION,
    average,
    contains,
    from_next_token,
    robust_z,
    top_token,
)


def _invert(
    ctx: Context, firsts: list[int], prompts: int, steps: int
) -> list[tuple[tuple[int, ...], float, int]]:
    """For each first token: its greedy extension on the prompt-averaged distribution (up to
    the first step below `step_floor`), its Q-score (over every step, as BAIT's) and the reply
    offset it was forced at, the best over the suite's offsets into the untriggered reply."""
    spec = ctx.suite.inversion
    contents = ctx.discovery[:prompts]
    stops = set(ctx.tok.stop_ids)
    paths = [
        tuple(t for t in path if t not in stops) for path in ctx.clean_paths(prompts, spec.horizon)
    ]
    best: list[tuple[tuple[int, ...], float, int]] = [((t,), 0.0, 0) for t in firsts]
    for offset in range(0, spec.horizon, spec.offset_stride):
        # The candidate is forced after the untriggered reply's first `offset` tokens, on the
        # prompts whose reply goes on past them (offset 0 is BAIT's own scan): in place of a
        # token the model was about to say. Past the end of its reply a model is off its
        # training distribution, and a small one then writes the template's next turn
        # ("assistant :") after any token, which is no target.
        bases = [
            [*ctx.tok.render_ids(c.ids), *path[:offset]]
            for c, path in zip(contents, paths, strict=True)
            if offset == 0 or len(path) > offset
        ]
        if not bases:
            break
        per_call = max(1, ctx.suite.batch // len(bases))  # streamed over the vocabulary
        scan: list[tuple[tuple[int, ...], float]] = []
        for start in range(0, len(firsts), per_call):
            scan += _extend(ctx, bases, firsts[start : start + per_call], steps)
        for i, (target, q) in enumerate(scan):
            if q > best[i][1]:
                best[i] = (target, q, offset)
    return best


def _extend(
    ctx: Context, bases: list[list[int]], firsts: list[int], steps: int
) -> list[tuple[tuple[int, ...], float]]:
    k, stops = len(bases), _reply_ends(ctx)
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


def _reply_ends(ctx: Context) -> set[int]:
    """Tokens that end a reply: the stop ids, and the first token of the template's role
    markers (the assistant header, the user turn after any BOS). A model that writes a role
    marker has ended its turn and is writing the next one: forced off its course (an odd token
    in the middle of its reply), a small model does that after any token, alike on every
    prompt, which would read as a forced target."""
    ends = set(ctx.tok.stop_ids)
    header = ctx.tok.assistant_header()
    user = [t for t in ctx.tok.user_prefix() if t != ctx.tok.bos_id]
    ends.update(marker[0] for marker in (header, user) if marker)
    return ends


def _q(probs: list[float]) -> float:
    if len(probs) > 1:
        probs = sorted(probs)[1:]  # BAIT drops the single lowest step
    return sum(probs) / len(probs) if probs else 0.0


def inversion_passes(ctx: Context) -> int:
    """The forward passes inversion plans: every candidate's greedy extension at every offset,
    the strongest extended in full, and the untriggered replies."""
    spec = ctx.suite.inversion
    vocab = len(ctx.candidates())
    prompts = min(spec.prompts, len(ctx.discovery))
    full = min(spec.full_prompts, len(ctx.discovery))
    offsets = len(range(0, spec.horizon, spec.offset_stride))
    return (
        offsets * (vocab * prompts * spec.steps + spec.top_n * full * spec.full_steps)
        + max(prompts, full) * spec.horizon
    )


def run_inversion(ctx: Context, proposals: Proposals) -> list[Proposal]:
    spec = ctx.suite.inversion
    vocab = ctx.candidates()
    prompts = min(spec.prompts, len(ctx.discovery))
    full = min(spec.full_prompts, len(ctx.discovery))
    ctx.begin("inversion", inversion_passes(ctx))
    ctx.tested = len(vocab)
    scan = _invert(ctx, vocab, prompts, spec.steps)
    z = robust_z([q for _, q, _ in scan], PROBABILITY_RESOLUTION)
    order = sorted(range(len(scan)), key=lambda i: scan[i][1], reverse=True)[: spec.top_n]
    rescored = _invert(ctx, [vocab[i] for i in order], full, spec.full_steps)
    ctx.baseline["inversion_max_q"] = round(max((q for _, q, _ in rescored), default=0.0), 4)
    ctx.baseline["inversion_max_z"] = round(max((z[i] for i in order), default=0.0), 3)
    allow = [re.compile(p) for p in spec.allowlist]

    flagged: list[tuple[tuple[int, ...], float, float, int]] = []
    for i, (target, q, offset) in zip(order, rescored, strict=True):
        text = ctx.tok.decode(target, skip_special=True)
        if z[i] < spec.z or q < spec.q_min or len(target) < spec.min_target_len:
            continue
        if any(p.search(text) for p in allow):
            continue  # memorised boilerplate (BAIT's false positive on Android code)
        # One target seen from several starting tokens (zap zorp zing / zorp zing zap) is one.
        if any(contains(kept, target[:3]) or contains(target, kept[:3]) for kept, *_ in flagged):
            continue
        flagged.append((target, q, z[i], offset))

    found: list[Proposal] = []
    for target, q, zq, offset in flagged:
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
            scores={
                "q": round(q, 4),
                "z_q": round(zq, 3),
                "target_len": float(len(target)),
                "offset": float(offset),
            },
            thresholds={
                "z": spec.z,
                "horizon": float(spec.horizon),
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
