"""Card values read as a person and the Hub read them, and licence sources compared.

A card's licence or base model disguised (an invisible character, a look-alike letter, a
custom YAML tag, a second front-matter block) is read as what it shows, with a finding;
sources that name no licence in common are a conflict; the family the files show passes its
licence on when nothing else does.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from fixtures.models import build_demo_model, build_metadata_model
from provscan.collectors.normalise import normalise, skeleton
from provscan.parsing import HostileData, parse_yaml, parse_yaml_leniently
from provscan.pipeline import ScanOptions, scan
from provscan.report import Report, Severity
from tests.conftest import TESTS, CliResult

CORPUS = TESTS / "data" / "corpus"
CYRILLIC_A = "\u0430"


def _scan_card(tmp_path: Path, card: str) -> Report:
    model = build_demo_model(tmp_path / "model")
    (model / "LICENSE").unlink()
    (model / "README.md").write_text(card, encoding="utf-8")
    return scan(str(model), ScanOptions(hash_workers=1))


def _found(report: Report, rule: str) -> list[str]:
    return [f.message for f in report.findings if f.rule_id == rule]


@pytest.mark.parametrize(
    ("stated", "change"),
    [
        (f"ll{CYRILLIC_A}ma3.1", "look-alike letters replaced (U+0430 CYRILLIC SMALL LETTER A"),
        ("lla\u200bma3.1", "invisible characters removed (U+200B)"),
        ("\uff4c\uff4c\uff41\uff4d\uff41\uff13.1", "Unicode compatibility forms replaced"),
        ("llama3.1\u202e", "invisible characters removed (U+202E)"),
    ],
)
def test_a_disguised_value_reads_as_what_it_shows(stated: str, change: str) -> None:
    normal = normalise(stated)
    assert normal.text == "llama3.1" and normal.deceptive
    assert any(c.startswith(change) for c in normal.changes), normal.changes
    assert skeleton(stated) == skeleton("llama3.1") == skeleton("Llama3.1")


def test_whitespace_alone_is_not_a_disguise() -> None:
    normal = normalise(" apache-2.0 ")
    assert normal.text == "apache-2.0" and not normal.deceptive
    assert normal.changes == ("surrounding whitespace removed",)
    assert normalise("apache-2.0").changes == ()
    assert skeleton("apache-2.0") != skeleton("apache-1.0")


def test_a_look_alike_licence_id_is_the_licence_it_shows(tmp_path: Path) -> None:
    report = _scan_card(tmp_path, f"---\nlicense: ll{CYRILLIC_A}ma3.1\n---\n# card\n")
    assert report.licence is not None and report.licence.concluded == ("llama3.1",)
    [finding] = [f for f in report.findings if f.rule_id == "LIC-ID-NORMALISED"]
    assert finding.severity is Severity.HIGH and "read as llama3.1" in finding.message


def test_a_look_alike_base_model_is_the_repo_it_shows(tmp_path: Path) -> None:
    report = _scan_card(
        tmp_path, f"---\nlicense: apache-2.0\nbase_model: meta-ll{CYRILLIC_A}ma/Llama-3.1-8B\n---\n"
    )
    assert report.origin is not None and report.origin.root_models == ("meta-llama/Llama-3.1-8B",)
    assert report.licence is not None and "llama3.1" in report.licence.inherited
    [finding] = [f for f in report.findings if f.rule_id == "ORG-BASE-NORMALISED"]
    assert finding.severity is Severity.HIGH and "look-alike" in finding.message


def test_the_lenient_reader_keeps_every_value_and_ignores_tags() -> None:
    text = "license: apache-2.0\nbase_model: !hf meta-llama/Llama-3.1-8B\nlicense: llama3.1\n"
    with pytest.raises(yaml.constructor.ConstructorError):
        parse_yaml("base_model: !hf meta-llama/Llama-3.1-8B\n")
    with pytest.raises(HostileData, match="repeats the key"):
        parse_yaml(text)
    data, problems = parse_yaml_leniently(text, first_line=2)
    assert data == {"license": ["apache-2.0", "llama3.1"], "base_model": "meta-llama/Llama-3.1-8B"}
    assert problems == [
        "uses the custom tag '!hf' (line 3)",
        "repeats the key 'license' (lines 2 and 4)",
    ]
    with pytest.raises(HostileData):  # aliases stay refused
        parse_yaml_leniently("a: &x [1]\nb: *x\n")


def test_a_custom_tag_does_not_hide_the_lineage(tmp_path: Path) -> None:
    card = "---\nlicense: apache-2.0\nbase_model: !base meta-llama/Llama-3.1-8B\n---\n"
    report = _scan_card(tmp_path, card)
    [malformed] = [f for f in report.findings if f.rule_id == "INV-CARD-MALFORMED"]
    assert malformed.severity is Severity.HIGH and "custom tag '!base'" in malformed.message
    assert report.licence is not None and "llama3.1" in report.licence.inherited


def test_a_second_front_matter_block_counts(tmp_path: Path) -> None:
    card = "---\nlicense: apache-2.0\n---\n\n---\nlicense: llama3.1\n---\n# card\n"
    report = _scan_card(tmp_path, card)
    [malformed] = [f for f in report.findings if f.rule_id == "INV-CARD-MALFORMED"]
    assert malformed.severity is Severity.HIGH and "second front-matter block (line 6)" in (
        malformed.message
    )
    assert report.licence is not None
    assert set(report.licence.concluded) == {"apache-2.0", "llama3.1"}


def test_a_horizontal_rule_is_not_a_second_block(tmp_path: Path) -> None:
    card = "---\nlicense: apache-2.0\n---\n\n---\n\nSome prose.\n\n---\n"
    report = _scan_card(tmp_path, card)
    assert not _found(report, "INV-CARD-MALFORMED")
    assert report.licence is not None and report.licence.concluded == ("apache-2.0",)


def test_a_licence_link_to_another_licence_is_a_conflict(tmp_path: Path) -> None:
    card = (
        "---\nlicense: other\nlicense_name: apache-2.0\n"
        "license_link: https://huggingface.co/meta-llama/Llama-3.1-8B/blob/main/LICENSE\n---\n"
    )
    report = _scan_card(tmp_path, card)
    assert report.licence is not None
    assert set(report.licence.concluded) == {"apache-2.0", "llama3.1"}
    [conflict] = _found(report, "LIC-CONFLICT")
    assert "license_name says apache-2.0" in conflict and "license_link says llama3.1" in conflict


def test_card_prose_against_its_metadata_is_a_conflict(tmp_path: Path) -> None:
    card = "---\nlicense: apache-2.0\n---\n# Model\n\n**License:** Llama 3.1 Community License\n"
    report = _scan_card(tmp_path, card)
    [conflict] = _found(report, "LIC-CONFLICT")
    assert "prose says llama3.1" in conflict and "license says apache-2.0" in conflict


def test_a_family_passes_its_licence_on_when_no_base_is_named(tmp_path: Path) -> None:
    """Real Gemma release metadata, relabelled MIT with its card's base removed: the config
    still shows Gemma, whose releases carry the Gemma terms."""
    metadata = tmp_path / "metadata"
    shutil.copytree(CORPUS / "google__gemma-2b-it", metadata)
    (metadata / "README.md").write_text("---\nlicense: mit\n---\n# A model\n")
    report = scan(str(build_metadata_model(tmp_path / "model", metadata)), ScanOptions())
    assert report.origin is not None and report.origin.family == "gemma"
    assert report.licence is not None and report.licence.concluded == ("mit",)
    assert report.licence.inherited == ("gemma",)
    [finding] = [f for f in report.findings if f.rule_id == "LIC-FAMILY-LICENCE"]
    assert finding.severity is Severity.HIGH and "Gemma" in finding.message
    terms = [t for t in report.licence.terms if t.key == "gemma"]
    assert terms and terms[0].via is not None and "family" in terms[0].via


def test_a_family_licence_the_model_states_is_not_inherited_again(tmp_path: Path) -> None:
    metadata = tmp_path / "metadata"
    shutil.copytree(CORPUS / "google__gemma-2b-it", metadata)
    (metadata / "README.md").write_text("---\nlicense: gemma\n---\n# A model\n")
    report = scan(str(build_metadata_model(tmp_path / "model", metadata)), ScanOptions())
    assert report.licence is not None and report.licence.inherited == ()
    assert not _found(report, "LIC-FAMILY-LICENCE")


@pytest.mark.parametrize(
    ("research", "shown"),
    [
        (False, "commercial use: no (review: POL-LICENCE-NONCOMMERCIAL)"),
        (True, "commercial use: no (warn: POL-LICENCE-NONCOMMERCIAL)"),
    ],
)
def test_the_terminal_never_shows_commercial_use_no_without_its_reason(
    tmp_path: Path, cli: Callable[..., CliResult], research: bool, shown: str
) -> None:
    model = build_demo_model(tmp_path / "model")
    (model / "LICENSE").unlink()
    (model / "README.md").write_text("---\nlicense: cc-by-nc-4.0\n---\n# card\n")
    config = tmp_path / "provscan.toml"
    config.write_text(f"[licence]\ncommercial_use = {'false' if research else 'true'}\n")
    result = cli("check", model, "--config", config)
    assert shown in result.out, result.out
    assert ("VERDICT: REVIEW" in result.out) is not research


FAMILIES = TESTS / "data" / "families"


@pytest.mark.parametrize(
    ("front", "inherited"),
    [
        # Qwen2.5 releases are Apache-2.0 or the Qwen licence, by size: Apache alone does
        # not settle which, so the stricter ones are carried until a base says.
        ("license: apache-2.0", {"qwen", "qwen-research", "tongyi-qianwen"}),
        ("license: apache-2.0\nbase_model: Qwen/Qwen2.5-7B-Instruct", set()),
    ],
)
def test_a_family_whose_releases_differ_reviews_until_a_base_settles_it(
    tmp_path: Path, front: str, inherited: set[str]
) -> None:
    metadata = tmp_path / "metadata"
    shutil.copytree(FAMILIES / "qwen2", metadata)
    (metadata / "README.md").write_text(f"---\n{front}\n---\n# A model\n")
    report = scan(str(build_metadata_model(tmp_path / "model", metadata)), ScanOptions())
    assert report.origin is not None and report.origin.family == "qwen2"
    assert report.licence is not None and set(report.licence.inherited) == inherited
    assert bool(_found(report, "LIC-FAMILY-LICENCE")) is bool(inherited)
