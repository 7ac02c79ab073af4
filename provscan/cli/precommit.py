"""Which models does a commit touch? Groups pre-commit's file list into scan targets.

A model is found from its model files (weights and serialized objects: by name, or by
content for a file named otherwise), never from a config file alone: a repository's own
config.json or notes.txt must not make the whole repository one model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from provscan.collectors.inventory import WEIGHT_FORMATS
from provscan.collectors.serialization.sniff import sniff
from provscan.limits import DEFAULT_LIMITS

# A directory holding one of these is a model's root: a file below it belongs to that model.
ROOT_MARKERS = (
    "config.json",
    "model.sig",
    "model_index.json",
    "adapter_config.json",
    "params.json",
)

# Weights and serialized objects by name: the names .pre-commit-hooks.yaml passes, less the
# signature (model.sig belongs to a model; it is not one).
MODEL_SUFFIXES = frozenset(
    {
        ".safetensors",
        ".bin",
        ".pt",
        ".pth",
        ".ckpt",
        ".pkl",
        ".pickle",
        ".joblib",
        ".gguf",
        ".onnx",
        ".h5",
        ".hdf5",
        ".keras",
        ".npy",
        ".npz",
        ".msgpack",
        ".tflite",
    }
)


@dataclass
class Plan:
    """What to check for a list of staged files, relative to the repository's top."""

    targets: list[Path] = field(default_factory=list)  # model folders, or single model files
    not_models: list[str] = field(default_factory=list)  # staged files that belong to no model


def is_model_file(path: Path) -> bool:
    """Weights or a serialized object: by its name, else by its first bytes."""
    if path.suffix.lower() in MODEL_SUFFIXES:
        return True
    try:
        with path.open("rb") as handle:
            head = handle.read(DEFAULT_LIMITS.sniff_bytes)
        size = path.stat().st_size
    except OSError:
        return False
    return sniff(head, size) in WEIGHT_FORMATS  # a pickle named notes.txt is a model file


def plan(files: Iterable[str], top: Path) -> Plan:
    """The models the staged ``files`` belong to, each once, in order.

    A model file's model is the nearest directory above it, below ``top``, that holds a root
    marker (config.json, model.sig, ...); without one, the file's own directory; a model
    file directly in ``top`` is checked as that one file. Any other staged file belongs to
    the nearest directory below ``top`` that holds a model file, or a root marker with model
    files somewhere beneath it; failing that, to no model. ``top`` itself is a model only
    when it holds both a root marker and a model file (a model repository, as on the Hugging
    Face Hub). A file outside ``top`` or deleted by the commit is skipped: pre-commit passes
    existing paths, and a name that does not exist any more has nothing to scan.
    """
    top = top.resolve()
    top_is_model = _is_model_root(top) and _holds_model_file(top, below=False)
    result = Plan()
    targets: dict[Path, None] = {}
    for name in files:
        path = (top / name).resolve()
        if not path.is_file() or not path.is_relative_to(top):
            continue
        target = _model_of(path, top, top_is_model)
        if target is None:
            result.not_models.append(name)
        else:
            targets[target] = None
    result.targets = [target.relative_to(top) for target in targets]
    return result


def model_roots(files: Iterable[str], top: Path) -> list[Path]:
    """The targets of `plan`: model folders (or files) relative to ``top``, each once."""
    return plan(files, top).targets


def _is_model_root(directory: Path) -> bool:
    return any((directory / marker).is_file() for marker in ROOT_MARKERS)


def _holds_model_file(directory: Path, *, below: bool) -> bool:
    """Whether ``directory`` holds a model file (``below``: at any depth, links not followed)."""
    children = directory.rglob("*") if below else directory.iterdir()
    try:
        return any(
            not child.is_symlink() and child.is_file() and is_model_file(child)
            for child in children
        )
    except OSError:
        return False


def _model_of(path: Path, top: Path, top_is_model: bool) -> Path | None:
    """The target a staged file belongs to, or None when it belongs to no model."""
    folders: list[Path] = []  # from the file's own up to, not including, the top
    current = path.parent
    while current != top:
        folders.append(current)
        current = current.parent
    if top_is_model:
        folders.append(top)
    if is_model_file(path):
        found = next((folder for folder in folders if _is_model_root(folder)), None)
        return found or (path.parent if path.parent != top else path)
    for folder in folders:
        if _holds_model_file(folder, below=False):
            return folder
        if _is_model_root(folder) and _holds_model_file(folder, below=True):
            return folder
    return None


def worst_exit(codes: Iterable[int], fail_on_review: bool) -> int:
    """One exit status for several checks: errors first, then deny, then review."""
    order = (3, 2, 1, 4) if fail_on_review else (3, 2, 1)
    seen = set(codes)
    for code in order:
        if code in seen:
            return code
    unknown = seen - {0, 4}
    return max(unknown) if unknown else 0
