"""One config file (provscan.toml or [tool.provscan]), its JSON Schema, and `provscan config show`."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from provscan.errors import ConfigError
from provscan.policy.config import config_schema, find_config, validate_config
from tests.conftest import REPO, run_provscan

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SCHEMA = REPO / "docs" / "config.schema.json"
DEFAULT_DATA = REPO / "policies" / "default" / "data.yaml"


def _pack_defaults(name: str) -> dict:
    return yaml.safe_load((REPO / "policies" / name / "data.yaml").read_text())["config"]


def _leaves(value: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, item in value.items():
        dotted = f"{prefix}{key}"
        if isinstance(item, dict) and item:
            out.update(_leaves(item, dotted + "."))
        else:
            out[dotted] = item
    return out


def _schema_node(dotted: str) -> dict:
    node = config_schema()
    for part in dotted.split("."):
        node = node["properties"][part]
    return node


# ---------------------------------------------------------------- the schema itself


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA.read_text()))


@pytest.mark.parametrize("pack", ["default", "production"])
def test_every_shipped_pack_default_validates(pack: str) -> None:
    validate_config(_pack_defaults(pack), f"{pack}/data.yaml")


def test_every_default_setting_is_in_the_schema_with_the_same_default() -> None:
    for dotted, value in _leaves(_pack_defaults("default")).items():
        node = _schema_node(dotted)
        assert node.get("description") or "$ref" in node, dotted
        if "default" in node:
            assert node["default"] == value, dotted


def test_the_schema_knows_every_setting_the_default_pack_checks() -> None:
    rego = (REPO / "policies" / "default" / "main.rego").read_text()
    block = rego[rego.index("config_shapes := {") : rego.index("shape_rules := {")]
    for dotted in re.findall(r'^\t"([a-z_.]+)":', block, flags=re.M):
        _schema_node(dotted)  # KeyError when the schema lacks it


def test_the_pack_readme_example_validates() -> None:
    readme = (REPO / "policies" / "default" / "README.md").read_text()
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    validate_config(tomllib.loads(example), "policies/default/README.md")


def test_the_readme_example_validates() -> None:
    readme = (REPO / "README.md").read_text()
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    validate_config(tomllib.loads(example), "README.md")


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"severity_level": {"high": "deny"}}, "severity_level: not a known setting (misspelt?)"),
        ({"licence": {"comercial_use": True}}, "licence.comercial_use: not a known setting"),
        ({"licence": {"commercial_use": "yes"}}, 'licence.commercial_use: must be true or false (got "yes")'),
        ({"severity_levels": {"high": "block"}}, "severity_levels.high: must be one of deny, review, warn, none"),
        ({"origin": {"denied_jurisdictions": ["kp"]}}, "origin.denied_jurisdictions[1]"),
        ({"waivers": [{"rule": "SER-X", "reason": " "}]}, "waivers[1].reason"),
        ({"waivers": [{"rule": "SER-X"}]}, "waivers[1]: reason is required"),
        ({"required_steps": ["inventory", "hashin"]}, "required_steps[2]: must be one of"),
        ({"licence": {"monthly_active_users": -1}}, "licence.monthly_active_users"),
        ({"deployment_territory": "France"}, "deployment_territory"),
    ],
    ids=[
        "top-level-typo", "nested-typo", "wrong-type", "bad-level", "lowercase-country",
        "blank-waiver-reason", "waiver-without-reason", "unknown-step", "negative-amount",
        "bad-territory",
    ],
)  # fmt: skip
def test_a_setting_that_breaks_the_schema_is_named(table: dict, words: str) -> None:
    with pytest.raises(ConfigError, match="is not valid") as caught:
        validate_config(table, "provscan.toml")
    assert words in caught.value.message


def test_a_key_a_custom_pack_declares_is_accepted_but_no_other() -> None:
    validate_config({"max_parameters": 8e9}, "provscan.toml", pack_keys={"max_parameters"})
    with pytest.raises(ConfigError, match="max_parameters: not a known setting"):
        validate_config({"max_parameters": 8e9}, "provscan.toml")


# ---------------------------------------------------------------- finding the file


def test_pyproject_tool_provscan_is_read(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.provscan.licence]\ncommercial_use = true\n'
    )
    found = find_config(None, tmp_path)
    assert found.table == {"licence": {"commercial_use": True}}
    assert found.path == tmp_path / "pyproject.toml"
    assert found.label.endswith("pyproject.toml [tool.provscan]")


def test_a_pyproject_without_the_table_is_no_config(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert find_config(None, tmp_path).path is None


def test_both_files_is_an_error_not_a_guess(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.provscan]\nwaivers = []\n")
    (tmp_path / "provscan.toml").write_text("waivers = []\n")
    with pytest.raises(ConfigError, match="both .*provscan.toml and the \\[tool.provscan\\]"):
        find_config(None, tmp_path)


def test_config_naming_a_pyproject_reads_its_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.provscan]\ndeployment_territory = "EU"\n')
    with pytest.raises(ConfigError, match="does not exist"):  # relative to cwd, which lacks it
        find_config(Path("pyproject.toml"), tmp_path / "elsewhere")
    found = find_config(tmp_path / "pyproject.toml", tmp_path)
    assert found.table == {"deployment_territory": "EU"}


def test_config_naming_a_pyproject_without_the_table_fails(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(ConfigError, match="has no \\[tool.provscan\\] table"):
        find_config(tmp_path / "pyproject.toml", tmp_path)


def test_a_tool_provscan_that_is_not_a_table_fails(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool]\nprovscan = "strict"\n')
    with pytest.raises(ConfigError, match="tool.provscan must be a table"):
        find_config(None, tmp_path)


# ---------------------------------------------------------------- through the CLI


def test_check_reads_tool_provscan_and_it_changes_the_verdict(
    tmp_path: Path, demo_model: Path
) -> None:
    # The demo is unsigned: a warning by default, a denial when the pyproject says so.
    (tmp_path / "pyproject.toml").write_text('[tool.provscan.signatures]\nunsigned = "deny"\n')
    result = run_provscan("check", str(demo_model), "-q", "--format", "json", cwd=tmp_path)
    assert result.code == 1, result.err
    reasons = {(r["rule"], r["level"]) for r in result.json()["verdict"]["reasons"]}
    assert ("POL-SIG-UNSIGNED", "deny") in reasons


def test_check_with_an_invalid_config_is_a_usage_error_before_scanning(
    tmp_path: Path, demo_model: Path
) -> None:
    (tmp_path / "provscan.toml").write_text('[licence]\ncommercial_use = "yes"\n')
    result = run_provscan("check", str(demo_model), "-q", cwd=tmp_path)
    assert result.code == 2
    assert "provscan.toml is not valid: licence.commercial_use: must be true or false" in result.err


def test_config_show_names_where_each_value_came_from(tmp_path: Path) -> None:
    (tmp_path / "provscan.toml").write_text(
        'deployment_territory = "EU"\n[licence]\ncommercial_use = true\n'
    )
    result = run_provscan("config", "show", cwd=tmp_path)
    assert result.code == 0, result.err
    lines = {line.split(" = ")[0]: line for line in result.out.splitlines() if " = " in line}
    own = str(tmp_path / "provscan.toml")
    assert lines["licence.commercial_use"].startswith("licence.commercial_use = true")
    assert lines["licence.commercial_use"].endswith(f"# {own}")
    assert lines["deployment_territory"].endswith(f"# {own}")
    assert "# default pack (" in lines["licence.unknown"]
    assert lines["licence.unknown"].startswith('licence.unknown = "review"')
    assert result.out.startswith(f"# config file: {own}\n# policy packs: default\n")


def test_config_show_json_with_the_production_pack(tmp_path: Path) -> None:
    result = run_provscan(
        "config", "show", "--policy", "production", "--format", "json", cwd=tmp_path
    )
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["packs"] == ["default", "production"]
    assert doc["config_file"] is None
    assert doc["effective"]["signatures"] == dict.fromkeys(
        ("unsigned", "untrusted", "not_covered", "uncovered_facts"), "deny"
    )
    assert doc["sources"]["signatures.unsigned"].startswith("production pack (")
    assert doc["sources"]["signatures.unsigned"].endswith("data.yaml)")
    assert doc["sources"]["severity_levels.high"].startswith("default pack (")
    # The effective config is exactly what the engine merges.
    from provscan.policy.engine import effective_config, load_packs
    from provscan.resources import shipped_policy_dir

    dirs = [shipped_policy_dir("production")]
    assert doc["effective"] == effective_config(load_packs(dirs), {})


def test_config_show_refuses_an_invalid_file(tmp_path: Path) -> None:
    (tmp_path / "provscan.toml").write_text("[origin]\nunknown = 3\n")
    result = run_provscan("config", "show", cwd=tmp_path)
    assert result.code == 2
    assert "origin.unknown: must be one of deny, review, warn, none (got 3)" in result.err


def test_config_schema_prints_the_shipped_schema(tmp_path: Path) -> None:
    result = run_provscan("config", "schema", cwd=tmp_path)
    assert result.code == 0
    assert json.loads(result.out) == json.loads(SCHEMA.read_text())


# ---------------------------------------------------------------- never from the model itself


def test_a_config_inside_the_model_is_refused(
    tmp_path: Path, demo_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from provscan.cli.packs import target_config
    from provscan.errors import UsageError
    from provscan.resources import default_policy_dir

    packs = [default_policy_dir()]
    planted = demo_model / "provscan.toml"
    planted.write_text('[signatures]\nunsigned = "none"\n')
    monkeypatch.chdir(demo_model)  # `cd model && provscan check .`
    with pytest.raises(UsageError, match="lies inside the model being scanned"):
        target_config(None, packs, ".", from_target=False)
    assert target_config(None, packs, ".", from_target=True).path == planted
    monkeypatch.chdir(tmp_path)  # --config pointing into the model, from outside it
    with pytest.raises(UsageError, match="--config-from-target"):
        target_config(planted, packs, str(demo_model), from_target=False)
    mine = tmp_path / "provscan.toml"
    mine.write_text('[signatures]\nunsigned = "deny"\n')
    assert target_config(None, packs, str(demo_model), from_target=False).path == mine


def test_check_run_from_inside_the_model_does_not_read_its_config(demo_model: Path) -> None:
    (demo_model / "provscan.toml").write_text('[signatures]\nunsigned = "none"\n')
    result = run_provscan("check", ".", "-q", cwd=demo_model)
    assert result.code == 2, result.out + result.err
    assert "lies inside the model being scanned" in result.err
