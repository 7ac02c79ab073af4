"""One line per decided model: the table for people and the JSON lines for machines.

`provscan evaluate` prints one row per input. Imports stay light (no pydantic, no rich until a
table is drawn): this module is loaded whenever the command line starts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provscan.report import Decision

# Worst first: a deny is a definite answer against the model; a result that could not be
# reached (3) or a misuse (2) is never an approval; review comes before approve.
_EXIT_ORDER = (1, 3, 2, 4, 0)
_INCOMPLETE = 3

_DECISION_STYLE = {"approve": "bold green", "review": "bold yellow", "deny": "bold red"}


@dataclass(frozen=True)
class Row:
    """One input's outcome.

    old: the verdict stored in the input (None: it held none). new: the verdict reached now
    (None: none was reached, see error). added / removed: rule ids in the new verdict's
    reasons that the old one did not have, and the other way round. reasons: the new
    verdict's reasons as (level, rule, message). notes: what a reader of the row must know
    besides (the input's evidence is older than the policy, say).
    """

    input: str
    target: str
    old: Decision | None
    new: Decision | None
    added: tuple[str, ...]
    removed: tuple[str, ...]
    error: str | None
    exit_code: int
    reasons: tuple[tuple[str, str, str], ...] = ()
    notes: tuple[str, ...] = ()
    # `check` with several targets: the stable name of the target's outputs, and their paths.
    name: str | None = None
    outputs: tuple[str, ...] = ()


def worst_exit(codes: Iterable[int]) -> int:
    """One exit status for many rows: deny (1), then could not complete (3), usage (2),
    review (4), approve (0). An unknown code counts as 3, and so do no rows at all: nothing
    decided is no approval."""
    seen = {code if code in _EXIT_ORDER else _INCOMPLETE for code in codes}
    return next((code for code in _EXIT_ORDER if code in seen), _INCOMPLETE)


def changes(row: Row) -> str:
    """Each rule added as "+ID", each removed as "-ID", space separated."""
    return " ".join([*(f"+{rule}" for rule in row.added), *(f"-{rule}" for rule in row.removed)])


def json_line(row: Row) -> str:
    """The row as one line of JSON (ASCII only, so no text in it can break the line)."""
    document = {
        "input": row.input,
        "target": row.target,
        "old": _value(row.old),
        "new": _value(row.new),
        "added": list(row.added),
        "removed": list(row.removed),
        "reasons": [{"level": level, "rule": rule, "msg": msg} for level, rule, msg in row.reasons],
        "notes": list(row.notes),
        "error": row.error,
        "exit_code": row.exit_code,
    }
    if row.name is not None:
        document["name"] = row.name
        document["outputs"] = list(row.outputs)
    return json.dumps(document, ensure_ascii=True) + "\n"


def render_table(rows: Sequence[Row], *, color: bool, width: int) -> str:
    """The rows as a table for a terminal; every text that came from an input is escaped."""
    from rich.table import Table

    from provscan.emit.terminal import escape

    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for name in ("input", "target", "old", "new", "reasons changed"):
        table.add_column(name, overflow="fold")
    for row in rows:
        if row.error is not None:
            detail = f"[red]error:[/red] {escape(row.error)}"
        else:
            detail = escape(changes(row)) or "[dim]no change[/dim]"
        notes = "".join(f"\n[dim]note: {escape(note)}[/dim]" for note in row.notes)
        table.add_row(
            escape(row.input),
            escape(row.target),
            _decision(row.old),
            _decision(row.new) if row.error is None else "[red]error[/red]",
            detail + notes,
        )
    return _printed(table, color=color, width=width)


def render_verdicts(rows: Sequence[Row], *, color: bool, width: int) -> str:
    """`check` of several targets: each target's verdict and the rules that made it, then
    the counts; every text that came from a target is escaped."""
    from rich.table import Table

    from provscan.emit.terminal import escape

    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for name in ("target", "verdict", "why"):
        table.add_column(name, overflow="fold")
    for row in rows:
        if row.error is not None or row.new is None:
            verdict = f"[red]error ({row.exit_code})[/red]"
            why = escape(row.error or "")
        else:
            verdict = _decision(row.new)
            blocking = [rule for level, rule, _ in row.reasons if level in ("deny", "review")]
            why = escape(", ".join(dict.fromkeys(blocking))) or "-"
        table.add_row(escape(row.target), verdict, why)
    return _printed(table, color=color, width=width) + tally(rows, "target(s)") + "\n"


def tally(rows: Sequence[Row], noun: str) -> str:
    """`3 target(s): 1 approve, 1 deny, 1 error`: how the rows ended, in a fixed order."""
    counts: dict[str, int] = {}
    for row in rows:
        key = "error" if row.error is not None or row.new is None else str(row.new.value)
        counts[key] = counts.get(key, 0) + 1
    order = ("approve", "review", "deny", "error")
    return f"{len(rows)} {noun}: " + ", ".join(f"{counts[k]} {k}" for k in order if k in counts)


def _printed(table: Any, *, color: bool, width: int) -> str:
    """A rich table as text for a stream that does (or does not) take colour."""
    import io

    from rich.console import Console

    buffer = io.StringIO()
    console = Console(
        file=buffer, force_terminal=color, no_color=not color, width=width, highlight=False
    )
    console.print(table)
    return _trimmed(buffer.getvalue())


def _trimmed(text: str) -> str:
    """rich pads each table line to its width: trailing blanks only make copied text ragged."""
    return "".join(line.rstrip() + "\n" for line in text.splitlines())


def _value(decision: Decision | None) -> str | None:
    return None if decision is None else str(decision.value)


def _decision(decision: Decision | None) -> str:
    if decision is None:
        return "-"
    value = str(decision.value)
    return f"[{_DECISION_STYLE.get(value, 'bold')}]{value}[/]"
