"""Do the files match everything huggingface_hub recorded about them? One entry point.

Four records, each offline: a cache snapshot's blob names, a `--local-dir` download's
metadata files, the commit's cached tree listing (either layout), and for a metadata-only
hf:// scan the hash model_info listed for each file it fetched whole. A file found changed
by the first two is not reported again by the third.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from provscan.collectors.base import ScanFile
from provscan.collectors.hub_hashes import (
    LOCAL_DIR_METADATA,
    check_recorded_hash,
    compare_hub_hashes,
    compare_local_dir_metadata,
)
from provscan.collectors.hub_tree import compare_tree_cache, tree_cache_file
from provscan.report import Finding, TargetKind


def compare_hub_records(
    kind: TargetKind, root: Path, files: Sequence[ScanFile], digests: Mapping[str, str]
) -> list[Finding]:
    """Findings for files that differ from, or are missing against, the Hub's records."""
    snapshot = kind in (TargetKind.HF_CACHE_SNAPSHOT, TargetKind.HUB_METADATA)
    # A metadata-only scan's downloads are checked against model_info first: a mismatch there
    # means the Hub served other bytes, which the blob name (the download's own etag) repeats.
    findings = _compare_model_info(files, digests) if kind is TargetKind.HUB_METADATA else []
    if snapshot:
        reported = {f.location.path for f in findings if f.location}
        blobs = compare_hub_hashes(files, digests)
        findings += [f for f in blobs if not f.location or f.location.path not in reported]
    if any(f.rel.startswith(LOCAL_DIR_METADATA) for f in files):
        findings += compare_local_dir_metadata(files, digests)
    tree = tree_cache_file(kind, root, files)
    if tree is not None:
        changed = {
            f.location.path
            for f in findings
            if f.rule_id == "HSH-HUB-MISMATCH" and f.location and f.location.path
        }
        findings += compare_tree_cache(
            files, digests, *tree, snapshot=snapshot, already_reported=changed
        )
    return findings


def _compare_model_info(files: Sequence[ScanFile], digests: Mapping[str, str]) -> list[Finding]:
    """Fetched files whose content is not what model_info recorded (the cached blob's name
    comes from the download's own response, which a tampering server controls too)."""
    findings: list[Finding] = []
    for file in files:
        if file.read != "whole" or file.hub_record is None:
            continue
        finding = check_recorded_hash(
            file,
            file.hub_record,
            digests,
            "model_info record",
            "the Hub served other bytes than the file it recorded",
            source="hub-model-info",
        )
        if finding is not None:
            findings.append(finding)
    return findings
