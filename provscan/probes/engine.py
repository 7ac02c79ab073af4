"""What must an inference engine do for the probes? One small protocol over token ids.

Every probe family is written once against `Engine`; the transformers (CPU or CUDA), vLLM
(offline `LLM`) and OpenAI-compatible (a running `vllm serve`) engines implement it. Prompts
are token-id sequences, never text: an inserted candidate token must not be re-tokenised or
merged with its neighbours. Engines never decide anything; they return numbers.

Counting: one *forward pass* is one sequence advanced by one token (a next-token call over
B prompts is B passes; greedy decoding of m tokens over B prompts is at most B*m). `Metered`
wraps any engine, counts passes and wall time, and stops a probe cleanly when the budget, or
the running family's share of it, has no room for the next call (BudgetExhausted), so that a
run ends with partial results marked partial.

It also counts the work in the units an inference engine's cost is measured in, so that a
run on a small model projects onto a large one: prompts, prompt tokens, tokens prefilled
(prompt tokens less those a prefix cache would hold: the longest prefix each prompt shares
with another prompt of the same call or of the call before, at least one token a prompt, as
an engine must compute the last position's logits; vLLM caches whole blocks of 16 tokens, so
this is the best case) and tokens generated (greedy and sampled continuations; a next-token
call generates none, its distribution comes out of the prefill).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar, runtime_checkable

from provscan.errors import ProvscanError

TokenIds = Sequence[int]
T = TypeVar("T")
EngineName = Literal["transformers", "vllm", "openai"]


class ProbeError(ProvscanError):
    """A probe step that cannot run, said in one line.

    The step's reason is this text, and every output shows a reason through the hostile-text
    escaping (provscan.visible), because it quotes what the model's files hold: a line break
    there is written as ``\\x0a``. So provscan's own remedy follows the message on the same
    line, after "; hint: ", instead of on a line of its own; what is quoted from the files
    stays escaped."""

    def __str__(self) -> str:
        return self.message if not self.remedy else f"{self.message}; hint: {self.remedy}"


class EngineError(ProbeError):
    """The engine could not run (load failure, out of memory, crash, refused model): the
    probe step fails, and says why. Never a pass."""


class MissingExtra(ProbeError):
    """The libraries an engine needs are not installed (the `probes` or `vllm` extra): the
    command cannot complete (exit 3) until they are; nothing about the model is known."""


def install_command(extra: str) -> str:
    """How to install one of provscan's extras (pyproject.toml), as a remedy says it."""
    return f"pip install 'provscan[{extra}]'"


class BudgetExhausted(Exception):
    """The forward-pass or time budget is spent: the running family stops, results so far stand.

    `whole`: the run's budget is spent (no later family can start); False when only the
    running family's share of it is (the families after it still get theirs)."""

    def __init__(self, message: str, *, whole: bool = True) -> None:
        super().__init__(message)
        self.whole = whole


@dataclass(frozen=True)
class NextToken:
    """The next-token distribution after one prompt: its top-k, and any token ids asked for."""

    top: tuple[tuple[int, float], ...]  # (token id, log-probability), most likely first
    chosen: dict[int, float] = field(default_factory=dict)  # token id -> log-probability


@dataclass(frozen=True)
class EngineInfo:
    name: str  # an EngineName
    version: str  # the engine library's version (or the server's, for openai)
    model: str  # what was loaded: a path, or the served model's name
    device: str | None = None
    dtype: str | None = None


@dataclass(frozen=True)
class SamplingParams:
    """How `Engine.sample` draws: n continuations per prompt, each at most max_tokens long
    (ending after a stop id), at this temperature and nucleus top_p, seeded with `seed`."""

    n: int
    max_tokens: int
    temperature: float
    top_p: float
    seed: int
    stop_ids: TokenIds = ()


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
        self, prompts: Sequence[TokenIds], params: SamplingParams
    ) -> list[list[tuple[int, ...]]]:
        """For each prompt, params.n sampled continuations; the same seed gives the same samples."""
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
        self.prompts = 0
        self.prompt_tokens = 0
        self.prefill_tokens = 0
        self.generated_tokens = 0
        self._cache: list[tuple[int, ...]] = []  # the previous call's prompts
        self._start = time.monotonic()
        # The running family's ceiling on `passes` (its share of the budget; None: the whole
        # budget is its to spend).
        self.cap: int | None = None
        self._share = (0, 0)  # (passes when the share was given, the share)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self._start

    @property
    def info(self) -> EngineInfo:
        return self.engine.info

    def room(self) -> int | None:
        """Forward passes the next calls may still use (the family's share or the whole
        budget's rest, whichever is less); None: no pass budget."""
        ceilings = [c for c in (self.budget.forward_passes, self.cap) if c is not None]
        return max(0, min(ceilings) - self.passes) if ceilings else None

    def share(self, passes: int | None) -> None:
        """Let the running family use at most `passes` more forward passes (None: the whole
        rest of the budget)."""
        self.cap = None if passes is None else self.passes + passes
        self._share = (self.passes, passes or 0)

    def _spend(self, passes: int) -> None:
        limit = self.budget.forward_passes
        if limit is not None and self.passes >= limit:
            raise BudgetExhausted(f"the budget ran out: all {limit:,} forward passes used")
        if self.cap is not None and self.passes + passes > self.cap:
            start, share = self._share
            raise BudgetExhausted(
                f"its share of the budget ran out: {self.passes - start:,} of its {share:,} "
                f"forward passes used, the next call needs {passes:,} (the rest of the "
                f"{limit or 0:,} is the later families')",
                whole=False,
            )
        if limit is not None and self.passes + passes > limit:
            # Not spent: a later family's smaller calls may still fit what is left.
            raise BudgetExhausted(
                f"the budget ran out for it: {self.passes:,} of the {limit:,} forward passes "
                f"used, the next call needs {passes:,}",
                whole=False,
            )
        if self.budget.seconds is not None and self.seconds > self.budget.seconds:
            raise BudgetExhausted(
                f"the budget ran out: {self.seconds:.1f} of {self.budget.seconds:g} s used "
                f"({self.passes:,} forward passes)"
            )
        self.passes += passes

    def _prefill(self, prompts: Sequence[TokenIds]) -> None:
        rows = [tuple(int(t) for t in p) for p in prompts]
        self.prompts += len(rows)
        self.prompt_tokens += sum(len(r) for r in rows)
        self.prefill_tokens += prefill_tokens(rows, self._cache)
        self._cache = rows

    def next_token(
        self, prompts: Sequence[TokenIds], *, top_k: int, token_ids: TokenIds = ()
    ) -> list[NextToken]:
        self._spend(len(prompts))
        result = self.engine.next_token(prompts, top_k=top_k, token_ids=token_ids)
        self._prefill(prompts)
        return result

    def greedy(
        self, prompts: Sequence[TokenIds], *, max_tokens: int, stop_ids: TokenIds = ()
    ) -> list[tuple[int, ...]]:
        self._spend(len(prompts) * max_tokens)
        outputs = self.engine.greedy(prompts, max_tokens=max_tokens, stop_ids=stop_ids)
        self._prefill(prompts)
        self.generated_tokens += sum(len(o) for o in outputs)
        return outputs

    def sample(
        self, prompts: Sequence[TokenIds], params: SamplingParams
    ) -> list[list[tuple[int, ...]]]:
        self._spend(len(prompts) * params.n * params.max_tokens)
        outputs = self.engine.sample(prompts, params)
        self._prefill(prompts)  # the n samples of a prompt share its prefill
        self.generated_tokens += sum(len(o) for group in outputs for o in group)
        return outputs


def prefill_tokens(rows: Sequence[tuple[int, ...]], cached: Sequence[tuple[int, ...]]) -> int:
    """Tokens an engine with an exact prefix cache computes for `rows`, given `cached` (rows it
    has seen): each distinct token prefix once, and at least one token a row (its logits).

    In sorted order a row's longest shared prefix with any row before it is the one with its
    immediate predecessor, so the count is one sort and one pass."""
    merged = sorted([(r, 0) for r in cached] + [(r, 1) for r in rows])
    total = 0
    before: tuple[int, ...] = ()
    for row, new in merged:
        if new:
            shared = 0
            for a, b in zip(row, before, strict=False):
                if a != b:
                    break
                shared += 1
            total += max(1, len(row) - shared)
        before = row
    return total


def chunks(items: list[T], size: int) -> Iterator[list[T]]:
    """`items` in consecutive slices of at most `size`: how an engine batches its requests."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
