"""Does the hashing collector give model_signing's manifest and sound per-file digests?"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from provscan.collectors.hashing import (
    DEFAULT_IGNORE_PATHS,
    hash_files,
    is_ignored,
    manifest_to_oms_predicate,
    planned_read_bytes,
    shard_ranges,
)
from provscan.files import ScanFile

BUFFER = 4096  # small, so that several files span many reads


def _write_model(root: Path) -> Path:
    model = root / "my-model"
    (model / "a").mkdir(parents=True)
    (model / "sub" / "deeper").mkdir(parents=True)
    (model / ".git").mkdir()
    (model / "a.txt").write_bytes(b"x")  # "a.txt" > "a/b" as strings, < as path parts
    (model / "a" / "b").write_bytes(b"yy")
    (model / "a-b").write_bytes(b"dash")
    (model / "empty").write_bytes(b"")
    (model / "big.bin").write_bytes(os.urandom(3 * BUFFER + 123))
    (model / "sub" / "deeper" / "w.safetensors").write_bytes(os.urandom(2500))
    (model / "exact.bin").write_bytes(os.urandom(2000))  # ends on a shard boundary at 1000
    (model / "sub" / "modèle-ü.json").write_bytes('{"k": "ü"}'.encode())
    (model / ".git" / "HEAD").write_bytes(b"ref: refs/heads/main\n")
    (model / ".gitattributes").write_bytes(b"*.bin filter=lfs\n")
    (model / "model.sig").write_bytes(b"{}")
    return model


def _scan_files(model: Path) -> list[ScanFile]:
    files = []
    for path in sorted(model.rglob("*")):
        if path.is_file():
            rel = path.relative_to(model).as_posix()
            files.append(
                ScanFile(
                    rel=rel, path=path, size=path.stat().st_size, in_manifest=not is_ignored(rel)
                )
            )
    return files


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    return _write_model(tmp_path)


def _reference(model: Path, method: str, shard_size: int) -> tuple[str, list, dict]:
    """model_signing's root digest, resource descriptors and predicate for `model`."""
    pytest.importorskip("OpenSSL")  # model_signing 1.1.1 imports it without declaring it
    from google.protobuf import json_format
    from model_signing import hashing as ms_hashing
    from model_signing._signing.signing import Payload

    config = ms_hashing.Config()
    if method == "files":
        config.use_file_serialization(hashing_algorithm="sha256")
    else:
        config.use_shard_serialization(hashing_algorithm="sha256", shard_size=shard_size)
    # allow_symlinks must be set on Config: Config.hash overrides the serializer's own flag.
    config.set_allow_symlinks(True).set_ignored_paths(paths=["model.sig"], ignore_git_paths=True)
    manifest = config.hash(model)
    statement = json_format.MessageToDict(Payload(manifest).statement.pb)
    root = statement["subject"][0]["digest"]["sha256"]
    assert statement["subject"][0]["name"] == model.name
    return root, list(manifest.resource_descriptors()), statement["predicate"]


@pytest.mark.parametrize(("method", "shard_size"), [("files", 1_000_000_000), ("shards", 1000)])
def test_manifest_matches_model_signing(model: Path, method: str, shard_size: int) -> None:
    root, descriptors, predicate = _reference(model, method, shard_size)
    result = hash_files(
        _scan_files(model),
        model_name=model.name,
        workers=3,
        buffer_size=BUFFER,
        method=method,
        shard_size=shard_size,
    ).value
    manifest = result.manifest
    assert result.complete
    assert manifest.root_digest == root
    assert [(r.name, r.algorithm, r.digest) for r in manifest.resources] == [
        (d.identifier, d.digest.algorithm, d.digest.digest_hex) for d in descriptors
    ]
    names = [r.name for r in manifest.resources]
    assert names.index("a/b" if method == "files" else "a/b:0:2") < names.index(
        "a.txt" if method == "files" else "a.txt:0:1"
    )
    assert any(n.startswith("empty") for n in names) == (method == "files")

    ours = manifest_to_oms_predicate(manifest)
    # model_signing lists ignore_paths in frozenset order; the set is what is signed.
    theirs_serialization = dict(predicate["serialization"])
    theirs_serialization["ignore_paths"] = sorted(theirs_serialization["ignore_paths"])
    assert ours["serialization"] == theirs_serialization  # shard_size: 1000 == 1000.0
    assert ours["resources"] == predicate["resources"]
    assert list(ours) == ["serialization", "resources"]


def test_single_file_target_is_named_dot(model: Path) -> None:
    target = model / "big.bin"
    pytest.importorskip("OpenSSL")
    from model_signing import hashing as ms_hashing

    reference = ms_hashing.Config().set_allow_symlinks(True).hash(target)
    files = [ScanFile(rel="big.bin", path=target, size=target.stat().st_size)]
    manifest = hash_files(
        files, model_name=target.name, workers=1, buffer_size=BUFFER, single_file_target=True
    ).value.manifest
    [descriptor] = reference.resource_descriptors()
    assert [(r.name, r.digest) for r in manifest.resources] == [
        (descriptor.identifier, descriptor.digest.digest_hex)
    ]
    assert manifest.model_name == reference.model_name == "big.bin"


def test_digests_are_whole_file_sha256_for_every_file(model: Path) -> None:
    files = _scan_files(model)
    for method in ("files", "shards"):
        result = hash_files(
            files, model_name="m", workers=2, buffer_size=BUFFER, method=method, shard_size=1000
        ).value
        assert result.digests == {
            f.rel: hashlib.sha256(f.path.read_bytes()).hexdigest() for f in files
        }
        # ignored paths are hashed but stay out of the manifest
        assert ".git/HEAD" in result.digests and "model.sig" in result.digests
        assert not any(r.name.startswith((".git", "model.sig")) for r in result.manifest.resources)


def test_is_ignored_matches_part_wise() -> None:
    assert is_ignored(".git/objects/ab")
    assert is_ignored("model.sig") and is_ignored(".gitattributes")
    assert not is_ignored(".github2/x") and not is_ignored("sub/.git/HEAD")
    assert not is_ignored("model.sig.bak")
    assert is_ignored("extra/x.bin", [*DEFAULT_IGNORE_PATHS, "extra/"])


def test_shard_ranges_match_model_signing() -> None:
    assert shard_ranges(0, 10) == []
    assert shard_ranges(10, 10) == [(0, 10)]
    assert shard_ranges(25, 10) == [(0, 10), (10, 20), (20, 25)]


def test_unreadable_files_are_findings_and_incomplete(model: Path, tmp_path: Path) -> None:
    files = _scan_files(model)
    missing = ScanFile(rel="gone.bin", path=tmp_path / "gone.bin", size=10)
    directory = ScanFile(rel="a-dir", path=model / "sub", size=0)
    unreadable = [missing, directory]
    if hasattr(os, "mkfifo"):  # a FIFO must be refused, not block the open forever
        os.mkfifo(tmp_path / "fifo")
        unreadable.append(ScanFile(rel="fifo", path=tmp_path / "fifo", size=0))
    locked = model / "locked.bin"
    locked.write_bytes(b"secret")
    locked.chmod(0)
    if not os.access(locked, os.R_OK):  # root can still read it; then it proves nothing
        unreadable.append(ScanFile(rel="locked.bin", path=locked, size=6))
    collected = hash_files([*files, *unreadable], model_name="m", workers=2, buffer_size=BUFFER)
    result = collected.value
    assert not result.complete
    located = {f.location.path for f in collected.findings if f.location}
    assert located == {u.rel for u in unreadable}
    for finding in collected.findings:
        assert finding.rule_id == "HSH-UNREADABLE" and finding.severity.value == "critical"
        assert finding.location is not None and finding.location.path in finding.message
    assert "No such file or directory" in collected.findings[0].message
    assert set(result.digests) == {f.rel for f in files}
    assert {r.name for r in result.manifest.resources}.isdisjoint({u.rel for u in unreadable})


def test_file_that_changes_while_hashed_is_detected(model: Path) -> None:
    target = model / "big.bin"
    files = [ScanFile(rel="big.bin", path=target, size=target.stat().st_size)]
    appended = threading.Event()

    def grow(_: int) -> None:
        if not appended.is_set():
            appended.set()
            with target.open("ab") as handle:
                handle.write(b"more")

    collected = hash_files(files, model_name="m", workers=1, buffer_size=BUFFER, progress=grow)
    assert not collected.value.complete and collected.value.digests == {}
    assert "changed while being hashed" in collected.findings[0].message


def test_file_whose_size_differs_from_the_listing_is_detected(model: Path) -> None:
    target = model / "big.bin"
    files = [ScanFile(rel="big.bin", path=target, size=target.stat().st_size + 1)]
    collected = hash_files(files, model_name="m", workers=1, buffer_size=BUFFER)
    assert not collected.value.complete
    assert "size changed since it was listed" in collected.findings[0].message


@pytest.mark.parametrize("method", ["files", "shards"])
def test_progress_reports_every_byte_read(model: Path, method: str) -> None:
    files = _scan_files(model)
    seen: list[int] = []
    lock = threading.Lock()

    def progress(count: int) -> None:
        with lock:
            seen.append(count)

    hash_files(
        files,
        model_name="m",
        workers=4,
        buffer_size=BUFFER,
        method=method,
        shard_size=1000,
        progress=progress,
    )
    total = sum(f.size for f in files)
    planned = planned_read_bytes(files, method=method, shard_size=1000)
    assert sum(seen) == planned
    assert max(seen) <= BUFFER
    if method == "files":
        assert planned == total
    else:  # files of several shards are read twice: whole-file digest plus shards
        multi = sum(f.size for f in files if f.in_manifest and f.size > 1000)
        assert planned == total + multi


@pytest.mark.parametrize("method", ["files", "shards"])
def test_worker_count_does_not_change_results(model: Path, method: str) -> None:
    files = _scan_files(model)
    one = hash_files(
        files,
        model_name="m",
        workers=1,
        buffer_size=BUFFER,
        method=method,
        shard_size=1000,
    )
    four = hash_files(
        files,
        model_name="m",
        workers=4,
        buffer_size=7,
        method=method,
        shard_size=1000,
    )
    assert one == four


def test_bad_parameters_are_refused(model: Path) -> None:
    with pytest.raises(ValueError):
        hash_files(_scan_files(model), model_name="m", workers=0, buffer_size=BUFFER)
