"""Every output form has a renderer, every output flag names a form, and each renders a report."""

from __future__ import annotations

import click
import pytest

from fixtures.models import DEMO_DIR
from provscan.atomic import OutputPath
from provscan.cli.checking import scan_target
from provscan.cli.outputs import FILE_FLAGS, RENDERERS, STDOUT_FORMATS, OutputFormat, render
from provscan.cli.scan import check, inspect, probe
from provscan.cli.settings import ScanSettings
from provscan.emit.formats import FORMATS
from provscan.report import Report
from provscan.signing.trust import load_trust


def test_every_format_has_a_renderer() -> None:
    assert set(RENDERERS) == set(OutputFormat)


def test_every_file_format_emit_writes_is_offered_and_no_other() -> None:
    # The terminal summary is for a person; every other form is one of emit's file formats.
    assert set(FORMATS) == {fmt.value for fmt in OutputFormat} - {OutputFormat.TERMINAL.value}


@pytest.mark.parametrize("command", [check, inspect, probe], ids=lambda c: c.name)
def test_every_output_flag_maps_to_a_format(command: click.Command) -> None:
    file_flags = [
        opt
        for param in command.params
        if isinstance(param, click.Option) and isinstance(param.type, OutputPath)
        for opt in param.opts
    ]
    assert sorted(file_flags) == sorted(FILE_FLAGS)
    (fmt,) = [p for p in command.params if isinstance(p, click.Option) and "--format" in p.opts]
    assert isinstance(fmt.type, click.Choice)
    assert set(fmt.type.choices) == set(STDOUT_FORMATS)
    assert set(FILE_FLAGS.values()) | set(STDOUT_FORMATS.values()) == set(OutputFormat)


@pytest.fixture(scope="module")
def canonical_report() -> Report:
    """The demo model's report, scanned once: what every renderer is given."""
    return scan_target(str(DEMO_DIR), ScanSettings(), load_trust((), (), None), progress=False)


@pytest.mark.parametrize("fmt", list(OutputFormat), ids=lambda f: f.value)
def test_each_renderer_returns_text(fmt: OutputFormat, canonical_report: Report) -> None:
    text = render(fmt, canonical_report)
    assert isinstance(text, str)
    assert text.strip()
