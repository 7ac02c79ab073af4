"""Which probe flags does the command line take, and how do they become ProbeOptions?

Shared by `provscan check --probes` and `provscan probe`. Kept out of cli.py so that the
main command module stays small; no logic here beyond flags -> options and the progress bar.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from provscan.errors import UsageError

if TYPE_CHECKING:  # the probe machinery is imported when probes run, not for `--help`
    from provscan.probes.collect import ProbeOptions

F = TypeVar("F", bound=Callable[..., Any])

_BUDGET = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>[smh]?)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600}


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


def probe_options(func: F) -> F:
    """The engine, suite and budget flags."""
    options = [
        click.option(
            "--engine",
            type=click.Choice(["transformers", "vllm", "openai"]),
            default="transformers",
            show_default=True,
            help="What runs the model: transformers (CPU or CUDA), vllm (offline, GPU), or "
            "openai (a running OpenAI-compatible server such as `vllm serve`, --base-url).",
        ),
        click.option(
            "--device",
            metavar="DEVICE",
            help="transformers: cpu, cuda, cuda:1 ... (default cpu).",
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
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
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
    ]
    for option in reversed(options):
        func = option(func)
    return func


def options_from(kw: dict[str, Any]) -> ProbeOptions:
    """ProbeOptions from the parsed flags (the API key comes from OPENAI_API_KEY, never a flag).

    The suite is loaded once here, so that a bad suite or prompts file is a usage error
    (exit 2) before anything is scanned. So is a missing extra (torch, transformers) found
    here, after the flags, but as exit 3, not 2: the command line is right and will work
    as it is once the extra is installed; the run could not complete, and fails closed.
    """
    from provscan.hub.ref import is_hub_target, parse_hub_target
    from provscan.probes.collect import ProbeOptions
    from provscan.probes.engines.load import require_extras
    from provscan.probes.suite import load_suite

    load_suite(kw["suite"], prompts=kw["prompts"])
    passes, seconds = kw["budget"] or (None, None)
    base: str | Path | None = kw["weights_base"]
    if isinstance(base, str) and is_hub_target(base):
        parse_hub_target(base)  # a malformed hf:// reference is a usage error, now
    elif base is not None:
        base = Path(base)
        if not base.is_dir():
            raise UsageError(
                f"--weights-base {base}: not a folder",
                "give the base model's local folder (with its safetensors) or hf://ORG/NAME",
            )
    # `check` has the --probes flag (run_probes); `probe` is all probes.
    require_extras(
        kw["engine"], "provscan check --probes" if "run_probes" in kw else "provscan probe"
    )
    return ProbeOptions(
        engine=kw["engine"],
        device=kw["device"],
        suite=kw["suite"],
        prompts=kw["prompts"],
        weights_base=base,
        budget_forward_passes=passes,
        budget_seconds=seconds,
        base_url=kw["base_url"],
        served_model=kw["served_model"],
        api_key=os.environ.get("OPENAI_API_KEY"),
        batch_size=kw["batch_size"],
        tensor_parallel_size=kw["tensor_parallel_size"],
    )
