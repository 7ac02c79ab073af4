"""Does `walk_base_models` follow base_model on the Hub: once per model, bounded, cycle-safe?

The real huggingface_hub client against `fixtures/hub_server.py`; a stub client only where the
server cannot produce the case (a gated 403 on metadata, a 500, a refused connection).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from huggingface_hub import HfApi, ModelInfo
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError

from fixtures.hub_repos import FixtureRepo, base_model_chain, card
from fixtures.hub_server import HubServer, point_client_at
from provscan.hub.lineage import MAX_BASES, MAX_TEXT, HubEdge, HubLineage, walk_base_models

LLAMA = "meta-llama/Llama-3.1-8B"


def repo(repo_id: str, base: str | list[str] | None = None, **fields: Any) -> FixtureRepo:
    """A card-only repo; `info` (tags the real Hub would compute) and faults go to FixtureRepo."""
    options = {k: fields.pop(k) for k in ("info", "rate_limit_first_n", "slow") if k in fields}
    front = {"license": "apache-2.0"} | ({"base_model": base} if base else {}) | fields
    return FixtureRepo(repo_id, {"README.md": card(front, f"# {repo_id}")}, **options)


def hub_tags(relation: str, *bases: str) -> dict[str, Any]:
    """The `base_model:*` tags the real Hub derives (the fake always says finetune)."""
    return {"tags": [t for b in bases for t in (f"base_model:{b}", f"base_model:{relation}:{b}")]}


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    deep = [repo(f"acme/deep-{i}", f"acme/deep-{i + 1}") for i in range(5)] + [repo("acme/deep-5")]
    repos = [
        *base_model_chain(),
        *deep,
        repo("acme/cycle-a", "acme/cycle-b"),
        repo("acme/cycle-b", "acme/cycle-a"),
        repo("acme/orphan", "acme/does-not-exist"),
        repo("acme/other-base", license="mit"),
        repo(
            "acme/merge",
            ["acme/finetune", "acme/other-base"],
            info=hub_tags("merge", "acme/finetune", "acme/other-base"),
        ),
        repo("acme/diamond", ["acme/finetune", "acme/base"]),
        repo("acme/lora", "acme/base", base_model_relation="adapter"),
        repo("acme/q4", "acme/base", info=hub_tags("quantized", "acme/base")),
        repo("acme/busy-child", "acme/busy"),
        repo("acme/busy", rate_limit_first_n=1),
        repo("acme/throttled", rate_limit_first_n=5),
        repo("acme/slow", slow=0.5),
        FixtureRepo("acme/private", {"README.md": b"# private\n"}, private=True),
    ]
    with HubServer(repos) as server:
        yield server


@pytest.fixture
def api(hub: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> HfApi:
    point_client_at(monkeypatch, hub, tmp_path / "hf")
    hub.reset_log()
    return HfApi()


def info_calls(hub: HubServer) -> Counter[str]:
    """model_info requests per URL path, each asked for in one expanded call."""
    calls = [r for r in hub.requests if r.path.startswith("/api/models/")]
    assert all("expand" in r.query for r in calls)
    return Counter(r.path for r in calls)


def walk(repo_id: str, api: HfApi, revision: str | None = None, **kw: Any) -> HubLineage:
    return walk_base_models(repo_id, revision, api=api, sleep=lambda s: None, **kw)


def test_the_chain_reaches_the_llama_root_and_keeps_each_licence(
    api: HfApi, hub: HubServer
) -> None:
    sha = hub.repos["acme/finetune"].sha
    lineage = walk("acme/finetune", api, revision=sha)
    assert [(n.repo_id, n.depth, n.revision, n.sha) for n in lineage.nodes] == [
        ("acme/finetune", 0, sha, sha),
        ("acme/base", 1, None, hub.repos["acme/base"].sha),
        (LLAMA, 2, None, hub.repos[LLAMA].sha),
    ]
    assert lineage.edges == (
        HubEdge("acme/finetune", "acme/base", "finetune"),
        HubEdge("acme/base", LLAMA, "finetune"),
    )
    assert lineage.roots == (LLAMA,) and lineage.problems == ()
    assert [n.license for n in lineage.nodes] == [("apache-2.0",), ("llama3.1",), ("llama3.1",)]
    llama = lineage.node(LLAMA.lower())
    assert llama is not None and llama.gated == "manual" and llama.author == "meta-llama"
    assert llama.base_models == () and llama.error is None  # gated: the metadata is public
    assert info_calls(hub) == {
        f"/api/models/acme/finetune/revision/{sha}": 1,
        "/api/models/acme/base": 1,
        f"/api/models/{LLAMA}": 1,
    }


def test_a_two_cycle_is_a_problem_not_a_loop(api: HfApi, hub: HubServer) -> None:
    lineage = walk("acme/cycle-a", api)
    assert [n.repo_id for n in lineage.nodes] == ["acme/cycle-a", "acme/cycle-b"]
    assert lineage.edges == (
        HubEdge("acme/cycle-a", "acme/cycle-b", "finetune"),
        HubEdge("acme/cycle-b", "acme/cycle-a", "finetune"),
    )
    assert lineage.roots == ()
    assert lineage.problems == ("cycle: acme/cycle-b -> acme/cycle-a -> acme/cycle-b",)
    assert set(info_calls(hub).values()) == {1} and len(info_calls(hub)) == 2


def test_a_diamond_is_fetched_once_and_is_no_cycle(api: HfApi, hub: HubServer) -> None:
    lineage = walk("acme/diamond", api)
    assert [n.repo_id for n in lineage.nodes] == [
        "acme/diamond",
        "acme/finetune",
        "acme/base",
        LLAMA,
    ]
    assert HubEdge("acme/finetune", "acme/base", "finetune") in lineage.edges
    assert lineage.roots == (LLAMA,) and lineage.problems == ()
    assert len(info_calls(hub)) == 4 and set(info_calls(hub).values()) == {1}


def test_depth_and_model_limits_are_reported(api: HfApi, hub: HubServer) -> None:
    deep = walk("acme/deep-0", api, max_depth=3)
    assert [n.repo_id for n in deep.nodes] == [f"acme/deep-{i}" for i in range(5)]
    cut = deep.nodes[-1]
    assert (cut.depth, cut.sha, cut.error) == (4, None, "not fetched: depth limit")
    assert deep.roots == () and len(info_calls(hub)) == 4
    assert deep.problems == ("depth limit 3: acme/deep-4 (base of acme/deep-3) not followed",)
    hub.reset_log()
    few = walk("acme/finetune", api, max_models=2)
    assert [(n.repo_id, n.error) for n in few.nodes] == [
        ("acme/finetune", None),
        ("acme/base", None),
        (LLAMA, "not fetched: model limit"),
    ]
    assert few.problems == (f"model limit 2 reached: {LLAMA} not fetched",)
    assert len(info_calls(hub)) == 2


def test_a_missing_base_is_a_node_with_a_reason(api: HfApi, hub: HubServer) -> None:
    lineage = walk("acme/orphan", api)
    missing = lineage.node("acme/does-not-exist")
    assert missing is not None and missing.sha is None and missing.depth == 1
    assert missing.error is not None and missing.error.startswith("not found on the Hub")
    assert lineage.roots == () and lineage.problems == (f"acme/does-not-exist: {missing.error}",)
    private = walk("acme/private", api).nodes[0]
    assert private.error is not None and "private" in private.error and "401" in private.error
    bad_rev = walk("acme/base", api, revision="no-such-branch")
    assert bad_rev.nodes[0].error == "revision 'no-such-branch' not found (HTTP 404)"
    assert bad_rev.edges == () and bad_rev.roots == ()


def test_relations_come_from_the_card_then_the_hub_tags(api: HfApi, hub: HubServer) -> None:
    merge = walk("acme/merge", api)
    assert merge.edges[:2] == (
        HubEdge("acme/merge", "acme/finetune", "merge"),
        HubEdge("acme/merge", "acme/other-base", "merge"),
    )
    assert merge.roots == ("acme/other-base", LLAMA)
    assert merge.node("acme/other-base").license == ("mit",)  # type: ignore[union-attr]
    assert len(info_calls(hub)) == 5 and set(info_calls(hub).values()) == {1}
    lora = walk("acme/lora", api)  # base_model_relation beats the Hub's finetune tag
    assert lora.edges[0] == HubEdge("acme/lora", "acme/base", "adapter")
    assert lora.nodes[0].relations == ("adapter",)
    assert walk("acme/q4", api).edges[0] == HubEdge("acme/q4", "acme/base", "quantized")


def test_rate_limits_are_retried_once_then_reported(api: HfApi, hub: HubServer) -> None:
    lineage = walk("acme/busy-child", api)
    assert lineage.node("acme/busy").sha == hub.repos["acme/busy"].sha  # type: ignore[union-attr]
    assert lineage.problems == () and info_calls(hub)["/api/models/acme/busy"] == 2
    hub.reset_log()
    throttled = walk("acme/throttled", api).nodes[0]
    assert throttled.error is not None and throttled.error.startswith("rate limited")
    assert info_calls(hub) == {"/api/models/acme/throttled": 2}
    slow = walk("acme/slow", api, timeout=0.1, retries=0).nodes[0]
    assert slow.error == "timed out waiting for the Hub"


# -- cases the fake Hub cannot serve: a stub client ----------------------------------------


class StubApi:
    """`model_info` from a dict: a ModelInfo's fields, or the exception to raise."""

    def __init__(self, infos: dict[str, dict[str, Any] | BaseException]) -> None:
        self.infos, self.calls = infos, Counter[str]()

    def model_info(self, repo_id: str, **kw: Any) -> ModelInfo:
        self.calls[repo_id] += 1
        found = self.infos[repo_id]
        if isinstance(found, BaseException):
            raise found
        return ModelInfo(id=repo_id, sha="0" * 40, **found)  # type: ignore[no-untyped-call]


def http_error(cls: type[HfHubHTTPError], status: int) -> HfHubHTTPError:
    request = httpx2.Request("GET", "https://hub.invalid/api/models/x/y")
    return cls(f"HTTP {status}", response=httpx2.Response(status, request=request))


def test_card_oddities_errors_and_bounds_with_a_stub_client() -> None:
    many = [f"acme/part-{i}" for i in range(MAX_BASES + 2)]
    infos: dict[str, dict[str, Any] | BaseException] = {m: {} for m in many}
    stub = StubApi(
        infos
        | {
            "acme/target": {
                "cardData": {
                    "base_model": ["acme/two", "acme/target", "./local", "acme/gated", "acme/down"],
                    "license": "other",
                    "license_name": "x" * 500,
                },
                "tags": ["base_model:acme/two", "base_model:adapter:acme/two"],
                "baseModels": {"relation": "finetune", "models": [{"id": "acme/refused"}]},
            },
            "acme/two": {"cardData": {"base_model": many}, "tags": ["license:mit"]},
            "acme/gated": http_error(GatedRepoError, 403),
            "acme/down": http_error(HfHubHTTPError, 500),
            "acme/refused": httpx2.ConnectError("connection refused"),
        }
    )
    lineage = walk_base_models("acme/target", None, api=stub, sleep=lambda s: None)  # type: ignore[arg-type]
    target = lineage.nodes[0]
    assert target.base_models == ("acme/two", "acme/gated", "acme/down", "acme/refused")
    assert target.relations == ("adapter", "finetune", "finetune", "finetune")
    assert target.license == ("other",) and len(target.license_name or "") == MAX_TEXT
    two = lineage.node("acme/two")
    assert two is not None and two.license == ("mit",) and two.relations == ("merge",) * MAX_BASES
    errors = {n.repo_id: n.error for n in lineage.nodes if n.error}
    assert errors == {
        "acme/gated": "gated: the Hub withholds its metadata from this token (HTTP 403)",
        "acme/down": "the Hub answered HTTP 500: HTTP 500",
        "acme/refused": "could not reach the Hub (ConnectError: connection refused)",
    }
    assert stub.calls["acme/down"] == 2 and stub.calls["acme/gated"] == 1  # 5xx retried once
    assert lineage.problems[:3] == (
        "acme/target: names itself as its base model",
        "acme/target: base_model './local' is not a Hub repo id",
        f"acme/two: {MAX_BASES + 2} base models, only the first {MAX_BASES} followed",
    )
    assert lineage.roots == tuple(many[:MAX_BASES])
