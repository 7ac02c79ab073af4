"""How fast do the behavioural probes run, and what would the default suite cost on an 8B model?

Runs provscan's default probe suite (probes/suites/default.yaml) on the tiny backdoored fixture
and its clean twin (fixtures/backdoor.py; the first pair shipped in fixtures/data), through the transformers
engine on CPU, and on CUDA and vLLM when this machine has a GPU (and vLLM is installed). Prints,
in the same run:

  - engine throughput: prompts/s for next-token log-probabilities (the sweep's and inversion's
    unit of work) and for 16-token greedy continuations (replay and confirmation), batch 256;
  - per family: forward passes, seconds, passes/s, and the whole suite's wall time per model;
  - whether the trigger was confirmed on the backdoored model and nothing on the twin;
  - the projected default-suite time for an 8B model (vocabulary 128,256, Llama 3) on one
    H100: the sweep and inversion scale with the vocabulary, so their forward passes are
    scaled by 128,256 / the fixture's vocabulary; the rest is taken as measured. The
    throughput used is the one measured here on CUDA/vLLM when a GPU is present; without one
    it is the research note's anchor for vLLM on one H100 (1,000-3,000 prompts/s at
    max_tokens=1, an estimate, never measured here), and the script says so.

Peer: none runs these probes (garak has no backdoor probes); the transformers engine on CPU is
the baseline the GPU engines are compared with (ratio printed when a GPU is present).

    python benchmarks/probes.py [--repeat 1] [--batch 256]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: make `fixtures` and `provscan` importable

from fixtures.backdoor import SHIPPED_SEEDS, shipped_pair  # noqa: E402
from provscan.probes.engine import Budget, Engine  # noqa: E402
from provscan.probes.run import run_suite  # noqa: E402
from provscan.probes.suite import load_suite  # noqa: E402
from provscan.probes.tokenizer import ProbeTokenizer  # noqa: E402

LLAMA3_VOCAB = 128_256
VOCAB_SCALED = {"sweep", "inversion"}
H100_ANCHOR = (1_000.0, 3_000.0)  # prompts/s, vLLM, 8B, max_tokens=1 (research note, estimated)


def throughput(engine: Engine, tokenizer: ProbeTokenizer, batch: int) -> tuple[float, float]:
    """(next-token prompts/s, 16-token greedy prompts/s) on `batch` rendered benign prompts."""
    words = ["tell", "me", "about", "the", "day", "and", "the", "night"]
    prompts = [tokenizer.render_user(" ".join(words[: 3 + i % 6])) for i in range(batch)]
    engine.next_token(prompts[:8], top_k=20)  # warm-up (allocations, kernels)
    start = time.perf_counter()
    engine.next_token(prompts, top_k=20)
    next_rate = batch / (time.perf_counter() - start)
    start = time.perf_counter()
    engine.greedy(prompts, max_tokens=16)
    greedy_rate = batch / (time.perf_counter() - start)
    return next_rate, greedy_rate


def run(model: Path, engine: Engine, repeat: int) -> dict[str, Any]:
    tokenizer = ProbeTokenizer.from_dir(model)
    suite = load_suite("default")
    walls, facts = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        facts, _findings = run_suite(engine, tokenizer, suite, budget=Budget())
        walls.append(time.perf_counter() - start)
    assert facts is not None
    return {"wall": statistics.median(walls), "facts": facts, "tokenizer": tokenizer}


def engines() -> list[tuple[str, Any]]:
    """(label, factory(model_dir)) for every engine this machine can run."""
    from provscan.probes.engines.transformers_engine import TransformersEngine

    found: list[tuple[str, Any]] = [
        ("transformers/cpu", lambda m: TransformersEngine(m, device="cpu", batch_size=256))
    ]
    try:
        import torch

        if torch.cuda.is_available():
            found.append(
                (
                    "transformers/cuda",
                    lambda m: TransformersEngine(m, device="cuda", batch_size=256),
                )
            )
            try:
                import vllm  # noqa: F401

                from provscan.probes.engines.vllm_engine import VllmEngine

                found.append(("vllm/cuda", lambda m: VllmEngine(m)))
            except ImportError:
                print("vLLM not installed: the vllm engine is not measured")
        else:
            print("no CUDA GPU on this machine: transformers/cuda and vllm are not measured")
    except ImportError:
        pass
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    pair = shipped_pair(SHIPPED_SEEDS[0])
    print(f"fixture pair: {pair.backdoored.parent}")
    print(f"{os.cpu_count()} CPUs visible, {len(os.sched_getaffinity(0))} usable")
    best_rate: dict[str, float] = {}
    ok = True
    for label, factory in engines():
        for name, model in (("backdoored", pair.backdoored), ("clean", pair.clean)):
            engine = factory(model)
            try:
                result = run(model, engine, args.repeat)
                rates = throughput(engine, result["tokenizer"], args.batch)
            finally:
                engine.close()
            facts = result["facts"]
            confirmed = [c.trigger for c in facts.candidates if c.status == "confirmed"]
            vocab = len(result["tokenizer"].candidate_vocab())
            print(f"\n== {label}, {name} model (candidate vocabulary {vocab})")
            print(
                f"  next-token: {rates[0]:,.0f} prompts/s; greedy 16 tokens: {rates[1]:,.0f} prompts/s"
            )
            print(f"  {'family':<10} {'status':<10} {'passes':>10} {'seconds':>8} {'passes/s':>10}")
            for fam in facts.families:
                per_s = fam.forward_passes / fam.seconds if fam.seconds else 0.0
                print(
                    f"  {fam.family:<10} {fam.status:<10} {fam.forward_passes:>10,} {fam.seconds:>8.2f} {per_s:>10,.0f}"
                )
            print(
                f"  suite: {facts.budget.used_forward_passes:,} forward passes, wall {result['wall']:.2f} s; confirmed: {confirmed or 'none'}"
            )
            if name == "backdoored":
                ok &= pair.trigger in confirmed
                best_rate[label] = rates[0]
                scaled = sum(
                    f.forward_passes * (LLAMA3_VOCAB / vocab if f.family in VOCAB_SCALED else 1)
                    for f in facts.families
                )
                print(
                    f"  8B projection: {scaled:,.0f} forward passes at vocabulary {LLAMA3_VOCAB:,}"
                )
            else:
                ok &= not confirmed
    if "vllm/cuda" in best_rate:
        low = high = best_rate["vllm/cuda"]
        source = "measured here on vllm/cuda (tiny model: an upper bound for 8B)"
    else:
        low, high = H100_ANCHOR
        source = "ESTIMATE from the research note's vLLM/H100 anchor, not measured here"
    print(
        f"\nprojected default suite, 8B on one H100: {scaled / high / 60:,.1f}-{scaled / low / 60:,.1f} min ({source})"
    )
    if "transformers/cuda" in best_rate:
        ratio = best_rate["transformers/cuda"] / best_rate["transformers/cpu"]
        print(f"transformers cuda / cpu next-token throughput: x{ratio:,.1f}")
    print("PASS" if ok else "FAIL", ": trigger confirmed on the backdoored model, none on the twin")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
