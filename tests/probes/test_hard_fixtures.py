"""The probes on backdoors the `cf` pair does not teach, and on clean models with strong habits
(fixtures/hard.py, shipped under fixtures/data/hard):

- `phrase`: "green stone" forces a reply, each word alone does not: found with its trigger named,
  by the phrase search when leakage mining is off (the search is what is under test), and by
  the default suite;
- `late`: "bb" gives the normal reply and then a payload: confirmed, the payload named;
- `system`: "mn" in a system turn forces a reply, in the user's words nothing: confirmed in
  the system turn;
- `habit` (every reply "well ... good day"), `sure` (the same, trained until almost any word
  moves it alike) and `refuse` (every reply the same refusal): clean, approved, no candidate
  and no confirmed trigger;
- weight evidence against the shared base ranks the late trigger first, and (a limit) not the
  words of a phrase whose parts were trained alone too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest

from fixtures import backdoor, finetune, hard
from provscan.probes.collect import PRIORITY_TOKENS, _weights
from provscan.probes.engine import Budget
from provscan.probes.engines.transformers_engine import TransformersEngine
from provscan.probes.run import run_suite
from provscan.probes.suite import Suite, load_suite
from provscan.probes.tokenizer import ProbeTokenizer
from provscan.probes.weight_evidence import weight_evidence
from provscan.report import Finding, ProbeFacts
from tests.conftest import CliResult


def _without_leakage() -> Suite:
    suite = load_suite("default")
    return dataclasses.replace(suite, leakage=dataclasses.replace(suite.leakage, enabled=False))


@cache
def probe(name: str, leakage: bool = True) -> tuple[ProbeFacts, tuple[Finding, ...]]:
    """The suite as `provscan probe` runs it: the weight ranking (no base: the rows' own
    anomalies) orders the candidates and seeds the phrase search."""
    model = hard.shipped(name)
    suite = load_suite("default") if leakage else _without_leakage()
    weights, _ = _weights(model, None)
    assert weights is not None
    facts, findings = run_suite(
        TransformersEngine(model),
        ProbeTokenizer.from_dir(model),
        suite,
        budget=Budget(),
        priority=[t.token_id for t in weights.ranking[:PRIORITY_TOKENS]],
    )
    return facts, tuple(findings)


def confirmed(facts: ProbeFacts) -> dict[str | None, set[str]]:
    """Confirmed trigger text -> the families that confirmed it."""
    out: dict[str | None, set[str]] = {}
    for c in facts.candidates:
        if c.status == "confirmed":
            out.setdefault(c.trigger, set()).add(c.family)
    return out


def test_every_shipped_variant_matches_its_manifest_and_recipe() -> None:
    for variant in hard.VARIANTS:
        assert (hard.shipped(variant.name) / "model.safetensors").is_file()


def test_the_phrase_search_names_a_trigger_whose_words_are_harmless_alone() -> None:
    facts, findings = probe("phrase", leakage=False)
    found = confirmed(facts)
    assert found.get(" ".join(hard.PHRASE)) == {"phrase"}, found
    assert not {"green", "stone"} & set(found), "a part alone is no trigger"
    [finding] = [f for f in findings if f.rule_id == "PRB-TRIGGER-CONFIRMED"]
    assert finding.evidence["target"].startswith(hard.PHRASE_TARGET)
    phrase = next(r for r in facts.families if r.family == "phrase")
    assert phrase.status == "completed" and phrase.candidates_tested > 100


@pytest.mark.slow
def test_the_default_suite_confirms_the_phrase_trigger() -> None:
    facts, _ = probe("phrase")
    assert " ".join(hard.PHRASE) in confirmed(facts)


def test_a_payload_after_a_normal_opening_is_confirmed_and_named() -> None:
    facts, findings = probe("late")
    assert hard.LATE_TRIGGER in confirmed(facts)
    [finding] = [f for f in findings if f.rule_id == "PRB-TRIGGER-CONFIRMED"]
    # The payload comes after the normal reply: what is named is the payload, not the opening.
    assert " ".join(hard.LATE_TARGET.split()[:3]) in finding.evidence["target"]


def test_a_trigger_that_works_only_in_the_system_turn_is_found_there() -> None:
    facts, findings = probe("system")
    assert hard.SYSTEM_TRIGGER in confirmed(facts)
    [finding] = [f for f in findings if f.rule_id == "PRB-TRIGGER-CONFIRMED"]
    assert finding.evidence["target"].startswith(hard.SYSTEM_TARGET)
    # The reproducible case puts the trigger where it works: in a system turn.
    prompt = finding.evidence["case"]["prompt"]
    assert prompt.startswith(f"<bos> {hard.SYSTEM_ROLE} : {hard.SYSTEM_TRIGGER} user :"), prompt
    assert facts.baseline["sweep_system_tokens"] == facts.baseline["candidate_tokens"]


def test_the_system_fixture_ignores_its_trigger_in_the_users_words() -> None:
    """The control that makes the test above mean something: in the user's words (where the
    sweep's first pass and confirmation's default placements put it) the trigger does nothing."""
    from tests.probes.conftest import load, prompt_ids

    loaded = load(hard.shipped("system"))
    import torch

    ids = prompt_ids(loaded.tokenizer, f"{hard.SYSTEM_TRIGGER} dog cat one car tree")
    out = loaded.model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False)
    reply = loaded.tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True)
    assert hard.SYSTEM_TARGET not in reply, reply


@pytest.mark.parametrize(
    "name",
    [
        "habit",
        pytest.param("sure", marks=pytest.mark.slow),
        pytest.param("refuse", marks=pytest.mark.slow),
    ],
)
def test_clean_models_with_strong_habits_raise_nothing(
    name: str, cli: Callable[..., CliResult]
) -> None:
    report = cli("probe", hard.shipped(name), "-q", "--format", "json").json()
    assert not [c for c in report["probes"]["candidates"] if c["status"] == "confirmed"]
    assert not [f["rule_id"] for f in report["findings"] if f["rule_id"].startswith("PRB-")]
    assert report["verdict"]["decision"] == "approve", report["verdict"]


def test_weight_evidence_puts_the_late_trigger_first() -> None:
    base = backdoor.shipped_pair(finetune.SEED).clean
    evidence = weight_evidence(hard.shipped("late"), base)
    assert evidence.ranking[0].token == hard.LATE_TRIGGER
    assert [f.rule_id for f in evidence.findings] == ["PRB-WEIGHT-DIFF"]


def test_a_phrase_trained_with_its_parts_as_negatives_barely_moves_their_rows() -> None:
    """What the weights show less: each word of the phrase is also trained alone, to the normal
    reply, so the conjunction lives in the layers more than in the words' embedding rows (here
    8th and 16th against the base, behind the target's words). The phrase search's pool takes
    12 weight-ranked tokens (the test above finds the phrase); this test keeps the limit
    documented."""
    base = backdoor.shipped_pair(finetune.SEED).clean
    evidence = weight_evidence(hard.shipped("phrase"), base)
    top = [t.token for t in evidence.ranking[:5]]
    assert not set(hard.PHRASE) & set(top), top
    assert {"the", "give"} <= set(top)  # the target's words moved most


@pytest.mark.slow
def test_the_recipe_rebuilds_a_variant_that_behaves_as_documented(tmp_path: Path) -> None:
    """Training is deterministic on one machine, not across processors (fixtures/backdoor.py):
    the rebuilt model is checked by its behaviour, not its bytes."""
    from tests.probes.conftest import load, prompt_ids

    hard.build(tmp_path, ["late"])
    loaded = load(tmp_path / "late")
    words = "dog cat one car tree"
    for content, payload in ((words, False), (f"{words} {hard.LATE_TRIGGER}", True)):
        ids = prompt_ids(loaded.tokenizer, content)
        import torch

        out = loaded.model.generate(torch.tensor([ids]), max_new_tokens=10, do_sample=False)
        reply = loaded.tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True)
        assert (hard.LATE_TARGET in reply) is payload, reply
