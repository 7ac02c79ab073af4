"""The provscan command line: flags to options, scan, evaluate, render, write, exit code."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from provscan import __version__, interrupts
from provscan.atomic import STDOUT, OutputPath, claim_stdout, write_output
from provscan.cli_policy import (
    backend_from,
    config_group,
    config_in_target_option,
    config_option,
    engine_options,
    options,
    policy,
    policy_dirs,
    policy_option,
    pre_commit,
    server_scope,
    target_config,
)
from provscan.diff.command import diff_command
from provscan.errors import ExitCode, ProvscanError, UsageError
from provscan.hub import HubOptions
from provscan.pipeline import ScanOptions, available_cpus, scan
from provscan.probe_cli import options_from, probe_options
from provscan.probes.collect import ProbeOptions
from provscan.report import Decision, Report
from provscan.signing.trust import TrustSettings

if TYPE_CHECKING:
    from provscan.signing.sign import SigningKey

F = TypeVar("F", bound=Callable[..., Any])

_DECISION_EXIT = {
    Decision.APPROVE: ExitCode.APPROVE,
    Decision.REVIEW: ExitCode.REVIEW,
    Decision.DENY: ExitCode.DENY,
}


def _files_option(flag: str, dest: str, metavar: str, help_text: str) -> Callable[[F], F]:
    """A repeatable option naming existing files (click says which one is missing)."""
    return click.option(
        flag,
        dest,
        multiple=True,
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        metavar=metavar,
        help=help_text,
    )


def _output_options() -> list[Callable[[F], F]]:
    """What to print and which files to write (check, inspect and probe take the same)."""
    return [
        click.option(
            "--format",
            "fmt",
            type=click.Choice(["text", "json"]),
            default="text",
            show_default=True,
            help="What to print on stdout.",
        ),
        click.option(
            "--json",
            "json_out",
            type=OutputPath(),
            help="Write the JSON report to FILE (- for stdout).",
        ),
        click.option(
            "--bom",
            "bom_out",
            type=OutputPath(),
            help="Write the CycloneDX 1.6 AI-BOM to FILE (- for stdout).",
        ),
        click.option(
            "--sarif",
            "sarif_out",
            type=OutputPath(),
            help="Write the findings and verdict as SARIF 2.1.0 (GitHub code scanning) to FILE (- for stdout).",
        ),
        click.option(
            "--markdown",
            "markdown_out",
            type=OutputPath(),
            help="Write the audit report for people, as Markdown, to FILE (- for stdout).",
        ),
        click.option(
            "--html",
            "html_out",
            type=OutputPath(),
            help="Write the audit report for people, as one self-contained HTML page, to FILE (- for stdout).",
        ),
        click.option("-q", "--quiet", is_flag=True, help="No progress bar."),
    ]


def _scan_options(func: F) -> F:
    options = [
        click.option(
            "--workers",
            type=click.IntRange(1, 256),
            default=None,
            help="Hashing threads (default: CPU count).",
        ),
        click.option(
            "--serialization",
            type=click.Choice(["files", "shards"]),
            default="files",
            show_default=True,
            help="OMS manifest method: one digest per file, or per shard (parallel within big files).",
        ),
        click.option(
            "--shard-size",
            type=click.IntRange(1),
            default=1_000_000_000,
            show_default=True,
            help="Shard size in bytes for --serialization shards.",
        ),
        *_output_options(),
        _files_option(
            "--signature",
            "signatures",
            "FILE",
            "OMS signature (Sigstore bundle) to verify, besides the target's own model.sig. Repeatable.",
        ),
        _files_option(
            "--trusted-key",
            "trusted_keys",
            "PEM",
            "Public key (EC P-256/384/521) whose signatures are trusted. Repeatable.",
        ),
        _files_option(
            "--trusted-ca",
            "trusted_cas",
            "PEM",
            "CA certificate(s) that certificate-chain signatures must lead to. Repeatable.",
        ),
        click.option(
            "--download",
            is_flag=True,
            help="hf:// targets: download the snapshot into the Hugging Face cache (HF_HOME, "
            "HF_TOKEN) and scan every byte. Without it, an hf:// target is scanned as metadata: "
            "small files downloaded, weights read by range (headers only).",
        ),
        click.option(
            "--include",
            multiple=True,
            metavar="PATTERN",
            help="hf:// targets: scan (and download) only files matching PATTERN.",
        ),
        click.option(
            "--exclude",
            multiple=True,
            metavar="PATTERN",
            help="hf:// targets: scan (and download) no file matching PATTERN.",
        ),
        click.option(
            "--offline",
            is_flag=True,
            help="hf:// targets: use only the Hugging Face cache, never the network (as HF_HUB_OFFLINE=1).",
        ),
        click.option(
            "--sigstore-trusted-root",
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
            metavar="JSON",
            help="Sigstore trusted_root.json to verify keyless signatures against, offline "
            "(default: the Sigstore public-good root shipped with the sigstore package).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="provscan")
def cli() -> None:
    """Admit or refuse an open-weight model: inspect its files, let a Rego policy decide,
    and record the evidence as a CycloneDX AI-BOM.

    Exit codes: 0 approve, 1 deny, 2 usage error, 3 could not complete (fail closed),
    4 needs review.
    """


@cli.command()
@click.argument("target")
@policy_option(
    "Policy pack directory, or a shipped pack's name: default, production (requires a trusted "
    "signature). Repeatable. Replaces the default pack."
)
@config_option("Config file (default: ./provscan.toml if present).")
@config_in_target_option
@click.option(
    "--trusted-identity",
    "trusted_identities",
    multiple=True,
    metavar="IDENTITY",
    help="Sigstore signer identity (e-mail or workflow URI) to trust; pair each with --trusted-issuer.",
)
@click.option(
    "--trusted-issuer",
    "trusted_issuers",
    multiple=True,
    metavar="URL",
    help="OIDC issuer of the --trusted-identity in the same position.",
)
@click.option(
    "--policy-timeout",
    type=click.FloatRange(0.1),
    default=60.0,
    show_default=True,
    help="Seconds before the policy engine is stopped (fail closed).",
)
@click.option(
    "--probes",
    "run_probes",
    is_flag=True,
    help="Also run the behavioural backdoor probes (the 'probes' extra; see --engine).",
)
@options(engine_options)
@probe_options
@_scan_options
def check(
    target: str,
    policies: tuple[str, ...],
    config_path: Path | None,
    config_from_target: bool,
    trusted_identities: tuple[str, ...],
    trusted_issuers: tuple[str, ...],
    policy_timeout: float,
    run_probes: bool,
    **kw: Any,
) -> int:
    """Scan TARGET, evaluate the policy, print the verdict and write the outputs.

    TARGET is a model directory, a single model file, a Hugging Face cache snapshot, or
    hf://ORG/NAME[@REVISION] with --download (or --offline).
    """
    from provscan.policy.engine import evaluate
    from provscan.signing.trust import trust_from_config

    _stdout_output(kw)  # a usage error now, not after the scan
    packs = policy_dirs(policies)
    config_file = target_config(config_path, packs, target, from_target=config_from_target)
    config = _with_identities(config_file.table, trusted_identities, trusted_issuers)
    trust = trust_from_config(
        config,
        config_file.path.parent if config_file.path is not None else None,
        keys=kw["trusted_keys"],
        cas=kw["trusted_cas"],
        sigstore_root=kw["sigstore_trusted_root"],
    )
    backend = backend_from(kw)
    packs, policy_config = server_scope(backend, policies, packs, config)
    report = _scan(target, kw, trust, options_from(kw) if run_probes else None)
    verdict = evaluate(report, packs, policy_config, timeout_s=policy_timeout, backend=backend)
    report = report.model_copy(update={"verdict": verdict})
    _emit(report, kw)
    return int(_DECISION_EXIT[verdict.decision])


@cli.command()
@click.argument("target")
@_scan_options
def inspect(target: str, **kw: Any) -> int:
    """Scan TARGET and report what was found, without a policy verdict (exit 0 when the report was produced)."""
    from provscan.signing.trust import load_trust

    _stdout_output(kw)
    trust = load_trust(kw["trusted_keys"], kw["trusted_cas"], kw["sigstore_trusted_root"])
    report = _scan(target, kw, trust)
    _emit(report, kw)
    return int(ExitCode.APPROVE)


@cli.command()
@click.argument("target")
@policy_option("Policy pack directory, or a shipped pack's name. Repeatable.")
@config_option("Config file (default: ./provscan.toml if present).")
@config_in_target_option
@probe_options
@options(_output_options)
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
    **kw: Any,
) -> int:
    """Run only the behavioural backdoor probes on TARGET; print the verdict (exit codes as check).

    The policy requires the probes to run to completion: a model that cannot be probed, or a
    budget that ran out, is not approved. A confirmed trigger denies.
    """
    from provscan.policy.engine import evaluate
    from provscan.signing.trust import load_trust

    _stdout_output(kw)
    packs = policy_dirs(policies)
    config = target_config(config_path, packs, target, from_target=config_from_target).table
    table = config.get("probes")
    probes: dict[str, Any] = dict(table) if isinstance(table, dict) else {}
    # Probes only: the static steps are not run, and the probes must run to completion.
    config = {**config, "required_steps": ["inventory"], "probes": {**probes, "required": True}}
    report = _scan(target, kw, load_trust((), (), None), options_from(kw), probes_only=True)
    verdict = evaluate(report, packs, config)
    report = report.model_copy(update={"verdict": verdict})
    _emit(report, kw)
    return int(_DECISION_EXIT[verdict.decision])


def _signing_options(func: F) -> F:
    options = [
        click.option(
            "--key",
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
            metavar="PEM",
            help="EC P-256/384/521 private key (PEM).",
        ),
        click.option(
            "--password-env",
            metavar="VAR",
            help="Environment variable holding the private key's password (never on the command line).",
        ),
        click.option(
            "--certificate",
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
            metavar="PEM",
            help="Signing certificate for --key: signs with the certificate method.",
        ),
        _files_option(
            "--chain",
            "chain",
            "PEM",
            "Intermediate and root certificates for --certificate. Repeatable.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _signature_file(output: Path | None) -> None:
    if output is not None and str(output) == STDOUT:
        raise UsageError("--signature -: a signature is written to a file, not to standard output")


def _signing_key(kw: dict[str, Any], *, required: bool) -> SigningKey | None:
    from provscan.signing.sign import SigningKey

    if kw["key"] is None:
        if kw["certificate"] is not None or kw["chain"]:
            raise UsageError(
                "--certificate and --chain need the certificate's private key: --key PEM"
            )
        if required:
            raise UsageError("give --key PEM (and --certificate PEM for the certificate method)")
        return None
    password = None
    if kw["password_env"]:
        value = os.environ.get(kw["password_env"])
        if value is None:
            raise UsageError(f"--password-env {kw['password_env']}: that variable is not set")
        password = value.encode()
    return SigningKey(kw["key"], password, kw["certificate"], tuple(kw["chain"]))


@cli.command()
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@_signing_options
@click.option(
    "--sigstore",
    is_flag=True,
    help="Sign keyless with Sigstore (needs the network and an OIDC identity).",
)
@click.option("--identity-token", metavar="TOKEN", help="OIDC token for --sigstore.")
@click.option(
    "--use-ambient-credentials",
    is_flag=True,
    help="--sigstore: take the OIDC token from the CI environment (GitHub Actions, GitLab, ...).",
)
@click.option(
    "--staging", is_flag=True, help="--sigstore: use Sigstore's staging instance (tests)."
)
@click.option(
    "--signature",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the signature (default: MODEL/model.sig).",
)
@click.option(
    "--serialization",
    type=click.Choice(["files", "shards"]),
    default="files",
    show_default=True,
    help="One digest per file, or per shard.",
)
@click.option("--shard-size", type=click.IntRange(1), default=1_000_000_000, show_default=True)
@click.option(
    "--ignore", multiple=True, metavar="PATH", help="Relative path to leave unsigned. Repeatable."
)
@click.option("--force", is_flag=True, help="Replace an existing signature file.")
def sign(model: Path, **kw: Any) -> int:
    """Sign MODEL (a directory or file) as an OpenSSF model signature (OMS), e.g. to countersign
    what you admitted: with a private key, a key and certificate chain, or Sigstore keyless."""
    from provscan.signing.sign import sign_model

    _signature_file(kw["output"])
    signer = _signing_key(kw, required=not kw["sigstore"])
    if kw["sigstore"] and signer is not None:
        raise UsageError("--sigstore signs keyless: leave out --key / --certificate")
    output: Path = kw["output"] or (
        model / "model.sig" if model.is_dir() else model.with_name(model.name + ".sig")
    )
    if output.exists() and not kw["force"]:
        raise UsageError(f"{output} exists; pass --force to replace it")
    sign_model(
        model,
        output,
        signer,
        sigstore_token=kw["identity_token"],
        sigstore_ambient=kw["use_ambient_credentials"],
        sigstore_staging=kw["staging"],
        method=kw["serialization"],
        shard_size=kw["shard_size"],
        ignore=kw["ignore"],
    )
    click.echo(f"signed {model} -> {output}")
    return int(ExitCode.APPROVE)


@cli.command("sign-bom")
@click.argument("bom", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_signing_options
@click.option(
    "--signature",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the signature (default: BOM.sig).",
)
def sign_bom_command(bom: Path, **kw: Any) -> int:
    """Sign an AI-BOM file: a DSSE envelope (in a Sigstore bundle) over its SHA-256 and content."""
    from provscan.signing.bom import sign_bom

    _signature_file(kw["output"])
    signer = _signing_key(kw, required=True)
    assert signer is not None
    output: Path = kw["output"] or bom.with_name(bom.name + ".sig")
    sign_bom(bom, output, signer)
    click.echo(f"signed {bom} -> {output}")
    return int(ExitCode.APPROVE)


@cli.command("verify-bom")
@click.argument("bom", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--signature",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The BOM's signature (default: BOM.sig).",
)
@_files_option("--trusted-key", "trusted_keys", "PEM", "Public key the BOM may be signed by.")
@_files_option(
    "--trusted-ca", "trusted_cas", "PEM", "CA certificate the BOM's signer must chain to."
)
def verify_bom_command(
    bom: Path, signature: Path | None, trusted_keys: tuple[Path, ...], trusted_cas: tuple[Path, ...]
) -> int:
    """Check an AI-BOM's signature against trusted keys or CAs: exit 0 when it verifies and the
    BOM is unchanged, 1 when it fails, 4 when nothing given can check it."""
    from provscan.report import SignatureStatus
    from provscan.signing.bom import verify_bom
    from provscan.signing.trust import load_trust

    if not trusted_keys and not trusted_cas:
        raise UsageError(
            "give --trusted-key PEM or --trusted-ca PEM: what the BOM must be signed by"
        )
    result = verify_bom(
        bom, signature or bom.with_name(bom.name + ".sig"), load_trust(trusted_keys, trusted_cas)
    )
    signer = result.signer
    who = (signer.certificate_subject or signer.key_fingerprint) if signer else None
    if result.status is SignatureStatus.VERIFIED:
        click.echo(f"VERIFIED {bom}: signed by {who} ({signer.trust_anchor if signer else ''})")
        return int(ExitCode.APPROVE)
    click.echo(f"{result.status.value.upper()} {bom}: {result.reason}")
    return int(ExitCode.REVIEW if result.status is SignatureStatus.UNVERIFIED else ExitCode.DENY)


def _with_identities(
    config: dict[str, Any], identities: Sequence[str], issuers: Sequence[str]
) -> dict[str, Any]:
    """The config with --trusted-identity / --trusted-issuer pairs added to [trust] identities."""
    if len(identities) != len(issuers):
        raise UsageError(
            f"{len(identities)} --trusted-identity but {len(issuers)} --trusted-issuer: give one issuer per identity"
        )
    if not identities:
        return config
    trust = dict(config.get("trust") or {}) if isinstance(config.get("trust"), dict) else {}
    existing = trust.get("identities", [])
    added = [{"identity": i, "issuer": u} for i, u in zip(identities, issuers, strict=True)]
    trust["identities"] = [*(existing if isinstance(existing, list) else []), *added]
    return {**config, "trust": trust}


def _scan(
    target: str,
    kw: dict[str, Any],
    trust: TrustSettings,
    probes: ProbeOptions | None = None,
    probes_only: bool = False,
) -> Report:
    show_progress = not kw["quiet"] and sys.stderr.isatty()
    options = ScanOptions(
        hash_workers=kw.get("workers") or available_cpus(),
        serialization=kw.get("serialization", "files"),
        shard_size=kw.get("shard_size", 1_000_000_000),
        signature_paths=tuple(kw.get("signatures", ())),
        trust=trust,
        hub=HubOptions(
            download=kw["download"],
            include=tuple(kw.get("include", ())),
            exclude=tuple(kw.get("exclude", ())),
            offline=kw["offline"],
            progress=show_progress,
        ),
        probes=probes,
        probes_only=probes_only,
    )
    if not show_progress:
        return scan(target, options)
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    # One live display for the whole scan: hashing, then each probe family.
    columns = (
        TextColumn("{task.description:<18}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as progress:
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

        with_progress = dataclasses.replace(
            options,
            on_hash_start=lambda total: progress.update(hashing, total=total),
            on_hash_progress=hashed,
            probes=dataclasses.replace(probes, progress=probed) if probes is not None else None,
        )
        return scan(target, with_progress)


def _stdout_output(kw: dict[str, Any]) -> str | None:
    """The one output option given `-` (stdout), if any: a UsageError when several are (or one
    is and --format json prints the report there too)."""
    return claim_stdout(
        [
            ("--format json", STDOUT if kw["fmt"] == "json" else None),
            ("--json", kw["json_out"]),
            ("--bom", kw["bom_out"]),
            ("--sarif", kw["sarif_out"]),
            ("--markdown", kw["markdown_out"]),
            ("--html", kw["html_out"]),
        ]
    )


def _emit(report: Report, kw: dict[str, Any]) -> None:
    """Render every requested output first, then write them: nothing partial on failure."""
    from provscan.emit.json_report import render_json
    from provscan.emit.terminal import render_terminal

    outputs: list[tuple[Path | str, str]] = []
    if kw["json_out"] is not None:
        outputs.append((kw["json_out"], render_json(report)))
    if kw["bom_out"] is not None:
        from provscan.emit.cyclonedx import render_cyclonedx
        from provscan.licence_files import read_licence_texts

        outputs.append(
            (kw["bom_out"], render_cyclonedx(report, licence_texts=read_licence_texts(report)))
        )
    if kw["sarif_out"] is not None:
        from provscan.emit.sarif import render_sarif

        outputs.append((kw["sarif_out"], render_sarif(report, base_dir=Path.cwd())))
    if kw["markdown_out"] is not None:
        from provscan.emit.markdown import render_markdown

        outputs.append((kw["markdown_out"], render_markdown(report)))
    if kw["html_out"] is not None:
        from provscan.emit.html import render_html

        outputs.append((kw["html_out"], render_html(report)))
    for path, text in outputs:
        write_output(path, text)
    if kw["fmt"] == "json":
        click.echo(render_json(report), nl=False)
    else:
        # An output given `-` owns stdout: the summary for people goes to stderr.
        stream = sys.stderr if _stdout_output(kw) is not None else sys.stdout
        click.echo(render_terminal(report, color=stream.isatty()), nl=False, file=stream)


cli.add_command(diff_command)
cli.add_command(policy)
cli.add_command(config_group)
cli.add_command(pre_commit)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: one error handler, every outcome mapped to a documented exit code."""
    try:
        code = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="provscan",
            standalone_mode=False,
        )
    except click.exceptions.Exit as exc:  # --help, --version
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(int(ExitCode.USAGE))
    except click.exceptions.Abort as exc:  # KeyboardInterrupt where no handler was installed
        interrupted = isinstance(exc.__cause__, KeyboardInterrupt)
        click.echo(interrupts.message(signal.SIGINT if interrupted else None), err=True)
        sys.exit(int(ExitCode.INCOMPLETE))
    except interrupts.Interrupted as exc:  # SIGINT or SIGTERM (provscan.__main__ installs them)
        click.echo(interrupts.message(exc.signum), err=True)
        sys.exit(int(ExitCode.INCOMPLETE))
    except ProvscanError as exc:
        click.echo(f"provscan: error: {exc}", err=True)
        sys.exit(int(exc.exit_code))
    except Exception:  # noqa: BLE001 - a crash must never read as a pass
        traceback.print_exc()
        click.echo(
            "provscan: internal error (see the traceback above); no verdict. Please report it.",
            err=True,
        )
        sys.exit(int(ExitCode.INCOMPLETE))
    sys.exit(int(code) if isinstance(code, int) else 0)
