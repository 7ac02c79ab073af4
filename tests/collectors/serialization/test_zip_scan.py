"""Zip scanning: pickles in PyTorch archives are found by name and by content, never extracted."""

from __future__ import annotations

import io
import pickle
import random
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fixtures.corpus_containers import (
    ZipParts,
    zip_case_folded_name,
    zip_directory_offset,
    zip_duplicate_data_pkl,
    zip_entry_count,
    zip_overlapping_members,
    zip_truncated_end_signature,
    zip_two_zip64_end_records,
)
from fixtures.models import malicious_pickle
from provscan.collectors.serialization.containers.zip_entries import span_of
from provscan.collectors.serialization.containers.zip_miniz import _heap_sort, read_miniz
from provscan.collectors.serialization.scan import scan_serialization
from provscan.files import ScanFile, SniffedFile
from provscan.limits import Limits
from provscan.report import FileFormat, Finding, Severity


def payload(canary: Path) -> bytes:
    """A protocol-2 pickle that would run `touch <canary>` when loaded."""
    command = f"touch {canary}".encode()
    return b"\x80\x02cposix\nsystem\nX" + struct.pack("<I", len(command)) + command + b"\x85R."


def make_zip(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path


def scan(path: Path, limits: Limits | None = None) -> list[Finding]:
    sniffed = SniffedFile(
        ScanFile(rel=path.name, path=path, size=path.stat().st_size), FileFormat.ZIP
    )
    return list(scan_serialization([sniffed], limits or Limits()).findings)


def by_rule(findings: list[Finding], rule_id: str) -> Finding:
    hits = [f for f in findings if f.rule_id == rule_id]
    assert hits, f"no {rule_id} in {findings}"
    return hits[0]


def benign_members() -> list[tuple[str, bytes]]:
    return [
        ("archive/data.pkl", pickle.dumps({"step": 1}, protocol=2)),
        ("archive/byteorder", b"little"),
        ("archive/version", b"3\n"),
        ("archive/data/0", b"\x80\x02\x00\x00" * 4),  # raw storage bytes that start like a pickle
    ]


def test_real_torch_checkpoint_is_clean(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    state = model.state_dict()
    state["half"] = torch.zeros(640, dtype=torch.float16)
    path = tmp_path / "pytorch_model.bin"
    torch.save(state, path)
    assert zipfile.is_zipfile(path)
    assert scan(path) == []


def test_synthetic_benign_archive_is_clean(tmp_path: Path) -> None:
    assert scan(make_zip(tmp_path / "model.pt", benign_members())) == []


def test_payload_in_data_pkl(tmp_path: Path, canary: Path) -> None:
    path = make_zip(tmp_path / "model.pt", [("archive/data.pkl", payload(canary))])
    finding = by_rule(scan(path), "SER-PICKLE-DANGEROUS-GLOBAL")
    assert finding.severity is Severity.CRITICAL
    assert finding.location is not None and finding.location.member == "archive/data.pkl"
    assert finding.evidence["global"] == "posix.system"
    assert "model.pt" in finding.message and "archive/data.pkl" in finding.message


def test_payload_hidden_in_member_not_named_pkl(tmp_path: Path, canary: Path) -> None:
    members = [*benign_members(), ("archive/extra/readme.txt", payload(canary))]
    findings = scan(make_zip(tmp_path / "model.pt", members))
    finding = by_rule(findings, "SER-PICKLE-DANGEROUS-GLOBAL")
    assert finding.location is not None and finding.location.member == "archive/extra/readme.txt"
    assert len(findings) == 1


def test_large_storage_that_starts_like_a_pickle(tmp_path: Path, canary: Path) -> None:
    storage = b"\x80\x02" + bytes(range(256)) * 8192  # 2 MiB of tensor bytes
    hidden = payload(canary) + bytes(2 * 2**20)  # a real pickle followed by padding
    members = [*benign_members(), ("archive/data/1", storage), ("archive/data/2", hidden)]
    findings = scan(make_zip(tmp_path / "model.pt", members))
    assert [(f.rule_id, f.location.member) for f in findings] == [  # type: ignore[union-attr]
        ("SER-PICKLE-DANGEROUS-GLOBAL", "archive/data/2")
    ]


def test_payload_in_compressed_member(tmp_path: Path, canary: Path) -> None:
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", payload(canary))
    assert by_rule(scan(path), "SER-PICKLE-DANGEROUS-GLOBAL").evidence["opcode"] == "REDUCE"


def test_torchscript_archive(tmp_path: Path) -> None:
    members = [
        *benign_members(),
        ("archive/code/__torch__/model.py", b"def forward(self): ..."),
        ("archive/constants.pkl", pickle.dumps((), protocol=2)),
    ]
    finding = by_rule(scan(make_zip(tmp_path / "model.pt", members)), "SER-TORCHSCRIPT")
    assert finding.severity is Severity.HIGH
    assert "archive/code/__torch__/model.py" in finding.evidence["members"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_real_torchscript_archive(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    assert by_rule(scan(path), "SER-TORCHSCRIPT").severity is Severity.HIGH


def test_checkpoint_saved_as_code_pt_is_not_torchscript(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "code.pt"  # torch.save names the archive folder after the file: code/
    torch.save({"w": torch.ones(2)}, path)
    assert scan(path) == []


def test_two_data_pkl_members(tmp_path: Path) -> None:
    members = [*benign_members(), ("other/data.pkl", pickle.dumps([], protocol=2))]
    finding = by_rule(scan(make_zip(tmp_path / "model.pt", members)), "SER-ZIP-MULTIPLE-DATA-PKL")
    assert finding.severity is Severity.HIGH and len(finding.evidence["members"]) == 2


def test_duplicate_member_names_are_each_scanned(tmp_path: Path, canary: Path) -> None:
    path = tmp_path / "model.pt"
    with pytest.warns(UserWarning), zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({}, protocol=2))
        archive.writestr("archive/data.pkl", payload(canary))
    findings = scan(path)
    assert by_rule(findings, "SER-ZIP-DUPLICATE-MEMBER").severity is Severity.CRITICAL
    assert by_rule(findings, "SER-PICKLE-DANGEROUS-GLOBAL").severity is Severity.CRITICAL


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    finding = by_rule(scan(path), "SER-ZIP-MALFORMED")
    assert finding.severity is Severity.HIGH and "model.pt" in finding.message


def test_truncated_zip(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "model.pt", benign_members())
    path.write_bytes(path.read_bytes()[:-30])
    assert by_rule(scan(path), "SER-ZIP-MALFORMED").severity is Severity.HIGH


def test_too_many_members(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "model.pt", [(f"m{i}", b"x") for i in range(5)])
    finding = by_rule(scan(path, Limits(zip_max_members=3)), "SER-ZIP-TOO-MANY-MEMBERS")
    assert finding.evidence["declared"] == 5


def test_pickle_member_over_the_size_limit(tmp_path: Path, canary: Path) -> None:
    big = payload(canary)[:-1] + b"0" + pickle.dumps(list(range(3000)), protocol=2)[2:]
    findings = scan(
        make_zip(tmp_path / "model.pt", [("archive/data.pkl", big)]), Limits(pickle_max=500)
    )
    assert by_rule(findings, "SER-PICKLE-TOO-LARGE").evidence["size"] == len(big)
    assert by_rule(findings, "SER-PICKLE-DANGEROUS-GLOBAL").severity is Severity.CRITICAL
    assert [f.rule_id for f in findings].count("SER-PICKLE-TOO-LARGE") == 1


def test_member_with_bad_crc_is_reported(tmp_path: Path, canary: Path) -> None:
    path = make_zip(tmp_path / "model.pt", [("archive/data.pkl", payload(canary))])
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"posix")] = ord("q")  # change content, keep the stored CRC
    path.write_bytes(bytes(raw))
    findings = scan(path)
    # zipfile refuses the member; PyTorch's reader checks no CRC and loads it.
    finding = by_rule(findings, "SER-ZIP-READER-DISAGREEMENT")
    assert finding.severity is Severity.CRITICAL and "CRC" in finding.message
    assert by_rule(findings, "SER-PICKLE-UNKNOWN-GLOBAL").evidence["global"] == "qosix.system"


def test_nothing_is_extracted(tmp_path: Path, canary: Path) -> None:
    path = make_zip(
        tmp_path / "model.pt", [("../../escape.pkl", payload(canary)), ("archive/data.pkl", b"")]
    )
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert "SER-PICKLE-MALFORMED" in {f.rule_id for f in scan(path)}  # the empty data.pkl
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert not (tmp_path.parent / "escape.pkl").exists()


def test_garbage_data_pkl_deflate_bomb_is_not_read_into_memory(tmp_path: Path) -> None:
    import tracemalloc

    path = tmp_path / "pytorch_model.bin"
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("archive/data.pkl", "w") as member,
    ):
        for _ in range(64):
            member.write(bytes(1 << 20))  # 64 MiB of zeros, ~64 KiB compressed
    tracemalloc.start()
    findings = scan(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "SER-PICKLE-MALFORMED" in [f.rule_id for f in findings]
    assert peak < 16 * 1024 * 1024


# ---------------------------------------------------------------- torch's reader vs zipfile


def _torch_record(path: Path, name: str) -> bytes | None:
    torch = pytest.importorskip("torch")
    try:
        reader = torch._C.PyTorchFileReader(str(path))
    except RuntimeError:
        return None
    return bytes(reader.get_record(name)) if reader.has_record(name) else None


def _model_record(data: bytes, name: str) -> bytes | None:
    """What the miniz model says torch reads for <folder>/name."""
    handle = io.BytesIO(data)
    view = read_miniz(handle, len(data), 1000)
    if view.error is not None or view.prefix is None:
        return None
    entry = view.locate(view.prefix + b"/" + name.encode())
    if entry is None:
        return None
    span = span_of(handle, entry, len(data))
    assert span is not None and span.method == zipfile.ZIP_STORED
    return data[span.data_offset : span.data_offset + span.compress_size]


def _zipfile_record(data: bytes, name: str) -> bytes | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return archive.read(name)
    except (zipfile.BadZipFile, KeyError):
        return None


EVIL = malicious_pickle("true")
DECOY = pickle.dumps({"weights": "decoy"}, protocol=2)


@pytest.mark.parametrize(
    "build",
    [
        lambda: zip_two_zip64_end_records(EVIL, DECOY),
        lambda: zip_truncated_end_signature(EVIL),
        lambda: zip_directory_offset(EVIL, DECOY),
        lambda: zip_entry_count(EVIL, DECOY),
        lambda: zip_duplicate_data_pkl(EVIL, DECOY),
        lambda: zip_case_folded_name(EVIL),
    ],
    ids=["zip64-locator", "truncated-end", "directory-offset", "entry-count", "dup", "case"],
)
def test_torch_reads_the_payload_zipfile_does_not(
    tmp_path: Path, build: Callable[[], bytes]
) -> None:
    """The reader facts in zip_layout's docstring, checked against the installed torch: the
    model names the bytes torch reads, and they are not what zipfile reads."""
    data = build()
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    assert _torch_record(path, "data.pkl") == EVIL
    assert _model_record(data, "data.pkl") == EVIL
    assert _zipfile_record(data, "archive/data.pkl") != EVIL
    findings = scan(path)
    payload = by_rule(findings, "SER-PICKLE-DANGEROUS-GLOBAL")
    assert payload.location is not None and payload.location.member is not None
    assert payload.location.member.lower() == "archive/data.pkl"
    assert by_rule(findings, "SER-ZIP-READER-DISAGREEMENT").severity is Severity.CRITICAL


def test_miniz_model_matches_torch_on_duplicate_and_case_folded_names(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    rng = random.Random(20240101)
    pool = ["archive/data.pkl", "archive/DATA.pkl", "archive/Data.PKL", "archive/data.pk"]
    pool += ["archive/a", "archive/b", "archive/version", "archive/DATA/x", "archive/z"]
    path = tmp_path / "model.pt"
    for trial in range(60):
        parts = ZipParts()
        parts.add("archive/first", b"x")
        names = [rng.choice(pool) for _ in range(rng.randint(1, 11))] + ["archive/version"]
        rng.shuffle(names)
        for index, name in enumerate(names):
            parts.add(name, b"3\n" if name.endswith("version") else pickle.dumps(index))
        offset, directory = parts.directory()
        data = bytes(parts.body) + struct.pack(
            "<4s4H2LH", b"PK\x05\x06", 0, 0, len(parts.central), len(parts.central),
            len(directory), offset, 0,
        )  # fmt: skip
        path.write_bytes(data)
        for query in ("data.pkl", "a", "DATA/x", "z"):
            assert _model_record(data, query) == _torch_record(path, query), (trial, names)


def test_heap_sort_orders_like_sorted() -> None:
    keys = [bytes([c]) for c in b"dbeacfbd"]
    order = _heap_sort(keys)
    assert [keys[i] for i in order] == sorted(keys)
    assert sorted(order) == list(range(len(keys)))


def _benign_archives() -> list[tuple[str, bytes]]:
    torch = pytest.importorskip("torch")
    out: list[tuple[str, bytes]] = []
    for protocol in (2, 4):
        buffer = io.BytesIO()
        torch.save({"w": torch.ones(3), "h": torch.zeros(2, dtype=torch.half)}, buffer,
                   pickle_protocol=protocol)  # fmt: skip
        out.append((f"torch-p{protocol}", buffer.getvalue()))
    buffer = io.BytesIO()
    np.savez(buffer, a=np.arange(10), b=np.ones(3))
    out.append(("savez", buffer.getvalue()))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, a=np.arange(1000))
    out.append(("savez_compressed", buffer.getvalue()))
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=method) as archive:
            archive.writestr("a/b.txt", b"hello" * 100)
            archive.writestr("a/dir/", b"")
            with archive.open("big.bin", "w", force_zip64=True) as member:
                member.write(b"x" * 5000)
            archive.comment = b"a comment"
        out.append((f"zipfile-{method}", buffer.getvalue()))

    class Unseekable(io.RawIOBase):  # zipfile then writes data descriptors
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, chunk: bytes) -> int:  # type: ignore[override]
            self.data += chunk
            return len(chunk)

    stream = Unseekable()
    with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.txt", b"hello" * 100)
        with archive.open("big.bin", "w", force_zip64=True) as member:
            member.write(b"y" * 5000)
    out.append(("streamed", bytes(stream.data)))
    return out


def test_real_zip_writers_show_no_reader_or_layout_problem(tmp_path: Path) -> None:
    for label, data in _benign_archives():
        path = tmp_path / f"{label}.zip"
        path.write_bytes(data)
        severe = [f for f in scan(path) if f.severity in (Severity.HIGH, Severity.CRITICAL)]
        assert not severe, (label, severe)


def _tail_zip(members: list[tuple[str, bytes]], prefix: bytes = b"") -> bytes:
    parts = ZipParts(prefix)
    for name, data in members:
        parts.add(name, data)
    offset, directory = parts.directory()
    return bytes(parts.body) + struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, len(parts.central), len(parts.central),
        len(directory), offset, 0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (_tail_zip(benign_members()) + b"trailing junk", "SER-ZIP-TRAILING-DATA"),
        (_tail_zip(benign_members(), prefix=b"PK\x03\x04" + bytes(40)), "SER-ZIP-LEADING-DATA"),
        (zip_overlapping_members(DECOY), "SER-ZIP-OVERLAP"),
        (zip_truncated_end_signature(DECOY), "SER-ZIP-MULTIPLE-END-RECORDS"),
        (zip_two_zip64_end_records(DECOY, DECOY), "SER-ZIP-MULTIPLE-END-RECORDS"),
        (zip_directory_offset(DECOY, DECOY), "SER-ZIP-GAP"),
        (zip_case_folded_name(DECOY), "SER-ZIP-READER-DISAGREEMENT"),
    ],
    ids=["trailing", "leading", "overlap", "truncated-end", "zip64-locator", "gap", "case"],
)
def test_layout_problems_are_critical_even_without_a_payload(
    tmp_path: Path, data: bytes, rule: str
) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    findings = scan(path)
    assert by_rule(findings, rule).severity is Severity.CRITICAL
    assert "model.pt" in by_rule(findings, rule).message
    assert not [f for f in findings if "DANGEROUS" in f.rule_id]


def test_gap_between_members_is_reported(tmp_path: Path) -> None:
    parts = ZipParts()
    parts.add("archive/data.pkl", DECOY)
    parts.body += b"hidden bytes no entry accounts for"
    parts.add("archive/version", b"3\n")
    offset, directory = parts.directory()
    path = tmp_path / "model.pt"
    path.write_bytes(
        bytes(parts.body)
        + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 2, 2, len(directory), offset, 0)
    )
    finding = by_rule(scan(path), "SER-ZIP-GAP")
    assert finding.evidence["end"] - finding.evidence["start"] == 34


def test_member_only_torch_sees_is_scanned_as_torch_reads_it(tmp_path: Path) -> None:
    """Entry count below the directory: zipfile's name table keeps the decoy, torch the payload;
    the payload is reported at torch's data.pkl."""
    path = tmp_path / "model.pt"
    path.write_bytes(zip_entry_count(EVIL, DECOY))
    findings = scan(path)
    assert by_rule(findings, "SER-PICKLE-DANGEROUS-GLOBAL").evidence["global"] == "os.system"
    disagreement = by_rule(findings, "SER-ZIP-READER-DISAGREEMENT")
    assert disagreement.evidence["torch"]["entry"] == "archive/data.pkl"
