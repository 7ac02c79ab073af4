"""How much of the report fits on a page, and how is scanned text made visible before it is shown?

Caps are fixed numbers (not a fraction of the input) so the same report always gives the same
page, and a 10,000-file model still gives a readable one; the JSON report keeps everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from provscan.emit.audit.model import Para
from provscan.visible import visible

T = TypeVar("T")

MAX_ROWS = 500  # files, findings
MAX_REASONS = 200
MAX_TERMS = 20  # licence terms
MAX_EVIDENCE = 50  # licence evidence, family signals, jurisdictions, anchors
MAX_NAMES = 20  # file names listed in one line (a signature's differences)
MAX_NODES = 40  # lineage diagram
MAX_CANDIDATES = 50
MAX_CASES = 3  # reproducible cases shown per probe candidate
MAX_LINE = 400  # characters of one value or table cell
MAX_BLOCK = 4000  # characters of one quoted clause, prompt or output


def line(text: str | None, limit: int = MAX_LINE) -> str:
    """One line of scanned text: controls made visible, newlines shown as \\n, clipped."""
    if text is None:
        return ""
    text = text.replace("\r\n", "\n").replace("\n", "\\n").replace("\t", " ")
    return _clip(visible(text), limit)


def block(text: str | None, limit: int = MAX_BLOCK) -> str:
    """Multi-line scanned text (a clause, a model's output): newlines kept, controls visible."""
    if text is None:
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _clip(visible(text, keep="\t\n"), limit)


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def capped(items: Sequence[T], limit: int) -> tuple[Sequence[T], int]:
    """The first `limit` items, and how many were left out."""
    return items[:limit], max(0, len(items) - limit)


def left_out(count: int, what: str) -> tuple[Para, ...]:
    """A note saying how many were not shown (nothing when none were left out)."""
    if count <= 0:
        return ()
    return (Para(f"{count:,} more {what} not shown here; the JSON report lists them all.", "warn"),)


def names(items: Sequence[str], limit: int = MAX_NAMES) -> str:
    """A list of names on one line: 'a, b and 3 more'."""
    shown, more = capped(items, limit)
    text = ", ".join(line(item, 200) for item in shown)
    return f"{text} and {more:,} more" if more else text


def yes_no(value: bool | None, unknown: str = "unknown") -> str:
    return unknown if value is None else ("yes" if value else "no")
