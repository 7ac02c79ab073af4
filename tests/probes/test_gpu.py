"""The probe engines on a GPU: transformers on CUDA and vLLM, against transformers on CPU.

Off by default (marker `gpu`; the default test command deselects it) and skipped where torch
sees no CUDA device or vLLM is not installed. `benchmarks/gpu_probes.sh` runs them on a GPU
machine, then the probe benchmark through each engine. What they check:

- the same numbers: next-token top-1 and log-probabilities within a tolerance that covers
  bfloat16/float16 kernels, greedy replies equal on the fixture's prompts;
- the same verdicts: the default suite confirms the shipped backdoor's trigger (and the hard
  fixtures' phrase, late-payload and system-turn triggers) and nothing on the clean twin or
  the habit fixture.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fixtures import hard
from fixtures.backdoor import SHIPPED_SEEDS, shipped_pair
from provscan.probes.engine import Budget, Engine
from provscan.probes.engines.transformers_engine import TransformersEngine
from provscan.probes.run import run_suite
from provscan.probes.suite import load_suite
from provscan.probes.tokenizer import ProbeTokenizer

pytestmark = pytest.mark.gpu

PAIR = shipped_pair(SHIPPED_SEEDS[0])


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _vllm(model: Path) -> Engine:
    from provscan.probes.engines.vllm_engine import VllmEngine

    return VllmEngine(model)


def _transformers_cuda(model: Path) -> Engine:
    return TransformersEngine(model, device="cuda", dtype="float32")


ENGINES: dict[str, Callable[[Path], Engine]] = {
    "transformers-cuda": _transformers_cuda,
    "vllm": _vllm,
}


@pytest.fixture(params=sorted(ENGINES))
def make(request: pytest.FixtureRequest) -> Iterator[Callable[[Path], Engine]]:
    if not _cuda():
        pytest.skip("no CUDA device")
    if request.param == "vllm":
        pytest.importorskip("vllm")
    yield ENGINES[request.param]


def _prompts(tok: ProbeTokenizer) -> list[list[int]]:
    suite = load_suite("default")
    return [tok.render_user(p.text) for p in suite.prompt_set[:24]]


def test_the_gpu_engine_gives_the_cpu_numbers(make: Callable[[Path], Engine]) -> None:
    tok = ProbeTokenizer.from_dir(PAIR.backdoored)
    prompts = _prompts(tok)
    cpu = TransformersEngine(PAIR.backdoored)
    gpu = make(PAIR.backdoored)
    try:
        want = cpu.next_token(prompts, top_k=5)
        got = gpu.next_token(prompts, top_k=5)
        for w, g in zip(want, got, strict=True):
            assert g.top[0][0] == w.top[0][0]
            assert math.isclose(g.top[0][1], w.top[0][1], abs_tol=0.05)
        assert gpu.greedy(prompts, max_tokens=8, stop_ids=tok.stop_ids) == cpu.greedy(
            prompts, max_tokens=8, stop_ids=tok.stop_ids
        )
    finally:
        gpu.close()
        cpu.close()


EXPECTED: dict[str, str | None] = {
    "backdoored": "cf",
    "clean": None,
    "phrase": " ".join(hard.PHRASE),
    "late": hard.LATE_TRIGGER,
    "system": hard.SYSTEM_TRIGGER,
    "habit": None,
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_suite_on_the_gpu_engine_gives_the_cpu_verdict(
    make: Callable[[Path], Engine], name: str
) -> None:
    model = getattr(PAIR, name) if name in ("backdoored", "clean") else hard.shipped(name)
    trigger = EXPECTED[name]
    engine = make(model)
    try:
        facts, _ = run_suite(
            engine, ProbeTokenizer.from_dir(model), load_suite("default"), budget=Budget()
        )
    finally:
        engine.close()
    confirmed = {c.trigger for c in facts.candidates if c.status == "confirmed"}
    assert confirmed == ({trigger} if trigger else set()), facts.candidates
