"""What does the machine-readable report look like? The Report as JSON, schema-versioned."""

from __future__ import annotations

from provscan.report import Report


def render_json(report: Report) -> str:
    """The report (with its verdict, when evaluated) as indented JSON ending in a newline."""
    return report.model_dump_json(indent=2) + "\n"
