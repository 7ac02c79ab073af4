"""`provscan config show|schema`: which value does each setting take, and from where?

The values are gathered here; provscan.cli.config_show merges the layers and renders them.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from provscan.cli.options import CONFIG_SEARCH_HELP, config_option, format_option, policy_option
from provscan.cli.packs import policy_dirs, user_config
from provscan.errors import ExitCode


@click.group("config")
def config_group() -> None:
    """Show the effective configuration and its JSON Schema."""


@config_group.command("show")
@policy_option("Pack(s) whose defaults apply (default: the shipped pack).")
@config_option(CONFIG_SEARCH_HELP)
@format_option
def config_show(policies: tuple[str, ...], config_path: Path | None, fmt: str) -> int:
    """Print every setting's effective value and where it came from (pack default or file).

    The config file is validated against its JSON Schema first (exit 2 when invalid).
    """
    # Imported here: the config and pack loaders pull in the report model (heavy for --help).
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
    # Imported here: see config_show.
    from provscan.policy.config import config_schema

    click.echo(json.dumps(config_schema(), indent=2))
    return int(ExitCode.APPROVE)
