"""Origin claims checked against the files: lineage sources, relations, and contradictions."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.models import build_demo_model, write_gguf
from provscan.pipeline import ScanOptions, scan
from provscan.report import Finding, Report, StepStatus

QWEN_TOKENS = {
    "151643": {"content": "<|endoftext|>", "special": True},
    "151644": {"content": "<|im_start|>", "special": True},
    "151645": {"content": "<|im_end|>", "special": True},
}


def _scan(model: Path) -> Report:
    report = scan(str(model), ScanOptions(hash_workers=1))
    step = report.step("origin")
    assert step is not None and step.status is StepStatus.COMPLETED, step
    return report


def _model(tmp_path: Path, card: str | None = None) -> Path:
    model = build_demo_model(tmp_path / "model")
    if card is not None:
        (model / "README.md").write_text(f"---\n{card}\n---\n# model\n", encoding="utf-8")
    return model


def _qwen_files(model: Path) -> None:
    config = json.loads((model / "config.json").read_text())
    config.update(model_type="qwen2", architectures=["Qwen2ForCausalLM"], vocab_size=151936)
    (model / "config.json").write_text(json.dumps(config))
    (model / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": QWEN_TOKENS}))


def test_card_claims_llama_but_files_are_qwen(tmp_path: Path) -> None:
    model = _model(tmp_path, "license: llama3.1\nbase_model: meta-llama/Llama-3.1-8B")
    _qwen_files(model)
    report = _scan(model)
    origin = report.origin
    assert origin is not None and origin.family == "qwen2" and origin.family_confidence == "high"
    [mismatch] = [f for f in report.findings if f.rule_id == "ORG-CLAIM-MISMATCH"]
    assert mismatch.severity.value == "high"
    assert "meta-llama/Llama-3.1-8B" in mismatch.message and "Alibaba" in mismatch.message
    # Fail closed: both the claimed and the evidenced origin are reported.
    by_role = {j.role: j for j in origin.jurisdictions}
    assert by_role["root"].country == "US" and by_role["root"].confidence == "low"
    assert by_role["family"].country == "CN"


def test_claim_and_files_agreeing_is_high_confidence(tmp_path: Path) -> None:
    model = _model(tmp_path, "base_model: Qwen/Qwen2.5-7B-Instruct")
    _qwen_files(model)
    report = _scan(model)
    assert report.origin is not None
    assert [(j.country, j.role, j.confidence) for j in report.origin.jurisdictions] == [
        ("CN", "root", "high")
    ]
    assert "ORG-CLAIM-MISMATCH" not in {f.rule_id for f in report.findings}


def test_adapter_config_gives_adapter_lineage(tmp_path: Path) -> None:
    model = _model(tmp_path)
    (model / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "mistralai/Mistral-7B-v0.1", "peft_type": "LORA"})
    )
    report = _scan(model)
    assert report.origin is not None
    [edge] = report.origin.lineage
    assert (edge.base, edge.relation, edge.sources) == (
        "mistralai/Mistral-7B-v0.1",
        "adapter",
        ("adapter_config.json",),
    )
    assert {j.country for j in report.origin.jurisdictions} == {"FR"}


def test_several_base_models_are_a_merge_with_every_root(tmp_path: Path) -> None:
    card = "base_model:\n- microsoft/Phi-3-mini-4k-instruct\n- Qwen/Qwen2.5-3B-Instruct"
    report = _scan(_model(tmp_path, card))
    assert report.origin is not None
    assert {e.relation for e in report.origin.lineage} == {"merge"}
    assert {j.country for j in report.origin.jurisdictions} == {"US", "CN"}
    assert report.licence is not None
    assert set(report.licence.inherited) == {"mit", "qwen-research"}


def test_hub_relation_tag_sets_the_relation(tmp_path: Path) -> None:
    card = "base_model: google/gemma-2b-it\ntags:\n- base_model:quantized:google/gemma-2b-it"
    report = _scan(_model(tmp_path, card))
    assert report.origin is not None
    assert [e.relation for e in report.origin.lineage] == ["quantized"]


def test_unknown_base_publisher_is_not_guessed(tmp_path: Path) -> None:
    report = _scan(_model(tmp_path, "base_model: someone/cool-model"))
    assert report.origin is not None and report.origin.jurisdictions == ()
    assert "ORG-BASE-UNKNOWN" in {f.rule_id for f in report.findings}


def test_gguf_base_model_keys_give_lineage_and_family(tmp_path: Path) -> None:
    model = tmp_path / "gguf-model"
    model.mkdir()
    write_gguf(
        model / "model.gguf",
        "qwen2",
        uints={"general.base_model.count": 1},
        strings={
            "general.name": "Tiny",
            "general.base_model.0.name": "Qwen2.5 7B Instruct",
            "general.base_model.0.organization": "Qwen",
            "general.base_model.0.repo_url": "https://huggingface.co/Qwen/Qwen2.5-7B-Instruct",
            "general.license": "apache-2.0",
        },
    )
    report = _scan(model)
    assert report.origin is not None and report.licence is not None
    [edge] = report.origin.lineage
    assert (edge.base, edge.relation) == ("Qwen/Qwen2.5-7B-Instruct", "quantized")
    assert report.origin.family == "qwen2"
    assert {j.country for j in report.origin.jurisdictions} == {"CN"}
    assert report.licence.declared == ("apache-2.0",)
    assert [e.source for e in report.licence.evidence if e.key == "apache-2.0"] == ["gguf"]


def test_tokenizer_alone_decides_between_llama_generations(tmp_path: Path) -> None:
    model = _model(tmp_path)
    tokens = {
        "128000": {"content": "<|begin_of_text|>"},
        "128006": {"content": "<|start_header_id|>"},
        "128009": {"content": "<|eot_id|>"},
    }
    (model / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": tokens}))
    report = _scan(model)
    assert report.origin is not None and report.origin.family == "llama3"
    assert {j.country for j in report.origin.jurisdictions} == {"US"}


WEIRD_VALUES = [None, True, 7, -1, 1.5, "", "x" * 5000, [], {}, [1, [2]], {"a": {"b": None}}]


@pytest.mark.parametrize("value", WEIRD_VALUES, ids=repr)
def test_wrongly_typed_metadata_fields_never_fail_the_steps(tmp_path: Path, value: object) -> None:
    """Hostile but valid JSON/YAML in every field the origin and licence steps read."""
    model = _model(tmp_path)
    fields = ("model_type", "architectures", "vocab_size", "_name_or_path", "auto_map", "license")
    config = json.loads((model / "config.json").read_text())
    config.update(dict.fromkeys(fields, value), vision_config=value)
    (model / "config.json").write_text(json.dumps(config))
    (model / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": value}))
    (model / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": value}))
    card = {"license": value, "license_name": value, "base_model": value, "tags": value,
            "base_model_relation": value}  # fmt: skip
    (model / "README.md").write_text(f"---\n{json.dumps(card)}\n---\n")
    report = _scan(model)
    assert all(s.status is StepStatus.COMPLETED for s in report.steps), report.steps


# ---------------------------------------------------------------- stated parents, never dropped


def _findings(report: Report, rule: str, path: str) -> list[Finding]:
    return [
        f
        for f in report.findings
        if f.rule_id == rule and f.location is not None and f.location.path == path
    ]


def _edges(report: Report) -> dict[str, str]:
    assert report.origin is not None
    return {edge.base: edge.relation for edge in report.origin.lineage}


def _card(tmp_path: Path, base_model: object, **more: object) -> Path:
    model = build_demo_model(tmp_path / "model")
    front = json.dumps({"license": "apache-2.0", "base_model": base_model, **more})
    (model / "README.md").write_text(f"---\n{front}\n---\n# model\n", encoding="utf-8")
    return model


def _names(finding: Finding, path: str, stated: object) -> None:
    """The finding names the file and the value as stated."""
    assert path in finding.message and repr(stated) in finding.message, finding.message
    assert finding.evidence["stated"] == repr(stated)


@pytest.mark.parametrize(
    ("stated", "severity"),
    [
        ("meta-llama/Llama-3.1-8B\u200b", "high"),  # zero-width space
        ("\ufeffmeta-llama/\u2060Llama-3.1-8B", "high"),  # BOM, word joiner
        ("ｍｅｔａ-llama/Llama-3.1-8B", "high"),  # fullwidth letters: NFKC changes them
        ("meta-llama/Llama-3.1-8B ", "medium"),  # trailing space
        ("\tmeta-llama/Llama-3.1-8B\n", "medium"),
        ("\u00a0meta-llama/Llama-3.1-8B", "medium"),  # a no-break space is whitespace
    ],
    ids=repr,
)
def test_card_base_model_is_normalised_and_reported(
    tmp_path: Path, stated: str, severity: str
) -> None:
    report = _scan(_card(tmp_path, stated))
    assert _edges(report) == {"meta-llama/Llama-3.1-8B": "finetune"}
    [finding] = _findings(report, "ORG-BASE-NORMALISED", "README.md")
    assert finding.severity.value == severity
    assert finding.evidence["repo_id"] == "meta-llama/Llama-3.1-8B"
    assert finding.evidence["field"] == "base_model"
    _names(finding, "README.md", stated)
    assert not _findings(report, "ORG-BASE-UNRESOLVED", "README.md")


@pytest.mark.parametrize(
    "url",
    [
        "https://hf.co/Qwen/Qwen2.5-7B/tree/main",
        "https://huggingface.co/Qwen/Qwen2.5-7B",
        "http://www.huggingface.co/Qwen/Qwen2.5-7B/",
        "https://huggingface.co/Qwen/Qwen2.5-7B/blob/main/config.json",
        "https://hf.co/Qwen/Qwen2.5-7B/resolve/main/model.safetensors",
        "https://www.hf.co/Qwen/Qwen2.5-7B/tree/v1.0/",
    ],
)
def test_card_hub_url_is_reduced_to_its_repo_id(tmp_path: Path, url: str) -> None:
    report = _scan(_card(tmp_path, url))
    assert _edges(report) == {"Qwen/Qwen2.5-7B": "finetune"}
    [finding] = _findings(report, "ORG-BASE-NORMALISED", "README.md")
    assert finding.severity.value == "medium"
    _names(finding, "README.md", url)
    assert report.origin is not None
    assert {j.country for j in report.origin.jurisdictions} == {"CN"}


@pytest.mark.parametrize(
    "stated",
    [
        "/data/ckpt/llama",
        "./base",
        "../models/base",
        "~/models/x",
        "C:\\models\\x",
        "file:///data/base",
        "outputs/run-1/final",
        "",
        "42",  # `base_model: 42`: the card reader keeps it as the string '42'
        "meta-llama/Llama 3.1",
        "https://github.com/meta-llama/llama3",
        "https://huggingface.co/datasets/org/data",
    ],
)
def test_card_base_model_that_is_no_repo_id_is_unresolved(tmp_path: Path, stated: str) -> None:
    report = _scan(_card(tmp_path, stated))
    assert _edges(report) == {}
    [finding] = _findings(report, "ORG-BASE-UNRESOLVED", "README.md")
    assert finding.severity.value == "high"
    _names(finding, "README.md", stated)
    assert finding.evidence["field"] == "base_model"


def test_card_base_model_of_a_number_is_unresolved(tmp_path: Path) -> None:
    model = _model(tmp_path, "license: apache-2.0\nbase_model: 42")
    report = _scan(model)
    assert _edges(report) == {}
    [finding] = _findings(report, "ORG-BASE-UNRESOLVED", "README.md")
    assert finding.severity.value == "high" and "'42'" in finding.message


def test_an_unresolved_card_parent_still_makes_the_others_a_merge(tmp_path: Path) -> None:
    report = _scan(_card(tmp_path, ["/data/ckpt/llama", "Qwen/Qwen2.5-7B"]))
    assert _edges(report) == {"Qwen/Qwen2.5-7B": "merge"}
    [finding] = _findings(report, "ORG-BASE-UNRESOLVED", "README.md")
    _names(finding, "README.md", "/data/ckpt/llama")


def test_base_model_tag_urls_are_normalised_and_local_ones_reported(tmp_path: Path) -> None:
    tags = ["base_model:quantized:https://hf.co/google/gemma-2b-it", "base_model:adapter:./lora"]
    report = _scan(_card(tmp_path, None, tags=tags))
    assert _edges(report) == {"google/gemma-2b-it": "quantized"}
    [normalised] = _findings(report, "ORG-BASE-NORMALISED", "README.md")
    assert normalised.severity.value == "medium"
    _names(normalised, "README.md", "https://hf.co/google/gemma-2b-it")
    [unresolved] = _findings(report, "ORG-BASE-UNRESOLVED", "README.md")
    assert unresolved.severity.value == "high"
    _names(unresolved, "README.md", "./lora")


def test_a_clean_card_base_model_gives_no_parent_finding(tmp_path: Path) -> None:
    report = _scan(_card(tmp_path, "meta-llama/Llama-3.1-8B"))
    assert _edges(report) == {"meta-llama/Llama-3.1-8B": "finetune"}
    rules = {f.rule_id for f in report.findings}
    assert not rules & {"ORG-BASE-NORMALISED", "ORG-BASE-UNRESOLVED"}


def _config(model: Path, **fields: object) -> None:
    config = json.loads((model / "config.json").read_text())
    config.update(fields)
    (model / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    "stated", ["/cpfs01/data/hf-ckpts/Qwen-72B-Base/", "./out", "C:\\ckpt\\base", "", "gpt2"]
)
def test_config_local_name_or_path_is_unresolved_low(tmp_path: Path, stated: str) -> None:
    model = _model(tmp_path)
    _config(model, _name_or_path=stated)
    report = _scan(model)
    assert _edges(report) == {}
    [finding] = _findings(report, "ORG-BASE-UNRESOLVED", "config.json")
    assert finding.severity.value == "low"
    assert finding.evidence["field"] == "_name_or_path"
    _names(finding, "config.json", stated)
    if stated.startswith(("/", ".", "C:")):
        assert "where the weights were loaded from" in finding.message


def test_config_name_or_path_of_the_wrong_type_is_unresolved_high(tmp_path: Path) -> None:
    model = _model(tmp_path)
    _config(model, _name_or_path=["meta-llama/Llama-3.1-8B"])
    report = _scan(model)
    [finding] = _findings(report, "ORG-BASE-UNRESOLVED", "config.json")
    assert finding.severity.value == "high" and "list" in finding.message
    _names(finding, "config.json", ["meta-llama/Llama-3.1-8B"])


def test_config_hub_name_or_path_stays_a_claim_and_a_url_is_normalised(tmp_path: Path) -> None:
    model = _model(tmp_path)
    _config(model, _name_or_path="https://huggingface.co/meta-llama/Llama-3.1-8B/tree/main")
    report = _scan(model)
    assert _edges(report) == {"meta-llama/Llama-3.1-8B": "unknown"}
    [finding] = _findings(report, "ORG-BASE-NORMALISED", "config.json")
    assert finding.severity.value == "medium"
    _names(finding, "config.json", "https://huggingface.co/meta-llama/Llama-3.1-8B/tree/main")


@pytest.mark.parametrize(
    ("stated", "edges", "rule", "severity"),
    [
        ("/data/ckpt/mistral", {}, "ORG-BASE-UNRESOLVED", "high"),
        ("~/models/x", {}, "ORG-BASE-UNRESOLVED", "high"),
        (7, {}, "ORG-BASE-UNRESOLVED", "high"),
        (
            "https://hf.co/mistralai/Mistral-7B-v0.1/",
            {"mistralai/Mistral-7B-v0.1": "adapter"},
            "ORG-BASE-NORMALISED",
            "medium",
        ),
        (
            "mistralai/Mistral-7B-v0.1\u200d",
            {"mistralai/Mistral-7B-v0.1": "adapter"},
            "ORG-BASE-NORMALISED",
            "high",
        ),
    ],
    ids=repr,
)
def test_adapter_base_is_resolved_or_reported(
    tmp_path: Path, stated: object, edges: dict[str, str], rule: str, severity: str
) -> None:
    model = _model(tmp_path)
    (model / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": stated, "peft_type": "LORA"})
    )
    report = _scan(model)
    assert _edges(report) == edges
    [finding] = _findings(report, rule, "adapter_config.json")
    assert finding.severity.value == severity
    assert finding.evidence["field"] == "base_model_name_or_path"
    _names(finding, "adapter_config.json", stated)


def _gguf_model(tmp_path: Path, **strings: str) -> Path:
    model = tmp_path / "gguf-model"
    model.mkdir()
    keys = {f"general.base_model.0.{key}": value for key, value in strings.items()}
    write_gguf(model / "model.gguf", "qwen2", uints={"general.base_model.count": 1}, strings=keys)
    return model


def test_gguf_repo_url_on_hf_co_gives_lineage(tmp_path: Path) -> None:
    url = "https://hf.co/Qwen/Qwen2.5-7B-Instruct/tree/main"
    report = _scan(_gguf_model(tmp_path, repo_url=url))
    assert _edges(report) == {"Qwen/Qwen2.5-7B-Instruct": "quantized"}
    [finding] = _findings(report, "ORG-BASE-NORMALISED", "model.gguf")
    assert finding.severity.value == "medium"
    assert finding.evidence["field"] == "general.base_model.0.repo_url"
    _names(finding, "model.gguf", url)


def test_gguf_repo_url_off_the_hub_is_unresolved(tmp_path: Path) -> None:
    url = "https://modelscope.cn/models/qwen/Qwen2-7B"
    report = _scan(_gguf_model(tmp_path, repo_url=url, name="Qwen2 7B"))
    assert _edges(report) == {}
    findings = _findings(report, "ORG-BASE-UNRESOLVED", "model.gguf")
    assert {f.evidence["field"] for f in findings} == {
        "general.base_model.0.repo_url",
        "general.base_model.0.name",
    }
    assert all(f.severity.value == "high" for f in findings)
    [by_url] = [f for f in findings if f.evidence["field"].endswith("repo_url")]
    _names(by_url, "model.gguf", url)


MERGEKIT = """\
merge_method: ties
base_model: meta-llama/Llama-3.1-8B
models:
  - model: meta-llama/Llama-3.1-8B-Instruct
    parameters: {weight: 0.5}
  - model: "Qwen/Qwen2.5-7B+someone/qwen-lora\\u200b"
    parameters: {weight: 0.5}
  - model: /data/ckpt/private-finetune
slices:
  - sources:
      - model: mistralai/Mistral-7B-v0.1@main
        layer_range: [0, 32]
      - model: https://huggingface.co/google/gemma-2b-it
        layer_range: [0, 32]
"""


@pytest.mark.parametrize("name", ["mergekit_config.yml", "mergekit_config.yaml"])
def test_mergekit_config_parents_are_merge_claims(tmp_path: Path, name: str) -> None:
    model = _model(tmp_path)
    (model / name).write_text(MERGEKIT, encoding="utf-8")
    report = _scan(model)
    assert _edges(report) == {
        "meta-llama/Llama-3.1-8B": "merge",
        "meta-llama/Llama-3.1-8B-Instruct": "merge",
        "Qwen/Qwen2.5-7B": "merge",
        "someone/qwen-lora": "merge",  # the LoRA applied to Qwen/Qwen2.5-7B
        "mistralai/Mistral-7B-v0.1": "merge",
        "google/gemma-2b-it": "merge",
    }
    [unresolved] = _findings(report, "ORG-BASE-UNRESOLVED", name)
    assert unresolved.severity.value == "high" and unresolved.evidence["field"] == "models[2].model"
    _names(unresolved, name, "/data/ckpt/private-finetune")
    by_field = {f.evidence["field"]: f for f in _findings(report, "ORG-BASE-NORMALISED", name)}
    assert by_field["models[1].model (LoRA)"].severity.value == "high"
    _names(by_field["models[1].model (LoRA)"], name, "someone/qwen-lora\u200b")
    assert by_field["slices[0].sources[1].model"].severity.value == "medium"
    assert set(by_field) == {"models[1].model (LoRA)", "slices[0].sources[1].model"}
    assert report.origin is not None
    assert {j.country for j in report.origin.jurisdictions} >= {"US", "CN", "FR"}


def test_mergekit_config_with_two_models_and_a_lora(tmp_path: Path) -> None:
    model = _model(tmp_path)
    (model / "mergekit_config.yml").write_text(
        "merge_method: linear\nmodels:\n  - model: microsoft/Phi-3-mini-4k-instruct\n"
        "  - model: Qwen/Qwen2.5-3B-Instruct+someone/lora-adapter\n",
        encoding="utf-8",
    )
    report = _scan(model)
    assert _edges(report) == {
        "microsoft/Phi-3-mini-4k-instruct": "merge",
        "Qwen/Qwen2.5-3B-Instruct": "merge",
        "someone/lora-adapter": "merge",
    }
    parent_rules = {"ORG-BASE-NORMALISED", "ORG-BASE-UNRESOLVED"}
    assert not parent_rules & {f.rule_id for f in report.findings}


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        ("models: [\n", "(file)", "not valid YAML"),
        ("- just\n- a list\n", "(file)", "not a mapping"),
        ("a: &x [1]\nb: *x\n", "(file)", "alias"),
        ("models: meta-llama/Llama-3.1-8B\n", "models", "not a list"),
        ("models:\n  - model: 42\n", "models[0].model", "int"),
        ("models:\n  - {weight: 1}\n", "models[0]", "dict"),
    ],
)
def test_unreadable_mergekit_parents_are_unresolved(
    tmp_path: Path, text: str, field: str, problem: str
) -> None:
    model = _model(tmp_path)
    (model / "mergekit_config.yml").write_text(text, encoding="utf-8")
    report = _scan(model)
    [finding] = _findings(report, "ORG-BASE-UNRESOLVED", "mergekit_config.yml")
    assert finding.severity.value == "high" and finding.evidence["field"] == field
    assert "mergekit_config.yml" in finding.message and problem in finding.message


# ---------------------------------------------------------------- tokenizer readers


def _write_gguf(path: Path, tokens: list[str]) -> Path:
    return write_gguf(path, tokens=tokens)


def _unreadable(report: Report) -> list[Finding]:
    return [f for f in report.findings if f.rule_id == "ORG-TOKENIZER-UNREADABLE"]


def test_tokens_past_the_first_megabytes_of_tokenizer_json_are_found(tmp_path: Path) -> None:
    # A 6 MB vocabulary before added_tokens: a head-only search would miss them.
    model = _model(tmp_path)
    vocab = {f"tok{i:07d}{'x' * 40}": i for i in range(120_000)}
    added = [{"id": 200_000 + i, "content": t} for i, t in enumerate(QWEN_TOKENS_ALL)]
    document = {"model": {"type": "BPE", "vocab": vocab}, "added_tokens": added}
    (model / "tokenizer.json").write_text(json.dumps(document))
    assert (model / "tokenizer.json").stat().st_size > 6 * 1024 * 1024
    origin = _scan(model).origin
    assert origin is not None
    signals = [s for s in origin.family_signals if s.family == "qwen2" and s.signal == "tokenizer"]
    assert signals and signals[0].path == "tokenizer.json"


QWEN_TOKENS_ALL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|box_start|>",
]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"added_tokens": [', "not valid JSON"),
        (b'{"a": ' + b"[" * 200 + b"]" * 200 + b"}", "nested deeper"),
        (b'["<|im_start|>"]', "not an object"),
        (b'{"added_tokens": [{"content": "\xff\xfe"}]}', "not valid JSON"),
    ],
)
def test_unreadable_tokenizer_is_a_finding_naming_it(
    content: bytes, problem: str, tmp_path: Path
) -> None:
    model = _model(tmp_path)
    _qwen_files(model)  # the config and tokenizer_config still count
    (model / "tokenizer.json").write_bytes(content)
    report = _scan(model)
    [finding] = [f for f in _unreadable(report) if f.message.startswith("tokenizer.json")]
    assert finding.location is not None and finding.location.path == "tokenizer.json"
    assert finding.severity.value == "medium" and problem in finding.message
    assert report.origin is not None and report.origin.family == "qwen2"


def test_oversized_tokenizer_is_a_finding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from provscan.collectors import tokenizer_read

    monkeypatch.setattr(tokenizer_read, "TOKENIZER_READ_MAX", 64)
    monkeypatch.setattr(tokenizer_read.read_tokenizer_tokens, "__defaults__", ((), 64))
    model = _model(tmp_path)
    (model / "special_tokens_map.json").write_text(json.dumps({"pad": "x" * 100}))
    found = {f.location.path: f for f in _unreadable(_scan(model)) if f.location is not None}
    finding = found["special_tokens_map.json"]
    assert "read bound" in finding.message and finding.severity.value == "medium"


def test_sentencepiece_model_pieces_match_the_library(tmp_path: Path) -> None:
    import sentencepiece as spm

    from provscan.collectors.sentencepiece_read import parse_sentencepiece

    corpus = tmp_path / "corpus.txt"
    words = " ".join(f"w{i} v{i % 97} u{i % 31}" for i in range(3000))
    corpus.write_text("\n".join(words[i : i + 200] for i in range(0, len(words), 200)))
    prefix = tmp_path / "sp"
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(prefix),
        vocab_size=120,
        user_defined_symbols=["<start_of_turn>", "<end_of_turn>"],
        control_symbols=["<start_of_image>"],
        minloglevel=2,
    )
    data = (tmp_path / "sp.model").read_bytes()
    processor = spm.SentencePieceProcessor(model_file=str(tmp_path / "sp.model"))
    pieces = parse_sentencepiece(data, frozenset({"w1"}))
    assert pieces.vocab_size == processor.get_piece_size() == 120
    specials = {
        processor.id_to_piece(i)
        for i in range(processor.get_piece_size())
        if processor.is_control(i) or processor.is_unknown(i)
    } | {"<start_of_turn>", "<end_of_turn>"}  # the user-defined pieces
    assert specials | ({"w1"} & pieces.tokens) == pieces.tokens
    assert {"<start_of_turn>", "<end_of_turn>", "<start_of_image>"} <= pieces.tokens
    # In a model folder: the Gemma turn tokens are found in tokenizer.model.
    model = _model(tmp_path)
    (model / "tokenizer.model").write_bytes(data)
    origin = _scan(model).origin
    assert origin is not None
    assert {s.family for s in origin.family_signals if s.path == "tokenizer.model"} >= {"gemma"}


@pytest.mark.parametrize(
    "content",
    [
        b"\x0a\xff\xff\xff\xff\x0f",  # a piece longer than the file
        b"\x0a\x02\x0a",  # a piece message cut short
        b"\x0f" * 10,  # wire type 7
        b"\xff" * 11,  # a varint over 10 bytes
        b"",  # no pieces at all
    ],
)
def test_hostile_sentencepiece_is_a_finding(content: bytes, tmp_path: Path) -> None:
    model = _model(tmp_path)
    (model / "tokenizer.model").write_bytes(content)
    [finding] = _unreadable(_scan(model))
    assert finding.location is not None and finding.location.path == "tokenizer.model"


def test_gguf_token_list_bounds_are_findings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from provscan.collectors.serialization.gguf import scan as gguf_scan

    model = tmp_path / "model"
    model.mkdir()
    _write_gguf(model / "model.gguf", [f"t{i}" for i in range(300)] + ["<|im_start|>"])
    before = gguf_scan.read_provenance.__wrapped__  # the existing reader is unchanged
    monkeypatch.setattr(gguf_scan, "TOKENS_COUNT_MAX", 100)
    [finding] = _unreadable(_scan(model))
    assert finding.location is not None and finding.location.path == "model.gguf"
    assert "declares 301 tokens" in finding.message
    monkeypatch.setattr(gguf_scan, "TOKENS_COUNT_MAX", 10_000)
    monkeypatch.setattr(gguf_scan, "TOKENS_BYTES_MAX", 500)
    [finding] = _unreadable(_scan(model))
    assert "over 500 bytes" in finding.message
    assert gguf_scan.read_provenance.__wrapped__ is before


def test_gguf_tokens_are_read_whole(tmp_path: Path) -> None:
    from provscan.collectors.serialization.gguf.scan import read_gguf_tokens
    from provscan.files import ScanFile

    path = _write_gguf(tmp_path / "m.gguf", [f"t{i}" for i in range(5000)] + ["<|eot_id|>"])
    stat = path.stat()
    file = ScanFile(rel="m.gguf", path=path, size=stat.st_size)
    tokens = read_gguf_tokens(file, ["<|eot_id|>", "<|im_end|>"])
    assert tokens is not None and tokens.count == 5001
    assert tokens.tokens == {"<|eot_id|>"}


# ---------------------------------------------------------------- families and publishers


def test_family_licences_cover_their_official_releases() -> None:
    from provscan.knowledge.base import family_by_key, model_base, publisher_for_org

    for model in model_base().models:
        family = family_by_key(model.family) if model.family else None
        publisher = publisher_for_org(model.pattern.split("/", 1)[0])
        if family is None or publisher is None or publisher.key != family.publisher:
            continue  # another publisher's release built on the family (a distillation)
        assert model.licence in family.licences, (model.pattern, family.key)


def test_a_tokenizer_read_only_in_part_keeps_what_it_read(tmp_path: Path) -> None:
    # hf:// metadata-only scans may hold a file's first bytes and zeros after: the tokens
    # in those bytes count, and the parse stopped by the zeros is no finding.
    import dataclasses

    from provscan.collectors.inventory import collect_inventory
    from provscan.collectors.origin import collect_origin
    from provscan.limits import DEFAULT_LIMITS
    from provscan.report import TargetInfo, TargetKind
    from provscan.resolve.target import resolve_target

    model = tmp_path / "model"
    model.mkdir()
    added = [{"id": 151643 + i, "content": t} for i, t in enumerate(QWEN_TOKENS_ALL)]
    head = json.dumps({"added_tokens": added, "model": {"vocab": {}}}).encode()[:-30]
    (model / "tokenizer.json").write_bytes(head + b"\0" * 4096)
    (model / "tokenizer.model").write_bytes(b"\x0a\x13\x0a\x0f<start_of_turn>\x18\x04" + b"\0" * 64)
    files = resolve_target(str(model), DEFAULT_LIMITS).files
    sniffed = [
        dataclasses.replace(s, file=dataclasses.replace(s.file, read="head"))
        for s in collect_inventory(files, DEFAULT_LIMITS).value
    ]
    target = TargetInfo(input=str(model), kind=TargetKind.HUB_METADATA, root=str(model), name="m")
    collected = collect_origin(sniffed, target, None, None, DEFAULT_LIMITS)
    assert not [f for f in collected.findings if f.rule_id == "ORG-TOKENIZER-UNREADABLE"]
    signals = {(s.family, s.path) for s in collected.value.family_signals}
    assert ("qwen2", "tokenizer.json") in signals
    # Whole files with the same bytes are unreadable, and say so.
    whole = collect_origin(
        collect_inventory(files, DEFAULT_LIMITS).value, target, None, None, DEFAULT_LIMITS
    )
    unreadable = {f.location.path for f in whole.findings if f.location is not None}
    assert {"tokenizer.json", "tokenizer.model"} <= unreadable


def test_gguf_token_list_of_numbers_is_a_finding(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    write_gguf(model / "model.gguf", arrays={"tokenizer.ggml.tokens": [1, 2, 3]})
    [finding] = _unreadable(_scan(model))
    assert "not strings" in finding.message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=512))
def test_tokenizer_readers_only_ever_refuse(data: bytes) -> None:
    # Hostile bytes: the readers return or raise their own "unreadable" error, nothing else.
    import tempfile

    from provscan.collectors.sentencepiece_read import (
        SentencePieceUnreadable,
        parse_sentencepiece,
    )
    from provscan.collectors.tokenizer_read import TokenizerUnreadable, read_tokenizer_tokens
    from provscan.files import ScanFile

    with contextlib.suppress(SentencePieceUnreadable):
        parse_sentencepiece(data, frozenset({"<s>"}))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tokenizer.json"
        for content in (data, b'{"added_tokens": [{"content": ' + data + b"}]}"):
            path.write_bytes(content)
            file = ScanFile(rel="tokenizer.json", path=path, size=len(content))
            with contextlib.suppress(TokenizerUnreadable):
                read_tokenizer_tokens(file, ["<s>"])
