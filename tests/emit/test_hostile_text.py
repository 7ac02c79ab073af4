"""Text that is not text: names and metadata that are not UTF-8, or hold terminal escapes.

A tar member or a file whose name is not valid UTF-8 reaches Python as lone surrogates
(surrogateescape), which no output can encode. The report model makes every string valid
(an undecodable byte becomes the four characters \\xff), so each emitter renders the same
escaped text and none of them can fail on it; the human outputs also make control
characters and ANSI escapes visible instead of passing them to a terminal.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import unicodedata
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.models import build_demo_model, malicious_pickle
from provscan.emit.cyclonedx import render_cyclonedx, validate_cyclonedx
from provscan.emit.html import render_html
from provscan.emit.json_report import render_json
from provscan.emit.markdown import render_markdown
from provscan.emit.sarif import render_sarif, validate_sarif
from provscan.emit.terminal import render_terminal
from provscan.report import (
    CardFacts,
    Decision,
    FileEntry,
    FileFormat,
    FileRole,
    Finding,
    LineageEdge,
    Location,
    Manifest,
    ManifestResource,
    OriginFacts,
    PolicyInfo,
    Publisher,
    Reason,
    Report,
    ScanParameters,
    Severity,
    SignatureCheck,
    SignatureFacts,
    SignatureStatus,
    Signer,
    Step,
    StepStatus,
    TargetInfo,
    TargetKind,
    ToolInfo,
    Verdict,
)
from provscan.visible import valid_text

# What a hostile name likes to hold: undecodable bytes, other lone surrogates, ANSI and
# other escape sequences, line breaks, bidi overrides, markup of every output format.
HOSTILE_PIECES = (
    "\udcff",
    "\udc80",
    "\ud800",
    "\udfff",
    "\ud83d\ude00",  # a surrogate pair as two code points: still not UTF-8 encodable
    "\x1b[31m",
    "\x1b[2J",
    "\x1b]8;;http://x\x07",
    "\x9b1m",
    "\x00",
    "\n",
    "\r",
    "\t",
    "\u202e",
    "\u2028",
    "\ufeff",
    "[bold red]",
    "<script>",
    "|",
    "`",
    "\\",
    "%",
    "&amp;",
    "]]>",
)
ANY_CHAR = st.characters(exclude_categories=())  # surrogates (Cs) included
TEXT = st.lists(
    st.one_of(st.text(ANY_CHAR, max_size=8), st.sampled_from(HOSTILE_PIECES)), max_size=6
).map("".join)
NAME = TEXT.filter(bool)
RULES = ("SER-PICKLE-DANGEROUS-GLOBAL", "INV-BAD-FILENAME", "LIC-NONCOMMERCIAL", "ORG-UNKNOWN")
JSON_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=6,
)
# Human outputs: no character that a terminal or a viewer would act on, or hide.
HIDDEN = {"Cc", "Cf", "Zl", "Zp", "Cs"}


def _finding(
    rule: str,
    severity: Severity,
    message: str,
    path: str | None,
    member: str | None,
    evidence: dict[str, Any],
) -> Finding:
    location = Location(path=path, member=member) if path is not None else None
    return Finding(
        rule_id=rule, severity=severity, message=message, location=location, evidence=evidence
    )


FINDING = st.builds(
    _finding,
    st.sampled_from(RULES),
    st.sampled_from(Severity),
    TEXT,
    st.one_of(st.none(), NAME),
    st.one_of(st.none(), NAME),
    st.dictionaries(TEXT, JSON_VALUE, max_size=3),
)


@st.composite
def reports(draw: st.DrawFn) -> Report:
    paths = draw(st.lists(NAME, min_size=1, max_size=4, unique_by=valid_text))
    files = tuple(
        FileEntry(
            path=p,
            size=draw(st.integers(0, 2**40)),
            format=draw(st.sampled_from(FileFormat)),
            role=draw(st.sampled_from(FileRole)),
            sha256="ab" * 32,
        )
        for p in paths
    )
    findings = tuple(draw(st.lists(FINDING, max_size=4)))
    reasons = tuple(
        Reason(
            rule=f.rule_id,
            level=draw(st.sampled_from(("deny", "review", "warn"))),
            msg=draw(TEXT),
            details=draw(st.dictionaries(TEXT, JSON_VALUE, max_size=2)),
        )
        for f in findings
    )
    levels = {r.level for r in reasons}
    decision = (
        Decision.DENY if "deny" in levels else Decision.REVIEW if levels else Decision.APPROVE
    )
    name = draw(NAME)
    repo_id = draw(st.one_of(st.none(), st.tuples(NAME, NAME).map("/".join)))
    bases = tuple(draw(st.lists(TEXT, max_size=2)))
    origin = draw(st.sampled_from((None, "edges")))
    signer = Signer(method="certificate", identity=draw(TEXT), certificate_subject=draw(TEXT))
    return Report(
        tool=ToolInfo(version="0.1.0"),
        scanned_at=datetime(2025, 6, 1, tzinfo=timezone.utc),
        target=TargetInfo(
            input=draw(NAME),
            kind=TargetKind.HF_CACHE_SNAPSHOT if repo_id else TargetKind.DIRECTORY,
            root=f"/models/{name}",
            name=name,
            repo_id=repo_id,
            revision=draw(st.one_of(st.none(), NAME)),
        ),
        parameters=ScanParameters(hash_workers=1, limits={}),
        steps=(
            Step(name="inventory", status=StepStatus.COMPLETED),
            Step(name="serialization", status=StepStatus.FAILED, reason=draw(TEXT)),
        ),
        files=files,
        manifest=Manifest(
            model_name=name,
            method="files",
            allow_symlinks=False,
            ignore_paths=(".git",),
            resources=tuple(
                ManifestResource(name=f.path, algorithm="sha256", digest="ab" * 32) for f in files
            ),
            root_digest="cd" * 32,
        ),
        card=CardFacts(
            path=paths[0],
            licenses=tuple(draw(st.lists(TEXT, max_size=2))),
            license_name=draw(st.one_of(st.none(), TEXT)),
            license_link=draw(st.one_of(st.none(), TEXT)),
            base_models=bases,
            tags=tuple(draw(st.lists(TEXT, max_size=2))),
        ),
        origin=None
        if origin is None
        else OriginFacts(
            publisher=Publisher(org=draw(NAME), key=draw(NAME), evidence_url=draw(TEXT)),
            lineage=tuple(
                LineageEdge(child=f"model:{name}", base=b, relation="finetune", sources=("card",))
                for b in bases
            ),
            roots=(Publisher(org=draw(NAME), key=draw(NAME), legal_entity=draw(TEXT)),),
        ),
        signatures=SignatureFacts(
            signatures=(
                SignatureCheck(
                    path=draw(NAME),
                    status=draw(st.sampled_from(SignatureStatus)),
                    reason=draw(TEXT),
                    signer=signer,
                    changed=tuple(draw(st.lists(NAME, max_size=2))),
                    missing=tuple(draw(st.lists(NAME, max_size=2))),
                ),
            )
        ),
        findings=findings,
        verdict=Verdict(
            decision=decision,
            reasons=reasons,
            policy=PolicyInfo(
                packs=("default",),
                digest="sha256:" + "ef" * 32,
                engine="regopy",
                engine_version="1",
            ),
        ),
    )


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return []


def _valid_json(text: str) -> Any:
    text.encode("utf-8")  # no lone surrogate in the text itself
    document = json.loads(text)
    for value in _strings(document):
        value.encode("utf-8")  # nor as a \\udXXX escape inside a JSON string
    return document


def _no_hidden(text: str, allowed: str = "\n") -> None:
    text.encode("utf-8")
    bad = {c for c in text if c not in allowed and unicodedata.category(c) in HIDDEN}
    assert not bad, sorted(map(ascii, bad))


PROPERTY = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(st.lists(TEXT, max_size=4))
def test_every_report_string_is_valid_unicode_and_escaped_the_same_way(texts: list[str]) -> None:
    finding = Finding(
        rule_id="INV-BAD-FILENAME",
        severity=Severity.HIGH,
        message="|".join(texts),
        location=Location(path="/".join(texts) or "x", member="!".join(texts)),
        evidence={t: [t, {t: t}] for t in texts},
    )
    for value in _strings(finding.model_dump()):
        value.encode("utf-8")
    assert finding.message == valid_text("|".join(texts))
    for raw in texts:
        assert finding.evidence[valid_text(raw)] == [
            valid_text(raw),
            {valid_text(raw): valid_text(raw)},
        ]
    copied = finding.model_copy(update={"message": "\udcff"})
    assert copied.message == "\\xff"


def test_the_escape_form() -> None:
    # surrogateescape'd bytes as the byte (as targets.py names a file that is not UTF-8),
    # any other lone surrogate as its code point; text without surrogates is untouched.
    assert valid_text("a\udcffb\udc80") == "a\\xffb\\x80"
    assert valid_text("\ud800\udfff") == "\\ud800\\udfff"
    assert valid_text(os.fsdecode(b"m\xe9.bin")) == "m\\xe9.bin"
    assert valid_text("é\x1b[0m\\xff") == "é\x1b[0m\\xff"


@PROPERTY
@given(reports())
def test_the_json_report_is_valid_utf8_json(report: Report) -> None:
    document = _valid_json(render_json(report))
    assert [f["path"] for f in document["files"]] == [f.path for f in report.files]
    assert Report.model_validate_json(render_json(report)) == report


@PROPERTY
@given(reports())
def test_the_bom_is_schema_valid(report: Report) -> None:
    text = render_cyclonedx(report)  # raises OutputError when invalid
    _valid_json(text)
    assert validate_cyclonedx(text) == []


@PROPERTY
@given(reports())
def test_sarif_is_schema_valid(report: Report) -> None:
    text = render_sarif(report, base_dir=Path("/elsewhere"))
    _valid_json(text)
    assert validate_sarif(text) == []


@PROPERTY
@given(reports())
def test_the_audit_reports_and_terminal_show_no_hidden_character(report: Report) -> None:
    _no_hidden(render_terminal(report))
    _no_hidden(render_markdown(report), allowed="\n\t")
    _no_hidden(render_html(report), allowed="\n\t")
    coloured = render_terminal(report, color=True)
    coloured.encode("utf-8")
    # rich's own colours are the only escapes: none comes from the report's text.
    assert not re.search("\x1b(?!\\[[0-9;]*m)", coloured)
    assert "\x9b" not in coloured and "\x1b[2J" not in coloured


# ---------------------------------------------------------------- a real model, end to end


def _hostile_model(root: Path, canary: Path) -> tuple[Path, bool]:
    """The demo model with a tar whose member name is not UTF-8 and holds an ANSI escape
    (the member is a pickle that runs a command), and, where the filesystem allows, a file
    whose own name is not UTF-8 and holds a newline and a screen-clearing escape."""
    model = build_demo_model(root)
    payload = malicious_pickle(f"touch {canary}")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", encoding="utf-8", errors="surrogateescape") as tar:
        info = tarfile.TarInfo(os.fsdecode(b"evil\xff\x1b[31m.pkl"))
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    assert b"evil\xff\x1b[31m.pkl" in buffer.getvalue()  # the raw bytes are in the header
    (model / "weights.tar").write_bytes(buffer.getvalue())
    try:
        (model / os.fsdecode(b"notes\xfe\x1b[2J\n.txt")).write_bytes(b"hello\n")
    except (OSError, UnicodeError):  # a filesystem that insists on valid names
        return model, False
    return model, True


def test_non_utf8_names_reach_every_output_escaped_and_the_deny_stands(
    provscan: Any, tmp_path: Path
) -> None:
    canary = tmp_path / "canary"
    model, odd_file = _hostile_model(tmp_path / "m", canary)
    out = {name: tmp_path / name for name in ("r.json", "b.json", "s.sarif", "r.md", "r.html")}
    result = provscan(
        "check",
        str(model),
        "-q",
        "--json",
        str(out["r.json"]),
        "--bom",
        str(out["b.json"]),
        "--sarif",
        str(out["s.sarif"]),
        "--markdown",
        str(out["r.md"]),
        "--html",
        str(out["r.html"]),
    )
    assert result.code == 1, result.out + result.err  # deny, not 3 (could not complete)
    assert "VERDICT: DENY" in result.out
    assert not canary.exists()
    texts = {name: path.read_bytes().decode("utf-8") for name, path in out.items()}  # valid UTF-8

    report = _valid_json(texts["r.json"])
    (pickle,) = [f for f in report["findings"] if f["rule_id"] == "SER-PICKLE-DANGEROUS-GLOBAL"]
    assert pickle["location"] == {
        "path": "weights.tar",
        "member": "evil\\xff\x1b[31m.pkl",
        "offset": pickle["location"]["offset"],
    }
    assert "os.system" in pickle["message"]
    deny = [r for r in report["verdict"]["reasons"] if r["level"] == "deny"]
    assert any(r["rule"] == "SER-PICKLE-DANGEROUS-GLOBAL" for r in deny)
    assert all(s["status"] == "completed" for s in report["steps"] if s["name"] == "serialization")

    assert validate_cyclonedx(texts["b.json"]) == []
    assert validate_sarif(texts["s.sarif"]) == []
    for name in ("b.json", "s.sarif"):
        assert any("evil\\xff" in s for s in _strings(_valid_json(texts[name]))), name
    # Markdown escapes the backslash itself (evil\\xff renders as evil\xff).
    assert re.search(r"evil\\+xff\\+x1b", texts["r.md"])
    assert "evil\\xff\\x1b[31m.pkl" in texts["r.html"]
    assert "evil\\xff\\x1b[31m.pkl" in result.out
    for name in ("r.md", "r.html"):
        _no_hidden(texts[name], allowed="\n\t")
    _no_hidden(result.out)

    if odd_file:
        (bad,) = [f for f in report["findings"] if f["rule_id"] == "INV-BAD-FILENAME"]
        assert bad["location"]["path"] == "notes\\xfe\x1b[2J\n.txt"
        assert "notes\\xfe\\x1b[2J" in result.out
        assert "notes\\xfe\\x1b[2J" in texts["r.html"]
