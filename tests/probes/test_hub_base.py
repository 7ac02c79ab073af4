"""`--weights-base hf://ORG/NAME@REV`: the base's embedding and output rows read by range from a
local server speaking the Hub API (fixtures/hub_server.py; the client is the real
huggingface_hub, pointed at it in this process), never the whole file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fixtures import backdoor, finetune, hard
from fixtures.hub_repos import FixtureRepo
from fixtures.hub_server import HubServer, point_client_at
from provscan.hub.http import HubError
from provscan.hub.ranges import fetch_range
from provscan.probes.collect import _weights
from provscan.probes.weight_evidence import weight_evidence
from tests.conftest import CliResult

BASE = backdoor.shipped_pair(finetune.SEED).clean
FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def _repo(repo_id: str, **options: object) -> FixtureRepo:
    files = {name: (BASE / name).read_bytes() for name in FILES}
    # LFS above 1 KiB: the weights go through the Hub's 302 to its CDN, as real shards do.
    return FixtureRepo(repo_id, files, lfs_threshold=1024, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    repos = [_repo("acme/base"), _repo("acme/dropping", drop_after_bytes=0, drop_times=1_000)]
    with HubServer(repos) as server:
        yield server


@pytest.fixture
def client(hub: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> HubServer:
    point_client_at(monkeypatch, hub, tmp_path / "hf")
    hub.reset_log()
    return hub


def test_a_hub_base_gives_the_local_bases_evidence_from_a_fraction_of_its_bytes(
    client: HubServer,
) -> None:
    model = hard.shipped("late")
    local = weight_evidence(model, BASE)
    remote, findings = _weights(model, "hf://acme/base@main")
    assert remote is not None
    assert remote.ranking == local.ranking and remote.stats == local.stats
    assert [f.rule_id for f in findings] == ["PRB-WEIGHT-DIFF"]
    # The finding names the Hub reference, never the temporary stand-in folder.
    assert "compared with hf://acme/base@main" in findings[0].message
    assert findings[0].evidence["base"] == "hf://acme/base@main"
    assert remote.ranking[0].token == hard.LATE_TRIGGER
    # Tied base: one 135 x 128 float32 matrix (69,120 bytes) of a 1.4 MB file, and its header.
    size = (BASE / "model.safetensors").stat().st_size
    assert client.bytes_sent < size / 5, (client.bytes_sent, size)


def test_a_hub_base_that_cannot_be_read_is_a_finding_naming_it(client: HubServer) -> None:
    evidence, findings = _weights(hard.shipped("late"), "hf://acme/dropping@main")
    assert evidence is None
    [finding] = findings
    assert finding.rule_id == "PRB-WEIGHT-UNREADABLE"
    assert "hf://acme/dropping" in finding.message


def test_a_missing_hub_base_is_a_finding(client: HubServer) -> None:
    evidence, findings = _weights(hard.shipped("late"), "hf://acme/nothing-here@main")
    assert evidence is None and findings[0].rule_id == "PRB-WEIGHT-UNREADABLE"
    assert "acme/nothing-here" in findings[0].message


@pytest.mark.parametrize(
    ("base", "said"),
    [("hf://not a repo", "not a Hugging Face repo id"), ("/no/such/folder", "not a folder")],
)
def test_a_bad_weights_base_is_a_usage_error(
    cli: Callable[..., CliResult], base: str, said: str
) -> None:
    result = cli("probe", hard.shipped("late"), "--weights-base", base, "-q")
    assert result.code == 2 and said in result.err


def test_fetch_range_reads_exact_chunks_and_refuses_bytes_past_the_end(client: HubServer) -> None:
    sha = client.repos["acme/base"].sha
    data = (BASE / "model.safetensors").read_bytes()
    got = list(fetch_range("acme/base", sha, "model.safetensors", 5, 105, chunk=30))
    assert [offset for offset, _ in got] == [5, 35, 65, 95]
    assert b"".join(chunk for _, chunk in got) == data[5:105]
    with pytest.raises(HubError, match=f"asked of a {len(data)}-byte file"):
        list(fetch_range("acme/base", sha, "model.safetensors", 0, len(data) + 1))
