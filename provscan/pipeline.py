"""How does a target become a Report? Resolve, then run each collector in a fixed order."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, TypeVar

from provscan import __version__
from provscan.collectors.base import Collected
from provscan.collectors.fact_sources import fact_sources, signed_by
from provscan.collectors.hashing import (
    DEFAULT_IGNORE_PATHS,
    HashResult,
    hash_files,
    planned_read_bytes,
)
from provscan.collectors.hub_records import HubRecords, compare_hub_records
from provscan.collectors.inventory import collect_inventory, file_entry
from provscan.collectors.licence import collect_licence
from provscan.collectors.licence_files import licence_texts
from provscan.collectors.modelcard import collect_model_card
from provscan.collectors.modelfacts import collect_model_facts
from provscan.collectors.origin import collect_origin
from provscan.collectors.serialization.scan import scan_serialization
from provscan.collectors.signatures import SignaturePlan, collect_signatures, plan_signatures
from provscan.errors import ProvscanError
from provscan.files import SniffedFile, swapped_files
from provscan.hub.ref import HubOptions
from provscan.limits import DEFAULT_LIMITS, Limits
from provscan.probes.collect import ProbeOptions, collect_probes
from provscan.report import (
    CardFacts,
    FactSource,
    FileEntry,
    Finding,
    LicenceFacts,
    Location,
    Manifest,
    ModelFacts,
    OriginFacts,
    ProbeFacts,
    RecordCheck,
    Report,
    ScanParameters,
    SignatureFacts,
    Step,
    StepStatus,
    TargetKind,
    ToolInfo,
)
from provscan.resolve.resolved import ResolvedTarget
from provscan.resolve.target import resolve_target
from provscan.signing.rehash import model_signing_rehash
from provscan.signing.trust import TrustSettings, load_trust

T = TypeVar("T")

# Steps the scan runs, in order. The default policy requires all of them.
STEPS = (
    "inventory", "hashing", "signatures", "serialization", "model_facts", "model_card",
    "origin", "licence",
)  # fmt: skip


@dataclass(frozen=True)
class ScanOptions:
    limits: Limits = DEFAULT_LIMITS
    hash_workers: int = field(default_factory=lambda: available_cpus())
    serialization: Literal["files", "shards"] = "files"
    shard_size: int = 1_000_000_000
    # Signature files given besides the target's own model.sig (--signature).
    signature_paths: tuple[Path, ...] = ()
    # What signatures are checked against (None: only Sigstore's embedded public-good root).
    trust: TrustSettings | None = None
    # How an hf:// target is fetched.
    hub: HubOptions = field(default_factory=HubOptions)
    # Behavioural backdoor probes (--probes / provscan probe); None: not run.
    probes: ProbeOptions | None = None
    # provscan probe: the inventory and the probes only, no static checks.
    probes_only: bool = False
    # Called once with the total bytes to hash, then with each hashed chunk's size.
    on_hash_start: Callable[[int], None] | None = None
    on_hash_progress: Callable[[int], None] | None = None


def available_cpus() -> int:
    """CPUs this process may run on (a container's CPU limit, not the host's core count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class _StepRunner:
    """Runs collectors so that an exception becomes a failed step, never a crash or a pass."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.findings: list[Finding] = []

    def run(self, name: str, collect: Callable[[], Collected[T]]) -> T | None:
        start = time.monotonic()
        try:
            result = collect()
        except Exception as exc:  # noqa: BLE001 - isolation is the point: record and go on
            text = exc.one_line() if isinstance(exc, ProvscanError) else str(exc)
            self._record(name, StepStatus.FAILED, f"{type(exc).__name__}: {text}", start)
            return None
        self.findings.extend(result.findings)
        if result.skipped is not None:
            self._record(name, StepStatus.SKIPPED, result.skipped, start)
        else:
            self._record(name, StepStatus.COMPLETED, None, start)
        return result.value

    def fail(self, name: str, reason: str) -> None:
        """Mark a step that ran to its end but could not do all its work as failed."""
        self.steps = [
            Step(
                name=s.name,
                status=StepStatus.FAILED,
                reason=reason,
                duration_ms=s.duration_ms,
            )
            if s.name == name
            else s
            for s in self.steps
        ]

    def _record(self, name: str, status: StepStatus, reason: str | None, start: float) -> None:
        elapsed = int((time.monotonic() - start) * 1000)
        self.steps.append(Step(name=name, status=status, reason=reason, duration_ms=elapsed))


def scan(target: str, options: ScanOptions | None = None) -> Report:
    """Scan a target into a Report. Raises ProvscanError only when there is nothing to scan."""
    options = options or ScanOptions()
    scanned_at = datetime.now(timezone.utc).replace(microsecond=0)
    resolved = resolve_target(target, options.limits, options.hub)
    with resolved.cleanup:
        return _scan(resolved, options, scanned_at)


def _probes_only(resolved: ResolvedTarget, options: ScanOptions, scanned_at: datetime) -> Report:
    """provscan probe: what the files are, then the probes; none of the static checks."""
    assert options.probes is not None
    probe_options = options.probes
    runner = _StepRunner()
    runner.findings.extend(resolved.findings)
    sniffed = runner.run("inventory", lambda: collect_inventory(resolved.files, options.limits))
    probes = runner.run(
        "probes", lambda: collect_probes(resolved.info, probe_options, options.limits)
    )
    files = tuple(file_entry(item, None) for item in sniffed or [])
    return _report(resolved, options, scanned_at, runner, files, Sections(probes=probes))


def _scan(resolved: ResolvedTarget, options: ScanOptions, scanned_at: datetime) -> Report:
    if options.probes_only:
        return _probes_only(resolved, options, scanned_at)
    runner = _StepRunner()
    runner.findings.extend(resolved.findings)
    root = Path(resolved.info.root)
    # Signatures are read before hashing: the signer's serialization decides the manifest,
    # so that verifying costs no second read. A failure here fails the signatures step.
    plan: SignaturePlan | Exception
    try:
        plan = plan_signatures(resolved.files, options.signature_paths, options.limits)
        files = plan.manifest_files(resolved.files)
    except Exception as exc:  # noqa: BLE001 - recorded as the signatures step's failure below
        plan, files = exc, resolved.files
    signed = plan.hashing if isinstance(plan, SignaturePlan) else None
    method = signed.method if signed is not None else options.serialization
    shard_size = (
        (signed.shard_size or options.shard_size) if signed is not None else options.shard_size
    )
    # Files not downloaded (hf:// metadata-only) have only the Hub's whole-file SHA-256.
    remote = any(f.read != "whole" for f in files)
    if remote:
        method = "files"

    sniffed: list[SniffedFile] = (
        runner.run("inventory", lambda: collect_inventory(files, options.limits)) or []
    )

    hub = HubRecords()  # what huggingface_hub's records showed; set by hashing()

    def hashing() -> Collected[HashResult]:
        nonlocal hub
        if options.on_hash_start is not None:
            options.on_hash_start(planned_read_bytes(files, method=method, shard_size=shard_size))
        result = hash_files(
            files,
            model_name=resolved.info.name,
            workers=options.hash_workers,
            buffer_size=options.limits.hash_buffer,
            method=method,
            shard_size=shard_size,
            ignore_paths=plan.excluded()
            if isinstance(plan, SignaturePlan) and plan.signatures
            else DEFAULT_IGNORE_PATHS,
            allow_symlinks=signed.allow_symlinks if signed is not None else True,
            single_file_target=resolved.info.kind is TargetKind.FILE,
            progress=options.on_hash_progress,
        )
        # Whatever huggingface_hub recorded of the files (blob names, download metadata,
        # the commit's listing) is compared offline, from the digests just computed.
        hub = compare_hub_records(resolved.info, files, result.value.digests)
        if not hub.findings:
            return result
        return Collected(value=result.value, findings=result.findings + hub.findings)

    hashed: HashResult | None = runner.run("hashing", hashing)
    if hashed is not None and not hashed.complete:
        runner.fail("hashing", "some files could not be hashed; the manifest is incomplete")
    manifest: Manifest | None = hashed.manifest if hashed is not None and hashed.complete else None

    def signatures() -> Collected[SignatureFacts]:
        if isinstance(plan, Exception):
            raise plan
        formats = {item.file.rel: item.format for item in sniffed}
        return collect_signatures(
            plan,
            manifest,
            files,
            formats,
            options.trust or load_trust(),
            rehash=model_signing_rehash(root) if root.is_dir() and not remote else None,
        )

    signature_facts: SignatureFacts | None = runner.run("signatures", signatures)
    runner.run("serialization", lambda: scan_serialization(sniffed, options.limits))
    model: ModelFacts | None = runner.run(
        "model_facts", lambda: collect_model_facts(sniffed, options.limits)
    )
    card: CardFacts | None = runner.run(
        "model_card", lambda: collect_model_card(files, options.limits)
    )
    origin: OriginFacts | None = runner.run(
        "origin",
        lambda: collect_origin(
            sniffed, resolved.info, card, model, options.limits, hub=resolved.lineage
        ),
    )
    licence: LicenceFacts | None = runner.run(
        "licence",
        lambda: collect_licence(sniffed, resolved.info, card, origin, options.limits),
    )

    probe_options = options.probes
    probes: ProbeFacts | None = (
        runner.run("probes", lambda: collect_probes(resolved.info, probe_options, options.limits))
        if probe_options is not None
        else None
    )

    # Every file must still be the one listed: a swap mid-scan is critical, whatever the
    # reader that met it made of it.
    runner.findings.extend(swapped_files(resolved.files))
    digests = hashed.digests if hashed is not None else {}
    proven = signed_by(signature_facts, files)
    entries = [file_entry(item, digests.get(item.file.rel)) for item in sniffed]
    sections = Sections(
        serialization=method,
        shard_size=shard_size if method == "shards" else None,
        manifest=manifest,
        model=model,
        card=card,
        origin=origin,
        licence=licence,
        signatures=signature_facts,
        records=hub.records,
        fact_sources=fact_sources(card, licence, origin, (e.path for e in entries), proven),
        probes=probes,
        # Read now, while the files are the ones just hashed (the BOM attaches them).
        licence_texts=licence_texts(resolved.info, entries),
    )
    signed_entries = tuple(
        e.model_copy(update={"signed_by": proven[e.path]}) if e.path in proven else e
        for e in entries
    )
    return _report(resolved, options, scanned_at, runner, signed_entries, sections)


@dataclass(frozen=True)
class Sections:
    """What a scan read besides its files, steps and findings (None: not read)."""

    serialization: Literal["files", "shards"] | None = None  # None: the options'
    shard_size: int | None = None
    manifest: Manifest | None = None
    model: ModelFacts | None = None
    card: CardFacts | None = None
    origin: OriginFacts | None = None
    licence: LicenceFacts | None = None
    signatures: SignatureFacts | None = None
    records: tuple[RecordCheck, ...] = ()
    fact_sources: tuple[FactSource, ...] = ()
    probes: ProbeFacts | None = None
    licence_texts: dict[str, str] = field(default_factory=dict)


def _report(
    resolved: ResolvedTarget,
    options: ScanOptions,
    scanned_at: datetime,
    runner: _StepRunner,
    files: tuple[FileEntry, ...],
    sections: Sections,
) -> Report:
    """The Report of a scan: the one place one is built."""
    return Report(
        tool=ToolInfo(version=__version__),
        scanned_at=scanned_at,
        target=resolved.info,
        parameters=ScanParameters(
            serialization=sections.serialization or options.serialization,
            shard_size=sections.shard_size,
            hash_workers=options.hash_workers,
            limits=options.limits.as_dict(),
        ),
        steps=tuple(runner.steps),
        files=files,
        manifest=sections.manifest,
        model=sections.model,
        card=sections.card,
        origin=sections.origin,
        licence=sections.licence,
        signatures=sections.signatures,
        records=sections.records,
        fact_sources=sections.fact_sources,
        probes=sections.probes,
        findings=tuple(
            _capped(_ordered(runner.findings), options.limits.findings_per_rule_and_file)
        ),
        licence_texts=sections.licence_texts,
    )


def _ordered(findings: list[Finding]) -> list[Finding]:
    def key(f: Finding) -> tuple[int, str, str, str]:
        path = f.location.path if f.location and f.location.path else ""
        return (-f.severity.rank, f.rule_id, path, f.message)

    return sorted(findings, key=key)


def _capped(findings: list[Finding], cap: int) -> list[Finding]:
    """Keep at most `cap` findings per (rule, file), then one that counts the rest.

    A hostile file can produce findings by the thousand (one per unknown global); the
    policy engine's cost grows with the square of a rule's result set, and a person reads
    none of them past the first few. Findings arrive ordered most severe first, so what is
    kept is the worst of each group, and the summary carries the group's worst severity.
    """
    kept: list[Finding] = []
    dropped: dict[tuple[str, str], list[Finding]] = {}
    seen: dict[tuple[str, str], int] = {}
    for finding in findings:
        path = finding.location.path if finding.location and finding.location.path else ""
        group = (finding.rule_id, path)
        seen[group] = seen.get(group, 0) + 1
        if seen[group] <= cap:
            kept.append(finding)
        else:
            dropped.setdefault(group, []).append(finding)
    for (rule_id, path), rest in dropped.items():
        worst = max(rest, key=lambda f: f.severity.rank)
        kept.append(
            Finding(
                rule_id=rule_id,
                severity=worst.severity,
                message=f"{path or 'the target'}: {len(rest)} more {rule_id} findings not listed (over {cap} for one file)",
                location=Location(path=path) if path else None,
                evidence={"not_listed": len(rest)},
            )
        )
    return _ordered(kept)
