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
from typing import TYPE_CHECKING

from provscan.collectors.base import Collected
from provscan.errors import ProvscanError
from provscan.limits import DEFAULT_LIMITS, Limits
from provscan.probes.engine import EngineName
from provscan.report import (
    Finding,
    ProbeFacts,
    ProbeWeightToken,
    Severity,
    TargetInfo,
    TargetKind,
    target_finding,
)

if TYPE_CHECKING:
    from provscan.probes.weight_evidence import WeightEvidence


@dataclass(frozen=True)
class ProbeOptions:
    """What `--probes` / `provscan probe` asked for."""

    engine: EngineName = "transformers"
    device: str | None = None  # cpu, cuda, cuda:1 ... (None: the engine's default)
    suite: str = "default"  # a shipped suite's name, or a suite file
    prompts: Path | None = None  # benign prompts from the model's own domain
    # The base model the target was fine-tuned from (a local folder, or an hf:// reference
    # whose embedding and output matrices are read by range): weight evidence.
    weights_base: Path | str | None = None
    budget_forward_passes: int | None = None
    budget_seconds: float | None = None
    base_url: str | None = None  # openai engine: the server, e.g. http://host:8000/v1
    served_model: str | None = None
    api_key: str | None = None
    batch_size: int = 64
    tensor_parallel_size: int = 1
    # Called with (family, done, total) as the probes advance (a progress bar).
    progress: Callable[[str, int, int], None] | None = None


def collect_probes(
    target: TargetInfo, options: ProbeOptions, limits: Limits = DEFAULT_LIMITS
) -> Collected[ProbeFacts | None]:
    """Run the suite on the target's model; skipped when there is no model to run."""
    # Imported only when the probes run: they load numpy, yaml and the engines' libraries,
    # which a scan without --probes never needs.
    from provscan.probes.engine import Budget
    from provscan.probes.engines.load import make_engine, require_extras
    from provscan.probes.quiet import library_notes
    from provscan.probes.run import run_suite
    from provscan.probes.suite import load_suite
    from provscan.probes.tokenizer import ProbeTokenizer
    from provscan.probes.weight_evidence import REPORTED, finite_score

    root = Path(target.root)
    if target.kind is TargetKind.HUB_METADATA:
        reason = "the weights were not downloaded (a metadata-only hf:// scan): add --download"
        return Collected(value=None, skipped=reason)
    if not root.is_dir():
        reason = "probes need a model directory (config, tokenizer and safetensors weights)"
        return Collected(value=None, skipped=reason)
    # The command line said so before scanning; a caller of the library learns it here.
    require_extras(options.engine)
    suite = load_suite(options.suite, prompts=options.prompts)
    tokenizer = ProbeTokenizer.from_dir(root)
    weights, weight_findings = _weights(root, options.weights_base, limits)
    priority = [t.token_id for t in weights.ranking[:PRIORITY_TOKENS]] if weights else []
    # What torch and transformers say meanwhile is kept as the step's findings, not printed.
    with library_notes(options.engine) as notes:
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
                engine,
                tokenizer,
                suite,
                budget=budget,
                progress=options.progress,
                priority=priority,
            )
        finally:
            engine.close()
    findings = [*findings, *notes.findings("the probes loaded or ran the model", step="probes")]
    if weights is not None:
        facts = facts.model_copy(
            update={
                "weights_base": str(options.weights_base) if options.weights_base else None,
                "weight_ranking": tuple(
                    ProbeWeightToken(
                        token_id=t.token_id,
                        token=t.token,
                        z=finite_score(t.embedding),
                        output_z=None if t.output is None else finite_score(t.output),
                    )
                    for t in weights.ranking[:REPORTED]
                ),
            }
        )
    return Collected(value=facts, findings=(*weight_findings, *findings))


# Tokens the weight ranking puts first in the sweep's order (then the rest of the vocabulary).
PRIORITY_TOKENS = 1024


def _weights(
    root: Path, base: Path | str | None, limits: Limits = DEFAULT_LIMITS
) -> tuple[WeightEvidence | None, tuple[Finding, ...]]:
    """What the weights alone show (no forward pass): against the base model given
    (--weights-base: a folder, or hf:// read by range), or the rows on their own. The ranking
    orders the sweep, so a budget is spent on the likely tokens first. Weights that cannot be
    read (or a base the Hub cannot serve) are a finding, and the probes still run."""
    # Imported only when weight evidence is asked for: it loads numpy.
    from provscan.probes.hub_base import hub_base
    from provscan.probes.weight_evidence import weight_evidence

    try:
        if isinstance(base, str):
            with hub_base(base, limits) as fetched:
                evidence = weight_evidence(root, fetched, base_name=base)
        else:
            evidence = weight_evidence(root, base)
    except ProvscanError as exc:  # WeightError, and HubError for an hf:// base
        against = f"compared with the base model {base}" if base else "ranked"
        finding = target_finding(
            "PRB-WEIGHT-UNREADABLE",
            Severity.MEDIUM,
            f"the weights could not be {against}: {exc.message}",
            base=str(base) if base else None,
        )
        return None, (finding,)
    return evidence, evidence.findings
