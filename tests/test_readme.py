"""The README's two set-up commands are the ones CI and users actually run."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def setup_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section, flags=re.S)


def test_readme_has_exactly_two_setup_commands() -> None:
    commands = setup_commands()
    assert len(commands) == 2
    demo, tests = commands
    assert "provscan check fixtures/demo/tiny-llama" in demo
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert setup_commands()[1] in ci.splitlines()


def test_readme_documents_every_exit_code() -> None:
    from provscan.errors import ExitCode

    text = (REPO / "README.md").read_text()
    for code in ExitCode:
        assert re.search(rf"^\| {code.value} \| ", text, flags=re.M), code
