"""Which members does this 7z archive hold, decompressed in memory within the archive limits?

Imports py7zr (optional): archives.py imports this module lazily and reports the archive
as unreadable when py7zr is missing.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import IO

import py7zr
from py7zr.io import Py7zIO, WriterFactory

from provscan.collectors.base import BROKEN_SCANNER
from provscan.collectors.serialization.containers.members import (
    escapes,
    member_location,
    name_findings,
)
from provscan.collectors.serialization.pickle.scan import describe
from provscan.limits import Limits
from provscan.report import Finding, Location, Severity, located_finding

Visit = Callable[[str, bytes], None]


class _Overflow(Exception):
    """A member decompressed past what its listing promised or the limits allow."""


class _VisitFailed(Exception):
    """provscan's own scan of a member raised (inside py7zr's extract): not the archive's doing."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class _Member(Py7zIO):
    """Collects one member in memory, refusing to grow past its bound, and hands it on."""

    def __init__(self, name: str, factory: _Factory) -> None:
        self.name = name
        self.factory = factory
        self.buffer = io.BytesIO()

    def write(self, s: bytes | bytearray) -> int:
        self.factory.total += len(s)
        if self.buffer.tell() + len(s) > self.factory.member_bound:
            raise _Overflow(f"{self.name} decompresses past {self.factory.member_bound} bytes")
        if self.factory.total > self.factory.total_bound:
            raise _Overflow(f"members decompress past {self.factory.total_bound} bytes in all")
        return self.buffer.write(s)

    def read(self, size: int | None = None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.buffer.tell()  # py7zr rewinds before close; the buffer is ours to read

    def flush(self) -> None:
        return None

    def size(self) -> int:
        return self.buffer.tell()

    def close(self) -> None:
        data, self.buffer = self.buffer.getvalue(), io.BytesIO()
        try:
            self.factory.visit(self.name, data)  # scanned and dropped before the next member
        except Exception as exc:
            raise _VisitFailed(exc) from exc


class _Factory(WriterFactory):
    def __init__(self, member_bound: int, total_bound: int, visit: Visit) -> None:
        self.member_bound = member_bound
        self.total_bound = total_bound
        self.total = 0
        self.visit = visit

    def create(self, filename: str) -> Py7zIO:
        return _Member(filename, self)


def _finding(rule_id: str, where: Location, message: str, **evidence: int | str) -> Finding:
    return located_finding(
        rule_id, Severity.HIGH, f"{describe(where)}: {message}", where, **evidence
    )


def read_members(
    handle: IO[bytes], size: int, where: Location, limits: Limits, visit: Visit
) -> list[Finding]:
    """Hand each regular member to `visit`; findings for what could not be read. Findings
    about members already listed stand when the archive fails part-way."""
    findings: list[Finding] = []
    try:
        with py7zr.SevenZipFile(handle, mode="r") as archive:
            if archive.needs_password():
                message = "7z archive is encrypted; its content was not scanned"
                return [_finding("SER-ARCHIVE-UNREADABLE", where, message, error="encrypted")]
            infos = archive.list()
            if len(infos) > limits.archive_max_members:
                message = f"7z archive has over {limits.archive_max_members} members; not scanned"
                bound = limits.archive_max_members
                return [_finding("SER-ARCHIVE-TOO-MANY-MEMBERS", where, message, max_members=bound)]
            declared = sum(max(0, i.uncompressed or 0) for i in infos)
            ratio_bound = max(
                limits.decompression_ratio_floor, limits.decompression_max_ratio * size
            )
            if declared > ratio_bound:
                message = (
                    f"7z members declare {declared} bytes, over {limits.decompression_max_ratio}x "
                    "the archive's size; not decompressed"
                )
                return [_finding("SER-DECOMPRESSION-BOMB", where, message, declared=declared)]
            targets: list[str] = []
            for info in infos:
                location = member_location(where, info.filename)
                findings.extend(name_findings(info.filename, location))
                if info.is_directory or info.is_symlink or escapes(info.filename):
                    continue  # py7zr refuses escaping names; links hold only a target path
                if (info.uncompressed or 0) > limits.archive_max_member_bytes:
                    message = f"member is over the {limits.archive_max_member_bytes}-byte limit"
                    findings.append(_finding("SER-ARCHIVE-TOO-LARGE", location, message))
                    continue
                targets.append(info.filename)
            if targets:
                factory = _Factory(
                    limits.archive_max_member_bytes, limits.archive_max_total_bytes, visit
                )
                archive.extract(targets=targets, factory=factory)
            return findings
    except _Overflow as exc:
        return [
            *findings,
            _finding("SER-DECOMPRESSION-BOMB", where, str(exc), error=str(exc)[:500]),
        ]
    except _VisitFailed as exc:
        raise exc.error from None
    except BROKEN_SCANNER:
        raise
    except Exception as exc:  # noqa: BLE001 - py7zr is a pure-Python parser of hostile bytes
        # Besides its own errors (a bad CRC, an unknown method, a password) it lets out the
        # codecs' (LZMAError, zlib.error) and whatever its header parsing trips on
        # (AssertionError, TypeError "Unknown field", OverflowError from a timestamp ...):
        # each means the archive could not be read, which is reported, never passed.
        why = f"{type(exc).__name__}: {exc}"[:500]
        message = f"7z archive cannot be read ({why}); its content was not scanned"
        return [*findings, _finding("SER-ARCHIVE-UNREADABLE", where, message, error=why)]
