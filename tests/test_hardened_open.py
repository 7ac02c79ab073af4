"""Can a file swapped after it was listed hang the scan, or slip outside bytes into the report?

Every read of a scanned file goes through collectors.base.open_scanned (no link followed, no
FIFO waited on, the listed inode and size or an error); at the end the scan checks that each
file is still the one listed. The swap tests replace files between listing and reading (the
resolver is wrapped; nothing else is mocked).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from fixtures.models import build_demo_model
from provscan import pipeline
from provscan.files import FileSwappedError, ScanFile, open_scanned
from provscan.pipeline import ScanOptions, scan
from provscan.report import Report
from provscan.resolve.resolved import ResolvedTarget

REPO = Path(__file__).resolve().parent.parent
CANARY = "CANARY-outside-the-target-7f3a"
# Reads of a scanned file other than through open_scanned / read_scanned: a call that opens a
# path by name. Each allowed exception says why.
FORBIDDEN = re.compile(
    r"\.open\(\s*[\"']r?b|\bopen\(\s*(?:file|item|path|card)\b|\.read_bytes\(|\.read_text\("
    r"|\bos\.open\(|safe_open\(\s*str\(|ZipFile\(\s*(?:file|path)|h5py\.File\(\s*(?!sys\.argv)"
)
ALLOWED = {
    # The opener itself, and the end-of-scan check that re-opens each file without reading it.
    ("provscan/files.py", "os.open("),
    # provscan's own packaged knowledge, not a scanned file.
    ("provscan/collectors/serialization/pickle/globals.py", ".read_text("),
}


def test_no_reader_opens_a_scanned_file_any_other_way() -> None:
    offenders = []
    for path in sorted((REPO / "provscan" / "collectors").rglob("*.py")) + [
        REPO / "provscan" / "files.py"
    ]:
        rel = path.relative_to(REPO).as_posix()
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            for match in FORBIDDEN.finditer(code):
                if (rel, match.group(0).split("(")[0] + "(") not in ALLOWED:
                    offenders.append(f"{rel}:{number}: {line.strip()}")
    assert offenders == []


def _listed(path: Path) -> ScanFile:
    st = path.stat()
    identity = (st.st_dev, st.st_ino, st.st_ctime_ns)
    return ScanFile(rel=path.name, path=path, size=st.st_size, inode=identity)


def test_open_scanned_refuses_a_fifo_without_waiting(tmp_path: Path) -> None:
    target = tmp_path / "config.json"
    target.write_text("{}")
    listed = _listed(target)
    target.unlink()
    os.mkfifo(target)  # nobody ever writes to it: a plain open() would block forever
    with pytest.raises(FileSwappedError, match="FIFO"):
        open_scanned(listed)


def test_open_scanned_refuses_a_link_another_inode_and_another_size(tmp_path: Path) -> None:
    target, outside = tmp_path / "config.json", tmp_path / "outside.txt"
    target.write_text("{}")
    outside.write_text(CANARY)
    listed = _listed(target)
    target.unlink()
    target.symlink_to(outside)
    with pytest.raises(OSError) as link:
        open_scanned(listed)
    assert link.value.errno == errno.ELOOP
    target.unlink()
    target.write_text("[]")  # same size, another file
    with pytest.raises(FileSwappedError, match="replaced by another file"):
        open_scanned(listed)
    with pytest.raises(FileSwappedError, match="size changed"):
        open_scanned(dataclasses.replace(_listed(target), size=99))


def _scan_swapping(
    model: Path, swap: Callable[[Path], None], monkeypatch: pytest.MonkeyPatch
) -> Report:
    """Scan `model`, applying `swap` right after the resolver listed its files."""
    real = pipeline.resolve_target

    def resolve_then_swap(*args: object, **kwargs: object) -> ResolvedTarget:
        resolved = real(*args, **kwargs)  # type: ignore[arg-type]
        swap(model)
        return resolved

    monkeypatch.setattr(pipeline, "resolve_target", resolve_then_swap)
    result: list[Report] = []
    worker = threading.Thread(target=lambda: result.append(scan(str(model), ScanOptions())))
    worker.daemon = True
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "the scan hung on a swapped file"
    assert result, "the scan raised"
    return result[0]


def _swapped_rules(report: Report, name: str) -> list[str]:
    return [
        f.severity.value
        for f in report.findings
        if f.rule_id == "INV-FILE-SWAPPED" and f.location and f.location.path == name
    ]


@pytest.mark.parametrize("name", ["README.md", "model.safetensors", "config.json"])
def test_a_file_swapped_for_a_fifo_is_critical_not_a_hang(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = build_demo_model(tmp_path / "model")

    def to_fifo(root: Path) -> None:
        (root / name).unlink()
        os.mkfifo(root / name)

    report = _scan_swapping(model, to_fifo, monkeypatch)
    assert _swapped_rules(report, name) == ["critical"]


def test_a_file_swapped_for_a_link_lets_no_outside_bytes_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = build_demo_model(tmp_path / "model")
    outside = tmp_path / "secret.md"
    outside.write_text(f"---\nlicense: {CANARY}\n---\n{CANARY}\n")

    def to_link(root: Path) -> None:
        (root / "README.md").unlink()
        (root / "README.md").symlink_to(outside)

    report = _scan_swapping(model, to_link, monkeypatch)
    assert CANARY not in report.model_dump_json()
    assert _swapped_rules(report, "README.md") == ["critical"]


def test_a_file_replaced_by_another_of_the_same_size_is_critical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = build_demo_model(tmp_path / "model")

    def replace(root: Path) -> None:
        data = (root / "config.json").read_bytes()
        (root / "config.json").unlink()
        (root / "config.json").write_bytes(data.replace(b"llama", b"LLAMA"))

    report = _scan_swapping(model, replace, monkeypatch)
    assert _swapped_rules(report, "config.json") == ["critical"]


def test_an_untouched_model_has_no_swap_finding(tmp_path: Path) -> None:
    model = build_demo_model(tmp_path / "model")
    report = scan(str(model), ScanOptions())
    assert not [f for f in report.findings if f.rule_id == "INV-FILE-SWAPPED"]
