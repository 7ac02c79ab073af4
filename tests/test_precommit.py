"""The pre-commit hook: staged files grouped by model, one `provscan check` per model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from fixtures.models import build_demo_model, build_malicious_pickle_model
from provscan.precommit import model_roots, worst_exit
from tests.conftest import REPO, run_provscan

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
