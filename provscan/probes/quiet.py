"""What did the libraries say while the probes loaded and ran the model? Kept, not printed.

torch and transformers warn on standard error (a FutureWarning about an argument, a logged
"generation flags are not valid" line, a loading progress bar). Printed there, such a line
lands in the middle of provscan's own progress display and output, and is lost in a CI log.
While the probes run, Python warnings are recorded (`warnings.catch_warnings(record=True)`),
transformers' log records go to a handler that keeps them instead of to its stream handler,
and its progress bars are off; afterwards each distinct message becomes one info finding of
the probe step (INV-LIBRARY-WARNING, with how often it came), escaped like any text that
may quote the model's files, at most MAX_NOTES of them.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from provscan.probes.engines.load import installed
from provscan.report import Finding, Severity
from provscan.visible import visible

# Distinct messages kept (the rest are counted in one more finding), and characters of each.
MAX_NOTES = 20
MAX_CHARS = 500


class _Keep(logging.Handler):
    """A logging handler that keeps the records it is handed."""

    def __init__(self, notes: Notes) -> None:
        super().__init__(logging.WARNING)
        self.notes = notes

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a record whose arguments do not format
            text = str(record.msg)
        self.notes.add(f"{record.name} {record.levelname.lower()}", text, "transformers logging")


@dataclass
class Notes:
    """Distinct library messages, in the order first seen, with how often each came."""

    seen: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)

    def add(self, category: str, text: str, source: str) -> None:
        key = (category, text)
        _, count = self.seen.get(key, (source, 0))
        self.seen[key] = (source, count + 1)

    def findings(self) -> list[Finding]:
        out = []
        for (category, text), (source, count) in list(self.seen.items())[:MAX_NOTES]:
            shown = visible(text)
            if len(shown) > MAX_CHARS:
                shown = shown[:MAX_CHARS] + "..."
            out.append(
                Finding(
                    rule_id="INV-LIBRARY-WARNING",
                    severity=Severity.INFO,
                    message=f"a library warned while the probes loaded or ran the model: "
                    f"{visible(category)}: {shown}",
                    evidence={
                        "step": "probes",
                        "source": source,
                        "category": category,
                        "count": count,
                    },
                )
            )
        if len(self.seen) > MAX_NOTES:
            out.append(
                Finding(
                    rule_id="INV-LIBRARY-WARNING",
                    severity=Severity.INFO,
                    message=f"{len(self.seen) - MAX_NOTES} more distinct library warning(s) "
                    "while the probes ran, not kept",
                    evidence={"step": "probes", "count": len(self.seen) - MAX_NOTES},
                )
            )
        return out


@contextmanager
def library_notes(engine: str) -> Iterator[Notes]:
    """Record the libraries' warnings (and transformers' log and progress output, for the
    engines that load transformers) until the block ends; the notes say what they were."""
    notes = Notes()
    with warnings.catch_warnings(record=True) as caught, _transformers_quiet(engine, notes):
        warnings.simplefilter("always")  # every one counted; Notes keeps each once
        try:
            yield notes
        finally:
            for item in caught:
                notes.add(item.category.__name__, str(item.message), "python warnings")


@contextmanager
def _transformers_quiet(engine: str, notes: Notes) -> Iterator[None]:
    """transformers' library logger without its stream handler, and no progress bars."""
    if engine not in ("transformers", "vllm") or not installed("transformers"):
        yield
        return
    # The engine imports it next anyway; its logging module must exist to be redirected,
    # since importing it installs the stream handler this takes off.
    from transformers.utils import logging as hf_logging

    root = logging.getLogger("transformers")
    handlers, propagate = list(root.handlers), root.propagate
    bars = hf_logging.is_progress_bar_enabled()
    keep = _Keep(notes)
    for handler in handlers:
        root.removeHandler(handler)
    root.addHandler(keep)
    root.propagate = False
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        root.removeHandler(keep)
        for handler in handlers:
            root.addHandler(handler)
        root.propagate = propagate
        if bars:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
