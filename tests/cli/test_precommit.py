"""The pre-commit hook: staged files grouped by model, one `provscan check` per model."""

from __future__ import annotations

import pickle
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from fixtures.models import build_demo_model, build_malicious_pickle_model
from provscan.cli.precommit import model_roots, plan, worst_exit
from tests.conftest import REPO, CliResult, run_provscan

HOOKS = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())


def test_files_are_grouped_by_their_model_directory(tmp_path: Path) -> None:
    a = tmp_path / "models" / "a"
    (a / "sub").mkdir(parents=True)
    (a / "config.json").write_text("{}")
    (a / "model.safetensors").write_bytes(b"x")
    (a / "sub" / "extra.bin").write_bytes(b"x")
    b = tmp_path / "models" / "b"
    b.mkdir()
    (b / "weights.bin").write_bytes(b"x")  # no marker: its own folder
    files = [
        "models/a/model.safetensors",
        "models/b/weights.bin",
        "models/a/sub/extra.bin",
        "models/a/config.json",
        "models/gone.bin",  # deleted by the commit
        "../outside.bin",  # not in the repository
    ]
    assert model_roots(files, tmp_path) == [Path("models/a"), Path("models/b")]


def test_a_link_out_of_the_repository_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "w.bin").write_bytes(b"x")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "w.bin").symlink_to(outside / "w.bin")
    assert model_roots(["w.bin"], repo) == []


def git_repo(top: Path, *staged: str) -> list[str]:
    """A git repository at ``top`` with ``staged`` added; the names as pre-commit passes them."""
    subprocess.run(["git", "init", "-q", str(top)], check=True)
    subprocess.run(["git", "-C", str(top), "add", "--", *staged], check=True)
    names = subprocess.run(
        ["git", "-C", str(top), "diff", "--cached", "--name-only"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return names.split()


def test_a_root_level_file_outside_any_model_is_not_checked(
    cli: Callable[..., CliResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The repository's own config.json and notes: neither makes the repository a model.
    build_demo_model(tmp_path / "models" / "tiny")
    (tmp_path / "notes.txt").write_text("meeting notes\n")
    (tmp_path / "config.json").write_text('{"app": "settings"}\n')
    staged = git_repo(tmp_path, "notes.txt", "config.json")
    monkeypatch.chdir(tmp_path)
    result = cli("pre-commit", *staged)
    assert result.code == 0, result.out + result.err
    assert result.out == (
        "provscan pre-commit: not part of a model, nothing to check: config.json, notes.txt\n"
    )


def test_a_model_file_at_the_root_is_checked_alone(
    cli: Callable[..., CliResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = build_demo_model(tmp_path / "build")
    shutil.copy(demo / "model.safetensors", tmp_path / "model.safetensors")
    shutil.rmtree(demo)
    # Elsewhere in the repository, not staged: a check of the whole repository would deny it.
    build_malicious_pickle_model(tmp_path / "other", tmp_path / "canary")
    (tmp_path / "notes.txt").write_text("meeting notes\n")
    staged = git_repo(tmp_path, "model.safetensors", "notes.txt")
    monkeypatch.chdir(tmp_path)
    result = cli("pre-commit", *staged)
    assert result.out.splitlines() == [
        "provscan pre-commit: not part of a model, nothing to check: notes.txt",
        "provscan pre-commit: checking model.safetensors",
    ]
    assert result.code == 4, result.err  # the file alone: no licence known, so review


def test_model_roots_come_from_model_files(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")  # the repository's own, not a model's
    (tmp_path / "models" / "x").mkdir(parents=True)
    (tmp_path / "models" / "x" / "weights.bin").write_bytes(b"x")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "config.json").write_text("{}")  # a marker's name, but no model
    (tmp_path / "docs" / "guide.md").write_text("# guide\n")
    staged = ["models/x/weights.bin", "docs/config.json", "docs/guide.md", "config.json"]
    found = plan(staged, tmp_path)
    assert found.targets == [Path("models/x")]
    assert found.not_models == ["docs/config.json", "docs/guide.md", "config.json"]


def test_a_serialized_object_under_another_name_is_a_model_file(tmp_path: Path) -> None:
    # A pickle named like a note is still something a loader would run: checked alone.
    (tmp_path / "notes.txt").write_bytes(pickle.dumps({"a": 1}, protocol=2))
    (tmp_path / "todo.txt").write_text("- nothing\n")
    found = plan(["notes.txt", "todo.txt"], tmp_path)
    assert (found.targets, found.not_models) == ([Path("notes.txt")], ["todo.txt"])


def test_a_repository_laid_out_as_a_model_is_one_model(tmp_path: Path) -> None:
    # A Hugging Face model repository: config and weights at its top.
    build_demo_model(tmp_path)
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "model.onnx").write_bytes(b"\x08\x07\x12\x00")
    assert model_roots(["README.md", "config.json", "onnx/model.onnx"], tmp_path) == [Path(".")]


@pytest.mark.parametrize(
    ("codes", "fail_on_review", "expected"),
    [
        ([0, 0], True, 0),
        ([0, 4], True, 4),
        ([0, 4], False, 0),
        ([4, 1], True, 1),
        ([1, 3], True, 3),
        ([2, 1], False, 2),
        ([], True, 0),
    ],
)
def test_the_worst_outcome_decides(codes: list[int], fail_on_review: bool, expected: int) -> None:
    assert worst_exit(codes, fail_on_review) == expected


def test_the_hook_definition_calls_the_command_on_model_files() -> None:
    (hook,) = HOOKS
    assert hook["id"] == "provscan"
    assert hook["entry"] == "provscan pre-commit"
    assert hook["language"] == "python" and hook["pass_filenames"] is True
    pattern = re.compile(hook["files"])
    for name in [
        "models/x/model.safetensors",
        "model-00001-of-00002.safetensors",
        "m/pytorch_model.bin",
        "m/config.json",
        "m/tokenizer_config.json",
        "m/model.sig",
        "m/w.GGUF",
        "m/chat_template.jinja",
    ]:
        assert pattern.search(name), name
    for name in ["README.md", "src/app.py", "package.json", "docs/config.schema.json"]:
        assert not pattern.search(name), name


def test_the_hook_blocks_a_dangerous_model_and_passes_a_clean_one(tmp_path: Path) -> None:
    build_demo_model(tmp_path / "models" / "good")
    canary = tmp_path / "canary"
    build_malicious_pickle_model(tmp_path / "models" / "bad", canary)
    good = run_provscan(
        "pre-commit", "models/good/model.safetensors", "models/good/config.json", cwd=tmp_path
    )
    assert good.code == 0, good.out + good.err
    assert good.out.count("provscan pre-commit: checking") == 1
    assert "APPROVE" in good.out
    both = run_provscan(
        "pre-commit",
        "models/good/model.safetensors",
        *[str(p.relative_to(tmp_path)) for p in (tmp_path / "models" / "bad").iterdir()],
        cwd=tmp_path,
    )
    assert both.code == 1, both.out + both.err
    assert "checking models/good" in both.out and "checking models/bad" in both.out
    assert "DENY" in both.out
    assert not canary.exists()


def test_review_blocks_unless_fail_on_deny(tmp_path: Path) -> None:
    model = build_demo_model(tmp_path / "m")
    (model / "modeling_custom.py").write_text("import os\n")
    assert run_provscan("pre-commit", "m/config.json", cwd=tmp_path).code == 4
    assert run_provscan("pre-commit", "m/config.json", "--fail-on", "deny", cwd=tmp_path).code == 0


def test_nothing_staged_that_belongs_to_a_model_passes(tmp_path: Path) -> None:
    result = run_provscan("pre-commit", cwd=tmp_path)
    assert result.code == 0
    assert result.out == ""
