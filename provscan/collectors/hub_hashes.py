"""Do files downloaded from the Hugging Face Hub still match the hashes the Hub recorded for them?

The Hub gives every file a hash: the SHA-256 of an LFS file (weights), the git blob SHA-1 of
a regular git file (configs, cards). huggingface_hub keeps that hash beside the download:
a cache snapshot names each blob by it; a `--local-dir` download writes it as the etag in
`.cache/huggingface/download/<file>.metadata` (lines: commit hash, etag, timestamp). A file
whose content no longer matches was changed after download, and huggingface_hub's own
mtime check would not say so. Checked offline: LFS files against the SHA-256 the hashing
step already computed (no second read); small git files by their git blob SHA-1.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from provscan.files import SHA1_HEX, SHA256_HEX, ScanFile, read_scanned
from provscan.report import Finding, JsonValue, Severity, file_finding

# Git-tracked (non-LFS) files on the Hub are small; larger ones are not re-read for SHA-1.
GIT_BLOB_MAX = 64 * 1024 * 1024
# Where huggingface_hub's local-dir mode records each download (huggingface_hub/_local_folder.py).
LOCAL_DIR_METADATA = ".cache/huggingface/download/"
_METADATA_SUFFIX = ".metadata"
METADATA_MAX = 4 * 1024

# What comparing one file with one record showed (report.RecordCheck gathers them).
Outcome = Literal["consistent", "mismatched", "not_compared"]
# rel -> outcome, for the files one record covers; filled in by the compare functions.
Tally = dict[str, Outcome]


def git_blob_sha1(path_bytes: bytes) -> str:
    """The id git gives a blob: SHA-1 over 'blob <size>\\0' and the content."""
    header = b"blob %d\0" % len(path_bytes)
    return hashlib.sha1(header + path_bytes, usedforsecurity=False).hexdigest()


def _git_sha1_of(file: ScanFile) -> str | None:
    """The file's git blob SHA-1, or None if it cannot be read or grew past GIT_BLOB_MAX."""
    try:
        data = read_scanned(file, GIT_BLOB_MAX)
    except OSError:
        return None  # an unreadable file is reported by inventory and hashing
    return git_blob_sha1(data) if len(data) <= GIT_BLOB_MAX else None


def check_recorded_hash(
    file: ScanFile,
    recorded: str,
    digests: Mapping[str, str],
    what: str,
    meaning: str = "the file was changed after download",
    *,
    tally: Tally | None = None,
    **evidence: JsonValue,
) -> Finding | None:
    """A finding when `file` does not match the hash the Hub `recorded` for it, else None.

    `what` says where the hash was recorded, for messages ("cached blob name",
    "download metadata etag"); `evidence` is added to the finding (its source, commit, metadata file).
    `tally`, when given, records the outcome for the file (an unreadable file, whose digest
    is missing, is not compared: the hashing step reports it).
    """
    outcomes: Tally = {} if tally is None else tally
    if SHA256_HEX.fullmatch(recorded):
        actual, algorithm = digests.get(file.rel), "sha256"
    elif SHA1_HEX.fullmatch(recorded) and file.size <= GIT_BLOB_MAX:
        actual, algorithm = _git_sha1_of(file), "git-sha1"
    else:
        why = (
            f"is a git blob SHA-1 but the file is over {GIT_BLOB_MAX} bytes"
            if SHA1_HEX.fullmatch(recorded)
            else "is not a hash provscan can check"
        )
        outcomes[file.rel] = "not_compared"
        return file_finding(
            "HSH-HUB-UNVERIFIED",
            Severity.MEDIUM,
            file.rel,
            f"{file.rel}: {what} {recorded[:80]!r} {why}",
            recorded=recorded[:80],
            **evidence,
        )
    if actual is None or actual == recorded:
        outcomes[file.rel] = "consistent" if actual is not None else "not_compared"
        return None
    outcomes[file.rel] = "mismatched"
    commit = evidence.get("commit")
    at_commit = f" at commit {commit}" if commit else ""
    return file_finding(
        "HSH-HUB-MISMATCH",
        Severity.CRITICAL,
        file.rel,
        f"{file.rel}: content {algorithm} {actual} differs from {recorded}, the hash the Hub "
        f"recorded{at_commit} ({what}); {meaning}",
        algorithm=algorithm,
        recorded=recorded,
        actual=actual,
        **evidence,
    )


def compare_hub_hashes(
    files: Sequence[ScanFile],
    digests: Mapping[str, str],
    *,
    blobs: Path | None = None,
    tally: Tally | None = None,
) -> list[Finding]:
    """Findings for snapshot files whose content differs from the hash their blob is named by.

    `blobs`: the repo's blobs folder (resolved); only links into it are compared. Without
    it, a link into any folder named blobs.
    """
    findings: list[Finding] = []
    for file in files:
        if file.symlink and (
            file.path.parent == blobs if blobs is not None else file.path.parent.name == "blobs"
        ):
            finding = check_recorded_hash(
                file,
                file.path.name,
                digests,
                "cached blob name",
                tally=tally,
                source="hub-cache-blob",
            )
            if finding is not None:
                findings.append(finding)
    return findings


def read_local_dir_metadata(file: ScanFile, max_bytes: int) -> tuple[str, str] | str:
    """(commit, etag) from one download metadata file, or what is wrong with it. Bounded.

    Parsed as huggingface_hub's read_download_metadata does: the first three lines are
    the commit hash, the etag and a float timestamp; the etag is normalised (a `W/`
    prefix and quotes dropped) in case a writer stored the raw HTTP header.
    """
    try:
        raw = read_scanned(file, max_bytes)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if len(raw) > max_bytes:
        return f"larger than {max_bytes} bytes"
    try:
        lines = [line.strip() for line in raw.decode("utf-8").split("\n")]
    except UnicodeDecodeError:
        return "not UTF-8 text"
    if len(lines) < 3:
        return "fewer than three lines (commit hash, etag, timestamp)"
    commit, etag, timestamp = lines[:3]
    try:
        float(timestamp)
    except ValueError:
        return f"third line {timestamp[:40]!r} is not a timestamp"
    etag = etag.removeprefix("W/").strip('"').lower()
    if not commit or not etag:
        return "empty commit hash or etag"
    return commit[:80], etag


def compare_local_dir_metadata(
    files: Sequence[ScanFile],
    digests: Mapping[str, str],
    max_bytes: int = METADATA_MAX,
    *,
    tally: Tally | None = None,
    commits: set[str] | None = None,
) -> list[Finding]:
    """Findings for files of a `--local-dir` download that differ from, or lack, their metadata's hash.

    Files without metadata are not findings: users add their own, and signatures cover those.
    `commits`, when given, collects the commits the metadata names.
    """
    by_rel = {file.rel: file for file in files}
    findings: list[Finding] = []
    for meta in files:
        rel = meta.rel
        if not (rel.startswith(LOCAL_DIR_METADATA) and rel.endswith(_METADATA_SUFFIX)):
            continue
        name = rel[len(LOCAL_DIR_METADATA) : -len(_METADATA_SUFFIX)]
        parsed = read_local_dir_metadata(meta, max_bytes) if name else "names no file"
        if isinstance(parsed, str):
            findings.append(
                file_finding(
                    "HSH-HUB-UNVERIFIED",
                    Severity.MEDIUM,
                    rel,
                    f"{rel}: huggingface_hub download metadata is malformed ({parsed}); "
                    f"{name or 'its file'} cannot be compared with the Hub's record",
                    problem=parsed,
                    source="local-dir-metadata",
                )
            )
            if tally is not None and name in by_rel:
                tally[name] = "not_compared"
            continue
        commit, etag = parsed
        if commits is not None:
            commits.add(commit)
        file = by_rel.get(name)
        if file is None:
            findings.append(
                file_finding(
                    "HSH-HUB-MISSING",
                    Severity.HIGH,
                    name,
                    f"{name}: downloaded from the Hub at commit {commit} (recorded in {rel}) "
                    "but no longer present; the download was changed afterwards",
                    commit=commit,
                    recorded=etag[:80],
                    metadata=rel,
                    source="local-dir-metadata",
                )
            )
            continue
        finding = check_recorded_hash(
            file,
            etag,
            digests,
            "download metadata etag",
            tally=tally,
            commit=commit,
            metadata=rel,
            source="local-dir-metadata",
        )
        if finding is not None:
            findings.append(finding)
    return findings
