"""SECURITY.md backs each guarantee with tests: every test and policy path it cites exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_every_cited_test_exists() -> None:
    text = (REPO / "SECURITY.md").read_text(encoding="utf-8")
    cited = re.findall(r"`((?:tests|policies)/[^`\s]+)`", text)
    assert len(cited) >= 10
    assert [path for path in cited if not (REPO / path).exists()] == []
