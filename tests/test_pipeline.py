"""The whole scan: steps recorded honestly, crashes isolated, and the manifest equal to model_signing's."""

from __future__ import annotations

from pathlib import Path

import model_signing.hashing
import pytest
from model_signing._signing.signing import Payload

from fixtures.models import build_hf_cache_snapshot
from provscan import pipeline
from provscan.pipeline import STEPS, ScanOptions, scan
from provscan.report import StepStatus


def reference_root(path: Path) -> str:
    """Root digest as the OpenSSF reference implementation computes it."""
    config = model_signing.hashing.Config().use_file_serialization(hashing_algorithm="sha256")
    config = config.set_ignored_paths(
        paths=["model.sig"], ignore_git_paths=True
    ).set_allow_symlinks(True)
    manifest = config.hash(path)
    return Payload(manifest).statement.pb.subject[0].digest["sha256"]


def test_every_step_completes_on_the_demo(demo_model: Path) -> None:
    report = scan(str(demo_model), ScanOptions(hash_workers=2))
    assert [s.name for s in report.steps] == list(STEPS)
    assert all(s.status is StepStatus.COMPLETED for s in report.steps)
    assert all(f.sha256 and len(f.sha256) == 64 for f in report.files)


def test_manifest_root_equals_model_signing_for_a_directory(demo_model: Path) -> None:
    (demo_model / "sub").mkdir()
    (demo_model / "sub" / "extra.json").write_text("{}")
    (demo_model / "a.txt").write_text("sorts after a/ part-wise")
    report = scan(str(demo_model))
    assert report.manifest is not None
    assert report.manifest.root_digest == reference_root(demo_model)


def test_manifest_root_equals_model_signing_for_a_single_file(demo_model: Path) -> None:
    weights = demo_model / "model.safetensors"
    report = scan(str(weights))
    assert report.manifest is not None
    assert report.manifest.root_digest == reference_root(weights)


def test_manifest_root_equals_model_signing_for_an_hf_snapshot(
    demo_model: Path, tmp_path: Path
) -> None:
    snapshot = build_hf_cache_snapshot(tmp_path / "hub", "acme/tiny", "a" * 40, demo_model)
    report = scan(str(snapshot))
    assert report.manifest is not None
    # The snapshot is links into blobs/; the digests are of the linked content.
    assert (
        report.manifest.root_digest
        == reference_root(snapshot)
        == scan(str(demo_model)).manifest.root_digest
    )


def test_a_crashing_collector_is_a_failed_step_not_a_crash(
    demo_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline, "collect_model_facts", explode)
    report = scan(str(demo_model))
    step = report.step("model_facts")
    assert step is not None and step.status is StepStatus.FAILED
    assert step.reason == "RuntimeError: boom"
    assert report.model is None
    assert report.step("model_card").status is StepStatus.COMPLETED


def test_progress_callbacks_cover_every_byte(demo_model: Path) -> None:
    seen: list[int] = []
    total: list[int] = []
    scan(str(demo_model), ScanOptions(on_hash_start=total.append, on_hash_progress=seen.append))
    assert total == [sum(p.stat().st_size for p in demo_model.iterdir())]
    assert sum(seen) == total[0]


def test_parameters_are_recorded(demo_model: Path) -> None:
    report = scan(
        str(demo_model), ScanOptions(hash_workers=3, serialization="shards", shard_size=4096)
    )
    assert report.parameters.hash_workers == 3
    assert report.parameters.serialization == "shards" and report.parameters.shard_size == 4096
    assert report.parameters.limits["safetensors_header_max"] == 100_000_000
    assert report.manifest is not None and report.manifest.method == "shards"


@pytest.mark.parametrize("seed", range(12))
def test_garbage_under_model_file_names_never_crashes_a_step(tmp_path: Path, seed: int) -> None:
    """Hostile input is the normal case: random and mangled bytes give findings, not failures."""
    import random

    rng = random.Random(seed)
    names = [
        "model.safetensors",
        "pytorch_model.bin",
        "config.json",
        "README.md",
        "weights.npy",
        "data.pkl",
        "model.gguf",
        "model.onnx",
        "tokenizer_config.json",
        "model.h5",
        "archive.tar.gz",
    ]
    demo = (
        Path(__file__).resolve().parent.parent
        / "fixtures"
        / "demo"
        / "tiny-llama"
        / "model.safetensors"
    )
    seeds = [
        demo.read_bytes()[:4096],
        b"\x80\x04\x95",
        b"PK\x03\x04",
        b"\x93NUMPY\x01\x00",
        b"---\n",
        b"{",
        b"GGUF\x03\x00\x00\x00",
        b"\x1f\x8b\x08\x00",
        b"7z\xbc\xaf\x27\x1c",
        b"\x89HDF\r\n\x1a\n",
        b"\x08\x08\x12\x07pytorch",
        b"BZh91AY&SY",
        b"x\x9c",
    ]
    for name in names:
        data = bytearray(rng.choice(seeds) + rng.randbytes(rng.randrange(0, 2048)))
        for _ in range(rng.randrange(0, 8)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        (tmp_path / name).write_bytes(bytes(data))
    report = scan(str(tmp_path), ScanOptions(hash_workers=2))
    failed = [(s.name, s.reason) for s in report.steps if s.status is not StepStatus.COMPLETED]
    assert failed == []
    assert len(report.files) == len(names)


def test_thousands_of_findings_from_one_file_are_capped(tmp_path: Path) -> None:
    ops = b"\x80\x02" + b"".join(b"cmod%d\nname%d\n0" % (i, i) for i in range(500)) + b"N."
    (tmp_path / "x.pkl").write_bytes(ops)
    report = scan(str(tmp_path))
    unknown = [f for f in report.findings if f.rule_id == "SER-PICKLE-UNKNOWN-GLOBAL"]
    assert len(unknown) == 51
    summary = [f for f in unknown if "not_listed" in f.evidence]
    assert len(summary) == 1 and summary[0].evidence["not_listed"] == 450
    assert summary[0].severity.value == "high"
