"""`provscan check T1 T2 ...`: each target decided on its own, one summary, the worst exit code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from fixtures.models import DEMO_DIR, build_malicious_pickle_model
from provscan.cli import batch
from provscan.cli.settings import CheckSettings
from provscan.cli.summary import worst_exit


def _models(root: Path, count: int) -> list[Path]:
    """`count` models with different verdicts: copies of the demo (approve), some with a
    pickle that runs a command (deny), some without a licence or card (review)."""
    made = []
    for n in range(count):
        dest = root / f"model-{n:02d}"
        if n % 4 == 1:
            build_malicious_pickle_model(dest, root / f"canary-{n}")
        else:
            shutil.copytree(DEMO_DIR, dest)
            if n % 4 == 2:
                (dest / "LICENSE").unlink()
                (dest / "README.md").unlink()
        made.append(dest)
    return made


def _comparable(report: dict[str, Any]) -> dict[str, Any]:
    """A report less what differs between two runs of the same scan: when, and how long."""
    report = dict(report)
    report.pop("scanned_at")
    report["steps"] = [{**s, "duration_ms": 0} for s in report["steps"]]
    return report


def test_several_targets_give_one_table_and_the_worst_exit_code(cli, tmp_path: Path) -> None:
    approve, deny, review = _models(tmp_path, 3)
    missing = tmp_path / "gone"
    result = cli("check", approve, deny, review, missing, env={"COLUMNS": "300"})
    assert result.code == 1  # deny outranks the missing target's exit 2 and the review
    lines = result.out.splitlines()
    rows = {
        name: next(line for line in lines if name in line)
        for name in (approve.name, deny.name, review.name, "gone")
    }
    assert "approve" in rows[approve.name]
    assert "deny" in rows[deny.name] and "SER-PICKLE-DANGEROUS-GLOBAL" in rows[deny.name]
    assert "review" in rows[review.name]
    assert "error (2)" in rows["gone"]
    assert lines[-1] == "4 target(s): 1 approve, 1 review, 1 deny, 1 error"


def test_json_lines_one_per_target_in_the_order_given(cli, tmp_path: Path) -> None:
    approve, deny = _models(tmp_path, 2)
    result = cli("check", deny, approve, "--format", "json")
    assert result.code == 1
    records = [json.loads(line) for line in result.out.splitlines()]
    assert [r["target"] for r in records] == [str(deny), str(approve)]
    assert [r["new"] for r in records] == ["deny", "approve"]
    assert [r["old"] for r in records] == [None, None]
    assert [r["exit_code"] for r in records] == [1, 0]
    assert any(r["rule"] == "SER-PICKLE-DANGEROUS-GLOBAL" for r in records[0]["reasons"])


def test_a_crash_on_one_target_does_not_stop_the_others(cli, tmp_path: Path, monkeypatch) -> None:
    first, second = _models(tmp_path, 1)[0], tmp_path / "copy"
    shutil.copytree(first, second)
    real = batch.check_one

    def flaky(target: str, settings: CheckSettings, *, progress: bool) -> Any:
        if target == str(first):
            raise RuntimeError("parser blew up")
        return real(target, settings, progress=progress)

    monkeypatch.setattr(batch, "check_one", flaky)
    result = cli("check", first, second, "--format", "json")
    records = [json.loads(line) for line in result.out.splitlines()]
    assert records[0]["new"] is None
    assert records[0]["error"] == "internal error: RuntimeError: parser blew up"
    assert records[0]["exit_code"] == 3
    assert records[1]["new"] == "approve"
    assert result.code == 3  # never an approval when a target got no verdict


def test_targets_from_a_file_with_comments_and_repeats(cli, tmp_path: Path) -> None:
    approve, review = _models(tmp_path / "m", 3)[0::2]
    listing = tmp_path / "models.txt"
    listing.write_text(f"# our registry\n\n{approve}\n  {review}  \n{approve}\n")
    result = cli("check", "--targets-from", listing, "--format", "json")
    assert result.code == 4
    assert [json.loads(line)["target"] for line in result.out.splitlines()] == [
        str(approve),
        str(review),
    ]


def test_a_targets_file_with_a_control_character_names_the_line(cli, tmp_path: Path) -> None:
    listing = tmp_path / "models.txt"
    listing.write_text("models/a\nmodels/\x1b[2Jb\n")
    result = cli("check", "--targets-from", listing)
    assert result.code == 2
    assert f"--targets-from {listing}:2: a control character in the target name" in result.err


def test_one_output_file_for_many_targets_is_a_usage_error(cli, tmp_path: Path) -> None:
    a, b = _models(tmp_path, 2)
    result = cli("check", a, b, "--bom", tmp_path / "bom.json")
    assert result.code == 2
    assert "--bom names one file, and there are 2 targets" in result.err
    assert not (tmp_path / "bom.json").exists()


def test_no_target_at_all_is_a_usage_error(cli) -> None:
    result = cli("check")
    assert result.code == 2
    assert "give a TARGET to check (or --targets-from FILE)" in result.err


def test_output_names_are_stable_and_distinct() -> None:
    assert batch.output_name("models/llama") == batch.output_name("models/llama")
    assert batch.output_name("a/model") != batch.output_name("b/model")
    assert batch.output_name("a/model").startswith("model-")
    hub = batch.output_name("hf://org/name@main")
    assert hub.startswith("org--name-main-") and "/" not in hub
    hostile = batch.output_name("../../\x1b]0;evil\x07/..")
    assert "/" not in hostile and "\x1b" not in hostile and not hostile.startswith(".")


def test_worst_exit_code_order() -> None:
    assert worst_exit([0, 4, 3, 1]) == 1
    assert worst_exit([0, 4, 2]) == 2
    assert worst_exit([0, 4, 3]) == 3
    assert worst_exit([0, 4]) == 4
    assert worst_exit([0, 0]) == 0
    assert worst_exit([]) == 3  # nothing decided is no approval


def test_output_dir_holds_the_report_a_single_check_writes(cli, tmp_path: Path) -> None:
    models = _models(tmp_path / "m", 2)
    out = tmp_path / "out"
    result = cli("check", *models, "--output-dir", out, "--json", tmp_path / "summary.jsonl")
    assert result.code == 1
    summary = [json.loads(line) for line in (tmp_path / "summary.jsonl").read_text().splitlines()]
    for model, record in zip(models, summary, strict=True):
        name = batch.output_name(str(model))
        assert record["name"] == name
        assert sorted(Path(p).name for p in record["outputs"]) == sorted(
            f"{name}{suffix}" for suffix in (".report.json", ".cdx.json", ".sarif.json")
        )
        single = cli("check", model, "--json", tmp_path / "single.json")
        assert single.code == record["exit_code"]
        assert _comparable(json.loads((out / f"{name}.report.json").read_text())) == _comparable(
            json.loads((tmp_path / "single.json").read_text())
        )


@pytest.mark.slow
def test_twenty_targets_in_two_workers_match_twenty_single_runs(cli, tmp_path: Path) -> None:
    models = _models(tmp_path / "m", 20)
    out = tmp_path / "out"
    result = cli("check", *models, "--jobs", "2", "--output-dir", out, "--format", "json")
    records = [json.loads(line) for line in result.out.splitlines()]
    assert [r["target"] for r in records] == [str(m) for m in models]
    assert result.code == 1
    for model, record in zip(models, records, strict=True):
        single = cli("check", model, "--json", tmp_path / "single.json")
        assert single.code == record["exit_code"], model
        batch_report = json.loads((out / f"{record['name']}.report.json").read_text())
        single_report = json.loads((tmp_path / "single.json").read_text())
        assert _comparable(batch_report) == _comparable(single_report), model
    assert {r["new"] for r in records} == {"approve", "review", "deny"}
