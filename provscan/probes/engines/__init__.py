"""Which engines can run the probes, and how is one chosen? (transformers, vllm, openai)

Importing this package imports no torch, transformers or vllm: provscan's other commands
work without the `probes` extra. Each engine module imports its heavy library itself, and
`make_engine` imports only the module of the engine asked for.
"""

from __future__ import annotations

from provscan.probes.engines.load import ENGINE_NAMES, check_loadable, make_engine

__all__ = ["ENGINE_NAMES", "check_loadable", "make_engine"]
