"""Real inputs for the diff tests: the demo model scanned as is and after one change each,
every scan written as a BOM and a report by `provscan check` itself."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

from fixtures.models import DEMO_DIR, malicious_pickle


@dataclass(frozen=True)
class Scan:
    bom: Path
    report: Path


def _check(model: Path, out: Path) -> Scan:
    """`provscan check MODEL --bom --json -q` in this process."""
    from provscan.cli import main

    scan = Scan(out.with_suffix(".cdx.json"), out.with_suffix(".report.json"))
    args = ["check", str(model), "--bom", str(scan.bom), "--json", str(scan.report), "-q"]
    with redirect_stdout(StringIO()), redirect_stderr(StringIO()) as err:
        try:
            main(args)
        except SystemExit as exited:
            # 0 approve, 1 deny, 4 review: each writes its outputs; anything else is a bug.
            assert exited.code in (0, 1, 4), err.getvalue()
    assert scan.bom.is_file() and scan.report.is_file()
    return scan


def _card_with(model: Path, old: str, new: str) -> None:
    card = model / "README.md"
    text = card.read_text(encoding="utf-8")
    assert old in text
    card.write_text(text.replace(old, new, 1), encoding="utf-8")


# name -> how the model differs from the demo model
_CHANGES: dict[str, Callable[[Path], None]] = {
    "base": lambda m: None,
    "config_changed": lambda m: (m / "config.json").write_bytes(
        (m / "config.json").read_bytes() + b"\n"
    ),
    "file_added": lambda m: (m / "notes.txt").write_text("release notes\n"),
    "file_removed": lambda m: (m / "generation_config.json").unlink(),
    "licence_changed": lambda m: _card_with(m, "license: apache-2.0", "license: mit"),
    "lineage_changed": lambda m: _card_with(
        m, "library_name: transformers", "library_name: transformers\nbase_model: Qwen/Qwen2.5-0.5B"
    ),
    "pickle_added": lambda m: (m / "extra.pkl").write_bytes(malicious_pickle("true")),
    "hostile_name": lambda m: (m / "evil\x1b[2J\u202etxt.json").write_text("{}"),
}


@pytest.fixture(scope="session")
def scans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Scan]:
    """One scan per entry of _CHANGES, plus `base_again`: the unchanged model scanned twice."""
    root = tmp_path_factory.mktemp("scans")
    result: dict[str, Scan] = {}
    for name, change in _CHANGES.items():
        # The same directory name every time, so the target's name does not differ.
        model = root / name / "tiny-llama"
        shutil.copytree(DEMO_DIR, model)
        change(model)
        result[name] = _check(model, root / name)
    result["base_again"] = _check(root / "base" / "tiny-llama", root / "base_again")
    return result


@pytest.fixture
def edited(tmp_path: Path) -> Iterator[Callable[[Path, Callable[[Any], Any]], Path]]:
    """A copy of a JSON input with one edit applied (the edit returns the new document)."""
    count = 0

    def edit(source: Path, change: Callable[[Any], Any]) -> Path:
        nonlocal count
        count += 1
        document = change(json.loads(source.read_text(encoding="utf-8")))
        path = tmp_path / f"edited-{count}-{source.name}"
        path.write_text(json.dumps(document), encoding="utf-8")
        return path

    yield edit


def bom_model(bom: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in bom["components"] if c["type"] == "machine-learning-model")
