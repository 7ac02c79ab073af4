"""`provscan evaluate REPORT...`: decide stored evidence again under today's policy, no rescan.

When the policy changes (a licence rule, a deny list), every model admitted before must be
judged again. Each provscan JSON report, and each AI-BOM provscan wrote (it embeds the report),
already holds every fact the policy reads; this command hands those facts to the policy again
and shows, per input, the stored verdict, the new one and the rule ids that appeared or went.
The model itself is never opened: it may be gone.

Exit codes: the worst row's (deny 1, then 3, then review 4, then approve 0). A row is 3 when
its input could not be read as a report (not JSON, too large or deep, not a valid report, a BOM
whose embedded report contradicts it) or the policy engine failed on it; the other inputs are
still decided. The command stops with 2 before deciding anything when an input must not be
judged by this provscan at all (see provscan.cli.evaluate_input: another major or a newer minor
schema, a BOM without an embedded report, a document that is neither) or an option is wrong.

A report of an older minor schema is decided with the defaults of the fields added since (a
fact it never recorded reads as absent), so its approval stands for less: it exits 4 (review),
with a note, until the model is scanned again.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from provscan.atomic import OutputPath, claim_stdout, make_output_dir, write_output
from provscan.cli import term
from provscan.cli.checking import exit_code
from provscan.cli.options import (
    CONFIG_HELP,
    config_option,
    decision_options,
    engine_options,
    no_color_option,
    policy_option,
)
from provscan.cli.outputs import OutputFormat, render
from provscan.cli.packs import (
    backend_from,
    policy_dirs,
    server_scope,
    user_config,
    with_identities,
)
from provscan.cli.settings import EngineChoice
from provscan.cli.summary import Row, json_line, render_table, tally, worst_exit
from provscan.errors import ExitCode, PolicyError, UsageError

if TYPE_CHECKING:
    from provscan.cli.evaluate_input import Evidence
    from provscan.report import Report, Verdict

_INPUT = click.Path(exists=True, dir_okay=False, path_type=Path)
_WRITTEN_SUFFIX = ".evaluated.json"


@dataclass(frozen=True)
class _Input:
    path: Path
    evidence: Evidence | None
    error: str | None


@click.command("evaluate")
@click.argument("reports", nargs=-1, required=True, type=_INPUT)
@policy_option(
    "Policy pack directory, or a shipped pack's name: default, production. Repeatable. "
    "Replaces the default pack."
)
@config_option(CONFIG_HELP)
@decision_options
@engine_options
@click.option(
    "--json",
    "json_out",
    type=OutputPath(),
    help="Write one JSON object per input, one per line, to FILE (- for stdout: the table then "
    "goes to stderr).",
)
@click.option(
    "--write",
    "write_dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help=f"Write each input's report with its new verdict to DIR, as NAME{_WRITTEN_SUFFIX} "
    "(NAME: the input's file name less .json).",
)
@no_color_option
def evaluate_command(
    reports: tuple[Path, ...],
    policies: tuple[str, ...],
    config_path: Path | None,
    trusted_identities: tuple[str, ...],
    trusted_issuers: tuple[str, ...],
    policy_timeout: float,
    policy_engine: str,
    opa_binary: str,
    opa_url: str | None,
    opa_token_env: str | None,
    json_out: Path | str | None,
    write_dir: Path | None,
    no_color: bool,
) -> int:
    """Decide provscan reports (--json) or AI-BOMs (--bom) again under the given policy,
    without rescanning: print each one's stored verdict, new verdict and the rule ids
    added (+ID) or removed (-ID). The model folder is not needed; the keys and CAs that
    signatures were checked against are those given when the report was made.

    Exit code: the worst new verdict (deny 1, could not complete 3, review 4, approve 0).
    """
    on_stdout = claim_stdout([("--json", json_out)])
    packs = policy_dirs(policies)
    config_file = user_config(config_path, packs)
    config = with_identities(config_file.table, trusted_identities, trusted_issuers)
    backend = backend_from(EngineChoice(policy_engine, opa_binary, opa_url, opa_token_env))
    packs, policy_config = server_scope(backend, policies, packs, config)
    inputs = _load_all(reports)
    _config_outside_models(config_file.path, inputs)
    names = _written_names(reports, write_dir) if write_dir is not None else {}

    def decide(report: Report) -> Verdict:
        # Imported here: the policy engine loads the report model (heavy for --help).
        from provscan.policy.engine import evaluate

        return evaluate(report, packs, policy_config, timeout_s=policy_timeout, backend=backend)

    rows, decided = _decide_all(inputs, decide)
    if write_dir is not None:
        make_output_dir(write_dir, "--write")
        for path, report in decided:
            write_output(write_dir / names[path], render(OutputFormat.JSON, report))
    if json_out is not None:
        write_output(json_out, "".join(json_line(row) for row in rows))
    # --json - owns stdout: the table for people goes to stderr.
    stream = sys.stderr if on_stdout is not None else sys.stdout
    color = term.color_enabled(stream, no_color=no_color)
    table = render_table(rows, color=color, width=term.width(stream))
    # color=True: whether to colour was decided above (click would strip it off a pipe).
    click.echo(table + tally(rows, "input(s)"), file=stream, color=True)
    return worst_exit(row.exit_code for row in rows)


def _load_all(paths: Sequence[Path]) -> list[_Input]:
    """Every input read; a UsageError naming the first one this provscan must not judge."""
    # Imported here: reading a report validates it with the report model (heavy for --help).
    from provscan.cli.evaluate_input import Damaged, Refused, load_evidence

    inputs, refused = [], []
    for path in paths:
        try:
            inputs.append(_Input(path, load_evidence(path), None))
        except Refused as exc:
            refused.append(f"{path}: {exc}")
        except Damaged as exc:
            inputs.append(_Input(path, None, str(exc)))
    if refused:
        more = f" (and {len(refused) - 1} more input(s) refused)" if len(refused) > 1 else ""
        raise UsageError(
            refused[0] + more,
            "give provscan JSON reports (check --json) or AI-BOMs (check --bom) of this "
            "provscan's report schema or an older minor one; for a newer one, upgrade provscan",
        )
    return inputs


def _decide_all(
    inputs: Sequence[_Input], decide: Callable[[Report], Verdict]
) -> tuple[list[Row], list[tuple[Path, Report]]]:
    rows: list[Row] = []
    decided: list[tuple[Path, Report]] = []
    for item in inputs:
        if item.evidence is None:
            rows.append(_error_row(str(item.path), "", item.error or "unreadable"))
            continue
        report = item.evidence.report
        target = report.target.repo_id or report.target.name
        try:
            verdict = decide(report)
        except PolicyError as exc:
            rows.append(_error_row(str(item.path), target, f"policy: {exc.message}"))
            continue
        rows.append(_row(str(item.path), target, item.evidence, verdict))
        decided.append((item.path, report.model_copy(update={"verdict": verdict})))
    return rows, decided


def _error_row(path: str, target: str, error: str) -> Row:
    return Row(path, target, None, None, (), (), error, int(ExitCode.INCOMPLETE))


def _row(path: str, target: str, evidence: Evidence, verdict: Verdict) -> Row:
    old = evidence.report.verdict
    old_rules = {r.rule for r in old.reasons} if old is not None else set()
    new_rules = {r.rule for r in verdict.reasons}
    code = exit_code(verdict.decision)
    notes: tuple[str, ...] = ()
    if evidence.older:
        notes = (
            f"evidence of report schema {evidence.schema_version}: facts recorded only since "
            "then are absent, and the policy saw their defaults; rescan the model before "
            "admitting it (an approval here exits 4, review)",
        )
        code = int(ExitCode.REVIEW) if code == int(ExitCode.APPROVE) else code
    return Row(
        input=path,
        target=target,
        old=old.decision if old is not None else None,
        new=verdict.decision,
        added=tuple(sorted(new_rules - old_rules)),
        removed=tuple(sorted(old_rules - new_rules)),
        error=None,
        exit_code=code,
        reasons=tuple((r.level, r.rule, r.msg) for r in verdict.reasons),
        notes=notes,
    )


def _written_names(paths: Sequence[Path], write_dir: Path) -> dict[Path, str]:
    """Each input's --write file name; a UsageError when two inputs would share one, or one
    would replace an input."""
    names: dict[Path, str] = {}
    taken: dict[str, Path] = {}
    inputs = {path.resolve() for path in paths}
    for path in paths:
        stem = path.name[: -len(".json")] if path.name.endswith(".json") else path.name
        name = stem + _WRITTEN_SUFFIX
        if name in taken and taken[name] != path:
            raise UsageError(
                f"--write {write_dir}: {taken[name]} and {path} would both be written as {name}",
                "evaluate inputs with different file names in separate runs",
            )
        if (write_dir / name).resolve() in inputs:
            raise UsageError(f"--write {write_dir}: {name} would replace an input")
        taken[name] = path
        names[path] = name
    return names


def _config_outside_models(config: Path | None, inputs: Sequence[_Input]) -> None:
    """A config file inside a model folder was written by whoever handed the model over:
    as for check, refused when it lies inside a folder one of the reports was scanned from
    (a folder that still exists; the embedded report of a BOM names none)."""
    if config is None:
        return
    try:
        resolved = config.resolve()
    except (OSError, RuntimeError):
        return
    for item in inputs:
        if item.evidence is None:
            continue
        root = item.evidence.report.target.root
        try:
            inside = (
                bool(root) and Path(root).is_dir() and resolved.is_relative_to(Path(root).resolve())
            )
        except (OSError, RuntimeError, ValueError):
            continue
        if inside:
            raise UsageError(
                f"config {config} lies inside the model {item.path} was scanned from ({root}): "
                "a config there was written by whoever handed the model over, so it is not "
                "used. Run from another directory, or pass --config with a file outside the model"
            )
