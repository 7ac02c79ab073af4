"""Which forms can a report be written in, which flag asks for each, and what renders it?

One table, `RENDERERS`, maps each `OutputFormat` to its renderer (as pip-audit's `to_format`
does); a renderer imports its emitter only when its output is asked for, so that `--help`
stays light. `OutputRequest` is what a command was asked to print and write.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from provscan.atomic import STDOUT, claim_stdout, write_output
from provscan.cli import term
from provscan.emit.formats import FORMATS

if TYPE_CHECKING:
    from provscan.report import Report


class OutputFormat(enum.Enum):
    """A form a report can be rendered in."""

    TERMINAL = "terminal"
    JSON = "json"
    SARIF = "sarif"
    CYCLONEDX = "cyclonedx"
    MARKDOWN = "markdown"
    HTML = "html"


# --format: what is printed on standard output.
STDOUT_FORMATS = {"text": OutputFormat.TERMINAL, "json": OutputFormat.JSON}
# The options that write a report to FILE (- for stdout), in the order the files are written.
FILE_FLAGS = {
    "--json": OutputFormat.JSON,
    "--bom": OutputFormat.CYCLONEDX,
    "--sarif": OutputFormat.SARIF,
    "--markdown": OutputFormat.MARKDOWN,
    "--html": OutputFormat.HTML,
}
FLAG_OF = {fmt: flag for flag, fmt in FILE_FLAGS.items()}


@dataclass(frozen=True)
class Layout:
    """How text for people is laid out: colour or not, and the width (files get neither)."""

    color: bool = False
    width: int = term.DEFAULT_WIDTH


Renderer = Callable[["Report", Layout], str]


def _terminal(report: Report, layout: Layout) -> str:
    # Imported when called: the report model and rich are heavy, and `--help` must not load them.
    from provscan.emit.terminal import render_terminal

    return render_terminal(report, color=layout.color, width=layout.width)


def _file_format(name: str) -> Renderer:
    render_file = FORMATS[name]  # a KeyError here: an output format emit cannot write

    def renderer(report: Report, layout: Layout) -> str:
        return render_file(report)  # files are written without colour or a width

    return renderer


# The terminal summary is laid out for a person; every other form is emit's file format of
# the same name (provscan.emit.formats.FORMATS).
RENDERERS: dict[OutputFormat, Renderer] = {
    OutputFormat.TERMINAL: _terminal,
    **{fmt: _file_format(fmt.value) for fmt in OutputFormat if fmt is not OutputFormat.TERMINAL},
}


def render(fmt: OutputFormat, report: Report, layout: Layout | None = None) -> str:
    """The report as text in the given form."""
    return RENDERERS[fmt](report, layout or Layout())


@dataclass(frozen=True)
class OutputRequest:
    """What to print on stdout, which files to write (flag order), and how to show progress."""

    stdout: OutputFormat = OutputFormat.TERMINAL
    files: Mapping[OutputFormat, Path | str] = field(default_factory=dict)
    quiet: bool = False
    no_color: bool = False

    @classmethod
    def from_flags(
        cls,
        *,
        fmt: str,
        json_out: Path | str | None,
        bom_out: Path | str | None,
        sarif_out: Path | str | None,
        markdown_out: Path | str | None,
        html_out: Path | str | None,
        quiet: bool,
        no_color: bool,
    ) -> OutputRequest:
        given = (json_out, bom_out, sarif_out, markdown_out, html_out)
        files = {
            fmt_: where
            for fmt_, where in zip(FILE_FLAGS.values(), given, strict=True)
            if where is not None
        }
        return cls(STDOUT_FORMATS[fmt], files, quiet, no_color)

    def stdout_output(self) -> str | None:
        """The one output given `-` (stdout), if any: a UsageError when several are (or one
        is and --format json prints the report there too)."""
        printed = STDOUT if self.stdout is OutputFormat.JSON else None
        return claim_stdout(
            [("--format json", printed), *((FLAG_OF[f], w) for f, w in self.files.items())]
        )


def render_outputs(
    report: Report, wanted: Mapping[OutputFormat, Path | str]
) -> list[tuple[Path | str, str]]:
    """Each requested output (where to) with its text."""
    return [(where, render(fmt, report)) for fmt, where in wanted.items()]


def emit(report: Report, request: OutputRequest) -> None:
    """Render every requested output first, then write them: nothing partial on failure."""
    for path, text in render_outputs(report, request.files):
        write_output(path, text)
    if request.stdout is OutputFormat.JSON:
        click.echo(render(OutputFormat.JSON, report), nl=False)
        return
    # An output given `-` owns stdout: the summary for people goes to stderr.
    stream = sys.stderr if request.stdout_output() is not None else sys.stdout
    layout = Layout(term.color_enabled(stream, no_color=request.no_color), term.width(stream))
    click.echo(render(OutputFormat.TERMINAL, report, layout), nl=False, file=stream, color=True)
