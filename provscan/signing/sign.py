"""How does a team countersign the model it admitted? Write an OMS signature.

Models are signed by model_signing itself, so any OMS verifier accepts the result; the
manifest leaves out git metadata, huggingface_hub's download bookkeeping and the signature
file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from provscan.collectors.signatures import CONVENTIONAL_NAME, HF_LOCAL_DIR_PATHS
from provscan.errors import ConfigError
from provscan.signing.trust import oms_key_type


@dataclass(frozen=True)
class SigningKey:
    """What signs: a private key, and for the certificate method its certificate and chain."""

    key: Path
    password: bytes | None = None
    certificate: Path | None = None
    chain: tuple[Path, ...] = ()


def sign_model(
    model: Path,
    output: Path,
    signer: SigningKey | None,
    *,
    sigstore_token: str | None = None,
    sigstore_ambient: bool = False,
    sigstore_staging: bool = False,
    method: Literal["files", "shards"] = "files",
    shard_size: int = 1_000_000_000,
    ignore: Sequence[str] = (),
) -> None:
    """Sign `model` into `output` with model_signing: a key, a certificate, or Sigstore keyless."""
    from model_signing import hashing, signing

    model = model.resolve()
    output = output.resolve()
    ignored = [*HF_LOCAL_DIR_PATHS, CONVENTIONAL_NAME, *ignore]
    if output.is_relative_to(model):
        ignored.append(str(output.relative_to(model)))
    hashing_config = hashing.Config().set_ignored_paths(  # type: ignore[no-untyped-call]
        paths=[model / p for p in ignored], ignore_git_paths=True
    )
    if method == "shards":
        hashing_config.use_shard_serialization(shard_size=shard_size)
    else:
        hashing_config.use_file_serialization()
    config = signing.Config().set_hashing_config(hashing_config)  # type: ignore[no-untyped-call]
    if signer is None:
        config.use_sigstore_signer(
            use_ambient_credentials=sigstore_ambient,
            identity_token=sigstore_token,
            use_staging=sigstore_staging,
        )
    else:
        load_private_key(signer)  # a clear error before any hashing
        if signer.certificate is not None:
            config.use_certificate_signer(
                private_key=signer.key,
                signing_certificate=signer.certificate,
                certificate_chain=list(signer.chain),
            )
        else:
            # bytes, as cryptography needs: model_signing annotates a str, which
            # cryptography refuses for an encrypted key.
            config.use_elliptic_key_signer(
                private_key=signer.key,
                password=signer.password,  # type: ignore[arg-type]
            )
    tmp = output.with_name(f".{output.name}.provscan-tmp")
    try:
        config.sign(model, tmp)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)


def load_private_key(signer: SigningKey) -> ec.EllipticCurvePrivateKey:
    try:
        raw = signer.key.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"private key {signer.key}: cannot be read ({exc.strerror or exc})"
        ) from exc
    try:
        key = serialization.load_pem_private_key(raw, signer.password)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"private key {signer.key}: not a usable PEM private key ({exc})",
            "give an EC P-256/384/521 PEM key; pass its password through --password-env VAR",
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or oms_key_type(key.public_key()) is None:
        raise ConfigError(
            f"private key {signer.key}: not an EC P-256, P-384 or P-521 key",
            "OpenSSF model signatures use EC P-256, P-384 or P-521 keys",
        )
    return key
