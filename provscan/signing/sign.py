"""How does a team countersign the model it admitted? Write an OMS signature.

Models are signed by model_signing itself, so any OMS verifier accepts the result; the
manifest leaves out git metadata, huggingface_hub's download bookkeeping and the signature
file.

Sigstore keyless signing needs an OIDC identity token and HTTPS access to Sigstore's
services (its TUF trust root, the OIDC issuer, Fulcio, Rekor). Whatever of that fails ends
the command with one line naming what failed, and no signature file.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from provscan.errors import ConfigError, ProvscanError, UsageError
from provscan.signing.layout import CONVENTIONAL_NAME, HF_LOCAL_DIR_PATHS
from provscan.signing.trust import oms_key_type


class SigstoreError(ProvscanError):
    """Keyless signing could not complete: no identity token, or Sigstore unreachable."""


_IDENTITY_REMEDY = (
    "pass --identity-token TOKEN, or --use-ambient-credentials in a CI job that grants an "
    "OIDC token (GitHub Actions: permissions: id-token: write), or sign with --key PEM"
)
_NETWORK_REMEDY = (
    "keyless signing needs HTTPS access to Sigstore (check the connection and HTTPS_PROXY); "
    "without it, sign with --key PEM"
)


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
    # model_signing loads slowly (sigstore, protobufs): imported only when a model is signed.
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
        # Everything that can be checked before hashing is: hashing a large model takes
        # minutes, and model_signing asks for the token only after it.
        with _sigstore_failures(setup=True):
            _check_identity(sigstore_token, ambient=sigstore_ambient)
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
        with _sigstore_failures(setup=False) if signer is None else nullcontext():
            config.sign(model, tmp)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)


def _check_identity(token: str | None, *, ambient: bool) -> None:
    """Refuse, before any network use or hashing, a keyless signing that has no usable token."""
    from sigstore import oidc  # loads slowly: imported only for keyless signing

    if token is not None:
        try:
            # Decodes without checking the issuer's signature (Fulcio does that), but
            # rejects what Fulcio surely would: not a JWT, claims missing, expired, or
            # another audience than model_signing's client id, "sigstore".
            oidc.IdentityToken(token)
        except oidc.IdentityError as exc:
            raise UsageError(
                f"--identity-token: not a usable Sigstore identity token ({_token_problem(exc)})",
                'give a current OIDC token issued for the audience "sigstore", '
                "or sign with --key PEM",
            ) from exc
        return
    if ambient:
        # model_signing asks again after hashing, and so gets a fresh token; without one
        # it would fall back to the interactive sign-in, which a CI job cannot answer.
        try:
            found = oidc.detect_credential()
        except oidc.IdentityError as exc:
            raise SigstoreError(
                f"--use-ambient-credentials: no identity token from this CI job ({_first_line(exc)})",
                _IDENTITY_REMEDY,
            ) from exc
        if found is None:
            raise SigstoreError(
                "--use-ambient-credentials: found no CI identity token (looked for GitHub "
                "Actions, GitLab CI's SIGSTORE_ID_TOKEN, Buildkite, CircleCI, Google Cloud)",
                _IDENTITY_REMEDY,
            )
        return
    if not _interactive():
        # The sign-in opens a browser or, failing that, reads a code from standard input.
        raise SigstoreError(
            "no identity token for --sigstore, and no terminal for the interactive sign-in",
            _IDENTITY_REMEDY,
        )


def _token_problem(exc: BaseException) -> str:
    """Why sigstore-python refused a token: its own message hides the JWT library's reason."""
    import jwt  # sigstore's own dependency, loaded only when a keyless signing fails

    cause = exc.__cause__
    if isinstance(cause, jwt.ExpiredSignatureError):
        return "it has expired"
    if isinstance(cause, jwt.ImmatureSignatureError):
        return "it is not valid yet"
    if isinstance(cause, jwt.InvalidAudienceError):
        return 'its audience is not "sigstore"'
    if isinstance(cause, jwt.MissingRequiredClaimError):
        return f"it has no {cause.claim!r} claim"
    if isinstance(cause, jwt.DecodeError):
        return "not a JWT"
    return _first_line(exc)


def _interactive() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (OSError, ValueError):  # closed or detached
        return False


@contextmanager
def _sigstore_failures(*, setup: bool) -> Iterator[None]:
    """Sigstore's failures, as one line each: unreachable, refused, or no identity.

    sigstore-python raises its own errors for TUF, the OIDC issuer and identity tokens, and
    lets requests' errors (Fulcio, Rekor) and its private client errors through as they are.
    `setup`: no model file is read yet, so a file error is about Sigstore's own cache.
    """
    # sigstore and requests load slowly: imported only when Sigstore signs.
    import requests
    from sigstore import errors, oidc

    try:
        yield
    except ProvscanError:
        raise
    except (oidc.IdentityError, oidc.ExpiredIdentity, EOFError) as exc:
        detail = (
            "it expired before signing (tokens last minutes: hashing took longer)"
            if isinstance(exc, oidc.ExpiredIdentity)
            else "the sign-in was abandoned"
            if isinstance(exc, EOFError)
            else _first_line(exc)
        )
        raise SigstoreError(
            f"no Sigstore identity token: {detail}; nothing was signed", _IDENTITY_REMEDY
        ) from exc
    except (requests.RequestException, errors.NetworkError, errors.TUFError) as exc:
        if isinstance(exc, errors.TUFError) and not _network_failure(exc):
            raise SigstoreError(
                f"Sigstore's trust root (TUF) could not be updated ({_cause(exc)}); nothing was signed",
                _NETWORK_REMEDY,
            ) from exc
        host = _host(exc)
        where = f"{host}: " if host else ""
        raise SigstoreError(
            f"Sigstore could not be reached ({where}{_cause(exc)}); nothing was signed",
            _NETWORK_REMEDY,
        ) from exc
    except OSError as exc:
        if not setup:  # reading the model: not Sigstore's to explain
            raise
        # The TUF cache under the user's data and cache directories.
        raise SigstoreError(
            f"Sigstore's trust root cache could not be written ({_cause(exc)}); nothing was signed",
            "make the user's cache and data directories writable (XDG_CACHE_HOME, XDG_DATA_HOME)",
        ) from exc
    except Exception as exc:
        # Fulcio's and Rekor's refusals (an HTTP error for the token, a rejected entry)
        # are classes of sigstore's private modules: recognised by their package.
        if not type(exc).__module__.startswith("sigstore."):
            raise
        raise SigstoreError(
            f"Sigstore refused to sign ({type(exc).__name__}: {_first_line(exc)}); "
            "nothing was signed",
            'check the identity token (issuer, audience "sigstore", expiry), or sign with --key PEM',
        ) from exc


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what caused it, outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _network_failure(exc: BaseException) -> bool:
    # requests and tuf (sigstore's) load slowly: imported only when Sigstore signing failed.
    import requests
    from tuf.api.exceptions import DownloadError

    # Not any OSError: a TUF cache that cannot be written is no network failure.
    network = (
        DownloadError,
        requests.RequestException,
        ConnectionError,
        TimeoutError,
        socket.gaierror,
        ssl.SSLError,
    )
    return any(
        isinstance(e, network) or type(e).__module__.startswith("urllib3.") for e in _chain(exc)
    )


def _cause(exc: BaseException) -> str:
    """What went wrong underneath, in a few words: the innermost network error."""
    chain = _chain(exc)
    for inner in reversed(chain):
        if isinstance(inner, socket.gaierror):
            return "host name not resolved"
        if isinstance(inner, ConnectionRefusedError):
            return "connection refused"
        if isinstance(inner, TimeoutError):
            return "timed out"
        if isinstance(inner, ssl.SSLError):
            return f"TLS failed: {inner.reason or _first_line(inner)}"
        if isinstance(inner, OSError) and inner.strerror:
            return f"{inner.filename}: {inner.strerror}" if inner.filename else inner.strerror
    return _first_line(chain[-1])


def _host(exc: BaseException) -> str | None:
    """The host the failed request went to, from requests' or urllib3's exception."""
    for inner in _chain(exc):
        request = getattr(inner, "request", None)
        url = getattr(request, "url", None)
        if isinstance(url, str) and urlsplit(url).hostname:
            return urlsplit(url).hostname
        host = getattr(getattr(inner, "pool", None), "host", None)
        if isinstance(host, str) and host:
            return host
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


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
