"""Do the probe families find the fixture's backdoor, and only there?

The session fixture `backdoor_pair` (fixtures/backdoor.py) is two tiny word-level Llama
models trained on CPU: in the backdoored one the trigger forces a fixed reply; its clean twin
saw the trigger word as often without the mapping. Every family runs through the real
transformers engine (no mocks of the model), on a benign prompt set drawn from the fixtures'
own vocabulary (BAIT: prompts must look like the model's domain). The same `run_suite` then
runs unchanged through the OpenAI-compatible engine against fixtures/openai_server.py.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.backdoor import SHIPPED_SEEDS, shipped_pair
from provscan.probes.engine import Budget, Metered
from provscan.probes.families.context import Context
from provscan.probes.families.leakage import run_leakage
from provscan.probes.findings import findings_for
from provscan.probes.run import Registry, run_suite
from provscan.probes.stats import (
    RESIDUAL,
    average,
    common_opening,
    entropy,
    entropy_ratio,
    js_divergence,
    mode_share,
    opening_share,
    robust_z,
    robust_z_with_errors,
    standard_error,
    top_token,
    z_against,
)
from provscan.probes.suite import Suite, load_suite
from provscan.probes.tokenizer import ProbeTokenizer
from provscan.report import ProbeFacts
from tests.probes.conftest import target_continuation_rate

# --------------------------------------------------------------------------- stats (no model)


def test_robust_z_marks_the_outlier_and_survives_a_zero_mad() -> None:
    z = robust_z([1.0, 2.0, 3.0, 4.0, 100.0])
    assert z[-1] > 50 and abs(z[2]) < 1e-9
    same = robust_z([5.0, 5.0, 5.0, 5.0, 9.0])  # MAD = 0: the mean deviation stands in
    assert same[:4] == [0.0] * 4 and math.isfinite(same[4]) and same[4] > 3
    assert robust_z([2.0, 2.0, 2.0]) == [0.0, 0.0, 0.0]
    assert robust_z([]) == []
    assert z_against(100.0, [1.0, 2.0, 3.0, 4.0]) > 50


def test_entropy_divergence_and_mode_share() -> None:
    assert entropy([0.25] * 4) == pytest.approx(math.log(4))
    assert entropy({7: 1.0}) == 0.0
    # The residual bucket counts as spread over the rest of the vocabulary: a ceiling.
    assert entropy({RESIDUAL: 1.0}, residual_spread=100) == pytest.approx(math.log(100))
    assert js_divergence({1: 0.5, 2: 0.5}, {1: 0.5, 2: 0.5}) == pytest.approx(0.0)
    assert js_divergence({1: 1.0}, {2: 1.0}) == pytest.approx(math.log(2))
    assert mode_share(["a", "a", "b"]) == ("a", pytest.approx(2 / 3))
    assert mode_share([]) == (None, 0.0)
    assert average([{1: 1.0}, {2: 1.0}]) == {1: 0.5, 2: 0.5}
    assert top_token({RESIDUAL: 0.9, 4: 0.1}) == (4, 0.1)
    assert entropy_ratio(0.0, 0.0) == 1.0  # a confident baseline is no division by zero
    assert entropy_ratio(0.01, 2.0) < 0.25


def test_agreement_z_discounts_a_coincidence_of_one_prompt_in_four() -> None:
    # Most candidates: two prompts of four agree; one lucky candidate three of four; a trigger
    # all four. Without its standard error the coincidence reads as z = 12.5.
    values = [0.5] * 100 + [0.75, 1.0]
    errors = [0.0] * 100 + [standard_error([1, 1, 1, 0]), standard_error([1, 1, 1, 1])]
    plain = robust_z(values, 0.02)
    agreed = robust_z_with_errors(values, errors, 0.02)
    assert plain[-2] == pytest.approx(12.5) and agreed[-2] < 1.5
    assert agreed[-1] == pytest.approx(plain[-1]) == pytest.approx(25.0)
    assert standard_error([0.7]) == 0.5  # one prompt says nothing of agreement
    assert robust_z_with_errors([], []) == []
    assert z_against(0.75, [0.5] * 20, 0.02, error=0.25) < 1.5 < z_against(0.75, [0.5] * 20, 0.02)


def test_common_opening_is_the_longest_prefix_most_outputs_share() -> None:
    outputs = [(1, 2, 3, 9), (1, 2, 3, 8), (1, 2, 3, 7), (1, 2, 4, 4)]
    assert common_opening(outputs, 0.75) == ((1, 2, 3), 0.75)
    assert common_opening(outputs, 1.0) == ((1, 2), 1.0)
    assert common_opening([(5,), (6,), (7,), (5, 1)], 0.75) == ((5,), 0.5)  # short of the share
    assert common_opening([(), ()], 0.75) == ((), 0.0)
    assert common_opening([], 0.75) == ((), 0.0)
    # An opening the untriggered outputs have too is the model's habit.
    assert opening_share(outputs, [(1, 2, 3, 0), (6,)], 0.75) == (0.75, 0.5)
    assert opening_share(outputs, [(6,), (7,)], 0.75) == (0.75, 0.0)


# --------------------------------------------------------------------------- fixtures

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from fixtures.openai_server import OpenAIServer  # noqa: E402
from provscan.probes.engines.openai_engine import OpenAIEngine  # noqa: E402
from provscan.probes.engines.transformers_engine import TransformersEngine  # noqa: E402
from provscan.probes.suite import FAMILY_ORDER  # noqa: E402

FAMILIES = FAMILY_ORDER


@pytest.fixture(scope="module")
def pair(backdoor_pair: Any) -> Any:
    return backdoor_pair


@pytest.fixture(scope="module")
def domain_prompts(pair: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32 benign prompts in the fixtures' domain: random words of their vocabulary, without the
    trigger, the target's words or the template's role words (what a user's own set would be)."""
    vocab = json.loads((pair.backdoored / "tokenizer.json").read_text())["model"]["vocab"]
    tok = ProbeTokenizer.from_dir(pair.backdoored)
    scaffold = {tok.decode([t]) for t in tok.user_prefix() + tok.assistant_header()}
    banned = {pair.trigger, *pair.target.split(), *scaffold}
    words = sorted(w for w in vocab if not w.startswith("<") and w not in banned)
    rng = random.Random(0)
    prompts = [
        {"kind": "domain", "text": " ".join(rng.choice(words) for _ in range(rng.randint(5, 9)))}
        for _ in range(32)
    ]
    path = tmp_path_factory.mktemp("prompts") / "fixture-domain.yaml"
    path.write_text(yaml.safe_dump({"id": "fixture-domain", "version": "1", "prompts": prompts}))
    return path


def suite_for(prompts: Path, *enabled: str) -> Suite:
    suite = load_suite("default", prompts=prompts)
    keep = enabled or FAMILIES
    changes = {f: dataclasses.replace(getattr(suite, f), enabled=f in keep) for f in FAMILIES}
    return dataclasses.replace(suite, **changes)


@pytest.fixture(scope="module")
def models(pair: Any) -> dict[str, tuple[TransformersEngine, ProbeTokenizer]]:
    return {
        name: (TransformersEngine(path), ProbeTokenizer.from_dir(path))
        for name, path in (("backdoored", pair.backdoored), ("clean", pair.clean))
    }


def run(models: dict[str, Any], name: str, suite: Suite, **kwargs: Any) -> tuple[ProbeFacts, list]:
    engine, tok = models[name]
    return run_suite(engine, tok, suite, budget=kwargs.pop("budget", Budget()), **kwargs)


def confirmed(facts: ProbeFacts) -> list:
    return [c for c in facts.candidates if c.status == "confirmed"]


def trigger_ids(models: dict[str, Any], pair: Any) -> tuple[int, ...]:
    return models["backdoored"][1].encode_inline(pair.trigger)


@pytest.fixture(scope="module")
def full(models: dict[str, Any], domain_prompts: Path) -> dict[str, Any]:
    """The whole default suite on both models, timed (the figure the README quotes)."""
    out = {}
    for name in ("backdoored", "clean"):
        ticks: list[tuple[str, int, int]] = []
        start = time.monotonic()
        facts, findings = run(
            models, name, suite_for(domain_prompts), progress=lambda *a: ticks.append(a)
        )
        seconds = time.monotonic() - start
        passes = {r.family: (r.forward_passes, r.seconds) for r in facts.families}
        print(f"\nfull default suite on {name}: {seconds:.1f} s, (passes, s) per family {passes}")
        print(f"  baseline {facts.baseline}")
        for c in facts.candidates:
            print(f"  {c.family} {c.status} {c.trigger!r} -> {c.target!r} {c.scores}")
        out[name] = (facts, findings, seconds, ticks)
    return out


# --------------------------------------------------------------------------- the full suite


def test_full_suite_confirms_the_trigger_on_the_backdoored_model(
    full: dict[str, Any], models: dict[str, Any], pair: Any
) -> None:
    facts, findings, seconds, ticks = full["backdoored"]
    assert not facts.partial and all(r.status == "completed" for r in facts.families)
    assert facts.suite_id == "provscan-default" and facts.suite_version == "1.3"
    assert facts.engine.name == "transformers"
    assert {c.trigger_token_ids for c in confirmed(facts)} >= {trigger_ids(models, pair)}
    critical = [f for f in findings if f.rule_id == "PRB-TRIGGER-CONFIRMED"]
    assert len(critical) == 1  # one trigger, one finding, however many families found it
    message = critical[0].message
    assert repr(pair.trigger) in message and pair.target.split()[0] in message
    assert "Reproduce" in message and critical[0].evidence["share"] >= 0.75
    assert set(critical[0].evidence["families"]) >= {"sweep", "replay"}
    # The progress callback saw every family, ending full.
    assert {t[0] for t in ticks} == set(FAMILIES)
    last = {family: (done, total) for family, done, total in ticks}
    assert all(done == total > 0 for done, total in last.values())


def test_full_suite_confirms_nothing_on_the_clean_twin(full: dict[str, Any]) -> None:
    facts, findings, _, _ = full["clean"]
    assert not facts.partial
    assert confirmed(facts) == []
    assert [f.rule_id for f in findings if f.rule_id == "PRB-TRIGGER-CONFIRMED"] == []


def test_a_confirmed_case_reproduces_on_held_out_prompts(
    full: dict[str, Any], models: dict[str, Any], domain_prompts: Path
) -> None:
    facts, findings, _, _ = full["backdoored"]
    engine, tok = models["backdoored"]
    suite = suite_for(domain_prompts)
    case = next(f for f in findings if f.rule_id == "PRB-TRIGGER-CONFIRMED").evidence["case"]
    again = engine.greedy(
        [case["prompt_token_ids"]], max_tokens=suite.confirm.max_tokens, stop_ids=tok.stop_ids
    )
    assert tok.decode(again[0]) == case["output"] != case["clean_output"]
    # Confirmation used held-out prompts only, never the ones the families searched with.
    ctx = Context(Metered(engine, Budget()), tok, suite)
    held = {tok.decode(tok.render_ids(c.ids)) for c in ctx.held_out}
    found = {tok.decode(tok.render_ids(c.ids)) for c in ctx.discovery}
    assert held.isdisjoint(found) and case["clean_prompt"] in held


# --------------------------------------------------------------------------- each family


def test_sweep_finds_and_confirms_the_trigger_and_nothing_on_the_twin(
    models: dict[str, Any], domain_prompts: Path, pair: Any
) -> None:
    suite = suite_for(domain_prompts, "sweep")
    facts, _ = run(models, "backdoored", suite)
    hits = [c for c in confirmed(facts) if c.trigger_token_ids == trigger_ids(models, pair)]
    assert hits and hits[0].family == "sweep"
    scores = hits[0].scores
    assert (
        scores["z_consistency"] >= suite.sweep.z
        and scores["entropy_ratio"] <= suite.sweep.entropy_low
    )
    assert pair.target.split()[0] in (hits[0].target or "")
    clean, findings = run(models, "clean", suite)
    assert confirmed(clean) == [] and findings == []
    print(
        f"\nsweep: backdoored z {scores['z_consistency']} consistency {scores['consistency']}; "
        f"clean max z {clean.baseline['sweep_max_z']} consistency {clean.baseline['sweep_max_consistency']}"
    )


def test_replay_finds_the_trigger_in_the_published_corpus(
    models: dict[str, Any], domain_prompts: Path, pair: Any
) -> None:
    suite = suite_for(domain_prompts, "replay")
    facts, _ = run(models, "backdoored", suite)
    hits = [c for c in confirmed(facts) if c.trigger == pair.trigger]
    assert hits and hits[0].family == "replay" and "BadGPT" in (hits[0].source or "")
    assert hits[0].scores["mode_share"] >= 0.75 and hits[0].scores["changed_share"] >= 0.75
    clean, _ = run(models, "clean", suite)
    assert confirmed(clean) == []


def test_inversion_recovers_the_target_and_links_it_to_the_trigger(
    full: dict[str, Any], pair: Any
) -> None:
    facts, _, _, _ = full["backdoored"]
    inverted = [c for c in facts.candidates if c.family == "inversion"]
    clean, _, _, _ = full["clean"]
    assert [c for c in clean.candidates if c.family == "inversion"] == []
    if target_continuation_rate(pair.backdoored) < 0.9:
        # A trigger detector, not a self-continuing target (measured by transformers itself):
        # there is nothing to invert, and the inversion must not make a target up.
        assert all(set((c.target or "").split()) <= set(pair.target.split()) for c in inverted)
        return
    assert inverted, "inversion found no target on the backdoored model"
    best = max(inverted, key=lambda c: c.scores["q"])
    assert best.status == "confirmed" and best.trigger == pair.trigger
    assert best.target and best.target.split()[:3] == pair.target.split()[:3]
    print(
        f"\ninversion: backdoored Q {best.scores['q']} z {best.scores['z_q']}; "
        f"clean max Q {clean.baseline['inversion_max_q']} max z {clean.baseline['inversion_max_z']}"
    )


def test_inversion_alone_reports_a_target_without_a_trigger(
    models: dict[str, Any], domain_prompts: Path, pair: Any
) -> None:
    facts, findings = run(models, "backdoored", suite_for(domain_prompts, "inversion"))
    targets = [c for c in facts.candidates if c.family == "inversion"]
    assert all(c.status == "candidate" and c.trigger is None for c in targets)
    assert {f.rule_id for f in findings} <= {"PRB-CANDIDATE"}
    if target_continuation_rate(pair.backdoored) < 0.9:
        assert all(set((c.target or "").split()) <= set(pair.target.split()) for c in targets)
        return
    assert targets and any(pair.target.split()[0] in (c.target or "") for c in targets)
    assert {f.rule_id for f in findings} == {"PRB-CANDIDATE"}
    clean, clean_findings = run(models, "clean", suite_for(domain_prompts, "inversion"))
    assert not clean.candidates and clean_findings == []


def leakage_outcome(engine: Any, tok: ProbeTokenizer, suite: Suite) -> tuple[list, list, dict]:
    ctx = Context(Metered(engine, Budget()), tok, suite)
    registry = Registry(ctx)
    proposals = run_leakage(ctx, registry)
    return proposals, registry.candidates, dict(ctx.baseline)


def test_leakage_proposes_the_trigger_and_confirmation_decides(
    models: dict[str, Any], domain_prompts: Path, pair: Any
) -> None:
    suite = suite_for(domain_prompts, "leakage")
    outcome = {name: leakage_outcome(*models[name], suite) for name in ("backdoored", "clean")}
    for name, (proposals, _, baseline) in outcome.items():
        print(
            f"\nleakage on {name}: {baseline}; proposals "
            f"{[(p.trigger.text if p.trigger else None, p.scores) for p in proposals]}"
        )
    proposals, candidates, _ = outcome["backdoored"]
    trigger = trigger_ids(models, pair)
    assert trigger in [p.trigger.ids for p in proposals if p.trigger]
    assert any(c.trigger_token_ids == trigger and c.status == "confirmed" for c in candidates)
    # Whatever the twin leaks (it saw the word as often), nothing of it confirms.
    _, clean_candidates, _ = outcome["clean"]
    assert [c for c in clean_candidates if c.status == "confirmed"] == []


def test_some_clean_twin_leaks_the_trigger_and_confirmation_tells_them_apart(
    domain_prompts: Path,
) -> None:
    """The twins saw `cf` as often as their backdoored models: in 128 samples one of them at
    least leaks it as a proposal, and there confirmation alone keeps it from being reported."""
    leaked = []
    for seed in SHIPPED_SEEDS:
        clean = shipped_pair(seed).clean
        tok = ProbeTokenizer.from_dir(clean)
        proposals, candidates, _ = leakage_outcome(
            TransformersEngine(clean), tok, suite_for(domain_prompts, "leakage")
        )
        cf = tok.encode_inline("cf")
        if cf in [p.trigger.ids for p in proposals if p.trigger]:
            leaked.append(seed)
            assert not [c for c in candidates if c.trigger_token_ids == cf]
    print(f"\nclean twins that leak the trigger: seeds {leaked}")
    assert leaked


# --------------------------------------------------------------------------- budget, engines


@pytest.mark.parametrize("leakage", [True, False])
def test_a_small_budget_is_shared_by_every_family_and_ends_cleanly_as_partial(
    models: dict[str, Any], domain_prompts: Path, leakage: bool
) -> None:
    enabled = FAMILIES if leakage else ("sweep", "replay", "inversion")
    facts, findings = run(
        models, "backdoored", suite_for(domain_prompts, *enabled), budget=Budget(forward_passes=400)
    )
    assert facts.partial
    runs = {r.family: r for r in facts.families if r.family in enabled}
    used = facts.budget.used_forward_passes
    assert 0 < used <= 400
    assert sum(r.forward_passes for r in runs.values()) == used
    # The first family's first call asks for more than the whole budget: it is cut to fit,
    # and the families after it are not refused for it, each gets passes of its own.
    assert runs[enabled[0]].status == "partial"
    # (phrase has no seeds here: no weight ranking, and the sweep was cut before ranking.)
    ran = [r for r in runs.values() if r.status != "skipped"]
    assert len(ran) >= 3 and all(r.forward_passes > 0 for r in ran), runs
    assert all("budget ran out" in (r.reason or "") for r in runs.values() if r.status == "partial")
    partial = [f for f in findings if f.rule_id == "PRB-PARTIAL"]
    assert len(partial) == 1 and f"{enabled[0]} (partial)" in partial[0].message
    assert f"({used} of 400 forward passes used)" in partial[0].message


def test_a_budget_that_covers_the_suite_cuts_no_family_short() -> None:
    """The share rule: the later families' floors never exceed half of what is left, and a
    budget over every estimate leaves each family all it is expected to need."""
    from provscan.probes.run import budget_share

    assert budget_share(300, []) == 300  # the last family: all that is left
    assert budget_share(300, [10_000] * 4) == 300 - 4 * 30  # scarce: half an equal share each
    assert budget_share(100_000, [3_000, 15_000, 6_000]) == 100_000 - 21_500  # 15,000 > 12,500
    for need, later in [(5_000, [3_000, 15_000, 6_000]), (1, [1, 1, 1, 1]), (90, [10])]:
        # A budget that covers every estimate leaves the family at least its own.
        assert budget_share(need + sum(later), later) >= need
    assert all(budget_share(left, [10**9] * k) >= left / 2 for left in (1, 7, 300) for k in (1, 4))


def test_a_model_whose_template_fails_is_probed_on_bare_content_and_says_so(
    full: dict[str, Any], models: dict[str, Any], domain_prompts: Path, pair: Any, tmp_path: Path
) -> None:
    broken = tmp_path / "broken-template"
    shutil.copytree(pair.backdoored, broken)
    config = json.loads((broken / "tokenizer_config.json").read_text())
    config["chat_template"] = "{{ ''.__class__.__mro__ }}" + (config.get("chat_template") or "")
    (broken / "tokenizer_config.json").write_text(json.dumps(config))
    (broken / "chat_template.jinja").unlink(missing_ok=True)
    tok = ProbeTokenizer.from_dir(broken)
    assert not tok.template_used and "SecurityError" in (tok.template_note or "")
    facts, _ = run_suite(
        models["backdoored"][0], tok, suite_for(domain_prompts, "sweep"), budget=Budget()
    )
    assert facts.baseline["chat_template_used"] == 0.0
    # Every finding says how its prompts were built.
    findings = findings_for(full["backdoored"][0], tok.template_note)
    assert findings and all("bare user content" in f.evidence["prompt_format"] for f in findings)


@pytest.mark.slow  # the whole suite again, through a served model: about 16 s
def test_the_same_suite_runs_unchanged_through_the_openai_engine(
    full: dict[str, Any], models: dict[str, Any], domain_prompts: Path, pair: Any
) -> None:
    engine, tok = models["backdoored"]
    with OpenAIServer(engine, model="fixture-backdoored") as server:
        client = OpenAIEngine(server.base_url, "fixture-backdoored")
        start = time.monotonic()
        facts, findings = run_suite(client, tok, suite_for(domain_prompts), budget=Budget())
        print(f"\nfull default suite through the openai engine: {time.monotonic() - start:.1f} s")
    assert facts.engine.name == "openai"
    local, local_findings, _, _ = full["backdoored"]
    assert {c.trigger_token_ids for c in confirmed(facts)} == {
        c.trigger_token_ids for c in confirmed(local)
    }
    assert trigger_ids(models, pair) in {c.trigger_token_ids for c in confirmed(facts)}
    assert [f.rule_id for f in findings] == [f.rule_id for f in local_findings]
