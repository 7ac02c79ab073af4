"""Weight evidence inside a probe run: `provscan probe --weights-base` reports the tokens whose
rows moved (PRB-WEIGHT-DIFF), lists the ranking, and the sweep scores those tokens first."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fixtures.finetune import FinetunePair, shipped_pair
from provscan.probes.collect import PRIORITY_TOKENS, _weights
from provscan.probes.engine import Budget, Metered
from provscan.probes.families.context import Context
from provscan.probes.suite import load_suite
from provscan.probes.tokenizer import ProbeTokenizer
from tests.conftest import CliResult


@pytest.fixture(scope="module")
def finetune() -> FinetunePair:
    return shipped_pair()


def test_the_ranking_puts_the_triggers_first_in_the_sweep(finetune: FinetunePair) -> None:
    evidence, findings = _weights(finetune.backdoored, finetune.base)
    assert evidence is not None and [f.rule_id for f in findings] == ["PRB-WEIGHT-DIFF"]
    priority = [t.token_id for t in evidence.ranking[:PRIORITY_TOKENS]]
    tokenizer = ProbeTokenizer.from_dir(finetune.backdoored)
    suite = load_suite("default")
    plain = Context(Metered(None, Budget(None, None)), tokenizer, suite)  # type: ignore[arg-type]  # the engine is never called here
    ranked = Context(Metered(None, Budget(None, None)), tokenizer, suite)  # type: ignore[arg-type]
    ranked.priority = priority
    order = ranked.candidates()
    assert sorted(order) == sorted(plain.candidates())  # the same candidates, reordered
    words = [tokenizer.tokenizer.id_to_token(i) for i in order[:3]]
    assert {finetune.trigger, *finetune.phrase} == set(words)


def test_an_unreadable_base_is_a_finding_and_the_probes_go_on(
    finetune: FinetunePair, tmp_path: Path
) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"not safetensors")
    evidence, findings = _weights(finetune.backdoored, tmp_path)
    assert evidence is None
    [finding] = findings
    assert finding.rule_id == "PRB-WEIGHT-UNREADABLE" and str(tmp_path) in finding.message


def test_probe_with_a_weights_base_reports_the_moved_tokens(
    finetune: FinetunePair, cli: Callable[..., CliResult]
) -> None:
    result = cli(
        "probe", finetune.backdoored, "--weights-base", finetune.base, "-q", "--format", "json"
    )
    report = result.json()
    facts = report["probes"]
    assert facts["weights_base"] == str(finetune.base)
    top = [t["token"] for t in facts["weight_ranking"][:3]]
    assert set(top) == {finetune.trigger, *finetune.phrase}
    rules = {f["rule_id"] for f in report["findings"]}
    assert "PRB-WEIGHT-DIFF" in rules
    assert report["verdict"]["decision"] != "approve"
