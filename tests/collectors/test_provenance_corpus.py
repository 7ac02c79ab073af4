"""Real release metadata (public repositories' files, in tests/data/corpus) -> publisher,
country, family, lineage and licence; and the same with the model card stripped."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.models import build_hf_cache_snapshot, build_metadata_model
from provscan.pipeline import ScanOptions, scan
from provscan.report import Report, StepStatus
from tests.conftest import TESTS

CORPUS = TESTS / "data" / "corpus"
REVISION = "0123456789abcdef0123456789abcdef01234567"


@dataclass(frozen=True)
class Expect:
    folder: str
    repo_id: str
    publisher: str | None  # publishers.yaml key of the uploader (None: not in the registry)
    countries: frozenset[str]  # every jurisdiction the scan must name
    family: str | None
    licence: tuple[str, ...]  # concluded own licence keys
    inherited: tuple[str, ...] = ()
    stripped_family: str | None = None  # family with the card removed, from files alone
    stripped_countries: frozenset[str] = frozenset()


CASES = [
    Expect("bigscience__bloom", "bigscience/bloom", "bigscience", frozenset({"FR"}), "bloom",
           ("bigscience-bloom-rail-1.0",), stripped_family="bloom",
           stripped_countries=frozenset({"FR"})),
    # Only generation_config.json survived in the mirror: the Hub repo id is the evidence.
    Expect("tiiuae__falcon-180B-chat", "tiiuae/falcon-180B-chat", "tii", frozenset({"AE"}),
           "falcon", ("falcon-180b",)),
    Expect("google__gemma-2b-it", "google/gemma-2b-it", "google", frozenset({"US"}), "gemma",
           ("gemma",), stripped_family="gemma", stripped_countries=frozenset({"US"})),
    Expect("Qwen__Qwen-72B", "Qwen/Qwen-72B", "alibaba-qwen", frozenset({"CN"}), "qwen1",
           ("tongyi-qianwen",), stripped_family="qwen1", stripped_countries=frozenset({"CN"})),
    Expect("ibm-granite__granite-3.1-1b-a400m-instruct",
           "ibm-granite/granite-3.1-1b-a400m-instruct", "ibm", frozenset({"US"}), "granite",
           ("apache-2.0",), stripped_family="granite", stripped_countries=frozenset({"US"})),
    Expect("mistralai__Devstral-Small-2507", "mistralai/Devstral-Small-2507", "mistral",
           frozenset({"FR"}), "mistral-tekken", ("apache-2.0",),
           stripped_family="mistral-tekken", stripped_countries=frozenset({"FR"})),
    Expect("deepseek-ai__DeepSeek-V3", "deepseek-ai/DeepSeek-V3", "deepseek", frozenset({"CN"}),
           "deepseek-v3", ("deepseek",)),
    # A fine-tune by an uploader the registry does not know: origin comes from its base.
    Expect("xap__Meta-Llama3.1-8B-Instruct-assessment",
           "xap/Meta-Llama3.1-8B-Instruct-assessment", None, frozenset({"US"}), "llama3",
           ("llama3",), inherited=("llama3.1",), stripped_family="llama3",
           stripped_countries=frozenset({"US"})),
    Expect("IrfanUruchi__Llama-3.1-8B-Computer-Networks-LLM",
           "IrfanUruchi/Llama-3.1-8B-Computer-Networks-LLM", None, frozenset({"US"}), "llama3",
           (), inherited=("llama3.1",), stripped_family="llama3",
           stripped_countries=frozenset({"US"})),
    Expect("YouriLalain__3PRYMMAL-PHI3-3B-SLERP", "YouriLalain/3PRYMMAL-PHI3-3B-SLERP", None,
           frozenset({"US"}), "phi3", (), inherited=("mit",), stripped_family="phi3",
           stripped_countries=frozenset({"US"})),
    Expect("bryce-hoehn__Qwen3.5-18B-REAP-A3B-Coding", "bryce-hoehn/Qwen3.5-18B-REAP-A3B-Coding",
           None, frozenset({"CN"}), "qwen2", ("apache-2.0",), stripped_family="qwen2",
           stripped_countries=frozenset({"CN"})),
]  # fmt: skip


def _scan(path: Path) -> Report:
    report = scan(str(path), ScanOptions(hash_workers=1))
    for name in ("origin", "licence"):
        step = report.step(name)
        assert step is not None and step.status is StepStatus.COMPLETED, step
    return report


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.folder)
def test_release_metadata_gives_publisher_country_family_and_licence(
    case: Expect, tmp_path: Path
) -> None:
    model = build_metadata_model(tmp_path / "src", CORPUS / case.folder)
    report = _scan(build_hf_cache_snapshot(tmp_path / "hub", case.repo_id, REVISION, model))
    origin, licence = report.origin, report.licence
    assert origin is not None and licence is not None
    publisher = origin.publisher
    assert publisher is not None and publisher.org == case.repo_id.split("/")[0]
    assert publisher.key == case.publisher
    assert {j.country for j in origin.jurisdictions} == case.countries
    assert origin.family == case.family
    assert licence.concluded == case.licence
    assert licence.inherited == case.inherited


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.folder)
def test_without_the_card_family_and_origin_come_from_config_and_tokenizer(
    case: Expect, tmp_path: Path
) -> None:
    # A plain folder with an uninformative name: no repo id, no card to read.
    model = build_metadata_model(tmp_path / "stripped-model", CORPUS / case.folder, card=False)
    report = _scan(model)
    origin = report.origin
    assert origin is not None
    assert origin.family == case.stripped_family
    assert {j.country for j in origin.jurisdictions} == case.stripped_countries
    if case.stripped_family is not None:
        assert origin.family_signals, "a family needs evidence from the files"
