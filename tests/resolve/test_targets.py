"""Target resolution: what is scanned, which links are followed, and what is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fixtures.models import build_hf_cache_snapshot
from provscan.errors import ExitCode, TargetError, UsageError
from provscan.limits import DEFAULT_LIMITS, Limits
from provscan.report import TargetKind
from provscan.resolve.target import resolve_target

REVISION = "0123456789abcdef0123456789abcdef01234567"


def rules(resolved) -> list[str]:
    return [f.rule_id for f in resolved.findings]


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        resolve_target(str(tmp_path / "nope"), DEFAULT_LIMITS)
    assert "no such file or directory" in str(err.value)
    assert err.value.exit_code == ExitCode.USAGE


def test_empty_directory_cannot_be_scanned(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(TargetError) as err:
        resolve_target(str(tmp_path / "empty"), DEFAULT_LIMITS)
    assert "no files" in str(err.value)
    assert err.value.exit_code == ExitCode.INCOMPLETE


def test_directory_files_are_listed_sorted_with_sizes(demo_model: Path) -> None:
    resolved = resolve_target(str(demo_model), DEFAULT_LIMITS)
    assert resolved.info.kind is TargetKind.DIRECTORY
    names = [f.rel for f in resolved.files]
    assert names == sorted(names)
    assert "model.safetensors" in names
    weights = next(f for f in resolved.files if f.rel == "model.safetensors")
    assert weights.size == (demo_model / "model.safetensors").stat().st_size
    assert resolved.findings == []


def test_single_file_target(demo_model: Path) -> None:
    resolved = resolve_target(str(demo_model / "model.safetensors"), DEFAULT_LIMITS)
    assert resolved.info.kind is TargetKind.FILE
    assert [f.rel for f in resolved.files] == ["model.safetensors"]


def test_escaping_symlink_is_a_finding_and_never_followed(demo_model: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    os.symlink(secret, demo_model / "notes.txt")
    resolved = resolve_target(str(demo_model), DEFAULT_LIMITS)
    assert "INV-SYMLINK-ESCAPE" in rules(resolved)
    assert all(f.rel != "notes.txt" for f in resolved.files)
    finding = next(f for f in resolved.findings if f.rule_id == "INV-SYMLINK-ESCAPE")
    assert finding.severity.value == "critical"
    assert finding.location is not None and finding.location.path == "notes.txt"


def test_relative_escape_through_dotdot_is_caught(demo_model: Path, tmp_path: Path) -> None:
    (tmp_path / "outside.bin").write_bytes(b"x")
    os.symlink("../outside.bin", demo_model / "weights.bin")
    assert "INV-SYMLINK-ESCAPE" in rules(resolve_target(str(demo_model), DEFAULT_LIMITS))


def test_internal_symlink_is_followed(demo_model: Path) -> None:
    os.symlink("config.json", demo_model / "alias.json")
    resolved = resolve_target(str(demo_model), DEFAULT_LIMITS)
    alias = next(f for f in resolved.files if f.rel == "alias.json")
    assert alias.symlink and alias.path == (demo_model / "config.json").resolve()
    assert resolved.findings == []


def test_broken_and_directory_links_are_findings(demo_model: Path) -> None:
    os.symlink("missing-file", demo_model / "broken.bin")
    (demo_model / "sub").mkdir()
    (demo_model / "sub" / "x.txt").write_text("x")
    os.symlink("sub", demo_model / "sub-link")
    found = rules(resolve_target(str(demo_model), DEFAULT_LIMITS))
    assert "INV-SYMLINK-BROKEN" in found
    assert "INV-SYMLINK-UNFOLLOWED" in found


def test_fifo_is_reported_and_not_opened(demo_model: Path) -> None:
    os.mkfifo(demo_model / "pipe.bin")  # opening this would block forever
    resolved = resolve_target(str(demo_model), DEFAULT_LIMITS)
    assert "INV-SPECIAL-FILE" in rules(resolved)
    assert all(f.rel != "pipe.bin" for f in resolved.files)


def test_git_directory_is_skipped_and_said(demo_model: Path) -> None:
    (demo_model / ".git").mkdir()
    (demo_model / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (demo_model / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    resolved = resolve_target(str(demo_model), DEFAULT_LIMITS)
    assert "INV-GIT-SKIPPED" in rules(resolved)
    assert not any(f.rel.startswith(".git/") for f in resolved.files)
    attributes = next(f for f in resolved.files if f.rel == ".gitattributes")
    assert attributes.in_manifest is False


def test_too_many_files_is_a_critical_finding(demo_model: Path) -> None:
    resolved = resolve_target(str(demo_model), Limits(max_files=3))
    assert "INV-TOO-MANY-FILES" in rules(resolved)
    assert len(resolved.files) == 3


def test_hf_cache_snapshot_links_into_blobs_are_allowed(demo_model: Path, tmp_path: Path) -> None:
    snapshot = build_hf_cache_snapshot(tmp_path / "hub", "acme/tiny-llama", REVISION, demo_model)
    resolved = resolve_target(str(snapshot), DEFAULT_LIMITS)
    assert resolved.info.kind is TargetKind.HF_CACHE_SNAPSHOT
    assert resolved.info.repo_id == "acme/tiny-llama"
    assert resolved.info.revision == REVISION
    assert resolved.info.name == "tiny-llama"
    assert resolved.findings == []
    assert {f.rel for f in resolved.files} == {p.name for p in demo_model.iterdir()}
    assert all(f.symlink and "blobs" in f.path.parts for f in resolved.files)


def test_hf_cache_repo_folder_resolves_refs_main(demo_model: Path, tmp_path: Path) -> None:
    snapshot = build_hf_cache_snapshot(tmp_path / "hub", "acme/tiny-llama", REVISION, demo_model)
    resolved = resolve_target(str(snapshot.parent.parent), DEFAULT_LIMITS)
    assert resolved.info.revision == REVISION
    assert resolved.info.root == str(snapshot)


def test_hf_snapshot_link_outside_the_repo_folder_is_an_escape(
    demo_model: Path, tmp_path: Path
) -> None:
    snapshot = build_hf_cache_snapshot(tmp_path / "hub", "acme/tiny-llama", REVISION, demo_model)
    other = build_hf_cache_snapshot(tmp_path / "hub", "evil/other", REVISION, demo_model)
    target = snapshot / "config.json"
    target.unlink()
    os.symlink(other / "config.json", target)  # into another repo's blobs
    assert "INV-SYMLINK-ESCAPE" in rules(resolve_target(str(snapshot), DEFAULT_LIMITS))


def test_undecodable_file_name_is_a_finding_and_left_out_of_the_manifest(demo_model: Path) -> None:
    name = os.fsencode(demo_model) + b"/caf\xe9.bin"
    with open(name, "wb") as handle:
        handle.write(b"x")
    resolved = resolve_target(str(demo_model), DEFAULT_LIMITS)
    assert "INV-BAD-FILENAME" in rules(resolved)
    odd = next(f for f in resolved.files if f.rel.startswith("caf"))
    assert odd.rel == "caf\\xe9.bin" and odd.in_manifest is False
