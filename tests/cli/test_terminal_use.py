"""provscan at a terminal: colour conventions, the real width, nothing stray on stderr, a
start-up that does not import the scanner to print help, each finding said once."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

from fixtures.models import DEMO_DIR, build_malicious_pickle_model

ANSI = "\x1b["


def test_no_color_wins_over_force_color(cli) -> None:
    result = cli("check", DEMO_DIR, env={"NO_COLOR": "1", "FORCE_COLOR": "1"})
    assert result.code == 0
    assert ANSI not in result.out


def test_force_color_colours_output_that_is_not_a_terminal(cli) -> None:
    result = cli("check", DEMO_DIR, env={"FORCE_COLOR": "1", "NO_COLOR": ""})
    assert result.code == 0
    assert f"{ANSI}1;32mVERDICT: APPROVE" in result.out


def test_no_color_flag_wins_over_force_color(cli) -> None:
    result = cli("check", DEMO_DIR, "--no-color", env={"FORCE_COLOR": "1"})
    assert ANSI not in result.out


def test_output_fits_the_width_columns_gives(cli, tmp_path: Path) -> None:
    model = build_malicious_pickle_model(tmp_path / "m", tmp_path / "canary")
    narrow = cli("check", model, env={"COLUMNS": "80"})
    assert narrow.code == 1
    assert max(len(line) for line in narrow.out.splitlines()) <= 80
    wide = cli("check", model, env={"COLUMNS": ""})
    # Not a terminal and no COLUMNS: the fixed width a CI log gets.
    assert max(len(line) for line in wide.out.splitlines()) == 110


def test_nothing_but_the_report_on_stdout_and_nothing_on_stderr(cli) -> None:
    result = cli("check", DEMO_DIR)
    assert result.code == 0
    assert result.err == ""  # no progress display when stderr is not a terminal


def test_a_library_warning_goes_into_the_report_not_stderr(cli, monkeypatch) -> None:
    # No library shipped here warns on the demo model; a collector made to warn stands in
    # for e.g. transformers' FutureWarnings.
    from provscan import pipeline

    real = pipeline.collect_inventory

    def warning_inventory(*args: object, **kwargs: object) -> object:
        warnings.warn("`resume_download` is deprecated", FutureWarning, stacklevel=1)
        warnings.warn("`resume_download` is deprecated", FutureWarning, stacklevel=1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "collect_inventory", warning_inventory)
    result = cli("check", DEMO_DIR, "--format", "json")
    assert result.code == 0
    assert "Warning" not in result.err
    kept = [f for f in result.json()["findings"] if f["rule_id"] == "INV-LIBRARY-WARNING"]
    assert len(kept) == 1
    assert kept[0]["message"] == (
        "a library warned while the model was read: FutureWarning: `resume_download` is deprecated"
    )
    assert kept[0]["evidence"] == {"category": "FutureWarning", "count": 2}


def test_each_finding_is_printed_once(cli, tmp_path: Path) -> None:
    model = build_malicious_pickle_model(tmp_path / "m", tmp_path / "canary")
    result = cli("check", model, env={"COLUMNS": "400"})
    assert result.code == 1
    report = cli("check", model, "--format", "json").json()
    message = next(
        f["message"] for f in report["findings"] if f["rule_id"] == "SER-PICKLE-DANGEROUS-GLOBAL"
    )
    assert result.out.count(message) == 1
    # The verdict names the finding the table shows, with its level in the table.
    assert "1 finding(s) in the table above: SER-PICKLE-DANGEROUS-GLOBAL" in result.out
    row = next(line for line in result.out.splitlines() if message in line)
    assert "deny" in row


def test_check_help_says_hub_targets_need_no_download(cli) -> None:
    result = cli("check", "--help", env={"COLUMNS": "200"})
    assert result.code == 0
    assert "with --download (or --offline)" not in result.out
    assert "scanned as metadata" in result.out


def test_help_and_version_import_nothing_heavy() -> None:
    # Which modules `provscan --help` loads, not how long it takes (timings live in
    # benchmarks/startup.py): none of the scanner, the report model or numpy.
    code = (
        "import sys\n"
        "from provscan.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "heavy = ('numpy', 'pydantic', 'rich', 'provscan.report', 'provscan.pipeline',\n"
        "         'provscan.policy.engine', 'cryptography', 'torch', 'yaml')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))\n"
    )
    for args in (["--help"], ["--version"], ["check", "--help"], ["probe", "--help"]):
        proc = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
        )
        assert json.loads(proc.stdout.splitlines()[-1].replace("'", '"')) == [], args


def test_a_failed_steps_hint_is_one_readable_line(cli, monkeypatch) -> None:
    # A collector that refuses with a remedy, as a real one does on an unreadable file.
    from provscan import pipeline
    from provscan.errors import ProvscanError

    def refuse(*args: object, **kwargs: object) -> object:
        raise ProvscanError("the licence file cannot be read", "fix its permissions")

    monkeypatch.setattr(pipeline, "collect_licence", refuse)
    result = cli("check", DEMO_DIR, env={"COLUMNS": "200"})
    assert result.code == 1  # a required step failed: denied, never approved
    assert (
        "step licence failed: ProvscanError: the licence file cannot be read; hint: fix its "
        "permissions" in result.out
    )
    assert "\\x0a" not in result.out
