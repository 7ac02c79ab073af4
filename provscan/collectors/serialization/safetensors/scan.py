"""Is this safetensors file well formed, and does the safetensors library read it the same way?"""

from __future__ import annotations

from safetensors import SafetensorError, safe_open

from provscan.collectors.serialization.safetensors.header import SafetensorsError, read_header
from provscan.files import ScanFile, open_scanned
from provscan.limits import Limits
from provscan.report import Finding, Location, Severity, file_finding


def _library_refusal(file: ScanFile) -> str | None:
    """Open the file the way loaders do (header and metadata only, no tensor reads).

    The library opens by name: it is given /proc/self/fd/N of the hardened open, so it reads
    the very file that was checked, not whatever the path names by then.
    """
    try:
        with (
            open_scanned(file) as stream,
            safe_open(f"/proc/self/fd/{stream.fileno()}", framework="numpy") as handle,
        ):
            list(handle.keys())
            handle.metadata()
    except (SafetensorError, OSError, ValueError) as exc:
        # The library's refusals. Anything else (a broken install) is not a verdict on
        # the file: it propagates and fails the step.
        return f"{type(exc).__name__}: {exc}"
    return None


def scan_safetensors(file: ScanFile, limits: Limits) -> list[Finding]:
    """Check the header with provscan's bounded reader, then with the reference library."""
    try:
        with open_scanned(file) as stream:
            header = read_header(stream, max_header=limits.safetensors_header_max)
    except SafetensorsError as exc:
        return [
            Finding(
                rule_id="SER-SAFETENSORS-INVALID",
                severity=Severity.CRITICAL,
                message=f"{file.rel}: {exc.code}: {exc.message}",
                location=Location(path=file.rel, offset=exc.offset),
                evidence={"code": exc.code},
            )
        ]
    findings: list[Finding] = []
    for problem in header.problems:
        subject = f"tensor {problem.tensor!r}: " if problem.tensor is not None else ""
        evidence = {"code": problem.code}
        if problem.tensor is not None:
            evidence["tensor"] = problem.tensor
        findings.append(
            file_finding(
                "SER-SAFETENSORS-INVALID",
                Severity.CRITICAL,
                file.rel,
                f"{file.rel}: {problem.code}: {subject}{problem.message}",
                **evidence,
            )
        )
    if findings:
        return findings
    refusal = _library_refusal(file)
    if refusal is not None:
        # A parser differential: what provscan checked is not what a loader will read.
        findings.append(
            file_finding(
                "SER-SAFETENSORS-LOADER-DISAGREES",
                Severity.CRITICAL,
                file.rel,
                f"{file.rel}: valid header, yet the safetensors library refuses: {refusal}",
                error=refusal[:500],
            )
        )
    return findings
