"""How is a shipped knowledge file read? With PyYAML's safe constructor, from the package."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml


def load_yaml(name: str) -> Any:
    """A shipped knowledge file (provscan/knowledge/NAME), parsed with the safe constructor."""
    text = (resources.files("provscan") / "knowledge" / name).read_text(encoding="utf-8")
    # libyaml's parser when PyYAML was built with it: the same safe constructor, a tenth of
    # the time (the knowledge base is most of a small check's CPU with the pure-Python one).
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
