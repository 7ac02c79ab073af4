"""How text for people meets a terminal: colour by the usual conventions, the real width.

Colour follows https://no-color.org (NO_COLOR set and non-empty: no colour) and the
FORCE_COLOR convention (https://force-color.org: set and non-empty, colour even when not a
terminal); `--no-color` overrides both. Width is the terminal's own, COLUMNS when set (as
shutil.get_terminal_size reads it), and a fixed width when the output is a file or pipe, so
that what a CI log holds does not depend on the runner.
"""

from __future__ import annotations

import os
from typing import TextIO

# Wide enough for the report's two-column lines; used when the output is not a terminal.
DEFAULT_WIDTH = 110
# Narrower than this and the report's columns no longer fit at all; rich would wrap each word.
MIN_WIDTH = 40


def color_enabled(stream: TextIO, *, no_color: bool = False) -> bool:
    """Whether text written to ``stream`` gets colour and styles."""
    if no_color or os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return _isatty(stream)


def width(stream: TextIO) -> int:
    """The width to lay text out for on ``stream``."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return max(MIN_WIDTH, int(columns))
    if _isatty(stream):
        try:
            return max(MIN_WIDTH, os.get_terminal_size(stream.fileno()).columns)
        except (OSError, ValueError):
            pass
    return DEFAULT_WIDTH


def interactive(stream: TextIO) -> bool:
    """Whether a live progress display belongs on ``stream`` (a terminal, not a log)."""
    return _isatty(stream) and os.environ.get("TERM") != "dumb"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or fake stream
        return False
