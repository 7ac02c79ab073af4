"""Which flags do the commands take? Each option defined once, stacked on commands as decorators.

The style of the OpenSSF model_signing command line: every option is a module-level
decorator (``output_option = click.option(...)``), and a command lists the ones it takes.
A group of options several commands share (the output files, the scan settings) is one
decorator too. Nothing here imports more than click: `provscan --help` loads this module.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from provscan.atomic import OutputPath
from provscan.cli.outputs import OutputRequest
from provscan.cli.settings import ProbeRequest, ScanSettings
from provscan.signing.layout import DEFAULT_SHARD_SIZE

# What click.option returns: a function (or command) in, the same with the option added, out.
Decorator = Callable[[Any], Any]

EXISTING_FILE = click.Path(dir_okay=False, exists=True, path_type=Path)
_BUDGET = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>[smh]?)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600}


def stacked(*options: Decorator) -> Decorator:
    """Several options as one decorator, listed in the order `--help` shows them."""

    def apply(func: Any) -> Any:
        for option in reversed(options):
            func = option(func)
        return func

    return apply


class gathered:  # noqa: N801 - used as a decorator, named like one
    """Several options handed to the command as one typed value, `name=build(**their values)`.

    The command then takes, say, `output: OutputRequest` instead of each output flag. A
    gathered group may hold another (the scan options hold the output options): each builds
    its own value from its own flags.
    """

    def __init__(self, name: str, build: Callable[..., Any], *options: Decorator) -> None:
        self.name, self.build, self.options = name, build, options
        collected = [param.name for param in stacked(*options)(_Params()).__click_params__]
        nested = {key for option in options for key in getattr(option, "gathers", ())}
        self.own = [key for key in collected if key not in nested]
        self.gathers = frozenset(collected)

    def __call__(self, func: Any) -> Any:
        own, name, build = self.own, self.name, self.build

        @functools.wraps(func)
        def command(*args: Any, **kwargs: Any) -> Any:
            values = {key: kwargs.pop(key) for key in own}
            return func(*args, **kwargs, **{name: build(**values)})

        return stacked(*self.options)(command)


class _Params:
    """A stand-in that collects click's parameters, to learn which names a set of options gives."""

    __click_params__: list[click.Parameter]

    def __init__(self) -> None:
        self.__click_params__ = []


def files_option(flag: str, dest: str, metavar: str, help_text: str) -> Decorator:
    """A repeatable option naming existing files (click says which one is missing)."""
    return click.option(
        flag, dest, multiple=True, type=EXISTING_FILE, metavar=metavar, help=help_text
    )


def policy_option(help_text: str) -> Decorator:
    """--policy, worded for the command: which packs decide."""
    return click.option("--policy", "policies", multiple=True, metavar="DIR", help=help_text)


def config_option(help_text: str) -> Decorator:
    """--config, worded for the command: which config file is read."""
    return click.option(
        "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), help=help_text
    )


CHECK_POLICY_HELP = (
    "Policy pack directory, or a shipped pack's name: default, production (requires a trusted "
    "signature). Repeatable. Replaces the default pack."
)
CONFIG_HELP = "Config file (default: ./provscan.toml if present)."
CONFIG_SEARCH_HELP = "Config file (default: ./provscan.toml, else pyproject.toml [tool.provscan])."

config_in_target_option = click.option(
    "--config-from-target",
    is_flag=True,
    help="Use a config file that lies inside the model being scanned (refused by default: "
    "it was written by whoever handed the model over).",
)

# What to print and which files to write (check, inspect and probe take the same).
format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="What to print on stdout.",
)
json_option = click.option(
    "--json", "json_out", type=OutputPath(), help="Write the JSON report to FILE (- for stdout)."
)
bom_option = click.option(
    "--bom",
    "bom_out",
    type=OutputPath(),
    help="Write the CycloneDX 1.6 AI-BOM to FILE (- for stdout).",
)
sarif_option = click.option(
    "--sarif",
    "sarif_out",
    type=OutputPath(),
    help="Write the findings and verdict as SARIF 2.1.0 (GitHub code scanning) to FILE (- for stdout).",
)
markdown_option = click.option(
    "--markdown",
    "markdown_out",
    type=OutputPath(),
    help="Write the audit report for people, as Markdown, to FILE (- for stdout).",
)
html_option = click.option(
    "--html",
    "html_out",
    type=OutputPath(),
    help="Write the audit report for people, as one self-contained HTML page, to FILE (- for stdout).",
)
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress display.")
no_color_option = click.option(
    "--no-color",
    is_flag=True,
    help="No colour (also NO_COLOR=1; FORCE_COLOR=1 forces colour when not a terminal).",
)
output_options: Decorator = gathered(
    "output",
    OutputRequest.from_flags,
    format_option,
    json_option,
    bom_option,
    sarif_option,
    markdown_option,
    html_option,
    quiet_option,
    no_color_option,
)

# How a target is read and hashed, and what its signatures are checked against.
serialization_choice = click.Choice(["files", "shards"])
shard_size_type = click.IntRange(1)
download_help = (
    "hf:// targets: download the snapshot into the Hugging Face cache (HF_HOME, "
    "HF_TOKEN) and scan every byte. Without it, an hf:// target is scanned as metadata: "
    "small files downloaded, weights read by range (headers only)."
)
scan_options: Decorator = gathered(
    "scan",
    ScanSettings,
    click.option(
        "--workers",
        type=click.IntRange(1, 256),
        default=None,
        help="Hashing threads (default: CPU count).",
    ),
    click.option(
        "--serialization",
        type=serialization_choice,
        default="files",
        show_default=True,
        help="OMS manifest method: one digest per file, or per shard (parallel within big files).",
    ),
    click.option(
        "--shard-size",
        type=shard_size_type,
        default=DEFAULT_SHARD_SIZE,
        show_default=True,
        help="Shard size in bytes for --serialization shards.",
    ),
    output_options,
    files_option(
        "--signature",
        "signatures",
        "FILE",
        "OMS signature (Sigstore bundle) to verify, besides the target's own model.sig. Repeatable.",
    ),
    files_option(
        "--trusted-key",
        "trusted_keys",
        "PEM",
        "Public key (EC P-256/384/521) whose signatures are trusted. Repeatable.",
    ),
    files_option(
        "--trusted-ca",
        "trusted_cas",
        "PEM",
        "CA certificate(s) that certificate-chain signatures must lead to. Repeatable.",
    ),
    click.option("--download", is_flag=True, help=download_help),
    click.option(
        "--include",
        multiple=True,
        metavar="PATTERN",
        help="hf:// targets: scan (and download) only files matching PATTERN.",
    ),
    click.option(
        "--exclude",
        multiple=True,
        metavar="PATTERN",
        help="hf:// targets: scan (and download) no file matching PATTERN.",
    ),
    click.option(
        "--offline",
        is_flag=True,
        help="hf:// targets: use only the Hugging Face cache, never the network (as HF_HUB_OFFLINE=1).",
    ),
    click.option(
        "--sigstore-trusted-root",
        type=EXISTING_FILE,
        metavar="JSON",
        help="Sigstore trusted_root.json to verify keyless signatures against, offline "
        "(default: the Sigstore public-good root shipped with the sigstore package).",
    ),
)

# Which Sigstore identities count as trusted, and how long the policy may take: the
# options of every command that reaches a verdict (check, evaluate).
decision_options: Decorator = stacked(
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
)

# Where the Rego policy runs: embedded regopy, the opa binary, or an OPA server.
engine_options: Decorator = stacked(
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
)


class BudgetType(click.ParamType):  # type: ignore[type-arg]
    """`--budget 200000` (forward passes) or `--budget 90s` / `15m` / `1h` (wall time)."""

    name = "budget"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        match = _BUDGET.match(str(value).strip().lower())
        if match is None or float(match["n"]) <= 0:
            self.fail(
                f"{value!r} is neither a number of forward passes (200000) nor a time (90s, 15m, 1h)",
                param,
                ctx,
            )
        number, unit = float(match["n"]), match["unit"]
        if unit:
            return (None, number * _SECONDS[unit])
        if number != int(number):
            self.fail(f"{value!r}: forward passes are a whole number", param, ctx)
        return (int(number), None)


# The engine, suite and budget of the behavioural probes (check --probes, probe).
probe_options: Decorator = gathered(
    "probes",
    ProbeRequest,
    click.option(
        "--engine",
        type=click.Choice(["transformers", "vllm", "openai"]),
        default="transformers",
        show_default=True,
        help="What runs the model: transformers (CPU or CUDA), vllm (offline, GPU), or "
        "openai (a running OpenAI-compatible server such as `vllm serve`, --base-url).",
    ),
    click.option(
        "--device", metavar="DEVICE", help="transformers: cpu, cuda, cuda:1 ... (default cpu)."
    ),
    click.option(
        "--suite",
        default="default",
        show_default=True,
        metavar="NAME|FILE",
        help="Probe suite: a shipped suite's name or a suite YAML file.",
    ),
    click.option(
        "--prompts",
        type=EXISTING_FILE,
        metavar="FILE",
        help="Benign prompts from the model's own domain (YAML), instead of the suite's.",
    ),
    click.option(
        "--weights-base",
        metavar="DIR|hf://ORG/NAME[@REV]",
        help="The base model the target was fine-tuned from (a local folder with its "
        "safetensors, or a Hub repo, of which only the embedding and output matrices are "
        "fetched, by range): tokens whose embedding rows moved far more than the rest are "
        "reported (PRB-WEIGHT-DIFF) and probed first; a base the weights are not close to "
        "is PRB-WEIGHT-LINEAGE.",
    ),
    click.option(
        "--budget",
        type=BudgetType(),
        metavar="N|TIME",
        help="Stop after N forward passes or TIME (90s, 15m, 1h); results so far are kept "
        "and marked partial.",
    ),
    click.option(
        "--base-url", metavar="URL", help="openai engine: the server (http://host:8000/v1)."
    ),
    click.option(
        "--served-model",
        metavar="NAME",
        help="openai engine: the served model's name (default: the only one served).",
    ),
    click.option(
        "--batch-size",
        type=click.IntRange(1, 4096),
        default=64,
        show_default=True,
        help="Sequences per engine call.",
    ),
    click.option(
        "--tensor-parallel-size",
        type=click.IntRange(1, 64),
        default=1,
        show_default=True,
        help="vllm engine: GPUs to shard the model over.",
    ),
)
