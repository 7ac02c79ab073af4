"""Licence texts with clauses cut or reworded are still named, and the changed clauses are.

Every modified text here is made by code from a real licence text (tests/data/licences,
tests/data/licences-zh): a clause deleted, a number changed, a few words swapped.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fixtures.models import build_demo_model
from provscan.collectors.licence_text import (
    TextMatch,
    identify,
    split_clauses,
    tokens,
)
from provscan.knowledge.base import reference_text
from provscan.pipeline import ScanOptions, scan
from provscan.report import Report, Severity, StepStatus
from tests.conftest import TESTS

DATA = TESTS / "data"
LICENCES = DATA / "licences"
ZH = DATA / "licences-zh"


def _read(name: str) -> str:
    return (LICENCES / name).read_text(encoding="utf-8")


def _cut(text: str, start: str, end: str) -> str:
    """`text` without the part from the line matching `start` up to the line matching `end`."""
    found = re.search(rf"(?m)^{start}.*?(?=^{end})", text, flags=re.S)
    assert found is not None, start
    return text[: found.start()] + text[found.end() :]


def _licence(text: str) -> TextMatch:
    matches = [m for m in identify(text).matches if m.kind == "licence"]
    assert len(matches) == 1, identify(text)
    return matches[0]


def _changed(match: TextMatch) -> dict[str, str]:
    return {c.label: c.status for c in match.modified}


# (corpus file, licence key, regex of the clause's first line, regex of the next clause's, label)
DELETIONS = [
    (
        "llama-3.1-community-license.txt",
        "llama3.1",
        r"2\. Additional Commercial Terms",
        r"3\. Disclaimer",
        "2. Additional Commercial Terms",
    ),
    (
        "llama-3.2-community-license.txt",
        "llama3.2",
        r"2\. Additional Commercial Terms",
        r"3\. Disclaimer",
        "2. Additional Commercial Terms",
    ),
    (
        "llama-3.3-community-license.txt",
        "llama3.3",
        r"2\\\. \*\*Additional Commercial Terms",
        r"3\*\*\. Disclaimer",
        "2. Additional Commercial Terms",
    ),
    (
        "llama-3-community-license.txt",
        "llama3",
        r"2\. Additional Commercial Terms",
        r"3\. Disclaimer",
        "2. Additional Commercial Terms",
    ),
    (
        "tongyi-qianwen-license.txt",
        "tongyi-qianwen",
        r"4\. Restrictions",
        r"5\. Rules of use",
        "4. Restrictions",
    ),
    (
        "tongyi-qianwen-research-license.txt",
        "tongyi-qianwen-research",
        r"4\. Rules of use",
        r"5\. Intellectual Property",
        "4. Rules of use",
    ),
    (
        "deepseek-license-model.txt",
        "deepseek",
        r"5\. Use-based restrictions",
        r"6\. The Output",
        "5. Use-based restrictions",
    ),
    (
        "gemma-terms-of-use.md",
        "gemma",
        r"### 3\.2 Use Restrictions",
        r"### 3\.3",
        "3.2 Use Restrictions",
    ),
]


@pytest.mark.parametrize(("name", "key", "start", "end", "label"), DELETIONS)
def test_a_deleted_clause_keeps_the_licence_and_names_the_clause(
    name: str, key: str, start: str, end: str, label: str
) -> None:
    text = _cut(_read(name), start, end)
    match = _licence(text)
    assert match.key == key  # never a sibling, never unknown
    assert _changed(match) == {label: "missing"}


def test_deepseek_without_its_use_restrictions_attachment() -> None:
    text = _read("deepseek-license-model.txt")
    text = text[: text.index("\nAttachment A")]  # the marker "For military use" goes with it
    match = _licence(text)
    assert match.key == "deepseek"
    assert _changed(match) == {"Attachment A": "missing"}


def test_gemma_without_the_prohibited_use_flow_down_item() -> None:
    text = _cut(
        _read("gemma-terms-of-use.md"),
        r"1\. You must include the use restrictions",
        r"2\. You must provide",
    )
    match = _licence(text)
    assert match.key == "gemma"
    assert _changed(match) == {"3.1 Distribution and Redistribution": "reworded"}


def test_a_changed_number_is_a_reworded_clause() -> None:
    text = _read("llama-3.1-community-license.txt").replace("700 million", "7 billion")
    match = _licence(text)
    assert match.key == "llama3.1"
    assert _changed(match) == {"2. Additional Commercial Terms": "reworded"}


def test_several_reworded_clauses_are_still_the_licence() -> None:
    text = _read("tongyi-qianwen-license.txt")
    for old, new in [
        ("100 million", "10 billion"),
        ("export controls or restrictions", "no controls"),
        ("People's Courts in Hangzhou City", "courts of Delaware"),
        ("shall terminate as of the date", "shall continue after the date"),
    ]:
        assert old in text
        text = text.replace(old, new)
    match = _licence(text)
    assert match.key == "tongyi-qianwen"
    assert set(_changed(match)) == {
        "4. Restrictions",
        "5. Rules of use",
        "6. Intellectual Property",
        "9. Governing Law and Jurisdiction",
    }


@pytest.mark.parametrize(
    "name", sorted(p.name for p in LICENCES.iterdir() if p.name != "README.md")
)
def test_real_copies_have_no_modified_clauses(name: str) -> None:
    for match in identify(_read(name)).matches:
        assert match.modified == (), (name, match)


def test_apache_with_its_appendix_filled_in_is_not_modified() -> None:
    # The GLM-4 copy fills in "Copyright [yyyy] [name of copyright owner]": a placeholder.
    match = _licence(_read("apache-2.0__THUDM-GLM-4.txt"))
    assert match.key == "apache-2.0" and match.modified == ()


def test_most_of_the_text_gone_is_not_identified() -> None:
    text = _read("llama-3.1-community-license.txt")
    words = text.split()
    kept = " ".join(words[:80] + words[int(len(words) * 0.55) :])  # title, markers, ~45% text
    assert not [m for m in identify(kept).matches if m.kind == "licence"]


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("llama-3-community-license.txt", "llama3"),
        ("llama-3.1-community-license.txt", "llama3.1"),
        ("llama-3.2-community-license.txt", "llama3.2"),
        ("llama-3.3-community-license.txt", "llama3.3"),
        ("llama-4-community-license.txt", "llama4"),
        ("tongyi-qianwen-license.txt", "tongyi-qianwen"),
        ("tongyi-qianwen-research-license.txt", "tongyi-qianwen-research"),
    ],
)
def test_siblings_with_a_clause_gone_are_not_taken_for_each_other(name: str, key: str) -> None:
    text = _read(name)
    starts = [m.start() for m in re.finditer(r"(?m)^\**2\\?\.", text)]
    following = [m.start() for m in re.finditer(r"(?m)^\**3\\?\**\.", text)]
    assert starts and following
    cut = text[: starts[0]] + text[following[0] :]
    assert _licence(cut).key == key


def test_reference_clauses_are_numbered_sections() -> None:
    labels = [
        label for label, _ in split_clauses(reference_text("llama-3.1-community-license.txt"))
    ]
    assert labels == [
        "preamble",
        "1. License Rights and Redistribution",
        "2. Additional Commercial Terms",
        "3. Disclaimer of Warranty",
        "4. Limitation of Liability",
        "5. Intellectual Property",
        "6. Term and Termination",
        "7. Governing Law and Jurisdiction",
    ]
    deepseek = [label for label, _ in split_clauses(reference_text("deepseek-license-model.txt"))]
    assert "Attachment A" in deepseek and "14. Governing Law and Jurisdiction" in deepseek


# ---------------------------------------------------------------- Chinese


def test_cjk_characters_are_tokens() -> None:
    assert tokens("许可协议 Licence 3.1") == ["许", "可", "协", "议", "licence", "3.1"]
    assert tokens("ＡＢＣ　１２３") == ["abc", "123"]  # full-width folded


def _chatglm() -> str:
    return (ZH / "chatglm3-6b-license.txt").read_text(encoding="utf-8")


def test_the_chinese_licence_alone_is_identified() -> None:
    text = _chatglm()
    chinese = text[: text.index("1. Definitions")]
    assert not re.search(r"Dispute Resolution|Definitions", chinese)
    match = _licence(chinese)
    assert match.key == "chatglm" and match.modified == ()


def test_the_english_half_alone_is_identified() -> None:
    text = _chatglm()
    english = "The ChatGLM3-6B License\n\n" + text[text.index("1. Definitions") :]
    match = _licence(english)
    assert match.key == "chatglm" and match.modified == ()


def test_a_chinese_clause_deleted_is_named() -> None:
    text = _chatglm()
    chinese = text[: text.index("1. Definitions")]
    chinese = _cut(chinese, r"3\.限制", r"4\.免责声明")
    match = _licence(chinese)
    assert match.key == "chatglm"
    assert _changed(match) == {"3. 限制": "missing"}


def test_the_earlier_chatglm3_wording_is_reported_against_the_current() -> None:
    old = (ZH / "chatglm3-6b-license-2023-10.txt").read_text(encoding="utf-8")
    match = _licence(old)
    assert match.key == "chatglm"
    assert "2. 许可授予" in _changed(match) and "2. License Grant" in _changed(match)


# ---------------------------------------------------------------- through a scan


def _scan_with_licence(tmp_path: Path, card: str, licence: str) -> Report:
    model = build_demo_model(tmp_path / "model")
    (model / "README.md").write_text(f"---\n{card}\n---\n\n# a model\n", encoding="utf-8")
    (model / "LICENSE").write_text(licence, encoding="utf-8")
    report = scan(str(model), ScanOptions(hash_workers=1))
    step = report.step("licence")
    assert step is not None and step.status is StepStatus.COMPLETED, step
    return report


def test_scan_reports_the_llama_licence_without_its_user_cap(tmp_path: Path) -> None:
    text = _cut(
        _read("llama-3.1-community-license.txt"), r"2\. Additional Commercial Terms", r"3\. "
    )
    report = _scan_with_licence(tmp_path, "license: llama3.1", text)
    modified = [f for f in report.findings if f.rule_id == "LIC-TEXT-MODIFIED"]
    assert len(modified) == 1
    finding = modified[0]
    assert finding.severity is Severity.HIGH
    assert "2. Additional Commercial Terms" in finding.message
    [clause] = finding.evidence["clauses"]
    assert clause["clause"] == "2. Additional Commercial Terms"
    assert clause["status"] == "missing" and clause["share"] < 0.5
    assert report.licence is not None
    assert report.licence.concluded[0] == "llama3.1"  # the licensor's terms still bind
    evidence = [e for e in report.licence.evidence if e.source == "file" and e.key == "llama3.1"]
    assert evidence and evidence[0].modified_clauses == (
        "2. Additional Commercial Terms (missing or changed)",
    )
    assert "LIC-TEXT-UNKNOWN" not in {f.rule_id for f in report.findings}


def test_scan_of_a_pristine_licence_has_no_modified_finding(tmp_path: Path) -> None:
    report = _scan_with_licence(
        tmp_path, "license: llama3.1", _read("llama-3.1-community-license.txt")
    )
    assert "LIC-TEXT-MODIFIED" not in {f.rule_id for f in report.findings}
    assert report.licence is not None
    assert all(e.modified_clauses == () for e in report.licence.evidence)
