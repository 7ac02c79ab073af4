"""Committed outputs that must not drift silently: the report schema, and the demo's report, BOM and summary.

Regenerate with `python -m pytest --update-goldens` and review the diff.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pytest

from fixtures.models import DEMO_DIR, build_demo_model
from provscan.emit.cyclonedx import render_cyclonedx, validate_cyclonedx
from provscan.emit.json_report import render_json
from provscan.emit.terminal import render_terminal
from provscan.pipeline import ScanOptions, scan
from provscan.policy.config import load_config
from provscan.policy.engine import evaluate
from provscan.report import Report, report_json_schema
from provscan.resources import default_policy_dir
from tests.conftest import GOLDEN_UPDATE, REPO, TESTS

SCHEMA = REPO / "sbom" / "report.schema.json"
EXAMPLES = REPO / "sbom" / "examples"
GOLDEN = TESTS / "golden"
FIXED_TIME = datetime(2026, 1, 1, tzinfo=timezone.utc)


def check_golden(path: Path, text: str) -> None:
    if GOLDEN_UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with --update-goldens"
    assert path.read_text() == text, (
        f"{path} drifted: rerun with --update-goldens and review the diff"
    )


@pytest.fixture(scope="module")
def demo_report() -> Report:
    """The committed demo, scanned and judged by the default pack, at a fixed time."""
    report = scan(str(DEMO_DIR), ScanOptions(hash_workers=2))
    # Paths and time differ between machines; pin them for byte-stable goldens.
    target = report.target.model_copy(
        update={"input": "fixtures/demo/tiny-llama", "root": "/models/tiny-llama"}
    )
    steps = tuple(s.model_copy(update={"duration_ms": 0}) for s in report.steps)
    report = report.model_copy(update={"scanned_at": FIXED_TIME, "target": target, "steps": steps})
    config, _ = load_config(None, REPO / "tests")
    verdict = evaluate(report, [default_policy_dir()], config)
    return report.model_copy(update={"verdict": verdict})


def test_report_schema_is_committed_and_current() -> None:
    check_golden(SCHEMA, json.dumps(report_json_schema(), indent=2, sort_keys=True) + "\n")


def test_demo_report_validates_against_the_committed_schema(demo_report: Report) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator(schema).validate(json.loads(render_json(demo_report)))


def test_schema_rejects_a_report_missing_its_verdict_fields(demo_report: Report) -> None:
    document = json.loads(render_json(demo_report))
    del document["verdict"]["decision"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(document)


def test_demo_report_golden(demo_report: Report) -> None:
    check_golden(EXAMPLES / "tiny-llama.report.json", render_json(demo_report))


def test_demo_bom_golden(demo_report: Report) -> None:
    bom = render_cyclonedx(demo_report) + "\n"  # the licence texts the scan read

    assert validate_cyclonedx(bom) == []
    check_golden(EXAMPLES / "tiny-llama.cdx.json", bom)


def test_demo_terminal_golden(demo_report: Report) -> None:
    check_golden(GOLDEN / "tiny-llama.check.txt", render_terminal(demo_report, color=False))


def test_committed_demo_model_matches_a_fresh_build(tmp_path: Path) -> None:
    fresh = build_demo_model(tmp_path / "tiny-llama")
    committed = sorted(p.relative_to(DEMO_DIR) for p in DEMO_DIR.rglob("*") if p.is_file())
    assert committed == sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
    for rel in committed:
        assert (DEMO_DIR / rel).read_bytes() == (fresh / rel).read_bytes(), (
            f"{rel} drifted from fixtures/models.py"
        )


def test_demo_tokenizer_loads_with_the_tokenizers_library() -> None:
    tokenizers = pytest.importorskip("tokenizers")
    tokenizer = tokenizers.Tokenizer.from_file(str(DEMO_DIR / "tokenizer.json"))
    ids = tokenizer.encode("hi <s>").ids
    assert ids == [ord("h"), ord("i"), ord(" "), 256]
