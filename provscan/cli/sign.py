"""`provscan sign`, `sign-bom` and `verify-bom`: which key signs, and where the signature goes.

The signing modules are imported inside the commands: they load cryptography and sigstore,
and `--help` must not.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from provscan.atomic import STDOUT
from provscan.cli.options import (
    EXISTING_FILE,
    Decorator,
    files_option,
    serialization_choice,
    shard_size_type,
    stacked,
)
from provscan.errors import ExitCode, UsageError
from provscan.signing.layout import DEFAULT_SHARD_SIZE

if TYPE_CHECKING:
    from provscan.signing.sign import SigningKey

signing_options: Decorator = stacked(
    click.option(
        "--key",
        type=EXISTING_FILE,
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
        type=EXISTING_FILE,
        metavar="PEM",
        help="Signing certificate for --key: signs with the certificate method.",
    ),
    files_option(
        "--chain",
        "chain",
        "PEM",
        "Intermediate and root certificates for --certificate. Repeatable.",
    ),
)


def _signature_file(output: Path | None) -> None:
    if output is not None and str(output) == STDOUT:
        raise UsageError("--signature -: a signature is written to a file, not to standard output")


def _signing_key(
    key: Path | None,
    password_env: str | None,
    certificate: Path | None,
    chain: tuple[Path, ...],
    *,
    required: bool,
) -> SigningKey | None:
    # Imported here: cryptography is heavy (see the module docstring).
    from provscan.signing.sign import SigningKey

    if key is None:
        if certificate is not None or chain:
            raise UsageError(
                "--certificate and --chain need the certificate's private key: --key PEM"
            )
        if required:
            raise UsageError("give --key PEM (and --certificate PEM for the certificate method)")
        return None
    password = None
    if password_env:
        value = os.environ.get(password_env)
        if value is None:
            raise UsageError(f"--password-env {password_env}: that variable is not set")
        password = value.encode()
    return SigningKey(key, password, certificate, tuple(chain))


@click.command()
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@signing_options
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
    type=serialization_choice,
    default="files",
    show_default=True,
    help="One digest per file, or per shard.",
)
@click.option("--shard-size", type=shard_size_type, default=DEFAULT_SHARD_SIZE, show_default=True)
@click.option(
    "--ignore", multiple=True, metavar="PATH", help="Relative path to leave unsigned. Repeatable."
)
@click.option("--force", is_flag=True, help="Replace an existing signature file.")
def sign(
    model: Path,
    key: Path | None,
    password_env: str | None,
    certificate: Path | None,
    chain: tuple[Path, ...],
    sigstore: bool,
    identity_token: str | None,
    use_ambient_credentials: bool,
    staging: bool,
    output: Path | None,
    serialization: Literal["files", "shards"],
    shard_size: int,
    ignore: tuple[str, ...],
    force: bool,
) -> int:
    """Sign MODEL (a directory or file) as an OpenSSF model signature (OMS), e.g. to countersign
    what you admitted: with a private key, a key and certificate chain, or Sigstore keyless."""
    # Imported here: cryptography and sigstore are heavy (see the module docstring).
    from provscan.signing.sign import sign_model

    _signature_file(output)
    signer = _signing_key(key, password_env, certificate, chain, required=not sigstore)
    if sigstore and signer is not None:
        raise UsageError("--sigstore signs keyless: leave out --key / --certificate")
    written: Path = output or (
        model / "model.sig" if model.is_dir() else model.with_name(model.name + ".sig")
    )
    if written.exists() and not force:
        raise UsageError(f"{written} exists; pass --force to replace it")
    sign_model(
        model,
        written,
        signer,
        sigstore_token=identity_token,
        sigstore_ambient=use_ambient_credentials,
        sigstore_staging=staging,
        method=serialization,
        shard_size=shard_size,
        ignore=ignore,
    )
    click.echo(f"signed {model} -> {written}")
    return int(ExitCode.APPROVE)


@click.command("sign-bom")
@click.argument("bom", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@signing_options
@click.option(
    "--signature",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the signature (default: BOM.sig).",
)
def sign_bom_command(
    bom: Path,
    key: Path | None,
    password_env: str | None,
    certificate: Path | None,
    chain: tuple[Path, ...],
    output: Path | None,
) -> int:
    """Sign an AI-BOM file: a DSSE envelope (in a Sigstore bundle) over its SHA-256 and content."""
    # Imported here: cryptography is heavy (see the module docstring).
    from provscan.signing.bom import sign_bom

    _signature_file(output)
    signer = _signing_key(key, password_env, certificate, chain, required=True)
    assert signer is not None
    written: Path = output or bom.with_name(bom.name + ".sig")
    sign_bom(bom, written, signer)
    click.echo(f"signed {bom} -> {written}")
    return int(ExitCode.APPROVE)


@click.command("verify-bom")
@click.argument("bom", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--signature",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The BOM's signature (default: BOM.sig).",
)
@files_option("--trusted-key", "trusted_keys", "PEM", "Public key the BOM may be signed by.")
@files_option(
    "--trusted-ca", "trusted_cas", "PEM", "CA certificate the BOM's signer must chain to."
)
def verify_bom_command(
    bom: Path, signature: Path | None, trusted_keys: tuple[Path, ...], trusted_cas: tuple[Path, ...]
) -> int:
    """Check an AI-BOM's signature against trusted keys or CAs: exit 0 when it verifies and the
    BOM is unchanged, 1 when it fails, 4 when nothing given can check it or there is no BOM.sig,
    2 when the named --signature does not exist."""
    # Imported here: the report model and cryptography are heavy (see the module docstring).
    from provscan.report import SignatureStatus
    from provscan.signing.bom import verify_bom
    from provscan.signing.label import signer_label
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
        click.echo(
            f"VERIFIED {bom}: signed by {signer_label(signer)}, checked against {signer.trust_anchor}"
        )
        return int(ExitCode.APPROVE)
    click.echo(f"{result.status.value.upper()} {bom}: {result.reason}")
    return int(ExitCode.REVIEW if result.status is SignatureStatus.UNVERIFIED else ExitCode.DENY)
