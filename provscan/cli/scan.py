"""`provscan check`, `inspect` and `probe`: which targets to scan, and what to decide and print.

Each command turns its named flags into the frozen settings of provscan.cli.settings and
hands them to provscan.cli.checking (one target) or provscan.cli.batch (several).
"""

from __future__ import annotations

from pathlib import Path

import click

from provscan.cli.batch import check_many, read_targets, unique
from provscan.cli.checking import check_one, exit_code, scan_target, show_progress
from provscan.cli.options import (
    CHECK_POLICY_HELP,
    CONFIG_HELP,
    EXISTING_FILE,
    config_in_target_option,
    config_option,
    decision_options,
    engine_options,
    output_options,
    policy_option,
    probe_options,
    scan_options,
)
from provscan.cli.outputs import OutputRequest, emit
from provscan.cli.packs import policy_dirs, probe_command_config, target_config
from provscan.cli.probe_request import probe_options as probe_options_from
from provscan.cli.settings import (
    CheckSettings,
    DecisionSettings,
    EngineChoice,
    ProbeRequest,
    ScanSettings,
)
from provscan.errors import ExitCode, UsageError


@click.command()
@click.argument("targets", nargs=-1, metavar="TARGET...")
@policy_option(CHECK_POLICY_HELP)
@config_option(CONFIG_HELP)
@config_in_target_option
@decision_options
@click.option(
    "--probes",
    "run_probes",
    is_flag=True,
    help="Also run the behavioural backdoor probes (the 'probes' extra; see --engine).",
)
@click.option(
    "--targets-from",
    type=EXISTING_FILE,
    metavar="FILE",
    help="Also check each target listed in FILE (one per line, local or hf://; '#' starts a comment).",
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Several targets: check this many at once, each in a worker process.",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Write each target's report (NAME.report.json), AI-BOM (NAME.cdx.json) and SARIF "
    "(NAME.sarif.json) here, NAME stable per target.",
)
@engine_options
@probe_options
@scan_options
def check(
    targets: tuple[str, ...],
    policies: tuple[str, ...],
    config_path: Path | None,
    config_from_target: bool,
    trusted_identities: tuple[str, ...],
    trusted_issuers: tuple[str, ...],
    policy_timeout: float,
    run_probes: bool,
    targets_from: Path | None,
    jobs: int,
    output_dir: Path | None,
    policy_engine: str,
    opa_binary: str,
    opa_url: str | None,
    opa_token_env: str | None,
    probes: ProbeRequest,
    scan: ScanSettings,
    output: OutputRequest,
) -> int:
    """Scan each TARGET, evaluate the policy, print the verdict and write the outputs.

    TARGET is a model directory, a single model file, a Hugging Face cache snapshot, or
    hf://ORG/NAME[@REVISION] (scanned as metadata: small files downloaded, weights read by
    range; --download for every byte).

    With several targets (or --targets-from, or --output-dir) each is checked on its own and
    a summary table follows (--format json: JSON lines; --json FILE: JSON lines to FILE); the
    exit code is the worst verdict's: deny, then could not complete, then review, then approve.
    """
    settings = CheckSettings(
        decision=DecisionSettings(
            policies=policies,
            config_path=config_path,
            engine=EngineChoice(policy_engine, opa_binary, opa_url, opa_token_env),
            trusted_identities=trusted_identities,
            trusted_issuers=trusted_issuers,
            policy_timeout=policy_timeout,
            config_from_target=config_from_target,
        ),
        scan=scan,
        probes=probes if run_probes else None,
    )
    if len(targets) == 1 and targets_from is None and output_dir is None:
        output.stdout_output()  # a usage error now, not after the scan
        report = check_one(targets[0], settings, progress=show_progress(output))
        emit(report, output)
        assert report.verdict is not None
        return exit_code(report.verdict.decision)
    listed = [*targets, *(read_targets(targets_from) if targets_from else [])]
    if not listed:
        raise UsageError("give a TARGET to check (or --targets-from FILE)")
    return check_many(unique(listed), settings, output, jobs=jobs, output_dir=output_dir)


@click.command()
@click.argument("target")
@scan_options
def inspect(
    target: str,
    scan: ScanSettings,
    output: OutputRequest,
) -> int:
    """Scan TARGET and report what was found, without a policy verdict (exit 0 when the report was produced)."""
    # Imported here: the trust loader pulls in cryptography (heavy for --help).
    from provscan.signing.trust import load_trust

    output.stdout_output()
    trust = load_trust(scan.trusted_keys, scan.trusted_cas, scan.sigstore_trusted_root)
    report = scan_target(target, scan, trust, progress=show_progress(output))
    emit(report, output)
    return int(ExitCode.APPROVE)


@click.command()
@click.argument("target")
@policy_option("Policy pack directory, or a shipped pack's name. Repeatable.")
@config_option(CONFIG_HELP)
@config_in_target_option
@probe_options
@output_options
@click.option(
    "--download",
    is_flag=True,
    help="hf:// targets: download the snapshot first (probes need the weights).",
)
@click.option("--offline", is_flag=True, help="hf:// targets: use only the Hugging Face cache.")
def probe(
    target: str,
    policies: tuple[str, ...],
    config_path: Path | None,
    config_from_target: bool,
    probes: ProbeRequest,
    output: OutputRequest,
    download: bool,
    offline: bool,
) -> int:
    """Run only the behavioural backdoor probes on TARGET; print the verdict (exit codes as check).

    The policy requires the probes to run to completion: a model that cannot be probed, or a
    budget that ran out, is not approved. A confirmed trigger denies.
    """
    # Imported here: the policy engine and the trust loader are heavy (see --help).
    from provscan.policy.engine import evaluate
    from provscan.signing.trust import load_trust

    output.stdout_output()
    packs = policy_dirs(policies)
    config = target_config(config_path, packs, target, from_target=config_from_target).table
    # Probes only: the shipped overlay requires just the inventory, and the probes to complete.
    config = probe_command_config(config)
    report = scan_target(
        target,
        ScanSettings(download=download, offline=offline),
        load_trust((), (), None),
        probe_options_from(probes, "provscan probe"),
        probes_only=True,
        progress=show_progress(output),
    )
    verdict = evaluate(report, packs, config)
    report = report.model_copy(update={"verdict": verdict})
    emit(report, output)
    return exit_code(verdict.decision)
