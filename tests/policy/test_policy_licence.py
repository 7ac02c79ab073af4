"""The default pack's licence and origin rules: what their messages say, not only their ids.

The table tests (policies/default/tests/, `provscan policy test`) compare rule ids and the
verdict; these check the text a person acts on: the clause quoted, the attribution to show,
the ancestor a licence comes from, the config key that is wrong.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from provscan.policy.engine import evaluate
from provscan.report import SCHEMA_VERSION, Decision, Reason, Report, Verdict
from provscan.resources import default_policy_dir

PACK = default_policy_dir()
CASES = PACK / "tests"


def case_doc(case: str) -> dict[str, Any]:
    return json.loads((CASES / case / "input.json").read_text())


def case_config(case: str) -> dict[str, Any]:
    return yaml.safe_load((CASES / case / "expected.yaml").read_text()).get("config") or {}


def run(doc: dict[str, Any], config: dict[str, Any]) -> Verdict:
    return evaluate(Report.model_validate(doc), [PACK], config)


def run_case(case: str, **config: Any) -> Verdict:
    return run(case_doc(case), {**case_config(case), **config})


def reasons(verdict: Verdict, rule: str, level: str) -> list[Reason]:
    return [r for r in verdict.reasons if r.rule == rule and r.level == level]


def only(verdict: Verdict, rule: str, level: str) -> Reason:
    found = reasons(verdict, rule, level)
    assert len(found) == 1, verdict.reasons
    return found[0]


def terms_entry(doc: dict[str, Any], key: str) -> dict[str, Any]:
    return next(t for t in doc["licence"]["terms"] if t["key"] == key)


# ---------------------------------------------------------------- territory


@pytest.mark.parametrize(
    ("case", "territory"),
    [("licence_territory_eu_deny", "EU"), ("licence_territory_member_state_deny", "DE")],
)
def test_territory_deny_quotes_the_clause_exactly(case: str, territory: str) -> None:
    doc = case_doc(case)
    restriction = terms_entry(doc, "llama3.2")["territorial"][0]
    verdict = run_case(case)
    assert verdict.decision is Decision.DENY
    reason = only(verdict, "POL-LICENCE-TERRITORY", "deny")
    clause = restriction["clause"]
    assert clause.startswith("With respect to any multimodal models included in Llama 3.2")
    assert reason.msg == (
        f'Llama 3.2 Community License Agreement: deployment territory {territory} is excluded: "{clause}"'
    )
    assert reason.details == {
        "licence": "llama3.2",
        "territory": territory,
        "scope": "multimodal",
        "applies": True,
        "clause": clause,
    }


def test_territory_restriction_only_in_the_aup_is_reported_under_the_aup() -> None:
    doc = case_doc("licence_territory_eu_deny")
    terms_entry(doc, "llama3.2")["territorial"] = []
    reason = only(run(doc, {"deployment_territory": "EU"}), "POL-LICENCE-TERRITORY", "deny")
    assert reason.msg.startswith("Llama 3.2 Acceptable Use Policy: deployment territory EU")
    assert reason.details["licence"] == "llama3.2-aup"


def test_territory_list_names_the_excluded_member() -> None:
    verdict = run_case("licence_territory_list_deny")
    reason = only(verdict, "POL-LICENCE-TERRITORY", "deny")
    assert "deployment territory FR is excluded" in reason.msg
    assert reason.details["territory"] == "FR"


def test_territory_codes_compare_case_insensitively() -> None:
    verdict = run_case("licence_territory_eu_deny", deployment_territory="de")
    assert only(verdict, "POL-LICENCE-TERRITORY", "deny").details["territory"] == "de"


def test_territory_unknown_scope_review_quotes_the_clause() -> None:
    doc = case_doc("licence_territory_applies_unknown_review")
    clause = terms_entry(doc, "llama3.2")["territorial"][0]["clause"]
    reason = only(
        run_case("licence_territory_applies_unknown_review"), "POL-LICENCE-TERRITORY", "review"
    )
    assert f'"{clause}"' in reason.msg
    assert "cannot tell" in reason.msg and "multimodal" in reason.msg


def test_territory_other_eu_member_list_is_used() -> None:
    # eu_member_states decides what "EU" covers.
    verdict = run_case("licence_territory_member_state_deny", eu_member_states=["FR"])
    assert reasons(verdict, "POL-LICENCE-TERRITORY", "deny") == []


# ---------------------------------------------------------------- attribution


def test_attribution_warning_gives_the_text_to_show_and_ship() -> None:
    verdict = run_case("licence_attribution_warn")
    assert verdict.decision is Decision.APPROVE
    reason = only(verdict, "POL-LICENCE-ATTRIBUTION", "warn")
    notice = terms_entry(case_doc("licence_attribution_warn"), "llama3.1")["attribution_notice"]
    assert reason.msg == (
        "Llama 3.1 Community License Agreement requires: "
        'display "Built with Llama"; '
        f'ship the notice "{notice}"; '
        'derivative model names must begin with "Llama"'
    )
    assert reason.details == {
        "licence": "llama3.1",
        "display": "Built with Llama",
        "notice": notice,
        "naming_prefix": "Llama",
    }


def test_attribution_lists_only_the_duties_a_licence_has() -> None:
    doc = case_doc("licence_attribution_warn")
    llama = terms_entry(doc, "llama3.1")
    llama["attribution_display"] = None
    llama["naming_prefix"] = None
    reason = only(run(doc, {}), "POL-LICENCE-ATTRIBUTION", "warn")
    assert reason.msg == (
        f'Llama 3.1 Community License Agreement requires: ship the notice "{llama["attribution_notice"]}"'
    )


def test_inherited_attribution_names_the_ancestor() -> None:
    reason = only(run_case("licence_denied_inherited_deny"), "POL-LICENCE-ATTRIBUTION", "warn")
    assert reason.msg.startswith(
        "Llama 3.1 Community License Agreement (via meta-llama/Llama-3.1-8B-Instruct) requires: "
    )
    assert reason.details["via"] == "meta-llama/Llama-3.1-8B-Instruct"


# ---------------------------------------------------------------- denied / allowed


def test_inherited_denied_licence_names_its_ancestor() -> None:
    reason = only(run_case("licence_denied_inherited_deny"), "POL-LICENCE-DENIED", "deny")
    assert reason.msg.startswith(
        "licence Llama 3.1 Community License Agreement (llama3.1), "
        "inherited via meta-llama/Llama-3.1-8B-Instruct, is denied by config licence.denied"
    )
    assert reason.details == {
        "licence": "llama3.1",
        "inherited": True,
        "via": "meta-llama/Llama-3.1-8B-Instruct",
    }


def test_own_denied_licence_is_not_called_inherited() -> None:
    reason = only(run_case("licence_denied_own_deny"), "POL-LICENCE-DENIED", "deny")
    assert "inherited" not in reason.msg
    assert reason.msg.startswith(
        "licence Creative Commons Attribution-NonCommercial 4.0 International (cc-by-nc-4.0) is denied"
    )


def test_not_allowed_names_the_allow_list() -> None:
    reason = only(run_case("licence_not_allowed_deny"), "POL-LICENCE-NOT-ALLOWED", "deny")
    assert 'is not in config licence.allowed ["apache-2.0", "mit"]' in reason.msg


# ---------------------------------------------------------------- commercial use


def test_noncommercial_review_quotes_the_commercial_note() -> None:
    doc = case_doc("licence_noncommercial_commercial_use_review")
    note = terms_entry(doc, "cc-by-nc-4.0")["commercial_note"]
    reason = only(
        run_case("licence_noncommercial_commercial_use_review"),
        "POL-LICENCE-NONCOMMERCIAL",
        "review",
    )
    assert reason.msg == (
        "Creative Commons Attribution-NonCommercial 4.0 International does not permit commercial "
        f'use, and config licence.commercial_use is true: "{note}"'
    )


def test_noncommercial_without_a_note() -> None:
    doc = case_doc("licence_noncommercial_commercial_use_review")
    terms_entry(doc, "cc-by-nc-4.0")["commercial_note"] = None
    reason = only(
        run(doc, {"licence": {"noncommercial": "deny"}}), "POL-LICENCE-NONCOMMERCIAL", "deny"
    )
    assert reason.msg.endswith("and config licence.commercial_use is true")


def test_no_commercial_use_says_why_a_noncommercial_licence_did_not_count() -> None:
    verdict = run_case("licence_noncommercial_no_commercial_use_approve")
    assert verdict.decision.value == "approve"
    reason = only(verdict, "POL-LICENCE-NONCOMMERCIAL", "warn")
    assert "not counted because config licence.commercial_use is false" in reason.msg


def test_acceptable_use_policies_are_not_licences_for_commercial_use() -> None:
    # The Llama AUP entry (kind aup, commercial unknown) must not add a second review.
    verdict = run_case("licence_commercial_conditional_review")
    reason = only(verdict, "POL-LICENCE-NONCOMMERCIAL", "review")
    assert reason.details == {"licence": "llama3.1", "commercial": "conditional"}


# ---------------------------------------------------------------- thresholds


def test_threshold_quotes_the_clause_and_the_numbers() -> None:
    doc = case_doc("licence_mau_over_threshold_deny")
    clause = terms_entry(doc, "llama3.1")["thresholds"][0]["clause"]
    reason = only(run_case("licence_mau_over_threshold_deny"), "POL-LICENCE-THRESHOLD", "deny")
    assert (
        "our monthly active users is 800000000, over the licence's limit of 700000000" in reason.msg
    )
    assert reason.msg.endswith(f'"{clause}"')
    assert reason.details["metric"] == "monthly_active_users"


def test_threshold_at_the_limit_is_not_over_it() -> None:
    verdict = run_case(
        "licence_mau_over_threshold_deny", licence={"monthly_active_users": 700000000}
    )
    assert reasons(verdict, "POL-LICENCE-THRESHOLD", "deny") == []


def test_monthly_revenue_is_annual_revenue_over_twelve() -> None:
    reason = only(
        run_case("licence_monthly_revenue_threshold_deny"), "POL-LICENCE-THRESHOLD", "deny"
    )
    assert reason.details["ours"] == 125000


# ---------------------------------------------------------------- unknown licence / origin


def test_unknown_licence_names_the_signals_found() -> None:
    reason = only(run_case("licence_unknown_review"), "POL-LICENCE-UNKNOWN", "review")
    assert "card:license=other" in reason.msg


def test_unknown_licence_level_warn() -> None:
    verdict = run_case("licence_unknown_review", licence={"unknown": "warn"})
    assert verdict.decision is Decision.APPROVE
    only(verdict, "POL-LICENCE-UNKNOWN", "warn")


def test_unknown_origin_level_review() -> None:
    verdict = run_case("origin_unknown_warn", origin={"unknown": "review"})
    assert verdict.decision is Decision.REVIEW
    assert "someone-unknown" in only(verdict, "POL-ORIGIN-UNKNOWN", "review").msg


# ---------------------------------------------------------------- origin


def test_origin_denied_names_country_org_role_and_evidence() -> None:
    reason = only(run_case("origin_denied_deny"), "POL-ORIGIN-DENIED", "deny")
    assert reason.msg.startswith(
        "the weights come from CN: Qwen is the publisher of a base model at the root of its "
        "lineage (high confidence; evidence: base model Qwen/Qwen2.5-7B-Instruct; Alibaba Cloud"
    )
    assert "origin.denied_jurisdictions" in reason.msg
    assert reason.details["country"] == "CN" and reason.details["role"] == "root"


def test_origin_roles_are_spelled_out() -> None:
    doc = case_doc("origin_denied_deny")
    doc["origin"]["jurisdictions"] = [
        {
            "country": "cn",
            "org": "uploader",
            "role": "publisher",
            "confidence": "low",
            "evidence": "e1",
        },
        {
            "country": "CN",
            "org": "Qwen",
            "role": "family",
            "confidence": "medium",
            "evidence": "e2",
        },
    ]
    found = reasons(run(doc, case_config("origin_denied_deny")), "POL-ORIGIN-DENIED", "deny")
    messages = sorted(r.msg for r in found)
    assert len(messages) == 2
    assert messages[0].startswith(
        "the weights come from CN: Qwen is the developer of the model family provscan "
        "identified (medium confidence; evidence: e2)"
    )
    assert messages[1].startswith(
        "the weights come from cn: uploader is the publisher of this model (low confidence; evidence: e1)"
    )


def test_origin_denied_wins_but_other_review_countries_still_review() -> None:
    doc = case_doc("origin_denied_wins_over_review_deny")
    doc["origin"]["jurisdictions"].append(
        {
            "country": "US",
            "org": "acme",
            "role": "publisher",
            "confidence": "medium",
            "evidence": "e",
        }
    )
    verdict = run(doc, case_config("origin_denied_wins_over_review_deny"))
    assert only(verdict, "POL-ORIGIN-DENIED", "deny").details["country"] == "CN"
    assert only(verdict, "POL-ORIGIN-REVIEW", "review").details["country"] == "US"


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    "case", sorted(p.name for p in CASES.iterdir() if p.name.startswith("config_bad_"))
)
def test_bad_config_names_the_key(case: str) -> None:
    config = case_config(case)
    verdict = run_case(case)
    assert verdict.decision is Decision.DENY
    keys = {r.details["key"] for r in reasons(verdict, "POL-BAD-CONFIG", "deny")}
    section = next(iter(config))
    value = config[section]
    expected = {section} if not isinstance(value, dict) else {f"{section}.{k}" for k in value}
    if section == "severity_levels":
        expected = {f"severity_levels.{k}" for k in value}
    assert expected <= keys


def test_defaults_are_valid_config() -> None:
    verdict = run_case("licence_apache_approve")
    assert verdict.decision is Decision.APPROVE and verdict.reasons == ()


# ---------------------------------------------------------------- documentation


def emitted_by_new_modules() -> set[str]:
    found: set[str] = set()
    for name in ("licence.rego", "origin.rego"):
        found |= set(re.findall(r'"(POL-[A-Z-]+)"', (PACK / name).read_text()))
    return found


def test_new_rule_ids_are_documented_and_tested() -> None:
    assert emitted_by_new_modules() == {
        "POL-LICENCE-DENIED",
        "POL-LICENCE-NOT-ALLOWED",
        "POL-LICENCE-NONCOMMERCIAL",
        "POL-LICENCE-THRESHOLD",
        "POL-LICENCE-TERRITORY",
        "POL-LICENCE-UNKNOWN",
        "POL-LICENCE-ATTRIBUTION",
        "POL-ORIGIN-DENIED",
        "POL-ORIGIN-REVIEW",
        "POL-ORIGIN-UNKNOWN",
    }
    readme = (PACK / "README.md").read_text()
    expected_files = " ".join(p.read_text() for p in CASES.glob("*/expected.yaml"))
    for rule in emitted_by_new_modules():
        assert f"`{rule}`" in readme, rule
        assert rule in expected_files, rule


def test_readme_documents_every_config_key() -> None:
    config = yaml.safe_load((PACK / "data.yaml").read_text())["config"]
    readme = (PACK / "README.md").read_text()
    for key, value in config.items():
        # a top-level key, a [table] or an [[array of tables]] in the README's TOML example
        assert re.search(rf"^\[{{0,2}}{key}\b", readme, flags=re.M), key
        if isinstance(value, dict):
            for sub in value:
                assert re.search(rf"^{sub} = ", readme, flags=re.M), f"{key}.{sub}"


def test_data_yaml_defaults() -> None:
    config = yaml.safe_load((PACK / "data.yaml").read_text())["config"]
    assert config["required_steps"][-2:] == ["origin", "licence"]
    assert config["licence"] == {
        "allowed": [],
        "denied": [],
        "commercial_use": True,
        "noncommercial": "review",
        "monthly_active_users": None,
        "annual_revenue_usd": None,
        "unknown": "review",
        "attribution": "warn",
    }
    assert config["deployment_territory"] is None
    assert len(config["eu_member_states"]) == 27
    assert config["origin"] == {
        "denied_jurisdictions": [],
        "review_jurisdictions": [],
        "unknown": "warn",
    }


def test_case_inputs_are_current_reports() -> None:
    for path in CASES.glob("*/input.json"):
        doc = json.loads(path.read_text())
        # Any minor version of the current major: later minors only add fields.
        assert doc["schema_version"].split(".")[0] == SCHEMA_VERSION.split(".")[0], path
        Report.model_validate(doc)
