"""Which renderer writes which output format? One table, each renderer imported when used.

Each function imports its emitter when it is called: the report model, rich, and the
CycloneDX and SARIF builders are heavy, and `provscan --help` (which names these formats)
must not load them. The terminal summary is not here: it is rendered for a person, with a
layout (`provscan.emit.terminal.render_terminal`), not written as a file format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the report model (pydantic) is not loaded for --help
    from provscan.report import Report

Renderer = Callable[["Report"], str]


def _json(report: Report) -> str:
    from provscan.emit.json_report import render_json  # heavy: see the module docstring

    return render_json(report)


def _cyclonedx(report: Report) -> str:
    from provscan.emit.cyclonedx import render_cyclonedx  # heavy: cyclonedx-python-lib

    return render_cyclonedx(report)


def _sarif(report: Report) -> str:
    from provscan.emit.sarif import render_sarif  # heavy: jsonschema

    # Paths in SARIF are relative to where provscan runs, as code-scanning tools read them.
    return render_sarif(report, base_dir=Path.cwd())


def _markdown(report: Report) -> str:
    from provscan.emit.markdown import render_markdown  # heavy: see the module docstring

    return render_markdown(report)


def _html(report: Report) -> str:
    from provscan.emit.html import render_html  # heavy: see the module docstring

    return render_html(report)


# Format name -> the function that renders a Report as that format's text.
FORMATS: Mapping[str, Renderer] = {
    "json": _json,
    "cyclonedx": _cyclonedx,
    "sarif": _sarif,
    "markdown": _markdown,
    "html": _html,
}


def render(fmt: str, report: Report) -> str:
    """The report rendered as `fmt` (a key of FORMATS)."""
    return FORMATS[fmt](report)
