"""Do the files match everything huggingface_hub recorded about them? One entry point.

Four records: a cache snapshot's blob names, a `--local-dir` download's metadata files, the
commit's cached tree listing (either layout), all three read offline from the folder; and
for a metadata-only hf:// scan the hash model_info listed for each file it fetched whole.
A file found changed by the first two is not reported again by the third.

Only model_info is authenticated: fetched from the Hub over HTTPS in this run. The local
records sit in the same writable folder as the files, so whoever changes a file can change
its record to match: a match with one proves nothing, and the report says so (RecordCheck).
A snapshot file that is not a link into the repo's blobs/ is compared with no blob name at
all: huggingface_hub never writes one, so it is a finding of its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from provscan.collectors.hashing import DEFAULT_IGNORE_PATHS, is_ignored
from provscan.collectors.hub_hashes import (
    LOCAL_DIR_METADATA,
    Tally,
    check_recorded_hash,
    compare_hub_hashes,
    compare_local_dir_metadata,
)
from provscan.collectors.hub_tree import compare_tree_cache, tree_cache_file
from provscan.files import SHA1_HEX, ScanFile
from provscan.report import (
    Finding,
    RecordCheck,
    RecordSource,
    Severity,
    TargetInfo,
    TargetKind,
    file_finding,
)


@dataclass(frozen=True)
class HubRecords:
    """What the comparisons found (findings), and one fact per record compared (records)."""

    findings: tuple[Finding, ...] = ()
    records: tuple[RecordCheck, ...] = ()


def compare_hub_records(
    target: TargetInfo, files: Sequence[ScanFile], digests: Mapping[str, str]
) -> HubRecords:
    """Findings for files that differ from, are missing against, or escape the Hub's records,
    and what each record showed of the files it covers."""
    kind, root = target.kind, Path(target.root)
    snapshot = kind in (TargetKind.HF_CACHE_SNAPSHOT, TargetKind.HUB_METADATA)
    tree = tree_cache_file(kind, root, files)
    findings: list[Finding] = []
    records: list[RecordCheck] = []
    tally: Tally
    # A metadata-only scan's downloads are checked against model_info first: a mismatch there
    # means the Hub served other bytes, which the blob name (the download's own etag) repeats.
    if kind is TargetKind.HUB_METADATA:
        tally = {}
        findings += _compare_model_info(files, digests, tally)
        records.append(_fact("hub-model-info", tally, over_https(target), target.revision))
    if snapshot:
        reported = {f.location.path for f in findings if f.location}
        blobs = Path(os.path.realpath(root.parent.parent / "blobs"))
        tally = {}
        if kind is TargetKind.HF_CACHE_SNAPSHOT:
            findings += _not_linked(files, blobs, tally, tree_cached=tree is not None)
        found = compare_hub_hashes(files, digests, blobs=blobs, tally=tally)
        findings += [f for f in found if not f.location or f.location.path not in reported]
        commit = root.name if SHA1_HEX.fullmatch(root.name) else None
        records.append(_fact("hub-cache-blob", tally, False, commit))
    if any(f.rel.startswith(LOCAL_DIR_METADATA) for f in files):
        tally = {}
        commits: set[str] = set()
        findings += compare_local_dir_metadata(files, digests, tally=tally, commits=commits)
        records.append(_fact("local-dir-metadata", tally, False, _one(commits)))
    if tree is not None:
        changed = {
            f.location.path
            for f in findings
            if f.rule_id == "HSH-HUB-MISMATCH" and f.location and f.location.path
        }
        tally = {}
        findings += compare_tree_cache(
            files, digests, *tree, snapshot=snapshot, already_reported=changed, tally=tally
        )
        records.append(_fact("hub-tree-cache", tally, False, tree[1]))
    covering = tuple(
        r for r in records if r.files_compared or r.not_compared or r.source == "hub-model-info"
    )
    return HubRecords(findings=tuple(findings), records=covering)


def over_https(target: TargetInfo) -> bool:
    """Whether the Hub's API was reached over HTTPS (HF_ENDPOINT may name a plain-HTTP mirror,
    whose answers anyone on the path could have rewritten)."""
    return target.hub is not None and target.hub.endpoint.lower().startswith("https://")


def _fact(
    source: RecordSource, tally: Tally, authenticated: bool, commit: str | None
) -> RecordCheck:
    def of(outcome: str) -> tuple[str, ...]:
        return tuple(sorted(rel for rel, got in tally.items() if got == outcome))

    consistent, mismatched = of("consistent"), of("mismatched")
    return RecordCheck(
        source=source,
        authenticated=authenticated,
        files_compared=len(consistent) + len(mismatched),
        consistent=consistent,
        mismatched=mismatched,
        not_compared=of("not_compared"),
        commit=commit,
    )


def _one(commits: set[str]) -> str | None:
    return next(iter(commits)) if len(commits) == 1 else None


def _not_linked(
    files: Sequence[ScanFile], blobs: Path, tally: Tally, *, tree_cached: bool
) -> list[Finding]:
    """Snapshot files that are not links into the repo's blobs/: a plain file, or a link that
    resolves elsewhere in the repo's cache folder (one leaving it is INV-SYMLINK-ESCAPE and
    never a ScanFile). Git metadata and signatures (the manifest's ignore paths) are not
    the commit's files: `provscan sign` may put a model.sig there."""
    covered = (
        "only the commit's cached tree listing, itself a local record, covers it"
        if tree_cached
        else "no record covers it"
    )
    findings: list[Finding] = []
    for file in files:
        linked = file.symlink and file.path.parent == blobs
        if linked or is_ignored(file.rel, DEFAULT_IGNORE_PATHS):
            continue
        tally[file.rel] = "not_compared"
        what = f"a link to {file.path}" if file.symlink else "a plain file"
        link = {"resolved": str(file.path)} if file.symlink else {}
        findings.append(
            file_finding(
                "HSH-HUB-NOT-LINKED",
                Severity.HIGH,
                file.rel,
                f"{file.rel}: {what} in a cache snapshot, not a link into the repo's blobs/ "
                "folder; huggingface_hub only writes snapshot files as links to blobs/ named "
                f"by their hash, so this file was replaced or added after download and {covered}",
                symlink=file.symlink,
                source="hub-cache-blob",
                **link,
            )
        )
    return findings


def _compare_model_info(
    files: Sequence[ScanFile], digests: Mapping[str, str], tally: Tally
) -> list[Finding]:
    """Fetched files whose content is not what model_info recorded (the cached blob's name
    comes from the download's own response, which a tampering server controls too). Files
    not downloaded, or without a usable record, are not compared."""
    findings: list[Finding] = []
    for file in files:
        if file.read != "whole" or file.hub_record is None:
            tally[file.rel] = "not_compared"
            continue
        finding = check_recorded_hash(
            file,
            file.hub_record,
            digests,
            "model_info record",
            "the Hub served other bytes than the file it recorded",
            tally=tally,
            source="hub-model-info",
        )
        if finding is not None:
            findings.append(finding)
    return findings
