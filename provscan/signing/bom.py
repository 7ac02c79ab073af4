"""Was this AI-BOM signed, and by whom? Sign a BOM file and verify its signature.

A BOM is signed as an in-toto statement (predicate type https://cyclonedx.org/bom, subject:
the BOM file's SHA-256, predicate: the BOM) in a DSSE envelope inside a Sigstore bundle:
the container OMS model signatures use, so provscan's key and certificate verifiers (and
any DSSE verifier) check it. A BOM changed by one byte no longer matches the subject.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from provscan.atomic import write_output
from provscan.errors import UsageError
from provscan.files import read_at_most
from provscan.report import SignatureStatus, Signer
from provscan.signing.bundle import (
    DSSE_PAYLOAD_TYPE,
    STATEMENT_TYPE,
    SignatureFormatError,
    json_object,
    read_envelope,
)
from provscan.signing.sign import SigningKey, load_private_key
from provscan.signing.trust import TrustSettings, key_fingerprint
from provscan.signing.verify import verify_signature

BOM_PREDICATE_TYPE = "https://cyclonedx.org/bom"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
BOM_MAX_BYTES = 256 * 1024 * 1024
BOM_SIGNATURE_MAX_BYTES = 2 * BOM_MAX_BYTES  # the statement carries the BOM, base64-encoded


@dataclass(frozen=True)
class BomVerification:
    status: SignatureStatus
    reason: str | None
    signer: Signer | None


def default_signature(bom: Path) -> Path:
    """Where `sign-bom` writes a BOM's signature, and `verify-bom` looks for it: BOM.sig."""
    return bom.with_name(bom.name + ".sig")


def _read_bom(bom: Path) -> bytes:
    try:
        raw = read_at_most(bom, BOM_MAX_BYTES)
    except OSError as exc:
        raise UsageError(f"{bom}: cannot be read ({exc.strerror or exc})") from exc
    if len(raw) > BOM_MAX_BYTES:
        raise UsageError(f"{bom}: larger than {BOM_MAX_BYTES} bytes")
    return raw


def bom_statement(bom: Path, raw: bytes) -> bytes:
    """The in-toto statement a signed AI-BOM carries: the BOM file's digest and the BOM."""
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{bom}: not a JSON AI-BOM ({exc})") from exc
    if not isinstance(document, dict) or document.get("bomFormat") != "CycloneDX":
        raise UsageError(f"{bom}: not a CycloneDX BOM (no bomFormat: CycloneDX)")
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": bom.name, "digest": {"sha256": hashlib.sha256(raw).hexdigest()}}],
        "predicateType": BOM_PREDICATE_TYPE,
        "predicate": document,
    }
    return json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()


def sign_bom(bom: Path, output: Path, signer: SigningKey) -> None:
    """Write a Sigstore bundle with a DSSE envelope over the AI-BOM (key or certificate)."""
    # model_signing loads slowly (sigstore, protobufs): imported only when a BOM is signed.
    from model_signing._signing import sign_ec_key, sign_sigstore_pb

    raw = _read_bom(bom)
    payload = bom_statement(bom, raw)
    key = load_private_key(signer)
    signature = key.sign(
        sign_sigstore_pb.pae(payload), ec.ECDSA(sign_ec_key.get_ec_key_hash(key.public_key()))
    )
    if signer.certificate is not None:
        chain = [x509.load_pem_x509_certificate(signer.certificate.read_bytes())]
        for path in signer.chain:
            chain += x509.load_pem_x509_certificates(path.read_bytes())
        material: dict[str, object] = {
            "x509CertificateChain": {
                "certificates": [
                    {
                        "rawBytes": base64.b64encode(
                            c.public_bytes(serialization.Encoding.DER)
                        ).decode()
                    }
                    for c in chain
                ]
            },
            "tlogEntries": [],
        }
    else:
        material = {"publicKey": {"hint": key_fingerprint(key.public_key())}, "tlogEntries": []}
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": DSSE_PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": ""}],
        },
    }
    # Atomic for a file; a device or FIFO is written to, never renamed over.
    write_output(output, json.dumps(bundle, indent=2) + "\n")


def verify_bom(bom: Path, signature: Path, trust: TrustSettings) -> BomVerification:
    """Check a BOM signature: the envelope against the trust anchors, the subject against the file.

    No signature beside the BOM (BOM.sig) is no evidence either way: unverified, for review.
    A signature named anywhere else that does not exist is a mistake on the command line.
    """
    raw = _read_bom(bom)
    try:
        envelope = read_envelope(signature, BOM_SIGNATURE_MAX_BYTES)
        statement = json_object(envelope.payload, "DSSE payload")
    except SignatureFormatError as exc:
        if isinstance(exc.__cause__, FileNotFoundError):
            if os.path.abspath(signature) != os.path.abspath(default_signature(bom)):
                raise UsageError(
                    f"--signature {signature}: does not exist",
                    f"name the BOM's signature file (sign-bom writes {default_signature(bom)})",
                ) from exc
            return BomVerification(
                SignatureStatus.UNVERIFIED, f"no signature: {signature} does not exist", None
            )
        return BomVerification(SignatureStatus.MALFORMED, f"{signature}: {exc}", None)
    verification = verify_signature(envelope, trust)
    if (
        statement.get("_type") != STATEMENT_TYPE
        or statement.get("predicateType") != BOM_PREDICATE_TYPE
    ):
        return BomVerification(
            SignatureStatus.MALFORMED,
            f"{signature}: not a signed CycloneDX BOM (predicateType {str(statement.get('predicateType'))[:100]!r})",
            verification.signer,
        )
    subjects = statement.get("subject")
    digests = [
        s.get("digest", {}).get("sha256")
        for s in (subjects if isinstance(subjects, list) else [])
        if isinstance(s, dict) and isinstance(s.get("digest"), dict)
    ]
    actual = hashlib.sha256(raw).hexdigest()
    if verification.status is SignatureStatus.VERIFIED and actual not in digests:
        return BomVerification(
            SignatureStatus.INVALID,
            f"{bom}: SHA-256 {actual} is not the digest the signature covers ({', '.join(map(str, digests))}): the BOM was changed after signing",
            verification.signer,
        )
    return BomVerification(verification.status, verification.reason, verification.signer)
