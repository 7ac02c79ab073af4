"""Which model directories does a commit touch? Groups pre-commit's file list into scan targets."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

# A directory holding one of these is a model's root: a file below it belongs to that model.
ROOT_MARKERS = (
    "config.json",
    "model.sig",
    "model_index.json",
    "adapter_config.json",
    "params.json",
)


def model_roots(files: Iterable[str], top: Path) -> list[Path]:
    """The model directories (relative to ``top``) holding ``files``, each once, in order.

    A file's model is the nearest directory, from the file's own up to ``top``, that holds a
    root marker (config.json, model.sig, ...); without one, the file's own directory. A file
    outside ``top`` or deleted by the commit is skipped (pre-commit passes existing paths;
    a name that does not exist any more has nothing to scan).
    """
    top = top.resolve()
    roots: dict[Path, None] = {}
    for name in files:
        path = (top / name).resolve()
        if not path.is_file() or not path.is_relative_to(top):
            continue
        roots[_root_of(path.parent, top)] = None
    return [root.relative_to(top) for root in roots]


def _root_of(directory: Path, top: Path) -> Path:
    current = directory
    while True:
        if any((current / marker).is_file() for marker in ROOT_MARKERS):
            return current
        if current == top or current.parent == current:
            return directory
        current = current.parent


def worst_exit(codes: Iterable[int], fail_on_review: bool) -> int:
    """One exit status for several checks: errors first, then deny, then review."""
    order = (3, 2, 1, 4) if fail_on_review else (3, 2, 1)
    seen = set(codes)
    for code in order:
        if code in seen:
            return code
    unknown = seen - {0, 4}
    return max(unknown) if unknown else 0
