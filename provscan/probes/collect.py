"""Does the model behave like a backdoored one? The probes step of a scan.

Runs the probe suite on the scanned model with the engine asked for, and returns its
section of the report. The model is loaded only from its safetensors weights and its
tokenizer from its files (the engines refuse anything else, and models that need remote
code). An engine that cannot run (out of memory, a crash, a refused model) raises
EngineError: the step fails, and the policy never reads that as a pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from provscan.collectors.base import Collected
from provscan.report import ProbeFacts, TargetInfo, TargetKind

EngineName = Literal["transformers", "vllm", "openai"]


@dataclass(frozen=True)
class ProbeOptions:
    """What `--probes` / `provscan probe` asked for."""

    engine: EngineName = "transformers"
    device: str | None = None  # cpu, cuda, cuda:1 ... (None: the engine's default)
    suite: str = "default"  # a shipped suite's name, or a suite file
    prompts: Path | None = None  # benign prompts from the model's own domain
    budget_forward_passes: int | None = None
    budget_seconds: float | None = None
    base_url: str | None = None  # openai engine: the server, e.g. http://host:8000/v1
    served_model: str | None = None
    api_key: str | None = None
    batch_size: int = 64
    tensor_parallel_size: int = 1
    # Called with (family, done, total) as the probes advance (a progress bar).
    progress: Callable[[str, int, int], None] | None = None


def collect_probes(target: TargetInfo, options: ProbeOptions) -> Collected[ProbeFacts | None]:
    """Run the suite on the target's model; skipped when there is no model to run."""
    from provscan.probes.engine import Budget
    from provscan.probes.engines.load import make_engine
    from provscan.probes.run import run_suite
    from provscan.probes.suite import load_suite
    from provscan.probes.tokenizer import ProbeTokenizer

    root = Path(target.root)
    if target.kind is TargetKind.HUB_METADATA:
        reason = "the weights were not downloaded (a metadata-only hf:// scan): add --download"
        return Collected(value=None, skipped=reason)
    if not root.is_dir():
        reason = "probes need a model directory (config, tokenizer and safetensors weights)"
        return Collected(value=None, skipped=reason)
    suite = load_suite(options.suite, prompts=options.prompts)
    tokenizer = ProbeTokenizer.from_dir(root)
    engine = make_engine(
        options.engine,
        root,
        device=options.device,
        base_url=options.base_url,
        served_model=options.served_model,
        batch_size=options.batch_size,
        tensor_parallel_size=options.tensor_parallel_size,
        api_key=options.api_key,
    )
    try:
        budget = Budget(options.budget_forward_passes, options.budget_seconds)
        facts, findings = run_suite(
            engine, tokenizer, suite, budget=budget, progress=options.progress
        )
    finally:
        engine.close()
    return Collected(value=facts, findings=tuple(findings))
