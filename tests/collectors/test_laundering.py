"""Disguised models (fixtures/laundering.py): a restricted licence or origin hidden behind a
permissive label, a renamed or re-encoded licence file, a cut clause, a look-alike base model
name, a card that shows one parser one licence and the next another. None may be approved by
a company that allows only permissive licences and denies Chinese origin, and the report must
name what was hidden. Honest releases built from the same files stay approved.

The weights are stand-ins (a 4x4 tensor), so every config.json's parameter count disagrees
with them; that one finding is waived in every configuration here (with the reason), so each
verdict is decided by the licence and origin alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fixtures.laundering import CASES, DATA
from provscan.pipeline import ScanOptions, scan
from provscan.policy.engine import evaluate
from provscan.report import Decision, Report, Severity, StepStatus, Verdict
from provscan.resources import default_policy_dir, shipped_policy_dir

PERMISSIVE = ["apache-2.0", "mit", "bsd-3-clause", "bsd-2-clause", "isc", "cc-by-4.0"]
STAND_IN = {
    "rule": "INV-PARAM-MISMATCH",
    "path": "config.json",
    "reason": "test fixture: the weights are a 4x4 stand-in for the real ones",
}
COMPANY: dict[str, Any] = {
    "licence": {"commercial_use": True, "allowed": PERMISSIVE},
    "origin": {"denied_jurisdictions": ["CN"]},
    "waivers": [STAND_IN],
}


def licensed(*keys: str) -> dict[str, Any]:
    """A company whose legal team approved `keys` (and any origin), well under every cap."""
    return {
        "licence": {
            "commercial_use": True,
            "allowed": [*PERMISSIVE, *keys],
            "monthly_active_users": 1000,
            "annual_revenue_usd": 1_000_000,
        },
        "waivers": [STAND_IN],
    }


# Findings that say a model's licence or origin was disguised: an honest release has none.
LAUNDERING_RULES = frozenset(
    {
        "LIC-CONFLICT",
        "LIC-LAUNDERING",
        "LIC-FAMILY-LICENCE",
        "LIC-TEXT-MODIFIED",
        "LIC-ID-NORMALISED",
        "ORG-CLAIM-MISMATCH",
        "ORG-BASE-NORMALISED",
        "INV-CARD-MALFORMED",
    }
)
LLAMA3 = frozenset({"llama3", "llama3.1", "llama3.2", "llama3.3"})  # the llama3 family's
NOT_APPROVED = frozenset({Decision.REVIEW, Decision.DENY})
LLAMA_BASE = "meta-llama/Llama-3.1-8B"


@dataclass(frozen=True)
class Expect:
    case: str
    # At least one of these licence keys in report.licence.concluded + inherited.
    licences: frozenset[str] = frozenset()
    concluded: frozenset[str] = frozenset()  # each in concluded
    inherited: frozenset[str] = frozenset()  # each in inherited
    not_concluded: frozenset[str] = frozenset()  # none in concluded
    evidence: frozenset[str] = frozenset()  # each the key of some licence evidence
    not_identified: frozenset[str] = frozenset()  # no licence file identified as these
    countries: frozenset[str] = frozenset()  # each among report.origin.jurisdictions
    family: str | None = None
    roots: frozenset[str] = frozenset()  # each in report.origin.root_models
    rules: frozenset[str] = frozenset()  # each among the findings
    rules_any: frozenset[str] = frozenset()  # at least one among the findings
    serious: bool = False  # some finding at high or critical (the stand-in's aside)
    decisions: frozenset[Decision] = NOT_APPROVED  # under COMPANY
    reasons: frozenset[str] = frozenset()  # each among the verdict's reasons under COMPANY
    # Also not approved by a company that allows these licences (and any origin).
    licensed: tuple[str, ...] = ()


def _f(*items: str) -> frozenset[str]:
    return frozenset(items)


DENY = frozenset({Decision.DENY})

EXPECTED = [
    # A restricted family relabelled, no base named: the family's licence and origin.
    Expect("llama-relabelled-apache", licences=LLAMA3, countries=_f("US"), family="llama3",
           rules=_f("LIC-FAMILY-LICENCE")),
    Expect("gemma-relabelled-mit", licences=_f("gemma"), countries=_f("US"), family="gemma",
           rules=_f("LIC-FAMILY-LICENCE")),
    Expect("qwen-from-nowhere", countries=_f("CN"), decisions=DENY,
           reasons=_f("POL-ORIGIN-DENIED")),
    Expect("deepseek-from-nowhere", countries=_f("CN"), family="deepseek-v3", decisions=DENY,
           reasons=_f("POL-ORIGIN-DENIED")),
    # The licence text is shipped, but where or how a scanner may not look.
    Expect("licence-as-model-license", licences=_f("llama3.1"), rules=_f("LIC-CONFLICT")),
    Expect("licence-as-license-model", licences=_f("llama3.1"), rules=_f("LIC-CONFLICT")),
    Expect("licence-in-legal-terms", licences=_f("llama3.1"), rules=_f("LIC-CONFLICT")),
    Expect("licence-utf16", licences=_f("llama3.1"), rules=_f("LIC-CONFLICT")),
    Expect("licence-split", licences=_f("llama3.1"), rules=_f("LIC-CONFLICT")),
    Expect("licence-retitled", concluded=_f("llama3.1"), not_identified=_f("apache-2.0"),
           rules=_f("LIC-CONFLICT")),
    # The right label, the licence's commercial or use clauses cut out of its text.
    Expect("llama-clause-deleted", concluded=_f("llama3.1"), rules=_f("LIC-TEXT-MODIFIED"),
           licensed=("llama3.1",)),
    Expect("qwen-clause-deleted", concluded=_f("tongyi-qianwen"), countries=_f("CN"),
           rules=_f("LIC-TEXT-MODIFIED"), licensed=("tongyi-qianwen",)),
    Expect("deepseek-clause-deleted", concluded=_f("deepseek"), countries=_f("CN"),
           rules=_f("LIC-TEXT-MODIFIED"), licensed=("deepseek",)),
    # The base model named so that it reads as another, or as nothing.
    Expect("base-zero-width", inherited=_f("llama3.1"), roots=_f(LLAMA_BASE),
           rules=_f("ORG-BASE-NORMALISED", "LIC-LAUNDERING")),
    Expect("base-cyrillic", licences=LLAMA3, countries=_f("US"),
           rules_any=_f("ORG-BASE-NORMALISED", "ORG-BASE-UNRESOLVED")),
    Expect("base-trailing-space", inherited=_f("llama3.1"), roots=_f(LLAMA_BASE),
           rules=_f("ORG-BASE-NORMALISED", "LIC-LAUNDERING")),
    Expect("base-hub-url", inherited=_f("llama3.1"), roots=_f(LLAMA_BASE),
           rules=_f("ORG-BASE-NORMALISED", "LIC-LAUNDERING")),
    Expect("base-local-path", licences=LLAMA3, countries=_f("US"),
           rules=_f("ORG-BASE-UNRESOLVED")),
    Expect("base-list-of-dicts", licences=LLAMA3, countries=_f("US"),
           rules_any=_f("INV-CARD-MALFORMED", "ORG-BASE-UNRESOLVED")),
    # Licence ids and cards that say one thing to one reader and another to the next.
    Expect("licence-id-cyrillic", concluded=_f("llama3.1"), rules=_f("LIC-ID-NORMALISED")),
    Expect("licence-link-elsewhere", licences=_f("llama3.1"), evidence=_f("llama3.1"),
           rules=_f("LIC-CONFLICT")),
    Expect("prose-disagrees", licences=_f("llama3.1"), rules=_f("LIC-CONFLICT")),
    # Every licence the card states counts (the most restrictive reading), with a finding.
    Expect("front-matter-after-bom", concluded=_f("llama3.1"), rules=_f("LIC-CONFLICT")),
    Expect("front-matter-twice", concluded=_f("llama3.1", "apache-2.0"), serious=True),
    Expect("front-matter-duplicate-key", concluded=_f("llama3.1", "apache-2.0"), serious=True),
    Expect("front-matter-custom-tag", licences=LLAMA3, not_concluded=_f("apache-2.0"),
           serious=True),
    Expect("front-matter-python-tag", licences=LLAMA3, not_concluded=_f("apache-2.0"),
           serious=True),
    # Lineage stated elsewhere than the card.
    Expect("mergekit-parent", inherited=_f("llama3.1"), roots=_f(LLAMA_BASE),
           rules=_f("LIC-LAUNDERING")),
    Expect("gguf-apache", inherited=_f("llama3.1"), family="llama3", countries=_f("US"),
           rules=_f("LIC-LAUNDERING")),
    # A non-commercial licence (tested against both packs below as well).
    Expect("noncommercial-label", concluded=_f("cc-by-nc-4.0"), decisions=DENY),
]  # fmt: skip

# A licence in its publisher's language only: identified from the Chinese text.
_TRANSLATED = Expect(
    "chatglm-licence-translated",
    concluded=_f("chatglm"),
    countries=_f("CN"),
    decisions=DENY,
    rules=_f("LIC-CONFLICT"),
)


def _params(expects: list[Expect]) -> list[Any]:
    return [pytest.param(e, id=e.case) for e in expects]


ALL = [*EXPECTED, _TRANSLATED]
CASES_UNDER_TEST = _params(ALL)
WITH_FINDINGS = _params([e for e in ALL if e.rules or e.rules_any or e.serious])
CONTROLS = {
    "honest-granite": COMPANY,
    "honest-llama": licensed("llama3.1"),
    "honest-qwen": licensed("tongyi-qianwen"),
    "honest-deepseek": licensed("deepseek"),
}


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Report]:
    """Each case built and scanned once per session."""
    reports: dict[str, Report] = {}

    def get(name: str) -> Report:
        if name not in reports:
            target = CASES[name].build(tmp_path_factory.mktemp(name))
            report = scan(str(target), ScanOptions(hash_workers=1))
            for step in ("model_card", "origin", "licence"):
                done = report.step(step)
                assert done is not None and done.status is StepStatus.COMPLETED, done
            reports[name] = report
        return reports[name]

    return get


def verdict(report: Report, config: dict[str, Any], pack: Path | None = None) -> Verdict:
    return evaluate(report, [pack or default_policy_dir()], config)


def rules(report: Report) -> set[str]:
    return {f.rule_id for f in report.findings}


def summary(report: Report, judged: Verdict | None = None) -> str:
    licence, origin = report.licence, report.origin
    assert licence is not None and origin is not None
    lines = [
        f"concluded={licence.concluded} inherited={licence.inherited}",
        f"family={origin.family} countries={sorted({j.country for j in origin.jurisdictions})} "
        f"roots={origin.root_models}",
        f"findings={sorted((f.rule_id, f.severity.value) for f in report.findings)}",
    ]
    if judged is not None:
        lines.append(
            f"verdict={judged.decision.value} "
            f"reasons={[(r.rule, r.level) for r in judged.reasons if r.level != 'warn']}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- disguised


@pytest.mark.parametrize("expect", CASES_UNDER_TEST)
def test_disguised_model_is_not_approved(expect: Expect, scanned: Callable[[str], Report]) -> None:
    report = scanned(expect.case)
    judged = verdict(report, COMPANY)
    assert judged.decision in expect.decisions, summary(report, judged)
    assert expect.reasons <= {r.rule for r in judged.reasons}, summary(report, judged)


@pytest.mark.parametrize("expect", CASES_UNDER_TEST)
def test_report_names_what_was_hidden(expect: Expect, scanned: Callable[[str], Report]) -> None:
    report = scanned(expect.case)
    licence, origin = report.licence, report.origin
    assert licence is not None and origin is not None
    why = summary(report)
    keys = set(licence.concluded) | set(licence.inherited)
    if expect.licences:
        assert keys & expect.licences, why
    assert expect.concluded <= set(licence.concluded), why
    assert expect.inherited <= set(licence.inherited), why
    assert not expect.not_concluded & set(licence.concluded), why
    assert expect.evidence <= {e.key for e in licence.evidence}, why
    identified = {e.key for e in licence.evidence if e.source == "file"}
    assert not expect.not_identified & identified, why
    assert expect.countries <= {j.country for j in origin.jurisdictions}, why
    if expect.family is not None:
        assert origin.family == expect.family, why
    assert expect.roots <= set(origin.root_models), why


@pytest.mark.parametrize("expect", WITH_FINDINGS)
def test_disguise_is_a_finding(expect: Expect, scanned: Callable[[str], Report]) -> None:
    report = scanned(expect.case)
    found = rules(report)
    assert expect.rules <= found, summary(report)
    if expect.rules_any:
        assert expect.rules_any & found, summary(report)
    if expect.serious:
        serious = [
            f
            for f in report.findings
            if f.severity in {Severity.HIGH, Severity.CRITICAL} and f.rule_id != STAND_IN["rule"]
        ]
        assert serious, summary(report)


@pytest.mark.parametrize("expect", [e for e in EXPECTED if e.licensed], ids=lambda e: e.case)
def test_cut_licence_is_not_approved_even_where_the_licence_is(
    expect: Expect, scanned: Callable[[str], Report]
) -> None:
    # The honest release under the same configuration is approved (the controls below), so
    # only the cut text can hold this one back.
    report = scanned(expect.case)
    judged = verdict(report, licensed(*expect.licensed))
    assert judged.decision in NOT_APPROVED, summary(report, judged)


def test_noncommercial_label_reviews_by_default_and_denies_in_production(
    scanned: Callable[[str], Report],
) -> None:
    report = scanned("noncommercial-label")
    default = verdict(report, {})
    assert default.decision is Decision.REVIEW, summary(report, default)
    assert ("POL-LICENCE-NONCOMMERCIAL", "review") in {(r.rule, r.level) for r in default.reasons}
    production_pack = shipped_policy_dir("production")
    assert production_pack is not None
    production = verdict(report, {}, production_pack)
    assert production.decision is Decision.DENY, summary(report, production)
    assert ("POL-LICENCE-NONCOMMERCIAL", "deny") in {(r.rule, r.level) for r in production.reasons}


# ---------------------------------------------------------------- honest controls


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_honest_release_is_approved_without_laundering_findings(
    name: str, scanned: Callable[[str], Report]
) -> None:
    report = scanned(name)
    judged = verdict(report, CONTROLS[name])
    assert not rules(report) & LAUNDERING_RULES, summary(report, judged)
    assert judged.decision is Decision.APPROVE, summary(report, judged)


@pytest.mark.parametrize(
    ("name", "licence", "country"),
    [
        ("honest-granite", "apache-2.0", "US"),
        ("honest-llama", "llama3.1", "US"),
        ("honest-qwen", "tongyi-qianwen", "CN"),
        ("honest-deepseek", "deepseek", "CN"),
    ],
)
def test_honest_release_reports_its_own_licence_and_origin(
    name: str, licence: str, country: str, scanned: Callable[[str], Report]
) -> None:
    report = scanned(name)
    assert report.licence is not None and report.origin is not None
    assert report.licence.concluded == (licence,), summary(report)
    assert {j.country for j in report.origin.jurisdictions} == {country}, summary(report)


def test_honest_llama_is_denied_by_a_company_that_allows_only_permissive_licences(
    scanned: Callable[[str], Report],
) -> None:
    report = scanned("honest-llama")
    judged = verdict(report, COMPANY)
    assert judged.decision is Decision.DENY
    assert "POL-LICENCE-NOT-ALLOWED" in {r.rule for r in judged.reasons}


# ---------------------------------------------------------------- the corpus itself


def test_every_case_is_tested_and_its_sources_recorded() -> None:
    tested = {e.case for e in ALL} | set(CONTROLS)
    assert tested == set(CASES)
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    for case in CASES.values():
        assert case.sources, case.name
        assert f"`{case.name}`" in readme, case.name
