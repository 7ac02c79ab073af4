"""How do the probe flags become the ProbeOptions the probe machinery runs with?

Shared by `provscan check --probes` and `provscan probe`. The probe modules are imported
when the probes are asked for: they are heavy, and `--help` must not load them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from provscan.cli.settings import ProbeRequest
from provscan.errors import UsageError

if TYPE_CHECKING:
    from provscan.probes.collect import ProbeOptions


def probe_options(request: ProbeRequest, command: str) -> ProbeOptions:
    """ProbeOptions from the parsed flags (the API key comes from OPENAI_API_KEY, never a flag).

    The suite is loaded once here, so that a bad suite or prompts file is a usage error
    (exit 2) before anything is scanned. So is a missing extra (torch, transformers) found
    here, after the flags, but as exit 3, not 2: the command line is right and will work
    as it is once the extra is installed; the run could not complete, and fails closed.
    ``command`` is how the user ran the probes, for the message naming the missing extra.
    """
    # Imported here: the probe machinery is heavy (see the module docstring).
    from provscan.hub.ref import is_hub_target, parse_hub_target
    from provscan.probes.collect import ProbeOptions
    from provscan.probes.engines.load import require_extras
    from provscan.probes.suite import load_suite

    load_suite(request.suite, prompts=request.prompts)
    passes, seconds = request.budget or (None, None)
    base: str | Path | None = request.weights_base
    if isinstance(base, str) and is_hub_target(base):
        parse_hub_target(base)  # a malformed hf:// reference is a usage error, now
    elif base is not None:
        base = Path(base)
        if not base.is_dir():
            raise UsageError(
                f"--weights-base {base}: not a folder",
                "give the base model's local folder (with its safetensors) or hf://ORG/NAME",
            )
    require_extras(request.engine, command)
    return ProbeOptions(
        engine=request.engine,
        device=request.device,
        suite=request.suite,
        prompts=request.prompts,
        weights_base=base,
        budget_forward_passes=passes,
        budget_seconds=seconds,
        base_url=request.base_url,
        served_model=request.served_model,
        api_key=os.environ.get("OPENAI_API_KEY"),
        batch_size=request.batch_size,
        tensor_parallel_size=request.tensor_parallel_size,
    )
