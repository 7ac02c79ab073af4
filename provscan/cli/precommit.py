"""`provscan pre-commit`: which models does a commit touch? Checks each, one child per model.

A model is found from its model files (weights and serialized objects: by name, or by
content for a file named otherwise), never from a config file alone: a repository's own
config.json or notes.txt must not make the whole repository one model.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import click

from provscan.cli.options import CONFIG_SEARCH_HELP, config_option, policy_option
from provscan.limits import DEFAULT_LIMITS
from provscan.visible import visible

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
    # Imported here: the inventory loads the report model, heavy on the `--help` path.
    from provscan.collectors.inventory import WEIGHT_FORMATS
    from provscan.collectors.serialization.sniff import sniff

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


@click.command("pre-commit")
@click.argument("files", nargs=-1)
@policy_option("Policy pack directory or shipped pack name. Repeatable.")
@config_option(CONFIG_SEARCH_HELP)
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
    found = plan(files, Path.cwd())
    if found.not_models:
        shown = ", ".join(visible(name) for name in found.not_models[:5])
        more = len(found.not_models) - 5
        shown += f" and {more} more" if more > 0 else ""
        click.echo(f"provscan pre-commit: not part of a model, nothing to check: {shown}")
    extra: list[str] = [arg for pack in policies for arg in ("--policy", pack)]
    if config_path is not None:
        extra += ["--config", str(config_path)]
    import subprocess  # here: every other command's start-up, `--help` included, skips it

    codes = []
    for root in found.targets:
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
