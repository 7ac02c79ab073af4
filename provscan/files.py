"""What does every collector receive and return?"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from provscan.parsing import HostileData, parse_json
from provscan.report import FileFormat, Finding, Severity, file_finding

T = TypeVar("T")

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


def read_scanned(file: ScanFile, max_bytes: int) -> bytes:
    """Up to max_bytes + 1 bytes of a scanned file (one more than allowed says it is too large)."""
    with open_scanned(file) as stream:
        return stream.read(max_bytes + 1) or b""


def read_at_most(path: Path, max_bytes: int) -> bytes:
    """Up to max_bytes + 1 bytes of a regular file: one more than allowed says it is too large.

    Bounded even if the file grew since it was listed; a FIFO or device is refused (OSError),
    never read or waited on.
    """
    fd = os.open(path.resolve(), OPEN_FLAGS)
    with io.FileIO(fd, "rb", closefd=True) as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return stream.read(max_bytes + 1) or b""


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


@dataclass(frozen=True)
class Collected(Generic[T]):
    """A collector's section of the report plus its findings.

    `skipped` is set when the step did not run its checks (turned off by an option, or a
    prerequisite missing); the step is recorded as skipped with that reason, and the
    default policy denies a skipped required step. A step that simply found nothing to
    read (no model card) completes, and the absence is a finding.
    """

    value: T
    findings: tuple[Finding, ...] = ()
    skipped: str | None = None


def load_json_object(file: ScanFile, max_bytes: int) -> tuple[dict[str, Any] | None, str | None]:
    """(object, None) for a JSON object file, else (None, what is wrong with it). Bounded."""
    if file.size > max_bytes:
        return None, f"larger than {max_bytes} bytes"
    try:
        raw = read_scanned(file, max_bytes)  # bounded even if the file grew since the inventory
        if len(raw) > max_bytes:
            return None, f"larger than {max_bytes} bytes"
        document = parse_json(raw)  # bounded: numbers and nesting that break json.loads
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})"
    except HostileData as exc:
        return None, exc.problem
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"not valid JSON ({exc})"
    except RecursionError:
        return None, "nested too deeply to parse"
    if isinstance(document, dict):
        return document, None
    return None, f"a JSON {type(document).__name__}, not an object"


def string_list(value: object) -> list[str]:
    """The strings of a JSON list field; anything else (a bool, a number, a map) gives none."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


# A scanner that cannot import a module, or runs out of memory, is broken itself: the step
# fails (never a pass). Any other exception is the scanned content's doing.
BROKEN_SCANNER: tuple[type[BaseException], ...] = (ImportError, MemoryError)


def isolated(
    scan: Callable[[], list[Finding]],
    failed: Callable[[Exception], list[Finding]],
    reraise: tuple[type[BaseException], ...] = (),
) -> list[Finding]:
    """scan()'s findings, or failed(exc)'s when it raises: a file, member or scanner that
    breaks is a finding for itself, and what every other one found stands. `reraise` names
    errors that belong to an enclosing reader (a tar stream that broke is the archive's)."""
    try:
        return scan()
    except BROKEN_SCANNER:
        raise
    except reraise:
        raise
    except Exception as exc:  # noqa: BLE001 - hostile content: a finding, never a crash
        return failed(exc)
