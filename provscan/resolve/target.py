"""Which files make up the target, and which of its links may be followed?

A target is a local directory, a single file, or a Hugging Face cache snapshot
(`.../models--org--name/snapshots/<commit>`, or the `models--org--name` folder itself,
read through refs/main). Symlinks are followed only when they resolve to a regular
file inside the allowed root: the target itself, or for a cache snapshot the repo's
cache folder (whose blobs/ the snapshot links into). Any other link is a finding and
is never opened. Special files (FIFOs, sockets, devices) are never opened either:
opening a FIFO would hang the scan.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from provscan.collectors.hashing import DEFAULT_IGNORE_PATHS, is_ignored
from provscan.errors import TargetError, UsageError
from provscan.files import ScanFile
from provscan.hub.download import (
    HubOptions,
    download_snapshot,
    hub_metadata,
    hub_traffic,
    is_hub_target,
    parse_hub_target,
)
from provscan.hub.lineage import HubLineage
from provscan.limits import Limits
from provscan.report import Finding, HubFetch, Severity, TargetInfo, TargetKind, file_finding

_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_REPO_FOLDER_RE = re.compile(r"^(models|datasets|spaces)--(.+)$")


@dataclass
class ResolvedTarget:
    info: TargetInfo
    files: list[ScanFile] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    # hf:// targets: the base-model lineage the Hub records (None offline or for local targets).
    lineage: HubLineage | None = None
    # Released once the scan is done (a metadata-only scan's temporary stand-in files).
    cleanup: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)


def resolve_target(target: str, limits: Limits, hub: HubOptions | None = None) -> ResolvedTarget:
    """Resolve what the user typed into the files to scan. Raises on unusable targets."""
    if is_hub_target(target):
        with hub_traffic(limits):  # every Hub request bounded in size, time and redirects
            return _hub_snapshot(target, limits, hub or HubOptions())
    given = Path(target).expanduser()
    if not os.path.lexists(given):
        raise UsageError(f"{target}: no such file or directory")
    path = given.resolve()
    if not path.exists():
        raise TargetError(f"{target}: is a broken symbolic link (points to {os.readlink(given)})")
    repo_folder, revision = _hf_cache_location(path)
    if repo_folder is not None and path == repo_folder:
        path = _snapshot_from_refs(repo_folder)
        revision = path.name
    if path.is_file():
        return _single_file(target, path, limits)
    if not path.is_dir():
        raise TargetError(f"{target}: is neither a regular file nor a directory")
    if repo_folder is not None:
        match = _REPO_FOLDER_RE.match(repo_folder.name)
        assert match is not None  # _hf_cache_location only returns matching folders
        info = TargetInfo(
            input=target,
            kind=TargetKind.HF_CACHE_SNAPSHOT,
            root=str(path),
            name=match.group(2).split("--")[-1],
            repo_id=match.group(2).replace("--", "/"),
            revision=revision,
        )
        allowed_root = repo_folder
    else:
        info = TargetInfo(input=target, kind=TargetKind.DIRECTORY, root=str(path), name=path.name)
        allowed_root = path
    resolved = ResolvedTarget(info=info)
    _walk(path, path, allowed_root, resolved, limits, depth=0)
    if not resolved.files and not resolved.findings:
        raise TargetError(f"{target}: the directory contains no files; there is nothing to scan")
    resolved.files.sort(key=lambda f: f.rel)
    return resolved


def _hub_snapshot(target: str, limits: Limits, hub: HubOptions) -> ResolvedTarget:
    """An hf:// target: read as metadata only (the default), or downloaded into the HF cache
    (--download; --offline or HF_HUB_OFFLINE=1: the cache only) and scanned as that snapshot."""
    from huggingface_hub import constants

    ref = parse_hub_target(target)
    offline = hub.offline or constants.HF_HUB_OFFLINE
    if not hub.download and not offline:
        from provscan.resolve.hub_metadata import resolve_metadata_only

        resolved = resolve_metadata_only(target, ref, limits, hub)
        assert resolved.info.revision is not None  # the commit model_info resolved
        resolved.lineage, _ = hub_metadata(ref.repo_id, resolved.info.revision, security=False)
        return resolved
    snapshot = download_snapshot(
        ref, include=hub.include, exclude=hub.exclude, offline=offline, progress=hub.progress
    )
    resolved = resolve_target(str(snapshot), limits)
    fetch = HubFetch(
        mode="offline" if offline else "download",
        endpoint=constants.ENDPOINT,
        requested_revision=ref.revision,
        files=len(resolved.files),
        bytes=sum(f.size for f in resolved.files),
    )
    resolved.info = resolved.info.model_copy(update={"input": target, "hub": fetch})
    if not offline and resolved.info.repo_id and resolved.info.revision:
        lineage, findings = hub_metadata(resolved.info.repo_id, resolved.info.revision)
        resolved.lineage = lineage
        resolved.findings += findings
    return resolved


def _single_file(target: str, path: Path, limits: Limits) -> ResolvedTarget:
    info = TargetInfo(input=target, kind=TargetKind.FILE, root=str(path), name=path.name)
    st = path.stat()
    identity = (st.st_dev, st.st_ino, st.st_ctime_ns)
    file = ScanFile(rel=path.name, path=path, size=st.st_size, inode=identity)
    return ResolvedTarget(info=info, files=[file])


def _hf_cache_location(path: Path) -> tuple[Path | None, str | None]:
    """Return (repo cache folder, revision) when `path` is inside an HF cache repo folder."""
    if _REPO_FOLDER_RE.match(path.name) and (path / "snapshots").is_dir():
        return path, None
    if path.parent.name == "snapshots" and _REPO_FOLDER_RE.match(path.parent.parent.name):
        revision = path.name if _COMMIT_RE.match(path.name) else None
        return path.parent.parent, revision
    return None, None


def _snapshot_from_refs(repo_folder: Path) -> Path:
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


def _display_name(name: str) -> str:
    """A JSON-safe rendering of a file name that may not be valid UTF-8."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _walk(
    root: Path, directory: Path, allowed: Path, out: ResolvedTarget, limits: Limits, depth: int
) -> None:
    rel_dir = directory.relative_to(root).as_posix()
    if depth > limits.max_depth:
        out.findings.append(
            file_finding(
                "INV-TOO-DEEP",
                Severity.CRITICAL,
                rel_dir,
                f"{rel_dir}: directory nesting exceeds {limits.max_depth} levels; deeper files were not scanned",
            )
        )
        return
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        out.findings.append(
            file_finding(
                "INV-UNREADABLE",
                Severity.CRITICAL,
                rel_dir or ".",
                f"{rel_dir or '.'}: directory cannot be listed ({exc.strerror}); its files were not scanned",
            )
        )
        return
    for entry in entries:
        if len(out.files) >= limits.max_files:
            out.findings.append(
                file_finding(
                    "INV-TOO-MANY-FILES",
                    Severity.CRITICAL,
                    rel_dir or ".",
                    f"more than {limits.max_files} files; the rest were not scanned",
                )
            )
            return
        rel = _display_name((Path(rel_dir) / entry.name).as_posix() if rel_dir else entry.name)
        if rel == ".git" and entry.is_dir(follow_symlinks=False):
            # Git's object store (with LFS, full copies of the weights) is not loaded
            # by any runtime and is outside the OMS manifest; say that it was skipped.
            out.findings.append(
                file_finding(
                    "INV-GIT-SKIPPED",
                    Severity.INFO,
                    rel,
                    ".git: git metadata directory was not scanned",
                )
            )
            continue
        _admit(root, Path(entry.path), rel, allowed, out, limits, depth)


def _admit(
    root: Path, path: Path, rel: str, allowed: Path, out: ResolvedTarget, limits: Limits, depth: int
) -> None:
    try:
        st = path.lstat()
    except OSError as exc:
        out.findings.append(
            file_finding(
                "INV-UNREADABLE", Severity.CRITICAL, rel, f"{rel}: cannot stat ({exc.strerror})"
            )
        )
        return
    symlink = stat.S_ISLNK(st.st_mode)
    real = path
    if symlink:
        real = Path(os.path.realpath(path))
        link_text = _display_name(os.readlink(path))
        if not real.is_relative_to(allowed):
            out.findings.append(
                file_finding(
                    "INV-SYMLINK-ESCAPE",
                    Severity.CRITICAL,
                    rel,
                    f"{rel}: symbolic link to {link_text} resolves outside the target ({real}); not followed",
                    target=link_text,
                )
            )
            return
        try:
            st = real.stat()
        except OSError:
            out.findings.append(
                file_finding(
                    "INV-SYMLINK-BROKEN",
                    Severity.HIGH,
                    rel,
                    f"{rel}: symbolic link to {link_text} is broken",
                    target=link_text,
                )
            )
            return
        if stat.S_ISDIR(st.st_mode):
            # Following directory links invites cycles and double counting; the
            # linked files are reported rather than silently skipped.
            out.findings.append(
                file_finding(
                    "INV-SYMLINK-UNFOLLOWED",
                    Severity.HIGH,
                    rel,
                    f"{rel}: symbolic link to directory {link_text} was not followed; its files were not scanned",
                    target=link_text,
                )
            )
            return
    if stat.S_ISDIR(st.st_mode):
        _walk(root, path, allowed, out, limits, depth + 1)
        return
    if not stat.S_ISREG(st.st_mode):
        out.findings.append(
            file_finding(
                "INV-SPECIAL-FILE",
                Severity.HIGH,
                rel,
                f"{rel}: is a special file (FIFO, socket or device); not opened",
            )
        )
        return
    valid_name = _is_utf8(path.name)  # scandir gives undecodable bytes as surrogates
    if not valid_name:
        out.findings.append(
            file_finding(
                "INV-BAD-FILENAME",
                Severity.HIGH,
                rel,
                f"{rel}: file name is not valid UTF-8; it cannot be part of a signed manifest",
            )
        )
    out.files.append(
        ScanFile(
            rel=rel,
            path=real,
            size=st.st_size,
            symlink=symlink,
            in_manifest=valid_name and not is_ignored(rel, DEFAULT_IGNORE_PATHS),
            inode=(st.st_dev, st.st_ino, st.st_ctime_ns),
        )
    )


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
