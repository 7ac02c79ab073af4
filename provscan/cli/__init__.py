"""The provscan command line: the command group, and the one handler mapping outcomes to exit codes.

Each command family lives in its own module (scan, sign, policy, config, diff, pre-commit,
evaluate) and is registered here; none of them imports this package back.
"""

from __future__ import annotations

import signal
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass

import click

from provscan import __version__, interrupts
from provscan.cli.config import config_group
from provscan.cli.diff import diff_command
from provscan.cli.evaluate import evaluate_command
from provscan.cli.policy import policy
from provscan.cli.precommit import pre_commit
from provscan.cli.scan import check, inspect, probe
from provscan.cli.sign import sign, sign_bom_command, verify_bom_command
from provscan.errors import ExitCode, ProvscanError


@dataclass
class _Session:
    """What the error handler must know of the flags: set by the group, read by `main`."""

    verbose: bool = False


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="provscan")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="On an error, also print what caused it (the chain of underlying errors).",
)
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Admit or refuse an open-weight model: inspect its files, let a Rego policy decide,
    and record the evidence as a CycloneDX AI-BOM.

    Exit codes: 0 approve, 1 deny, 2 usage error, 3 could not complete (fail closed),
    4 needs review.
    """
    if isinstance(ctx.obj, _Session):
        ctx.obj.verbose = verbose


cli.add_command(check)
cli.add_command(inspect)
cli.add_command(probe)
cli.add_command(sign)
cli.add_command(sign_bom_command)
cli.add_command(verify_bom_command)
cli.add_command(diff_command)
cli.add_command(evaluate_command)
cli.add_command(policy)
cli.add_command(config_group)
cli.add_command(pre_commit)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: one error handler, every outcome mapped to a documented exit code."""
    session = _Session()
    try:
        code = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="provscan",
            standalone_mode=False,
            obj=session,
        )
    except click.exceptions.Exit as exc:  # --help, --version
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(int(ExitCode.USAGE))
    except click.exceptions.Abort as exc:  # KeyboardInterrupt where no handler was installed
        interrupted = isinstance(exc.__cause__, KeyboardInterrupt)
        click.echo(interrupts.message(signal.SIGINT if interrupted else None), err=True)
        sys.exit(int(ExitCode.INCOMPLETE))
    except interrupts.Interrupted as exc:  # SIGINT or SIGTERM (provscan.__main__ installs them)
        click.echo(interrupts.message(exc.signum), err=True)
        sys.exit(int(ExitCode.INCOMPLETE))
    except ProvscanError as exc:
        click.echo(f"provscan: error: {exc}", err=True)
        if session.verbose:
            _print_causes(exc)
        sys.exit(int(exc.exit_code))
    except Exception:  # noqa: BLE001 - a crash must never read as a pass
        traceback.print_exc()
        click.echo(
            "provscan: internal error (see the traceback above); no verdict. Please report it.",
            err=True,
        )
        sys.exit(int(ExitCode.INCOMPLETE))
    sys.exit(int(code) if isinstance(code, int) else 0)


def _print_causes(exc: BaseException) -> None:
    """-v: each error underneath the message (as Python chains them), outermost first."""
    seen: set[int] = {id(exc)}
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        text = str(cause).replace("\n", " ")
        click.echo(f"  caused by: {type(cause).__name__}: {text}", err=True)
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    if len(seen) > 1:
        # Then the whole chain as Python prints it, each with its traceback (for a bug report).
        click.echo("".join(traceback.format_exception(exc)).rstrip("\n"), err=True)
