"""`hf download --local-dir` targets: files changed or removed after download are caught.

The metadata is written by huggingface_hub itself, so a change in its format breaks these tests.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from huggingface_hub._local_folder import write_download_metadata

from fixtures.models import build_demo_model
from provscan.collectors.hub_hashes import compare_local_dir_metadata, git_blob_sha1
from provscan.limits import DEFAULT_LIMITS
from provscan.pipeline import scan
from provscan.report import Finding
from provscan.resolve.target import resolve_target

COMMIT = "89abcdef0123456789abcdef0123456789abcdef"
LFS = {".safetensors", ".bin", ".gguf"}
META = ".cache/huggingface/download/"


def hub_etag(path: Path) -> str:
    """The etag the Hub serves: SHA-256 for LFS files, the git blob SHA-1 for the rest."""
    data = path.read_bytes()
    return hashlib.sha256(data).hexdigest() if path.suffix in LFS else git_blob_sha1(data)


@pytest.fixture
def local_dir(tmp_path: Path) -> Path:
    """The demo model laid out as `hf download --local-dir` leaves it."""
    root = build_demo_model(tmp_path / "local")
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = file.relative_to(root).as_posix()
        write_download_metadata(root, rel, COMMIT, hub_etag(file))
    return root


def check(root: Path) -> list[Finding]:
    resolved = resolve_target(str(root), DEFAULT_LIMITS)
    digests = {f.rel: hashlib.sha256(f.path.read_bytes()).hexdigest() for f in resolved.files}
    return compare_local_dir_metadata(resolved.files, digests)


def summary(findings: list[Finding]) -> list[tuple[str, str, str | None]]:
    return sorted(
        (f.rule_id, f.severity.value, f.location.path if f.location else None) for f in findings
    )


def test_layout_is_what_huggingface_hub_writes(local_dir: Path) -> None:
    metadata = local_dir / META / "model.safetensors.metadata"
    commit, etag, timestamp = metadata.read_text().splitlines()
    assert commit == COMMIT and etag == hub_etag(local_dir / "model.safetensors")
    float(timestamp)


def test_untouched_download_matches_the_hub(local_dir: Path) -> None:
    assert check(local_dir) == []


def test_files_the_user_added_are_not_findings(local_dir: Path) -> None:
    (local_dir / "notes.txt").write_text("mine\n")
    assert check(local_dir) == []


def test_changed_lfs_weights_are_critical(local_dir: Path) -> None:
    weights = local_dir / "model.safetensors"
    recorded = hub_etag(weights)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one bit of one weight; the mtime moves past the metadata's timestamp
    weights.write_bytes(bytes(data))
    [finding] = check(local_dir)
    assert summary([finding]) == [("HSH-HUB-MISMATCH", "critical", "model.safetensors")]
    assert finding.evidence == {
        "algorithm": "sha256",
        "recorded": recorded,
        "actual": hashlib.sha256(bytes(data)).hexdigest(),
        "commit": COMMIT,
        "metadata": META + "model.safetensors.metadata",
        "source": "local-dir-metadata",
    }
    assert "model.safetensors" in finding.message and COMMIT in finding.message


def test_changed_git_file_is_critical(local_dir: Path) -> None:
    config = local_dir / "config.json"
    config.write_text(
        config.read_text().replace('"num_hidden_layers": 2', '"num_hidden_layers": 3')
    )
    [finding] = check(local_dir)
    assert summary([finding]) == [("HSH-HUB-MISMATCH", "critical", "config.json")]
    assert finding.evidence["algorithm"] == "git-sha1"


def test_deleted_file_is_missing(local_dir: Path) -> None:
    (local_dir / "tokenizer.json").unlink()
    [finding] = check(local_dir)
    assert summary([finding]) == [("HSH-HUB-MISSING", "high", "tokenizer.json")]
    assert finding.evidence["commit"] == COMMIT


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe\x00garbage",  # not text
        b"just one line\n",  # too few lines
        f"{COMMIT}\n{'0' * 64}\nyesterday\n".encode(),  # no timestamp
        b"\n\n1712656091.123\n",  # empty commit and etag
        b"x" * 5000,  # over the bound
    ],
)
def test_malformed_metadata_cannot_be_verified(local_dir: Path, content: bytes) -> None:
    (local_dir / META / "LICENSE.metadata").write_bytes(content)
    [finding] = check(local_dir)
    assert summary([finding]) == [("HSH-HUB-UNVERIFIED", "medium", META + "LICENSE.metadata")]
    assert finding.evidence["problem"]


def test_etag_of_unknown_shape_cannot_be_verified(local_dir: Path) -> None:
    write_download_metadata(local_dir, "README.md", COMMIT, "not-a-hash-1")
    [finding] = check(local_dir)
    assert summary([finding]) == [("HSH-HUB-UNVERIFIED", "medium", "README.md")]
    assert finding.evidence["recorded"] == "not-a-hash-1"


def test_quoted_and_weak_etags_are_normalised(local_dir: Path) -> None:
    weights = local_dir / "model.safetensors"
    write_download_metadata(local_dir, "model.safetensors", COMMIT, f'W/"{hub_etag(weights)}"')
    assert check(local_dir) == []
    data = bytearray(weights.read_bytes())
    data[0] ^= 0x01
    weights.write_bytes(bytes(data))
    assert summary(check(local_dir)) == [("HSH-HUB-MISMATCH", "critical", "model.safetensors")]


def test_scan_reports_tampered_local_dir(local_dir: Path) -> None:
    """End to end: needs compare_local_dir_metadata wired into the pipeline's hashing step."""
    weights = local_dir / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    (local_dir / "LICENSE").unlink()
    report = scan(str(local_dir))
    hub = [f for f in report.findings if f.rule_id.startswith("HSH-HUB")]
    assert summary(hub) == [
        ("HSH-HUB-MISMATCH", "critical", "model.safetensors"),
        ("HSH-HUB-MISSING", "high", "LICENSE"),
    ]


def test_scan_records_the_comparison_as_local_and_unauthenticated(local_dir: Path) -> None:
    config = local_dir / "config.json"
    config.write_text(
        config.read_text().replace('"num_hidden_layers": 2', '"num_hidden_layers": 3')
    )
    write_download_metadata(local_dir, "README.md", COMMIT, "not-a-hash-1")
    report = scan(str(local_dir))
    [record] = report.records
    assert (record.source, record.authenticated, record.commit) == (
        "local-dir-metadata",
        False,
        COMMIT,
    )
    assert record.mismatched == ("config.json",)
    assert record.not_compared == ("README.md",)
    assert "model.safetensors" in record.consistent
    assert record.files_compared == len(record.consistent) + 1
    # A directory without huggingface_hub's metadata was compared with nothing.
    assert scan(str(build_demo_model(local_dir.parent / "plain"))).records == ()
