"""Which engine runs the probes, and are the libraries it needs installed?

`make_engine` turns the CLI's engine flags into an `Engine`, importing the heavy libraries
(torch, transformers, vllm) only for the engine asked for; `require_extras` says which extra
to install before anything is scanned.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import get_args

from provscan.errors import UsageError
from provscan.probes.engine import Engine, EngineName, MissingExtra, install_command
from provscan.probes.engines.openai_engine import OpenAIEngine, served_models

ENGINE_NAMES: tuple[EngineName, ...] = get_args(EngineName)
# What each engine imports, by the extra (pyproject.toml) that installs it. Every engine reads
# the model's tokenizer.json with `tokenizers`; the openai engine needs nothing else.
_NEEDS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "transformers": (("probes", ("torch", "transformers", "tokenizers")),),
    "vllm": (("vllm", ("vllm",)), ("probes", ("tokenizers",))),
    "openai": (("probes", ("tokenizers",)),),
}


def require_extras(engine: str, command: str | None = None) -> None:
    """Raise MissingExtra, one line naming the extra to install, unless the libraries the
    engine imports are installed. Looked up, not imported: a missing extra is known before
    anything is scanned, at no cost."""
    for extra, modules in _NEEDS.get(engine, ()):
        missing = [m for m in modules if not installed(m)]
        if missing:
            who = "the probes need" if extra == "probes" else f"the {extra} engine needs"
            verb = "is" if len(missing) == 1 else "are"
            raise MissingExtra(
                f"{command + ': ' if command else ''}{who} the '{extra}' extra "
                f"({' and '.join(missing)} {verb} not installed): {install_command(extra)}"
            )


def installed(module: str) -> bool:
    """Whether `module` can be imported here (found, not imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # an import hook that refuses it, or a parent package that is missing
        return False
    except ValueError:  # already imported without a spec (a module made in place)
        return module in sys.modules


def make_engine(
    name: str,
    target: Path,
    *,
    device: str | None,
    base_url: str | None,
    served_model: str | None,
    batch_size: int,
    tensor_parallel_size: int,
    api_key: str | None = None,
) -> Engine:
    """The engine the CLI asked for, loaded (or connected) and ready."""
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {batch_size}")
    if name == "transformers":
        # Imported only for the engine asked for: it imports torch and transformers.
        from provscan.probes.engines.transformers_engine import TransformersEngine

        return TransformersEngine(target, device=device or "cpu", batch_size=batch_size)
    if name == "vllm":
        if device is not None and not device.startswith("cuda"):
            raise UsageError(f"the vllm engine runs on CUDA GPUs, not {device!r}")
        from provscan.probes.engines.vllm_engine import VllmEngine  # imports vllm when it loads

        return VllmEngine(target, tensor_parallel_size=tensor_parallel_size)
    if name == "openai":
        if not base_url:
            raise UsageError("the openai engine needs --base-url (e.g. http://host:8000/v1)")
        model = served_model or _only_served_model(served_models(base_url, api_key=api_key))
        return OpenAIEngine(base_url, model, api_key=api_key, batch_size=batch_size)
    raise UsageError(f"unknown engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}")


def _only_served_model(models: list[str]) -> str:
    if len(models) == 1:
        return models[0]
    raise UsageError(
        f"the server serves {len(models)} models ({', '.join(models) or 'none'}); "
        "name one with --served-model"
    )
