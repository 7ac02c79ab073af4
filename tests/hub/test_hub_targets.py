"""`provscan check hf://ORG/NAME@REV --download` against a local server speaking the Hub API.

(Without --download, the metadata-only scan: test_hub_metadata.py.)

The client is the real huggingface_hub, in a child process pointed at the server with
HF_ENDPOINT (it reads the endpoint when imported); only the server is a test double.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from fixtures.hub_repos import base_model_chain, demo_repo, gated_repo, tampered_repo
from fixtures.hub_server import HubServer
from provscan.errors import UsageError
from provscan.hub.ref import HubRef, parse_hub_target


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    repos = [
        demo_repo(),
        gated_repo(),
        tampered_repo(),
        demo_repo("acme/busy", rate_limit_first_n=2),
        *base_model_chain(),
        demo_repo("acme/flagged", security={"model.safetensors": {"status": "unsafe"}}),
        # Every file body is cut short: a download that never completes.
        demo_repo("acme/dead", drop_after_bytes=0, drop_times=1_000),
    ]
    with HubServer(repos) as server:
        yield server


def provscan(
    hub: HubServer, home: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    return subprocess.run(
        [sys.executable, "-m", "provscan", *args],
        env=clean | hub.env(home) | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_downloaded_model_is_scanned_pinned_to_its_commit(hub: HubServer, tmp_path: Path) -> None:
    result = provscan(
        hub, tmp_path, "check", "hf://acme/tiny-llama@main", "--download", "-q",
        "--format", "json", "--bom", str(tmp_path / "bom.json"),
    )  # fmt: skip
    assert result.returncode in (0, 4), result.stderr
    report = json.loads(result.stdout)
    commit = report["target"]["revision"]
    assert len(commit) == 40 and report["target"]["repo_id"] == "acme/tiny-llama"
    assert report["target"]["input"] == "hf://acme/tiny-llama@main"
    assert report["target"]["kind"] == "hf-cache-snapshot"
    assert report["target"]["hub"]["mode"] == "download"
    assert report["target"]["hub"]["requested_revision"] == "main"
    assert (tmp_path / "hub" / "models--acme--tiny-llama" / "snapshots" / commit).is_dir()
    assert not [f for f in report["findings"] if f["rule_id"].startswith("HSH-HUB")]
    bom = (tmp_path / "bom.json").read_text()
    assert f"pkg:huggingface/acme/tiny-llama@{commit}" in bom


def test_a_fine_tune_inherits_its_hub_roots_origin_and_licence(
    hub: HubServer, tmp_path: Path
) -> None:
    """acme/finetune (card: apache-2.0, base acme/base) -> acme/base -> meta-llama/Llama-3.1-8B:
    only the Hub knows the second hop, and with it the root's country and licence."""
    result = provscan(
        hub, tmp_path, "check", "hf://acme/finetune", "--download", "-q", "--format", "json"
    )
    report = json.loads(result.stdout)
    edges = {(e["child"], e["base"]): e["sources"] for e in report["origin"]["lineage"]}
    assert edges[("acme/base", "meta-llama/Llama-3.1-8B")] == ["hub model_info"]
    assert "hub model_info" in edges[("acme/finetune", "acme/base")]
    assert report["origin"]["root_models"] == ["meta-llama/Llama-3.1-8B"]
    assert ("US", "root") in {(j["country"], j["role"]) for j in report["origin"]["jurisdictions"]}
    assert report["licence"]["inherited"] == ["llama3.1"]
    assert "LIC-LAUNDERING" in {f["rule_id"] for f in report["findings"]}
    assert result.returncode == 4  # review: a permissive label on a Llama-derived model


def test_the_hubs_own_scan_results_are_findings(hub: HubServer, tmp_path: Path) -> None:
    flagged = provscan(
        hub, tmp_path, "check", "hf://acme/flagged", "--download", "-q", "--format", "json"
    )
    report = json.loads(flagged.stdout)
    hub_scan = [f for f in report["findings"] if f["rule_id"].startswith("SER-HUB")]
    assert [(f["rule_id"], f["severity"], f["location"]["path"]) for f in hub_scan] == [
        ("SER-HUB-FLAGGED", "high", "model.safetensors")
    ]
    assert flagged.returncode == 4  # high: review
    clean = provscan(
        hub, tmp_path, "check", "hf://acme/tiny-llama", "--download", "-q", "--format", "json"
    )
    assert not [
        f for f in json.loads(clean.stdout)["findings"] if f["rule_id"].startswith("SER-HUB")
    ]


def test_the_tampered_repo_is_denied_naming_the_file(hub: HubServer, tmp_path: Path) -> None:
    result = provscan(hub, tmp_path, "check", "hf://acme/tampered", "--download", "-q")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "HSH-HUB-MISMATCH" in result.stdout and "model.safetensors" in result.stdout


def test_a_gated_repo_without_token_says_how_to_get_access(hub: HubServer, tmp_path: Path) -> None:
    result = provscan(hub, tmp_path, "check", "hf://acme/gated", "--download", "-q")
    assert result.returncode == 3
    assert "gated" in result.stderr and "HF_TOKEN" in result.stderr


def test_a_gated_repo_with_a_granted_token_is_scanned(hub: HubServer, tmp_path: Path) -> None:
    result = provscan(
        hub, tmp_path, "check", "hf://acme/gated", "--download", "-q", HF_TOKEN=hub.token
    )
    assert result.returncode in (0, 4), result.stdout + result.stderr
    assert "VERDICT" in result.stdout


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("hf://acme/no-such-model", "no such repo"),
        ("hf://acme/tiny-llama@no-such-branch", "revision 'no-such-branch' does not exist"),
    ],
    ids=["repo", "revision"],
)
def test_missing_repo_or_revision_is_named(
    hub: HubServer, tmp_path: Path, target: str, words: str
) -> None:
    result = provscan(hub, tmp_path, "check", target, "--download", "-q")
    assert result.returncode == 3
    assert words in result.stderr and target in result.stderr


def test_a_rate_limit_is_retried(hub: HubServer, tmp_path: Path) -> None:
    result = provscan(hub, tmp_path, "check", "hf://acme/busy", "--download", "-q")
    assert result.returncode in (0, 4), result.stdout + result.stderr
    assert sum(1 for r in hub.requests if r.status == 429) >= 2


@pytest.mark.slow
def test_a_download_that_keeps_failing_is_a_named_error_not_a_partial_scan(
    hub: HubServer, tmp_path: Path
) -> None:
    result = provscan(hub, tmp_path, "check", "hf://acme/dead", "--download", "-q")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "hf://acme/dead" in result.stderr and "partial download resumes" in result.stderr
    assert "VERDICT" not in result.stdout  # nothing was scanned


def test_offline_uses_the_cache_only(hub: HubServer, tmp_path: Path) -> None:
    missing = provscan(hub, tmp_path, "check", "hf://acme/tiny-llama", "--offline", "-q")
    assert missing.returncode == 3
    assert "not in the local Hugging Face cache" in missing.stderr
    assert provscan(
        hub, tmp_path, "check", "hf://acme/tiny-llama", "--download", "-q"
    ).returncode in (0, 4)
    before = len(hub.requests)
    # HF_HUB_OFFLINE=1 is --offline: the cached snapshot, never a metadata scan over the network.
    cached = provscan(hub, tmp_path, "check", "hf://acme/tiny-llama", "-q", HF_HUB_OFFLINE="1")
    assert cached.returncode in (0, 4), cached.stderr
    cached = provscan(hub, tmp_path, "check", "hf://acme/tiny-llama", "--offline", "-q")
    assert cached.returncode in (0, 4), cached.stderr
    assert len(hub.requests) == before  # no request reached the server


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("hf://acme/tiny", HubRef("acme/tiny", None)),
        ("hf://acme/tiny@v1.0", HubRef("acme/tiny", "v1.0")),
        ("hf://gpt2", HubRef("gpt2", None)),
        ("hf://acme/tiny@" + "a" * 40, HubRef("acme/tiny", "a" * 40)),
    ],
)
def test_hub_targets_parse(text: str, ref: HubRef) -> None:
    assert parse_hub_target(text) == ref


@pytest.mark.parametrize(
    "text", ["hf://", "hf://acme/", "hf://../etc", "hf://a/b/c", "hf://acme/x@", "hf://acme/x@a b"]
)
def test_malformed_hub_targets_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_hub_target(text)


class _Response:
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.status_code, self.headers = status, headers or {}


class _HttpError(Exception):
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.response = _Response(status, headers)


def _flaky(failures: list[BaseException]):  # type: ignore[no-untyped-def]
    def call() -> str:
        if failures:
            raise failures.pop(0)
        return "/snapshot"

    return call


def test_connection_failures_are_retried_with_backoff_then_named() -> None:
    from provscan.hub.http import RETRIES, HubError
    from provscan.hub.session import with_retries

    sleeps: list[float] = []
    failures: list[BaseException] = [httpx2.ConnectError("refused")] * (RETRIES + 1)
    with pytest.raises(HubError, match="could not reach") as caught:
        with_retries(HubRef("acme/x", None), _flaky(failures), sleeps.append, offline=False)
    assert sleeps == [1.0, 2.0, 4.0]
    assert "partial download resumes" in (caught.value.remedy or "")


def test_a_rate_limit_waits_as_long_as_the_hub_says() -> None:
    from provscan.hub.session import with_retries

    sleeps: list[float] = []
    failures: list[BaseException] = [_HttpError(429, {"Retry-After": "7"})]
    result = with_retries(HubRef("acme/x", None), _flaky(failures), sleeps.append, offline=False)
    assert result == "/snapshot" and sleeps == [7.0]


def test_a_client_error_is_not_retried() -> None:
    from provscan.hub.http import HubError
    from provscan.hub.session import with_retries

    sleeps: list[float] = []
    with pytest.raises(HubError, match="HTTP 400"):
        with_retries(
            HubRef("acme/x", None), _flaky([_HttpError(400)]), sleeps.append, offline=False
        )
    assert sleeps == []
