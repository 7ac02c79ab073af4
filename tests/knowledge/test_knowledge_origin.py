"""Origin knowledge: publishers.yaml, families.yaml and models.yaml (no network).

The family signatures are checked against real model-directory files copied verbatim
from public Hub releases into tests/data/corpus/<org>__<name>/ (see tests/data/README.md).
"""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

import pytest

from provscan.knowledge import base as kb
from provscan.knowledge.files import load_yaml
from tests.conftest import TESTS

CORPUS = TESTS / "data" / "corpus"


# Other code depends on these exact keys.
REQUIRED_PUBLISHERS = frozenset(
    {
        "meta",
        "google",
        "alibaba-qwen",
        "deepseek",
        "mistral",
        "zhipu",
        "tii",
        "microsoft",
        "nvidia",
        "cohere",
        "01-ai",
        "baichuan",
        "shanghai-ai-lab",
        "moonshot",
        "minimax",
        "stepfun",
        "ibm",
        "allenai",
        "stability",
        "bigscience",
        "eleutherai",
        "openai",
        "xai",
        "lg",
        "upstage",
        "sarvam",
        "ai21",
        "naver",
        "huggingface",
    }
)
REQUIRED_FAMILIES = frozenset(
    {
        "llama2",
        "llama3",
        "llama4",
        "qwen1",
        "qwen2",
        "deepseek-v2",
        "deepseek-v3",
        "gemma",
        "gemma2",
        "gemma3",
        "mistral",
        "mistral-tekken",
        "glm",
        "phi3",
        "phi4",
        "granite",
        "falcon",
        "bloom",
        "gpt-oss",
        "olmo",
        "yi",
        "internlm",
        "command-r",
        "exaone",
    }
)

# ISO 3166-1 alpha-2, officially assigned codes (249).
_ISO_ALPHA2_TEXT = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN
    BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
    DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL
    GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM
    JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME
    MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP
    NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD
    SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
    TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
    """
ISO_ALPHA2 = frozenset(_ISO_ALPHA2_TEXT.split())


def family(key: str) -> kb.FamilyEntry:
    entry = kb.family_by_key(key)
    assert entry is not None, f"no family {key}"
    return entry


def load_json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CORPUS / name).read_text(encoding="utf-8"))
    return data


def tokenizer_tokens(tokenizer_config: dict[str, Any]) -> set[str]:
    """Token strings of tokenizer_config.json: added_tokens_decoder contents and extras."""
    tokens = {
        entry["content"] for entry in tokenizer_config.get("added_tokens_decoder", {}).values()
    }
    tokens.update(tokenizer_config.get("additional_special_tokens", []))
    return tokens


def signature_matches(entry: kb.FamilyEntry, tokens: set[str]) -> bool:
    wanted = entry.tokenizer.special_tokens
    return bool(wanted) and len(tokens & set(wanted)) >= entry.tokenizer.min_special


def families_for_model_type(model_type: str) -> set[str]:
    return {f.key for f in kb.family_base().families if model_type in f.model_types}


# ---------------------------------------------------------------- the files load and agree


def test_the_three_files_load() -> None:
    assert kb.publisher_base().publishers
    assert kb.family_base().families
    assert kb.model_base().models


def test_keys_are_unique() -> None:
    publishers = [p.key for p in kb.publisher_base().publishers]
    families = [f.key for f in kb.family_base().families]
    patterns = [m.pattern.casefold() for m in kb.model_base().models]
    assert len(publishers) == len(set(publishers))
    assert len(families) == len(set(families))
    assert len(patterns) == len(set(patterns))


def test_required_keys_are_present() -> None:
    assert {p.key for p in kb.publisher_base().publishers} >= REQUIRED_PUBLISHERS
    assert {f.key for f in kb.family_base().families} >= REQUIRED_FAMILIES


def test_every_family_publisher_exists() -> None:
    for entry in kb.family_base().families:
        assert kb.publisher_by_key(entry.publisher) is not None, entry.key


def test_every_known_model_family_exists() -> None:
    for entry in kb.model_base().models:
        if entry.family is not None:
            assert kb.family_by_key(entry.family) is not None, entry.pattern


def test_model_licences_exist_in_licences_yaml() -> None:
    keys = {entry.key for entry in kb.licence_base().licences}
    missing = {m.licence for m in kb.model_base().models} - keys
    assert not missing, f"models.yaml licences missing from licences.yaml: {sorted(missing)}"


def test_every_entry_has_a_source() -> None:
    for entry in kb.family_base().families:
        assert entry.source.startswith("https://"), entry.key
    for model in kb.model_base().models:
        assert model.source.startswith("https://"), model.pattern


# ---------------------------------------------------------------- publishers


def test_hub_orgs_are_unique_case_folded() -> None:
    seen: dict[str, str] = {}
    for entry in kb.publisher_base().publishers:
        for org in entry.hub_orgs:
            folded = org.casefold()
            assert folded not in seen, f"{org} is claimed by {seen.get(folded)} and {entry.key}"
            seen[folded] = entry.key


def test_countries_are_iso_alpha2() -> None:
    assert len(ISO_ALPHA2) == 249
    for entry in kb.publisher_base().publishers:
        assert entry.country in ISO_ALPHA2, entry.key


@pytest.mark.parametrize(
    ("key", "country"),
    [
        ("meta", "US"),
        ("mistral", "FR"),
        ("zhipu", "CN"),
        ("tii", "AE"),
        ("cohere", "CA"),
        ("deepseek", "CN"),
        ("alibaba-qwen", "CN"),
        ("stability", "GB"),
        ("lg", "KR"),
        ("sarvam", "IN"),
        ("ai21", "IL"),
        ("bigscience", "FR"),
    ],
)
def test_publisher_countries(key: str, country: str) -> None:
    entry = kb.publisher_by_key(key)
    assert entry is not None
    assert entry.country == country


def test_publisher_review_metadata() -> None:
    for entry in kb.publisher_base().publishers:
        assert entry.last_reviewed == "2026-11-21", entry.key
        assert entry.evidence_url.startswith("https://"), entry.key
        if entry.evidence in ("P", "K"):
            # No licence or terms to point at: the org's own Hub page.
            assert entry.evidence_url.casefold() in {
                f"https://huggingface.co/{org}".casefold() for org in entry.hub_orgs
            }, entry.key


def test_publisher_notes_carry_the_known_caveats() -> None:
    zhipu = kb.publisher_by_key("zhipu")
    meta = kb.publisher_by_key("meta")
    bigscience = kb.publisher_by_key("bigscience")
    assert zhipu is not None and meta is not None and bigscience is not None
    assert "Entity List" in (zhipu.notes or "") and "2025-01-16" in (zhipu.notes or "")
    assert "Meta Platforms Ireland" in (meta.notes or "")
    assert "Multi-national" in (bigscience.notes or "")


@pytest.mark.parametrize(
    ("org", "key"),
    [
        ("meta-llama", "meta"),
        ("facebook", "meta"),
        ("thudm", "zhipu"),
        ("zai-org", "zhipu"),
        ("CohereForAI", "cohere"),
        ("coherelabs", "cohere"),
        ("Qwen", "alibaba-qwen"),
        ("OpenGVLab", "shanghai-ai-lab"),
        ("HuggingFaceTB", "huggingface"),
    ],
)
def test_publisher_for_org(org: str, key: str) -> None:
    entry = kb.publisher_for_org(org)
    assert entry is not None
    assert entry.key == key


def test_look_alike_orgs_are_unknown() -> None:
    assert kb.publisher_for_org("deepseek-ai-2") is None
    assert kb.publisher_for_org("meta-llama-official") is None


# ---------------------------------------------------------------- families


def test_multimodal_model_types_are_model_types() -> None:
    for entry in kb.family_base().families:
        assert set(entry.multimodal_model_types) <= set(entry.model_types), entry.key


def test_min_special_is_reachable() -> None:
    for entry in kb.family_base().families:
        if entry.tokenizer.special_tokens:
            assert 1 <= entry.tokenizer.min_special <= len(entry.tokenizer.special_tokens), (
                entry.key
            )


@pytest.mark.parametrize("key", ["llama2", "llama3", "yi", "mistral", "deepseek-v3"])
def test_shared_architectures_are_not_exclusive(key: str) -> None:
    assert family(key).exclusive is False


@pytest.mark.parametrize(
    "key",
    ["qwen1", "qwen2", "gemma", "gemma3", "glm", "granite", "bloom", "gpt-oss", "falcon", "phi3"],
)
def test_publisher_only_architectures_are_exclusive(key: str) -> None:
    assert family(key).exclusive is True


def test_exclusive_model_types_belong_to_one_publisher() -> None:
    families = kb.family_base().families
    for entry in families:
        if not entry.exclusive:
            continue
        for other in families:
            if other.publisher == entry.publisher:
                continue
            assert not set(entry.model_types) & set(other.model_types), (entry.key, other.key)
            assert not set(entry.architectures) & set(other.architectures), (entry.key, other.key)


def test_llama_model_type_is_resolved_by_the_tokenizer() -> None:
    assert {"llama2", "llama3", "yi"} <= families_for_model_type("llama")
    assert 128256 in family("llama3").tokenizer.vocab_sizes
    assert 32000 in family("llama2").tokenizer.vocab_sizes
    assert 64000 in family("yi").tokenizer.vocab_sizes
    assert {"<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>"} <= set(
        family("llama3").tokenizer.special_tokens
    )
    assert "mllama" in family("llama3").multimodal_model_types
    assert "llama4" in family("llama4").multimodal_model_types


def test_deepseek_tokens_use_fullwidth_bars() -> None:
    tokens = family("deepseek-v3").tokenizer.special_tokens
    assert "<\uff5cbegin\u2581of\u2581sentence\uff5c>" in tokens
    assert 129280 in family("deepseek-v3").tokenizer.vocab_sizes


def test_signatures_do_not_match_other_publishers_tokens() -> None:
    families = [f for f in kb.family_base().families if f.tokenizer.special_tokens]
    for entry in families:
        own = set(entry.tokenizer.special_tokens)
        for other in families:
            if other.publisher != entry.publisher:
                assert not signature_matches(other, own), (
                    f"{entry.key}'s tokens satisfy {other.key}'s signature"
                )


# ---------------------------------------------------------------- known models


@pytest.mark.parametrize(
    ("repo_id", "licence", "family_key", "multimodal"),
    [
        ("meta-llama/Llama-3.2-11B-Vision-Instruct", "llama3.2", "llama3", True),
        ("meta-llama/Llama-3.2-90B-Vision", "llama3.2", "llama3", True),
        ("meta-llama/Llama-3.2-1B", "llama3.2", "llama3", False),
        ("meta-llama/Llama-2-7b-chat-hf", "llama2", "llama2", False),
        ("meta-llama/Meta-Llama-3-8B-Instruct", "llama3", "llama3", False),
        ("meta-llama/Meta-Llama-3.1-70B", "llama3.1", "llama3", False),
        ("meta-llama/Llama-3.1-8B-Instruct", "llama3.1", "llama3", False),
        ("meta-llama/Llama-3.3-70B-Instruct", "llama3.3", "llama3", False),
        ("meta-llama/Llama-4-Scout-17B-16E-Instruct", "llama4", "llama4", True),
        ("google/gemma-4-E2B", "apache-2.0", "gemma4", True),
        ("google/gemma-4-31B-it", "apache-2.0", "gemma4", True),
        ("google/gemma-2b-it", "gemma", "gemma", False),
        ("google/gemma-2-9b-it", "gemma", "gemma2", False),
        ("google/gemma-3-27b-it", "gemma", "gemma3", True),
        ("google/gemma-3-1b-it", "gemma", "gemma3", False),
        ("Qwen/Qwen-1_8B-Chat", "tongyi-qianwen-research", "qwen1", False),
        ("Qwen/Qwen-72B", "tongyi-qianwen", "qwen1", False),
        ("Qwen/Qwen2-72B-Instruct", "tongyi-qianwen", "qwen2", False),
        ("Qwen/Qwen2-7B-Instruct", "apache-2.0", "qwen2", False),
        ("Qwen/Qwen2.5-3B-Instruct", "qwen-research", "qwen2", False),
        ("Qwen/Qwen2.5-Coder-3B", "qwen-research", "qwen2", False),
        ("Qwen/Qwen2.5-72B-Instruct", "qwen", "qwen2", False),
        ("Qwen/Qwen2.5-7B", "apache-2.0", "qwen2", False),
        ("Qwen/Qwen2.5-32B-Instruct", "apache-2.0", "qwen2", False),
        ("Qwen/Qwen3-30B-A3B", "apache-2.0", "qwen2", False),
        ("Qwen/Qwen3.5-35B-A3B", "apache-2.0", "qwen2", True),
        ("deepseek-ai/DeepSeek-V3", "deepseek", "deepseek-v3", False),
        ("deepseek-ai/DeepSeek-V3-Base", "deepseek", "deepseek-v3", False),
        ("deepseek-ai/DeepSeek-V3-0324", "mit", "deepseek-v3", False),
        ("deepseek-ai/DeepSeek-V3.1", "mit", "deepseek-v3", False),
        ("deepseek-ai/DeepSeek-R1", "mit", "deepseek-v3", False),
        ("deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "mit", "llama3", False),
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "mit", "qwen2", False),
        ("deepseek-ai/DeepSeek-V2-Lite", "deepseek", "deepseek-v2", False),
        ("mistralai/Mistral-7B-Instruct-v0.3", "apache-2.0", "mistral", False),
        ("mistralai/Mixtral-8x22B-v0.1", "apache-2.0", "mistral", False),
        ("mistralai/Mistral-Large-Instruct-2411", "mrl", "mistral", False),
        ("mistralai/Ministral-8B-Instruct-2410", "mrl", "mistral-tekken", False),
        ("mistralai/Codestral-22B-v0.1", "mnpl", "mistral", False),
        ("mistralai/Mistral-Nemo-Instruct-2407", "apache-2.0", "mistral-tekken", False),
        ("mistralai/Devstral-Small-2507", "apache-2.0", "mistral-tekken", False),
        ("microsoft/Phi-3-mini-4k-instruct", "mit", "phi3", False),
        ("microsoft/phi-4", "mit", "phi4", False),
        ("THUDM/chatglm3-6b", "chatglm", "glm", False),
        ("THUDM/glm-4-9b-chat", "chatglm", "glm", False),
        ("THUDM/GLM-4-9B-0414", "mit", "glm", False),
        ("zai-org/GLM-4.5-Air", "mit", "glm", False),
        ("tiiuae/falcon-180B-chat", "falcon-180b", "falcon", False),
        ("tiiuae/falcon-7b-instruct", "apache-2.0", "falcon", False),
        ("tiiuae/Falcon3-7B-Instruct", "falcon-llm-license", "falcon", False),
        ("tiiuae/falcon-11B", "falcon-llm-license", "falcon", False),
        ("bigscience/bloom", "bigscience-bloom-rail-1.0", "bloom", False),
        ("ibm-granite/granite-3.1-1b-a400m-instruct", "apache-2.0", "granite", False),
        ("openai/gpt-oss-120b", "apache-2.0", "gpt-oss", False),
        ("CohereLabs/c4ai-command-r-plus", "cohere-c4ai", "command-r", False),
        ("allenai/OLMo-2-1124-7B", "apache-2.0", "olmo", False),
        ("moonshotai/Kimi-K2-Instruct", "kimi-modified-mit", "kimi", False),
    ],
)
def test_known_model_picks_the_right_entry(
    repo_id: str, licence: str, family_key: str, multimodal: bool
) -> None:
    entry = kb.known_model(repo_id)
    assert entry is not None, repo_id
    assert (entry.licence, entry.family, entry.multimodal) == (licence, family_key, multimodal)


@pytest.mark.parametrize(
    ("repo_id", "licence"),
    [
        ("nvidia/Llama-3_3-Nemotron-Super-49B-v1", "nvidia-open-model"),
        ("stabilityai/stable-diffusion-xl-base-1.0", "openrail++"),
        ("xai-org/grok-2", "grok2-community"),
        ("CohereForAI/aya-expanse-8b", "cohere-c4ai"),
    ],
)
def test_known_model_without_family(repo_id: str, licence: str) -> None:
    entry = kb.known_model(repo_id)
    assert entry is not None
    assert entry.licence == licence


def test_known_model_is_case_insensitive() -> None:
    for repo_id in ("QWEN/QWEN2.5-3B-INSTRUCT", "qwen/qwen2.5-3b-instruct"):
        entry = kb.known_model(repo_id)
        assert entry is not None and entry.licence == "qwen-research"
    entry = kb.known_model("META-LLAMA/llama-3.2-11b-vision-instruct")
    assert entry is not None and entry.multimodal


@pytest.mark.parametrize(
    "repo_id",
    [
        "someone/Llama-3.2-1B",  # a copy under another org is not an official release
        "deepseek-ai-2/DeepSeek-R1",
        "Qwen/Qwen-Image",  # not a first-generation Qwen
        "Qwen/Qwen1.5-7B",  # per-size licences not encoded: the card decides
    ],
)
def test_unlisted_repos_are_unknown(repo_id: str) -> None:
    assert kb.known_model(repo_id) is None


def test_every_pattern_is_reachable() -> None:
    """A later pattern must not be swallowed whole by an earlier, broader one."""
    models = kb.model_base().models
    for index, entry in enumerate(models):
        example = re.sub(r"\*", "", entry.pattern.replace("?", "x"))
        assert fnmatch.fnmatchcase(example.casefold(), entry.pattern.casefold())
        assert kb.known_model(example) == entry, (
            f"{entry.pattern} (#{index}) is shadowed by {kb.known_model(example)}"
        )


# ---------------------------------------------------------------- signatures vs real files


def test_qwen35_corpus_config_is_qwen2() -> None:
    config = load_json("bryce-hoehn__Qwen3.5-18B-REAP-A3B-Coding/config.json")
    qwen2 = family("qwen2")
    assert config["model_type"] == "qwen3_5_moe_text"
    assert families_for_model_type(config["model_type"]) == {"qwen2"}
    assert set(config["architectures"]) <= set(qwen2.architectures)
    assert config["vocab_size"] in qwen2.tokenizer.vocab_sizes
    assert config["model_type"] not in qwen2.multimodal_model_types  # a text-only export


def test_qwen1_corpus_config_is_qwen1() -> None:
    config = load_json("Qwen__Qwen-72B/config.json")
    qwen1 = family("qwen1")
    assert families_for_model_type(config["model_type"]) == {"qwen1"}
    assert set(config["architectures"]) <= set(qwen1.architectures)
    assert config["vocab_size"] in qwen1.tokenizer.vocab_sizes


def test_granite_corpus_files_satisfy_the_granite_signature() -> None:
    config = load_json("ibm-granite__granite-3.1-1b-a400m-instruct/config.json")
    tokens = tokenizer_tokens(
        load_json("ibm-granite__granite-3.1-1b-a400m-instruct/tokenizer_config.json")
    )
    granite = family("granite")
    assert families_for_model_type(config["model_type"]) == {"granite"}
    assert set(config["architectures"]) <= set(granite.architectures)
    assert config["vocab_size"] in granite.tokenizer.vocab_sizes
    assert signature_matches(granite, tokens)
    others = [f.key for f in kb.family_base().families if f.key != "granite"]
    assert not [key for key in others if signature_matches(family(key), tokens)]


def test_gemma_corpus_config_is_gemma() -> None:
    config = load_json("google__gemma-2b-it/config.json")
    gemma = family("gemma")
    assert families_for_model_type(config["model_type"]) == {"gemma"}
    assert set(config["architectures"]) <= set(gemma.architectures)
    assert config["vocab_size"] in gemma.tokenizer.vocab_sizes


def test_bloom_corpus_config_is_bloom() -> None:
    config = load_json("bigscience__bloom/config.json")
    bloom = family("bloom")
    assert families_for_model_type(config["model_type"]) == {"bloom"}
    assert set(config["architectures"]) <= set(bloom.architectures)
    assert config["vocab_size"] in bloom.tokenizer.vocab_sizes


def test_phi3_corpus_config_is_microsoft() -> None:
    config = load_json("YouriLalain__3PRYMMAL-PHI3-3B-SLERP/config.json")
    phi3 = family("phi3")
    assert families_for_model_type(config["model_type"]) == {"phi3", "phi4"}
    assert set(config["architectures"]) <= set(phi3.architectures)
    assert config["vocab_size"] in phi3.tokenizer.vocab_sizes
    assert config["vocab_size"] not in family("phi4").tokenizer.vocab_sizes


@pytest.mark.parametrize(
    "name",
    [
        "xap__Meta-Llama3.1-8B-Instruct-assessment/config.json",
        "IrfanUruchi__Llama-3.1-8B-Computer-Networks-LLM/config.json",
    ],
)
def test_llama31_corpus_configs_are_llama3_by_vocab(name: str) -> None:
    config = load_json(name)
    candidates = families_for_model_type(config["model_type"])
    assert "llama3" in candidates
    assert set(config["architectures"]) <= set(family("llama3").architectures)
    by_vocab = {k for k in candidates if config["vocab_size"] in family(k).tokenizer.vocab_sizes}
    assert by_vocab == {"llama3"}
    assert config["bos_token_id"] == 128000


def test_devstral_native_params_match_tekken_vocab() -> None:
    params = load_json("mistralai__Devstral-Small-2507/params.json")
    assert params["vocab_size"] in family("mistral-tekken").tokenizer.vocab_sizes
    assert params["vocab_size"] not in family("mistral").tokenizer.vocab_sizes


def test_deepseek_v3_weights_doc_names_the_model_type() -> None:
    text = (CORPUS / "deepseek-ai__DeepSeek-V3" / "README_WEIGHTS.md").read_text(encoding="utf-8")
    model_types = set(re.findall(r"model_type\*\*: .*?`(\w+)`", text))
    assert model_types == {"deepseek_v3"}
    assert families_for_model_type("deepseek_v3") == {"deepseek-v3"}


def test_falcon_180b_generation_config_uses_falcon_endoftext() -> None:
    config = load_json("tiiuae__falcon-180B-chat/generation_config.json")
    # "<|endoftext|>" is id 11 in the Falcon tokenizer, after the >>TITLE<< ... specials.
    assert config["bos_token_id"] == config["eos_token_id"] == 11
    falcon = family("falcon")
    assert ">>TITLE<<" in falcon.tokenizer.special_tokens
    assert 65024 in falcon.tokenizer.vocab_sizes


# ---------------------------------------------------------------- licences, derivatives, ties

# Families whose official licences are not recorded, with the reason.
LICENCES_UNKNOWN = {
    "internlm": "licences.yaml has no entry for the InternLM model licences",
}


@pytest.mark.parametrize("family", [f.key for f in kb.family_base().families])
def test_every_family_names_its_licences(family: str) -> None:
    entry = kb.family_by_key(family)
    assert entry is not None
    assert bool(entry.licences) != (family in LICENCES_UNKNOWN)


def test_unknown_family_licence_is_refused() -> None:
    data = load_yaml("families.yaml")
    data["families"][0]["licences"] = ["no-such-licence"]
    with pytest.raises(ValueError, match="unknown licence keys"):
        kb.FamilyBase.model_validate(data)


def test_built_on_must_name_a_family() -> None:
    data = load_yaml("models.yaml")
    data["models"][0]["built_on"] = ["no-such-family"]
    with pytest.raises(ValueError, match="unknown families"):
        kb.ModelBase.model_validate(data)


@pytest.mark.parametrize(
    ("repo_id", "built_on"),
    [
        ("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", ("llama3",)),
        ("deepseek-ai/DeepSeek-R1-Distill-Llama-70B", ("llama3",)),
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", ("qwen2",)),
        ("deepseek-ai/DeepSeek-R1-0528-Qwen3-8B", ("qwen2",)),
        ("deepseek-ai/DeepSeek-R1", ()),
    ],
)
def test_official_distillations_name_the_family_they_are_built_on(
    repo_id: str, built_on: tuple[str, ...]
) -> None:
    entry = kb.known_model(repo_id)
    assert entry is not None and entry.built_on == built_on


@pytest.mark.parametrize(
    ("repo_id", "family", "licence"),
    [
        ("mistralai/Mistral-Large-3-675B-Instruct-2512", "mistral-tekken", "apache-2.0"),
        ("mistralai/Magistral-Small-2506", "mistral-tekken", "apache-2.0"),
        ("google/gemma-4-E4B-it", "gemma4", "apache-2.0"),
        ("deepseek-ai/DeepSeek-V3.2-Exp", "deepseek-v3", "mit"),
        ("moonshotai/Kimi-K2-Instruct", "kimi", "kimi-modified-mit"),
    ],
)
def test_this_years_releases_are_known(repo_id: str, family: str, licence: str) -> None:
    entry = kb.known_model(repo_id)
    assert entry is not None and (entry.family, entry.licence) == (family, licence)


@pytest.mark.parametrize(
    ("model_type", "family"),
    [
        ("deepseek_v4", "deepseek-v4"),
        ("deepseek_v32", "deepseek-v3"),
        ("ministral3", "mistral-tekken"),
        ("kimi_k2", "kimi"),
        ("kimi_k25", "kimi"),
        ("glm4_moe", "glm"),
        ("glm_moe_dsa", "glm"),
        ("qwen3_next", "qwen2"),
        ("qwen3_moe", "qwen2"),
        ("llama4", "llama4"),
        ("gemma4", "gemma4"),
    ],
)
def test_new_model_types_have_a_family(model_type: str, family: str) -> None:
    owners = [f.key for f in kb.family_base().families if model_type in f.model_types]
    assert owners == [family]
