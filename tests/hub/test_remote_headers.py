"""Does provscan read safetensors headers off the Hub with range requests, and refuse bad ones?

Against fixtures/hub_server.py: the 200-shard repo's headers in under 0.1% of its bytes and at most
two requests a shard (the HEAD on /resolve and one ranged GET on the CDN), the token kept off the
CDN, and a readable RemoteError for each file that is short, oversized, not safetensors, missing or
gated. A header given back is what provscan's own reader accepts from a file of that size.
"""

from __future__ import annotations

import contextlib
import pickle
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest
from huggingface_hub.errors import HfHubHTTPError
from safetensors import safe_open

from fixtures.hub_repos import (
    FixtureRepo,
    all_repos,
    demo_files,
    git_blob_sha1,
    read_content,
    size_of,
)
from fixtures.hub_server import HubServer, point_client_at
from provscan.collectors.serialization.safetensors.header import read_header
from provscan.collectors.serialization.safetensors.scan import scan_safetensors
from provscan.files import ScanFile
from provscan.hub.ranges import (
    RemoteError,
    RemoteHeader,
    _http_reason,
    fetch_safetensors_headers,
)
from provscan.limits import DEFAULT_LIMITS

SHARDS, DEMO = "acme/many-shards", "acme/tiny-llama"
MAX = DEFAULT_LIMITS.safetensors_header_max


def prefixed(n: int, body: bytes = b"") -> bytes:
    return n.to_bytes(8, "little") + body


ODD_FILES = {
    "huge.safetensors": prefixed(2**40, b"{}" * 100),  # claims a 1 TiB header
    "over.safetensors": prefixed(1001, b"{" + b" " * 999 + b"}" + bytes(64)),
    "tiny.safetensors": b"\x01\x02\x03",
    "past-end.safetensors": prefixed(100, b"{}"),
    "array.safetensors": prefixed(6, b"[1, 2]"),
    "latin1.safetensors": prefixed(10, '{"é": 1}  '.encode("latin-1")),
    "pytorch_model.bin": pickle.dumps({"weight": [0.0] * 64}, protocol=2),
    "zipped.bin": b"PK\x03\x04\x14\x00\x00\x00" + bytes(200),  # torch.save's zip layout
}


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    with HubServer([*all_repos(), FixtureRepo("acme/odd", ODD_FILES)]) as server:
        yield server


@pytest.fixture
def client(hub: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> HubServer:
    point_client_at(monkeypatch, hub, tmp_path / "hf")  # no token unless a test passes one
    hub.reset_log()
    return hub


def fetch(hub: HubServer, repo_id: str, paths: list[str], **kw: Any) -> dict[str, Any]:
    sha = hub.repos[repo_id].sha
    kw.setdefault("max_header", MAX)
    return fetch_safetensors_headers(repo_id, sha, paths, endpoint=hub.endpoint, **kw)


def error(hub: HubServer, repo_id: str, path: str, **kw: Any) -> RemoteError:
    (result,) = fetch(hub, repo_id, [path], **kw).values()
    assert isinstance(result, RemoteError), result
    return result


def test_the_200_shard_headers_cost_under_a_thousandth_of_the_repo(client: HubServer) -> None:
    repo = client.repos[SHARDS]
    shards = [p for p in repo.files if p.endswith(".safetensors")]
    results = fetch(client, SHARDS, shards, token=client.token)
    assert len(shards) == 200 and list(results) == shards
    for path, got in results.items():
        assert isinstance(got, RemoteHeader), got
        content = repo.served(path)
        n = int.from_bytes(read_content(content, 0, 8), "little")
        assert got.length_prefix == n and got.raw == read_content(content, 0, 8 + n)
        assert got.file_size == size_of(content) and not got.range_ignored
    requests, repo_size = client.requests, sum(e.size for e in repo.entries.values())
    assert client.bytes_sent < repo_size / 1000
    assert len(requests) <= 2 * len(shards)
    assert sum(r.requests for r in results.values()) == len(requests)
    assert sum(r.bytes_downloaded for r in results.values()) == client.bytes_sent
    heads = [r for r in requests if r.method == "HEAD"]
    gets = [r for r in requests if r.method == "GET"]
    assert {(r.server, r.status) for r in heads} == {("hub", 302)}
    assert {(r.server, r.status) for r in gets} == {("cdn", 206)}
    assert {r.range for r in gets} == {"bytes=0-2047"}  # 1/2048 of a 4 MiB shard: one GET
    assert {r.authorization for r in heads} == {f"Bearer {client.token}"}
    assert {r.authorization for r in gets} == {None}  # the token never reaches the CDN


def test_first_read_8_reads_exactly_the_header_in_two_gets(client: HubServer) -> None:
    repo = client.repos[SHARDS]
    shards = [p for p in repo.files if p.endswith(".safetensors")][:20]
    results = fetch(client, SHARDS, shards, first_read=8)
    lengths = [int.from_bytes(read_content(repo.files[p], 0, 8), "little") for p in shards]
    assert client.bytes_sent == sum(8 + n for n in lengths)
    assert {r.requests for r in results.values()} == {3}
    ranges = sorted(r.range or "" for r in client.requests if r.method == "GET")
    assert ranges == sorted(["bytes=0-7"] * 20 + [f"bytes=8-{7 + n}" for n in lengths])


def test_a_header_longer_than_the_first_read_takes_a_second_get(client: HubServer) -> None:
    weights = demo_files()["model.safetensors"]
    (got,) = fetch(client, DEMO, ["model.safetensors"]).values()
    assert isinstance(got, RemoteHeader) and got.raw == weights[: 8 + got.length_prefix]
    first = len(weights) // 2048
    assert [r.range for r in client.requests if r.method == "GET"] == [
        f"bytes=0-{first - 1}",
        f"bytes={first}-{got.length_prefix + 7}",
    ]
    assert got.bytes_downloaded == client.bytes_sent == 8 + got.length_prefix


def test_an_oversized_declared_length_is_refused_after_one_get(client: HubServer) -> None:
    huge = error(client, "acme/odd", "huge.safetensors")
    assert huge.code == "HeaderTooLarge" and str(2**40) in huge.reason and str(MAX) in huge.reason
    assert [r.method for r in client.requests] == ["HEAD", "GET"] and huge.requests == 2
    client.reset_log()
    over = error(client, "acme/odd", "over.safetensors", max_header=1000)
    assert over.code == "HeaderTooLarge" and "1001" in over.reason and "1000" in over.reason
    assert [r.range for r in client.requests if r.method == "GET"] == ["bytes=0-7"]
    within = fetch(client, "acme/odd", ["over.safetensors"], max_header=1001)
    assert isinstance(within["over.safetensors"], RemoteHeader)


def test_a_length_past_the_end_of_the_file_is_refused_before_the_second_get(
    client: HubServer,
) -> None:
    past = error(client, "acme/odd", "past-end.safetensors")
    assert past.code == "InvalidHeaderLength" and "10-byte file" in past.reason
    assert [r.range for r in client.requests if r.method == "GET"] == ["bytes=0-7"]


def test_a_file_shorter_than_the_prefix_is_refused_without_a_get(client: HubServer) -> None:
    tiny = error(client, "acme/odd", "tiny.safetensors")
    assert tiny.code == "HeaderTooSmall" and "3 bytes" in tiny.reason
    assert [r.method for r in client.requests] == ["HEAD"]


def test_pickles_and_zips_fail_the_length_bound_and_non_json_is_not_safetensors(
    client: HubServer,
) -> None:
    results = fetch(client, "acme/odd", ["pytorch_model.bin", "zipped.bin", "array.safetensors"])
    assert {p: r.code for p, r in results.items() if isinstance(r, RemoteError)} == {
        "pytorch_model.bin": "HeaderTooLarge",
        "zipped.bin": "HeaderTooLarge",
        "array.safetensors": "NotSafetensors",
    }
    assert "not a UTF-8 JSON object" in results["array.safetensors"].reason
    latin = error(client, "acme/odd", "latin1.safetensors")
    assert latin.code == "NotSafetensors" and "utf-8" in latin.reason


def test_missing_files_and_gated_repos_give_readable_reasons(client: HubServer) -> None:
    missing = error(client, DEMO, "nope.safetensors")
    assert missing.code == "http-404" and "file not found" in missing.reason
    anonymous = error(client, "acme/gated", "model.safetensors")
    assert anonymous.code == "http-401" and "gated repo" in anonymous.reason
    assert "none sent" in anonymous.reason
    ungranted = error(client, "acme/gated", "model.safetensors", token=client.ungranted_token)
    assert ungranted.code == "http-403" and "gated repo" in ungranted.reason
    assert [r.method for r in client.requests] == ["HEAD"] * 3  # nothing ranged was asked
    granted = fetch(client, "acme/gated", ["model.safetensors"], token=client.token)
    assert isinstance(granted["model.safetensors"], RemoteHeader)


def test_http_reasons_name_the_status() -> None:
    def reason(status: int) -> str:
        response = httpx2.Response(status, request=httpx2.Request("GET", "http://hub.test/x"))
        return _http_reason(HfHubHTTPError("boom", response=response))

    assert reason(429).startswith("HTTP 429: rate limited by the Hub")
    assert reason(401).startswith("HTTP 401: unauthorized")
    assert reason(403).startswith("HTTP 403: forbidden")
    assert reason(502) == "HTTP 502: HTTP error"


def test_only_a_full_commit_sha_is_accepted(client: HubServer) -> None:
    with pytest.raises(ValueError, match="full 40-hex commit sha"):
        fetch_safetensors_headers(DEMO, "main", ["model.safetensors"], max_header=MAX)
    with pytest.raises(ValueError, match="first_read >= 8"):
        fetch(client, DEMO, ["model.safetensors"], first_read=4)


def test_a_fetched_header_is_what_provscans_reader_accepts(
    client: HubServer, tmp_path: Path
) -> None:
    """The adapter provscan's scanner needs: the header in a sparse file of the served size."""
    weights = demo_files()["model.safetensors"]
    (got,) = fetch(client, DEMO, ["model.safetensors"]).values()
    assert isinstance(got, RemoteHeader) and got.file_size == len(weights)
    stand_in, real = tmp_path / "remote.safetensors", tmp_path / "real.safetensors"
    with stand_in.open("wb") as handle:
        handle.write(got.raw)
        handle.truncate(got.file_size)  # no tensor bytes: a hole the readers never read
    real.write_bytes(weights)
    with stand_in.open("rb") as a, real.open("rb") as b:
        remote, local = read_header(a, max_header=MAX), read_header(b, max_header=MAX)
    assert remote == local and not remote.problems and len(remote.tensors) > 0
    with safe_open(str(stand_in), framework="numpy") as handle:  # the library accepts it too
        assert sorted(handle.keys()) == sorted(t.name for t in local.tensors)
    assert scan_safetensors(ScanFile(got.path, stand_in, got.file_size), DEFAULT_LIMITS) == []


class _IgnoresRange(BaseHTTPRequestHandler):
    """A Hub whose /resolve answers every GET with 200 and the whole 8 MiB file."""

    body = prefixed(len(b'{"__metadata__":{}}'), b'{"__metadata__":{}}') + bytes(8 << 20)
    sha = git_blob_sha1(b"ignores-range")

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.send_header("X-Repo-Commit", self.sha)
        self.end_headers()

    def do_GET(self) -> None:
        self.do_HEAD()
        with contextlib.suppress(OSError):  # the client stops reading, as it should
            self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.parametrize("first_read", [None, 8])
def test_a_server_that_ignores_range_is_read_only_up_to_the_bound(
    first_read: int | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _IgnoresRange)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("HF_TOKEN", "")
        results = fetch_safetensors_headers(
            "acme/x", _IgnoresRange.sha, ["model.safetensors"], max_header=MAX,
            endpoint=endpoint, first_read=first_read, token=False,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    got = results["model.safetensors"]
    assert isinstance(got, RemoteHeader) and got.range_ignored
    assert got.raw == _IgnoresRange.body[:27] and got.file_size == len(_IgnoresRange.body)
    assert got.requests == (2 if first_read is None else 3)
    assert got.bytes_downloaded < 1 << 20  # of 8 MiB sent each time: a network read or two
