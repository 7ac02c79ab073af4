"""Where are the shipped policy packs, probe suites and AI-BOM profile on this install?

In a wheel they sit inside the package (provscan/_data/...); in a source checkout or
an editable install they are the top-level folders of the repository.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_NAMES = ("policies", "probes", "sbom", "docs")


def data_dir(name: str) -> Path:
    """Return the directory of a shipped data folder: 'policies', 'probes', 'sbom' or 'docs'."""
    if name not in _NAMES:
        raise ValueError(f"unknown data folder {name!r}; expected one of {_NAMES}")
    packaged = _PACKAGE_DIR / "_data" / name
    if packaged.is_dir():
        return packaged
    checkout = _PACKAGE_DIR.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(
        f"provscan's {name}/ folder is missing (looked in {packaged} and {checkout}); "
        "the installation is incomplete"
    )


def default_policy_dir() -> Path:
    return data_dir("policies") / "default"


def shipped_policy_dir(name: str) -> Path | None:
    """The shipped pack of that name ('default', 'production'), or None if there is none."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    path = data_dir("policies") / name
    return path if path.is_dir() else None
