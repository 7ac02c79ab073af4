"""The policy side of the command line: packs, config file, policy engines, and their commands.

`provscan policy test|push`, `provscan config show|schema` and `provscan pre-commit`, plus the
options and helpers `check` and `probe` share with them (which packs, which config file,
which engine).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from provscan.errors import ExitCode, UsageError
from provscan.resources import default_policy_dir, shipped_policy_dir

if TYPE_CHECKING:
    from provscan.policy.backends import PolicyBackend
    from provscan.policy.config import ConfigFile

F = TypeVar("F", bound=Callable[..., Any])


def options(make: Callable[[], list[Callable[[F], F]]]) -> Callable[[F], F]:
    """Apply a list of click options as one decorator (in the order they are listed)."""

    def apply(func: F) -> F:
        for option in reversed(make()):
            func = option(func)
        return func

    return apply


def policy_option(help_text: str) -> Callable[[F], F]:
    return click.option("--policy", "policies", multiple=True, metavar="DIR", help=help_text)


def decision_options() -> list[Callable[[F], F]]:
    """Which Sigstore identities count as trusted, and how long the policy may take: the
    options of every command that reaches a verdict (check, evaluate)."""
    return [
        click.option(
            "--trusted-identity",
            "trusted_identities",
            multiple=True,
            metavar="IDENTITY",
            help="Sigstore signer identity (e-mail or workflow URI) to trust; pair each with "
            "--trusted-issuer.",
        ),
        click.option(
            "--trusted-issuer",
            "trusted_issuers",
            multiple=True,
            metavar="URL",
            help="OIDC issuer of the --trusted-identity in the same position.",
        ),
        click.option(
            "--policy-timeout",
            type=click.FloatRange(0.1),
            default=60.0,
            show_default=True,
            help="Seconds before the policy engine is stopped (fail closed).",
        ),
    ]


def engine_options() -> list[Callable[[F], F]]:
    """Where the Rego policy runs: embedded regopy, the opa binary, or an OPA server."""
    return [
        click.option(
            "--policy-engine",
            type=click.Choice(["regopy", "opa"]),
            default="regopy",
            show_default=True,
            help="Evaluate the packs with the embedded regopy engine or the `opa` binary.",
        ),
        click.option(
            "--opa-binary",
            default="opa",
            show_default=True,
            metavar="PATH",
            help="The opa binary for --policy-engine opa (a name on PATH, or a path).",
        ),
        click.option(
            "--opa-url",
            metavar="URL",
            help="Ask a running OPA server (REST data API: POST /v1/data/provscan/main) instead. "
            "It decides with its own policy and config; with --policy, it must hold exactly "
            "those packs (load them with `provscan policy push`).",
        ),
        click.option(
            "--opa-token-env",
            metavar="VAR",
            help="Environment variable holding a bearer token for --opa-url (never on the command line).",
        ),
    ]


def backend_from(kw: dict[str, Any]) -> PolicyBackend:
    from provscan.policy.backends import PolicyBackend

    if kw["opa_url"] is not None:
        if kw["policy_engine"] != "regopy":
            raise UsageError("--opa-url and --policy-engine opa exclude each other")
        return PolicyBackend("opa-server", opa_url=kw["opa_url"], token_env=kw["opa_token_env"])
    if kw["opa_token_env"] is not None:
        raise UsageError("--opa-token-env applies to --opa-url only")
    if kw["policy_engine"] == "opa":
        return PolicyBackend("opa", opa_binary=kw["opa_binary"])
    return PolicyBackend()


def server_scope(
    backend: PolicyBackend, policies: Sequence[str], packs: list[Path], config: dict[str, Any]
) -> tuple[list[Path], dict[str, Any]]:
    """Packs and config to send: an OPA server asked without --policy uses its own."""
    if backend.kind != "opa-server" or policies:
        return packs, config
    settings = sorted(set(config) - {"trust"})
    if settings:
        raise UsageError(
            f"the OPA server decides with its own config, so {', '.join(settings)} from the "
            "config file would be ignored",
            "name the packs with --policy (the server must hold them: provscan policy push), "
            "or keep only [trust] in the config",
        )
    return [], {}


def config_option(help_text: str) -> Callable[[F], F]:
    return click.option(
        "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), help=help_text
    )


@click.group()
def policy() -> None:
    """Work with Rego policy packs."""


@policy.command("test")
@policy_option("Pack(s) to test (default: the shipped pack).")
@config_option("Config merged over the pack defaults.")
@options(engine_options)
def policy_test(policies: tuple[str, ...], config_path: Path | None, **kw: Any) -> int:
    """Run each pack's table tests: tests/<case>/input.json in, expected.yaml verdict and rule ids out.

    With --opa-url, each case's packs and config are pushed to the server first: use a
    scratch server, never one that decides for production.
    """
    from provscan.policy.testing import run_policy_tests

    packs = policy_dirs(policies)
    config = user_config(config_path, packs).table if config_path else None
    results = run_policy_tests(packs, config, backend=backend_from(kw))
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


@click.command("pre-commit")
@click.argument("files", nargs=-1)
@policy_option("Policy pack directory or shipped pack name. Repeatable.")
@config_option("Config file (default: ./provscan.toml, else pyproject.toml [tool.provscan]).")
@click.option(
    "--fail-on",
    type=click.Choice(["review", "deny"]),
    default="review",
    show_default=True,
    help="Which verdicts block the commit (a check that cannot complete always blocks).",
)
def pre_commit(
    files: tuple[str, ...], policies: tuple[str, ...], config_path: Path | None, fail_on: str
) -> int:
    """The pre-commit hook: check every model that FILES (the staged files) belong to.

    A model file's (weights, a serialized object) model is the nearest directory above it
    holding config.json, model.sig, model_index.json, adapter_config.json or params.json,
    else its own directory; one at the repository's top is checked as that single file.
    Any other file belongs to the nearest directory holding a model, else to none: it is
    not checked (the repository itself is a model only when its top holds both a config
    and a model file).
    """
    import subprocess

    from provscan.cli.precommit import plan, worst_exit
    from provscan.visible import visible

    found = plan(files, Path.cwd())
    if found.not_models:
        shown = ", ".join(visible(name) for name in found.not_models[:5])
        more = len(found.not_models) - 5
        shown += f" and {more} more" if more > 0 else ""
        click.echo(f"provscan pre-commit: not part of a model, nothing to check: {shown}")
    roots = found.targets
    extra: list[str] = [arg for pack in policies for arg in ("--policy", pack)]
    if config_path is not None:
        extra += ["--config", str(config_path)]
    codes = []
    for root in roots:
        # A folder name may hold escapes, or bytes that are not UTF-8: shown, not obeyed.
        click.echo(f"provscan pre-commit: checking {visible(str(root))}")
        sys.stdout.flush()  # before the child writes to the same stream
        # One child per model, exactly as `provscan check` runs: its own exit code and output.
        proc = subprocess.run(  # noqa: S603 - fixed command, no shell
            [sys.executable, "-m", "provscan", "check", str(root), "--quiet", *extra],
            check=False,
        )
        codes.append(proc.returncode)
    return worst_exit(codes, fail_on_review=fail_on == "review")


@click.group("config")
def config_group() -> None:
    """Show the effective configuration and its JSON Schema."""


@config_group.command("show")
@policy_option("Pack(s) whose defaults apply (default: the shipped pack).")
@config_option("Config file (default: ./provscan.toml, else pyproject.toml [tool.provscan]).")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def config_show(policies: tuple[str, ...], config_path: Path | None, fmt: str) -> int:
    """Print every setting's effective value and where it came from (pack default or file).

    The config file is validated against its JSON Schema first (exit 2 when invalid).
    """
    from provscan.cli.config_show import Layer, effective_settings, render_json, render_text
    from provscan.policy.engine import DATA_FILES, load_packs

    dirs = policy_dirs(policies)
    config_file = user_config(config_path, dirs)
    loaded = load_packs(dirs)
    layers = []
    for pack in loaded:
        data = next((pack.root / n for n in DATA_FILES if (pack.root / n).is_file()), None)
        layers.append(Layer(f"{pack.name} pack ({data or pack.root})", pack.defaults))
    layers.append(Layer(config_file.label, config_file.table))
    merged, settings = effective_settings(layers)
    names = [pack.name for pack in loaded]
    if fmt == "json":
        click.echo(render_json(config_file, names, merged, settings), nl=False)
    else:
        click.echo(render_text(config_file, names, settings), nl=False)
    return int(ExitCode.APPROVE)


@config_group.command("schema")
def config_schema_command() -> int:
    """Print the config file's JSON Schema (for editors and CI linting)."""
    import json

    from provscan.policy.config import config_schema

    click.echo(json.dumps(config_schema(), indent=2))
    return int(ExitCode.APPROVE)


def user_config(config_path: Path | None, packs: Sequence[Path]) -> ConfigFile:
    """The user's config file, checked against the JSON Schema (keys a pack declares allowed)."""
    from provscan.policy.config import find_config, validate_config
    from provscan.policy.engine import load_packs

    found = find_config(config_path, Path.cwd())
    if found.table:
        declared = {key for pack in load_packs(packs) for key in pack.defaults}
        validate_config(found.table, found.label, declared)
    return found


def config_in_target_option(func: F) -> F:
    return click.option(
        "--config-from-target",
        is_flag=True,
        help="Use a config file that lies inside the model being scanned (refused by default: "
        "it was written by whoever handed the model over).",
    )(func)


def target_config(
    config_path: Path | None, packs: Sequence[Path], target: str, *, from_target: bool
) -> ConfigFile:
    """The user's config, refused when it lies inside the local model being scanned.

    A config decides which keys are trusted and which findings count, and everything inside
    the model folder came from whoever handed the model over: `cd model && provscan check .`
    must not read the model's own provscan.toml, nor --config point into it unnoticed. The
    check comes before the file's settings are validated: its content does not matter.
    """
    from provscan.policy.config import find_config

    root = None if from_target or target.startswith("hf://") else Path(target).resolve()
    if root is not None and root.is_dir():
        cwd = Path.cwd()
        if config_path is not None:
            path: Path | None = config_path if config_path.is_absolute() else cwd / config_path
        else:
            path = find_config(None, cwd).path
        if path is not None and path.resolve().is_relative_to(root):
            raise UsageError(
                f"config {path} lies inside the model being scanned ({target}): a config there "
                "was written by whoever handed the model over, so it is not used. Run from "
                "another directory, pass --config with a file outside the model, or add "
                "--config-from-target if you wrote it yourself"
            )
    return user_config(config_path, packs)


def policy_dirs(values: Sequence[str]) -> list[Path]:
    if not values:
        return [default_policy_dir()]
    dirs = []
    for value in values:
        shipped = shipped_policy_dir(value) if not Path(value).is_dir() else None
        path = shipped or Path(value)
        if not path.is_dir():
            raise UsageError(
                f"--policy {value}: not a directory, nor a shipped pack (default, production)"
            )
        dirs.append(path)
    return dirs
