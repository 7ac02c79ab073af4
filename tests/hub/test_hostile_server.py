"""The Hub is hostile input: `provscan check hf://...` against a server that attacks its client.

Each test turns on one of fixtures/hub_server.py's hostile behaviours (a switch per repo) and runs
provscan in a child process (the real huggingface_hub client, pointed at the server with
HF_ENDPOINT), with the limits the test needs; every one must end in exit 3 (fail closed) with a
message naming what was exceeded or refused, quickly, and without the attack's cost: no bomb held
in memory, no oversized file on disk, no scan kept alive by a server that drips. Then the rules
themselves, in this process: which redirects are followed, and the hooks of
hub_remote.HubTraffic on a client whose server is a function.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from fixtures.hub_repos import FixtureRepo, demo_files, demo_repo
from fixtures.hub_server import HubServer
from provscan.hub.http import HubLimitError, redirect_refusal
from provscan.limits import DEFAULT_LIMITS

# Child processes against a live server, seconds each: `python -m pytest -m slow`.
pytestmark = pytest.mark.slow

GiB, MiB, KiB = 1 << 30, 1 << 20, 1 << 10
LISTED, SERVED = 64 * KiB, 300_000_000  # the oversized file: as listed, as served

# The child: provscan's CLI with the given limits (JSON) in place of the defaults; on exit it
# reports its peak RSS growth over the baseline taken after every import a scan needs.
RUNNER = """
import functools, json, resource, sys
import httpx2, huggingface_hub, huggingface_hub.hf_api
import numpy, safetensors
import provscan.cli as cli, provscan.resolve.hub_metadata, provscan.hub.ranges
import provscan.hub.traffic
import provscan.pipeline as pipeline, provscan.policy.engine, provscan.emit.terminal
import provscan.emit.json_report, provscan.collectors.serialization.safetensors.scan
from provscan.limits import Limits
limits = Limits(**json.loads(sys.argv[1]))
# The CLI imports the pipeline when it scans, and takes ScanOptions from it then.
pipeline.ScanOptions = functools.partial(pipeline.ScanOptions, limits=limits)
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    cli.main(sys.argv[2:])
finally:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"rss-growth-kib={peak - baseline}", file=sys.stderr)
"""


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    oversize = FixtureRepo(
        "acme/oversize",
        demo_files() | {"extra.bin": bytes(range(256)) * (LISTED // 256)},
        oversize={"extra.bin": SERVED},
    )
    repos = [
        demo_repo("acme/bomb", api_gzip_bomb=GiB),
        demo_repo("acme/drip", api_drip=1.0),
        demo_repo("acme/redirect-api", api_redirect_host="localhost"),
        demo_repo("acme/redirect-file", file_redirect_host="localhost"),
        oversize,
    ]
    with HubServer(repos) as server:
        yield server


def provscan(
    hub: HubServer, home: Path, *args: str, timeout: float = 60, **limits: int
) -> tuple[subprocess.CompletedProcess[str], float, int]:
    """(the finished child, its wall time in seconds, its peak RSS growth in bytes)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    started = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-c", RUNNER, json.dumps(limits), *args],
            env=clean | hub.env(home),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"provscan {' '.join(args)} still ran after {timeout} s")
    growth = re.search(r"rss-growth-kib=(\d+)", result.stderr)
    return result, time.monotonic() - started, int(growth.group(1)) * KiB if growth else -1


def test_a_gzip_bomb_model_info_fails_closed_naming_the_cap_without_inflating_it(
    hub: HubServer, tmp_path: Path
) -> None:
    result, _, growth = provscan(hub, tmp_path, "check", "hf://acme/bomb", "-q")
    assert result.returncode == 3, result.stdout + result.stderr
    cap = DEFAULT_LIMITS.hub_response_max
    assert "/api/models/acme/bomb" in result.stderr  # the URL
    assert f"{cap} bytes" in result.stderr and "hub_response_max" in result.stderr
    # -1: not measured; 0 is possible when the peak was reached before the request.
    assert 0 <= growth < cap + 96 * MiB < GiB // 4, f"peak RSS grew by {growth} bytes"
    assert hub.bytes_sent < 16 * MiB  # what was read: a few KB per decoded MiB


@pytest.mark.parametrize(
    ("limits", "named"),
    [
        ({"hub_request_timeout": 2}, "hub_request_timeout"),
        ({"hub_scan_deadline": 2}, "hub_scan_deadline"),
    ],
    ids=["per-request", "per-scan"],
)
def test_a_slow_drip_body_ends_at_the_deadline(
    hub: HubServer, tmp_path: Path, limits: dict[str, int], named: str
) -> None:
    result, took, _ = provscan(hub, tmp_path, "check", "hf://acme/drip", "-q", timeout=30, **limits)
    assert result.returncode == 3, result.stdout + result.stderr
    assert named in result.stderr and "2 s" in result.stderr
    assert "/api/models/acme/drip" in result.stderr
    assert took < 2 + 10  # the deadline, plus starting Python and importing the client


@pytest.mark.parametrize("mode", [(), ("--download",)], ids=["metadata", "download"])
def test_a_file_served_longer_than_listed_is_cut_at_its_listed_size(
    hub: HubServer, tmp_path: Path, mode: tuple[str, ...]
) -> None:
    hub.reset_log()
    result, _, _ = provscan(hub, tmp_path, "check", "hf://acme/oversize", *mode, "-q")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "extra.bin" in result.stderr and f"{LISTED} bytes" in result.stderr
    assert "served more" in result.stderr
    gets = [r for r in hub.requests if r.method == "GET" and "extra.bin" in r.query + r.path]
    assert gets and sum(r.bytes_sent for r in gets) < 16 * MiB  # not 300 MB
    blob = hub.repos["acme/oversize"].entries["extra.bin"].sha256
    assert blob is not None
    on_disk = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()]
    assert all(p.stat().st_size <= LISTED for p in on_disk if p.name.startswith(blob))
    assert sum(p.stat().st_size for p in on_disk) < sum(map(len, demo_files().values())) + LISTED


@pytest.mark.parametrize(
    ("repo", "what"),
    [("acme/redirect-api", "/api/models/"), ("acme/redirect-file", "/resolve/")],
    ids=["model_info", "lfs-file"],
)
@pytest.mark.parametrize("mode", [(), ("--download",)], ids=["metadata", "download"])
def test_a_redirect_to_another_host_is_refused_naming_both(
    hub: HubServer, tmp_path: Path, repo: str, what: str, mode: tuple[str, ...]
) -> None:
    result, _, _ = provscan(hub, tmp_path, "check", f"hf://{repo}", *mode, "-q")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "127.0.0.1" in result.stderr and "localhost" in result.stderr
    assert "redirect" in result.stderr and what in result.stderr
    assert "VERDICT" not in result.stdout


# The rule itself, for the hosts of the real Hub (huggingface_hub's HEAD stops at the /resolve
# 302 to a CDN; the GET then goes there). None: allowed; else the refusal's reason.
@pytest.mark.parametrize(
    ("source", "target", "allowed"),
    [
        ("https://huggingface.co/api/models/a/b", "https://huggingface.co/api/models/a/c", True),
        ("https://huggingface.co/api/models/a/b", "https://hf.co/api/models/a/b", True),
        ("https://huggingface.co/a/b/resolve/main/x", "https://cdn-lfs.hf.co/repos/1/2?x=1", True),
        ("https://huggingface.co/a/b/resolve/main/x", "https://cdn-lfs-us-1.hf.co/r/1", True),
        ("https://huggingface.co/a/b/resolve/main/x", "https://cas-bridge.xethub.hf.co/x", True),
        ("https://huggingface.co/a/b/resolve/main/x", "https://cdn-lfs.huggingface.co/x", True),
        ("https://huggingface.co/a/b/resolve/main/x", "/api/resolve-cache/models/a/b/x", True),
        ("https://hf-mirror.com/a/b/resolve/main/x", "https://cdn.hf-mirror.com/x", True),
        ("http://127.0.0.1:8000/a/b/resolve/main/x", "http://127.0.0.1:8001/lfs/x", True),
        ("https://huggingface.co/api/models/a/b", "https://cdn-lfs.hf.co/x", False),
        ("https://huggingface.co/api/models/a/b", "https://evil.example/api/models/a/b", False),
        ("https://huggingface.co/a/b/resolve/main/x", "https://evil.example/x", False),
        ("https://huggingface.co/a/b/resolve/main/x", "https://hf.co.evil.example/x", False),
        ("https://huggingface.co/a/b/resolve/main/x", "http://cdn-lfs.hf.co/x", False),
        ("https://huggingface.co/a/b/resolve/main/x", "file:///etc/passwd", False),
        ("https://cdn-lfs.hf.co/x", "https://evil.example/x", False),
    ],
)
def test_which_redirects_are_followed(source: str, target: str, allowed: bool) -> None:
    refusal: Any = redirect_refusal(source, target)
    assert (refusal is None) is allowed, refusal


# The hooks themselves, on a client whose server is a function (httpx2.MockTransport).


def bounded_client(handler: Any, **limits: int) -> httpx2.Client:
    from provscan.hub.traffic import HubTraffic

    traffic = HubTraffic(dataclasses.replace(DEFAULT_LIMITS, **limits), current_listed=lambda: None)
    return httpx2.Client(transport=httpx2.MockTransport(handler), event_hooks=traffic.hooks)


def test_a_retry_after_past_the_scan_deadline_fails_at_once() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(429, headers={"Retry-After": "3600"}, json={"error": "slow down"})

    with pytest.raises(HubLimitError, match=r"retry after 3600 s.*60 s \(hub_scan_deadline\)"):
        bounded_client(handler, hub_scan_deadline=60).get("https://huggingface.co/api/models/a/b")


def test_a_file_is_cut_at_what_its_head_declared_and_a_range_at_the_rest() -> None:
    resolve, cdn = "https://huggingface.co/a/b/resolve/main/w.bin", "https://cdn-lfs.hf.co/w?s=1"
    served = {"body": b""}

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.method == "HEAD":
            return httpx2.Response(302, headers={"Location": cdn, "X-Linked-Size": "10"})
        assert request.headers["Accept-Encoding"] == "identity"
        headers = {"Content-Range": f"bytes 4-{3 + len(served['body'])}/10"}
        return httpx2.Response(206, headers=headers, content=iter([served["body"]]))

    client = bounded_client(handler)
    assert client.head(resolve).status_code == 302
    served["body"] = b"x" * 6  # bytes 4..9: the rest of the file
    assert client.get(cdn, headers={"Range": "bytes=4-"}).content == b"x" * 6
    served["body"] = b"x" * 7  # one byte past the declared size
    with pytest.raises(
        HubLimitError, match=f"{re.escape(resolve)}: the Hub served more than the 6"
    ):
        client.get(cdn, headers={"Range": "bytes=4-"})


def test_a_file_served_encoded_though_identity_was_asked_is_refused() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"Content-Encoding": "gzip"}, content=b"\x1f\x8b")

    with pytest.raises(HubLimitError, match="Content-Encoding 'gzip' though identity was asked"):
        bounded_client(handler).get("https://huggingface.co/a/b/resolve/main/config.json")


def test_xet_is_off_while_hub_traffic_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """hf_xet downloads with its own Rust HTTP client, past every bound of hub_traffic: inside
    the block huggingface_hub must not use it; outside, the user's setting is back."""
    from huggingface_hub import constants
    from huggingface_hub.utils._runtime import is_xet_available

    from provscan.hub.session import hub_traffic

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    with hub_traffic(DEFAULT_LIMITS):
        assert constants.HF_HUB_DISABLE_XET is True
        assert not is_xet_available()
    assert constants.HF_HUB_DISABLE_XET is False
