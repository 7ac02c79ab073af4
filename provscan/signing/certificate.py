"""What does a signing certificate say? Who it names, and whether its chain is valid at a time."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timezone

from cryptography import exceptions as crypto_exceptions
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ObjectIdentifier

from provscan.report import Signer
from provscan.signing.trust import TrustedCA, TrustSettings, key_fingerprint, oms_key_type

# Fulcio's OIDC issuer extensions: v1 holds the raw URL, v2 a DER UTF8String; a username
# identity is an OtherName of type 1.3.6.1.4.1.57264.1.7 (a DER UTF8String too).
_OIDC_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_OIDC_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_FULCIO_USERNAME = ObjectIdentifier("1.3.6.1.4.1.57264.1.7")


def certificate_signer(method: str, leaf: x509.Certificate, rest: list[x509.Certificate]) -> Signer:
    key = leaf.public_key()
    identity, issuer = certificate_identity(leaf)
    return Signer(
        method=method,  # type: ignore[arg-type]
        key_fingerprint=key_fingerprint(key)
        if isinstance(key, ec.EllipticCurvePublicKey)
        else None,
        key_type=oms_key_type(key),
        certificate_subject=leaf.subject.rfc4514_string() or None,
        certificate_issuer=leaf.issuer.rfc4514_string() or None,
        certificate_serial=format(leaf.serial_number, "x"),
        certificate_fingerprint=hashlib.sha256(
            leaf.public_bytes(serialization.Encoding.DER)
        ).hexdigest(),
        chain=tuple(c.subject.rfc4514_string() for c in rest),
        identity=identity,
        oidc_issuer=issuer,
        certificate_not_before=leaf.not_valid_before_utc,
        certificate_not_after=leaf.not_valid_after_utc,
    )


def anchoring_ca(
    chain: list[x509.Certificate], trust: TrustSettings, now: datetime
) -> TrustedCA | None:
    """The trusted CA the chain ends in: one that is a chain certificate or issued one.

    The chain's last certificates are looked at first; among CAs that fit equally (a root
    re-issued under the same name and key), one valid at `now` is preferred.
    """
    for certificate in reversed(chain):
        fits = [ca for ca in trust.cas if _issued_or_is(ca.certificate, certificate)]
        if fits:
            return next((ca for ca in fits if _within(ca.certificate, now)), fits[0])
    return None


def _issued_or_is(ca: x509.Certificate, certificate: x509.Certificate) -> bool:
    if ca == certificate:
        return True
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, crypto_exceptions.InvalidSignature):
        return False
    return True


def _within(certificate: x509.Certificate, at: datetime) -> bool:
    return certificate.not_valid_before_utc <= at <= certificate.not_valid_after_utc


def outside_validity(
    chain: Sequence[x509.Certificate], anchor: TrustedCA | None, at: datetime
) -> list[str]:
    """Each certificate of the chain, and its anchoring CA, that is not valid at `at`."""
    named: list[tuple[str, x509.Certificate]] = [("signing certificate", chain[0])]
    for certificate in chain[1:]:
        is_anchor = anchor is not None and certificate == anchor.certificate
        named.append(("trusted CA" if is_anchor else "intermediate certificate", certificate))
    if anchor is not None and anchor.certificate not in chain:
        named.append(("trusted CA", anchor.certificate))
    problems = []
    for role, certificate in named:
        subject = certificate.subject.rfc4514_string() or "with an empty subject"
        if role == "trusted CA" and anchor is not None:
            subject += f" (from {anchor.source})"
        if at < certificate.not_valid_before_utc:
            since = _instant(certificate.not_valid_before_utc)
            problems.append(f"{role} {subject} is valid only from {since}")
        elif at > certificate.not_valid_after_utc:
            until = _instant(certificate.not_valid_after_utc)
            problems.append(f"{role} {subject} expired on {until}")
    return problems


def validity_reason(problems: list[str], at: datetime) -> str:
    """Why a chain outside its validity proves nothing: a certificate bundle has no trusted time."""
    why = []
    if any(" expired on " in p for p in problems):
        why.append("no trusted timestamp or transparency-log entry proves it signed before then")
    if any(" is valid only from " in p for p in problems):
        why.append("a certificate vouches for nothing before its validity begins")
    return f"{'; '.join(problems)}; {' and '.join(why)} (checked at {_instant(at)})"


def besides(problems: list[str]) -> str:
    return f"; besides, {'; '.join(problems)}" if problems else ""


def _instant(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def certificate_identity(certificate: x509.Certificate) -> tuple[str | None, str | None]:
    """(SAN identity, OIDC issuer) of a certificate: what a Sigstore identity policy matches.

    Hand-written: sigstore-python has no public helper, and its Identity policy compares
    Fulcio's OtherName identities without unwrapping their DER UTF8String.
    """
    identity: str | None = None
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        values = list(san.get_values_for_type(x509.RFC822Name)) + list(
            san.get_values_for_type(x509.UniformResourceIdentifier)
        )
        for other in san.get_values_for_type(x509.OtherName):
            if other.type_id == _FULCIO_USERNAME:
                values.append(_der_utf8(other.value) or "")
        identity = next((v for v in values if v), None)
    v2 = _raw_extension(certificate, _OIDC_ISSUER_V2)
    v1 = _raw_extension(certificate, _OIDC_ISSUER_V1)
    issuer = _der_utf8(v2) if v2 else None
    if issuer is None and v1:
        issuer = v1.decode("utf-8", "replace")
    return identity, issuer


def _raw_extension(certificate: x509.Certificate, oid: ObjectIdentifier) -> bytes:
    """The bytes of an extension cryptography does not parse; empty when it is absent."""
    try:
        value = certificate.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return b""
    return value.value if isinstance(value, x509.UnrecognizedExtension) else b""


def _der_utf8(der: bytes) -> str | None:
    """The text of a DER UTF8String (tag 0x0C, short or long length), or None."""
    if len(der) < 2 or der[0] != 0x0C:
        return None
    length, start = der[1], 2
    if length & 0x80:
        width = length & 0x7F
        length, start = int.from_bytes(der[2 : 2 + width], "big"), 2 + width
    if start + length != len(der):
        return None
    return der[start:].decode("utf-8", "replace")
