"""Licence evidence from every source, conflicts between them, and hostile inputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fixtures.models import build_demo_model
from provscan.pipeline import ScanOptions, scan
from provscan.report import Report, StepStatus
from tests.conftest import TESTS, CliResult

LICENCES = TESTS / "data" / "licences"
LLAMA_31 = LICENCES / "llama-3.1-community-license.txt"
LLAMA_32_AUP = LICENCES / "llama-3.2-acceptable-use-policy.md"


def _model(tmp_path: Path, card: str | None, licence: str | bytes | None = None) -> Path:
    model = build_demo_model(tmp_path / "model")
    (model / "LICENSE").unlink()
    (model / "README.md").unlink()
    if card is not None:
        (model / "README.md").write_text(card, encoding="utf-8")
    if isinstance(licence, str):
        (model / "LICENSE").write_text(licence, encoding="utf-8")
    elif isinstance(licence, bytes):
        (model / "LICENSE").write_bytes(licence)
    return model


def _scan(model: Path) -> Report:
    report = scan(str(model), ScanOptions(hash_workers=1))
    for name in ("model_card", "origin", "licence"):
        step = report.step(name)
        assert step is not None and step.status is StepStatus.COMPLETED, step
    return report


def _rules(report: Report) -> set[str]:
    return {f.rule_id for f in report.findings}


def _card(front: str) -> str:
    return f"---\n{front}\n---\n\n# a model\n"


def test_card_id_and_licence_text_agree(tmp_path: Path) -> None:
    report = _scan(_model(tmp_path, _card("license: llama3.1"), LLAMA_31.read_text()))
    assert report.licence is not None
    assert report.licence.declared == ("llama3.1",)
    assert report.licence.detected == ("llama3.1",)
    assert report.licence.concluded == ("llama3.1",)
    file_evidence = [e for e in report.licence.evidence if e.source == "file"]
    assert file_evidence[0].score is not None and file_evidence[0].score > 0.99
    assert not _rules(report) & {"LIC-CONFLICT", "LIC-TEXT-UNKNOWN"}
    # The AUP the licence incorporates comes along, with its URL.
    kinds = {(t.key, t.kind) for t in report.licence.terms}
    assert ("llama3.1-aup", "aup") in kinds


def test_card_says_apache_but_licence_text_is_llama_is_a_conflict(tmp_path: Path) -> None:
    report = _scan(_model(tmp_path, _card("license: apache-2.0"), LLAMA_31.read_text()))
    assert report.licence is not None
    # Both apply until a person settles it (the text first): never the permissive side alone.
    assert report.licence.concluded == ("llama3.1", "apache-2.0")
    conflict = [f for f in report.findings if f.rule_id == "LIC-CONFLICT"]
    assert conflict and "apache-2.0" in conflict[0].message and "llama3.1" in conflict[0].message


def test_other_with_license_name_resolves_through_aliases(tmp_path: Path) -> None:
    card = _card(
        "license: other\nlicense_name: gemma-terms-of-use\nlicense_link: https://ai.google.dev/gemma/terms"
    )
    report = _scan(_model(tmp_path, card))
    assert report.licence is not None and report.licence.concluded == ("gemma",)
    sources = {e.source for e in report.licence.evidence if e.key == "gemma"}
    assert {"card:license_name", "card:license_link"} <= sources


def test_licence_list_is_read_whole(tmp_path: Path) -> None:
    report = _scan(_model(tmp_path, _card("license:\n- apache-2.0\n- mit")))
    assert report.licence is not None and report.licence.declared == ("apache-2.0", "mit")


def test_unknown_licence_id_is_a_finding_and_no_licence_is_concluded(tmp_path: Path) -> None:
    report = _scan(_model(tmp_path, _card("license: totally-free-v9")))
    assert "LIC-UNKNOWN-ID" in _rules(report)
    assert report.licence is not None and report.licence.concluded == ()


def test_custom_licence_text_is_reported_with_its_hash(tmp_path: Path) -> None:
    text = "ACME MODEL LICENCE\n\nYou may look at this model on Tuesdays only.\n" * 3
    report = _scan(_model(tmp_path, _card("license: other"), text))
    unknown = [f for f in report.findings if f.rule_id == "LIC-TEXT-UNKNOWN"]
    assert unknown and len(unknown[0].evidence["sha256"]) == 64
    assert "ACME MODEL LICENCE" in unknown[0].message


def test_binary_licence_file_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    report = _scan(_model(tmp_path, _card("license: mit"), bytes(range(256)) * 64))
    assert "LIC-FILE-UNREADABLE" in _rules(report)
    assert report.licence is not None and report.licence.concluded == ("mit",)


@pytest.mark.parametrize(
    "card",
    [
        "---\nlicense: [apache-2.0\n---\n",  # broken YAML
        "---\n- just\n- a list\n---\n",  # not a mapping
        "---\nlicense: {nested: map}\n---\n",  # wrong type
        "---\nlicense: apache-2.0\n",  # never closed
    ],
)
def test_broken_cards_give_findings_and_the_steps_still_complete(card: str, tmp_path: Path) -> None:
    report = _scan(_model(tmp_path, card))
    assert "INV-CARD-MALFORMED" in _rules(report)


def test_huge_card_is_cut_and_reported(tmp_path: Path) -> None:
    card = _card("license: mit") + ("padding " * 1_000_000)
    report = _scan(_model(tmp_path, card))
    assert "INV-CARD-TOO-LARGE" in _rules(report)
    assert report.licence is not None and report.licence.concluded == ("mit",)


def test_prose_licence_line_is_weak_evidence(tmp_path: Path) -> None:
    report = _scan(_model(tmp_path, "# model\n\n- **License:** llama3\n"))
    assert report.licence is not None
    assert report.licence.concluded == ("llama3",)
    assert [e.source for e in report.licence.evidence] == ["card:prose"]


def test_permissive_label_on_a_llama_fine_tune_is_laundering(tmp_path: Path) -> None:
    card = _card("license: apache-2.0\nbase_model: meta-llama/Llama-3.1-8B-Instruct")
    report = _scan(_model(tmp_path, card))
    assert report.licence is not None
    assert report.licence.concluded == ("apache-2.0",)
    assert report.licence.inherited == ("llama3.1",)
    laundering = [f for f in report.findings if f.rule_id == "LIC-LAUNDERING"]
    assert laundering and "meta-llama/Llama-3.1-8B-Instruct" in laundering[0].message
    inherited = [t for t in report.licence.terms if t.via == "meta-llama/Llama-3.1-8B-Instruct"]
    assert {t.key for t in inherited} >= {"llama3.1", "llama3.1-aup"}


def test_vision_fine_tune_carries_the_eu_restriction_as_applying(tmp_path: Path) -> None:
    card = _card("license: llama3.2\nbase_model: meta-llama/Llama-3.2-11B-Vision-Instruct")
    report = _scan(_model(tmp_path, card))
    assert report.origin is not None and report.origin.multimodal is True
    assert report.licence is not None
    restrictions = [r for t in report.licence.terms for r in t.territorial]
    assert restrictions and all(r.applies is True for r in restrictions)
    assert any("European Union" in r.clause for r in restrictions)


def test_text_only_llama_32_restriction_does_not_apply(tmp_path: Path) -> None:
    card = _card("license: llama3.2\nbase_model: meta-llama/Llama-3.2-1B-Instruct")
    report = _scan(_model(tmp_path, card, LLAMA_32_AUP.read_text()))
    assert report.origin is not None and report.origin.multimodal is False
    assert report.licence is not None
    restrictions = [r for t in report.licence.terms for r in t.territorial]
    assert restrictions and all(r.applies is False for r in restrictions)


@pytest.mark.parametrize("value", ["other", "unknown"])
def test_hub_placeholders_are_not_unknown_ids_but_conclude_nothing(
    value: str, tmp_path: Path
) -> None:
    report = _scan(_model(tmp_path, _card(f"license: {value}")))
    assert "LIC-UNKNOWN-ID" not in _rules(report)
    assert report.licence is not None and report.licence.concluded == ()


def test_unreadable_licence_file_keeps_the_model_from_approval(
    tmp_path: Path, provscan: Callable[..., CliResult]
) -> None:
    model = _model(tmp_path, _card("license: mit"), bytes(range(256)) * 64)
    result = provscan("check", str(model))
    assert result.code == 4, result.out  # review: the declared MIT cannot be checked
    assert "LIC-FILE-UNREADABLE" in result.out
