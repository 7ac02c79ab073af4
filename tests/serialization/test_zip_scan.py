"""Zip scanning: pickles in PyTorch archives are found by name and by content, never extracted."""

from __future__ import annotations

import pickle
import struct
import zipfile
from pathlib import Path

import pytest

from provscan.collectors.base import ScanFile, SniffedFile
from provscan.collectors.serialization.scan import scan_serialization
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
    assert by_rule(findings, "SER-ZIP-DUPLICATE-MEMBER").severity is Severity.HIGH
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
    finding = by_rule(findings, "SER-ZIP-MEMBER-UNREADABLE")
    assert finding.severity is Severity.HIGH and "CRC" in finding.message


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
