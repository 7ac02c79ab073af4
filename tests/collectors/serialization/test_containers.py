"""Containers read the way loaders read them: tar, gzip, 7z, zip in zip, npz, joblib, bombs,
legacy torch tars, and compressed streams by every signature a loader accepts."""

from __future__ import annotations

import gzip
import io
import ipaddress
import lzma
import pickle
import struct
import tarfile
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from fixtures.corpus_containers import legacy_storages, legacy_tar, v7_tar
from fixtures.models import malicious_pickle
from provscan.collectors.serialization.containers.compression import decode_block, detect
from provscan.collectors.serialization.containers.scan import (
    scan_7z,
    scan_compressed,
    scan_gzip,
    scan_tar,
    scan_zip,
)
from provscan.collectors.serialization.numpy_scan import scan_numpy
from provscan.collectors.serialization.sniff import is_tar_header
from provscan.files import ScanFile
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
        joblib.dump([model, ipaddress.IPv4Address("10.0.0.1")], path, compress=compress)
        findings = scan_file(path, scanner)
        assert not rules(findings) & {"SER-DECOMPRESSION-BOMB", "SER-ARCHIVE-UNREADABLE"}
        assert not rules(findings) & {"SER-PICKLE-MALFORMED", "SER-PICKLE-DANGEROUS-GLOBAL"}
        assert [f.evidence["global"] for f in findings] == ["ipaddress.IPv4Address"]


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
    assert finding.severity is Severity.CRITICAL and "name" in finding.evidence["differences"]  # type: ignore[operator]


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


# ------------------------------------------------------ tars as tarfile and torch.load read them


def _fake_scan(path: Path) -> list[Finding]:
    """Route the file the way scan.py routes unrecognised binary (FileFormat.BINARY)."""
    return scan_file(path, scan_compressed)


def test_v7_tar_without_ustar_magic_is_read(tmp_path: Path, evil: bytes) -> None:
    data = v7_tar([("notes.txt", b"hello"), ("model/payload", evil)])
    assert data[257:262] != b"ustar" and is_tar_header(data[:512])
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:  # what torch.load opens
        assert tar.getnames()[-1] == "model/payload"
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    found = dangerous(_fake_scan(path))
    assert found and found[0].location is not None
    assert found[0].location.member == "model/payload"


def test_tar_header_detection_needs_a_valid_checksum() -> None:
    data = bytearray(v7_tar([("a", b"x")]))
    assert is_tar_header(bytes(data))
    data[0] ^= 1
    assert not is_tar_header(bytes(data))
    assert not is_tar_header(bytes(1024)) and not is_tar_header(b"short")


def test_legacy_storage_views_payload_after_raw_storage_bytes(tmp_path: Path, evil: bytes) -> None:
    storages = legacy_storages(evil, floats=1000)
    path = tmp_path / "old.pt"
    path.write_bytes(legacy_tar(pickle.dumps({}, protocol=2), storages))
    found = dangerous(_fake_scan(path))
    assert found and found[0].location is not None
    assert found[0].location.member == "storages"
    assert found[0].location.offset is not None and found[0].location.offset > 4000


def test_legacy_layout_in_a_ustar_tar_too(tmp_path: Path, evil: bytes) -> None:
    path = tmp_path / "old.tar"
    path.write_bytes(tar_bytes([("storages", legacy_storages(evil)), ("pickle", b"")]))
    assert dangerous(scan_file(path, scan_tar))


def test_legacy_tensors_records_are_followed(tmp_path: Path, evil: bytes) -> None:
    record = b"\x80\x02X\x01\x00\x00\x000X\x01\x00\x00\x000ctorch\nFloatTensor\n\x87."  # ("0", "0", torch.FloatTensor)
    metadata = struct.pack("<ii", 1, 0) + struct.pack("<qqq", 2, 1, 0)
    tensors = pickle.dumps(2, protocol=2) + record + metadata + evil
    path = tmp_path / "old.tar"
    path.write_bytes(tar_bytes([("tensors", tensors)]))
    found = dangerous(scan_file(path, scan_tar))
    assert found and found[0].location is not None and found[0].location.member == "tensors"


def test_legacy_storage_of_unknown_type_is_reported(tmp_path: Path) -> None:
    record = b"\x80\x02X\x01\x00\x00\x000X\x03\x00\x00\x00cpuctorch\nOddStorage\n\x87."
    storages = pickle.dumps(1, protocol=2) + record + struct.pack("<q", 4) + bytes(64)
    path = tmp_path / "old.tar"
    path.write_bytes(tar_bytes([("storages", storages)]))
    findings = scan_file(path, scan_tar)
    unreadable = [f for f in findings if f.rule_id == "SER-ARCHIVE-UNREADABLE"]
    assert unreadable and "OddStorage" in unreadable[0].message
    assert unreadable[0].severity is Severity.HIGH


def test_real_legacy_storages_layout_is_quiet(tmp_path: Path) -> None:
    views = pickle.dumps([], protocol=2)
    path = tmp_path / "old.tar"
    path.write_bytes(legacy_tar(pickle.dumps({"step": 1}, protocol=2), legacy_storages(views)))
    assert not [f for f in _fake_scan(path) if f.severity in SEVERE]


def test_legacy_member_names_as_links_or_twice_are_critical(tmp_path: Path, evil: bytes) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (("pickle", pickle.dumps({}, protocol=2)), ("pickle", evil)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("storages")
        link.type, link.linkname = tarfile.LNKTYPE, "pickle"
        tar.addfile(link)
    path = tmp_path / "old.tar"
    path.write_bytes(buffer.getvalue())
    findings = scan_file(path, scan_tar)
    by_id = {f.rule_id: f for f in findings}
    assert by_id["SER-TAR-DUPLICATE-MEMBER"].severity is Severity.CRITICAL
    assert by_id["SER-TAR-LEGACY-LINK"].severity is Severity.CRITICAL
    assert dangerous(findings)


# ------------------------------------------------ compressed streams, by every loader signature


@pytest.mark.parametrize("window", range(8))
def test_every_zlib_header_python_accepts_is_detected(
    tmp_path: Path, evil: bytes, window: int
) -> None:
    for level_bits in range(4):
        packer = zlib.compressobj(6, zlib.DEFLATED, window + 8)
        stream = bytearray(packer.compress(evil) + packer.flush())
        cmf = stream[0]
        flg = level_bits << 6
        flg |= 31 - (cmf * 256 + flg) % 31 if (cmf * 256 + flg) % 31 else 0
        stream[1] = flg
        assert zlib.decompress(bytes(stream)) == evil  # what every zlib reader accepts
        assert detect(bytes(stream)) is not None
        path = tmp_path / f"w{window}-{level_bits}.pkl"
        path.write_bytes(bytes(stream))
        assert dangerous(_fake_scan(path)), (hex(cmf), hex(flg))


def test_zlib_header_with_preset_dictionary_is_not_a_stream() -> None:
    assert detect(b"\x78\x20" + bytes(30)) is None  # FDICT: no loader can inflate it


def test_lzma_headers_joblib_accepts_beyond_5d_00_00(tmp_path: Path, evil: bytes) -> None:
    for dictionary in (4096, 0x3000, 1 << 16):
        data = lzma.compress(
            evil,
            format=lzma.FORMAT_ALONE,
            filters=[{"id": lzma.FILTER_LZMA1, "dict_size": dictionary}],
        )
        assert data[:2] == b"\x5d\x00"
        path = tmp_path / f"d{dictionary}.joblib"
        path.write_bytes(data)
        assert dangerous(_fake_scan(path)), hex(dictionary)
    other = lzma.compress(
        evil, format=lzma.FORMAT_ALONE, filters=[{"id": lzma.FILTER_LZMA1, "lc": 0, "pb": 0}]
    )
    assert other[0] != 0x5D and lzma.decompress(other) == evil
    path = tmp_path / "props.lzma"
    path.write_bytes(other)
    assert dangerous(_fake_scan(path))


def test_raw_zeros_are_not_an_lzma_header() -> None:
    assert detect(bytes(64)) is None


def _lz4_sequences(literals: bytes, match: tuple[int, int] | None = None) -> bytes:
    """One LZ4 sequence: literals, then an optional (offset, length) match."""

    def extended(value: int) -> bytes:
        out = b""
        while value >= 255:
            out += b"\xff"
            value -= 255
        return out + bytes([value])

    lit = len(literals)
    match_len = 0 if match is None else match[1] - 4
    token = (min(lit, 15) << 4) | (min(match_len, 15) if match else 0)
    out = bytes([token]) + (extended(lit - 15) if lit >= 15 else b"") + literals
    if match is not None:
        out += struct.pack("<H", match[0])
        out += extended(match_len - 15) if match_len >= 15 else b""
    return out


def _lz4_frame(blocks: list[bytes], *, linked: bool = False, stored: bool = False) -> bytes:
    flags = 0x40 | (0 if linked else 0x20)
    out = b"\x04\x22\x4d\x18" + bytes([flags, 0x70, 0x00])  # 4 MiB blocks, HC byte unchecked
    for block in blocks:
        out += struct.pack("<L", len(block) | (0x80000000 if stored else 0)) + block
    return out + b"\x00\x00\x00\x00"


def test_lz4_block_decoder_overlapping_and_linked_matches() -> None:
    assert decode_block(_lz4_sequences(b"ab", (2, 10)) + _lz4_sequences(b"!"), b"", 64) == (
        b"ab" * 6 + b"!"
    )
    assert decode_block(_lz4_sequences(b"", (3, 6)) + _lz4_sequences(b"."), b"xyz", 64) == (
        b"xyzxyz."
    )
    with pytest.raises(ValueError, match="offset"):
        decode_block(_lz4_sequences(b"a", (5, 4)) + _lz4_sequences(b"."), b"", 64)
    with pytest.raises(ValueError, match="maximum"):
        decode_block(_lz4_sequences(b"a", (1, 100)) + _lz4_sequences(b"."), b"", 64)


def test_lz4_frames_are_decompressed_and_scanned(tmp_path: Path, evil: bytes) -> None:
    half = len(evil) // 2
    frames = {
        "literals": _lz4_frame([_lz4_sequences(evil)]),
        "stored": _lz4_frame([evil], stored=True),
        "linked": _lz4_frame(
            [_lz4_sequences(evil[:half]), _lz4_sequences(b"", (half, half)) + _lz4_sequences(
                evil[half:]
            )],
            linked=True,
        ),
        "two-frames": _lz4_frame([_lz4_sequences(evil[:half])])
        + _lz4_frame([_lz4_sequences(evil[half:])]),
    }  # fmt: skip
    for label, data in frames.items():
        path = tmp_path / f"{label}.joblib"
        path.write_bytes(data)
        assert dangerous(_fake_scan(path)), label


def test_lz4_bomb_is_stopped(tmp_path: Path) -> None:
    block = _lz4_sequences(b"\x00", (1, 4 * MiB - 6)) + _lz4_sequences(b"\x00")
    path = tmp_path / "bomb.lz4"
    path.write_bytes(_lz4_frame([block] * 8))
    tracemalloc.start()
    try:
        findings = _fake_scan(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "SER-DECOMPRESSION-BOMB" in rules(findings)
    assert peak < 64 * MiB


def test_truncated_lz4_is_unreadable(tmp_path: Path, evil: bytes) -> None:
    path = tmp_path / "cut.lz4"
    path.write_bytes(_lz4_frame([_lz4_sequences(evil * 40)])[:200])
    assert "SER-ARCHIVE-UNREADABLE" in rules(_fake_scan(path))


def test_a_file_named_tensors_that_is_no_torch_record_is_scanned_by_content(
    tmp_path: Path, evil: bytes
) -> None:
    path = tmp_path / "data.tar"
    path.write_bytes(tar_bytes([("tensors", b"plain text, not a pickle"), ("storages", b"")]))
    assert not [f for f in scan_file(path, scan_tar) if f.severity in SEVERE]
    path.write_bytes(tar_bytes([("storages", gzip.compress(evil))]))
    assert dangerous(scan_file(path, scan_tar))


def test_a_7z_failing_part_way_keeps_its_member_findings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A codec error while extracting (here raised by a stand-in for py7zr's extract) adds
    SER-ARCHIVE-UNREADABLE; the oversized member found while listing still stands."""
    import lzma

    py7zr = pytest.importorskip("py7zr")
    path = tmp_path / "broken.7z"
    with py7zr.SevenZipFile(path, "w") as archive:
        archive.writestr(b"x" * 4096, "big.bin")
        archive.writestr(b"y", "data.bin")

    def fail(self: object, *args: object, **kwargs: object) -> None:
        raise lzma.LZMAError("Corrupt input data")

    monkeypatch.setattr(py7zr.SevenZipFile, "extract", fail)
    found = rules(scan_file(path, scan_7z, Limits(archive_max_member_bytes=1024)))
    assert {"SER-ARCHIVE-TOO-LARGE", "SER-ARCHIVE-UNREADABLE"} <= found
