"""`provscan diff OLD NEW`: what changed between two AI-BOMs or reports, and does it matter?

Exit codes: 0 no material change, 1 material change (see compare.py for the rule), 2 a bad
input (missing, unreadable, not JSON, neither a provscan report nor a CycloneDX BOM, an
unsupported report schema, malformed or self-contradicting content), 3 internal failure or
the --json file could not be written (provscan's main handles both).
"""

from __future__ import annotations

from pathlib import Path

import click

from provscan.atomic import STDOUT, OutputPath, claim_stdout, write_output
from provscan.cli.options import format_option

NO_MATERIAL_CHANGE = 0
CHANGED = 1

_INPUT = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)


@click.command("diff")
@click.argument("old", type=_INPUT)
@click.argument("new", type=_INPUT)
@format_option
@click.option(
    "--json",
    "json_out",
    type=OutputPath(),
    help="Also write the diff as JSON to FILE (- for stdout: the text summary then goes to stderr).",
)
@click.option(
    "--fail-on",
    type=click.Choice(["material", "any", "none"]),
    default="material",
    show_default=True,
    help="Exit 1 on a material change; on any listed change or section not compared; or never.",
)
def diff_command(old: Path, new: Path, fmt: str, json_out: Path | str | None, fail_on: str) -> int:
    """Compare two AI-BOMs (--bom) or reports (--json) of a model, or one of each: files,
    licences, lineage, findings, signatures and verdict. Exit 0: no material change;
    1: material change; 2: a bad input."""
    # Imported here: this module is imported whenever the CLI starts.
    from provscan.diff.compare import compare
    from provscan.diff.inputs import load_snapshot
    from provscan.diff.render import render_json, render_text

    on_stdout = claim_stdout(
        [("--format json", STDOUT if fmt == "json" else None), ("--json", json_out)]
    )
    diff = compare(load_snapshot(old), load_snapshot(new))
    if json_out is not None:
        write_output(json_out, render_json(diff))
    # --json - owns stdout: the summary for people goes to stderr.
    click.echo(
        render_json(diff) if fmt == "json" else render_text(diff),
        nl=False,
        err=on_stdout == "--json",
    )
    if fail_on == "none":
        return NO_MATERIAL_CHANGE
    # --fail-on any: a section that could not be compared counts as a change.
    failed = (diff.changed or not diff.complete) if fail_on == "any" else diff.material
    return CHANGED if failed else NO_MATERIAL_CHANGE
