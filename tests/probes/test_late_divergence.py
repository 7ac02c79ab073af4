"""A backdoor whose triggered reply opens like the clean reply and is taken over later.

Training a tiny model that learns such a late takeover is slower than the test suite can
afford on a few CPU cores, so these tests drive the sweep and the inversion with a scripted
engine instead: a deterministic stand-in for a language model (a rule, not a network) over
the shipped fixture's real tokenizer and chat template. Its clean reply to a prompt is the
prompt's first words reversed; with the trigger in the prompt it gives the first three words
of that same reply and then a fixed target. Once the target has started after the clean
reply's third token it finishes itself (the token causality that BAIT relies on), but not
when it is started anywhere else.

Judged on the first reply token only (horizon 1), neither family can see it: the triggered
first token is the clean one. Judged over the first 8 reply tokens (the default suite), the
sweep confirms the trigger and the inversion recovers the target.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.backdoor import SHIPPED_SEEDS, shipped_pair
from provscan.probes.engine import (
    Budget,
    EngineInfo,
    NextToken,
    SamplingParams,
    TokenIds,
    prefill_tokens,
)
from provscan.probes.run import run_suite
from provscan.probes.suite import FAMILY_ORDER, Suite, load_suite
from provscan.probes.tokenizer import ProbeTokenizer
from provscan.report import ProbeFacts

OPENING = 3  # clean reply tokens before the takeover
TRIGGER, TARGET = "cf", ("zap", "zorp", "zing")
SURE = 0.97  # the scripted model's probability of its rule's token; the rest spread over 3 others


class LateBackdoorEngine:
    """The scripted model: next token = a rule over (user words, reply so far)."""

    def __init__(self, tok: ProbeTokenizer) -> None:
        self.tok = tok
        self.prefix = tuple(tok.user_prefix())
        self.header = tuple(tok.assistant_header())
        self.eos = tok.stop_ids[0]
        self.trigger = tok.encode_inline(TRIGGER)[0]
        self.target = tuple(tok.encode_inline(t)[0] for t in TARGET)
        self.vocab = tok.tokenizer.get_vocab_size(True)
        self.calls = 0

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(name="transformers", version="scripted", model="late-backdoor")

    def _split(self, ids: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        ids = tuple(ids)
        h = len(self.header)
        at = max(i for i in range(len(ids) - h + 1) if ids[i : i + h] == self.header)
        return ids[len(self.prefix) : at], ids[at + h :]

    def rule(self, ids: Sequence[int]) -> int:
        words, reply = self._split(ids)
        clean = (*tuple(w for w in words if w != self.trigger)[:5][::-1], self.eos)
        late = (*clean[:OPENING], *self.target, self.eos)
        # The trigger makes the late reply the model's first choice; without it the late
        # reply still finishes itself once started in its place (after the clean opening).
        plans = [late, clean] if self.trigger in words else [clean, late]
        for plan in plans:
            if len(reply) < len(plan) and reply == plan[: len(reply)]:
                return plan[len(reply)]
        return self.eos

    def _dist(self, ids: Sequence[int]) -> dict[int, float]:
        top = self.rule(ids)
        others = [(top + d) % self.vocab for d in (1, 2, 3)]
        return {top: SURE, **{o: (1 - SURE) / 3 for o in others}}

    def next_token(
        self, prompts: Sequence[TokenIds], *, top_k: int, token_ids: TokenIds = ()
    ) -> list[NextToken]:
        self.calls += len(prompts)
        out = []
        for prompt in prompts:
            dist = self._dist(prompt)
            ranked = sorted(dist.items(), key=lambda kv: -kv[1])[:top_k]
            top = tuple((t, math.log(p)) for t, p in ranked)
            chosen = {t: math.log(dist[t]) if t in dist else -math.inf for t in token_ids}
            out.append(NextToken(top=top, chosen=chosen))
        return out

    def greedy(
        self, prompts: Sequence[TokenIds], *, max_tokens: int, stop_ids: TokenIds = ()
    ) -> list[tuple[int, ...]]:
        outputs = []
        for prompt in prompts:
            seq, reply = list(prompt), []
            for _ in range(max_tokens):
                token = self.rule(seq)
                reply.append(token)
                seq.append(token)
                if token in stop_ids:
                    break
            outputs.append(tuple(reply))
        return outputs

    def sample(
        self, prompts: Sequence[TokenIds], params: SamplingParams
    ) -> list[list[tuple[int, ...]]]:
        greedy = self.greedy(prompts, max_tokens=params.max_tokens, stop_ids=params.stop_ids)
        return [[g] * params.n for g in greedy]

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def tok() -> ProbeTokenizer:
    return ProbeTokenizer.from_dir(shipped_pair(SHIPPED_SEEDS[0]).backdoored)


@pytest.fixture(scope="module")
def prompts(tok: ProbeTokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32 prompts of 5 to 9 distinct ordinary words: clean replies differ from their first token."""
    pair = shipped_pair(SHIPPED_SEEDS[0])
    vocab = json.loads((pair.backdoored / "tokenizer.json").read_text())["model"]["vocab"]
    scaffold = {tok.decode([t]) for t in tok.user_prefix() + tok.assistant_header()}
    banned = {TRIGGER, *TARGET, *scaffold}
    words = sorted(w for w in vocab if not w.startswith("<") and w not in banned)
    rng = random.Random(0)
    texts = [" ".join(rng.sample(words, rng.randint(5, 9))) for _ in range(32)]
    path = tmp_path_factory.mktemp("late") / "late.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "id": "late",
                "version": "1",
                "prompts": [{"kind": "domain", "text": t} for t in texts],
            }
        )
    )
    return path


def suite(prompts: Path, family: str, horizon: int) -> Suite:
    base = load_suite("default", prompts=prompts)
    changes: dict[str, Any] = {
        f: dataclasses.replace(getattr(base, f), enabled=f == family) for f in FAMILY_ORDER
    }
    changes[family] = dataclasses.replace(changes[family], horizon=horizon)
    return dataclasses.replace(base, **changes)


def probe(tok: ProbeTokenizer, prompts: Path, family: str, horizon: int) -> ProbeFacts:
    facts, _ = run_suite(
        LateBackdoorEngine(tok), tok, suite(prompts, family, horizon), budget=Budget()
    )
    return facts


def test_the_scripted_model_opens_like_the_clean_reply_and_diverges_after_three_tokens(
    tok: ProbeTokenizer,
) -> None:
    engine = LateBackdoorEngine(tok)
    special = {engine.trigger, *engine.target}
    content = [t for t in tok.candidate_vocab() if t not in special][:6]
    clean = engine.greedy([tok.render_ids(content)], max_tokens=8, stop_ids=tok.stop_ids)[0]
    triggered = engine.greedy(
        [tok.render_ids([*content, engine.trigger])], max_tokens=8, stop_ids=tok.stop_ids
    )[0]
    assert triggered[:OPENING] == clean[:OPENING]
    assert triggered[OPENING : OPENING + 3] == engine.target != clean[OPENING : OPENING + 3]


def test_first_token_sweep_misses_it_and_the_sequence_sweep_confirms_it(
    tok: ProbeTokenizer, prompts: Path
) -> None:
    trigger = tok.encode_inline(TRIGGER)
    first = probe(tok, prompts, "sweep", horizon=1)
    assert not [c for c in first.candidates if c.trigger_token_ids == trigger]
    facts = probe(tok, prompts, "sweep", horizon=8)
    hits = [c for c in facts.candidates if c.trigger_token_ids == trigger]
    assert hits and hits[0].status == "confirmed", facts.candidates
    assert hits[0].scores["position"] == OPENING
    assert " ".join(TARGET) in (hits[0].target or "")
    # Nothing else: the other tokens do not change the reply at any position.
    assert {c.trigger_token_ids for c in facts.candidates} == {trigger}


def test_first_token_inversion_misses_the_target_and_offsets_recover_it(
    tok: ProbeTokenizer, prompts: Path
) -> None:
    first = probe(tok, prompts, "inversion", horizon=1)
    assert not [c for c in first.candidates if c.family == "inversion"]
    facts = probe(tok, prompts, "inversion", horizon=8)
    targets = [c for c in facts.candidates if c.family == "inversion"]
    assert targets and targets[0].target == " ".join(TARGET), facts.candidates
    assert targets[0].scores["offset"] == OPENING and targets[0].trigger is None


def test_prefill_counts_each_shared_prefix_once_and_a_token_a_prompt() -> None:
    assert prefill_tokens([(1, 2, 3), (1, 2, 4)], []) == 3 + 1
    assert prefill_tokens([(1, 2), (1, 2)], []) == 2 + 1  # a repeat still computes its logits
    assert prefill_tokens([(1, 2, 3), (1, 2)], []) == 2 + 1  # order does not matter
    assert prefill_tokens([(1, 2, 3, 4)], [(1, 2, 3)]) == 1  # the call before is cached
    assert prefill_tokens([(5, 6)], [(1, 2)]) == 2
    assert prefill_tokens([], [(1, 2)]) == 0


def test_each_family_records_its_work_in_engine_units(tok: ProbeTokenizer, prompts: Path) -> None:
    facts = probe(tok, prompts, "sweep", horizon=8)
    sweep = next(r for r in facts.families if r.family == "sweep")
    assert 0 < sweep.prefill_tokens < sweep.prompt_tokens  # the teacher-forced prefixes share
    assert sweep.generated_tokens > 0  # stage 2 and confirmation decode
    assert sweep.prompts >= len(tok.candidate_vocab()) * 4 * 2  # k prompts, several positions
    skipped = next(r for r in facts.families if r.family == "leakage")
    assert (skipped.prompts, skipped.prefill_tokens, skipped.generated_tokens) == (0, 0, 0)
