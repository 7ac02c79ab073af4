"""One broken member, file or scanner never hides another's findings.

No real crash of these scanners is known; the faults are injected (monkeypatching the one
scanner or member reader that must fail) to prove that an exception in one place becomes a
finding for that place and that every other finding, critical ones included, stands.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from fixtures.models import malicious_pickle
from provscan.collectors.serialization import scan
from provscan.collectors.serialization.containers import scan as containers_scan
from provscan.collectors.serialization.containers import zip_scan
from provscan.collectors.serialization.scan import scan_serialization
from provscan.files import ScanFile, SniffedFile
from provscan.limits import Limits
from provscan.report import FileFormat, Finding, Severity


def _scan(path: Path, fmt: FileFormat) -> list[Finding]:
    sniffed = SniffedFile(ScanFile(rel=path.name, path=path, size=path.stat().st_size), fmt)
    return list(scan_serialization([sniffed], Limits()).findings)


def _critical(findings: list[Finding], member: str) -> list[Finding]:
    return [
        f
        for f in findings
        if f.severity is Severity.CRITICAL and f.location and f.location.member == member
    ]


def _fail_on(member: str, real: Any) -> Any:
    def scanner(*args: Any, **kwargs: Any) -> Any:
        location = next(a for a in [*args, *kwargs.values()] if hasattr(a, "member"))
        if location.member == member:
            raise RuntimeError(f"injected fault in {member}")
        return real(*args, **kwargs)

    return scanner


def test_a_zip_member_that_breaks_its_scanner_leaves_the_others_findings(
    tmp_path: Path, canary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.bin"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a/data.pkl", malicious_pickle(f"touch {canary}"))
        archive.writestr("b/data.pkl", malicious_pickle(f"touch {canary}"))
    monkeypatch.setattr(
        zip_scan, "scan_pickle_bytes", _fail_on("b/data.pkl", zip_scan.scan_pickle_bytes)
    )
    findings = _scan(path, FileFormat.ZIP)
    assert _critical(findings, "a/data.pkl"), findings
    broken = [f for f in findings if f.location and f.location.member == "b/data.pkl"]
    assert [f.rule_id for f in broken if f.severity is Severity.HIGH] == [
        "SER-ZIP-MEMBER-UNREADABLE"
    ]
    assert "injected fault in b/data.pkl" in broken[0].message


def test_a_tar_member_that_breaks_its_scanner_leaves_the_others_findings(
    tmp_path: Path, canary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.tar"
    payload = malicious_pickle(f"touch {canary}")
    with tarfile.open(path, "w") as tar:
        for name in ("first.pkl", "broken.pkl", "last.pkl"):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    monkeypatch.setattr(
        containers_scan,
        "scan_member_stream",
        _fail_on("broken.pkl", containers_scan.scan_member_stream),
    )
    findings = _scan(path, FileFormat.TAR)
    assert _critical(findings, "first.pkl") and _critical(findings, "last.pkl"), findings
    assert any(
        f.rule_id == "SER-ARCHIVE-UNREADABLE" and f.location and f.location.member == "broken.pkl"
        for f in findings
    )


def test_a_scanner_that_breaks_leaves_the_other_scanners_findings_on_the_same_file(
    tmp_path: Path, canary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zip goes through the pickle-member scanner and the Keras scanner: the second failing
    must not discard what the first found."""
    path = tmp_path / "model.bin"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", malicious_pickle(f"touch {canary}"))

    def broken_keras(file: ScanFile, limits: Limits) -> list[Finding]:
        raise ValueError("injected fault in the Keras scanner")

    monkeypatch.setattr(scan, "scan_keras_zip", broken_keras)
    findings = _scan(path, FileFormat.ZIP)
    assert _critical(findings, "archive/data.pkl"), findings
    unreadable = [f for f in findings if f.rule_id == "SER-UNREADABLE"]
    assert len(unreadable) == 1 and "injected fault in the Keras scanner" in unreadable[0].message
