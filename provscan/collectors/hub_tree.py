"""Does a Hugging Face download hold exactly the files of its commit? Check the cached tree.

huggingface_hub records the file listing of every commit it downloads (`trees/<commit>.json`,
format_version 1: `files: {path: {size, blob_id, lfs_sha256, lfs_size, xet_hash}}`), in the
repo's cache folder for a cache snapshot and under `.cache/huggingface/` for a `--local-dir`
download. Against it, offline: a file whose size or hash (LFS SHA-256, else git blob SHA-1)
differs was changed; a file the commit does not hold was added; a file of the commit that
is absent was not downloaded, so the scan does not cover the whole model.

Read here, not with huggingface_hub's `get_cached_repo_tree`: the library reads a listing
of any size and silently ignores a corrupted one, and provscan must bound the read and say
when the record it would check against is unusable.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from provscan.collectors.hashing import DEFAULT_IGNORE_PATHS, is_ignored
from provscan.collectors.hub_hashes import (
    LOCAL_DIR_METADATA,
    METADATA_MAX,
    Tally,
    check_recorded_hash,
    read_local_dir_metadata,
)
from provscan.files import SHA1_HEX, ScanFile, read_at_most
from provscan.parsing import HostileData, parse_json
from provscan.report import Finding, Severity, TargetKind, file_finding, target_finding

TREE_CACHE_MAX = 64 * 1024 * 1024
LOCAL_DIR_TREES = ".cache/huggingface/trees/"
_PARTIAL_LISTED = 20


@dataclass(frozen=True)
class TreeEntry:
    size: int
    expected: str  # the LFS SHA-256, else the git blob SHA-1


def tree_cache_file(
    kind: TargetKind, root: Path, files: Sequence[ScanFile]
) -> tuple[Path, str] | None:
    """(listing file, commit) for a cache snapshot or a local-dir download, when one exists."""
    if kind is TargetKind.HF_CACHE_SNAPSHOT and SHA1_HEX.fullmatch(root.name):
        path = root.parent.parent / "trees" / f"{root.name}.json"
        return (path, root.name) if path.is_file() else None
    commits = set()
    for file in files:
        if file.rel.startswith(LOCAL_DIR_METADATA) and file.rel.endswith(".metadata"):
            parsed = read_local_dir_metadata(file, METADATA_MAX)
            if isinstance(parsed, tuple):
                commits.add(parsed[0])
    by_rel = {f.rel: f for f in files}
    for commit in sorted(commits):
        listing = by_rel.get(f"{LOCAL_DIR_TREES}{commit}.json")
        if listing is not None and SHA1_HEX.fullmatch(commit):
            return listing.path, commit
    return None


def read_tree_cache(path: Path, max_bytes: int = TREE_CACHE_MAX) -> dict[str, TreeEntry] | str:
    """The listing's entries, or what is wrong with the file. Bounded; never raises."""
    try:
        raw = read_at_most(path, max_bytes)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if len(raw) > max_bytes:
        return f"larger than {max_bytes} bytes"
    try:
        document = parse_json(raw)
    except HostileData as exc:
        return exc.problem
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        return f"not valid JSON ({exc})"
    if not isinstance(document, dict) or document.get("format_version") != 1:
        return "not a format_version 1 tree listing"
    listed = document.get("files")
    if not isinstance(listed, dict):
        return "has no files object"
    entries: dict[str, TreeEntry] = {}
    for name, info in listed.items():
        size = info.get("size") if isinstance(info, dict) else None
        blob = info.get("blob_id") if isinstance(info, dict) else None
        lfs = info.get("lfs_sha256") if isinstance(info, dict) else None
        if not isinstance(size, int) or isinstance(size, bool) or not isinstance(blob, str):
            return f"entry {str(name)[:200]!r} lacks an integer size and a blob_id"
        expected = lfs if isinstance(lfs, str) and lfs else blob
        entries[name] = TreeEntry(size, expected.lower())
    return entries


def compare_tree_cache(
    files: Sequence[ScanFile],
    digests: Mapping[str, str],
    listing: Path,
    commit: str,
    *,
    snapshot: bool,
    already_reported: Collection[str] = (),
    tally: Tally | None = None,
) -> list[Finding]:
    """Findings for files that differ from, are missing from, or are not in the commit's listing.

    `already_reported`: files the blob-name or download-metadata checks found changed (one
    finding per changed file is enough; `tally` still records what the listing shows).
    """
    outcomes: Tally = {} if tally is None else tally
    # huggingface_hub's bookkeeping, git metadata and signatures are not the commit's files.
    present = {
        f.rel: f
        for f in files
        if not f.rel.startswith(".cache/huggingface/")
        and not is_ignored(f.rel, DEFAULT_IGNORE_PATHS)
    }
    entries = read_tree_cache(listing)
    if isinstance(entries, str):
        outcomes.update(dict.fromkeys(present, "not_compared"))
        message = f"the cached tree listing of commit {commit} ({listing}) is unusable: {entries}"
        return [target_finding("HSH-HUB-UNVERIFIED", Severity.MEDIUM, message, problem=entries)]
    findings: list[Finding] = []
    evidence = {"commit": commit, "source": "hub-tree-cache"}
    for rel, file in present.items():
        entry = entries.get(rel)
        if entry is None:
            findings.append(_extra(rel, commit, snapshot))
        elif file.size != entry.size:
            outcomes[rel] = "mismatched"
            if rel in already_reported:
                continue
            message = f"{rel}: {file.size} bytes, but the Hub recorded {entry.size} at commit {commit}; the file was changed after download"
            findings.append(
                file_finding(
                    "HSH-HUB-MISMATCH",
                    Severity.CRITICAL,
                    rel,
                    message,
                    recorded_size=entry.size,
                    **evidence,
                )
            )
        else:
            found = check_recorded_hash(
                file,
                entry.expected,
                digests,
                "cached tree listing",
                tally=outcomes,
                commit=commit,
                source="hub-tree-cache",
            )
            if found is not None and rel not in already_reported:
                findings.append(found)
    absent = sorted(set(entries) - set(present))
    if absent:
        shown = ", ".join(absent[:_PARTIAL_LISTED]) + (
            " ..." if len(absent) > _PARTIAL_LISTED else ""
        )
        message = (
            f"{len(absent)} of the {len(entries)} files of commit {commit} were not downloaded ({shown}): "
            "the scan does not cover the whole model"
        )
        findings.append(
            target_finding(
                "HSH-HUB-PARTIAL", Severity.LOW, message, commit=commit, absent=absent[:200]
            )
        )
    return findings


def _extra(rel: str, commit: str, snapshot: bool) -> Finding:
    where = "this cache snapshot" if snapshot else "this download"
    return file_finding(
        "HSH-HUB-EXTRA",
        Severity.HIGH if snapshot else Severity.MEDIUM,
        rel,
        f"{rel}: in {where} but not a file of commit {commit} on the Hub: it was added after download",
        commit=commit,
        source="hub-tree-cache",
    )
