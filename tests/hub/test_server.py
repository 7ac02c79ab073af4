"""Does the real huggingface_hub client work against fixtures/hub_server.py, faults included?

These tests pin down what the client (2.4.0) does on its own, so that provscan's Hub targets
can rely on it or must add their own checks: it never verifies sha256 (size only), it
retries 429 only on some calls, and after a dropped connection it resumes from the last whole
10 MiB chunk it received (a Range request), or starts again from zero.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs

import httpx2
import pytest
from huggingface_hub import (
    HfApi,
    constants,
    get_cached_repo_tree,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import hf_hub_url
from huggingface_hub.hf_api import RepoFile, RepoFolder
from safetensors.numpy import load_file

from fixtures.hub_repos import (
    FixtureRepo,
    MiB,
    all_repos,
    demo_files,
    demo_repo,
    git_blob_sha1,
    many_shard_repo,
    tampered_repo,
)
from fixtures.hub_server import HubServer, point_client_at

DEMO = "acme/tiny-llama"
SHARDS = "acme/many-shards"


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    flagged = demo_repo(
        "acme/flagged",
        security={"model.safetensors": {"status": "unsafe", "pickleImportScan": {"imports": []}}},
    )
    nested = FixtureRepo(
        "acme/nested", {"a/b/c.json": b"{}\n", "a/x.txt": b"x\n", "top.md": b"#\n"}
    )
    with HubServer([*all_repos(), flagged, nested]) as server:
        yield server


@pytest.fixture
def api(hub: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> HfApi:
    point_client_at(monkeypatch, hub, tmp_path / "hf")
    hub.reset_log()
    return HfApi()  # endpoint and cache come from the patched constants


@contextmanager
def serve(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *repos: FixtureRepo
) -> Iterator[HubServer]:
    """A private server for fault-injection tests, with the client pointed at it."""
    with HubServer(repos) as server:
        point_client_at(monkeypatch, server, tmp_path / "hf")
        yield server


def sha256_of(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def calls(hub: HubServer) -> list[tuple[str, str, int]]:
    return [(r.server, r.method, r.status) for r in hub.requests]


# -- pointing the client at the server ------------------------------------------------------


def test_a_child_process_needs_only_HF_ENDPOINT(hub: HubServer, tmp_path: Path) -> None:
    script = (
        "import json; from huggingface_hub import HfApi, hf_hub_download;"
        f"print(json.dumps([HfApi().model_info({DEMO!r}).sha, hf_hub_download({DEMO!r}, 'config.json')]))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env=env | hub.env(tmp_path / "hf"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    sha, path = json.loads(proc.stdout)
    assert sha == hub.repos[DEMO].sha
    assert path.startswith(str(tmp_path / "hf" / "hub"))


def test_HF_ENDPOINT_is_read_at_import_and_ENDPOINT_alone_is_a_trap(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    assert hub.endpoint != constants.ENDPOINT  # too late: read when huggingface_hub was imported
    monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
    assert not hf_hub_url(DEMO, "config.json").startswith(hub.endpoint)  # URL template is stale
    point_client_at(monkeypatch, hub, tmp_path)
    assert hf_hub_url(DEMO, "config.json") == f"{hub.endpoint}/{DEMO}/resolve/main/config.json"


# -- metadata ------------------------------------------------------------------------------


def test_model_info_reports_sha_siblings_card_and_security(api: HfApi, hub: HubServer) -> None:
    files = demo_files()
    info = api.model_info(DEMO, revision="main", files_metadata=True, securityStatus=True)
    assert info.sha == hub.repos[DEMO].sha
    siblings = {s.rfilename: s for s in info.siblings or []}
    assert sorted(siblings) == sorted(files)
    weights = siblings["model.safetensors"]
    assert weights.lfs is not None and weights.size == len(files["model.safetensors"])
    assert weights.lfs.sha256 == hashlib.sha256(files["model.safetensors"]).hexdigest()
    assert siblings["config.json"].lfs is None
    assert siblings["config.json"].blob_id == git_blob_sha1(files["config.json"])
    assert info.card_data is not None and info.card_data.license == "apache-2.0"
    assert info.gated is False and "license:apache-2.0" in (info.tags or [])
    assert info.security_repo_status == {"scansDone": True, "filesWithIssues": []}
    assert info.safetensors is not None and info.safetensors.total == 107_200
    assert info.config == {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}
    (request,) = hub.requests
    assert parse_qs(request.query) == {"securityStatus": ["true"], "blobs": ["true"]}

    flagged = api.model_info("acme/flagged", securityStatus=True).security_repo_status
    assert flagged == {
        "scansDone": True,
        "filesWithIssues": [{"path": "model.safetensors", "level": "unsafe"}],
    }


def test_model_info_expand_and_the_base_model_chain(api: HfApi) -> None:
    info = api.model_info("acme/finetune", expand=["baseModels", "cardData"])  # type: ignore[list-item]
    assert info.base_models == {"relation": "finetune", "models": [{"id": "acme/base"}]}
    assert info.siblings is None and info.sha is None
    chain, repo = [], "acme/finetune"
    while repo:  # the gated Llama stub still shows its card without a token, as on the Hub
        card = api.model_info(repo, token=False).card_data
        assert card is not None
        chain.append((repo, card.license))
        repo = card.base_model
    assert chain == [
        ("acme/finetune", "apache-2.0"),
        ("acme/base", "llama3.1"),
        ("meta-llama/Llama-3.1-8B", "llama3.1"),
    ]
    assert api.model_info("meta-llama/Llama-3.1-8B").gated == "manual"


def test_revisions_by_tag_and_sha_and_the_missing_ones(api: HfApi, hub: HubServer) -> None:
    sha = hub.repos[DEMO].sha
    assert api.model_info(DEMO, revision="v1.0").sha == sha
    assert api.model_info(DEMO, revision=sha).sha == sha
    with pytest.raises(RevisionNotFoundError):
        api.model_info(DEMO, revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(DEMO, "config.json", revision="0" * 40)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("acme/missing")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("acme/missing", "config.json")
    refs = api.list_repo_refs(DEMO)
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", sha)]
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1.0", sha)]
    assert [c.commit_id for c in api.list_repo_commits(DEMO)] == [sha]


def test_tree_listing_paginates_and_paths_info(api: HfApi, hub: HubServer) -> None:
    repo = hub.repos[SHARDS]
    tree = [f for f in api.list_repo_tree(SHARDS, recursive=True) if isinstance(f, RepoFile)]
    assert len(tree) == 203 and len(hub.requests) == 1  # 1000 entries a page
    for f in tree:
        entry = repo.entries[f.path]
        assert f.size == entry.size and f.blob_id == entry.blob_id and f.xet_hash is None
        assert (f.lfs.sha256 if f.lfs else None) == entry.sha256
    hub.reset_log()
    expanded = list(api.list_repo_tree(SHARDS, recursive=True, expand=True))
    assert len(expanded) == 203 and len(hub.requests) == 5  # 50 a page, Link: rel="next"
    assert {f.last_commit.oid for f in expanded if f.last_commit} == {repo.sha}

    assert sorted(f.path for f in api.list_repo_tree("acme/nested")) == ["a", "top.md"]
    assert sorted(f.path for f in api.list_repo_tree("acme/nested", "a")) == ["a/b", "a/x.txt"]
    deep = api.list_repo_tree("acme/nested", recursive=True)
    assert sorted((type(f).__name__, f.path) for f in deep) == [
        ("RepoFile", "a/b/c.json"),
        ("RepoFile", "a/x.txt"),
        ("RepoFile", "top.md"),
        ("RepoFolder", "a"),
        ("RepoFolder", "a/b"),
    ]
    infos = api.get_paths_info("acme/nested", ["top.md", "a", "missing"])
    assert [(type(i), i.path) for i in infos] == [(RepoFile, "top.md"), (RepoFolder, "a")]
    security = next(
        f for f in api.list_repo_tree("acme/flagged", expand=True) if f.path == "model.safetensors"
    )
    assert isinstance(security, RepoFile) and security.security is not None
    assert security.security["status"] == "unsafe" and not security.security["safe"]


def test_safetensors_metadata_of_200_shards_reads_only_headers(api: HfApi, hub: HubServer) -> None:
    repo = hub.repos[SHARDS]
    repo_size = sum(e.size for e in repo.entries.values())
    meta = api.get_safetensors_metadata(SHARDS)
    assert meta.sharded and len(meta.files_metadata) == 200 and len(meta.weight_map) == 800
    assert meta.parameter_count == {"F16": 200 * 4 * 512 * 1024}
    requests = hub.requests
    ranged = [r for r in requests if r.server == "cdn"]
    # 2 HEADs (file_exists x2), HEAD + GET of the index, then per shard: 302 on /resolve + 206 on the CDN
    assert len(requests) == 4 + 2 * 200
    assert len(ranged) == 200 and {(r.range, r.status) for r in ranged} == {("bytes=0-100000", 206)}
    assert hub.bytes_sent < 200 * 100_001 + 100_000 < repo_size / 40  # 20 MB of 800 MiB


# -- downloads -----------------------------------------------------------------------------


def test_downloads_land_in_the_cache_named_by_their_hash(
    api: HfApi, hub: HubServer, tmp_path: Path
) -> None:
    files, sha = demo_files(), hub.repos[DEMO].sha
    config = Path(hf_hub_download(DEMO, "config.json"))
    assert config.resolve().name == git_blob_sha1(files["config.json"])
    assert calls(hub) == [("hub", "HEAD", 200), ("hub", "GET", 200)]
    hub.reset_log()
    weights = Path(hf_hub_download(DEMO, "model.safetensors", token=hub.token))
    assert (
        weights.resolve().name
        == sha256_of(weights)
        == hashlib.sha256(files["model.safetensors"]).hexdigest()
    )
    assert weights.parent.name == sha and weights.resolve().parent.name == "blobs"
    assert calls(hub) == [("hub", "HEAD", 302), ("cdn", "GET", 200)]
    head, get = hub.requests
    assert (
        head.authorization == f"Bearer {hub.token}" and get.authorization is None
    )  # auth stays on the Hub
    cache = tmp_path / "hf" / "hub" / "models--acme--tiny-llama"
    assert (cache / "refs" / "main").read_text() == sha

    tagged = hf_hub_download(DEMO, "config.json", revision="v1.0")
    assert (cache / "refs" / "v1.0").read_text() == sha and Path(tagged).parent.name == sha
    assert hf_hub_download(DEMO, "config.json", revision=sha) == tagged


def test_a_lazily_served_shard_is_the_file_its_metadata_describes(
    api: HfApi, hub: HubServer
) -> None:
    name = "model-00007-of-00200.safetensors"
    path = hf_hub_download(SHARDS, name)
    assert sha256_of(path) == hub.repos[SHARDS].entries[name].sha256
    tensors = load_file(path)
    assert sorted(tensors) == [f"model.layers.6.mlp.w{j}.weight" for j in range(4)]
    assert {(t.shape, str(t.dtype)) for t in tensors.values()} == {((512, 1024), "float16")}


def test_snapshot_download_filters_and_writes_the_tree_cache(
    api: HfApi, hub: HubServer, tmp_path: Path
) -> None:
    sha = hub.repos[DEMO].sha
    folder = Path(snapshot_download(DEMO, allow_patterns=["*.json", "README.md"]))
    assert folder.name == sha
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        p for p in demo_files() if p.endswith(".json") or p == "README.md"
    )
    tree = tmp_path / "hf" / "hub" / "models--acme--tiny-llama" / "trees" / f"{sha}.json"
    cached = json.loads(tree.read_text())
    assert sorted(cached["files"]) == sorted(demo_files())  # the whole tree, not only what matched
    assert (
        cached["files"]["model.safetensors"]["lfs_sha256"]
        == hub.repos[DEMO].entries["model.safetensors"].sha256
    )
    hub.reset_log()
    assert len(get_cached_repo_tree(DEMO, revision=sha)) == len(demo_files())
    assert hub.requests == []  # read offline


# -- faults --------------------------------------------------------------------------------


def test_gated_repo_needs_a_granted_token(api: HfApi, hub: HubServer) -> None:
    assert api.model_info("acme/gated", token=False).gated == "manual"  # metadata stays public
    with pytest.raises(GatedRepoError) as anonymous:
        hf_hub_download("acme/gated", "config.json", token=False)
    assert anonymous.value.response.status_code == 401
    with pytest.raises(GatedRepoError) as ungranted:
        hf_hub_download("acme/gated", "config.json", token=hub.ungranted_token)
    assert ungranted.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as bad_token:
        hf_hub_download("acme/gated", "config.json", token="hf_wrong")
    assert bad_token.value.response.status_code == 401
    assert not isinstance(bad_token.value, RepositoryNotFoundError | GatedRepoError)
    assert Path(hf_hub_download("acme/gated", "config.json", token=hub.token)).is_file()


def test_the_client_accepts_tampered_bytes_of_the_right_size(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    short = tampered_repo("acme/short", tampered={"model.safetensors": b"short"})
    with serve(monkeypatch, tmp_path, tampered_repo(), short) as hub:
        recorded = hub.repos["acme/tampered"].entries["model.safetensors"].sha256
        path = Path(hf_hub_download("acme/tampered", "model.safetensors"))
        assert (
            path.resolve().name == recorded != sha256_of(path)
        )  # named by the claim, not the bytes
        result = HfApi().verify_repo_checksums("acme/tampered")
        assert [(m["path"], m["algorithm"]) for m in result.mismatches] == [
            ("model.safetensors", "sha256")
        ]
        with pytest.raises(OSError, match="Consistency check failed"):  # only the size is checked
            hf_hub_download("acme/short", "model.safetensors")
        assert not list((tmp_path / "hf" / "hub" / "models--acme--short").rglob("*.safetensors"))


def test_429_is_retried_by_downloads_and_listings_but_not_by_model_info(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with serve(monkeypatch, tmp_path, demo_repo("acme/busy", rate_limit_first_n=1)) as hub:
        assert Path(hf_hub_download("acme/busy", "config.json")).is_file()
        assert calls(hub) == [("hub", "HEAD", 429), ("hub", "HEAD", 200), ("hub", "GET", 200)]
        hub.reset_log()
        with pytest.raises(HfHubHTTPError) as limited:
            HfApi().model_info("acme/busy")
        assert limited.value.response.status_code == 429 and calls(hub) == [("hub", "GET", 429)]
        hub.reset_log()
        assert len(list(HfApi().list_repo_tree("acme/busy"))) == len(
            demo_files()
        )  # waits Retry-After + 1 s
        assert calls(hub) == [("hub", "GET", 429), ("hub", "GET", 200)]


def test_a_dropped_download_restarts_or_resumes_by_10_MiB_chunk(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    chunk = constants.DOWNLOAD_CHUNK_SIZE  # bytes reach the file 10 MiB at a time
    big = many_shard_repo("acme/big", shards=1, shard_bytes=12 * MiB, drop_after_bytes=11 * MiB)
    small = demo_repo("acme/flaky", drop_after_bytes=1000)
    with serve(monkeypatch, tmp_path, big, small) as hub:
        path = hf_hub_download("acme/flaky", "model.safetensors")  # 1 s pause before the retry
        size = len(demo_files()["model.safetensors"])
        assert sha256_of(path) == hub.repos["acme/flaky"].entries["model.safetensors"].sha256
        gets = [(r.range, r.status, r.bytes_sent) for r in hub.requests if r.method == "GET"]
        assert gets == [(None, 200, 1000), (None, 200, size)]  # under 10 MiB: from the start
        hub.reset_log()
        name = "model-00001-of-00001.safetensors"
        entry = hub.repos["acme/big"].entries[name]
        assert sha256_of(hf_hub_download("acme/big", name)) == entry.sha256
        gets = [(r.range, r.status, r.bytes_sent) for r in hub.requests if r.method == "GET"]
        assert gets == [(None, 200, 11 * MiB), (f"bytes={chunk}-", 206, entry.size - chunk)]


@pytest.mark.slow
def test_a_download_that_keeps_dropping_fails_after_five_retries(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dead = demo_repo("acme/dead", drop_after_bytes=0, drop_times=1_000)
    with serve(monkeypatch, tmp_path, dead) as hub:
        with pytest.raises(httpx2.RemoteProtocolError, match="peer closed connection"):
            hf_hub_download("acme/dead", "model.safetensors")  # about 5 s: 1 s between tries
        assert [r.status for r in hub.requests if r.method == "GET"] == [200] * 6
        repo = tmp_path / "hf" / "hub" / "models--acme--dead"
        assert not [p for p in repo.rglob("*") if p.is_file() and p.parent.name != "refs"]


def test_a_slow_hub_times_out_when_asked_to(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with serve(monkeypatch, tmp_path, demo_repo("acme/slow", slow=0.5)) as hub:
        with pytest.raises(httpx2.TimeoutException):
            HfApi().model_info("acme/slow", timeout=0.1)
        assert HfApi().model_info("acme/slow").sha == hub.repos["acme/slow"].sha
