"""Which files of a local directory or file may be scanned, and which of its links may be followed?

Symlinks are followed only when they resolve to a regular file inside the allowed root: the
target itself, or for a cache snapshot the repo's cache folder (whose blobs/ the snapshot
links into). Any other link is a finding and is never opened. Special files (FIFOs, sockets,
devices) are never opened either: opening a FIFO would hang the scan.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from provscan.collectors.hashing import DEFAULT_IGNORE_PATHS, is_ignored
from provscan.errors import TargetError, UsageError
from provscan.files import ScanFile
from provscan.limits import Limits
from provscan.report import Severity, TargetInfo, TargetKind, file_finding
from provscan.resolve.resolved import ResolvedTarget


def local_path(target: str) -> Path:
    """The existing path `target` names, its links resolved; an error naming what is missing."""
    given = Path(target).expanduser()
    if not os.path.lexists(given):
        raise UsageError(f"{target}: no such file or directory")
    path = given.resolve()
    if not path.exists():
        raise TargetError(f"{target}: is a broken symbolic link (points to {os.readlink(given)})")
    return path


def single_file(target: str, path: Path) -> ResolvedTarget:
    """A target that is one regular file: that file alone."""
    info = TargetInfo(input=target, kind=TargetKind.FILE, root=str(path), name=path.name)
    st = path.stat()
    identity = (st.st_dev, st.st_ino, st.st_ctime_ns)
    file = ScanFile(rel=path.name, path=path, size=st.st_size, inode=identity)
    return ResolvedTarget(info=info, files=[file])


def walk_directory(
    target: str, info: TargetInfo, path: Path, allowed_root: Path, limits: Limits
) -> ResolvedTarget:
    """The files under the directory `path`, admitted one by one; links may resolve only inside
    `allowed_root`."""
    resolved = ResolvedTarget(info=info)
    _walk(path, path, allowed_root, resolved, limits, depth=0)
    if not resolved.files and not resolved.findings:
        raise TargetError(f"{target}: the directory contains no files; there is nothing to scan")
    resolved.files.sort(key=lambda f: f.rel)
    return resolved


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
