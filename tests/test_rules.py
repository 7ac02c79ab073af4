"""Every rule id the code or the default pack can emit is documented, and nothing documented is dead."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RULE = re.compile(r'"((?:INV|HSH|SIG|SER|LIC|ORG|PRB|POL)-[A-Z0-9]+(?:-[A-Z0-9]+)*)"')
# Placeholders in help texts, not rules.
NOT_RULES = {"POL-X"}


def emitted() -> set[str]:
    found: set[str] = set()
    for path in [*(REPO / "provscan").rglob("*.py"), *(REPO / "policies").glob("*/*.rego")]:
        found |= set(RULE.findall(path.read_text()))
    return found - NOT_RULES


def documented() -> set[str]:
    return set(
        re.findall(
            r"^\| `([A-Z]{3}-[A-Z0-9-]+)` \|", (REPO / "docs" / "rules.md").read_text(), flags=re.M
        )
    )


def test_every_emitted_rule_is_documented() -> None:
    assert emitted() - documented() == set()


def test_every_documented_rule_is_emitted() -> None:
    assert documented() - emitted() == set()


def test_policy_table_tests_use_real_rule_ids() -> None:
    used: set[str] = set()
    for path in (REPO / "policies").glob("*/tests/*/*"):
        used |= set(RULE.findall(path.read_text())) | set(
            re.findall(r"\b((?:INV|HSH|SER|POL)-[A-Z0-9]+(?:-[A-Z0-9]+)*)\b", path.read_text())
        )
    assert used - documented() == set()
