"""Numbers that are not numbers: what a model's JSON or YAML, or the user's own config, holds
that would otherwise break a step (a failed step denies, but hides why).

A 5000-digit integer makes Python's json.loads raise a ValueError no JSON handler catches;
NaN and Infinity are not JSON, and other loaders refuse what Python reads; nesting past the
recursion limit raises RecursionError; YAML aliases expand without bound. Each is a finding
that names the file and the problem, and every step completes. A document read for its facts
is malformed; one that carries code is still scanned, so the number hides no payload.
"""

from __future__ import annotations

import base64
import json
import marshal
import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest

from fixtures.models import build_demo_model
from provscan.collectors.serialization.gguf.scan import scan_tokenizer_config_template
from provscan.collectors.serialization.keras.scan import scan_keras_zip
from provscan.files import ScanFile
from provscan.limits import Limits
from provscan.parsing import (
    MAX_NESTING,
    MAX_NUMBER_CHARS,
    HostileData,
    parse_json,
    parse_yaml,
)
from provscan.pipeline import ScanOptions, scan
from provscan.policy.engine import evaluate
from provscan.report import Decision, Finding, Report, Severity, StepStatus
from provscan.resources import default_policy_dir
from tests.conftest import run_provscan

BIG = "9" * 5000


def judged(model: Path) -> Report:
    report = scan(str(model), ScanOptions(hash_workers=2))
    return report.model_copy(update={"verdict": evaluate(report, [default_policy_dir()], {})})


def only(report: Report, rule: str, path: str) -> Finding:
    found = [
        f
        for f in report.findings
        if f.rule_id == rule and f.location is not None and f.location.path == path
    ]
    assert len(found) == 1, [(f.rule_id, f.message) for f in report.findings]
    return found[0]


def assert_completed_and_not_approved(report: Report) -> None:
    failed = [(s.name, s.reason) for s in report.steps if s.status is StepStatus.FAILED]
    assert failed == []
    assert report.verdict is not None and report.verdict.decision is not Decision.APPROVE


def with_config(tmp_path: Path, first_key: str) -> Path:
    """The demo model with `first_key` (raw JSON text: "key": value) first in config.json."""
    model = build_demo_model(tmp_path / "m")
    text = (model / "config.json").read_text()
    (model / "config.json").write_text(text.replace("{", "{" + first_key + ", ", 1))
    return model


# ---------------------------------------------------------------- config.json


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (BIG, "integer of 5,000 digits"),
        ("NaN", "NaN, which is not JSON"),
        ("-Infinity", "-Infinity, which is not JSON"),
        ("1e999", "1e999, beyond the range of a double"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
    ids=["5000-digit-int", "nan", "infinity", "huge-float", "100000-deep"],
)
def test_hostile_config_json_is_a_finding_and_every_step_completes(
    tmp_path: Path, value: str, words: str
) -> None:
    report = judged(with_config(tmp_path, f'"hostile": {value}'))
    assert_completed_and_not_approved(report)
    finding = only(report, "INV-CONFIG-MALFORMED", "config.json")
    assert finding.message.startswith("config.json: ") and words in finding.message
    assert report.model is not None and report.model.parameter_count == 107_200  # weights read


def test_a_config_nested_under_the_recursion_limit_but_over_the_bound_is_refused_too(
    tmp_path: Path,
) -> None:
    depth = MAX_NESTING + 1
    report = judged(with_config(tmp_path, '"deep": ' + "[" * depth + "]" * depth))
    assert "nested too deeply" in only(report, "INV-CONFIG-MALFORMED", "config.json").message


# ---------------------------------------------------------------- safetensors header


def test_safetensors_header_with_a_5000_digit_offset_is_invalid_not_a_failed_step(
    tmp_path: Path,
) -> None:
    model = build_demo_model(tmp_path / "m")
    weights = model / "model.safetensors"
    raw = weights.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    name = next(k for k in header if k != "__metadata__")
    header[name]["data_offsets"][1] = "BIG"
    text = json.dumps(header).replace('"BIG"', BIG).encode()
    weights.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length :])
    report = judged(model)
    assert_completed_and_not_approved(report)
    finding = only(report, "SER-SAFETENSORS-INVALID", "model.safetensors")
    assert "header holds an integer of 5,000 digits" in finding.message
    assert report.verdict is not None and report.verdict.decision is Decision.DENY


# ---------------------------------------------------------------- the model card's YAML


@pytest.mark.parametrize(
    ("front", "words"),
    [
        (
            "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c]\n",
            "uses a YAML alias (line 3)",
        ),
        (f"big: {BIG}\n", "holds an integer of 5,000 digits"),
        ("deep: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ],
    ids=["alias-bomb", "5000-digit-int", "5000-deep"],
)
def test_hostile_card_front_matter_is_a_finding(tmp_path: Path, front: str, words: str) -> None:
    model = build_demo_model(tmp_path / "m")
    card = (model / "README.md").read_text()
    (model / "README.md").write_text(card.replace("---\n", "---\n" + front, 1))
    report = judged(model)
    assert_completed_and_not_approved(report)
    finding = only(report, "INV-CARD-MALFORMED", "README.md")
    assert finding.message.startswith("README.md: front matter ") and words in finding.message


# ---------------------------------------------------------------- documents that carry code


def test_tokenizer_config_with_a_5000_digit_int_says_so_and_its_template_is_checked(
    tmp_path: Path,
) -> None:
    model = build_demo_model(tmp_path / "m")
    text = (model / "tokenizer_config.json").read_text()
    (model / "tokenizer_config.json").write_text(text.replace("{", '{"n": ' + BIG + ", ", 1))
    report = judged(model)
    assert_completed_and_not_approved(report)
    finding = only(report, "SER-JSON-HOSTILE-NUMBER", "tokenizer_config.json")
    assert finding.message.startswith("tokenizer_config.json: holds an integer of 5,000 digits")
    assert "SER-CHAT-TEMPLATE-UNCHECKED" not in {f.rule_id for f in report.findings}


def test_a_hostile_number_hides_no_chat_template_payload(tmp_path: Path) -> None:
    payload = "{{ lipsum.__globals__['os'].popen('id').read() }}"
    path = tmp_path / "tokenizer_config.json"
    path.write_text('{"x": NaN, "chat_template": ' + json.dumps(payload) + "}")
    findings = scan_tokenizer_config_template(
        ScanFile(rel=path.name, path=path, size=path.stat().st_size), Limits()
    )
    rules = {(f.rule_id, f.severity) for f in findings}
    assert ("SER-CHAT-TEMPLATE-INJECTION", Severity.CRITICAL) in rules
    assert ("SER-JSON-HOSTILE-NUMBER", Severity.HIGH) in rules


@pytest.mark.parametrize("number", ["NaN", "1e999", BIG])
def test_a_hostile_number_hides_no_keras_lambda(tmp_path: Path, number: str) -> None:
    code = base64.b64encode(marshal.dumps((lambda x: x).__code__)).decode()
    function = {"class_name": "__lambda__", "config": {"code": code}}
    lambda_layer = {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {"function": function, "hostile": "NUMBER"},
        "registered_name": None,
    }
    config = {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": "s", "layers": [lambda_layer]},
        "registered_name": None,
    }
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.6.0"}))
        archive.writestr("config.json", json.dumps(config).replace('"NUMBER"', number))
    findings = scan_keras_zip(
        ScanFile(rel=path.name, path=path, size=path.stat().st_size), Limits()
    )
    assert [f.rule_id for f in findings] == ["SER-JSON-HOSTILE-NUMBER", "SER-KERAS-LAMBDA"]
    assert findings[0].location is not None and findings[0].location.member == "config.json"
    assert findings[0].message.startswith("model.keras (config.json): holds ")


# ---------------------------------------------------------------- the bounded parsers


@pytest.mark.parametrize(
    "text",
    [
        "1" * (MAX_NUMBER_CHARS + 1),
        "-" + "1" * MAX_NUMBER_CHARS,
        "0." + "1" * MAX_NUMBER_CHARS,
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "[" * (MAX_NESTING + 1) + "]" * (MAX_NESTING + 1),
        '{"a":' * 200_000 + "1" + "}" * 200_000,
    ],
)
def test_parse_json_refuses(text: str) -> None:
    with pytest.raises(HostileData):
        parse_json(text)
    with pytest.raises(HostileData):
        parse_json(text.encode("utf-16"))  # bytes in any encoding json.loads reads


def test_parse_json_keeps_what_real_metadata_holds() -> None:
    document: Any = parse_json(
        '{"model_max_length": 1000000000000000019884624838656, "eps": 1e-05, "x": -0.0,'
        ' "deep": ' + "[" * (MAX_NESTING - 1) + "]" * (MAX_NESTING - 1) + "}"  # 128 in all
    )
    assert document["model_max_length"] == 1000000000000000019884624838656
    assert document["eps"] == 1e-05
    with pytest.raises(json.JSONDecodeError):
        parse_json("{not json")


def test_parse_yaml_refuses_and_keeps() -> None:
    for text in (f"a: {'1' * (MAX_NUMBER_CHARS + 1)}", "a: &x 1\nb: *x", "a: " + "[" * 200):
        with pytest.raises(HostileData):
            parse_yaml(text)
    assert parse_yaml("license: mit\nn: 12\nf: .nan\n")["n"] == 12


# ---------------------------------------------------------------- the user's provscan.toml


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        (f"policy_timeout = {BIG}\n", "key policy_timeout holds a number written with 5,000"),
        (
            f'[severity_levels]\nhigh = "deny"\nx = [1,\n  {BIG}]\n',
            "key severity_levels.x holds a number written with 5,000",
        ),
        ("deep = " + "[" * 100_000 + "]" * 100_000 + "\n", "key deep is nested too deeply"),
        ("deep = " + "{a = " * 100_000 + "1" + "}" * 100_000 + "\n", "key deep is nested too"),
        ("deep" + ".a" * 100_000 + " = 1\n", "key deep.a.a.a"),
        ("[deep" + ".a" * 100_000 + "]\n", "table [deep.a.a"),
        ("[licence]\nx = nan\n", "key licence.x: nan cannot be passed to Rego"),
    ],
    ids=["5000-digit-int", "in-an-array", "deep-array", "deep-table", "dotted", "header", "nan"],
)
def test_hostile_provscan_toml_is_a_usage_error_naming_file_and_key(
    tmp_path: Path, toml: str, words: str
) -> None:
    (tmp_path / "provscan.toml").write_text(toml)
    result = run_provscan("check", str(tmp_path / "no-such-model"), "-q", cwd=tmp_path, timeout=60)
    assert result.code == 2, result.out + result.err
    assert "Traceback" not in result.err
    assert f"config file {tmp_path / 'provscan.toml'}: " in result.err and words in result.err
