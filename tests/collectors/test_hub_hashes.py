"""HF cache snapshots: files changed after download no longer match the hashes their blobs are named by."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from fixtures.models import build_hf_cache_snapshot
from provscan.collectors.hub_hashes import git_blob_sha1
from provscan.emit.html import render_html
from provscan.emit.markdown import render_markdown
from provscan.emit.terminal import render_terminal
from provscan.pipeline import scan
from provscan.policy.engine import evaluate
from provscan.report import Report
from provscan.resources import default_policy_dir

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


# ---------------------------------------------------------------- local records prove nothing


def decisions(report: Report) -> dict[str, str]:
    """The default and the production pack's verdicts on `report`."""
    packs = default_policy_dir().parent
    return {
        pack: evaluate(report, [packs / pack], {}).decision.value
        for pack in ("default", "production")
    }


def not_linked(report: Report) -> list[tuple[str | None, str]]:
    return [
        (f.location.path if f.location else None, f.severity.value)
        for f in report.findings
        if f.rule_id == "HSH-HUB-NOT-LINKED"
    ]


def test_an_untouched_snapshot_is_consistent_with_its_blob_names_not_authenticated(
    demo_model: Path, tmp_path: Path
) -> None:
    report = scan(str(snapshot_of(demo_model, tmp_path)))
    [record] = report.records
    assert (record.source, record.authenticated, record.commit) == (
        "hub-cache-blob",
        False,
        REVISION,
    )
    assert record.consistent == tuple(sorted(f.path for f in report.files))
    assert record.files_compared == len(report.files)
    assert record.mismatched == record.not_compared == ()


def test_a_plain_file_in_a_snapshot_without_tree_listing_is_not_linked(
    demo_model: Path, tmp_path: Path
) -> None:
    """Swapped for a plain file, config.json escapes the blob-name check: nothing else
    compares it when no tree listing is cached."""
    snapshot = snapshot_of(demo_model, tmp_path)
    link = snapshot / "config.json"
    text = link.read_text().replace('"num_hidden_layers": 2', '"num_hidden_layers": 3')
    link.unlink()
    link.write_text(text)
    assert not (snapshot.parent.parent / "trees").exists()
    report = scan(str(snapshot))
    assert not_linked(report) == [("config.json", "high")]
    [finding] = [f for f in report.findings if f.rule_id == "HSH-HUB-NOT-LINKED"]
    assert "only writes snapshot files as links to blobs/ named by their hash" in finding.message
    assert "replaced or added after download and no record covers it" in finding.message
    [record] = report.records
    assert record.not_compared == ("config.json",) and "config.json" not in record.consistent
    assert decisions(report) == {"default": "review", "production": "deny"}


def test_a_link_elsewhere_in_the_repo_folder_is_not_linked(
    demo_model: Path, tmp_path: Path
) -> None:
    snapshot = snapshot_of(demo_model, tmp_path)
    planted = snapshot.parent.parent / "refs" / "config.json"  # inside the repo folder
    planted.write_text((snapshot / "config.json").read_text())
    (snapshot / "config.json").unlink()
    (snapshot / "config.json").symlink_to(os.path.relpath(planted, snapshot))
    report = scan(str(snapshot))
    assert not_linked(report) == [("config.json", "high")]
    [finding] = [f for f in report.findings if f.rule_id == "HSH-HUB-NOT-LINKED"]
    assert finding.evidence["symlink"] is True
    assert finding.evidence["resolved"] == str(planted.resolve())


def test_a_link_out_of_the_repo_folder_is_an_escape_only(demo_model: Path, tmp_path: Path) -> None:
    snapshot = snapshot_of(demo_model, tmp_path)
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    (snapshot / "config.json").unlink()
    (snapshot / "config.json").symlink_to(outside)
    report = scan(str(snapshot))
    assert "INV-SYMLINK-ESCAPE" in {f.rule_id for f in report.findings}
    assert not_linked(report) == []


def test_a_signature_placed_in_a_snapshot_is_not_a_finding(
    demo_model: Path, tmp_path: Path
) -> None:
    snapshot = snapshot_of(demo_model, tmp_path)
    (snapshot / "model.sig").write_text("{}")  # provscan sign writes one here
    assert not_linked(scan(str(snapshot))) == []


def test_a_file_and_blob_rewritten_together_are_consistent_but_not_proof(
    demo_model: Path, tmp_path: Path
) -> None:
    """The attacker changes the weights and renames their blob to the new hash: every local
    record agrees, so nothing is reported changed, and the report must not call that proof."""
    snapshot = snapshot_of(demo_model, tmp_path)
    link = snapshot / "model.safetensors"
    blob = link.resolve()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    forged = blob.with_name(hashlib.sha256(data).hexdigest())
    forged.write_bytes(bytes(data))
    blob.unlink()
    link.unlink()
    link.symlink_to(os.path.relpath(forged, link.parent))
    report = scan(str(snapshot))
    assert rules(report) == []
    [record] = report.records
    assert "model.safetensors" in record.consistent and record.authenticated is False
    judged = decisions(report)
    assert judged["production"] == "deny"
    verdict = evaluate(report, [default_policy_dir().parent / "production"], {})
    assert "POL-SIG-REQUIRED" in {r.rule for r in verdict.reasons}
    judged_report = report.model_copy(update={"verdict": verdict})
    text = " ".join(render_terminal(judged_report, width=400).split())
    assert (
        f"{len(report.files)} files consistent with local records (hf cache blob names of commit "
        f"{REVISION}) — not authenticated: anyone who can write the folder can rewrite them"
    ) in text
    assert "not authenticated" in render_markdown(judged_report)
    assert "not authenticated" in render_html(judged_report)
    assert "match the Hub's model_info record" not in text
