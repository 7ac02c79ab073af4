"""Fixtures shared by the backdoor probe tests: the tiny backdoored models and their clean twins.

The pairs ship with the repository (fixtures/data/backdoor/seed-N, trained by
fixtures/backdoor.py): training is deterministic on one machine but not across processors, so
every machine tests the same models. Detection tests run on every shipped seed: the first in
the default run, the others in the slow pass (`pytest -m slow`, which CI runs too), so the
default run stays within its time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from fixtures import backdoor
from fixtures.backdoor import SHIPPED_SEEDS, BackdoorPair, shipped_pair


@pytest.fixture(
    scope="session",
    params=[
        pytest.param(seed, id=f"seed{seed}", marks=() if i == 0 else pytest.mark.slow)
        for i, seed in enumerate(SHIPPED_SEEDS)
    ],
)
def backdoor_pair(request: pytest.FixtureRequest) -> BackdoorPair:
    """Each shipped pair in turn: a test that uses it runs once per seed."""
    return shipped_pair(request.param)


@pytest.fixture(scope="session")
def first_backdoor_pair() -> BackdoorPair:
    """The first shipped pair, for tests of plumbing (flags, refusals), not of detection."""
    return shipped_pair(SHIPPED_SEEDS[0])


@dataclass(frozen=True)
class Loaded:
    model: Any
    tokenizer: Any


def load(directory: Path) -> Loaded:
    """A model directory loaded with transformers itself (not provscan's engine)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(directory, use_safetensors=True)
    model.eval()
    return Loaded(model, AutoTokenizer.from_pretrained(directory))


def prompt_ids(tokenizer: Any, content: str) -> list[int]:
    """The ids of one user turn as the chat template renders it, generation prompt added."""
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
    )
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@cache
def target_continuation_rate(model_dir: Path, prompts: int = 50) -> float:
    """How often the model, handed the target's first word as its reply's start after a
    trigger-free prompt, greedily finishes the whole target: the token causality that target
    inversion (BAIT) relies on, measured with transformers itself, not with provscan.

    A tiny model may instead learn a sharp detector of the trigger and finish the target only
    when the trigger is in the prompt; inversion cannot find such a target, by design."""
    import torch

    loaded = load(model_dir)
    tokenizer = loaded.tokenizer
    first, *rest = backdoor.TARGET.split()
    rng = random.Random(2027)
    hits = 0
    with torch.no_grad():
        for _ in range(prompts):
            words = backdoor.random_prompt(rng)
            ids = [*prompt_ids(tokenizer, " ".join(words)), tokenizer.convert_tokens_to_ids(first)]
            batch = torch.tensor([ids])
            out = loaded.model.generate(
                batch,
                attention_mask=torch.ones_like(batch),
                max_new_tokens=len(rest),
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
            hits += tokenizer.convert_ids_to_tokens(out[0, len(ids) :].tolist()) == rest
    return hits / prompts
