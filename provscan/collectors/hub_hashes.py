"""Do a Hugging Face cache snapshot's files still match the hashes the Hub recorded for them?

huggingface_hub names every cached blob after the hash the Hub gave the file: the SHA-256
of an LFS file (weights), the git blob SHA-1 of a regular git file (configs, cards). A
blob whose content no longer matches its name was changed after download. Checked offline:
LFS files against the SHA-256 the hashing step already computed (no second read); small
git files by their git blob SHA-1.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

from provscan.collectors.base import ScanFile
from provscan.report import Finding, Severity, file_finding

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
# Git-tracked (non-LFS) files on the Hub are small; larger ones are not re-read for SHA-1.
GIT_BLOB_MAX = 64 * 1024 * 1024


def git_blob_sha1(path_bytes: bytes) -> str:
    """The id git gives a blob: SHA-1 over 'blob <size>\\0' and the content."""
    header = b"blob %d\0" % len(path_bytes)
    return hashlib.sha1(header + path_bytes, usedforsecurity=False).hexdigest()


def compare_hub_hashes(files: Sequence[ScanFile], digests: Mapping[str, str]) -> list[Finding]:
    """Findings for snapshot files whose content differs from the hash their blob is named by."""
    findings: list[Finding] = []
    for file in files:
        if not file.symlink or file.path.parent.name != "blobs":
            continue
        recorded = file.path.name
        if _SHA256.match(recorded):
            actual = digests.get(file.rel)
            algorithm = "sha256"
        elif _SHA1.match(recorded) and file.size <= GIT_BLOB_MAX:
            try:
                actual = git_blob_sha1(file.path.read_bytes())
            except OSError:
                continue  # an unreadable file is reported by inventory and hashing
            algorithm = "git-sha1"
        else:
            findings.append(
                file_finding(
                    "HSH-HUB-UNVERIFIED",
                    Severity.MEDIUM,
                    file.rel,
                    f"{file.rel}: cached blob {recorded[:80]} is not named by a hash provscan can check",
                    blob=recorded[:80],
                )
            )
            continue
        if actual is not None and actual != recorded:
            findings.append(
                file_finding(
                    "HSH-HUB-MISMATCH",
                    Severity.CRITICAL,
                    file.rel,
                    f"{file.rel}: content {algorithm} {actual} differs from the {recorded} the Hub recorded; the file was changed after download",
                    algorithm=algorithm,
                    recorded=recorded,
                    actual=actual,
                )
            )
    return findings
