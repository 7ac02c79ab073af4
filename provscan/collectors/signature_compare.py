"""Are these the files a signature signed? Its manifest against the target's, file by file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from provscan.collectors.hashing import is_ignored
from provscan.files import ScanFile
from provscan.report import (
    Finding,
    JsonValue,
    Manifest,
    Severity,
    SignatureCheck,
    SignedSerialization,
    file_finding,
    target_finding,
)
from provscan.signing.bundle import ParsedSignature, split_shard
from provscan.signing.rehash import RehashFn


def compare_files(
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
        signature_finding(
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
        signature_finding(
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
    return signature_finding(
        "SIG-FILE-CHANGED", Severity.CRITICAL, rel, message, signature=signature, **evidence
    )


def _unchecked(check: SignatureCheck, reason: str) -> tuple[SignatureCheck, list[Finding]]:
    updated = check.model_copy(update={"integrity": "not_checked", "integrity_reason": reason})
    message = f"{check.path}: {reason}"
    return updated, [
        signature_finding("SIG-UNCHECKED", Severity.HIGH, None, message, signature=check.path)
    ]


def _same_serialization(manifest: Manifest, signed: SignedSerialization) -> bool:
    return (
        manifest.method == signed.method
        and manifest.hash_type == signed.hash_type
        and (signed.method == "files" or manifest.shard_size == signed.shard_size)
    )


def file_of(name: str, parsed: ParsedSignature) -> str:
    return split_shard(name)[0] if parsed.serialization.method == "shards" else name


def _by_file(
    resources: Mapping[str, tuple[str, str]], parsed: ParsedSignature, single: set[str] | None
) -> dict[str, tuple[tuple[str, str, str], ...]]:
    """Resources grouped per file: a file differs when any of its shards (or its digest) does."""
    grouped: dict[str, list[tuple[str, str, str]]] = {}
    for name, (algorithm, digest) in resources.items():
        path = file_of(name, parsed)
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


def signature_finding(
    rule: str, severity: Severity, path: str | None, message: str, **evidence: JsonValue
) -> Finding:
    """A finding about the file at `path`, or about the whole target when path is None."""
    if path is not None:
        return file_finding(rule, severity, path, message, **evidence)
    return target_finding(rule, severity, message, **evidence)
