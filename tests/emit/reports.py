"""One way the emitter tests build a Report by hand: a small local model, each part optional.

Reports scanned from real fixture models come from the pipeline; these hand-built ones reach
the corners a fixture cannot (a failed step, a Hub snapshot, a verdict without findings).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from provscan.report import (
    CardFacts,
    Decision,
    FileEntry,
    FileFormat,
    FileRole,
    Finding,
    Manifest,
    ManifestResource,
    ModelFacts,
    PolicyInfo,
    Reason,
    Report,
    ScanParameters,
    Step,
    StepStatus,
    TargetInfo,
    TargetKind,
    ToolInfo,
    Verdict,
)

SCANNED_AT = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
LLAMA_TEXT = (
    "LLAMA 3 COMMUNITY LICENSE AGREEMENT\nMeta Llama 3 Version Release Date: April 18, 2024\n"
)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


FILES = (
    FileEntry(
        path="config.json", size=612, format=FileFormat.JSON, role=FileRole.CONFIG, sha256=sha("c")
    ),
    FileEntry(
        path="model.safetensors",
        size=4096,
        format=FileFormat.SAFETENSORS,
        role=FileRole.WEIGHTS,
        sha256=sha("w"),
    ),
    FileEntry(
        path="README.md",
        size=900,
        format=FileFormat.TEXT,
        role=FileRole.MODEL_CARD,
        sha256=sha("r"),
    ),
    FileEntry(
        path="LICENSE",
        size=len(LLAMA_TEXT),
        format=FileFormat.TEXT,
        role=FileRole.LICENCE,
        sha256=sha("l"),
    ),
    FileEntry(
        path="sub/tokenizer.json",
        size=30,
        format=FileFormat.JSON,
        role=FileRole.TOKENIZER,
        sha256=sha("t"),
    ),
)


def entries(names: tuple[str, ...]) -> tuple[FileEntry, ...]:
    """Files known only by name: one byte each, of no particular format or role."""
    return tuple(
        FileEntry(path=p, size=1, format=FileFormat.BINARY, role=FileRole.OTHER) for p in names
    )


def decision_of(reasons: tuple[Reason, ...]) -> Decision:
    """What the reasons add up to: deny if any denies, else review if any reviews."""
    levels = {r.level for r in reasons}
    return (
        Decision.DENY
        if "deny" in levels
        else Decision.REVIEW
        if "review" in levels
        else Decision.APPROVE
    )


def make_report(
    *,
    decision: Decision | None = Decision.APPROVE,
    reasons: tuple[Reason, ...] = (),
    findings: tuple[Finding, ...] = (),
    steps: tuple[Step, ...] | None = None,
    card: CardFacts | None = None,
    repo_id: str | None = None,
    revision: str | None = None,
    files: tuple[FileEntry, ...] = FILES,
    target: TargetInfo | None = None,
    with_manifest: bool = True,
    with_model: bool = True,
    scanned_at: datetime = SCANNED_AT,
    parameters: ScanParameters | None = None,
    policy_digest: str = "sha256:" + sha("policy"),
) -> Report:
    """A hand-built report of a small local model (tiny-llama at /models/tiny-llama by default)."""
    manifest = Manifest(
        model_name="tiny-llama",
        method="files",
        allow_symlinks=False,
        ignore_paths=(".git",),
        resources=tuple(
            ManifestResource(name=f.path, algorithm="sha256", digest=f.sha256 or "") for f in files
        ),
        root_digest=sha("root"),
    )
    verdict = (
        None
        if decision is None
        else Verdict(
            decision=decision,
            reasons=reasons,
            policy=PolicyInfo(
                packs=("default",), digest=policy_digest, engine="regopy", engine_version="1.5.2"
            ),
        )
    )
    model = ModelFacts(
        architectures=("LlamaForCausalLM",),
        model_type="llama",
        config_dtype="bfloat16",
        weight_dtypes=("BF16",),
        tensor_count=3,
        parameter_count=1024,
        weight_files=("model.safetensors",),
    )
    return Report(
        tool=ToolInfo(version="0.1.0"),
        scanned_at=scanned_at,
        target=target
        or TargetInfo(
            input=repo_id or "./tiny-llama",
            kind=TargetKind.HF_CACHE_SNAPSHOT if repo_id else TargetKind.DIRECTORY,
            root="/models/tiny-llama",
            name=repo_id.split("/")[-1] if repo_id else "tiny-llama",
            repo_id=repo_id,
            revision=revision,
        ),
        parameters=parameters or ScanParameters(hash_workers=4, limits={"card_max": 4194304}),
        steps=steps
        if steps is not None
        else (
            Step(name="inventory", status=StepStatus.COMPLETED),
            Step(name="hashing", status=StepStatus.COMPLETED),
        ),
        files=files,
        manifest=manifest if with_manifest else None,
        model=model if with_model else None,
        card=card,
        findings=findings,
        verdict=verdict,
    )
