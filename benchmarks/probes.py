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
    H100: each family's forward passes are split into a part per candidate token and a fixed
    part by running the backdoored model on the whole candidate vocabulary, on half of it,
    and without the sweep's system-turn pass (which stops at `sweep.system_limit`
    candidates); the part per candidate is scaled to 128,256 (the system pass to its limit),
    the fixed part taken as measured. The
    throughput used is the one measured here on CUDA/vLLM when a GPU is present; without one
    it is the research note's anchor for vLLM on one H100 (1,000-3,000 prompts/s at
    max_tokens=1, an estimate, never measured here), and the script says so.

The work is also counted in engine units (provscan.probes.engine.Metered): prompts, prompt
tokens, tokens prefilled after an exact prefix cache, and tokens generated, per family. These
counts project onto an 8B model without a GPU, split the same way (what grows with the
candidate vocabulary, --vocab, 128,256 for Llama 3, and what does not: stage 2, confirmation,
the phrase search's fixed pool, leakage, replay); the fixture's prompts are shorter in tokens than an 8B tokenizer makes them, so the token counts
are a lower bound. Time is then work / throughput, where the throughput is compute-bound
arithmetic: a forward pass of an N-parameter model costs 2N FLOP per token (prefilled or
generated; the probes' batches of hundreds of short sequences keep decoding near the H100's
compute ridge), and one H100 SXM gives 989 TFLOPS dense BF16 (NVIDIA's datasheet,
https://www.nvidia.com/en-us/data-center/h100/: 1,979 TFLOPS with sparsity) at the model
FLOP utilisation --mfu (default 0.5, a typical figure for vLLM prefill; measure it with
`vllm bench throughput` on the target GPU and pass it here). No published vLLM figure for
this workload (many short prompts sharing prefixes) was found to anchor it more closely.

Peer: none runs these probes (garak has no backdoor probes); the transformers engine on CPU is
the baseline the GPU engines are compared with (ratio printed when a GPU is present).

    python benchmarks/probes.py [--repeat 1] [--batch 256]
"""

from __future__ import annotations

import argparse
import dataclasses
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
H100_ANCHOR = (1_000.0, 3_000.0)  # prompts/s, vLLM, 8B, max_tokens=1 (research note, estimated)
H100_BF16_DENSE_TFLOPS = 989.0  # H100 SXM datasheet (1,979 with sparsity)
LLAMA3_8B_PARAMS = 8.03e9
TARGET_MINUTES = 10.0
# The families that score every candidate token (the rest have fixed pools and prompt counts;
# fitting a slope to them would turn run-to-run noise in prefix-cache hits into growth).
VOCAB_SCANS = {"sweep", "inversion"}
WORK = ("prompts", "prompt_tokens", "prefill_tokens", "generated_tokens")


def projected_work(
    full: Any,
    half: Any,
    no_system: Any,
    vocab: int,
    target_vocab: int,
    system_limit: int,
) -> dict[str, dict[str, float]]:
    """Per family, the counted work projected to `target_vocab` candidates.

    The sweep's and the inversion's work is a part that grows with the candidate vocabulary
    (stage 1, the first-token scan) and a part that does not (stage 2, confirmation); the
    other families (leakage, phrase over its fixed pool, replay) do not grow. Runs of the same
    model on the whole candidate vocabulary (`full`) and on half of it (`half`) give the work
    per candidate (the slope) and the rest. The sweep's system-turn pass grows only up to
    `system_limit` candidates: a third run without it (`no_system`) gives its share of the
    slope, projected to min(target_vocab, system_limit). Scaling a family's whole count by the
    vocabulary ratio would multiply stage 2 and confirmation by a thousand."""
    before = {f.family: f for f in half.families}
    plain = {f.family: f for f in no_system.families}
    half_vocab = vocab // 2
    out: dict[str, dict[str, float]] = {}
    for fam in full.families:
        out[fam.family] = {}
        for k in (*WORK, "forward_passes"):
            value = getattr(fam, k)
            if fam.family not in VOCAB_SCANS:
                out[fam.family][k] = value
                continue
            slope = max(0.0, (value - getattr(before[fam.family], k)) / (vocab - half_vocab))
            system = 0.0
            if fam.family == "sweep":  # the system pass: its work at `vocab` candidates
                system = max(0.0, value - getattr(plain[fam.family], k)) / vocab
            grows = (slope - system) * (target_vocab - vocab)
            capped = system * (min(target_vocab, system_limit) - vocab)
            out[fam.family][k] = value + grows + capped
    return out


def projected_minutes(work: dict[str, dict[str, float]], params: float, mfu: float) -> float:
    tokens = sum(w["prefill_tokens"] + w["generated_tokens"] for w in work.values())
    return tokens * 2 * params / (H100_BF16_DENSE_TFLOPS * 1e12 * mfu) / 60


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


def run(
    model: Path,
    engine: Engine,
    repeat: int,
    limit: int | None = None,
    system_limit: int | None = None,
) -> dict[str, Any]:
    tokenizer = ProbeTokenizer.from_dir(model)
    suite = load_suite("default")
    if limit is not None:  # the first `limit` candidate tokens only
        suite = dataclasses.replace(suite, vocab=dataclasses.replace(suite.vocab, limit=limit))
    if system_limit is not None:  # the sweep's system-turn pass over this many only
        sweep = dataclasses.replace(suite.sweep, system_limit=system_limit)
        suite = dataclasses.replace(suite, sweep=sweep)
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
    parser.add_argument("--vocab", type=int, default=LLAMA3_VOCAB, help="target vocabulary")
    parser.add_argument("--params", type=float, default=LLAMA3_8B_PARAMS)
    parser.add_argument("--mfu", type=float, default=0.5, help="model FLOP utilisation")
    parser.add_argument(
        "--count-only", action="store_true", help="CPU transformers engine only: count, project"
    )
    args = parser.parse_args()
    pair = shipped_pair(SHIPPED_SEEDS[0])
    print(f"fixture pair: {pair.backdoored.parent}")
    print(f"{os.cpu_count()} CPUs visible, {len(os.sched_getaffinity(0))} usable")
    best_rate: dict[str, float] = {}
    ok = True
    work: dict[str, dict[str, float]] = {}
    for label, factory in engines()[: 1 if args.count_only else None]:
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
            print(
                f"  {'family':<10} {'prompts':>10} {'prompt tok':>12} {'prefilled':>12} {'generated':>10}"
            )
            for fam in facts.families:
                print(
                    f"  {fam.family:<10} {fam.prompts:>10,} {fam.prompt_tokens:>12,} {fam.prefill_tokens:>12,} {fam.generated_tokens:>10,}"
                )
            totals = {k: sum(getattr(f, k) for f in facts.families) for k in WORK}
            print(f"  {'total':<10} " + " ".join(f"{totals[k]:>10,}" for k in WORK))
            if name == "backdoored":
                ok &= pair.trigger in confirmed
                best_rate[label] = rates[0]
                if not work:
                    second = factory(model)
                    try:
                        half = run(model, second, 1, limit=vocab // 2)["facts"]
                        no_system = run(model, second, 1, system_limit=0)["facts"]
                    finally:
                        second.close()
                    limit = load_suite("default").sweep.system_limit
                    work = projected_work(facts, half, no_system, vocab, args.vocab, limit)
                scaled = sum(w["forward_passes"] for w in work.values())
                print(f"  8B projection: {scaled:,.0f} forward passes at vocabulary {args.vocab:,}")
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
    print(
        f"\nwork projected to a {args.vocab:,}-token vocabulary ({args.params / 1e9:.2f}B parameters):"
    )
    for family, w in work.items():
        print(f"  {family:<10} " + " ".join(f"{k} {w[k]:,.0f}" for k in WORK))
    total = {k: sum(w[k] for w in work.values()) for k in WORK}
    print(f"  {'total':<10} " + " ".join(f"{k} {total[k]:,.0f}" for k in WORK))
    minutes = projected_minutes(work, args.params, args.mfu)
    print(
        f"projected default suite on one H100 (compute-bound, {H100_BF16_DENSE_TFLOPS:g} TFLOPS x "
        f"MFU {args.mfu:g}): {minutes:,.1f} min; "
        + (
            f"under {TARGET_MINUTES:g} min"
            if minutes <= TARGET_MINUTES
            else f"misses {TARGET_MINUTES:g} min by {minutes - TARGET_MINUTES:,.1f} min (x{minutes / TARGET_MINUTES:,.1f})"
        )
    )
    if "transformers/cuda" in best_rate:
        ratio = best_rate["transformers/cuda"] / best_rate["transformers/cpu"]
        print(f"transformers cuda / cpu next-token throughput: x{ratio:,.1f}")
    print("PASS" if ok else "FAIL", ": trigger confirmed on the backdoored model, none on the twin")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
