"""Does a signature check out, and who made it? Key, certificate-chain and Sigstore bundles.

The checks themselves are the reference implementations': model_signing's verifiers for
key and certificate bundles, sigstore-python's for Sigstore bundles (certificate chain to
the trusted root's Fulcio CA, signed certificate timestamp, transparency-log inclusion
proof, DSSE signature), all offline. What this module adds is telling apart a signature
that fails (invalid) from one that nothing provscan was given can check (unverified), and,
for certificate bundles, the certificates' validity at verification time: model_signing
checks the chain at the signing certificate's own not-before date, and a certificate bundle
carries no trusted timestamp that could prove it signed while its chain was valid.
"""

from __future__ import annotations

import base64
import contextlib
import io
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import exceptions as crypto_exceptions
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from provscan.report import SignatureStatus, Signer, TlogEntry
from provscan.signing.bundle import Envelope
from provscan.signing.certificate import (
    anchoring_ca,
    besides,
    certificate_signer,
    outside_validity,
    validity_reason,
)
from provscan.signing.trust import TrustSettings, oms_key_type

# Transparency-log entry types sigstore-python (4.5) can check for a DSSE bundle.
_SUPPORTED_DSSE_ENTRIES = {("dsse", "0.0.1"), ("hashedrekord", "0.0.2")}


@dataclass(frozen=True)
class Verification:
    status: SignatureStatus
    reason: str | None
    signer: Signer


def verify_signature(
    envelope: Envelope, trust: TrustSettings, now: datetime | None = None
) -> Verification:
    """Check one signed envelope against the trust anchors. Never raises for bad input.

    now: the verification time certificate chains must be valid at (default: the current
    time; a naive datetime is taken as UTC).
    """
    if envelope.method == "key":
        return _verify_key(envelope, trust)
    if envelope.method == "certificate":
        if now is None:
            now = datetime.now(timezone.utc)
        elif now.tzinfo is None:
            now = now.replace(tzinfo=timezone.utc)
        return _verify_certificate(envelope, trust, now.astimezone(timezone.utc))
    return _verify_sigstore(envelope, trust)


def _model_signing_bundle(envelope: Envelope) -> object:
    """The bundle as model_signing's key / certificate verifiers take it."""
    # model_signing and sigstore load slowly: imported only when a signature is checked.
    from model_signing._signing import sign_sigstore_pb
    from sigstore_models.bundle import v1 as bundle_pb

    # The same adjustments as model_signing's Signature.read (which reads an unbounded
    # file from a path): older bundles lack tlogEntries; rawBytes / keyDetails are dropped.
    document = dict(envelope.document)
    material = dict(document["verificationMaterial"])
    material.setdefault("tlogEntries", [])
    if isinstance(material.get("publicKey"), dict):
        key = {
            k: v for k, v in material["publicKey"].items() if k not in ("rawBytes", "keyDetails")
        }
        key.setdefault("hint", None)
        material["publicKey"] = key
    document["verificationMaterial"] = material
    return sign_sigstore_pb.Signature(bundle_pb.Bundle.from_dict(document))


def _checked_payload(verifier: object, envelope: Envelope) -> None:
    """Run a model_signing verifier; raise if the payload it vouches for is not the one envelope."""
    signature = _model_signing_bundle(envelope)
    # model_signing prints a warning on stdout for old key bundles: keep stdout for reports.
    with contextlib.redirect_stdout(io.StringIO()):
        payload_type, payload = verifier._verify_signed_content(signature)  # type: ignore[attr-defined]
    if isinstance(payload, str):
        payload = payload.encode()
    if payload != envelope.payload:
        raise ValueError("the verified payload differs from the bundle's")


def _verify_key(envelope: Envelope, trust: TrustSettings) -> Verification:
    # model_signing and sigstore load slowly: imported only when a signature is checked.
    from model_signing._signing import sign_ec_key

    material = envelope.document["verificationMaterial"]["publicKey"]
    hint = material.get("hint") if isinstance(material, dict) else None
    hint = hint if isinstance(hint, str) and hint else None
    signer = Signer(method="key", key_fingerprint=hint)
    candidates = [k for k in trust.keys if hint is None or k.fingerprint == hint]
    if not candidates:
        named = f"public key {hint}" if hint else "a public key the bundle does not name"
        return Verification(
            SignatureStatus.UNVERIFIED,
            f"signed with {named}, which is not among the trusted keys (--trusted-key or [trust] keys)",
            signer,
        )
    failures = []
    for key in candidates:
        try:
            _checked_payload(sign_ec_key.Verifier(key.source), envelope)
        except (crypto_exceptions.InvalidSignature, ValueError, TypeError, IndexError) as exc:
            failures.append(f"{key.source}: {_describe(exc)}")
            continue
        verified = signer.model_copy(
            update={
                "key_fingerprint": key.fingerprint,
                "key_type": key.key_type,
                "trust_anchor": f"key:{key.fingerprint}",
            }
        )
        return Verification(SignatureStatus.VERIFIED, None, verified)
    if hint is None:
        # The hint is optional and unsigned: a bundle that names no key and that no trusted
        # key verifies was most likely signed by some other key, which is "unverified".
        return Verification(
            SignatureStatus.UNVERIFIED,
            "signed with a public key the bundle does not name, and none of the trusted keys verifies it",
            signer,
        )
    return Verification(
        SignatureStatus.INVALID,
        "the signature does not verify with the trusted key it names: the signed content was changed after signing, or another key signed it ("
        + "; ".join(failures)
        + ")",
        signer,
    )


# Library messages can embed whole proofs as Python reprs; a reason stays readable.
_REASON_MAX = 300


def _describe(exc: BaseException) -> str:
    if isinstance(exc, crypto_exceptions.InvalidSignature):
        return "signature mismatch"
    text = str(exc) or type(exc).__name__
    return text if len(text) <= _REASON_MAX else text[:_REASON_MAX] + " ..."


def _chain(envelope: Envelope) -> list[x509.Certificate]:
    chain = envelope.document["verificationMaterial"].get("x509CertificateChain")
    certificates = chain.get("certificates") if isinstance(chain, dict) else None
    if not isinstance(certificates, list) or not certificates:
        raise ValueError("the certificate chain is empty")
    loaded = []
    for item in certificates:
        raw = item.get("rawBytes") if isinstance(item, dict) else None
        if not isinstance(raw, str):
            raise ValueError("a chain certificate has no rawBytes")
        loaded.append(x509.load_der_x509_certificate(base64.b64decode(raw, validate=True)))
    return loaded


def _leaf_signature_valid(leaf: x509.Certificate, envelope: Envelope) -> bool:
    """Whether the DSSE signature verifies with the leaf certificate's key, chain aside.

    Hand-written (DSSE PAE + ECDSA, as in model_signing's verifiers) because model_signing's
    certificate verifier only checks the signature after the chain, and falls back to the
    operating system's CAs when given none: provscan must say "valid signature, untrusted
    chain" without trusting anything the user did not give.
    """
    # model_signing and sigstore load slowly: imported only when a signature is checked.
    from model_signing._signing import sign_ec_key, sign_sigstore_pb

    key = leaf.public_key()
    if oms_key_type(key) is None or not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    signature = base64.b64decode(envelope.document["dsseEnvelope"]["signatures"][0]["sig"])
    try:
        key.verify(
            signature,
            sign_sigstore_pb.pae(envelope.payload),
            ec.ECDSA(sign_ec_key.get_ec_key_hash(key)),
        )
    except crypto_exceptions.InvalidSignature:
        return False
    return True


def _verify_certificate(envelope: Envelope, trust: TrustSettings, now: datetime) -> Verification:
    # model_signing and sigstore load slowly: imported only when a signature is checked.
    from model_signing._signing import sign_certificate

    try:
        chain = _chain(envelope)
    except ValueError as exc:
        reason = f"the certificate chain cannot be read: {exc}"
        return Verification(SignatureStatus.MALFORMED, reason, Signer(method="certificate"))
    signer = certificate_signer("certificate", chain[0], chain[1:]).model_copy(
        update={"validity_checked_at": now, "validity_basis": "verification-time"}
    )
    if not _leaf_signature_valid(chain[0], envelope):
        return Verification(
            SignatureStatus.INVALID,
            "the signature does not verify with the signing certificate's key: the signed content was changed after signing",
            signer,
        )
    if not trust.cas:
        return Verification(
            SignatureStatus.UNVERIFIED,
            f"signed by certificate {signer.certificate_subject or signer.certificate_fingerprint}; its chain was not checked: no trusted CA given (--trusted-ca or [trust] certificate_roots)"
            + besides(outside_validity(chain, None, now)),
            signer,
        )
    anchor = anchoring_ca(chain, trust, now)
    outside = outside_validity(chain, anchor, now)
    try:
        # Checks the chain (at the signing certificate's own not-before date) and its usage.
        verifier = sign_certificate.Verifier([ca.source for ca in trust.cas])
        _checked_payload(verifier, envelope)
    except ValueError as exc:
        return Verification(
            SignatureStatus.INVALID,
            f"the certificate chain is not valid for signing: {exc}",
            signer,
        )
    except Exception as exc:  # noqa: BLE001 - pyOpenSSL's X509StoreContextError and kin
        if anchor is not None and outside:
            # The chain leads to a trusted CA, and fails for a certificate outside its
            # validity: say which one, and when.
            return Verification(SignatureStatus.UNVERIFIED, validity_reason(outside, now), signer)
        return Verification(
            SignatureStatus.UNVERIFIED,
            f"signed by certificate {signer.certificate_subject}, whose chain does not lead to a trusted CA ({_describe(exc)})"
            + besides(outside),
            signer,
        )
    if outside:
        return Verification(SignatureStatus.UNVERIFIED, validity_reason(outside, now), signer)
    anchored = f"ca:{(anchor or trust.cas[0]).fingerprint}"
    return Verification(
        SignatureStatus.VERIFIED, None, signer.model_copy(update={"trust_anchor": anchored})
    )


def _verify_sigstore(envelope: Envelope, trust: TrustSettings) -> Verification:
    # model_signing and sigstore load slowly: imported only when a signature is checked.
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import Bundle, TrustedRoot
    from sigstore.verify import Verifier

    try:
        bundle = Bundle.from_json(envelope.raw)
    except (SigstoreError, ValueError, KeyError, TypeError) as exc:
        return Verification(
            SignatureStatus.MALFORMED,
            f"not a valid Sigstore bundle: {_describe(exc)}",
            Signer(method="sigstore"),
        )
    leaf = bundle.signing_certificate
    signer = certificate_signer("sigstore", leaf, [])
    entry = bundle.log_entry._inner
    # sigstore-python checks the Fulcio certificate chain at the log entry's integrated time
    # (bound by the entry's inclusion promise), not at the time of verification.
    logged = (
        datetime.fromtimestamp(int(entry.integrated_time), tz=timezone.utc)
        if entry.integrated_time and entry.inclusion_promise
        else None
    )
    signer = signer.model_copy(
        update={
            "validity_checked_at": logged,
            "validity_basis": "transparency-log" if logged else None,
            "tlog": TlogEntry(
                log_index=int(entry.log_index),
                integrated_time=datetime.fromtimestamp(int(entry.integrated_time), tz=timezone.utc)
                if entry.integrated_time
                else None,
                log_id=base64.b64encode(bytes(entry.log_id.key_id)).decode()
                if entry.log_id
                else None,
            ),
        }
    )
    kind = (entry.kind_version.kind, entry.kind_version.version)
    if kind not in _SUPPORTED_DSSE_ENTRIES:
        return Verification(
            SignatureStatus.UNVERIFIED,
            f"its transparency-log entry is of type {kind[0]}/{kind[1]}, which the installed sigstore library cannot check",
            signer,
        )
    try:
        verifier = Verifier(trusted_root=TrustedRoot.from_file(str(trust.sigstore_root)))
        payload_type, payload = verifier.verify_dsse(bundle, _IdentityJudgedByPolicy())
    except (SigstoreError, ValueError, crypto_exceptions.InvalidSignature) as exc:
        return Verification(
            SignatureStatus.INVALID, f"Sigstore verification failed: {_describe(exc)}", signer
        )
    if payload != envelope.payload:
        return Verification(
            SignatureStatus.INVALID, "the verified payload differs from the bundle's", signer
        )
    return Verification(
        SignatureStatus.VERIFIED,
        None,
        signer.model_copy(update={"trust_anchor": f"sigstore:{trust.sigstore_root_sha256}"}),
    )


class _IdentityJudgedByPolicy:
    """A sigstore VerificationPolicy that accepts any signer identity at this stage.

    Everything else about the bundle is verified; the identity and OIDC issuer are then
    recorded in the report and judged by the Rego policy against config trust.identities
    (exact or pattern), so a Sigstore signature by an identity nobody listed never counts
    as trusted.
    """

    def verify(self, cert: x509.Certificate) -> None:
        return None
