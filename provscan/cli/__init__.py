"""The provscan command line: flags to options, scan, evaluate, render, write, exit code."""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from provscan import __version__, interrupts
from provscan.atomic import STDOUT, OutputPath
from provscan.cli.checking import (
    check_one,
    emit,
    exit_code,
    scan_target,
    show_progress,
    stdout_output,
)
from provscan.cli.diff import diff_command
from provscan.cli.evaluate import evaluate_command
from provscan.cli.policy import (
    config_group,
    config_in_target_option,
    config_option,
    decision_options,
    engine_options,
    options,
    policy,
    policy_dirs,
    policy_option,
    pre_commit,
    target_config,
)
from provscan.cli.probe_options import options_from, probe_options
from provscan.errors import ExitCode, ProvscanError, UsageError

if TYPE_CHECKING:
    from provscan.signing.sign import SigningKey

F = TypeVar("F", bound=Callable[..., Any])


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
        click.option("-q", "--quiet", is_flag=True, help="No progress display."),
        click.option(
            "--no-color",
            is_flag=True,
            help="No colour (also NO_COLOR=1; FORCE_COLOR=1 forces colour when not a terminal).",
        ),
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
@click.argument("targets", nargs=-1, metavar="TARGET...")
@policy_option(
    "Policy pack directory, or a shipped pack's name: default, production (requires a trusted "
    "signature). Repeatable. Replaces the default pack."
)
@config_option("Config file (default: ./provscan.toml if present).")
@config_in_target_option
@options(decision_options)
@click.option(
    "--probes",
    "run_probes",
    is_flag=True,
    help="Also run the behavioural backdoor probes (the 'probes' extra; see --engine).",
)
@click.option(
    "--targets-from",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
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
@options(engine_options)
@probe_options
@_scan_options
def check(targets: tuple[str, ...], targets_from: Path | None, **kw: Any) -> int:
    """Scan each TARGET, evaluate the policy, print the verdict and write the outputs.

    TARGET is a model directory, a single model file, a Hugging Face cache snapshot, or
    hf://ORG/NAME[@REVISION] (scanned as metadata: small files downloaded, weights read by
    range; --download for every byte).

    With several targets (or --targets-from, or --output-dir) each is checked on its own and
    a summary table follows (--format json: JSON lines; --json FILE: JSON lines to FILE); the
    exit code is the worst verdict's: deny, then could not complete, then review, then approve.
    """
    if len(targets) == 1 and targets_from is None and kw["output_dir"] is None:
        stdout_output(kw)  # a usage error now, not after the scan
        report = check_one(targets[0], kw, progress=show_progress(kw))
        emit(report, kw)
        assert report.verdict is not None
        return exit_code(report.verdict.decision)
    from provscan.cli import batch

    listed = [*targets, *(batch.read_targets(targets_from) if targets_from else [])]
    if not listed:
        raise UsageError("give a TARGET to check (or --targets-from FILE)")
    return _check_many(batch.unique(listed), kw)


def _check_many(targets: list[str], kw: dict[str, Any]) -> int:
    from provscan.cli import batch, summary, term

    for flag, key in (
        ("--bom", "bom_out"),
        ("--sarif", "sarif_out"),
        ("--markdown", "markdown_out"),
        ("--html", "html_out"),
    ):
        if kw[key] is not None:
            raise UsageError(
                f"{flag} names one file, and there are {len(targets)} targets",
                "give --output-dir DIR: each target's report, AI-BOM and SARIF are written there",
            )
    if kw["json_out"] is not None and kw["fmt"] == "json" and str(kw["json_out"]) == STDOUT:
        raise UsageError("--format json and --json - both write to standard output; give one")
    on_done = None
    if show_progress(kw):
        on_done = batch.progress_printer(len(targets))
    rows = batch.run_all(targets, kw, jobs=kw["jobs"], output_dir=kw["output_dir"], on_done=on_done)
    lines = "".join(summary.json_line(row) for row in rows)
    if kw["json_out"] is not None:
        from provscan.atomic import write_output

        write_output(kw["json_out"], lines)
    if kw["fmt"] == "json":
        click.echo(lines, nl=False)
    else:
        stream = sys.stderr if str(kw["json_out"]) == STDOUT else sys.stdout
        text = summary.render_verdicts(
            rows,
            color=term.color_enabled(stream, no_color=kw["no_color"]),
            width=term.width(stream),
        )
        click.echo(text, nl=False, file=stream, color=True)
    return summary.worst_exit(row.exit_code for row in rows)


@cli.command()
@click.argument("target")
@_scan_options
def inspect(target: str, **kw: Any) -> int:
    """Scan TARGET and report what was found, without a policy verdict (exit 0 when the report was produced)."""
    from provscan.signing.trust import load_trust

    stdout_output(kw)
    trust = load_trust(kw["trusted_keys"], kw["trusted_cas"], kw["sigstore_trusted_root"])
    report = scan_target(target, kw, trust, progress=show_progress(kw))
    emit(report, kw)
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

    stdout_output(kw)
    packs = policy_dirs(policies)
    config = target_config(config_path, packs, target, from_target=config_from_target).table
    table = config.get("probes")
    probes: dict[str, Any] = dict(table) if isinstance(table, dict) else {}
    # Probes only: the static steps are not run, and the probes must run to completion.
    config = {**config, "required_steps": ["inventory"], "probes": {**probes, "required": True}}
    report = scan_target(
        target,
        kw,
        load_trust((), (), None),
        options_from(kw),
        probes_only=True,
        progress=show_progress(kw),
    )
    verdict = evaluate(report, packs, config)
    report = report.model_copy(update={"verdict": verdict})
    emit(report, kw)
    return exit_code(verdict.decision)


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
    BOM is unchanged, 1 when it fails, 4 when nothing given can check it or there is no BOM.sig,
    2 when the named --signature does not exist."""
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
    if result.status is SignatureStatus.VERIFIED and signer is not None:
        from provscan.signing.label import signer_label

        click.echo(
            f"VERIFIED {bom}: signed by {signer_label(signer)}, checked against {signer.trust_anchor}"
        )
        return int(ExitCode.APPROVE)
    click.echo(f"{result.status.value.upper()} {bom}: {result.reason}")
    return int(ExitCode.REVIEW if result.status is SignatureStatus.UNVERIFIED else ExitCode.DENY)


cli.add_command(diff_command)
cli.add_command(evaluate_command)
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
