"""Can loading this zip, tar, 7z or compressed file on disk run code or hide a payload?"""

from __future__ import annotations

from provscan.collectors.serialization.containers.archives import (
    scan_7z_archive,
    scan_compressed_stream,
    scan_tar_stream,
)
from provscan.collectors.serialization.containers.compression import detect
from provscan.collectors.serialization.containers.route import scan_member_stream
from provscan.collectors.serialization.containers.zip_scan import scan_zip_archive
from provscan.collectors.serialization.sniff import is_tar_header
from provscan.files import ScanFile, open_scanned
from provscan.limits import Limits
from provscan.report import Finding, Location


def scan_zip(file: ScanFile, limits: Limits) -> list[Finding]:
    """Scan every pickle in a zip archive, by name or by content; never extracts to disk."""
    with open_scanned(file) as handle:
        return scan_zip_archive(handle, Location(path=file.rel), limits, 1, scan_member_stream)


def scan_tar(file: ScanFile, limits: Limits) -> list[Finding]:
    """Scan a tar file on disk (FileFormat.TAR), including torch's legacy tar checkpoints."""
    with open_scanned(file) as handle:
        return scan_tar_stream(handle, Location(path=file.rel), limits, 1, scan_member_stream)


def scan_compressed(file: ScanFile, limits: Limits) -> list[Finding]:
    """Scan a file the sniffer did not name (or named gzip) by what it holds: a compressed
    stream (gzip, bz2, xz, lzma, zlib, lz4, joblib-zfile) or a tar without "ustar" magic."""
    with open_scanned(file) as handle:
        head = handle.read(limits.sniff_bytes)
        handle.seek(0)
        where = Location(path=file.rel)
        if is_tar_header(head):
            return scan_tar_stream(handle, where, limits, 1, scan_member_stream)
        detected = detect(head)
        if detected is None:
            return []
        return scan_compressed_stream(
            handle, detected, file.size, where, limits, 1, scan_member_stream
        )


# FileFormat.GZIP today; the same scanner reads every codec that `detect` names.
scan_gzip = scan_compressed


def scan_7z(file: ScanFile, limits: Limits) -> list[Finding]:
    """Scan a 7z file on disk (FileFormat.SEVENZIP)."""
    with open_scanned(file) as handle:
        return scan_7z_archive(handle, Location(path=file.rel), limits, 1, scan_member_stream)
