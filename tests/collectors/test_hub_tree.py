"""HF downloads against the commit's cached tree listing (trees/<commit>.json): changed,
added and not-downloaded files, offline. The listings are written by huggingface_hub's own
tree-cache writer, as snapshot_download writes them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fixtures.models import build_hf_cache_snapshot
from provscan.collectors.hub_tree import read_tree_cache
from provscan.pipeline import scan

REVISION = "0123456789abcdef0123456789abcdef01234567"


def snapshot_with_tree(demo_model: Path, tmp_path: Path, **kw: dict[str, bytes]) -> Path:
    return build_hf_cache_snapshot(
        tmp_path / "hub", "acme/tiny-llama", REVISION, demo_model, tree_cache=True, **kw
    )


def hub_findings(snapshot: Path) -> list[tuple[str, str | None, str]]:
    report = scan(str(snapshot))
    return sorted(
        (f.rule_id, f.location.path if f.location else None, f.severity.value)
        for f in report.findings
        if f.rule_id.startswith("HSH-HUB")
    )


def test_a_complete_untouched_snapshot_matches_its_listing(
    demo_model: Path, tmp_path: Path
) -> None:
    snapshot = snapshot_with_tree(demo_model, tmp_path)
    assert (snapshot.parent.parent / "trees" / f"{REVISION}.json").is_file()
    assert hub_findings(snapshot) == []


def test_a_file_added_to_the_snapshot_is_not_the_commits(demo_model: Path, tmp_path: Path) -> None:
    snapshot = snapshot_with_tree(demo_model, tmp_path)
    (snapshot / "modeling_extra.py").write_text("import os\n")
    assert ("HSH-HUB-EXTRA", "modeling_extra.py", "high") in hub_findings(snapshot)


def test_a_link_replaced_by_an_edited_copy_differs_from_the_listing(
    demo_model: Path, tmp_path: Path
) -> None:
    """A plain file in place of the snapshot link escapes the blob-name check, not the listing."""
    snapshot = snapshot_with_tree(demo_model, tmp_path)
    link = snapshot / "config.json"
    text = link.read_text().replace('"num_hidden_layers": 2', '"num_hidden_layers": 3')
    link.unlink()
    link.write_text(text)
    assert ("HSH-HUB-MISMATCH", "config.json", "critical") in hub_findings(snapshot)


def test_a_changed_weight_is_reported_once(demo_model: Path, tmp_path: Path) -> None:
    snapshot = snapshot_with_tree(demo_model, tmp_path)
    blob = (snapshot / "model.safetensors").resolve()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    assert hub_findings(snapshot) == [("HSH-HUB-MISMATCH", "model.safetensors", "critical")]


def test_files_of_the_commit_not_downloaded_are_named(demo_model: Path, tmp_path: Path) -> None:
    snapshot = snapshot_with_tree(
        demo_model, tmp_path, also_on_hub={"model-00002-of-00002.safetensors": b"x" * 10}
    )
    report = scan(str(snapshot))
    [partial] = [f for f in report.findings if f.rule_id == "HSH-HUB-PARTIAL"]
    assert partial.severity.value == "low"
    assert "model-00002-of-00002.safetensors" in partial.message
    assert partial.evidence["absent"] == ["model-00002-of-00002.safetensors"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"format_version": 7, "files": {}}', "format_version 1"),
        (b'{"format_version": 1, "files": {"a": {"size": "1"}}}', "lacks an integer size"),
    ],
    ids=["garbage", "unknown-version", "bad-entry"],
)
def test_an_unusable_listing_is_reported_not_trusted(
    demo_model: Path, tmp_path: Path, content: bytes, problem: str
) -> None:
    snapshot = snapshot_with_tree(demo_model, tmp_path)
    (snapshot.parent.parent / "trees" / f"{REVISION}.json").write_bytes(content)
    report = scan(str(snapshot))
    [unverified] = [f for f in report.findings if f.rule_id == "HSH-HUB-UNVERIFIED"]
    assert problem in unverified.message and REVISION in unverified.message


def test_an_oversized_listing_is_refused_before_parsing(tmp_path: Path) -> None:
    listing = tmp_path / "tree.json"
    listing.write_bytes(b'{"format_version": 1, "files": {}}' + b" " * 100)
    assert read_tree_cache(listing, max_bytes=64) == "larger than 64 bytes"


def test_a_local_dir_download_is_checked_against_its_listing(
    demo_model: Path, tmp_path: Path
) -> None:
    from huggingface_hub._local_folder import write_download_metadata
    from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache

    from provscan.collectors.hub_hashes import git_blob_sha1

    local = tmp_path / "local"
    local.mkdir()
    entries = {}
    for file in sorted(p for p in demo_model.iterdir() if p.is_file()):
        data = file.read_bytes()
        (local / file.name).write_bytes(data)
        etag = git_blob_sha1(data)
        write_download_metadata(
            local_dir=local, filename=file.name, commit_hash=REVISION, etag=etag
        )
        entries[file.name] = TreeCacheEntry(len(data), etag)
    entries["tokenizer.model"] = TreeCacheEntry(3, "ab" * 20)  # on the Hub, not downloaded
    write_tree_cache(str(local / ".cache" / "huggingface"), REVISION, entries)
    (local / "notes.txt").write_text("mine\n")
    found = hub_findings(local)
    assert ("HSH-HUB-EXTRA", "notes.txt", "medium") in found
    assert ("HSH-HUB-PARTIAL", None, "low") in found
    assert not [f for f in found if f[0] == "HSH-HUB-MISMATCH"]
    # What huggingface_hub wrote is what provscan reads.
    listing = local / ".cache" / "huggingface" / "trees" / f"{REVISION}.json"
    assert json.loads(listing.read_text())["format_version"] == 1
    assert os.path.getsize(listing) > 0


def test_each_local_record_is_reported_unauthenticated_with_what_it_showed(
    demo_model: Path, tmp_path: Path
) -> None:
    """A plain file in place of a snapshot link: no blob name covers it (not linked), and the
    cached listing, another local record, shows it differs."""
    snapshot = snapshot_with_tree(demo_model, tmp_path)
    link = snapshot / "config.json"
    text = link.read_text().replace('"num_hidden_layers": 2', '"num_hidden_layers": 3')
    link.unlink()
    link.write_text(text)
    report = scan(str(snapshot))
    [not_linked] = [f for f in report.findings if f.rule_id == "HSH-HUB-NOT-LINKED"]
    assert not_linked.location is not None and not_linked.location.path == "config.json"
    assert "cached tree listing, itself a local record" in not_linked.message
    records = {r.source: r for r in report.records}
    assert set(records) == {"hub-cache-blob", "hub-tree-cache"}
    assert not any(r.authenticated for r in report.records)
    assert records["hub-cache-blob"].not_compared == ("config.json",)
    assert records["hub-tree-cache"].mismatched == ("config.json",)
    assert records["hub-tree-cache"].commit == REVISION
    assert "model.safetensors" in records["hub-tree-cache"].consistent


def test_an_unusable_listing_compares_nothing(demo_model: Path, tmp_path: Path) -> None:
    snapshot = snapshot_with_tree(demo_model, tmp_path)
    (snapshot.parent.parent / "trees" / f"{REVISION}.json").write_bytes(b"{not json")
    [tree] = [r for r in scan(str(snapshot)).records if r.source == "hub-tree-cache"]
    assert tree.files_compared == 0 and "config.json" in tree.not_compared
