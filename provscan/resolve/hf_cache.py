"""Is a local path a Hugging Face cache snapshot, and which snapshot and repo is it?

A snapshot is `.../models--org--name/snapshots/<commit>`; the `models--org--name` folder itself
is read through refs/main. The repo's cache folder is the root its links may resolve into (the
snapshot links into its blobs/).
"""

from __future__ import annotations

import re
from pathlib import Path

from provscan.errors import TargetError
from provscan.report import TargetInfo, TargetKind

_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_REPO_FOLDER_RE = re.compile(r"^(models|datasets|spaces)--(.+)$")


def hf_cache_location(path: Path) -> tuple[Path | None, str | None]:
    """Return (repo cache folder, revision) when `path` is inside an HF cache repo folder."""
    if _REPO_FOLDER_RE.match(path.name) and (path / "snapshots").is_dir():
        return path, None
    if path.parent.name == "snapshots" and _REPO_FOLDER_RE.match(path.parent.parent.name):
        revision = path.name if _COMMIT_RE.match(path.name) else None
        return path.parent.parent, revision
    return None, None


def snapshot_from_refs(repo_folder: Path) -> Path:
    ref = repo_folder / "refs" / "main"
    snapshots = sorted(p for p in (repo_folder / "snapshots").iterdir() if p.is_dir())
    if ref.is_file():
        commit = ref.read_text(encoding="ascii", errors="replace").strip()
        candidate = repo_folder / "snapshots" / commit
        if _COMMIT_RE.match(commit) and candidate.is_dir():
            return candidate
    if len(snapshots) == 1:
        return snapshots[0]
    raise TargetError(
        f"{repo_folder}: cannot tell which snapshot to scan ({len(snapshots)} snapshots, no usable refs/main)",
        "pass the snapshot directory itself: .../snapshots/<commit>",
    )


def snapshot_info(target: str, path: Path, repo_folder: Path, revision: str | None) -> TargetInfo:
    """The target as the snapshot `path` of the repo cached in `repo_folder`."""
    match = _REPO_FOLDER_RE.match(repo_folder.name)
    assert match is not None  # hf_cache_location only returns matching folders
    return TargetInfo(
        input=target,
        kind=TargetKind.HF_CACHE_SNAPSHOT,
        root=str(path),
        name=match.group(2).split("--")[-1],
        repo_id=match.group(2).replace("--", "/"),
        revision=revision,
    )
