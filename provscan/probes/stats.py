"""How unusual is one score among its population, and how far apart are two distributions?

The probe families judge a candidate against the model's own population of candidates (a
robust z-score over the vocabulary) and against the model's untriggered baseline (entropy
ratios, Jensen-Shannon divergence), never against absolute constants alone: a tiny model and
a 70B model have different scales, but a trigger stands out from its own population in both.

Distributions are sparse: {token id: probability}, built from an engine's top-k, with the
mass outside the top-k kept in one RESIDUAL bucket so that entropies stay lower bounds and
divergences stay comparable.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

import numpy as np

from provscan.probes.engine import NextToken

# Resolutions below which differences are noise (robust_z's floor), per kind of score.
PROBABILITY_RESOLUTION = 0.02  # consistency, Q: averaged probabilities over a few prompts
DIVERGENCE_RESOLUTION = 0.01  # Jensen-Shannon divergence, nats (at most ln 2)
COUNT_RESOLUTION = 1.0  # counts of samples

RESIDUAL = -1  # the bucket holding the probability mass outside an engine's top-k
MAD_SCALE = 1.4826  # makes the MAD a consistent estimator of the standard deviation
MEAN_AD_SCALE = 1.2533  # the same for the mean absolute deviation (sqrt(pi / 2))

Distribution = Mapping[int, float]
H = TypeVar("H", bound=Hashable)


def robust_z(values: Sequence[float], floor: float = 0.0) -> list[float]:
    """(x - median) / (1.4826 * MAD) for each value.

    When more than half the population is identical the MAD is 0; the mean absolute deviation
    stands in (so a lone outlier still gets a finite, large z), and a population with no
    spread at all gives 0 everywhere rather than dividing by zero. `floor` is the smallest
    spread taken seriously (a score's resolution): a population that agrees to the third
    decimal must not turn a difference in the fourth into z = 600.
    """
    return robust_z_with_errors(values, [0.0] * len(values), floor)


def robust_z_with_errors(
    values: Sequence[float], errors: Sequence[float], floor: float = 0.0
) -> list[float]:
    """robust_z where each value also carries its own standard error: its distance from the
    median is measured in sqrt(spread^2 + error^2).

    A score averaged over k prompts moves in steps of about 1/k when each prompt is sure of
    itself: on a near-deterministic model most candidates share one value, the population's
    spread collapses to the floor, and one prompt agreeing by coincidence reads as z = 12.
    The candidate's own disagreement across its prompts (the standard error of its mean) is
    the resolution that such a score really has.
    """
    if not values:
        return []
    data = np.asarray(values, dtype=float)
    median = float(np.median(data))
    deviations = np.abs(data - median)
    scale = MAD_SCALE * float(np.median(deviations))
    if scale <= 1e-12:
        scale = MEAN_AD_SCALE * float(np.mean(deviations))
    scale = max(scale, floor)
    spread = np.sqrt(scale**2 + np.asarray(errors, dtype=float) ** 2)
    # No spread at all (every value equal, no error): z = 0, not a division by zero.
    z = np.divide(data - median, spread, out=np.zeros_like(data), where=spread > 1e-12)
    return [float(v) for v in z]


def standard_error(samples: Sequence[float]) -> float:
    """The standard error of the mean of values in [0, 1] (0.5, the largest such standard
    deviation, when there are fewer than two: one prompt says nothing of agreement)."""
    if len(samples) < 2:
        return 0.5
    return float(np.std(np.asarray(samples, dtype=float), ddof=1) / math.sqrt(len(samples)))


def from_next_token(result: NextToken) -> dict[int, float]:
    """The top-k of one next-token result as a distribution, the rest in RESIDUAL."""
    dist = {token: math.exp(logprob) for token, logprob in result.top}
    rest = 1.0 - sum(dist.values())
    if rest > 1e-9:
        dist[RESIDUAL] = rest
    return dist


def average(dists: Sequence[Distribution]) -> dict[int, float]:
    """The mean of several distributions (the prompt-averaged next-token distribution)."""
    total: dict[int, float] = {}
    for dist in dists:
        for token, p in dist.items():
            total[token] = total.get(token, 0.0) + p
    n = max(len(dists), 1)
    return {token: p / n for token, p in total.items()}


def top_token(dist: Distribution) -> tuple[int, float]:
    """The most likely real token (never RESIDUAL) and its probability."""
    best = (RESIDUAL, 0.0)
    for token, p in dist.items():
        if token != RESIDUAL and p > best[1]:
            best = (token, p)
    return best


def entropy(dist: Distribution | Iterable[float], residual_spread: int = 1) -> float:
    """Shannon entropy in nats (zero-probability entries ignored).

    RESIDUAL's mass counts as spread evenly over `residual_spread` tokens (the vocabulary
    outside the top-k): the highest entropy the top-k allows, so that a gibberish trigger
    that flattens the distribution is not read as a collapse into the residual bucket.
    """
    if not isinstance(dist, Mapping):
        return float(-sum(p * math.log(p) for p in dist if p > 0))
    total = 0.0
    for token, p in dist.items():
        if p > 0:
            spread = max(residual_spread, 1) if token == RESIDUAL else 1
            total -= p * math.log(p / spread)
    return total


def js_divergence(p: Distribution, q: Distribution) -> float:
    """Jensen-Shannon divergence in nats (0 for equal distributions, at most ln 2)."""
    keys = set(p) | set(q)
    total = 0.0
    for key in keys:
        a, b = p.get(key, 0.0), q.get(key, 0.0)
        m = (a + b) / 2
        if a > 0:
            total += 0.5 * a * math.log(a / m)
        if b > 0:
            total += 0.5 * b * math.log(b / m)
    return max(total, 0.0)


ENTROPY_FLOOR = 0.25  # nats: keeps ratios sane when the baseline is already near-certain


def entropy_ratio(h: float, h0: float) -> float:
    """H / H0, both lifted by ENTROPY_FLOOR, so that a confident baseline (H0 near 0) does not
    turn every small wobble into a huge ratio."""
    return (h + ENTROPY_FLOOR) / (h0 + ENTROPY_FLOOR)


def z_against(
    value: float, population: Sequence[float], floor: float = 0.0, error: float = 0.0
) -> float:
    """The robust z of a new value (with its standard error) against an existing population's
    median and spread."""
    if not population:
        return 0.0
    return robust_z_with_errors([*population, value], [0.0] * len(population) + [error], floor)[-1]


def without(output: Sequence[int], inserted: Sequence[int]) -> tuple[int, ...]:
    """The output less the tokens that were inserted into its prompt: a model that repeats
    words it was given agrees on them in every reply without being taken over."""
    return tuple(t for t in output if t not in inserted)


def unechoed(dist: Distribution, inserted: Sequence[int]) -> dict[int, float]:
    """The distribution with the inserted tokens' mass moved to RESIDUAL (spread over the
    vocabulary): prompts that agree on repeating a word they were given agree on nothing the
    word forced."""
    out = {t: p for t, p in dist.items() if t not in inserted or t == RESIDUAL}
    moved = sum(p for t, p in dist.items() if t in inserted and t != RESIDUAL)
    if moved:
        out[RESIDUAL] = out.get(RESIDUAL, 0.0) + moved
    return out


def mode_share(items: Sequence[H]) -> tuple[H | None, float]:
    """The most common item and the share of items equal to it ((None, 0.0) when empty)."""
    if not items:
        return None, 0.0
    item, count = Counter(items).most_common(1)[0]
    return item, count / len(items)


def common_opening(outputs: Sequence[Sequence[H]], share: float) -> tuple[tuple[H, ...], float]:
    """The longest opening (prefix) that at least `share` of the outputs begin with, and the
    share of outputs that begin with it.

    A trigger forces how a reply opens; what follows may drift with the prompt (a model off
    its training distribution finishes a forced target in its own way), so whole outputs
    compared for equality miss a trigger that forces the same opening every time. When no
    first item reaches `share`, the most common first item is returned with its share
    (below `share`); no outputs, or only empty ones: ((), 0.0).
    """
    total = len(outputs)
    prefix: tuple[H, ...] = ()
    found = 0.0
    group = [tuple(o) for o in outputs]
    while True:
        depth = len(prefix)
        nexts = [o[depth] for o in group if len(o) > depth]
        if not nexts:
            break
        item, count = Counter(nexts).most_common(1)[0]
        if count / total < share and prefix:
            break
        prefix, found = (*prefix, item), count / total
        if found < share:
            break  # the first item alone falls short: reported, never extended
        group = [o for o in group if len(o) > depth and o[depth] == item]
    return prefix, found


def opening_share(
    outputs: Sequence[Sequence[H]], clean: Sequence[Sequence[H]], share: float
) -> tuple[float, float]:
    """How many outputs open alike (common_opening's share), and how many of the untriggered
    outputs open that same way: an opening every reply has anyway ("Sure", a think tag) is
    the model's habit, not something an insertion forced."""
    opening, found = common_opening(outputs, share)
    if not opening or not clean:
        return found, 0.0
    n = len(opening)
    return found, sum(tuple(o[:n]) == opening for o in clean) / len(clean)


def contains(haystack: Sequence[int], needle: Sequence[int]) -> bool:
    """Whether `needle` occurs in `haystack` as a contiguous run of ids."""
    n = len(needle)
    return n == 0 or any(
        tuple(haystack[i : i + n]) == tuple(needle) for i in range(len(haystack) - n + 1)
    )
