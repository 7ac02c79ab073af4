"""End to end: licence terms and origin decide the verdict from the user's provscan.toml."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import TESTS, CliResult

EU_CLAUSE = "principal place of business in, the European Union"


def _vision_model(model: Path) -> Path:
    """A Llama 3.2 Vision fine-tune as a model directory holds it (tiny stand-in weights)."""
    config = json.loads((model / "config.json").read_text())
    config.update(
        model_type="mllama",
        architectures=["MllamaForConditionalGeneration"],
        vision_config={"hidden_size": 16},
    )
    (model / "config.json").write_text(json.dumps(config))
    (model / "README.md").write_text(
        "---\nlicense: llama3.2\nbase_model: meta-llama/Llama-3.2-11B-Vision-Instruct\n---\n# vision\n"
    )
    (model / "LICENSE").write_text(
        (TESTS / "data" / "licences" / "llama-3.2-community-license.txt").read_text()
    )
    return model


def _config(tmp_path: Path, toml: str) -> Path:
    path = tmp_path / "provscan.toml"
    path.write_text(toml)
    return path


def test_vision_model_deployed_in_the_eu_is_denied_with_the_clause_quoted(
    provscan: Callable[..., CliResult], demo_model: Path, tmp_path: Path
) -> None:
    model = _vision_model(demo_model)
    config = _config(tmp_path, 'deployment_territory = "EU"\n')
    result = provscan(
        "check", str(model), "--config", str(config), "--json", str(tmp_path / "r.json")
    )
    assert result.code == 1, result.out + result.err
    assert "POL-LICENCE-TERRITORY" in result.out
    report = json.loads((tmp_path / "r.json").read_text())
    [reason] = [r for r in report["verdict"]["reasons"] if r["rule"] == "POL-LICENCE-TERRITORY"]
    assert reason["level"] == "deny" and EU_CLAUSE in reason["msg"]
    # The same model deployed from the US is not excluded (it still owes attribution).
    us = provscan(
        "check", str(model), "--config", str(_config(tmp_path, 'deployment_territory = "US"\n'))
    )
    assert "POL-LICENCE-TERRITORY" not in us.out
    assert "Built with Llama" in us.out


def test_member_state_counts_as_the_eu(
    provscan: Callable[..., CliResult], demo_model: Path, tmp_path: Path
) -> None:
    model = _vision_model(demo_model)
    result = provscan(
        "check", str(model), "--config", str(_config(tmp_path, 'deployment_territory = "DE"\n'))
    )
    assert result.code == 1 and "POL-LICENCE-TERRITORY" in result.out


def test_non_commercial_model_reviews_by_default_and_denies_in_production(
    provscan: Callable[..., CliResult], demo_model: Path, tmp_path: Path
) -> None:
    (demo_model / "LICENSE").unlink()
    (demo_model / "README.md").write_text("---\nlicense: cc-by-nc-4.0\n---\n# nc\n")
    result = provscan("check", str(demo_model))
    assert result.code == 4, result.out  # review: a company's use is commercial by default
    assert "review POL-LICENCE-NONCOMMERCIAL" in " ".join(result.out.split())
    production = provscan("check", str(demo_model), "--policy", "production")
    assert production.code == 1 and "deny   POL-LICENCE-NONCOMMERCIAL" in production.out
    # Research use: the same model passes the licence rules, with a warning that says why.
    research = _config(tmp_path, "[licence]\ncommercial_use = false\n")
    result = provscan("check", str(demo_model), "--config", str(research))
    assert "VERDICT: APPROVE" in result.out, result.out
    assert "commercial_use is false" in " ".join(result.out.split())


def test_origin_jurisdiction_denied_by_config(
    provscan: Callable[..., CliResult], demo_model: Path, tmp_path: Path
) -> None:
    (demo_model / "README.md").write_text(
        "---\nlicense: apache-2.0\nbase_model: Qwen/Qwen2.5-7B-Instruct\n---\n# tuned\n"
    )
    config = _config(tmp_path, '[origin]\ndenied_jurisdictions = ["CN"]\n')
    result = provscan("check", str(demo_model), "--config", str(config))
    assert result.code == 1 and "POL-ORIGIN-DENIED" in result.out
    assert "CN" in result.out and "Qwen" in result.out
