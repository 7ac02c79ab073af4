"""Are these the signer's exact files? Find OMS signatures, verify them, compare manifests.

Signatures are read before hashing (`plan_signatures`): one hashed with SHA-256 (a given
--signature before the folder's own model.sig) decides how the hashing step cuts files
(whole files or shards, shard size), so verification reuses those digests and no file is
read twice. A signature made with another hash or serialization is checked with
model_signing's own hashing (a second read, reported as such).

Every signature is judged on its own: the files it is compared with are all the target's
files less that signature's own ignore list (and git metadata, download bookkeeping and
the signature files themselves). Nothing one signature says (its ignore list, its
serialization) changes the result of another, so a signature the attacker wrote into the
folder cannot widen what the publisher's signature leaves unchecked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from provscan.collectors.base import Collected
from provscan.collectors.coverage import readers_of
from provscan.collectors.hashing import DEFAULT_IGNORE_PATHS, is_ignored
from provscan.collectors.inventory import role_of
from provscan.collectors.signature_compare import compare_files, file_of, signature_finding
from provscan.files import ScanFile
from provscan.limits import Limits
from provscan.report import (
    FileFormat,
    Finding,
    Manifest,
    Severity,
    SignatureCheck,
    SignatureFacts,
    SignatureStatus,
    SignedSerialization,
    UncoveredFile,
)
from provscan.signing.bundle import (
    ParsedSignature,
    SignatureFormatError,
    read_signature,
)
from provscan.signing.layout import CONVENTIONAL_NAME, HF_LOCAL_DIR_PATHS
from provscan.signing.rehash import RehashFn
from provscan.signing.trust import TrustSettings

# Left out of every comparison: git metadata (model_signing's verify always leaves it
# out) and huggingface_hub's download bookkeeping; the signature files are added per plan.
_ALWAYS_EXCLUDED = (*DEFAULT_IGNORE_PATHS, *HF_LOCAL_DIR_PATHS)
# The finding each outcome other than "verified" gives (the policy decides what it means).
_STATUS_RULES = {
    SignatureStatus.INVALID: ("SIG-INVALID", Severity.CRITICAL),
    SignatureStatus.MALFORMED: ("SIG-MALFORMED", Severity.CRITICAL),
    SignatureStatus.UNVERIFIED: ("SIG-UNVERIFIED", Severity.INFO),
}


@dataclass(frozen=True)
class LoadedSignature:
    display: str  # relative to the target when inside it, else the path given
    rel: str | None  # its name inside the target, when it is one of the target's files
    parsed: ParsedSignature | None
    error: str | None = None
    sha256: str | None = None
    given: bool = False  # named with --signature (else found in the target as model.sig)


@dataclass(frozen=True)
class SignaturePlan:
    signatures: tuple[LoadedSignature, ...] = ()

    @property
    def hashing(self) -> SignedSerialization | None:
        """How the hashing step cuts files: as the first SHA-256 signature the user gave,
        else as the target's own. Only the cutting (files or shards, shard size) is taken:
        which files are hashed never depends on a signature's ignore list."""
        ordered = sorted(self.signatures, key=lambda item: not item.given)
        for item in ordered:
            if item.parsed is not None and item.parsed.serialization.hash_type == "sha256":
                return item.parsed.serialization
        return None

    def excluded(self) -> tuple[str, ...]:
        """Paths left out of every comparison: git paths, download bookkeeping, and the
        signature files inside the target."""
        paths = set(_ALWAYS_EXCLUDED)
        paths.update(item.rel for item in self.signatures if item.rel is not None)
        return tuple(sorted(paths))

    def manifest_files(self, files: Sequence[ScanFile]) -> list[ScanFile]:
        """The target's files, in_manifest False for the excluded paths (unchanged when there
        is no signature: the manifest is then model_signing's default one)."""
        if not self.signatures:
            return list(files)
        excluded = self.excluded()
        return [
            f
            if not f.in_manifest or not is_ignored(f.rel, excluded)
            else dataclasses.replace(f, in_manifest=False)
            for f in files
        ]


def plan_signatures(
    files: Sequence[ScanFile], given: Sequence[Path], limits: Limits
) -> SignaturePlan:
    """Read the target's model.sig and every --signature file (unverified, bounded)."""
    by_path = {f.path.resolve(): f for f in files}
    found: list[tuple[str, str | None, Path, bool]] = []
    for f in files:
        if f.rel == CONVENTIONAL_NAME:
            found.append((f.rel, f.rel, f.path, False))
    for path in given:
        inside = by_path.get(path.resolve())
        rel = inside.rel if inside else None
        if rel is not None and any(known == rel for _, known, _, _ in found):
            found = [(d, r, p, r == rel or g) for d, r, p, g in found]
            continue
        found.append((rel or str(path), rel, path, True))
    loaded = []
    for display, rel, path, was_given in found:
        try:
            parsed = read_signature(path, limits.signature_max, limits.signature_max_resources)
        except SignatureFormatError as exc:
            loaded.append(LoadedSignature(display, rel, None, str(exc), exc.sha256, was_given))
            continue
        loaded.append(
            LoadedSignature(display, rel, parsed, sha256=parsed.envelope.sha256, given=was_given)
        )
    return SignaturePlan(tuple(loaded))


def collect_signatures(
    plan: SignaturePlan,
    manifest: Manifest | None,
    files: Sequence[ScanFile],
    formats: Mapping[str, FileFormat],
    trust: TrustSettings,
    rehash: RehashFn | None = None,
) -> Collected[SignatureFacts]:
    """Verify each signature and compare the files with what it signed, each on its own.

    `files` carry in_manifest as `plan.manifest_files` set it; `manifest` is the hashing
    step's (None when some file could not be hashed), over every file but the excluded
    paths; `formats` is each file's sniffed format; `rehash(serialization, left_out)`
    builds a manifest for a signature hashed another way (None: such a signature is not
    compared).
    """
    checks: list[SignatureCheck] = []
    findings: list[Finding] = []
    excluded = plan.excluded()
    for item in plan.signatures:
        check, found = _check_one(item, manifest, files, formats, trust, rehash, excluded)
        checks.append(check)
        findings.extend(found)
    return Collected(
        SignatureFacts(signatures=tuple(checks), anchors=trust.anchors()), tuple(findings)
    )


def _check_one(
    item: LoadedSignature,
    manifest: Manifest | None,
    files: Sequence[ScanFile],
    formats: Mapping[str, FileFormat],
    trust: TrustSettings,
    rehash: RehashFn | None,
    excluded: tuple[str, ...],
) -> tuple[SignatureCheck, list[Finding]]:
    at = item.rel
    if item.parsed is None:
        message = f"{item.display}: not a usable OpenSSF model signature: {item.error}"
        return (
            SignatureCheck(
                path=item.display,
                sha256=item.sha256,
                status=SignatureStatus.MALFORMED,
                reason=item.error,
            ),
            [
                signature_finding(
                    "SIG-MALFORMED", Severity.CRITICAL, at, message, signature=item.display
                )
            ],
        )
    parsed = item.parsed
    # Imported here: cryptography is loaded only for a model that carries a signature.
    from provscan.signing.verify import verify_signature

    verification = verify_signature(parsed.envelope, trust)
    uncovered = _not_covered(parsed.serialization, files, formats, excluded)
    check = SignatureCheck(
        path=item.display,
        sha256=parsed.envelope.sha256,
        status=verification.status,
        reason=verification.reason,
        signer=verification.signer,
        predicate_type=parsed.predicate_type,
        serialization=parsed.serialization,
        signed_root_digest=parsed.subject_digest,
        signed_files=len({file_of(name, parsed) for name in parsed.resources}),
        not_covered=uncovered,
    )
    findings: list[Finding] = []
    if verification.status in _STATUS_RULES:
        rule, severity = _STATUS_RULES[verification.status]
        message = f"{item.display}: {verification.reason}"
        findings.append(signature_finding(rule, severity, at, message, signature=item.display))
    check, integrity = compare_files(check, parsed, manifest, files, rehash, excluded)
    findings.extend(integrity)
    if verification.status is SignatureStatus.VERIFIED:
        # A record per file for the reader; the policy decides what an uncovered file means
        # (POL-SIG-NOT-COVERED), judging only the signatures it trusts.
        findings.extend(_not_covered_finding(entry, item.display) for entry in uncovered)
    return check, findings


def _not_covered_finding(entry: UncoveredFile, signature: str) -> Finding:
    why = {
        "ignored": "its ignore_paths leave it out",
        "empty": "it is empty, and shard serialization records no shard for an empty file",
        "unnamed": "its name cannot be part of a manifest",
    }[entry.reason]
    read = f"read by {'; '.join(entry.read_by)}" if entry.loader_read else "no loader reads it"
    return signature_finding(
        "SIG-NOT-COVERED",
        Severity.INFO,
        entry.path,
        f"{entry.path}: not covered by signature {signature} ({why}), so nothing proves it is the signer's; {read}",
        signature=signature,
        reason=entry.reason,
        role=entry.role.value,
        loader_read=entry.loader_read,
    )


def _not_covered(
    serialization: SignedSerialization,
    files: Sequence[ScanFile],
    formats: Mapping[str, FileFormat],
    excluded: tuple[str, ...],
) -> tuple[UncoveredFile, ...]:
    """The files one signature says nothing about, by its own ignore list and serialization:
    ignored by it, empty under shards, or named so that no manifest can hold them."""
    single = len(files) == 1
    out: list[UncoveredFile] = []
    for f in files:
        if is_ignored(f.rel, excluded):
            continue
        reason: Literal["ignored", "empty", "unnamed"]
        if not f.in_manifest:
            reason = "unnamed"
        elif not single and is_ignored(f.rel, serialization.ignore_paths):
            reason = "ignored"
        elif serialization.method == "shards" and f.size == 0 and f.read == "whole":
            reason = "empty"
        else:
            continue
        fmt = formats.get(f.rel, FileFormat.BINARY)
        role = role_of(f.rel, fmt)
        read_by = readers_of(f.rel, fmt, role)
        out.append(
            UncoveredFile(
                path=f.rel, role=role, reason=reason, loader_read=bool(read_by), read_by=read_by
            )
        )
    return tuple(sorted(out, key=lambda entry: entry.path))
