"""`provscan check hf://ORG/NAME@REV` without --download: the metadata-only scan.

Against fixtures/hub_server.py, the real huggingface_hub client in a child process (pointed at
the server with HF_ENDPOINT) or, for what needs the scan's insides, in this process through
`point_client_at`. Only the Hub is a test double. Each fixture repo gets the verdict it calls
for; what metadata cannot see (a byte changed inside the weights) is reported as unverified,
and --download then denies it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.hub_repos import FixtureRepo, all_repos, demo_files, demo_repo
from fixtures.hub_server import HubServer, point_client_at
from fixtures.signing import KeyFiles, write_key
from provscan.collectors import hub_records
from provscan.emit.terminal import render_terminal
from provscan.hub.ref import HubOptions
from provscan.limits import DEFAULT_LIMITS, Limits
from provscan.pipeline import ScanOptions, scan
from provscan.policy.engine import evaluate
from provscan.report import Report, Verdict
from provscan.resolve.hub_metadata import Listed, _bad_name, split_by_fetch
from provscan.resources import default_policy_dir
from provscan.signing.sign import SigningKey, sign_model


@pytest.fixture(scope="module")
def publisher(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    return write_key(tmp_path_factory.mktemp("keys"), "publisher")


def _signed_repo(key: KeyFiles, tmp: Path) -> FixtureRepo:
    """The demo model with the publisher's OMS signature (model.sig) committed beside it."""
    model = tmp / "signed"
    model.mkdir()
    for name, data in demo_files().items():
        (model / name).write_bytes(data)
    sign_model(model, model / "model.sig", SigningKey(key=key.private))
    files = {p.name: p.read_bytes() for p in model.iterdir()}
    return FixtureRepo("acme/signed", files)


def _siblings(repo: FixtureRepo, lfs: bool = True) -> list[dict[str, Any]]:
    """model_info's file listing of `repo`, as the server builds it (without LFS: `lfs=False`)."""
    return [
        {"rfilename": p, "size": e.size, "blobId": e.blob_id}
        | ({"lfs": {"size": e.size, "sha256": e.sha256, "pointerSize": e.pointer_size}} if e.sha256 and lfs else {})
        for p, e in repo.entries.items()
    ]  # fmt: skip


def _hostile_listing() -> FixtureRepo:
    """The demo repo whose model_info also lists names no snapshot can hold."""
    repo = demo_repo("acme/hostile")
    good = _siblings(repo)
    bad = [
        {"rfilename": "../escape.json", "size": 10, "blobId": "0" * 40},
        {"rfilename": "/etc/passwd", "size": 10, "blobId": "0" * 40},
        {"rfilename": "dir\\evil.json", "size": 10, "blobId": "0" * 40},
        {"rfilename": "neg.json", "size": -1, "blobId": "0" * 40},
        {"rfilename": "config.json", "size": 10, "blobId": "0" * 40},  # listed twice
    ]
    repo.info["siblings"] = good + bad
    return repo


def _unrecorded() -> FixtureRepo:
    """The demo repo whose listing gives no SHA-256 for its weights (only a git blob id)."""
    repo = demo_repo("acme/unrecorded")
    repo.info["siblings"] = _siblings(repo, lfs=False)
    return repo


@pytest.fixture(scope="module")
def hub(publisher: KeyFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    repos = [
        *all_repos(),
        demo_repo("acme/busy", rate_limit_first_n=2),
        demo_repo("acme/flagged", security={"model.safetensors": {"status": "unsafe"}}),
        demo_repo("acme/dead", drop_after_bytes=0, drop_times=1_000),
        _signed_repo(publisher, tmp_path_factory.mktemp("signed")),
        _hostile_listing(),
        _unrecorded(),
        demo_repo("acme/slow", slow=2.0),
    ]
    with HubServer(repos) as server:
        yield server


def check(hub: HubServer, home: Path, *args: str, **env: str) -> tuple[int, dict[str, Any], str]:
    """`provscan check ARGS -q --format json` in a child process: (exit code, report, stderr)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    result = subprocess.run(
        [sys.executable, "-m", "provscan", "check", *args, "-q", "--format", "json"],
        env=clean | hub.env(home) | env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, report, result.stderr


def rules(report: dict[str, Any], field: str = "rule_id") -> dict[str, set[str]]:
    """rule id -> the files it names, over findings (field rule_id) or verdict reasons (rule)."""
    out: dict[str, set[str]] = {}
    items = report["findings"] if field == "rule_id" else report["verdict"]["reasons"]
    for item in items:
        location = item.get("location") or {}
        out.setdefault(item[field], set()).add(location.get("path") or item.get("path") or "")
    return out


def file(report: dict[str, Any], path: str) -> dict[str, Any]:
    return next(f for f in report["files"] if f["path"] == path)


def test_the_demo_repo_is_pinned_and_its_weights_are_not_downloaded(
    hub: HubServer, tmp_path: Path
) -> None:
    repo = hub.repos["acme/tiny-llama"]
    hub.reset_log()
    code, report, stderr = check(
        hub, tmp_path, "hf://acme/tiny-llama@v1.0", "--bom", str(tmp_path / "bom.json")
    )
    assert code == 4, stderr  # review: the weights' hash is only the Hub's record
    target = report["target"]
    assert target["kind"] == "hub-metadata" and target["revision"] == repo.sha
    assert target["hub"]["requested_revision"] == "v1.0" and target["hub"]["mode"] == "metadata"
    assert all(step["status"] == "completed" for step in report["steps"])
    weights = file(report, "model.safetensors")
    assert weights["read"] == "header" and weights["sha256_source"] == "hub-recorded"
    assert weights["sha256"] == repo.entries["model.safetensors"].sha256
    config = file(report, "config.json")
    assert config["read"] == "whole" and config["sha256_source"] == "computed"
    # The facts a download would give, from the header alone.
    assert report["model"]["parameter_count"] == sum(repo.parameters().values())
    assert report["licence"]["concluded"] == ["apache-2.0"]
    blob = f"/lfs-blobs/{repo.entries['model.safetensors'].sha256}"
    served = sum(r.bytes_sent for r in hub.requests if r.path == blob)
    assert 0 < served < repo.entries["model.safetensors"].size // 10
    reasons = {r["rule"]: r["msg"] for r in report["verdict"]["reasons"]}
    assert "model.safetensors" in reasons["POL-HUB-NOT-DOWNLOADED"]
    assert report["verdict"]["decision"] == "review"
    bom = json.loads((tmp_path / "bom.json").read_text())
    assert f"pkg:huggingface/acme/tiny-llama@{repo.sha}" in json.dumps(bom)
    assert '"provscan:file:sha256_source", "value": "hub-recorded"' in json.dumps(bom)


def test_warn_level_accepts_the_hubs_record(hub: HubServer, tmp_path: Path) -> None:
    config = tmp_path / "provscan.toml"
    config.write_text('[hub]\nnot_downloaded = "warn"\n')
    code, report, stderr = check(hub, tmp_path, "hf://acme/tiny-llama", "--config", str(config))
    assert code == 0, stderr
    levels = {r["rule"]: r["level"] for r in report["verdict"]["reasons"]}
    assert levels["POL-HUB-NOT-DOWNLOADED"] == "warn"


def test_the_200_shard_repo_costs_under_a_thousandth_of_its_bytes(
    hub: HubServer, tmp_path: Path
) -> None:
    repo = hub.repos["acme/many-shards"]
    total = sum(e.size for e in repo.entries.values())
    hub.reset_log()
    code, report, stderr = check(hub, tmp_path, "hf://acme/many-shards")
    assert code == 4, stderr
    assert hub.bytes_sent / total < 0.001, (hub.bytes_sent, total)
    shards = [f for f in report["files"] if f["path"].endswith(".safetensors")]
    assert len(shards) == 200 and {f["read"] for f in shards} == {"header"}
    assert report["model"]["tensor_count"] == 800
    assert report["model"]["parameter_count"] == sum(repo.parameters().values())
    assert report["target"]["hub"]["range_requests"] <= 2 * 200
    assert report["findings"] == []


def test_a_change_inside_the_weights_needs_download_to_be_seen(
    hub: HubServer, tmp_path: Path
) -> None:
    code, report, _ = check(hub, tmp_path, "hf://acme/tampered")
    # Metadata cannot see the flipped last byte: never approved, the file named as unverified.
    assert code == 4 and report["verdict"]["decision"] == "review"
    assert file(report, "model.safetensors")["sha256_source"] == "hub-recorded"
    reasons = {r["rule"]: r["msg"] for r in report["verdict"]["reasons"]}
    assert "model.safetensors" in reasons["POL-HUB-NOT-DOWNLOADED"]
    code, report, _ = check(hub, tmp_path, "hf://acme/tampered", "--download")
    assert code == 1 and rules(report)["HSH-HUB-MISMATCH"] == {"model.safetensors"}


def test_a_tampered_small_file_is_denied_without_download(hub: HubServer, tmp_path: Path) -> None:
    code, report, _ = check(hub, tmp_path, "hf://acme/tampered-config")
    assert code == 1
    mismatch = [f for f in report["findings"] if f["rule_id"] == "HSH-HUB-MISMATCH"]
    assert [f["location"]["path"] for f in mismatch] == ["config.json"]
    assert mismatch[0]["evidence"]["source"] == "hub-model-info"
    assert "served other bytes" in mismatch[0]["message"]


def test_a_small_pickle_is_scanned_and_a_large_one_is_unknown(
    hub: HubServer, tmp_path: Path
) -> None:
    code, report, _ = check(hub, tmp_path, "hf://acme/pickled")
    assert code == 1  # the small pickle was downloaded, scanned and found to call os.system
    found = rules(report)
    assert found["SER-PICKLE-DANGEROUS-GLOBAL"] == {"training_args.bin"}
    assert found["SER-NOT-DOWNLOADED"] == {"pytorch_model.bin"}
    unknown = next(f for f in report["findings"] if f["rule_id"] == "SER-NOT-DOWNLOADED")
    assert unknown["severity"] == "high" and unknown["evidence"]["format"] == "pickle"
    assert file(report, "pytorch_model.bin")["read"] == "head"
    assert file(report, "training_args.bin")["read"] == "whole"


def test_a_gated_repo_needs_a_granted_token(hub: HubServer, tmp_path: Path) -> None:
    code, report, stderr = check(hub, tmp_path, "hf://acme/gated")
    assert code == 3 and report == {}
    assert "gated" in stderr and "HTTP 401" in stderr and "HF_TOKEN" in stderr
    code, report, stderr = check(hub, tmp_path, "hf://acme/gated", HF_TOKEN=hub.ungranted_token)
    assert code == 3 and report == {}
    assert "gated" in stderr and "HTTP 403" in stderr and "accept the licence" in stderr
    code, report, stderr = check(hub, tmp_path, "hf://acme/gated", HF_TOKEN=hub.token)
    assert code in (1, 4), stderr
    assert report["target"]["kind"] == "hub-metadata"
    assert report["card"]["license_name"] == "acme-research"


def test_a_fine_tune_inherits_its_roots_licence_from_the_hub(
    hub: HubServer, tmp_path: Path
) -> None:
    code, report, _ = check(hub, tmp_path, "hf://acme/finetune")
    assert code == 4
    assert "meta-llama/Llama-3.1-8B" in report["origin"]["root_models"]
    assert "llama3.1" in report["licence"]["inherited"]
    assert "LIC-LAUNDERING" in rules(report)


def test_the_hubs_own_scan_is_a_finding(hub: HubServer, tmp_path: Path) -> None:
    code, report, _ = check(hub, tmp_path, "hf://acme/flagged")
    assert code == 4
    assert rules(report)["SER-HUB-FLAGGED"] == {"model.safetensors"}


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("hf://acme/nope", "no such repo"),
        ("hf://acme/tiny-llama@nope", "revision 'nope' does not exist"),
    ],
)
def test_a_missing_repo_or_revision_is_named(
    hub: HubServer, tmp_path: Path, target: str, message: str
) -> None:
    code, report, stderr = check(hub, tmp_path, target)
    assert code == 3 and report == {} and message in stderr


def test_a_rate_limit_is_retried(hub: HubServer, tmp_path: Path) -> None:
    code, report, stderr = check(hub, tmp_path, "hf://acme/busy")
    assert code == 4, stderr
    assert report["target"]["repo_id"] == "acme/busy"


@pytest.mark.slow  # retries with backoff: seconds of waiting
def test_a_hub_that_times_out_is_retried_then_named(hub: HubServer, tmp_path: Path) -> None:
    code, report, stderr = check(hub, tmp_path, "hf://acme/slow", HF_HUB_DOWNLOAD_TIMEOUT="1")
    assert code == 3 and report == {}
    assert "could not reach" in stderr and "Timeout" in stderr and "after 3 retries" in stderr
    assert sum(1 for r in hub.requests if r.path.startswith("/api/models/acme/slow")) == 4


@pytest.mark.slow  # retries with backoff: seconds of waiting
def test_a_download_that_keeps_failing_ends_the_scan(hub: HubServer, tmp_path: Path) -> None:
    code, report, stderr = check(hub, tmp_path, "hf://acme/dead")
    assert code == 3 and report == {}
    assert "acme/dead" in stderr and "hint:" in stderr


def test_a_signature_is_checked_against_the_hubs_record(
    hub: HubServer, tmp_path: Path, publisher: KeyFiles
) -> None:
    code, report, stderr = check(
        hub, tmp_path, "hf://acme/signed", "--trusted-key", str(publisher.public)
    )
    assert code == 4, stderr  # the signature holds; the weights are still not downloaded
    (sig,) = report["signatures"]["signatures"]
    assert sig["status"] == "verified" and sig["integrity"] == "match"
    assert sig["compared_with"] == "hub-record"
    decisions = {r["rule"] for r in report["verdict"]["reasons"] if r["level"] != "warn"}
    assert decisions == {"POL-HUB-NOT-DOWNLOADED"}


def test_a_hostile_listing_is_refused_file_by_file(hub: HubServer, tmp_path: Path) -> None:
    code, report, stderr = check(hub, tmp_path, "hf://acme/hostile")
    assert code == 1, stderr
    bad = rules(report)["INV-HUB-BAD-LISTING"]
    assert bad == {"../escape.json", "/etc/passwd", "dir\\evil.json", "neg.json", "config.json"}
    assert (
        not (tmp_path / "escape.json").exists() and not (tmp_path / "hub" / "escape.json").exists()
    )
    assert file(report, "config.json")["read"] == "whole"  # the first listing of it stands


def test_weights_without_a_recorded_sha256_fail_closed(hub: HubServer, tmp_path: Path) -> None:
    code, report, _ = check(hub, tmp_path, "hf://acme/unrecorded")
    assert code == 1
    hashing = next(s for s in report["steps"] if s["name"] == "hashing")
    assert hashing["status"] == "failed"
    unhashed = next(f for f in report["findings"] if f["rule_id"] == "HSH-UNREADABLE")
    assert unhashed["location"]["path"] == "model.safetensors"
    assert "recorded no SHA-256" in unhashed["message"]


def test_include_and_exclude_narrow_the_scan(hub: HubServer, tmp_path: Path) -> None:
    code, report, _ = check(hub, tmp_path, "hf://acme/tiny-llama", "--exclude", "*.safetensors")
    assert code == 0  # nothing left unverified
    assert "model.safetensors" not in {f["path"] for f in report["files"]}
    excluded = next(f for f in report["findings"] if f["rule_id"] == "INV-HUB-EXCLUDED")
    assert excluded["evidence"]["files"] == 1


def test_the_stand_ins_are_removed_after_the_scan(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_client_at(monkeypatch, hub, tmp_path / "hf")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    report = scan("hf://acme/many-shards", ScanOptions(hub=HubOptions(), hash_workers=1))
    assert report.target.hub is not None and report.target.hub.files_ranged == 200
    assert list(scratch.iterdir()) == []
    # The small files stay in the standard cache, where a later --download finds them.
    assert (Path(report.target.root) / "config.json").is_file()


@pytest.mark.parametrize(
    "name",
    ["", "../x", "/abs", "a//b", "a/./b", "a\\b", "a\x00b", "x" * 1001, 7, None],
)
def test_names_no_snapshot_can_hold_are_refused(name: object) -> None:
    assert _bad_name(name) is not None


def test_small_and_metadata_files_are_fetched_whole_the_rest_by_range() -> None:
    mib = 1 << 20
    listed = [
        Listed("training_args.bin", 5_000, None),
        Listed("tokenizer.json", 30 * mib, None),
        Listed("model.safetensors.index.json", 2 * mib, None),
        Listed("model.sig", 3 * mib, None),
        Listed("model-00001-of-00002.safetensors", 5 * mib, None),
        Listed("pytorch_model.bin", 200 * 1024, None),
        Listed("huge-tokenizer.json", 65 * mib, None),
    ]
    whole, ranged = split_by_fetch(listed, DEFAULT_LIMITS)
    assert {e.rel for e in whole} == {
        "training_args.bin", "tokenizer.json", "model.safetensors.index.json", "model.sig",
    }  # fmt: skip
    assert {e.rel for e in ranged} == {
        "model-00001-of-00002.safetensors", "pytorch_model.bin", "huge-tokenizer.json",
    }  # fmt: skip
    capped = DEFAULT_LIMITS.__class__(hub_fetch_total_max=mib)
    whole, _ = split_by_fetch(listed, capped)
    assert [e.rel for e in whole] == ["training_args.bin"]


# ---------------------------------------------------------------- the Hub's own record


def production(report: Report) -> Verdict:
    return evaluate(report, [default_policy_dir().parent / "production"], {})


def scan_whole(hub: HubServer, home: Path, monkeypatch: pytest.MonkeyPatch, target: str) -> Report:
    """A metadata-only scan that downloads every file (the demo's weights are 200 KiB)."""
    point_client_at(monkeypatch, hub, home)
    limits = Limits(hub_fetch_any_max=1 << 20)
    return scan(target, ScanOptions(hub=HubOptions(), hash_workers=1, limits=limits))


def test_every_file_matching_the_hubs_record_is_admitted_without_a_signature(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fixture Hub speaks plain HTTP on loopback; the real one is reached over HTTPS.
    monkeypatch.setattr(hub_records, "over_https", lambda target: True)
    report = scan_whole(hub, tmp_path / "hf", monkeypatch, "hf://acme/tiny-llama")
    repo = hub.repos["acme/tiny-llama"]
    assert {f.read for f in report.files} == {"whole"}
    records = {r.source: r for r in report.records}
    model_info = records["hub-model-info"]
    assert model_info.authenticated and model_info.commit == repo.sha
    assert model_info.consistent == tuple(sorted(repo.entries))
    assert model_info.files_compared == len(report.files)
    assert model_info.mismatched == model_info.not_compared == ()
    assert records["hub-cache-blob"].authenticated is False  # the download's own etags
    verdict = production(report)
    assert verdict.decision.value == "approve", verdict.reasons
    assert not report.signatures or not report.signatures.signatures
    levels = {r.rule: r.level for r in verdict.reasons}
    assert levels["POL-SIG-UNSIGNED"] == "warn" and "POL-SIG-REQUIRED" not in levels
    text = " ".join(render_terminal(report, width=400).split())
    assert (
        f"{len(report.files)} files match the Hub's model_info record of commit {repo.sha} "
        "(fetched over HTTPS in this run)"
    ) in text


def test_a_hub_reached_over_plain_http_is_not_authenticated(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = scan_whole(hub, tmp_path / "hf", monkeypatch, "hf://acme/tiny-llama")
    [model_info] = [r for r in report.records if r.source == "hub-model-info"]
    assert model_info.consistent and model_info.authenticated is False
    verdict = production(report)
    assert verdict.decision.value == "deny"
    assert "POL-SIG-REQUIRED" in {r.rule for r in verdict.reasons}
    assert "not over HTTPS" in render_terminal(report, width=400)


def test_a_served_file_differing_from_model_info_is_mismatched_and_denied(
    hub: HubServer, tmp_path: Path
) -> None:
    code, report, stderr = check(
        hub, tmp_path, "hf://acme/tampered-config", "--policy", "production"
    )
    assert code == 1, stderr
    [model_info] = [r for r in report["records"] if r["source"] == "hub-model-info"]
    assert model_info["mismatched"] == ["config.json"]
    assert "config.json" not in model_info["consistent"]
    assert "model.safetensors" in model_info["not_compared"]  # read by range only
    denied = {r["rule"] for r in report["verdict"]["reasons"] if r["level"] == "deny"}
    assert {"HSH-HUB-MISMATCH", "POL-SIG-REQUIRED"} <= denied


def test_a_commit_listing_more_files_than_the_bound_is_scanned_only_that_far(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_client_at(monkeypatch, hub, tmp_path / "hf")
    hub.reset_log()
    limits = Limits(hub_max_files=3)
    report = scan(
        "hf://acme/many-shards", ScanOptions(hub=HubOptions(), hash_workers=1, limits=limits)
    )
    [finding] = [f for f in report.findings if f.rule_id == "INV-TOO-MANY-FILES"]
    assert finding.severity.value == "critical"
    listed = finding.evidence["listed"]
    assert isinstance(listed, int) and listed > 200 and finding.evidence["scanned"] == 3
    names = [f.path for f in report.files]
    assert len(names) == 3 and names == sorted(names)
    # Only the files kept were read: no request for any shard past them.
    fetched = {r.path for r in hub.requests if "/resolve/" in r.path}
    assert all(any(name in path for name in names) for path in fetched), fetched
    verdict = evaluate(report, [default_policy_dir()], {})
    assert verdict.decision.value == "deny"
