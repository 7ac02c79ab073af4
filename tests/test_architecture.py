"""Does the code keep the shape ARCHITECTURE.md describes? Import layers, no cycle, small modules.

The layers and the rule that no package imports a sibling that imports it back are
import-linter contracts in pyproject.toml (`lint-imports` runs the same check). Import-linter's
sibling rule cannot see a module that imports its own package's `__init__` while that
`__init__` imports it, so the module-level cycle test below asks grimp (import-linter's graph)
for every import whose target leads back to the importer. Function-local imports count.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

from tests.conftest import REPO

PACKAGE = REPO / "provscan"
MAX_LINES = 400


def test_the_import_contracts_hold(capsys: pytest.CaptureFixture[str]) -> None:
    code = lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True, no_logo=True)
    assert code == 0, capsys.readouterr().out


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = grimp.build_graph("provscan", cache_dir=None)
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycles.append(" -> ".join((importer, *back)))
    assert cycles == []


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_is_over_400_lines() -> None:
    long = {
        path.relative_to(REPO).as_posix(): count
        for path in _modules()
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_every_module_says_what_it_is_for() -> None:
    silent = [
        path.relative_to(REPO).as_posix()
        for path in _modules()
        if not ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert silent == []


# What a reader of a shipped file cannot follow: a document outside the repository, or the
# tracker numbers of how the work was organised.
OUTSIDE = re.compile(r"\.\./shared|\bshared/(?:research|corpus)\b|\bissues? #?\d+\b", re.IGNORECASE)
SHIPPED = ("provscan", "policies", "probes", "sbom", "docs")
SHIPPED_FILES = ("README.md", "SECURITY.md", "ARCHITECTURE.md", "action.yml", "pyproject.toml")


def test_shipped_files_refer_only_to_the_repository_and_public_sources() -> None:
    paths = [p for top in SHIPPED for p in (REPO / top).rglob("*") if p.is_file()]
    paths += [REPO / name for name in SHIPPED_FILES]
    found = []
    for path in sorted(paths):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:120]}")
    assert found == []


def test_architecture_md_names_every_top_level_part_of_the_package() -> None:
    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    parts = sorted(
        p.name if p.is_dir() else p.name
        for p in PACKAGE.iterdir()
        if (p.is_dir() and (p / "__init__.py").exists())
        or (p.suffix == ".py" and p.stem != "__init__")
    )
    missing = [name for name in parts if name.removesuffix(".py") not in text]
    assert missing == []


# A source file named by its path (not a URL's tail, not a placeholder): it must exist, so a
# docstring or a document never points at a module that moved.
PATH_MENTION = re.compile(
    r"(?<![\w/.:-])((?:provscan|tests|fixtures|benchmarks|tools)/[\w/]+\.py)\b"
)


def test_every_source_file_a_shipped_file_names_exists() -> None:
    paths = [p for top in SHIPPED for p in (REPO / top).rglob("*") if p.is_file()]
    paths += [REPO / name for name in SHIPPED_FILES]
    missing = []
    for path in sorted(paths):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        missing += [
            f"{path.relative_to(REPO)}: {named}"
            for named in PATH_MENTION.findall(text)
            if not (REPO / named).exists()
        ]
    assert missing == []
