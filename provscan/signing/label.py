"""Who signed, in a few words, for the lines people read (terminal, verify-bom)."""

from __future__ import annotations

from provscan.report import SignatureCheck, SignatureStatus, Signer

# Enough of the SHA-256 to tell keys apart by eye; reports carry the whole of it.
KEY_LABEL_HEX = 16


def signer_label(signer: Signer) -> str:
    """'key 7532f563e1635da3', 'certificate: CN=Publisher',
    'sigstore: me@example.com via https://issuer, log index 7'.

    A key signature names its key once: the method is the word "key" itself.
    """
    key = f"key {signer.key_fingerprint[:KEY_LABEL_HEX]}" if signer.key_fingerprint else None
    issuer = f" via {signer.oidc_issuer}" if signer.oidc_issuer else ""
    log = f", log index {signer.tlog.log_index}" if signer.tlog else ""
    if signer.method == "key":
        return f"{key or 'key not named in the signature'}{issuer}{log}"
    who = signer.identity or signer.certificate_subject or key or "unknown signer"
    return f"{signer.method}: {who}{issuer}{log}"


def files_match_signed(check: SignatureCheck) -> bool:
    """Whether "the signed files match" is true: the files match the manifest AND a trusted
    anchor verified the signature over that manifest.

    The files are compared with the manifest in every readable bundle, whatever its status.
    Unverified, nothing checked who signed that manifest (or, for a key nobody trusts,
    whether anyone did); invalid, the signature does not cover it: a manifest rewritten to
    fit changed files matches them and verifies as invalid. Only a verified signature makes
    the manifest the signer's.
    """
    return check.status is SignatureStatus.VERIFIED and check.integrity == "match"
