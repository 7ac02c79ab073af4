"""Origin claims checked against the files: lineage sources, relations, and contradictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fixtures.models import build_demo_model
from provscan.pipeline import ScanOptions, scan
from provscan.report import Report, StepStatus

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
    gguf = pytest.importorskip("gguf")  # the real writer from ggml (test extra)
    model = tmp_path / "gguf-model"
    model.mkdir()
    writer = gguf.GGUFWriter(str(model / "model.gguf"), "qwen2")
    writer.add_name("Tiny")
    writer.add_uint32("general.base_model.count", 1)
    writer.add_string("general.base_model.0.name", "Qwen2.5 7B Instruct")
    writer.add_string("general.base_model.0.organization", "Qwen")
    writer.add_string(
        "general.base_model.0.repo_url", "https://huggingface.co/Qwen/Qwen2.5-7B-Instruct"
    )
    writer.add_string("general.license", "apache-2.0")
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
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
