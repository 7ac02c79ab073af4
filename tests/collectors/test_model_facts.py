"""Model facts and the model card: what the files declare, and where they disagree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provscan.collectors.inventory import collect_inventory
from provscan.collectors.modelcard import collect_model_card
from provscan.collectors.modelfacts import collect_model_facts, implied_parameter_count
from provscan.files import ScanFile, SniffedFile
from provscan.limits import DEFAULT_LIMITS, Limits
from provscan.resolve.target import resolve_target
from tests.conftest import TESTS

CORPUS = TESTS / "data" / "corpus"


def sniffed(model: Path) -> list[SniffedFile]:
    return collect_inventory(resolve_target(str(model), DEFAULT_LIMITS).files, DEFAULT_LIMITS).value


def card_of(tmp_path: Path, text: str | bytes, limits: Limits = DEFAULT_LIMITS):
    path = tmp_path / "README.md"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return collect_model_card(
        [ScanFile(rel="README.md", path=path, size=path.stat().st_size)], limits
    )


def test_demo_model_facts(demo_model: Path) -> None:
    result = collect_model_facts(sniffed(demo_model), DEFAULT_LIMITS)
    facts = result.value
    assert facts is not None
    assert facts.architectures == ("LlamaForCausalLM",)
    assert facts.model_type == "llama"
    assert facts.weight_dtypes == ("F16",)
    assert facts.config_dtype == "float16"
    assert facts.tensor_count == 2 * 9 + 3
    assert facts.parameter_count == facts.config_parameter_count == 107_200
    assert result.findings == ()


def test_config_that_claims_another_model_is_a_finding(demo_model: Path) -> None:
    config = json.loads((demo_model / "config.json").read_text())
    config["num_hidden_layers"] = 4
    (demo_model / "config.json").write_text(json.dumps(config))
    result = collect_model_facts(sniffed(demo_model), DEFAULT_LIMITS)
    finding = next(f for f in result.findings if f.rule_id == "INV-PARAM-MISMATCH")
    assert finding.evidence == {"config_parameters": 181_184, "weight_parameters": 107_200}


def test_malformed_config_is_a_finding_not_a_crash(demo_model: Path) -> None:
    (demo_model / "config.json").write_text("{not json")
    result = collect_model_facts(sniffed(demo_model), DEFAULT_LIMITS)
    assert [f.rule_id for f in result.findings] == ["INV-CONFIG-MALFORMED"]
    assert result.value is not None and result.value.parameter_count == 107_200


def test_nothing_to_read_completes_with_no_facts(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    result = collect_model_facts(sniffed(tmp_path), DEFAULT_LIMITS)
    assert result.value is None and result.skipped is None


@pytest.mark.parametrize(
    ("model", "published"),
    [
        # Published parameter counts of the original releases these configs describe.
        ("IrfanUruchi__Llama-3.1-8B-Computer-Networks-LLM", 8_030_261_248),
        ("xap__Meta-Llama3.1-8B-Instruct-assessment", 8_030_261_248),
        ("google__gemma-2b-it", 2_506_172_416),
        ("YouriLalain__3PRYMMAL-PHI3-3B-SLERP", 3_821_079_552),
    ],
)
def test_implied_parameter_count_matches_real_releases(model: str, published: int) -> None:
    config = json.loads((CORPUS / model / "config.json").read_text())
    assert implied_parameter_count(config, has_lm_head=False) == published


@pytest.mark.parametrize("model", ["Qwen__Qwen-72B", "ibm-granite__granite-3.1-1b-a400m-instruct"])
def test_unknown_families_imply_nothing(model: str) -> None:
    config = json.loads((CORPUS / model / "config.json").read_text())
    assert implied_parameter_count(config, has_lm_head=False) is None


def test_card_front_matter(tmp_path: Path) -> None:
    result = card_of(
        tmp_path,
        "---\nlicense: llama3.1\nbase_model:\n- meta-llama/Llama-3.1-8B\ntags: [a, b]\npipeline_tag: text-generation\n---\n# Card\n",
    )
    card = result.value
    assert card is not None and result.findings == ()
    assert card.licenses == ("llama3.1",)
    assert card.base_models == ("meta-llama/Llama-3.1-8B",)
    assert card.tags == ("a", "b")
    assert card.pipeline_tag == "text-generation"


def test_real_cards_from_the_corpus(tmp_path: Path) -> None:
    source = TESTS / "data" / "cards"
    for name, licence, base in [
        ("granite.md", "apache-2.0", "ibm-granite/granite-3.1-1b-a400m-base"),
        ("devstral.md", "apache-2.0", "mistralai/Mistral-Small-3.1-24B-Instruct-2503"),
    ]:
        result = card_of(tmp_path, (source / name).read_bytes())
        assert result.findings == (), name
        assert (
            result.value is not None
            and result.value.licenses == (licence,)
            and base in result.value.base_models
        )


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    result = card_of(tmp_path, "---\nlicense: mit\ntags: [unclosed\nother: x\n---\n")
    finding = result.findings[0]
    assert finding.rule_id == "INV-CARD-MALFORMED" and finding.severity.value == "high"
    assert "README.md" in finding.message and "line" in finding.message


def test_unclosed_front_matter(tmp_path: Path) -> None:
    result = card_of(tmp_path, "---\nlicense: mit\n")
    assert "never closed" in result.findings[0].message


def test_yaml_aliases_are_refused(tmp_path: Path) -> None:
    bomb = "---\na: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b]\n---\n"
    result = card_of(tmp_path, bomb)
    assert (
        result.findings[0].rule_id == "INV-CARD-MALFORMED"
        and "aliases" in result.findings[0].message
    )


def test_python_tags_are_not_constructed(tmp_path: Path) -> None:
    result = card_of(tmp_path, "---\nlicense: !!python/object/apply:os.system ['touch x']\n---\n")
    assert result.findings[0].rule_id == "INV-CARD-MALFORMED"


def test_front_matter_that_is_not_a_mapping(tmp_path: Path) -> None:
    result = card_of(tmp_path, "---\n- a\n- b\n---\n")
    assert "not a mapping" in result.findings[0].message


def test_licence_list_and_wrong_types(tmp_path: Path) -> None:
    result = card_of(tmp_path, "---\nlicense: [apache-2.0, mit]\nbase_model: {a: 1}\n---\n")
    assert result.value is not None and result.value.licenses == ("apache-2.0", "mit")
    assert result.value.base_models == ()
    # A parent the Hub cannot read is one nobody checks: high, naming what was dropped.
    assert [f.severity.value for f in result.findings] == ["high"]
    assert "{'a': 1}" in result.findings[0].message


def test_huge_card_is_read_only_up_to_the_limit(tmp_path: Path) -> None:
    result = card_of(tmp_path, "---\nlicense: mit\n---\n" + "x" * 5000, Limits(card_max=1000))
    assert [f.rule_id for f in result.findings] == ["INV-CARD-TOO-LARGE"]
    assert result.value is not None and result.value.licenses == ("mit",)


def test_missing_card_is_a_finding(tmp_path: Path) -> None:
    result = collect_model_card([], DEFAULT_LIMITS)
    assert result.skipped is None and result.findings[0].rule_id == "INV-CARD-MISSING"


def test_binary_card_does_not_crash(tmp_path: Path) -> None:
    result = card_of(tmp_path, b"---\n\xff\xfe\x00license: mit\n---\n")
    assert result.value is not None


def test_deeply_nested_config_is_a_finding(demo_model: Path) -> None:
    (demo_model / "config.json").write_text('{"a": ' * 200_000 + "1" + "}" * 200_000)
    result = collect_model_facts(sniffed(demo_model), DEFAULT_LIMITS)
    assert [f.rule_id for f in result.findings] == ["INV-CONFIG-MALFORMED"]
    assert "too deeply" in result.findings[0].message


def test_deeply_nested_front_matter_is_a_finding(tmp_path: Path) -> None:
    result = card_of(
        tmp_path,
        "---\nlicense: " + "[" * 100_000 + "]" * 100_000 + "\n---\n",
        Limits(front_matter_max=1_000_000),
    )
    assert [f.rule_id for f in result.findings] == ["INV-CARD-MALFORMED"]


@pytest.mark.parametrize(
    "text",
    [
        "\ufeff---\nlicense: llama3.1\n---\n# card\n",  # a byte-order mark
        "\n\n---\nlicense: llama3.1\n---\n# card\n",  # blank lines before the block
        "  \r\n---\r\nlicense: llama3.1\r\n---  \r\n# card\r\n",  # CRLF, spaces after '---'
    ],
)
def test_front_matter_is_found_where_huggingface_hub_finds_it(tmp_path: Path, text: str) -> None:
    """huggingface_hub's own reader (metadata_load) is the reference: whatever block it reads,
    provscan reads, so a card cannot show the Hub's tools one licence and provscan none."""
    from huggingface_hub.repocard import metadata_load

    card = tmp_path / "card.md"
    card.write_bytes(text.encode("utf-8"))
    assert metadata_load(card) == {"license": "llama3.1"}
    result = card_of(tmp_path, text)
    assert result.value is not None and result.value.licenses == ("llama3.1",)
    assert not result.findings


def test_a_repeated_key_is_a_malformed_card_naming_both_lines(tmp_path: Path) -> None:
    result = card_of(tmp_path, "\n---\nlicense: llama3.1\ntags: [x]\nlicense: apache-2.0\n---\n")
    # Both values are taken: the Hub refuses the card, PyYAML keeps the last, others the first.
    assert result.value is not None and result.value.licenses == ("llama3.1", "apache-2.0")
    [finding] = result.findings
    assert finding.rule_id == "INV-CARD-MALFORMED" and finding.severity.value == "high"
    assert "repeats the key 'license' (lines 3 and 5)" in finding.message
