"""Whom does the user trust to sign models? Public keys, CA certificates, a Sigstore root.

Identities (Sigstore signer + OIDC issuer) are the policy's to judge (config `trust`
section, read by Rego); keys and CA certificates are needed to check a signature at
all, so they are loaded here, and a file that cannot be used is a usage error naming it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sigstore

from provscan.errors import ConfigError
from provscan.files import read_at_most
from provscan.report import TrustAnchor

if TYPE_CHECKING:
    # Imported where keys are read: a model without signatures never needs cryptography.
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

# A PEM key or certificate bundle is a few KiB; a trusted root JSON some tens of KiB.
TRUST_FILE_MAX = 1024 * 1024
# The curves the OMS specification (and model_signing) accept for key and certificate signing.
OMS_CURVES = {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384", "secp521r1": "ecdsa-p521"}
# Sigstore's production trusted root as the sigstore package ships it: read as a file,
# so verification needs neither the network (TUF refresh) nor a writable cache.
EMBEDDED_SIGSTORE_ROOT = (
    Path(sigstore.__file__).parent
    / "_store"
    / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
    / "trusted_root.json"
)


@dataclass(frozen=True)
class TrustedKey:
    fingerprint: str  # SHA-256 of the PEM SubjectPublicKeyInfo: the OMS bundle's key hint
    key: ec.EllipticCurvePublicKey
    source: Path
    key_type: str


@dataclass(frozen=True)
class TrustedCA:
    fingerprint: str  # SHA-256 of the DER certificate
    certificate: x509.Certificate
    source: Path


@dataclass(frozen=True)
class TrustSettings:
    """The anchors signatures are checked against. Empty: nothing verifies but Sigstore."""

    keys: tuple[TrustedKey, ...] = ()
    cas: tuple[TrustedCA, ...] = ()
    sigstore_root: Path = EMBEDDED_SIGSTORE_ROOT
    sigstore_root_given: bool = False
    sigstore_root_sha256: str = ""

    def anchors(self) -> tuple[TrustAnchor, ...]:
        """What the report records as the anchors this run trusted."""
        anchors = [
            TrustAnchor(
                kind="key", fingerprint=k.fingerprint, source=str(k.source), name=k.key_type
            )
            for k in self.keys
        ]
        anchors += [
            TrustAnchor(
                kind="ca",
                fingerprint=ca.fingerprint,
                source=str(ca.source),
                name=ca.certificate.subject.rfc4514_string(),
            )
            for ca in self.cas
        ]
        anchors.append(
            TrustAnchor(
                kind="sigstore_root",
                fingerprint=self.sigstore_root_sha256,
                source=str(self.sigstore_root) if self.sigstore_root_given else "embedded",
                name="Sigstore public-good instance" if not self.sigstore_root_given else None,
            )
        )
        return tuple(anchors)


def key_fingerprint(key: ec.EllipticCurvePublicKey) -> str:
    """The hint model_signing writes into a key-signed bundle: SHA-256 of the PEM public key."""
    # cryptography loads slowly: imported only when keys or certificates are read.
    from cryptography.hazmat.primitives import serialization

    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(pem).hexdigest()


def oms_key_type(key: object) -> str | None:
    """'ecdsa-p256' etc. for a key OMS accepts, None for any other key."""
    # cryptography loads slowly: imported only when keys or certificates are read.
    from cryptography.hazmat.primitives.asymmetric import ec

    if isinstance(key, ec.EllipticCurvePublicKey):
        return OMS_CURVES.get(key.curve.name)
    return None


def _read(path: Path, what: str) -> bytes:
    remedy = f"pass a readable {what} file"
    try:
        raw = read_at_most(path, TRUST_FILE_MAX)
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot be read ({exc.strerror or exc})", remedy) from exc
    if len(raw) > TRUST_FILE_MAX:
        raise ConfigError(f"{what} {path}: larger than {TRUST_FILE_MAX} bytes", remedy)
    return raw


def load_key(path: Path) -> TrustedKey:
    # cryptography loads slowly: imported only when keys or certificates are read.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    raw = _read(path, "trusted key")
    try:
        key = serialization.load_pem_public_key(raw)
    except ValueError as exc:
        raise ConfigError(
            f"trusted key {path}: not a PEM public key ({exc})",
            "give the signer's public key, e.g. from `openssl ec -in private.pem -pubout`",
        ) from exc
    key_type = oms_key_type(key)
    if key_type is None or not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigError(
            f"trusted key {path}: a {type(key).__name__}, not an EC P-256, P-384 or P-521 key",
            "OpenSSF model signatures use EC P-256, P-384 or P-521 keys",
        )
    return TrustedKey(key_fingerprint(key), key, path, key_type)


def load_cas(path: Path) -> list[TrustedCA]:
    # cryptography loads slowly: imported only when keys or certificates are read.
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    raw = _read(path, "trusted CA certificate")
    try:
        certificates = x509.load_pem_x509_certificates(raw)
    except ValueError as exc:
        raise ConfigError(f"trusted CA certificate {path}: not PEM certificates ({exc})") from exc
    return [
        TrustedCA(hashlib.sha256(c.public_bytes(serialization.Encoding.DER)).hexdigest(), c, path)
        for c in certificates
    ]


def load_trust(
    keys: Sequence[Path] = (), cas: Sequence[Path] = (), sigstore_root: Path | None = None
) -> TrustSettings:
    """Load every anchor; any unusable file is a ConfigError naming it (exit 2, never a pass)."""
    loaded_keys = {k.fingerprint: k for k in (load_key(p) for p in keys)}
    loaded_cas = {ca.fingerprint: ca for p in cas for ca in load_cas(p)}
    root = sigstore_root or EMBEDDED_SIGSTORE_ROOT
    if sigstore_root is not None:
        _check_trusted_root(sigstore_root)
    return TrustSettings(
        keys=tuple(loaded_keys.values()),
        cas=tuple(loaded_cas.values()),
        sigstore_root=root,
        sigstore_root_given=sigstore_root is not None,
        sigstore_root_sha256=hashlib.sha256(_read(root, "Sigstore trusted root")).hexdigest(),
    )


def trust_from_config(
    config: dict[str, object],
    config_dir: Path | None,
    *,
    keys: Sequence[Path] = (),
    cas: Sequence[Path] = (),
    sigstore_root: Path | None = None,
) -> TrustSettings:
    """Anchors from the config's [trust] table (paths relative to the config file) plus options.

    [trust] keys = ["publisher.pub"], certificate_roots = ["ca.pem"],
    sigstore_trusted_root = "trusted_root.json"; identities are checked by
    `validate_identities` and judged by the policy.
    """
    table = config.get("trust", {})
    if not isinstance(table, dict):
        raise ConfigError("config [trust] is not a table")
    unknown = set(table) - {"keys", "certificate_roots", "sigstore_trusted_root", "identities"}
    if unknown:
        raise ConfigError(
            f"config [trust] has unknown key(s) {', '.join(sorted(unknown))}",
            "known keys: keys, certificate_roots, sigstore_trusted_root, identities",
        )
    base = config_dir or Path.cwd()

    def paths(name: str) -> list[Path]:
        value = table.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"config [trust] {name} is not a list of file paths")
        return [base / v for v in value]

    root_value = table.get("sigstore_trusted_root")
    if root_value is not None and not isinstance(root_value, str):
        raise ConfigError("config [trust] sigstore_trusted_root is not a file path")
    root = sigstore_root or (base / root_value if root_value else None)
    validate_identities(table.get("identities", []))
    return load_trust([*paths("keys"), *keys], [*paths("certificate_roots"), *cas], root)


def validate_identities(value: object) -> None:
    """Each trusted identity names an `issuer` and exactly one of `identity` / `identity_pattern`."""
    if not isinstance(value, list):
        raise ConfigError("config [trust] identities is not a list of tables")
    for number, entry in enumerate(value, start=1):
        where = f"config [[trust.identities]] entry {number}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} is not a table")
        if set(entry) - {"identity", "identity_pattern", "issuer"}:
            raise ConfigError(f"{where}: only identity, identity_pattern and issuer are known")
        if not isinstance(entry.get("issuer"), str) or not entry["issuer"]:
            raise ConfigError(f"{where}: issuer (the OIDC issuer URL) is required")
        has = [
            k
            for k in ("identity", "identity_pattern")
            if isinstance(entry.get(k), str) and entry[k]
        ]
        if len(has) != 1:
            raise ConfigError(
                f"{where}: give exactly one of identity (exact) or identity_pattern (regex)"
            )
        if has == ["identity_pattern"]:
            try:
                re.compile(entry["identity_pattern"])
            except re.error as exc:
                raise ConfigError(
                    f"{where}: identity_pattern is not a regular expression ({exc})"
                ) from exc


def _check_trusted_root(path: Path) -> None:
    # sigstore's models load slowly (protobufs): imported only when a root file is given.
    from sigstore.models import TrustedRoot

    _read(path, "Sigstore trusted root")
    try:
        TrustedRoot.from_file(str(path))
    except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError, JSON errors and kin
        raise ConfigError(
            f"Sigstore trusted root {path}: not a trusted_root.json ({type(exc).__name__}: {str(exc)[:300]})",
            "pass a Sigstore trusted_root.json (e.g. from `sigstore --staging ...` TUF metadata or your private instance)",
        ) from exc
