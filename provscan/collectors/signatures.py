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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from provscan.collectors.base import Collected
from provscan.collectors.coverage import readers_of
from provscan.collectors.hashing import DEFAULT_IGNORE_PATHS, is_ignored
from provscan.collectors.inventory import role_of
from provscan.files import ScanFile
from provscan.limits import Limits
from provscan.report import (
    FileFormat,
    Finding,
    JsonValue,
    Manifest,
    Severity,
    SignatureCheck,
    SignatureFacts,
    SignatureStatus,
    SignedSerialization,
    UncoveredFile,
    file_finding,
    target_finding,
)
from provscan.signing.bundle import (
    ParsedSignature,
    SignatureFormatError,
    read_signature,
    split_shard,
)
from provscan.signing.trust import TrustSettings

CONVENTIONAL_NAME = "model.sig"
# huggingface_hub's bookkeeping in a `hf download --local-dir` folder (metadata and lock
# files, rewritten on every re-check): never part of what a publisher signed.
HF_LOCAL_DIR_PATHS = (".cache/huggingface",)
# Left out of every comparison: git metadata (model_signing's verify always leaves it
# out) and huggingface_hub's download bookkeeping; the signature files are added per plan.
_ALWAYS_EXCLUDED = (*DEFAULT_IGNORE_PATHS, *HF_LOCAL_DIR_PATHS)
# The finding each outcome other than "verified" gives (the policy decides what it means).
_STATUS_RULES = {
    SignatureStatus.INVALID: ("SIG-INVALID", Severity.CRITICAL),
    SignatureStatus.MALFORMED: ("SIG-MALFORMED", Severity.CRITICAL),
    SignatureStatus.UNVERIFIED: ("SIG-UNVERIFIED", Severity.INFO),
}
# Builds the target's manifest the way a signature says (another hash or serialization),
# leaving out the paths given.
RehashFn = Callable[[SignedSerialization, Sequence[str]], Manifest]


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
            [_finding("SIG-MALFORMED", Severity.CRITICAL, at, message, signature=item.display)],
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
        signed_files=len({_file_of(name, parsed) for name in parsed.resources}),
        not_covered=uncovered,
    )
    findings: list[Finding] = []
    if verification.status in _STATUS_RULES:
        rule, severity = _STATUS_RULES[verification.status]
        message = f"{item.display}: {verification.reason}"
        findings.append(_finding(rule, severity, at, message, signature=item.display))
    check, integrity = _compare(check, parsed, manifest, files, rehash, excluded)
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
    return _finding(
        "SIG-NOT-COVERED",
        Severity.INFO,
        entry.path,
        f"{entry.path}: not covered by signature {signature} ({why}), so nothing proves it is the signer's; {read}",
        signature=signature,
        reason=entry.reason,
        role=entry.role.value,
        loader_read=entry.loader_read,
    )


def _compare(
    check: SignatureCheck,
    parsed: ParsedSignature,
    manifest: Manifest | None,
    files: Sequence[ScanFile],
    rehash: RehashFn | None,
    excluded: tuple[str, ...],
) -> tuple[SignatureCheck, list[Finding]]:
    own = parsed.serialization.ignore_paths
    ours = (
        _without(manifest, own, files)
        if manifest is not None and _same_serialization(manifest, parsed.serialization)
        else None
    )
    compared_with: Literal["manifest", "rehash", "hub-record"] = "manifest"
    if ours is None and manifest is not None and rehash is not None:
        compared_with = "rehash"
        try:
            ours = rehash(parsed.serialization, sorted({*excluded, *own}))
        except Exception as exc:  # noqa: BLE001 - any failure leaves the files unchecked, and says why
            reason = f"the files could not be hashed the way the signer did ({type(exc).__name__}: {exc})"
            return _unchecked(check, reason)
    if ours is None:
        reason = (
            "some files could not be hashed, so the files were not compared"
            if manifest is None
            else f"the signature uses {parsed.serialization.method}/{parsed.serialization.hash_type} hashing, which this run did not compute"
            + (
                " (the weights were not downloaded: scan with --download)"
                if any(f.read != "whole" for f in files)
                else ""
            )
        )
        return _unchecked(check, reason)
    single = {f.rel for f in files if f.in_manifest} if len(files) == 1 else None
    signed = _by_file(parsed.resources, parsed, single)
    actual = _by_file({r.name: (r.algorithm, r.digest) for r in ours.resources}, parsed, single)
    changed = sorted(name for name in signed.keys() & actual.keys() if signed[name] != actual[name])
    missing = sorted(signed.keys() - actual.keys())
    extra = sorted(actual.keys() - signed.keys())
    findings = [_changed_finding(rel, signed[rel], actual[rel], check.path) for rel in changed]
    present = {f.rel: f for f in files}
    findings += [
        _finding(
            "SIG-FILE-MISSING",
            Severity.CRITICAL,
            None,
            f"{rel}: signed by {check.path} but "
            + (
                "now empty (no shard left of what was signed)"
                if rel in present and present[rel].size == 0
                else "absent"
            ),
            signature=check.path,
            file=rel,
        )
        for rel in missing
    ]
    findings += [
        _finding(
            "SIG-FILE-EXTRA",
            Severity.CRITICAL,
            rel,
            f"{rel}: present but not signed by {check.path}",
            signature=check.path,
        )
        for rel in extra
    ]
    integrity = "mismatch" if changed or missing or extra else "match"
    if compared_with == "manifest" and any(
        f.read != "whole" and f.rel in signed for f in files
    ):  # the files not downloaded were compared by the digest the Hub recorded for them
        compared_with = "hub-record"
    updated = check.model_copy(
        update={
            "integrity": integrity,
            "compared_with": compared_with,
            "changed": tuple(changed),
            "missing": tuple(missing),
            "extra": tuple(extra),
        }
    )
    return updated, findings


def _changed_finding(
    rel: str,
    signed: tuple[tuple[str, str, str], ...],
    actual: tuple[tuple[str, str, str], ...],
    signature: str,
) -> Finding:
    """SIG-FILE-CHANGED with the signed and actual digests (or which shards differ)."""
    evidence: dict[str, str]
    if len(signed) == 1 and len(actual) == 1:
        (_, algorithm, want), (_, _, got) = signed[0], actual[0]
        detail = f"signed {algorithm} {want}, found {got}"
        evidence = {"algorithm": algorithm, "signed": want, "actual": got}
    else:
        differing = sorted({name for name, *_ in set(signed) ^ set(actual)})
        more = " ..." if len(differing) > 5 else ""
        detail = f"shards differ: {', '.join(differing[:5])}{more}"
        evidence = {"shards": ", ".join(differing[:50])}
    message = f"{rel}: content differs from what {signature} signed ({detail})"
    return _finding(
        "SIG-FILE-CHANGED", Severity.CRITICAL, rel, message, signature=signature, **evidence
    )


def _unchecked(check: SignatureCheck, reason: str) -> tuple[SignatureCheck, list[Finding]]:
    updated = check.model_copy(update={"integrity": "not_checked", "integrity_reason": reason})
    message = f"{check.path}: {reason}"
    return updated, [_finding("SIG-UNCHECKED", Severity.HIGH, None, message, signature=check.path)]


def _same_serialization(manifest: Manifest, signed: SignedSerialization) -> bool:
    return (
        manifest.method == signed.method
        and manifest.hash_type == signed.hash_type
        and (signed.method == "files" or manifest.shard_size == signed.shard_size)
    )


def _file_of(name: str, parsed: ParsedSignature) -> str:
    return split_shard(name)[0] if parsed.serialization.method == "shards" else name


def _by_file(
    resources: Mapping[str, tuple[str, str]], parsed: ParsedSignature, single: set[str] | None
) -> dict[str, tuple[tuple[str, str, str], ...]]:
    """Resources grouped per file: a file differs when any of its shards (or its digest) does."""
    grouped: dict[str, list[tuple[str, str, str]]] = {}
    for name, (algorithm, digest) in resources.items():
        path = _file_of(name, parsed)
        if path == "." and single:  # a single-file model: model_signing names it "."
            path = next(iter(single))
        grouped.setdefault(path, []).append((name, algorithm, digest))
    return {path: tuple(sorted(items)) for path, items in grouped.items()}


def _without(manifest: Manifest, ignored: Sequence[str], files: Sequence[ScanFile]) -> Manifest:
    """The manifest less the resources of files a signature's own ignore list leaves out (a
    single-file model ignores nothing, as in model_signing)."""
    if not ignored or (len(files) == 1 and all(r.name == "." for r in manifest.resources)):
        return manifest
    kept = tuple(
        r
        for r in manifest.resources
        if not is_ignored(
            split_shard(r.name)[0] if manifest.method == "shards" else r.name, ignored
        )
    )
    return manifest.model_copy(update={"resources": kept})


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


def _finding(
    rule: str, severity: Severity, path: str | None, message: str, **evidence: JsonValue
) -> Finding:
    if path is not None:
        return file_finding(rule, severity, path, message, **evidence)
    return target_finding(rule, severity, message, **evidence)
