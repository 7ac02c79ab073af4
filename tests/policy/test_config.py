"""User config: provscan.toml is found, bad files are usage errors, and values reach Rego."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provscan.errors import ConfigError, ExitCode
from provscan.policy.config import load_config, merge_config
from provscan.policy.engine import evaluate
from provscan.report import Decision, Report
from provscan.resources import default_policy_dir

PACK = default_policy_dir()


def test_no_config_file_gives_empty_config(tmp_path: Path) -> None:
    assert load_config(None, tmp_path) == ({}, None)


def test_provscan_toml_in_cwd_is_read(tmp_path: Path) -> None:
    (tmp_path / "provscan.toml").write_text(
        'required_steps = ["inventory"]\n[severity_levels]\nhigh = "deny"\n'
    )
    config, source = load_config(None, tmp_path)
    assert source == tmp_path / "provscan.toml"
    assert config == {"required_steps": ["inventory"], "severity_levels": {"high": "deny"}}


def test_explicit_config_wins_and_is_relative_to_cwd(tmp_path: Path) -> None:
    (tmp_path / "provscan.toml").write_text("a = 1\n")
    (tmp_path / "other.toml").write_text("b = 2\n")
    assert load_config(Path("other.toml"), tmp_path) == ({"b": 2}, tmp_path / "other.toml")


def test_missing_config_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.toml does not exist") as caught:
        load_config(tmp_path / "nope.toml", tmp_path)
    assert caught.value.exit_code is ExitCode.USAGE


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "provscan.toml"
    bad.write_text('[severity_levels\nhigh = "deny"\n')
    with pytest.raises(ConfigError, match=r"provscan\.toml is not valid TOML.*line 1"):
        load_config(None, tmp_path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"a = '\xff'\n", "not UTF-8"), (b"x = inf\n", "key x: inf cannot be passed to Rego")],
)
def test_unusable_toml_values_are_refused(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=expected):
        load_config(path, tmp_path)


def test_directory_as_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(tmp_path, tmp_path)


def test_toml_dates_become_strings(tmp_path: Path) -> None:
    (tmp_path / "provscan.toml").write_text(
        "[[waivers]]\nrule = 'X'\nreason = 'r'\nuntil = 2026-12-31\n"
    )
    config, _ = load_config(None, tmp_path)
    assert config["waivers"][0]["until"] == "2026-12-31"


def test_merge_config_merges_tables_and_replaces_lists() -> None:
    base = {"a": {"x": 1, "y": 2}, "l": [1, 2], "k": "v"}
    merged = merge_config(base, {"a": {"y": 3}, "l": [9]})
    assert merged == {"a": {"x": 1, "y": 3}, "l": [9], "k": "v"}
    assert base == {"a": {"x": 1, "y": 2}, "l": [1, 2], "k": "v"}


def test_toml_config_reaches_rego_and_flips_the_verdict(tmp_path: Path) -> None:
    case = PACK / "tests" / "high_finding_review" / "input.json"
    report = Report.model_validate(json.loads(case.read_text()))
    assert evaluate(report, [PACK], load_config(None, tmp_path)[0]).decision is Decision.REVIEW
    (tmp_path / "provscan.toml").write_text('[severity_levels]\nhigh = "deny"\n')
    config, _ = load_config(None, tmp_path)
    assert evaluate(report, [PACK], config).decision is Decision.DENY
    (tmp_path / "provscan.toml").write_text(
        '[[waivers]]\nrule = "SER-PICKLE-UNKNOWN-GLOBAL"\n'
        'path = "pytorch_model.bin"\nreason = "reviewed"\n'
    )
    config, _ = load_config(None, tmp_path)
    verdict = evaluate(report, [PACK], config)
    assert verdict.decision is Decision.APPROVE
    assert [r.rule for r in verdict.reasons] == ["POL-WAIVED"]
