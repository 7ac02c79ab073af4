"""The Hub's base-model lineage in the origin step: roots beyond the files' own claims, and a
finding for each gap in the walk (built here from HubLineage values; the walk itself is
tested against a local Hub server in tests/hub/test_hub_lineage.py)."""

from __future__ import annotations

from pathlib import Path

from provscan.collectors.inventory import collect_inventory
from provscan.collectors.origin import collect_origin
from provscan.hub.lineage import HubEdge, HubLineage, HubModel
from provscan.limits import DEFAULT_LIMITS
from provscan.report import TargetInfo, TargetKind
from provscan.resolve.target import resolve_target

TARGET = TargetInfo(
    input="hf://acme/tuned", kind=TargetKind.HF_CACHE_SNAPSHOT, root="/x", name="tuned",
    repo_id="acme/tuned", revision="a" * 40,
)  # fmt: skip


def origin_of(demo_model: Path, hub: HubLineage):  # type: ignore[no-untyped-def]
    files = resolve_target(str(demo_model), DEFAULT_LIMITS).files
    sniffed = collect_inventory(files, DEFAULT_LIMITS).value
    return collect_origin(sniffed, TARGET, None, None, DEFAULT_LIMITS, hub=hub)


def test_an_ancestor_the_hub_cannot_serve_is_a_root_and_a_finding(demo_model: Path) -> None:
    hub = HubLineage(
        nodes=(
            HubModel("acme/tuned", 0, base_models=("acme/mid",), relations=("finetune",)),
            HubModel("acme/mid", 1, base_models=("acme/gone",), relations=("adapter",)),
            HubModel("acme/gone", 2, error="not found on the Hub"),
        ),
        edges=(
            HubEdge("acme/tuned", "acme/mid", "finetune"),
            HubEdge("acme/mid", "acme/gone", "adapter"),
        ),
        roots=(),
        problems=("acme/gone: not found on the Hub",),
    )
    result = origin_of(demo_model, hub)
    assert result.value.root_models == ("acme/gone",)
    relations = {(e.child, e.base): e.relation for e in result.value.lineage}
    assert relations == {
        ("acme/tuned", "acme/mid"): "finetune",
        ("acme/mid", "acme/gone"): "adapter",
    }
    [gap] = [f for f in result.findings if f.rule_id == "ORG-LINEAGE-INCOMPLETE"]
    assert "acme/gone" in gap.message and gap.severity.value == "medium"


def test_cycles_and_limits_are_reported(demo_model: Path) -> None:
    hub = HubLineage(
        nodes=(HubModel("acme/tuned", 0),),
        edges=(),
        roots=("acme/tuned",),
        problems=(
            "cycle: acme/a -> acme/b -> acme/a",
            "depth limit 8: acme/deep (base of acme/deeper) not followed",
        ),
    )
    result = origin_of(demo_model, hub)
    rules = sorted((f.rule_id, f.severity.value) for f in result.findings if "LINEAGE" in f.rule_id)
    assert rules == [("ORG-LINEAGE-CYCLE", "medium"), ("ORG-LINEAGE-LIMIT", "low")]
    assert result.value.root_models == ()  # the target itself is no root of its own lineage
