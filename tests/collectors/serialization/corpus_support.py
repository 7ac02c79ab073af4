"""What the corpus tests share: scan one sample alone, and say what was found."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from fixtures.serialization_corpus import Sample
from provscan.pipeline import scan
from provscan.report import Finding, Severity


def catalogue(build: Callable[[Path, Path], list[Sample]]) -> list[Sample]:
    """The samples a corpus builder describes, built once into a throwaway folder at collection
    time (names only: every sample becomes its own test id). The canary path does not exist."""
    with tempfile.TemporaryDirectory() as tmp:
        return build(Path(tmp), Path("/nonexistent/provscan-catalogue-canary"))


def scan_alone(corpus: tuple[Path, Path], sample: Sample, tmp_path: Path) -> list[Finding]:
    """Scan a directory holding only this sample, as `provscan inspect DIR` would; the payload
    must not run (the canary is cleared first: a loader proof may have left it)."""
    files, canary = corpus
    target = tmp_path / "model"
    (target / sample.path).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(files / sample.path, target / sample.path)
    canary.unlink(missing_ok=True)
    findings = list(scan(str(target)).findings)
    assert not canary.exists(), f"scanning {sample.name} executed its payload"
    return findings


def critical_on(findings: list[Finding], sample: Sample) -> list[Finding]:
    """The critical findings located on the sample's own file."""
    return [
        f
        for f in findings
        if f.severity is Severity.CRITICAL
        and f.location is not None
        and f.location.path == sample.path
    ]


def describe(findings: list[Finding]) -> str:
    return (
        "\n".join(f"  {f.severity.value} {f.rule_id}: {f.message}" for f in findings) or "  (none)"
    )
