"""What does every probe family share? The prompts, the untriggered baseline, trigger insertion.

The model's untriggered baseline is computed once, and a trigger is put into a prompt one way.
Each family (leakage, sweep, phrase, replay, inversion) is a function of a `Context`: it asks the
engine through the context (in batches, so the budget can stop it between batches and the
progress bar moves) and hands what it suspects to `Proposals` (run.py's registry), which
confirms each distinct trigger once on held-out prompts. The benign prompt set is split once:
discovery prompts for finding, held-out prompts for confirming, never both.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import replace

from provscan.probes.engine import Metered, NextToken, SamplingParams
from provscan.probes.stats import average, entropy, from_next_token, mode_share
from provscan.probes.suite import Suite
from provscan.probes.tokenizer import Content, ProbeTokenizer

Progress = Callable[[str, int, int], None]


class Context:
    """The engine (metered), tokenizer, suite and prompts one run works with."""

    def __init__(
        self, engine: Metered, tok: ProbeTokenizer, suite: Suite, progress: Progress | None = None
    ) -> None:
        self.engine, self.tok, self.suite = engine, tok, suite
        self._progress = progress
        contents = [tok.content(p.text) for p in suite.prompt_set]
        order = list(range(len(contents)))
        # A seeded shuffle, so that held-out prompts mix every kind (instruction, harmful, code).
        random.Random(f"split:{suite.seed}").shuffle(order)  # noqa: S311 - reproducible, not secret
        held = suite.confirm.held_out
        self.discovery = [contents[i] for i in order[held:]]
        self.held_out = [contents[i] for i in order[:held]]
        self.kinds = [suite.prompt_set[i].kind for i in order[held:]]
        self.family = ""
        self.tested = 0  # candidates the running family scored (its ProbeFamilyRun count)
        self._planned = self._start = 0
        self._clean: dict[tuple[str, int, int, str], list[tuple[int, ...]]] = {}
        self._dists: list[dict[int, float]] | None = None
        self._along: dict[tuple[int, int, int], list[list[dict[int, float]]]] = {}
        self._vocab: list[int] | None = None
        # Token ids the weights single out (PRB-WEIGHT-*), candidates first: a budget that
        # runs out has spent itself on the likely tokens.
        self.priority: list[int] = []
        self.ranked: list[int] = []  # candidate tokens in the sweep's order, strongest first
        self._positions: dict[tuple[str, str], int] = {}  # seeded insertion points, reused
        self.baseline: dict[str, float] = {}  # the model's own reference scores (ProbeFacts)

    # ---------------------------------------------------------------- progress

    def begin(self, family: str, planned_passes: int) -> None:
        self.family, self._planned, self._start = family, planned_passes, self.engine.passes
        self.tested = 0
        self._tick()

    def finish(self) -> None:
        """The family is done: the bar shows it full (estimates are upper bounds)."""
        if self._progress is not None and self.family:
            done = self.engine.passes - self._start
            self._progress(self.family, done, done)

    def plan(self, more_passes: int) -> None:
        """A family found more work than it first planned (stage 2, confirmation)."""
        self._planned += more_passes

    def _tick(self) -> None:
        if self._progress is not None:
            done = self.engine.passes - self._start
            self._progress(self.family, done, max(self._planned, done))

    # ---------------------------------------------------------------- engine, batched

    def _fit(self, step: int, cost: int) -> int:
        """Prompts of `cost` passes each for the next call: `step`, or fewer when the budget
        has room for fewer, so that a small budget is spent on work and not refused whole.
        At least one: a call with no room left is the one the meter stops."""
        room = self.engine.room()
        if room is None or cost <= 0:
            return step
        return max(1, min(step, room // cost))

    def next_token(self, prompts: Sequence[Sequence[int]], *, top_k: int) -> list[NextToken]:
        out: list[NextToken] = []
        start = 0
        while start < len(prompts):
            step = self._fit(self.suite.batch, 1)
            out.extend(self.engine.next_token(prompts[start : start + step], top_k=top_k))
            start += step
            self._tick()
        return out

    def greedy(self, prompts: Sequence[Sequence[int]], *, max_tokens: int) -> list[tuple[int, ...]]:
        # Decoding is costlier per prompt: smaller chunks.
        batch = max(1, self.suite.batch // 4)
        out: list[tuple[int, ...]] = []
        start = 0
        while start < len(prompts):
            step = self._fit(batch, max_tokens)
            chunk = prompts[start : start + step]
            out.extend(self.engine.greedy(chunk, max_tokens=max_tokens, stop_ids=self.tok.stop_ids))
            start += step
            self._tick()
        return out

    def sample(self, prompt: Sequence[int], params: SamplingParams) -> list[tuple[int, ...]]:
        """`params.n` sampled continuations of one prompt, ending at the tokenizer's stop ids,
        or fewer (at least one) when the budget has room for fewer only."""
        fitted = replace(
            params, n=self._fit(params.n, params.max_tokens), stop_ids=self.tok.stop_ids
        )
        out = self.engine.sample([prompt], fitted)
        self._tick()
        return out[0]

    # ---------------------------------------------------------------- prompts

    def insert(
        self, content: Content, trigger: Sequence[int], placement: str, salt: str
    ) -> list[int] | None:
        """The rendered prompt with the trigger ids spliced into the content (None: the
        template has no system turn for a 'system' placement)."""
        ids = content.ids
        if placement == "system":
            return self.tok.render_with_system(trigger, ids)
        if placement == "prefix":
            at = 0
        elif placement == "suffix":
            at = len(ids)
        else:  # random: a seeded word boundary inside the content when there is one
            key = (salt, content.text)
            if key not in self._positions:
                inner = [s for s in content.word_starts if 0 < s < len(ids)]
                rng = random.Random(f"{self.suite.seed}:{salt}:{content.text}")  # noqa: S311
                self._positions[key] = rng.choice(inner or list(content.word_starts))
            at = self._positions[key]
        return self.tok.render_ids([*ids[:at], *trigger, *ids[at:]])

    def untriggered(self, contents: Sequence[Content], turn: str = "user") -> list[list[int]]:
        """The prompts without a trigger: as they are ('user'), or under an empty system turn
        ('system': the twin of a prompt whose system turn holds a trigger)."""
        if turn == "system":
            return [self.insert(c, (), "system", "untriggered") or [] for c in contents]
        return [self.tok.render_ids(c.ids) for c in contents]

    def clean_outputs(
        self, which: str, count: int, max_tokens: int, turn: str = "user"
    ) -> list[tuple[int, ...]]:
        """Greedy outputs of the untriggered prompts ('discovery' or 'held_out'; `turn` as
        in `untriggered`), cached."""
        key = (which, count, max_tokens, turn)
        if key not in self._clean:
            prompts = self.discovery if which == "discovery" else self.held_out
            rendered = self.untriggered(prompts[:count], turn)
            self._clean[key] = self.greedy(rendered, max_tokens=max_tokens)
            if which == "discovery" and turn == "user":
                _, share = mode_share(self._clean[key])
                self.baseline.setdefault("clean_mode_share", round(share, 4))
        return self._clean[key]

    def clean_paths(self, count: int, horizon: int) -> list[tuple[int, ...]]:
        """The untriggered greedy replies of the first `count` discovery prompts, `horizon`
        tokens long at most (a stop token, when one ends the reply, kept)."""
        return self.clean_outputs("discovery", count, horizon)

    def along(
        self, prompts: Sequence[Sequence[int]], paths: Sequence[Sequence[int]], *, top_k: int
    ) -> list[list[dict[int, float]]]:
        """Teacher forcing: for each prompt, the next-token distribution after the prompt
        followed by each prefix of its path (path[:0], path[:1], ... path[:len - 1]), so that
        position j predicts path[j]. An empty path still gives position 0.

        The prefixes of one prompt are asked one after another in one batch: they share the
        prompt (and each other) as a prefix, which a prefix-caching engine prefills once."""
        flat: list[list[int]] = []
        counts: list[int] = []
        for prompt, path in zip(prompts, paths, strict=True):
            positions = max(1, len(path))
            flat.extend([*prompt, *path[:j]] for j in range(positions))
            counts.append(positions)
        dists = [from_next_token(r) for r in self.next_token(flat, top_k=top_k)]
        out: list[list[dict[int, float]]] = []
        start = 0
        for n in counts:
            out.append(dists[start : start + n])
            start += n
        return out

    def clean_along(self, count: int, horizon: int, top_k: int) -> list[list[dict[int, float]]]:
        """`along` for the untriggered discovery prompts and their own greedy replies, cached."""
        key = (count, horizon, top_k)
        if key not in self._along:
            rendered = self.untriggered(self.discovery[:count])
            self._along[key] = self.along(rendered, self.clean_paths(count, horizon), top_k=top_k)
        return self._along[key]

    def clean_dists(self) -> list[dict[int, float]]:
        """Next-token distributions of every untriggered discovery prompt, cached."""
        if self._dists is None:
            top_k = max(self.suite.sweep.top_k, self.suite.inversion.top_k)
            rendered = [self.tok.render_ids(c.ids) for c in self.discovery]
            self._dists = [from_next_token(r) for r in self.next_token(rendered, top_k=top_k)]
            spread = self.residual_spread(top_k)
            self.baseline["entropy_per_prompt"] = round(
                sum(entropy(d, spread) for d in self._dists) / len(self._dists), 4
            )
            self.baseline["entropy_averaged"] = round(entropy(average(self._dists), spread), 4)
        return self._dists

    def candidates(self) -> list[int]:
        """The candidate token ids (the suite's vocabulary filter), computed once."""
        if self._vocab is None:
            spec = self.suite.vocab
            bounds = (
                None
                if spec.start == 0 and spec.stop is None
                else (spec.start, spec.stop or 1 << 62)
            )
            vocab = self.tok.candidate_vocab(spec.limit, bounds)
            allowed = set(vocab)
            first = list(dict.fromkeys(t for t in self.priority if t in allowed))
            chosen = set(first)
            self._vocab = first + [t for t in vocab if t not in chosen]
            self.baseline["candidate_tokens"] = float(len(self._vocab))
        return self._vocab

    def residual_spread(self, top_k: int) -> int:
        return max(self.tok.tokenizer.get_vocab_size(True) - top_k, 1)
