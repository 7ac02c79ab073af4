"""Licence files found by content under any name, decoded from any common encoding, and
put back together when split over several files. Inputs are built from real licence texts."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from fixtures.models import build_demo_model, write_files
from provscan.collectors import licence_evidence, licence_sources
from provscan.collectors.licence_decode import decode
from provscan.collectors.licence_like import licence_like
from provscan.collectors.licence_sources import CONTENT_READS_MAX
from provscan.pipeline import ScanOptions, scan
from provscan.report import Finding, Report, Severity, StepStatus
from tests.conftest import TESTS

DATA = TESTS / "data"
LICENCES = DATA / "licences"
LLAMA_31 = (LICENCES / "llama-3.1-community-license.txt").read_text(encoding="utf-8")
TONGYI = (LICENCES / "tongyi-qianwen-license.txt").read_text(encoding="utf-8")
CHATGLM = (DATA / "licences-zh" / "chatglm3-6b-license.txt").read_text(encoding="utf-8")


# ---------------------------------------------------------------- decoding


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (LLAMA_31.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + LLAMA_31.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF16_LE + LLAMA_31.encode("utf-16-le"), "utf-16-le"),
        (codecs.BOM_UTF16_BE + LLAMA_31.encode("utf-16-be"), "utf-16-be"),
        (codecs.BOM_UTF32_LE + LLAMA_31.encode("utf-32-le"), "utf-32-le"),
        (codecs.BOM_UTF32_BE + LLAMA_31.encode("utf-32-be"), "utf-32-be"),
        (LLAMA_31.encode("utf-16-le"), "utf-16-le"),  # no BOM: NULs in every other byte
        (LLAMA_31.encode("utf-16-be"), "utf-16-be"),
        (CHATGLM.encode("gb18030"), "gb18030"),
        (codecs.BOM_UTF16_LE + CHATGLM.encode("utf-16-le"), "utf-16-le"),
    ],
)
def test_licence_text_decodes_from_its_encoding(data: bytes, encoding: str) -> None:
    decoded = decode(data)
    assert decoded.encoding == encoding
    assert decoded.text is not None and decoded.text.lstrip("\ufeff") in (LLAMA_31, CHATGLM)


def test_a_head_cut_inside_a_character_still_decodes() -> None:
    data = codecs.BOM_UTF16_LE + CHATGLM.encode("utf-16-le")
    assert decode(data[:1001], whole=False).text is not None
    assert decode(CHATGLM.encode("utf-8")[:1001], whole=False).text is not None


def test_binary_is_not_text() -> None:
    assert decode(bytes(range(256)) * 64).text is None
    # A UTF-16 BOM over bytes that are not UTF-16 (a lone surrogate) is not text either.
    assert decode(codecs.BOM_UTF16_LE + b"L\x00\x00\xd8I\x00").text is None


def test_licence_like_texts() -> None:
    # gpt-oss's two-sentence USAGE_POLICY says too little to be found by content; its name finds it.
    for path in LICENCES.iterdir():
        if path.name not in {"README.md", "gpt-oss-usage-policy.txt"}:
            assert licence_like(path.read_text(encoding="utf-8")), path.name
    assert licence_like(CHATGLM[: CHATGLM.index("1. Definitions")])  # the Chinese half
    assert not licence_like("This model is licensed under Apache-2.0; see LICENSE.\n")
    assert not licence_like("# Usage\n\nRun `python generate.py` with the weights.\n")
    # A document that names its licence in passing, below its top, is not a licence file.
    mention = (
        "Use of the model follows the Llama 3.1 Community License; see LICENSE for its terms "
        "and conditions.\n"
    )
    assert not licence_like("# Notes\n\n" + "Some prose about the model.\n" * 200 + mention)


# ---------------------------------------------------------------- through a scan


def _model(tmp_path: Path, files: dict[str, str | bytes], card: str = "license: llama3.1") -> Path:
    model = build_demo_model(tmp_path / "model")
    (model / "LICENSE").unlink()
    (model / "README.md").write_text(f"---\n{card}\n---\n\n# a model\n", encoding="utf-8")
    return write_files(model, files)


def _scan(model: Path) -> Report:
    report = scan(str(model), ScanOptions(hash_workers=1))
    step = report.step("licence")
    assert step is not None and step.status is StepStatus.COMPLETED, step
    return report


def _file_keys(report: Report) -> dict[str, set[str | None]]:
    assert report.licence is not None
    out: dict[str, set[str | None]] = {}
    for e in report.licence.evidence:
        if e.source == "file" and e.path is not None:
            out.setdefault(e.path, set()).add(e.key)
    return out


def _findings(report: Report, rule: str) -> list[Finding]:
    return [f for f in report.findings if f.rule_id == rule]


@pytest.mark.parametrize(
    "rel", ["MODEL_LICENSE", "LICENSE-MODEL", "legal/TERMS.md", "docs/usage-terms.txt"]
)
def test_licence_found_by_content_under_any_name(tmp_path: Path, rel: str) -> None:
    report = _scan(_scan_target(tmp_path, rel))
    assert _file_keys(report) == {rel: {"llama3.1"}}
    assert report.licence is not None and report.licence.detected == ("llama3.1",)


def _scan_target(tmp_path: Path, rel: str) -> Path:
    return _model(tmp_path, {rel: LLAMA_31})


def test_nested_readme_and_code_are_not_licence_files(tmp_path: Path) -> None:
    model = _model(
        tmp_path,
        {
            "docs/README.md": LLAMA_31,
            "src/terms.py": '"""' + LLAMA_31.replace('"', "'") + '"""\n',
            "notes.txt": "Licensed under the model's licence, see the card.\n",
        },
    )
    report = _scan(model)
    assert _file_keys(report) == {}
    assert not _findings(report, "LIC-TEXT-UNKNOWN")


@pytest.mark.parametrize(
    "data",
    [
        codecs.BOM_UTF16_LE + LLAMA_31.encode("utf-16-le"),
        codecs.BOM_UTF16_BE + LLAMA_31.encode("utf-16-be"),
        LLAMA_31.encode("utf-16-le"),
        codecs.BOM_UTF32_LE + LLAMA_31.encode("utf-32-le"),
    ],
)
def test_utf16_licence_file_is_read_not_dropped(tmp_path: Path, data: bytes) -> None:
    for rel in ("LICENSE", "legal/TERMS"):
        model = _model(tmp_path / rel.replace("/", "_"), {rel: data})
        report = _scan(model)
        assert _file_keys(report) == {rel: {"llama3.1"}}, rel
        assert not _findings(report, "LIC-FILE-UNREADABLE")


def test_chinese_licence_in_gb18030_is_identified(tmp_path: Path) -> None:
    chinese = CHATGLM[: CHATGLM.index("1. Definitions")]
    model = _model(tmp_path, {"模型许可.txt": chinese.encode("gb18030")}, card="license: other")
    report = _scan(model)
    assert _file_keys(report) == {"模型许可.txt": {"chatglm"}}


def test_broken_utf16_licence_is_unreadable_not_silent(tmp_path: Path) -> None:
    data = codecs.BOM_UTF16_LE + LLAMA_31.encode("utf-16-le")
    broken = data[:2000] + b"\x00\xd8" + data[2000:]  # a lone high surrogate: not UTF-16
    report = _scan(_model(tmp_path, {"legal/TERMS": broken}))
    unreadable = _findings(report, "LIC-FILE-UNREADABLE")
    assert len(unreadable) == 1 and unreadable[0].severity is Severity.HIGH
    assert unreadable[0].location is not None
    assert unreadable[0].location.path == "legal/TERMS"


def test_unknown_licence_text_is_high(tmp_path: Path) -> None:
    custom = (
        "ACME MODEL LICENSE AGREEMENT\n\nPermission is hereby granted to use these weights "
        "for any purpose, provided that you pay ACME a royalty. THE WEIGHTS ARE PROVIDED "
        "WITHOUT WARRANTY; ACME has no liability. Redistribution requires this notice.\n"
    )
    report = _scan(_model(tmp_path, {"LICENSE": custom}, card="license: mit"))
    [unknown] = _findings(report, "LIC-TEXT-UNKNOWN")
    assert unknown.severity is Severity.HIGH


def _halves(text: str, marker: str) -> tuple[str, str]:
    at = text.index(marker)
    return text[:at], text[at:]


@pytest.mark.parametrize(
    ("second", "card"),
    [("LICENSE-2", "license: llama3.1"), ("legal/TERMS-2.md", "license: other")],
)
def test_licence_split_over_two_files_is_recombined(tmp_path: Path, second: str, card: str) -> None:
    first, rest = _halves(LLAMA_31, "4. Limitation of Liability")
    report = _scan(_model(tmp_path, {"LICENSE": first, second: rest}, card=card))
    assert report.licence is not None and report.licence.detected == ("llama3.1",)
    assert not _findings(report, "LIC-TEXT-UNKNOWN")
    assert not _findings(report, "LIC-TEXT-MODIFIED")
    file_evidence = [e for e in report.licence.evidence if e.source == "file"]
    assert [e.path for e in file_evidence] == ["LICENSE"]
    assert second in file_evidence[0].value


def test_split_licence_with_a_clause_gone_is_still_modified(tmp_path: Path) -> None:
    first, rest = _halves(TONGYI, "5. Rules of use")
    first = first[: first.index("4. Restrictions")]
    report = _scan(_model(tmp_path, {"LICENSE": first, "LICENSE-2": rest}, card="license: other"))
    assert report.licence is not None and report.licence.detected == ("tongyi-qianwen",)
    [modified] = _findings(report, "LIC-TEXT-MODIFIED")
    assert "4. Restrictions" in modified.message


def test_content_reads_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files: dict[str, str | bytes] = {
        f"notes/n{i:04}.txt": f"note {i}\n" for i in range(CONTENT_READS_MAX + 40)
    }
    files["LICENSE"] = LLAMA_31
    model = _model(tmp_path, files)
    reads: list[str] = []
    original = licence_sources._read

    def counting(item: licence_sources.SniffedFile, limit: int) -> bytes:
        reads.append(item.file.rel)
        return original(item, limit)

    monkeypatch.setattr(licence_sources, "_read", counting)
    report = _scan(model)
    assert len(reads) == CONTENT_READS_MAX + 1  # the named LICENSE, then the rationed others
    assert _file_keys(report) == {"LICENSE": {"llama3.1"}}
    # The files not looked at are said, never dropped in silence.
    [skipped] = [f for f in report.findings if f.rule_id == "LIC-SEARCH-INCOMPLETE"]
    assert skipped.evidence["not_read_count"] == 40
    assert skipped.evidence["not_read"][0] == f"notes/n{CONTENT_READS_MAX:04}.txt"


def test_large_files_are_judged_by_their_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    padding = "Appendix: worked examples of model output.\n" * 20_000  # ~860 KB
    model = _model(
        tmp_path,
        {"legal/TERMS.txt": LLAMA_31 + padding, "docs/big-notes.txt": padding},
    )
    limits: dict[str, list[int]] = {}
    original = licence_sources._read

    def recording(item: licence_sources.SniffedFile, limit: int) -> bytes:
        limits.setdefault(item.file.rel, []).append(limit)
        return original(item, limit)

    monkeypatch.setattr(licence_sources, "_read", recording)
    report = _scan(model)
    assert _file_keys(report) == {"legal/TERMS.txt": {"llama3.1"}}
    assert len(limits["docs/big-notes.txt"]) == 1  # its head only: no licence there
    assert len(limits["legal/TERMS.txt"]) == 2  # its head, then all of it


def test_a_failure_in_the_matcher_is_a_finding_not_a_lost_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(text: str) -> object:
        raise RecursionError("crafted")

    monkeypatch.setattr(licence_evidence, "identify", boom)
    report = _scan(_model(tmp_path, {"LICENSE": LLAMA_31}))
    [finding] = _findings(report, "LIC-FILE-UNREADABLE")
    assert finding.location is not None and finding.location.path == "LICENSE"
    assert report.licence is not None and report.licence.declared == ("llama3.1",)
