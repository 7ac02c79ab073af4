"""What libraries warned while provscan read or ran a model: kept in the report, not printed.

A warning printed on standard error lands in the middle of provscan's own output and is lost
in a CI log. Python warnings are recorded while a scan (and, separately, the probes) run; each
distinct message becomes one info finding (INV-LIBRARY-WARNING) with how often it came,
escaped like any text that may quote the model's files, at most MAX_NOTES of them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from provscan.visible import visible

if TYPE_CHECKING:
    from provscan.report import Finding

# Distinct messages kept (the rest are counted in one more finding), and characters of each.
MAX_NOTES = 20
MAX_CHARS = 500


@dataclass
class Notes:
    """Distinct library messages, in the order first seen, with how often each came."""

    seen: dict[tuple[str, str], tuple[str | None, int]] = field(default_factory=dict)

    def add(self, category: str, text: str, source: str | None = None) -> None:
        key = (category, text)
        _, count = self.seen.get(key, (source, 0))
        self.seen[key] = (source, count + 1)

    def findings(self, during: str, step: str | None = None) -> list[Finding]:
        """One finding per distinct message; ``during`` completes "a library warned while ..."."""
        from provscan.report import Finding, Severity

        where = {"step": step} if step is not None else {}
        out = []
        for (category, text), (source, count) in list(self.seen.items())[:MAX_NOTES]:
            shown = visible(text)
            if len(shown) > MAX_CHARS:
                shown = shown[:MAX_CHARS] + "..."
            origin = {"source": source} if source is not None else {}
            out.append(
                Finding(
                    rule_id="INV-LIBRARY-WARNING",
                    severity=Severity.INFO,
                    message=f"a library warned while {during}: {visible(category)}: {shown}",
                    evidence={**where, **origin, "category": category, "count": count},
                )
            )
        if len(self.seen) > MAX_NOTES:
            out.append(
                Finding(
                    rule_id="INV-LIBRARY-WARNING",
                    severity=Severity.INFO,
                    message=f"{len(self.seen) - MAX_NOTES} more distinct library warning(s) "
                    f"while {during}, not kept",
                    evidence={**where, "count": len(self.seen) - MAX_NOTES},
                )
            )
        return out


@contextmanager
def recorded(source: str | None = None) -> Iterator[Notes]:
    """Record Python warnings until the block ends (also when it raises); the notes hold them."""
    notes = Notes()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every one counted; Notes keeps each once
        try:
            yield notes
        finally:
            for item in caught:
                notes.add(item.category.__name__, str(item.message), source)
