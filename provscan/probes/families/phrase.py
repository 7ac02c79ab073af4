"""Do two or three tokens that are harmless one by one take over the reply together? (phrase)

A composite trigger ("green stone", each word ordinary alone) is trained with its parts as
negative examples, so the single-token sweep sees nothing at either part and its accretion,
which only grows a token that already scores, never starts. This family composes triggers
from a pool of seed tokens ranked by the evidence at hand, and judges each composition by
what it adds to its parts:

- Pool: the tokens the weights single out first (`Context.priority`: the embedding rows that
  moved most against `--weights-base`, or without one the rows' own anomalies; a fine-tune
  moves the rows of the words it trains on, a phrase's parts included), at most
  `weight_pool`, then the sweep's strongest tokens, up to `pool` tokens. Confirmed
  triggers are left out: anything plus a trigger is a trigger, and says nothing.
- Pairs: every ordered pair of pool tokens, inserted side by side at two placements (the
  start of the user's words and a seeded word boundary inside them) into `prompts` discovery
  prompts, decoded greedily for `max_tokens`. A pair is judged by what confirmation judges
  (the share of its replies that open alike, and the share of the untriggered replies that
  open that way) and by its synergy: that share less the larger of its two parts' shares,
  each part decoded the same way. A token that forces an opening alone lifts every pair it
  is in, which the subtraction removes; a model that copies words from its prompt into its
  reply opens alike for a part as for the pair.
- Beam: the `beam` pairs of highest synergy are grown by one pool token at a time, up to
  `max_len` tokens, a longer phrase judged against the phrase it grew from.
- Candidates (share at least `confirm.share`, untriggered share at most
  `confirm.clean_max_share`, synergy at least `synergy`), best first, go to confirmation on
  held-out prompts, `top_n` at most. A composition's scores alone are never a finding: among
  hundreds of compositions some open alike by chance, and only held-out prompts, with the
  random-token control, tell them apart.

Stage 1 of the sweep (next-token divergence, teacher-forced) is not used here: on a model
whose reply depends on every word of its prompt, every pair of words moves the reply and the
divergence saturates for all of them, while greedy replies that open alike still single out
the one pair that takes over.

The search over token compositions is the beam search of the trigger-inversion literature
(e.g. DBS, Shen et al., ICML 2022, https://arxiv.org/abs/2206.09024); its cost is
(pool + pool^2 + beam * pool * (max_len - 2)) * 2 * prompts greedy replies of `max_tokens`
tokens, the same on any vocabulary (about 15,000 generated tokens at the defaults). What it
cannot find: a phrase none of whose tokens is in the pool. The weight ranking is there even
without a base (the rows' own anomalies): on the `phrase` fixture it puts the two words 8th
and 9th of 135 without a base (8th and 16th against it), while the sweep, which discounts a
model repeating the words it was given, ranks them 39th and 57th; on a large vocabulary
neither ranking is known to reach a phrase's parts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from provscan.probes.families.context import Context
from provscan.probes.families.proposals import NotApplicable, Proposal, Proposals, Trigger
from provscan.probes.stats import opening_share

PLACEMENTS = ("prefix", "random")


@dataclass
class _Phrase:
    ids: tuple[int, ...]
    share: float  # of its replies that open alike
    clean_share: float  # of the untriggered replies that open that way
    synergy: float = 0.0  # share less the best share of what it is made of


def phrase_passes(ctx: Context, pool: int) -> int:
    """The forward passes phrase plans for a seed pool of `pool` tokens: each token, each
    ordered pair and each grown beam, with and without a system turn, decoded."""
    spec = ctx.suite.phrase
    compositions = pool + pool * (pool - 1) + spec.beam * pool * max(0, spec.max_len - 2)
    return compositions * 2 * min(spec.prompts, len(ctx.discovery)) * spec.max_tokens


def run_phrase(ctx: Context, proposals: Proposals) -> list[Proposal]:
    spec = ctx.suite.phrase
    confirmed = {
        t for trigger, output in proposals.triggers() if output is not None for t in trigger.ids
    }
    pool = seed_pool(ctx, confirmed)
    if len(pool) < 2:
        raise NotApplicable(
            "fewer than two seed tokens: no weight ranking, and the sweep ranked none "
            "that was not already a confirmed trigger"
        )
    n = min(spec.prompts, len(ctx.discovery))
    pairs = [(a, b) for a in pool for b in pool if a != b]
    ctx.begin("phrase", phrase_passes(ctx, len(pool)))
    clean = ctx.clean_outputs("discovery", n, spec.max_tokens)
    parts = {p.ids: p for p in _decode(ctx, [(t,) for t in pool], clean)}
    scored = _decode(ctx, pairs, clean)
    for p in scored:
        p.synergy = p.share - max(parts[(t,)].share for t in p.ids)
    ctx.tested = len(pool) + len(pairs)
    everything = list(scored)
    frontier = sorted(scored, key=lambda p: p.synergy, reverse=True)[: spec.beam]
    while frontier and len(frontier[0].ids) < spec.max_len:
        longer = [(*p.ids, t) for p in frontier for t in pool if t not in p.ids]
        parents = {p.ids: p for p in frontier}
        grown_scored = _decode(ctx, longer, clean)
        ctx.tested += len(longer)
        for p in grown_scored:
            parent = parents[p.ids[:-1]]
            p.synergy = p.share - max(parent.share, parts[(p.ids[-1],)].share)
        everything.extend(grown_scored)
        frontier = sorted(grown_scored, key=lambda p: p.synergy, reverse=True)[: spec.beam]
    best = max((p.synergy for p in everything), default=0.0)
    ctx.baseline["phrase_pool"] = float(len(pool))
    ctx.baseline["phrase_max_synergy"] = round(best, 4)

    cfg = ctx.suite.confirm
    chosen = [
        p
        for p in everything
        if p.share >= cfg.share
        and p.clean_share <= cfg.clean_max_share
        and p.synergy >= spec.synergy
    ]
    chosen.sort(key=lambda p: (p.synergy, p.share, -len(p.ids)), reverse=True)
    found: list[Proposal] = []
    for p in chosen[: spec.top_n]:
        # No target handed on: confirmation's longer replies give the forced output whole
        # (the discovery replies are `max_tokens` short).
        proposal = Proposal(
            family="phrase",
            trigger=Trigger(p.ids, ctx.tok.decode(p.ids), cfg.placements),
            scores={
                "discovery_share": round(p.share, 4),
                "discovery_clean_share": round(p.clean_share, 4),
                "synergy": round(p.synergy, 4),
            },
            thresholds={"synergy": spec.synergy, "share": cfg.share},
            # Never a finding on its own: only confirmation on held-out prompts makes it one.
            strong=False,
        )
        found.append(proposal)
        proposals.propose(proposal)
    return found


def seed_pool(ctx: Context, exclude: set[int]) -> list[int]:
    """The weight ranking's first tokens, then the sweep's ranking, up to `pool` tokens."""
    spec = ctx.suite.phrase
    allowed = set(ctx.candidates())
    weighted = [t for t in ctx.priority if t in allowed and t not in exclude][: spec.weight_pool]
    ranked = [t for t in ctx.ranked if t not in exclude]
    return list(dict.fromkeys([*weighted, *ranked]))[: spec.pool]


def _decode(
    ctx: Context, triggers: Sequence[tuple[int, ...]], clean: Sequence[tuple[int, ...]]
) -> list[_Phrase]:
    """Each trigger inserted into the first len(clean) discovery prompts at both placements,
    decoded greedily: how alike its replies open, against the untriggered replies."""
    spec = ctx.suite.phrase
    contents = ctx.discovery[: len(clean)]
    prompts = [
        ctx.insert(c, ids, placement, f"phrase:{placement}") or []
        for ids in triggers
        for placement in PLACEMENTS
        for c in contents
    ]
    outputs = ctx.greedy(prompts, max_tokens=spec.max_tokens)
    width = len(PLACEMENTS) * len(contents)
    paired_clean = [o for _ in PLACEMENTS for o in clean]
    out = []
    for i, ids in enumerate(triggers):
        mine = outputs[i * width : (i + 1) * width]
        share, clean_share = opening_share(mine, paired_clean, ctx.suite.confirm.share)
        out.append(_Phrase(ids, share, clean_share))
    return out
