"""HF cache snapshots: files changed after download no longer match the hashes their blobs are named by."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fixtures.models import build_hf_cache_snapshot
from provscan.collectors.hub_hashes import git_blob_sha1
from provscan.pipeline import scan

REVISION = "89abcdef0123456789abcdef0123456789abcdef"


def snapshot_of(demo_model: Path, tmp_path: Path) -> Path:
    return build_hf_cache_snapshot(tmp_path / "hub", "acme/tiny-llama", REVISION, demo_model)


def rules(report) -> list[str]:
    return [f.rule_id for f in report.findings if f.rule_id.startswith("HSH-HUB")]


def test_git_blob_sha1_matches_git() -> None:
    # `printf 'hello\n' | git hash-object --stdin`
    assert git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_untouched_snapshot_matches_the_hub(demo_model: Path, tmp_path: Path) -> None:
    assert rules(scan(str(snapshot_of(demo_model, tmp_path)))) == []


def test_changed_lfs_weights_are_critical(demo_model: Path, tmp_path: Path) -> None:
    snapshot = snapshot_of(demo_model, tmp_path)
    blob = (snapshot / "model.safetensors").resolve()
    assert blob.name == hashlib.sha256(blob.read_bytes()).hexdigest()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # one bit of one weight
    blob.write_bytes(bytes(data))
    report = scan(str(snapshot))
    mismatch = [f for f in report.findings if f.rule_id == "HSH-HUB-MISMATCH"]
    assert [(f.location.path, f.severity.value, f.evidence["algorithm"]) for f in mismatch] == [
        ("model.safetensors", "critical", "sha256")
    ]


def test_changed_git_file_is_critical(demo_model: Path, tmp_path: Path) -> None:
    snapshot = snapshot_of(demo_model, tmp_path)
    blob = (snapshot / "config.json").resolve()
    blob.write_text(blob.read_text().replace('"num_hidden_layers": 2', '"num_hidden_layers": 2 '))
    mismatch = [f for f in scan(str(snapshot)).findings if f.rule_id == "HSH-HUB-MISMATCH"]
    assert [(f.location.path, f.evidence["algorithm"]) for f in mismatch] == [
        ("config.json", "git-sha1")
    ]


def test_blob_not_named_by_a_hash_cannot_be_verified(demo_model: Path, tmp_path: Path) -> None:
    snapshot = snapshot_of(demo_model, tmp_path)
    link = snapshot / "LICENSE"
    odd = link.resolve().with_name("not-a-hash")
    link.resolve().rename(odd)
    link.unlink()
    link.symlink_to(odd)
    assert rules(scan(str(snapshot))) == ["HSH-HUB-UNVERIFIED"]


def test_plain_directories_are_not_compared(demo_model: Path) -> None:
    assert rules(scan(str(demo_model))) == []


def test_tampered_snapshot_is_denied_naming_the_file(
    provscan, demo_model: Path, tmp_path: Path
) -> None:
    snapshot = snapshot_of(demo_model, tmp_path)
    blob = (snapshot / "model.safetensors").resolve()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    result = provscan("check", str(snapshot), "-q")
    assert result.code == 1
    assert "HSH-HUB-MISMATCH" in result.out and "model.safetensors" in result.out
