"""The provscan command line: flags to options, scan, evaluate, render, write, exit code."""

from __future__ import annotations

import dataclasses
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from provscan import __version__
from provscan.atomic import write_atomically
from provscan.diff.command import diff_command
from provscan.errors import ExitCode, ProvscanError, UsageError
from provscan.hub import HubOptions
from provscan.pipeline import ScanOptions, available_cpus, scan
from provscan.probe_cli import options_from, probe_options
from provscan.probes.collect import ProbeOptions
from provscan.report import Decision, Report
from provscan.resources import default_policy_dir, shipped_policy_dir
from provscan.signing.trust import TrustSettings

if TYPE_CHECKING:
    from provscan.config import ConfigFile
    from provscan.policy.backends import PolicyBackend
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
            type=click.Path(dir_okay=False, path_type=Path),
            help="Write the JSON report to FILE.",
        ),
        click.option(
            "--bom",
            "bom_out",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Write the CycloneDX 1.6 AI-BOM to FILE.",
        ),
        click.option(
            "--sarif",
            "sarif_out",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Write the findings and verdict as SARIF 2.1.0 (GitHub code scanning) to FILE.",
        ),
        click.option(
            "--markdown",
            "markdown_out",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Write the audit report for people, as Markdown, to FILE.",
        ),
        click.option(
            "--html",
            "html_out",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Write the audit report for people, as one self-contained HTML page, to FILE.",
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


def _options(make: Callable[[], list[Callable[[F], F]]]) -> Callable[[F], F]:
    """Apply a list of click options as one decorator (in the order they are listed)."""

    def apply(func: F) -> F:
        for option in reversed(make()):
            func = option(func)
        return func

    return apply


def _policy_option(help_text: str) -> Callable[[F], F]:
    return click.option("--policy", "policies", multiple=True, metavar="DIR", help=help_text)


def _engine_options() -> list[Callable[[F], F]]:
    """Where the Rego policy runs: embedded regopy, the opa binary, or an OPA server."""
    return [
        click.option(
            "--policy-engine",
            type=click.Choice(["regopy", "opa"]),
            default="regopy",
            show_default=True,
            help="Evaluate the packs with the embedded regopy engine or the `opa` binary.",
        ),
        click.option(
            "--opa-binary",
            default="opa",
            show_default=True,
            metavar="PATH",
            help="The opa binary for --policy-engine opa (a name on PATH, or a path).",
        ),
        click.option(
            "--opa-url",
            metavar="URL",
            help="Ask a running OPA server (REST data API: POST /v1/data/provscan/main) instead. "
            "It decides with its own policy and config; with --policy, it must hold exactly "
            "those packs (load them with `provscan policy push`).",
        ),
        click.option(
            "--opa-token-env",
            metavar="VAR",
            help="Environment variable holding a bearer token for --opa-url (never on the command line).",
        ),
    ]


def _backend(kw: dict[str, Any]) -> PolicyBackend:
    from provscan.policy.backends import PolicyBackend

    if kw["opa_url"] is not None:
        if kw["policy_engine"] != "regopy":
            raise UsageError("--opa-url and --policy-engine opa exclude each other")
        return PolicyBackend("opa-server", opa_url=kw["opa_url"], token_env=kw["opa_token_env"])
    if kw["opa_token_env"] is not None:
        raise UsageError("--opa-token-env applies to --opa-url only")
    if kw["policy_engine"] == "opa":
        return PolicyBackend("opa", opa_binary=kw["opa_binary"])
    return PolicyBackend()


def _server_scope(
    backend: PolicyBackend, policies: Sequence[str], packs: list[Path], config: dict[str, Any]
) -> tuple[list[Path], dict[str, Any]]:
    """Packs and config to send: an OPA server asked without --policy uses its own."""
    if backend.kind != "opa-server" or policies:
        return packs, config
    settings = sorted(set(config) - {"trust"})
    if settings:
        raise UsageError(
            f"the OPA server decides with its own config, so {', '.join(settings)} from the "
            "config file would be ignored",
            "name the packs with --policy (the server must hold them: provscan policy push), "
            "or keep only [trust] in the config",
        )
    return [], {}


def _config_option(help_text: str) -> Callable[[F], F]:
    return click.option(
        "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), help=help_text
    )


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
@_policy_option(
    "Policy pack directory, or a shipped pack's name: default, production (requires a trusted "
    "signature). Repeatable. Replaces the default pack."
)
@_config_option("Config file (default: ./provscan.toml if present).")
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
@_options(_engine_options)
@probe_options
@_scan_options
def check(
    target: str,
    policies: tuple[str, ...],
    config_path: Path | None,
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

    packs = _policy_dirs(policies)
    config_file = _user_config(config_path, packs)
    config = _with_identities(config_file.table, trusted_identities, trusted_issuers)
    trust = trust_from_config(
        config,
        config_file.path.parent if config_file.path is not None else None,
        keys=kw["trusted_keys"],
        cas=kw["trusted_cas"],
        sigstore_root=kw["sigstore_trusted_root"],
    )
    backend = _backend(kw)
    packs, policy_config = _server_scope(backend, policies, packs, config)
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

    trust = load_trust(kw["trusted_keys"], kw["trusted_cas"], kw["sigstore_trusted_root"])
    report = _scan(target, kw, trust)
    _emit(report, kw)
    return int(ExitCode.APPROVE)


@cli.command()
@click.argument("target")
@_policy_option("Policy pack directory, or a shipped pack's name. Repeatable.")
@_config_option("Config file (default: ./provscan.toml if present).")
@probe_options
@_options(_output_options)
@click.option(
    "--download",
    is_flag=True,
    help="hf:// targets: download the snapshot first (probes need the weights).",
)
@click.option("--offline", is_flag=True, help="hf:// targets: use only the Hugging Face cache.")
def probe(
    target: str, policies: tuple[str, ...], config_path: Path | None, **kw: Any
) -> int:  # fmt: skip
    """Run only the behavioural backdoor probes on TARGET; print the verdict (exit codes as check).

    The policy requires the probes to run to completion: a model that cannot be probed, or a
    budget that ran out, is not approved. A confirmed trigger denies.
    """
    from provscan.policy.engine import evaluate
    from provscan.signing.trust import load_trust

    packs = _policy_dirs(policies)
    config = _user_config(config_path, packs).table
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


@cli.group()
def policy() -> None:
    """Work with Rego policy packs."""


@policy.command("test")
@_policy_option("Pack(s) to test (default: the shipped pack).")
@_config_option("Config merged over the pack defaults.")
@_options(_engine_options)
def policy_test(policies: tuple[str, ...], config_path: Path | None, **kw: Any) -> int:
    """Run each pack's table tests: tests/<case>/input.json in, expected.yaml verdict and rule ids out.

    With --opa-url, each case's packs and config are pushed to the server first: use a
    scratch server, never one that decides for production.
    """
    from provscan.policy.testing import run_policy_tests

    packs = _policy_dirs(policies)
    config = _user_config(config_path, packs).table if config_path else None
    results = run_policy_tests(packs, config, backend=_backend(kw))
    if not results:
        raise UsageError(
            f"no policy test cases found under {', '.join(str(p / 'tests') for p in packs)}"
        )
    for result in results:
        mark = "PASS" if result.passed else "FAIL"
        click.echo(f"{mark} {result.name}" + ("" if result.passed else f": {result.message}"))
    failed = sum(not r.passed for r in results)
    click.echo(f"{len(results) - failed} passed, {failed} failed")
    return int(ExitCode.DENY if failed else ExitCode.APPROVE)


@policy.command("push")
@_policy_option("Pack(s) to load (default: the shipped pack).")
@_config_option("Config merged over the pack defaults (default: ./provscan.toml if present).")
@click.option("--opa-url", required=True, metavar="URL", help="The OPA server's base URL.")
@click.option(
    "--opa-token-env",
    metavar="VAR",
    help="Environment variable holding a bearer token (never on the command line).",
)
@click.option(
    "--timeout", type=click.FloatRange(0.1), default=30.0, show_default=True, help="Seconds."
)
def policy_push(
    policies: tuple[str, ...],
    config_path: Path | None,
    opa_url: str,
    opa_token_env: str | None,
    timeout: float,
) -> int:
    """Load packs into an OPA server (modules as provscan/<pack>/<file>, the merged config as
    data.provscan.config), replacing the provscan modules it held; other modules stay."""
    from provscan.policy.backends import PolicyBackend
    from provscan.policy.opa_server import push_packs

    packs = _policy_dirs(policies)
    config = _user_config(config_path, packs).table
    backend = PolicyBackend("opa-server", opa_url=opa_url, token_env=opa_token_env)
    result = push_packs(backend, packs, config, timeout_s=timeout)
    click.echo(
        f"pushed to {result.url}: {len(result.uploaded)} module(s) uploaded, "
        f"{len(result.unchanged)} unchanged, {len(result.deleted)} removed; "
        f"policy digest sha256:{result.digest}"
    )
    return int(ExitCode.APPROVE)


@cli.command("pre-commit")
@click.argument("files", nargs=-1)
@_policy_option("Policy pack directory or shipped pack name. Repeatable.")
@_config_option("Config file (default: ./provscan.toml, else pyproject.toml [tool.provscan]).")
@click.option(
    "--fail-on",
    type=click.Choice(["review", "deny"]),
    default="review",
    show_default=True,
    help="Which verdicts block the commit (a check that cannot complete always blocks).",
)
def pre_commit(
    files: tuple[str, ...], policies: tuple[str, ...], config_path: Path | None, fail_on: str
) -> int:
    """The pre-commit hook: check every model directory that FILES (the staged files) belong to.

    A file's model is the nearest directory above it holding config.json, model.sig,
    model_index.json, adapter_config.json or params.json (else the file's own directory).
    """
    import subprocess

    from provscan.precommit import model_roots, worst_exit

    roots = model_roots(files, Path.cwd())
    extra: list[str] = [arg for pack in policies for arg in ("--policy", pack)]
    if config_path is not None:
        extra += ["--config", str(config_path)]
    codes = []
    for root in roots:
        click.echo(f"provscan pre-commit: checking {root}")
        # One child per model, exactly as `provscan check` runs: its own exit code and output.
        proc = subprocess.run(  # noqa: S603 - fixed command, no shell
            [sys.executable, "-m", "provscan", "check", str(root), "--quiet", *extra],
            check=False,
        )
        codes.append(proc.returncode)
    return worst_exit(codes, fail_on_review=fail_on == "review")


@cli.group("config")
def config_group() -> None:
    """Show the effective configuration and its JSON Schema."""


@config_group.command("show")
@_policy_option("Pack(s) whose defaults apply (default: the shipped pack).")
@_config_option("Config file (default: ./provscan.toml, else pyproject.toml [tool.provscan]).")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def config_show(policies: tuple[str, ...], config_path: Path | None, fmt: str) -> int:
    """Print every setting's effective value and where it came from (pack default or file).

    The config file is validated against its JSON Schema first (exit 2 when invalid).
    """
    from provscan.config_show import Layer, effective_settings, render_json, render_text
    from provscan.policy.engine import DATA_FILES, load_packs

    dirs = _policy_dirs(policies)
    config_file = _user_config(config_path, dirs)
    loaded = load_packs(dirs)
    layers = []
    for pack in loaded:
        data = next((pack.root / n for n in DATA_FILES if (pack.root / n).is_file()), None)
        layers.append(Layer(f"{pack.name} pack ({data or pack.root})", pack.defaults))
    layers.append(Layer(config_file.label, config_file.table))
    merged, settings = effective_settings(layers)
    names = [pack.name for pack in loaded]
    if fmt == "json":
        click.echo(render_json(config_file, names, merged, settings), nl=False)
    else:
        click.echo(render_text(config_file, names, settings), nl=False)
    return int(ExitCode.APPROVE)


@config_group.command("schema")
def config_schema_command() -> int:
    """Print the config file's JSON Schema (for editors and CI linting)."""
    import json

    from provscan.config import config_schema

    click.echo(json.dumps(config_schema(), indent=2))
    return int(ExitCode.APPROVE)


def _user_config(config_path: Path | None, packs: Sequence[Path]) -> ConfigFile:
    """The user's config file, checked against the JSON Schema (keys a pack declares allowed)."""
    from provscan.config import find_config, validate_config
    from provscan.policy.engine import load_packs

    found = find_config(config_path, Path.cwd())
    if found.table:
        declared = {key for pack in load_packs(packs) for key in pack.defaults}
        validate_config(found.table, found.label, declared)
    return found


def _policy_dirs(values: Sequence[str]) -> list[Path]:
    if not values:
        return [default_policy_dir()]
    dirs = []
    for value in values:
        shipped = shipped_policy_dir(value) if not Path(value).is_dir() else None
        path = shipped or Path(value)
        if not path.is_dir():
            raise UsageError(
                f"--policy {value}: not a directory, nor a shipped pack (default, production)"
            )
        dirs.append(path)
    return dirs


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


def _emit(report: Report, kw: dict[str, Any]) -> None:
    """Render every requested output first, then write them: nothing partial on failure."""
    from provscan.emit.json_report import render_json
    from provscan.emit.terminal import render_terminal

    outputs: list[tuple[Path, str]] = []
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
        write_atomically(path, text)
    if kw["fmt"] == "json":
        click.echo(render_json(report), nl=False)
    else:
        click.echo(render_terminal(report, color=sys.stdout.isatty()), nl=False)


cli.add_command(diff_command)


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
    except click.exceptions.Abort:
        click.echo("provscan: interrupted; no verdict", err=True)
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
