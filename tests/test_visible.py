"""Hidden characters in scanned text are written out, in every human-facing output."""

from __future__ import annotations

from pathlib import Path

from provscan.emit.terminal import render_terminal
from provscan.report import Report
from provscan.visible import visible
from tests.conftest import REPO


def test_hidden_characters_are_written_out() -> None:
    assert visible("plain text, naïve — ok") == "plain text, naïve — ok"
    assert visible("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert visible("c\x9b31m") == "c\\x9b31m"
    assert visible("evil\u202etxt.exe\u200b") == "evil\\u202etxt.exe\\u200b"
    assert visible("x\u2028y\ny\tz") == "x\\u2028y\\x0ay\\x09z"
    assert visible("x\u2028y\ny\tz", keep="\t\n") == "x\\u2028y\ny\tz"


def test_the_terminal_summary_cannot_be_rewritten_by_a_file_name() -> None:
    example = REPO / "sbom" / "examples" / "tiny-llama.report.json"
    report = Report.model_validate_json(Path(example).read_text())
    hostile = report.target.model_copy(update={"input": "models/\x1b[2J\u202eevil"})
    text = render_terminal(report.model_copy(update={"target": hostile}))
    assert "\x1b" not in text and "\u202e" not in text
    assert "models/\\x1b[2J\\u202eevil" in text
