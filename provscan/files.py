"""Which file is scanned, and how is it read: never a hang, never outside bytes, never unbounded?"""

from __future__ import annotations

import errno
import io
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from provscan.report import FileFormat, Finding, Severity, file_finding

# Lowercase hex digests, matched whole (`fullmatch`): the Hub records SHA-256 for LFS files
# and git blob SHA-1 for the rest; commits are SHA-1 too.
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
SHA1_HEX = re.compile(r"[0-9a-f]{40}")

# Paths handed over have their symlinks resolved: O_NOFOLLOW refuses a file swapped for a
# symlink since; O_NONBLOCK keeps a file swapped for a FIFO from blocking the open (the
# S_ISREG check then refuses it); it changes nothing for regular files.
OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
OPEN_FLAGS |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


class FileSwappedError(OSError):
    """A scanned file is no longer the file the resolver listed (swapped, replaced, resized)."""


def open_scanned(file: ScanFile) -> io.BufferedReader:
    """Open a scanned file the one way every reader must: never a hang, never outside bytes.

    O_NOFOLLOW refuses a file swapped for a symlink, O_NONBLOCK keeps a FIFO from blocking
    the open; then fstat must show a regular file, the device and inode the resolver listed,
    and the size it listed. Anything else raises FileSwappedError (an OSError, which every
    reader already turns into a finding for the file). The returned stream is buffered and
    seekable; its fd can back mmap or a `/proc/self/fd/N` path for libraries that open by name.
    """
    fd = os.open(file.path, OPEN_FLAGS)
    try:
        problem = _swapped(file, os.fstat(fd))
        if problem is not None:
            raise FileSwappedError(errno.ESTALE, problem)
    except BaseException:
        os.close(fd)
        raise
    return io.BufferedReader(io.FileIO(fd, "rb", closefd=True))


def _swapped(file: ScanFile, st: os.stat_result) -> str | None:
    if not stat.S_ISREG(st.st_mode):
        return "no longer a regular file (swapped for a FIFO, device or socket since it was listed)"
    if file.inode is not None and (st.st_dev, st.st_ino, st.st_ctime_ns) != file.inode:
        return "replaced by another file since it was listed"
    if st.st_size != file.size:
        return f"size changed since it was listed ({st.st_size} bytes, {file.size} when listed)"
    return None


def swapped_files(files: Sequence[ScanFile]) -> list[Finding]:
    """INV-FILE-SWAPPED for every file that is, now, not the file that was listed.

    Run once the scan is done: whatever a reader did with a file swapped mid-scan (a
    FIFO, a link to another file, another inode), the verdict also gets one critical
    finding naming it, so no swap can lower a deny to a review.
    """
    found: list[Finding] = []
    for file in files:
        if file.read != "whole":
            continue  # a stand-in provscan wrote for a file not downloaded
        try:
            open_scanned(file).close()  # the same checks every read made, nothing read
        except OSError as exc:
            problem = (
                exc.strerror
                if isinstance(exc, FileSwappedError)
                else (f"can no longer be opened as listed ({exc.strerror or exc})")
            )
            found.append(
                file_finding(
                    "INV-FILE-SWAPPED",
                    Severity.CRITICAL,
                    file.rel,
                    f"{file.rel}: {problem}; what was scanned may not be what a loader reads",
                )
            )
    return found


def read_capped(stream: IO[bytes], max_bytes: int) -> tuple[bytes, bool]:
    """At most max_bytes of an open stream (a scanned file, a pipe), and whether it held more.

    One byte past max_bytes is read to tell; nothing further is read or waited for."""
    raw = stream.read(max_bytes + 1) or b""
    return raw[:max_bytes], len(raw) > max_bytes


def read_scanned(file: ScanFile, max_bytes: int) -> bytes:
    """Up to max_bytes + 1 bytes of a scanned file (one more than allowed says it is too large)."""
    with open_scanned(file) as stream:
        return read_capped(stream, max_bytes + 1)[0]


def read_at_most(path: Path, max_bytes: int) -> bytes:
    """Up to max_bytes + 1 bytes of a regular file: one more than allowed says it is too large.

    Bounded even if the file grew since it was listed; a FIFO or device is refused (OSError),
    never read or waited on.
    """
    fd = os.open(path.resolve(), OPEN_FLAGS)
    with io.FileIO(fd, "rb", closefd=True) as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return read_capped(stream, max_bytes + 1)[0]


@dataclass(frozen=True)
class ScanFile:
    """One regular file of the target, as the resolver admitted it.

    `rel` is the name inside the target ('/'-separated); `path` is what to open: the
    file itself, or for an allowed symlink (HF cache snapshot -> blob) its resolved
    target. Escaping symlinks never become a ScanFile.
    """

    rel: str
    path: Path
    size: int
    symlink: bool = False
    in_manifest: bool = True
    # hf:// metadata-only scans. `read`: what `path` holds of the file: all of it ("whole"), or
    # for a file not downloaded a sparse stand-in of its size that holds only its safetensors
    # header ("header") or its first bytes ("head"); the rest reads as zeros. Scanners that
    # need more than that must not run on it. `hub_record`: the hash the Hub's model_info
    # records for the file (an LFS file's SHA-256, else its git blob SHA-1).
    read: Literal["whole", "header", "head"] = "whole"
    hub_record: str | None = None
    # (st_dev, st_ino, st_ctime_ns) of `path` when the resolver listed it: open_scanned refuses
    # another file (the change time too, since a file deleted and recreated may get its inode).
    inode: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class SniffedFile:
    """A ScanFile together with the format its content shows."""

    file: ScanFile
    format: FileFormat
