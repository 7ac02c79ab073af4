"""Do the files match everything huggingface_hub recorded about them? One entry point.

Three records, each offline: a cache snapshot's blob names, a `--local-dir` download's
metadata files, and the commit's cached tree listing (either layout). A file found changed
by the first two is not reported again by the third.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from provscan.collectors.base import ScanFile
from provscan.collectors.hub_hashes import (
    LOCAL_DIR_METADATA,
    compare_hub_hashes,
    compare_local_dir_metadata,
)
from provscan.collectors.hub_tree import compare_tree_cache, tree_cache_file
from provscan.report import Finding, TargetKind


def compare_hub_records(
    kind: TargetKind, root: Path, files: Sequence[ScanFile], digests: Mapping[str, str]
) -> list[Finding]:
    """Findings for files that differ from, or are missing against, the Hub's records."""
    snapshot = kind is TargetKind.HF_CACHE_SNAPSHOT
    findings = compare_hub_hashes(files, digests) if snapshot else []
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
