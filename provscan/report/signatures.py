"""Who signed the model, does each signature verify, and which files and facts does it prove?"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Literal

from pydantic import Field

from provscan.report.base import ReportModel
from provscan.report.files import FileRole


class SignatureStatus(str, Enum):
    """What checking one signature file showed, before any file is compared.

    verified: the signature checks out against a trust anchor provscan was given (a
      public key, a CA certificate, or a Sigstore trusted root);
    unverified: well formed, but nothing provscan was given can check it (a key it does
      not hold, a certificate chain to a CA it was not given);
    invalid: the signature, its certificate chain or its transparency-log proof fails, or
      the signed manifest is inconsistent;
    malformed: not a readable OpenSSF model signature (OMS) bundle.
    """

    VERIFIED = "verified"
    UNVERIFIED = "unverified"
    INVALID = "invalid"
    MALFORMED = "malformed"


SignatureMethod = Literal["key", "certificate", "sigstore"]
Integrity = Literal["match", "mismatch", "not_checked"]


class TlogEntry(ReportModel):
    """The transparency-log entry a Sigstore bundle carries (its inclusion proof was checked)."""

    log_index: int
    integrated_time: datetime | None = None
    log_id: str | None = None  # base64 key id of the log


class Signer(ReportModel):
    """Who signed: the key, certificate and (Sigstore) identity in the signature."""

    method: SignatureMethod
    key_fingerprint: str | None = None  # SHA-256 of the PEM public key (the OMS key hint)
    key_type: str | None = None  # e.g. ecdsa-p256
    certificate_subject: str | None = None
    certificate_issuer: str | None = None
    certificate_serial: str | None = None
    certificate_fingerprint: str | None = None  # SHA-256 of the DER signing certificate
    chain: tuple[str, ...] = ()  # subjects of the certificates the bundle carries after the leaf
    identity: str | None = None  # certificate SAN: e-mail, URI or other name
    oidc_issuer: str | None = None  # Sigstore OIDC issuer extension
    tlog: TlogEntry | None = None
    # The signing (leaf) certificate's validity window; None for key signatures.
    certificate_not_before: datetime | None = None
    certificate_not_after: datetime | None = None
    # The instant the certificate chain's validity was judged at, and why that instant:
    # "verification-time" (certificate bundles carry no trusted timestamp, so the chain and
    # its trusted CA must be valid when provscan verifies), "transparency-log" (Sigstore:
    # the log entry's integrated time, which the log's inclusion promise vouches for).
    # None for key signatures, and for a Sigstore entry that has no integrated time.
    validity_checked_at: datetime | None = None
    validity_basis: Literal["verification-time", "transparency-log"] | None = None
    # What the signature was checked against: "key:<sha256>", "ca:<sha256 of the CA
    # certificate>", "sigstore:<sha256 of the trusted root file>"; None when unverified.
    trust_anchor: str | None = None


class SignedSerialization(ReportModel):
    """How the signer hashed the model (the OMS predicate's `serialization`)."""

    method: Literal["files", "shards"]
    hash_type: Literal["sha256", "blake2b", "blake2", "blake3"]
    shard_size: int | None = None
    allow_symlinks: bool = False
    ignore_paths: tuple[str, ...] = ()


class UncoveredFile(ReportModel):
    """A file present in the target that one signature says nothing about.

    reason: "ignored" (the signature's ignore_paths leave it out), "empty" (zero-length,
    and shard serialization records no shard for it, so the signature cannot tell
    whether the signer had it), "unnamed" (its name cannot be part of a manifest).
    loader_read: whether a loader (or provscan's own licence and origin steps) reads it;
    True unless provscan knows nothing reads files like it (images, documents).
    """

    path: str
    role: FileRole
    reason: Literal["ignored", "empty", "unnamed"]
    loader_read: bool
    read_by: tuple[str, ...] = ()  # what reads it, as far as provscan knows


class SignatureCheck(ReportModel):
    """One signature file: who signed, whether it verifies, and whether the files match it."""

    path: str  # relative to the target when inside it, else as given
    sha256: str | None = None
    status: SignatureStatus
    reason: str | None = None  # why it is not verified
    signer: Signer | None = None
    predicate_type: str | None = None
    serialization: SignedSerialization | None = None
    signed_root_digest: str | None = None  # the in-toto subject digest over the signed resources
    signed_files: int = Field(default=0, ge=0)
    integrity: Integrity = "not_checked"
    integrity_reason: str | None = None  # why not checked
    # "manifest": compared with the hashing step's manifest (no second read); "rehash": the
    # signer hashed differently (another hash or shard size), so the files were read again.
    # manifest: this scan's hashes; rehash: the files hashed again the signer's way;
    # hub-record: some signed files were not downloaded, and were compared by the Hub's record.
    compared_with: Literal["manifest", "rehash", "hub-record"] | None = None
    changed: tuple[str, ...] = ()  # signed files whose content differs
    missing: tuple[str, ...] = ()  # signed files that are absent
    extra: tuple[str, ...] = ()  # files present that the signature does not list
    # Files present that this signature does not cover (judged by its own ignore paths and
    # serialization alone: no other signature's content influences this check).
    not_covered: tuple[UncoveredFile, ...] = ()


class FactSource(ReportModel):
    """A file a reported fact was read from, and the signatures that prove that file.

    fact: licence (licence evidence), lineage (a base-model claim), card (the model card's
    front matter), family (a model-family signal such as the chat template).
    signed_by empty: no verified signature that the files match covers the file, so the
    fact rests on a file anyone who handed over the model could have written.
    """

    fact: Literal["licence", "lineage", "card", "family"]
    detail: str
    path: str
    signed_by: tuple[str, ...] = ()


class TrustAnchor(ReportModel):
    """One thing provscan was told to trust (config [trust] or a --trusted-* option)."""

    kind: Literal["key", "ca", "sigstore_root"]
    fingerprint: str  # SHA-256 (PEM public key, DER certificate, trusted root file)
    source: str  # the file it was read from, or "embedded" for sigstore's own root
    name: str | None = None  # key type, certificate subject


class SignatureFacts(ReportModel):
    """Every signature found or given, and the anchors they were checked against.

    No signature is a fact for the policy (`signatures` empty), not an error.
    """

    signatures: tuple[SignatureCheck, ...] = ()
    anchors: tuple[TrustAnchor, ...] = ()
