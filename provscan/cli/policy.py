"""`provscan policy test|push`: do the packs pass their own table tests, and load them into OPA."""

from __future__ import annotations

from pathlib import Path

import click

from provscan.cli.options import config_option, engine_options, policy_option
from provscan.cli.packs import backend_from, policy_dirs, user_config
from provscan.cli.settings import EngineChoice
from provscan.errors import ExitCode, UsageError


@click.group()
def policy() -> None:
    """Work with Rego policy packs."""


@policy.command("test")
@policy_option("Pack(s) to test (default: the shipped pack).")
@config_option("Config merged over the pack defaults.")
@engine_options
def policy_test(
    policies: tuple[str, ...],
    config_path: Path | None,
    policy_engine: str,
    opa_binary: str,
    opa_url: str | None,
    opa_token_env: str | None,
) -> int:
    """Run each pack's table tests: tests/<case>/input.json in, expected.yaml verdict and rule ids out.

    With --opa-url, each case's packs and config are pushed to the server first: use a
    scratch server, never one that decides for production.
    """
    # Imported here: the policy engine loads the report model (heavy for --help).
    from provscan.policy.testing import run_policy_tests

    packs = policy_dirs(policies)
    config = user_config(config_path, packs).table if config_path else None
    backend = backend_from(EngineChoice(policy_engine, opa_binary, opa_url, opa_token_env))
    results = run_policy_tests(packs, config, backend=backend)
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


@policy.command("push")
@policy_option("Pack(s) to load (default: the shipped pack).")
@config_option("Config merged over the pack defaults (default: ./provscan.toml if present).")
@click.option("--opa-url", required=True, metavar="URL", help="The OPA server's base URL.")
@click.option(
    "--opa-token-env",
    metavar="VAR",
    help="Environment variable holding a bearer token (never on the command line).",
)
@click.option(
    "--timeout", type=click.FloatRange(0.1), default=30.0, show_default=True, help="Seconds."
)
def policy_push(
    policies: tuple[str, ...],
    config_path: Path | None,
    opa_url: str,
    opa_token_env: str | None,
    timeout: float,
) -> int:
    """Load packs into an OPA server (modules as provscan/<pack>/<file>, the merged config as
    data.provscan.config), replacing the provscan modules it held; other modules stay."""
    # Imported here: the policy engine loads the report model (heavy for --help).
    from provscan.policy.backends import PolicyBackend
    from provscan.policy.opa_server import push_packs

    packs = policy_dirs(policies)
    config = user_config(config_path, packs).table
    backend = PolicyBackend("opa-server", opa_url=opa_url, token_env=opa_token_env)
    result = push_packs(backend, packs, config, timeout_s=timeout)
    click.echo(
        f"pushed to {result.url}: {len(result.uploaded)} module(s) uploaded, "
        f"{len(result.unchanged)} unchanged, {len(result.deleted)} removed; "
        f"policy digest sha256:{result.digest}"
    )
    return int(ExitCode.APPROVE)
