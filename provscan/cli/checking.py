"""How does one target go from the parsed flags to a decided report (check, inspect, probe)?

Everything here takes the frozen settings of provscan.cli.settings, so that a many-target
run can hand the same values to a worker process. Heavy modules are imported inside the
functions: `provscan --help` must not pay for them.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Any

from provscan.cli import term
from provscan.cli.outputs import OutputRequest
from provscan.cli.packs import (
    backend_from,
    policy_dirs,
    server_scope,
    target_config,
    with_identities,
)
from provscan.cli.probe_request import probe_options
from provscan.cli.settings import CheckSettings, ScanSettings
from provscan.errors import ExitCode
from provscan.library_warnings import recorded

if TYPE_CHECKING:
    from provscan.pipeline import ScanOptions
    from provscan.probes.collect import ProbeOptions
    from provscan.report import Decision, Report
    from provscan.signing.trust import TrustSettings


def exit_code(decision: Decision) -> int:
    return int(ExitCode.of(decision.value))


def check_one(target: str, settings: CheckSettings, *, progress: bool) -> Report:
    """`provscan check TARGET`: scan, then the policy's verdict (the report carries it)."""
    # Imported here: the policy engine and the trust loader are heavy (see the docstring).
    from provscan.policy.engine import evaluate
    from provscan.signing.trust import trust_from_config

    decision, scan = settings.decision, settings.scan
    packs = policy_dirs(decision.policies)
    config_file = target_config(
        decision.config_path, packs, target, from_target=decision.config_from_target
    )
    config = with_identities(
        config_file.table, decision.trusted_identities, decision.trusted_issuers
    )
    trust = trust_from_config(
        config,
        config_file.path.parent if config_file.path is not None else None,
        keys=scan.trusted_keys,
        cas=scan.trusted_cas,
        sigstore_root=scan.sigstore_trusted_root,
    )
    backend = backend_from(decision.engine)
    packs, policy_config = server_scope(backend, decision.policies, packs, config)
    probes = (
        probe_options(settings.probes, "provscan check --probes")
        if settings.probes is not None
        else None
    )
    report = scan_target(target, scan, trust, probes, progress=progress)
    verdict = evaluate(
        report, packs, policy_config, timeout_s=decision.policy_timeout, backend=backend
    )
    return report.model_copy(update={"verdict": verdict})


def scan_target(
    target: str,
    scan: ScanSettings,
    trust: TrustSettings,
    probes: ProbeOptions | None = None,
    *,
    probes_only: bool = False,
    progress: bool,
) -> Report:
    """Scan with the flags' options; warnings libraries raise meanwhile become findings."""
    # Imported here: the scanner is heavy (see the module docstring).
    from provscan.hub.ref import HubOptions
    from provscan.pipeline import ScanOptions, available_cpus

    options = ScanOptions(
        hash_workers=scan.workers or available_cpus(),
        serialization=scan.serialization,
        shard_size=scan.shard_size,
        signature_paths=scan.signatures,
        trust=trust,
        hub=HubOptions(
            download=scan.download,
            include=scan.include,
            exclude=scan.exclude,
            offline=scan.offline,
            progress=progress,
        ),
        probes=probes,
        probes_only=probes_only,
    )
    # A library's warning (a deprecation, a FutureWarning from transformers) printed on
    # stderr would be lost in a CI log and mixed into a terminal's report: the report keeps it.
    with recorded() as notes:
        report = _scan_with_progress(target, options) if progress else _scan(target, options)
    extra = notes.findings("the model was read")
    if not extra:
        return report
    return report.model_copy(update={"findings": (*report.findings, *extra)})


def _scan(target: str, options: ScanOptions) -> Report:
    # Imported here: the scanner is heavy (see the module docstring).
    from provscan.pipeline import scan

    return scan(target, options)


def _scan_with_progress(target: str, options: ScanOptions) -> Report:
    # Imported here: rich and the scanner are heavy (see the module docstring).
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from provscan.pipeline import scan

    # One live display for the whole scan: hashing, then each probe family.
    columns = (
        TextColumn("{task.description:<18}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
    )
    console = Console(file=sys.stderr, no_color=not term.color_enabled(sys.stderr))
    with Progress(*columns, transient=True, console=console) as progress:
        hashing = progress.add_task("hashing", total=None, detail="")
        families: dict[str, Any] = {}

        def hashed(n: int) -> None:
            progress.advance(hashing, n)
            task = progress.tasks[hashing]
            progress.update(hashing, detail=f"{task.completed / 2**20:,.0f} MiB")

        def probed(family: str, done: int, total: int) -> None:
            if family not in families:
                families[family] = progress.add_task(f"probes: {family}", total=total, detail="")
            progress.update(families[family], completed=done, total=total, detail=f"{done}/{total}")

        probes = options.probes
        with_progress = dataclasses.replace(
            options,
            on_hash_start=lambda total: progress.update(hashing, total=total),
            on_hash_progress=hashed,
            probes=dataclasses.replace(probes, progress=probed) if probes is not None else None,
        )
        return scan(target, with_progress)


def show_progress(output: OutputRequest) -> bool:
    return not output.quiet and term.interactive(sys.stderr)
