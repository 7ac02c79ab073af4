"""What did the libraries say while the probes loaded and ran the model? Kept, not printed.

torch and transformers warn on standard error (a FutureWarning about an argument, a logged
"generation flags are not valid" line, a loading progress bar). Printed there, such a line
lands in the middle of provscan's own progress display and output, and is lost in a CI log.
While the probes run, Python warnings are recorded (`warnings.catch_warnings(record=True)`),
transformers' log records go to a handler that keeps them instead of to its stream handler,
and its progress bars are off; afterwards each distinct message becomes one info finding of
the probe step (provscan.library_warnings).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from provscan.library_warnings import Notes, recorded
from provscan.probes.engines.load import installed


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


@contextmanager
def library_notes(engine: str) -> Iterator[Notes]:
    """Record the libraries' warnings (and transformers' log and progress output, for the
    engines that load transformers) until the block ends; the notes say what they were."""
    with recorded("python warnings") as notes, _transformers_quiet(engine, notes):
        yield notes


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
