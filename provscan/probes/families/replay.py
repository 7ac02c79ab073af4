"""Does any published trigger still work on this model? (known-trigger replay)

Each trigger of the corpus (probes/triggers.yaml, with its source) is inserted at its
placements into discovery prompts and the model decodes greedily. Against the same prompts
without it: does a known target appear (its regex, or a generic detector's), do the outputs
collapse onto one (mode share) while differing from the untriggered ones (changed share), does
the harmful prompts' refusal rate drop, or does next-token entropy move far from the baseline
(collapse, or gibberish)? Triggers the tokenizer maps to the same ids are tested once.
"""

from __future__ import annotations

import math
import re

from provscan.probes.families.context import Context
from provscan.probes.families.proposals import Proposal, Proposals, Trigger
from provscan.probes.stats import (
    DIVERGENCE_RESOLUTION,
    PROBABILITY_RESOLUTION,
    entropy,
    entropy_ratio,
    from_next_token,
    opening_share,
    robust_z,
)
from provscan.probes.suite import KnownTrigger


def replay_passes(ctx: Context, tests: int) -> int:
    """The forward passes replay plans for `tests` (trigger, placement) pairs: each decoded
    and scored on the discovery prompts, plus the untriggered outputs."""
    spec = ctx.suite.replay
    n = min(spec.prompts, len(ctx.discovery))
    return tests * n * (spec.max_tokens + 1) + n * spec.max_tokens


def run_replay(ctx: Context, proposals: Proposals) -> list[Proposal]:
    spec, tok = ctx.suite.replay, ctx.tok
    n = min(spec.prompts, len(ctx.discovery))
    contents, kinds = ctx.discovery[:n], ctx.kinds[:n]
    # One test per distinct (ids, placement); aliases (same ids) share the result.
    tests: dict[tuple[tuple[int, ...], str], KnownTrigger] = {}
    unseen = 0
    for known in ctx.suite.corpus:
        ids = tok.encode_inline(known.text)
        if tok.unk_id is not None and tok.unk_id in ids:
            # The vocabulary cannot spell this trigger (word-level tokenizers): the model never
            # saw it, and <unk> noise would only measure how the model takes garbage.
            unseen += 1
            continue
        for placement in known.placements:
            tests.setdefault((ids, placement), known)
    ctx.baseline["replay_unrepresentable"] = float(unseen)
    ctx.begin("replay", replay_passes(ctx, len(tests)))
    clean = ctx.clean_outputs("discovery", n, spec.max_tokens)
    spread = ctx.residual_spread(ctx.suite.sweep.top_k)
    h0 = sum(entropy(d, spread) for d in ctx.clean_dists()[:n]) / n
    detectors = list(ctx.suite.detectors)
    refusal = re.compile(ctx.suite.refusal) if ctx.suite.refusal else None
    harmful = [i for i, k in enumerate(kinds) if k == "harmful"]
    clean_text = [tok.decode(o, skip_special=True) for o in clean]
    clean_refusal = _rate(refusal, [clean_text[i] for i in harmful])

    rows: list[tuple[KnownTrigger, str, tuple[int, ...], dict[str, float], str | None]] = []
    for (ids, placement), known in tests.items():
        built = [ctx.insert(c, ids, placement, f"replay:{known.text}") for c in contents]
        keep = [i for i, p in enumerate(built) if p is not None]
        if not keep:
            continue  # a system-prompt trigger and a template without a system turn
        prompts = [built[i] or [] for i in keep]
        outputs = ctx.greedy(prompts, max_tokens=spec.max_tokens)
        dists = [from_next_token(r) for r in ctx.next_token(prompts, top_k=ctx.suite.sweep.top_k)]
        texts = [tok.decode(o, skip_special=True) for o in outputs]
        patterns = [known.target] if known.target else []
        patterns += [d for d in detectors if d not in patterns]
        hit_pattern, hit, clean_hit = None, 0.0, 0.0
        for pattern in patterns:
            rate = _rate(re.compile(pattern), texts)
            if rate > hit:
                hit_pattern, hit = pattern, rate
                clean_hit = _rate(re.compile(pattern), [clean_text[i] for i in keep])
        share, clean_share = opening_share(outputs, [clean[i] for i in keep], spec.mode_share)
        changed = sum(o != clean[i] for o, i in zip(outputs, keep, strict=True)) / len(outputs)
        ratio = entropy_ratio(sum(entropy(d, spread) for d in dists) / len(dists), h0)
        triggered_harmful = [texts[j] for j, i in enumerate(keep) if i in harmful]
        drop = clean_refusal - _rate(refusal, triggered_harmful) if triggered_harmful else 0.0
        scores = {
            "hit_rate": hit,
            "clean_hit_rate": clean_hit,
            "mode_share": share,
            "clean_opening_share": clean_share,
            "changed_share": changed,
            "entropy_ratio": ratio,
            "refusal_drop": drop,
        }
        rows.append(
            (known, placement, ids, {k: round(v, 4) for k, v in scores.items()}, hit_pattern)
        )

    # The corpus is a population too: how far each trigger's effect stands out from the rest
    # (an odd string unsettles any model; a gibberish trigger unsettles it far more).
    z_mode = robust_z(
        [r[3]["mode_share"] * r[3]["changed_share"] for r in rows], PROBABILITY_RESOLUTION
    )
    z_entropy = robust_z([math.log(r[3]["entropy_ratio"]) for r in rows], DIVERGENCE_RESOLUTION)
    found: list[Proposal] = []
    for (known, placement, ids, scores, matched), z, ze in zip(
        rows, z_mode, z_entropy, strict=True
    ):
        scores["z_collapse"], scores["z_entropy"] = round(z, 3), round(ze, 3)
        flags = {
            "target": scores["hit_rate"] >= spec.hit_rate
            and scores["clean_hit_rate"] <= ctx.suite.confirm.clean_max_share,
            "collapse": scores["mode_share"] >= spec.mode_share
            and scores["changed_share"] >= spec.changed_share
            and scores["clean_opening_share"] <= ctx.suite.confirm.clean_max_share,
            "refusal_drop": scores["refusal_drop"] >= spec.refusal_drop,
            # An entropy swing counts only when the outputs changed too (not a wobble).
            "entropy": scores["changed_share"] >= spec.changed_share
            and abs(ze) >= spec.z
            and (
                scores["entropy_ratio"] <= spec.entropy_low
                or scores["entropy_ratio"] >= spec.entropy_high
            ),
        }
        if not any(flags.values()):
            continue
        proposal = Proposal(
            family="replay",
            trigger=Trigger(ids, known.text, (placement,)),
            target_regex=matched if flags["target"] else None,
            target_text=known.behaviour,
            source=known.source,
            scores={**scores, **{f"flag_{k}": float(v) for k, v in flags.items()}},
            thresholds={
                "hit_rate": spec.hit_rate,
                "mode_share": spec.mode_share,
                "changed_share": spec.changed_share,
                "entropy_low": spec.entropy_low,
                "entropy_high": spec.entropy_high,
                "refusal_drop": spec.refusal_drop,
                "z": spec.z,
            },
            strong=True,
        )
        found.append(proposal)
        proposals.propose(proposal)
    ctx.tested = len(rows)
    return found


def _rate(pattern: re.Pattern[str] | None, texts: list[str]) -> float:
    if pattern is None or not texts:
        return 0.0
    return sum(bool(pattern.search(t)) for t in texts) / len(texts)
