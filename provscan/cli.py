"""The provscan command line: flags to options, scan, evaluate, render, write, exit code."""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from provscan import __version__
from provscan.errors import ExitCode, OutputError, ProvscanError, UsageError
from provscan.pipeline import ScanOptions, available_cpus, scan
from provscan.report import Decision, Report
from provscan.resources import default_policy_dir

F = TypeVar("F", bound=Callable[..., Any])

_DECISION_EXIT = {
    Decision.APPROVE: ExitCode.APPROVE,
    Decision.REVIEW: ExitCode.REVIEW,
    Decision.DENY: ExitCode.DENY,
}


def _scan_options(func: F) -> F:
    options = [
        click.option(
            "--workers",
            type=click.IntRange(1, 256),
            default=None,
            help="Hashing threads (default: CPU count).",
        ),
        click.option(
            "--serialization",
            type=click.Choice(["files", "shards"]),
            default="files",
            show_default=True,
            help="OMS manifest method: one digest per file, or per shard (parallel within big files).",
        ),
        click.option(
            "--shard-size",
            type=click.IntRange(1),
            default=1_000_000_000,
            show_default=True,
            help="Shard size in bytes for --serialization shards.",
        ),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(["text", "json"]),
            default="text",
            show_default=True,
            help="What to print on stdout.",
        ),
        click.option(
            "--json",
            "json_out",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Write the JSON report to FILE.",
        ),
        click.option(
            "--bom",
            "bom_out",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Write the CycloneDX 1.6 AI-BOM to FILE.",
        ),
        click.option("-q", "--quiet", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _policy_option(help_text: str) -> Callable[[F], F]:
    return click.option("--policy", "policies", multiple=True, metavar="DIR", help=help_text)


def _config_option(help_text: str) -> Callable[[F], F]:
    return click.option(
        "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), help=help_text
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="provscan")
def cli() -> None:
    """Admit or refuse an open-weight model: inspect its files, let a Rego policy decide,
    and record the evidence as a CycloneDX AI-BOM.

    Exit codes: 0 approve, 1 deny, 2 usage error, 3 could not complete (fail closed),
    4 needs review.
    """


@cli.command()
@click.argument("target")
@_policy_option(
    "Policy pack directory (repeatable; 'default' = the shipped pack). Replaces the default pack."
)
@_config_option("Config file (default: ./provscan.toml if present).")
@click.option(
    "--policy-timeout",
    type=click.FloatRange(0.1),
    default=60.0,
    show_default=True,
    help="Seconds before the policy engine is stopped (fail closed).",
)
@_scan_options
def check(
    target: str,
    policies: tuple[str, ...],
    config_path: Path | None,
    policy_timeout: float,
    **kw: Any,
) -> int:
    """Scan TARGET, evaluate the policy, print the verdict and write the outputs.

    TARGET is a model directory, a single model file, or a Hugging Face cache snapshot.
    """
    from provscan.config import load_config
    from provscan.policy.engine import evaluate

    config, _source = load_config(config_path, Path.cwd())
    packs = _policy_dirs(policies)
    report = _scan(target, kw)
    verdict = evaluate(report, packs, config, timeout_s=policy_timeout)
    report = report.model_copy(update={"verdict": verdict})
    _emit(report, kw)
    return int(_DECISION_EXIT[verdict.decision])


@cli.command()
@click.argument("target")
@_scan_options
def inspect(target: str, **kw: Any) -> int:
    """Scan TARGET and report what was found, without a policy verdict (exit 0 when the report was produced)."""
    report = _scan(target, kw)
    _emit(report, kw)
    return int(ExitCode.APPROVE)


@cli.group()
def policy() -> None:
    """Work with Rego policy packs."""


@policy.command("test")
@_policy_option("Pack(s) to test (default: the shipped pack).")
@_config_option("Config merged over the pack defaults.")
def policy_test(policies: tuple[str, ...], config_path: Path | None) -> int:
    """Run each pack's table tests: tests/<case>/input.json in, expected.yaml verdict and rule ids out."""
    from provscan.config import load_config
    from provscan.policy.testing import run_policy_tests

    config = load_config(config_path, Path.cwd())[0] if config_path else None
    packs = _policy_dirs(policies)
    results = run_policy_tests(packs, config)
    if not results:
        raise UsageError(
            f"no policy test cases found under {', '.join(str(p / 'tests') for p in packs)}"
        )
    for result in results:
        mark = "PASS" if result.passed else "FAIL"
        click.echo(f"{mark} {result.name}" + ("" if result.passed else f": {result.message}"))
    failed = sum(not r.passed for r in results)
    click.echo(f"{len(results) - failed} passed, {failed} failed")
    return int(ExitCode.DENY if failed else ExitCode.APPROVE)


def _policy_dirs(values: Sequence[str]) -> list[Path]:
    if not values:
        return [default_policy_dir()]
    dirs = []
    for value in values:
        path = default_policy_dir() if value == "default" else Path(value)
        if not path.is_dir():
            raise UsageError(f"--policy {value}: not a directory")
        dirs.append(path)
    return dirs


def _scan(target: str, kw: dict[str, Any]) -> Report:
    options = ScanOptions(
        hash_workers=kw["workers"] or available_cpus(),
        serialization=kw["serialization"],
        shard_size=kw["shard_size"],
    )
    show_progress = not kw["quiet"] and sys.stderr.isatty()
    if not show_progress:
        return scan(target, options)
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("hashing"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task("hashing", total=None)
        with_progress = dataclasses.replace(
            options,
            on_hash_start=lambda total: progress.update(task, total=total),
            on_hash_progress=lambda n: progress.advance(task, n),
        )
        return scan(target, with_progress)


def _emit(report: Report, kw: dict[str, Any]) -> None:
    """Render every requested output first, then write them: nothing partial on failure."""
    from provscan.emit.json_report import render_json
    from provscan.emit.terminal import render_terminal

    outputs: list[tuple[Path, str]] = []
    if kw["json_out"] is not None:
        outputs.append((kw["json_out"], render_json(report)))
    if kw["bom_out"] is not None:
        from provscan.emit.cyclonedx import render_cyclonedx
        from provscan.licence_files import read_licence_texts

        outputs.append(
            (kw["bom_out"], render_cyclonedx(report, licence_texts=read_licence_texts(report)))
        )
    for path, text in outputs:
        _write_atomically(path, text)
    if kw["fmt"] == "json":
        click.echo(render_json(report), nl=False)
    else:
        click.echo(render_terminal(report, color=sys.stdout.isatty()), nl=False)


def _write_atomically(path: Path, text: str) -> None:
    try:
        directory = path.resolve().parent
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise OutputError(f"{path}: cannot write output ({exc.strerror or exc})") from exc


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: one error handler, every outcome mapped to a documented exit code."""
    try:
        code = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="provscan",
            standalone_mode=False,
        )
    except click.exceptions.Exit as exc:  # --help, --version
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(int(ExitCode.USAGE))
    except click.exceptions.Abort:
        click.echo("provscan: interrupted; no verdict", err=True)
        sys.exit(int(ExitCode.INCOMPLETE))
    except ProvscanError as exc:
        click.echo(f"provscan: error: {exc}", err=True)
        sys.exit(int(exc.exit_code))
    except Exception:  # noqa: BLE001 - a crash must never read as a pass
        traceback.print_exc()
        click.echo(
            "provscan: internal error (see the traceback above); no verdict. Please report it.",
            err=True,
        )
        sys.exit(int(ExitCode.INCOMPLETE))
    sys.exit(int(code) if isinstance(code, int) else 0)
