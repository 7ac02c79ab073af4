"""Can loading any of these files run code or hide a payload? Routes files to format scanners."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from provscan.collectors.base import Collected, ScanFile, SniffedFile
from provscan.collectors.serialization.pickle_scan import scan_pickle_file
from provscan.collectors.serialization.safetensors_scan import scan_safetensors
from provscan.collectors.serialization.zip_scan import scan_zip
from provscan.limits import Limits
from provscan.report import FileFormat, Finding, Location, Severity

FormatScanner = Callable[[ScanFile, Limits], list[Finding]]

# Routed by the format the content shows, never by the file name.
SCANNERS: dict[FileFormat, FormatScanner] = {
    FileFormat.PICKLE: scan_pickle_file,
    FileFormat.ZIP: scan_zip,
    FileFormat.SAFETENSORS: scan_safetensors,
}


def _unreadable(file: ScanFile, exc: BaseException) -> Finding:
    error = f"{type(exc).__name__}: {exc}"
    return Finding(
        rule_id="SER-UNREADABLE",
        severity=Severity.HIGH,
        message=f"{file.rel}: could not be scanned for serialization safety: {error}",
        location=Location(path=file.rel),
        evidence={"error": error[:500]},
    )


def scan_serialization(files: Sequence[SniffedFile], limits: Limits) -> Collected[None]:
    """Scan every pickle, zip and safetensors file; one file's failure is a finding, not a crash."""
    findings: list[Finding] = []
    routed = 0
    for sniffed in files:
        scanner = SCANNERS.get(sniffed.format)
        if scanner is None:
            continue
        routed += 1
        try:
            findings.extend(scanner(sniffed.file, limits))
        except Exception as exc:  # a hostile or vanished file must not stop the other files
            findings.append(_unreadable(sniffed.file, exc))
    skipped = None if routed else "no pickle, zip or safetensors files"
    return Collected(value=None, findings=tuple(findings), skipped=skipped)
