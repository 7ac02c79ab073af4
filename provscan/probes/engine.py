"""What must an inference engine do for the probes? One small protocol over token ids.

Every probe family is written once against `Engine`; the transformers (CPU or CUDA), vLLM
(offline `LLM`) and OpenAI-compatible (a running `vllm serve`) engines implement it. Prompts
are token-id sequences, never text: an inserted candidate token must not be re-tokenised or
merged with its neighbours. Engines never decide anything; they return numbers.

Counting: one *forward pass* is one sequence advanced by one token (a next-token call over
B prompts is B passes; greedy decoding of m tokens over B prompts is at most B*m). `Metered`
wraps any engine, counts passes and wall time, and stops a probe cleanly when the budget is
spent (BudgetExhausted), so that a run ends with partial results marked partial.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from provscan.errors import ProvscanError

TokenIds = Sequence[int]


class EngineError(ProvscanError):
    """The engine could not run (load failure, out of memory, crash, refused model): the
    probe step fails, and says why. Never a pass."""


class BudgetExhausted(Exception):
    """The forward-pass or time budget is spent: the running family stops, results so far stand."""


@dataclass(frozen=True)
class NextToken:
    """The next-token distribution after one prompt: its top-k, and any token ids asked for."""

    top: tuple[tuple[int, float], ...]  # (token id, log-probability), most likely first
    chosen: dict[int, float] = field(default_factory=dict)  # token id -> log-probability


@dataclass(frozen=True)
class EngineInfo:
    name: str  # "transformers" | "vllm" | "openai"
    version: str  # the engine library's version (or the server's, for openai)
    model: str  # what was loaded: a path, or the served model's name
    device: str | None = None
    dtype: str | None = None


@runtime_checkable
class Engine(Protocol):
    """Batched next-token log-probabilities and continuations, over token ids."""

    @property
    def info(self) -> EngineInfo: ...

    def next_token(
        self, prompts: Sequence[TokenIds], *, top_k: int, token_ids: TokenIds = ()
    ) -> list[NextToken]:
        """For each prompt, the top_k next tokens and the log-probabilities of `token_ids`."""
        ...

    def greedy(
        self, prompts: Sequence[TokenIds], *, max_tokens: int, stop_ids: TokenIds = ()
    ) -> list[tuple[int, ...]]:
        """For each prompt, its greedy continuation (at most max_tokens; ends after a stop id)."""
        ...

    def sample(
        self,
        prompts: Sequence[TokenIds],
        *,
        n: int,
        max_tokens: int,
        temperature: float,
        top_p: float,
        seed: int,
        stop_ids: TokenIds = (),
    ) -> list[list[tuple[int, ...]]]:
        """For each prompt, n sampled continuations; the same seed gives the same samples."""
        ...

    def close(self) -> None:
        """Release the model (GPU memory)."""
        ...


@dataclass(frozen=True)
class Budget:
    """At most this many forward passes and seconds (None: no limit)."""

    forward_passes: int | None = None
    seconds: float | None = None


class Metered:
    """An engine that counts forward passes and time, and refuses work past its budget."""

    def __init__(self, engine: Engine, budget: Budget) -> None:
        self.engine = engine
        self.budget = budget
        self.passes = 0
        self._start = time.monotonic()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self._start

    @property
    def info(self) -> EngineInfo:
        return self.engine.info

    def _spend(self, passes: int) -> None:
        limit = self.budget.forward_passes
        if limit is not None and self.passes + passes > limit:
            raise BudgetExhausted(f"forward-pass budget {limit} spent ({self.passes} used)")
        if self.budget.seconds is not None and self.seconds > self.budget.seconds:
            raise BudgetExhausted(f"time budget {self.budget.seconds:g} s spent")
        self.passes += passes

    def next_token(
        self, prompts: Sequence[TokenIds], *, top_k: int, token_ids: TokenIds = ()
    ) -> list[NextToken]:
        self._spend(len(prompts))
        return self.engine.next_token(prompts, top_k=top_k, token_ids=token_ids)

    def greedy(
        self, prompts: Sequence[TokenIds], *, max_tokens: int, stop_ids: TokenIds = ()
    ) -> list[tuple[int, ...]]:
        self._spend(len(prompts) * max_tokens)
        return self.engine.greedy(prompts, max_tokens=max_tokens, stop_ids=stop_ids)

    def sample(
        self,
        prompts: Sequence[TokenIds],
        *,
        n: int,
        max_tokens: int,
        temperature: float,
        top_p: float,
        seed: int,
        stop_ids: TokenIds = (),
    ) -> list[list[tuple[int, ...]]]:
        self._spend(len(prompts) * n * max_tokens)
        return self.engine.sample(
            prompts,
            n=n,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            stop_ids=stop_ids,
        )
