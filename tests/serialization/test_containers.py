"""Containers read the way loaders read them: tar, gzip, 7z, zip in zip, npz, joblib, bombs."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
import tracemalloc
import zipfile
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from fixtures.models import malicious_pickle
from provscan.collectors.base import ScanFile
from provscan.collectors.serialization.archives import scan_7z, scan_gzip, scan_tar
from provscan.collectors.serialization.numpy_scan import scan_numpy
from provscan.collectors.serialization.zip_scan import scan_zip
from provscan.limits import Limits, MiB
from provscan.report import Finding, Severity

SEVERE = (Severity.HIGH, Severity.CRITICAL)


def scan_file(path: Path, scanner: object, limits: Limits | None = None) -> list[Finding]:
    file = ScanFile(rel=path.name, path=path, size=path.stat().st_size)
    assert callable(scanner)
    result: list[Finding] = scanner(file, limits or Limits())
    return result


def rules(findings: list[Finding]) -> set[str]:
    return {f.rule_id for f in findings}


def dangerous(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.rule_id == "SER-PICKLE-DANGEROUS-GLOBAL"]


def tar_bytes(members: list[tuple[str, bytes]], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:  # type: ignore[call-overload]
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def zip_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def evil(canary: Path) -> bytes:
    return malicious_pickle(f"touch {canary}")


def test_pickle_inside_tar(tmp_path: Path, evil: bytes) -> None:
    path = tmp_path / "weights.bin"  # the name says nothing; the content is a tar
    path.write_bytes(tar_bytes([("model/readme.txt", b"hello"), ("model/payload", evil)]))
    found = dangerous(scan_file(path, scan_tar))
    assert found and found[0].location is not None
    assert found[0].location.path == "weights.bin"
    assert found[0].location.member == "model/payload"


def test_pickle_inside_tar_gz(tmp_path: Path, evil: bytes) -> None:
    path = tmp_path / "model.tar.gz"
    path.write_bytes(tar_bytes([("data.pkl", evil)], mode="w:gz"))
    assert dangerous(scan_file(path, scan_gzip))


def test_pickle_inside_gzip(tmp_path: Path, evil: bytes) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(gzip.compress(evil))
    assert dangerous(scan_file(path, scan_gzip))


def test_zlib_joblib_style_pickle(tmp_path: Path, evil: bytes) -> None:
    # joblib.dump(compress=True) writes a raw zlib stream; joblib.load inflates and unpickles.
    path = tmp_path / "model.pkl"
    path.write_bytes(zlib.compress(evil))
    assert dangerous(scan_file(path, scan_gzip))


def test_legacy_joblib_zfile(tmp_path: Path, evil: bytes) -> None:
    path = tmp_path / "old.pkl"
    path.write_bytes(b"ZF" + hex(len(evil)).encode().ljust(19) + zlib.compress(evil))
    assert dangerous(scan_file(path, scan_gzip))


def test_pickle_inside_7z(tmp_path: Path, evil: bytes) -> None:
    py7zr = pytest.importorskip("py7zr")
    path = tmp_path / "nullifai.7z"
    with py7zr.SevenZipFile(path, "w") as archive:
        archive.writestr(evil, "archive/data.pkl")
        archive.writestr(b"just text", "notes.txt")
    found = dangerous(scan_file(path, scan_7z))
    assert found and found[0].location is not None
    assert found[0].location.member == "archive/data.pkl"


def test_zip_in_zip(tmp_path: Path, evil: bytes) -> None:
    path = tmp_path / "outer.zip"
    path.write_bytes(zip_bytes([("inner.zip", zip_bytes([("x/payload.bin", evil)]))]))
    found = dangerous(scan_file(path, scan_zip))
    assert found and found[0].location is not None
    assert found[0].location.member == "inner.zip!/x/payload.bin"


def test_npz_object_array_member(tmp_path: Path, evil: bytes) -> None:
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        npy, {"descr": "|O", "fortran_order": False, "shape": (1,)}
    )
    path = tmp_path / "arrays.npz"
    path.write_bytes(
        zip_bytes([("weights.npy", np.zeros(3).tobytes()), ("obj.npy", npy.getvalue() + evil)])
    )
    findings = scan_file(path, scan_zip)
    assert "SER-NUMPY-OBJECT-ARRAY" in rules(findings)
    assert any(
        f.location is not None and f.location.member == "obj.npy" for f in dangerous(findings)
    )


def test_real_npz_of_numbers_is_clean(tmp_path: Path) -> None:
    path = tmp_path / "numbers.npz"
    np.savez(path, a=np.arange(100, dtype=np.float32), b=np.ones((4, 4)))
    np.savez_compressed(tmp_path / "c.npz", a=np.arange(100))
    for target in (path, tmp_path / "c.npz"):
        assert not [f for f in scan_file(target, scan_zip) if f.severity in SEVERE]


def test_npy_on_disk_still_scanned(tmp_path: Path, evil: bytes) -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_2_0(
        buffer, {"descr": "|O", "fortran_order": False, "shape": (1,)}
    )
    path = tmp_path / "x.npy"
    path.write_bytes(buffer.getvalue() + evil)
    found = dangerous(scan_file(path, scan_numpy))
    assert found and found[0].location is not None and found[0].location.offset


def test_real_joblib_sklearn_model_is_not_dangerous(tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib")
    linear = pytest.importorskip("sklearn.linear_model")
    model = linear.LogisticRegression().fit(np.random.rand(20, 3), np.arange(20) % 2)
    for compress, scanner in ((3, scan_gzip), (("gzip", 3), scan_gzip), (("xz", 3), scan_gzip)):
        path = tmp_path / f"model-{compress}.joblib"
        # A harmless global that is on neither list follows the model's arrays: its finding
        # proves the pickle inside was walked past the raw array bytes.
        joblib.dump([model, Fraction(1, 3)], path, compress=compress)
        findings = scan_file(path, scanner)
        assert not rules(findings) & {"SER-DECOMPRESSION-BOMB", "SER-ARCHIVE-UNREADABLE"}
        assert not rules(findings) & {"SER-PICKLE-MALFORMED", "SER-PICKLE-DANGEROUS-GLOBAL"}
        assert [f.evidence["global"] for f in findings] == ["fractions.Fraction"]


def _gzip_of_zeros(path: Path, total: int) -> None:
    chunk = bytes(MiB)
    with gzip.open(path, "wb", compresslevel=9) as handle:
        for _ in range(total // MiB):
            handle.write(chunk)


def test_gzip_bomb_is_stopped_with_small_memory(tmp_path: Path) -> None:
    path = tmp_path / "bomb.gz"
    _gzip_of_zeros(path, 1024 * MiB)
    tracemalloc.start()
    try:
        findings = scan_file(path, scan_gzip)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "SER-DECOMPRESSION-BOMB" in rules(findings)
    assert peak < 16 * MiB


def test_large_but_plain_gzip_is_too_large_not_a_bomb(tmp_path: Path) -> None:
    path = tmp_path / "random.gz"
    path.write_bytes(gzip.compress(np.random.default_rng(0).bytes(3 * MiB)))
    findings = scan_file(path, scan_gzip, Limits(archive_max_total_bytes=1 * MiB))
    assert "SER-ARCHIVE-TOO-LARGE" in rules(findings)
    assert "SER-DECOMPRESSION-BOMB" not in rules(findings)


def test_nesting_deeper_than_limit(tmp_path: Path, evil: bytes) -> None:
    data = evil
    for level in range(5):
        data = zip_bytes([(f"level{level}.bin", data)])
    path = tmp_path / "deep.zip"
    path.write_bytes(data)
    findings = scan_file(path, scan_zip, Limits(archive_max_depth=3))
    assert "SER-ARCHIVE-TOO-DEEP" in rules(findings)
    assert not dangerous(findings)  # past the limit: reported, not opened
    assert dangerous(scan_file(path, scan_zip, Limits(archive_max_depth=6)))


def test_zip_local_header_name_mismatch(tmp_path: Path) -> None:
    data = bytearray(zip_bytes([("archive/data.pkl", pickle.dumps({"a": 1}))]))
    at = data.index(b"archive/data.pkl")  # the first occurrence is the local header's
    data[at : at + 16] = b"archive/data.txt"
    path = tmp_path / "model.pt"
    path.write_bytes(bytes(data))
    finding = next(f for f in scan_file(path, scan_zip) if f.rule_id == "SER-ZIP-HEADER-MISMATCH")
    assert finding.severity is Severity.HIGH and "name" in finding.evidence["differences"]  # type: ignore[operator]


def test_zip_local_header_size_mismatch(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"a": 1}))
    data = bytearray(buffer.getvalue())
    struct.pack_into("<L", data, 22, 1)  # local header's uncompressed size
    path = tmp_path / "model.pt"
    path.write_bytes(bytes(data))
    assert "SER-ZIP-HEADER-MISMATCH" in rules(scan_file(path, scan_zip))


def test_real_torch_checkpoint_has_no_header_mismatch(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(4, 3).state_dict(), path)
    assert not [f for f in scan_file(path, scan_zip) if f.severity in SEVERE]


def test_tar_path_traversal_and_links(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("../../etc/cron.d/x")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
        link = tarfile.TarInfo("model/escape")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../home/user/.bashrc"
        tar.addfile(link)
        inside = tarfile.TarInfo("model/ok")
        inside.type, inside.linkname = tarfile.SYMTYPE, "weights.bin"
        tar.addfile(inside)
    path = tmp_path / "model.tar"
    path.write_bytes(buffer.getvalue())
    findings = scan_file(path, scan_tar)
    assert "SER-ARCHIVE-PATH-TRAVERSAL" in rules(findings)
    links = [f for f in findings if f.rule_id == "SER-ARCHIVE-LINK"]
    assert len(links) == 1 and links[0].location is not None
    assert links[0].location.member == "model/escape"


def test_truncated_tar_gz_is_unreadable(tmp_path: Path, evil: bytes) -> None:
    data = tar_bytes([("a.bin", bytes(50_000)), ("data.pkl", evil)], mode="w:gz")
    path = tmp_path / "cut.tgz"
    path.write_bytes(data[: len(data) // 2])
    assert "SER-ARCHIVE-UNREADABLE" in rules(scan_file(path, scan_gzip))
