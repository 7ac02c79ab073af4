"""The licence knowledge base: consistent, and able to name real licence texts as found in the wild.

The table tests run identify() on verbatim copies of the corpus licence texts
(tests/data/licences) and on the ways LICENSE files get mangled: rewrapped, flattened to one
paragraph, prefixed with a company header, lightly edited.
"""

from __future__ import annotations

import re
import textwrap
from collections import Counter
from importlib import resources

import pytest

from provscan.collectors.licence_text import identify, tokens
from provscan.knowledge.base import LicenceEntry, licence_base, licence_by_key, reference_text
from tests.conftest import TESTS

DATA = TESTS / "data" / "licences"
KB = licence_base()
PLACEHOLDER_IDS = {"other", "unknown"}

# Corpus file -> the match identify() must report for each kind, and nothing else.
EXPECTED: dict[str, dict[str, str]] = {
    "llama-2-community-license.txt": {"licence": "llama2"},
    "llama-2-acceptable-use-policy.md": {"aup": "llama2-aup"},
    # The file as published carries the Meta Llama 3 AUP after the licence.
    "llama-3-community-license.txt": {"licence": "llama3", "aup": "llama3-aup"},
    "llama-3-acceptable-use-policy.md": {"aup": "llama3-aup"},
    "llama-3.1-community-license.txt": {"licence": "llama3.1"},
    "llama-3.1-acceptable-use-policy.md": {"aup": "llama3.1-aup"},
    "llama-3.2-community-license.txt": {"licence": "llama3.2"},
    "llama-3.2-acceptable-use-policy.md": {"aup": "llama3.2-aup"},
    "llama-3.3-community-license.txt": {"licence": "llama3.3"},
    "llama-3.3-acceptable-use-policy.md": {"aup": "llama3.3-aup"},
    "llama-4-community-license.txt": {"licence": "llama4"},
    "tongyi-qianwen-license.txt": {"licence": "tongyi-qianwen"},
    "tongyi-qianwen-research-license.txt": {"licence": "tongyi-qianwen-research"},
    "deepseek-license-model.txt": {"licence": "deepseek"},
    "apache-2.0__THUDM-GLM-4.txt": {"licence": "apache-2.0"},
    "gpt-oss-usage-policy.txt": {"aup": "gpt-oss-usage-policy"},
    # The terms quote the NOTICE text they require.
    "gemma-terms-of-use.md": {"licence": "gemma", "notice": "gemma-notice"},
    "gemma-prohibited-use-policy.md": {"aup": "gemma-prohibited-use-policy"},
}

# Keys other code looks up by name.
REQUIRED_KEYS = [
    "llama2",
    "llama2-aup",
    "llama3",
    "llama3-aup",
    "llama3.1",
    "llama3.1-aup",
    "llama3.2",
    "llama3.2-aup",
    "llama3.3",
    "llama3.3-aup",
    "llama4",
    "llama4-aup",
    "gemma",
    "gemma-prohibited-use-policy",
    "gemma-notice",
    "tongyi-qianwen",
    "tongyi-qianwen-research",
    "qwen",
    "qwen-research",
    "deepseek",
    "mrl",
    "mnpl",
    "falcon-180b",
    "falcon-llm-license",
    "nvidia-open-model",
    "bigscience-bloom-rail-1.0",
    "bigscience-openrail-m",
    "bigcode-openrail-m",
    "creativeml-openrail-m",
    "openrail",
    "openrail++",
    "chatglm",
    "cohere-c4ai",
    "stability-community",
    "exaone",
    "kimi-modified-mit",
    "minimax-h3",
    "grok2-community",
    "jamba-open-model",
    "gpt-oss-usage-policy",
    "apache-2.0",
    "mit",
    "cc-by-nc-4.0",
]

HEADER = (
    "Copyright 2025 Acme Corp. All rights reserved.\n"
    "This model is distributed by Acme under the following terms:\n\n"
)
UNRELATED = {
    "english": (
        "The committee met on a rainy Tuesday to discuss the harbour renovation. After a long "
        "debate about budgets, timber and the migrating birds that nest under the old pier, "
        "they agreed to postpone the vote until the engineers had finished their survey."
    ),
    "readme": (
        "# tiny-demo-model\n\nA 4-layer transformer fine-tuned for sentiment analysis.\n\n"
        "## Usage\n\n```python\nfrom transformers import pipeline\n"
        'pipe = pipeline("text-classification", model="acme/tiny-demo-model")\n```\n\n'
        "## License\n\nThis model is released under the Llama 3.1 Community License Agreement; "
        "see LICENSE. Built with Llama.\n"
    ),
}


def read(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def found(text: str) -> dict[str, str]:
    return {m.kind: m.key for m in identify(text).matches}


def entry(key: str) -> LicenceEntry:
    found_entry = licence_by_key(key)
    assert found_entry is not None, key
    return found_entry


def normalised(text: str) -> str:
    return " " + " ".join(tokens(text)) + " "


def occurs(phrase: str, text: str) -> bool:
    return normalised(phrase) in normalised(text)


# ---------------------------------------------------------------- variants of a licence file


def wrapped(text: str) -> str:
    return textwrap.fill(
        " ".join(text.split()), width=60, break_long_words=False, break_on_hyphens=False
    )


def one_paragraph(text: str) -> str:
    return " ".join(text.split())


def with_header(text: str) -> str:
    return HEADER + text


def edited(text: str, protected: set[str]) -> str:
    """A word dropped, a word changed and a typo, spread over the text and away from markers.

    A short text (the gpt-oss policy is 37 words) takes a single typo: each edit removes up
    to five shingles, and three of them would be a large share of so few.
    """
    parts = re.split(r"(\s+)", text)
    candidates = [
        i
        for i, part in enumerate(parts)
        if len(part) > 4 and part.isalpha() and not set(tokens(part)) & protected
    ]
    edits = [typo] if len(tokens(text)) < 300 else [drop, change, typo]
    for n, edit in enumerate(edits, start=1):
        i = candidates[n * len(candidates) // (len(edits) + 1)]
        parts[i] = edit(parts[i])
    return "".join(parts)


def drop(word: str) -> str:
    return ""


def change(word: str) -> str:
    return "provscan"


def typo(word: str) -> str:
    return word[0] + word[2] + word[1] + word[3:]


def marker_words(expected: dict[str, str]) -> set[str]:
    return {w for key in expected.values() for m in entry(key).markers for w in tokens(m)}


VARIANTS = {
    "verbatim": lambda text, expected: text,
    "wrapped-60": lambda text, expected: wrapped(text),
    "one-paragraph": lambda text, expected: one_paragraph(text),
    "company-header": lambda text, expected: with_header(text),
    "small-edits": lambda text, expected: edited(text, marker_words(expected)),
}


# ---------------------------------------------------------------- the knowledge base itself


def test_corpus_copies_cover_the_table() -> None:
    assert sorted(p.name for p in DATA.iterdir() if p.name != "README.md") == sorted(EXPECTED)


def test_every_hub_id_maps_to_one_entry_of_the_same_name() -> None:
    mapped = Counter(h for e in KB.licences for h in e.hub_ids)
    assert len(KB.hub_ids) == len(set(KB.hub_ids))
    assert set(mapped) == set(KB.hub_ids) - PLACEHOLDER_IDS
    assert max(mapped.values()) == 1
    assert all(h == e.key for e in KB.licences for h in e.hub_ids)


def test_required_keys_exist() -> None:
    keys = {e.key for e in KB.licences}
    assert set(REQUIRED_KEYS) <= keys
    assert entry("gemma-notice").kind == "notice"
    assert entry("gpt-oss-usage-policy").kind == "aup"
    assert all(entry(k).kind == "aup" for k in REQUIRED_KEYS if k.endswith("-aup"))


def test_names_are_unambiguous() -> None:
    """An alias, hub id, SPDX id or key names one entry only (compared case-folded)."""
    owners: dict[str, set[str]] = {}
    for e in KB.licences:
        for name in (e.key, e.spdx, *e.hub_ids, *e.aliases):
            if name is not None:
                owners.setdefault(name.casefold(), set()).add(e.key)
    assert {name: keys for name, keys in owners.items() if len(keys) > 1} == {}


def test_aup_keys_name_aup_entries() -> None:
    for e in KB.licences:
        if e.terms.aup is not None:
            assert entry(e.terms.aup).kind == "aup", e.key


def test_reference_texts_exist_and_are_all_used() -> None:
    folder = resources.files("provscan") / "knowledge" / "licence_texts"
    on_disk = {p.name for p in folder.iterdir() if p.name.endswith(".txt")}
    used = {e.text for e in KB.licences if e.text is not None}
    assert used == on_disk
    assert all(reference_text(name).strip() for name in used)


def test_every_entry_has_a_source() -> None:
    assert all(e.source.strip() and e.name.strip() for e in KB.licences)


@pytest.mark.parametrize("e", [e for e in KB.licences if e.text], ids=lambda e: e.key)
def test_markers_and_quotes_occur_in_the_reference_text(e: LicenceEntry) -> None:
    text = reference_text(e.text or "")
    quoted = [
        e.terms.attribution_notice,
        e.terms.output_restriction,
        *(t.clause for t in e.terms.thresholds),
    ]
    for phrase in [*e.markers, *filter(None, quoted)]:
        assert occurs(phrase, text), phrase


@pytest.mark.parametrize("e", KB.licences, ids=lambda e: e.key)
def test_every_entry_identifies_itself(e: LicenceEntry) -> None:
    """Its reference text, or its markers alone, identify it and no sibling listed before it."""
    text = reference_text(e.text) if e.text else "\n".join(e.markers)
    assert found(text).get(e.kind) == e.key


# ---------------------------------------------------------------- identification table


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", EXPECTED)
def test_identifies_corpus_text(name: str, variant: str) -> None:
    expected = EXPECTED[name]
    text = VARIANTS[variant](read(name), expected)
    assert found(text) == expected


def test_small_edits_do_change_the_text() -> None:
    for name, expected in EXPECTED.items():
        text = read(name)
        assert tokens(edited(text, marker_words(expected))) != tokens(text), name


# ---------------------------------------------------------------- negatives and siblings


@pytest.mark.parametrize("text", UNRELATED.values(), ids=UNRELATED.keys())
def test_unrelated_text_is_no_licence(text: str) -> None:
    assert found(text) == {}


def test_version_markers_guard_against_a_rewritten_version() -> None:
    """Llama 3.1 with every "3.1" turned into "9.9" is 95% like 3.2 and 3.3, yet none of them."""
    text = read("llama-3.1-community-license.txt").replace("3.1", "9.9")
    assert "licence" not in found(text)


def test_a_sibling_title_does_not_outweigh_the_body() -> None:
    """Llama 3.2 retitled as 3.1 keeps one 3.2 marker and matches 3.2 more closely than 3.1."""
    text = read("llama-3.2-community-license.txt").replace(
        "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT", "LLAMA 3.1 COMMUNITY LICENSE AGREEMENT"
    )
    assert found(text)["licence"] == "llama3.2"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Creative Commons Attribution-NonCommercial 4.0 International Public License",
            "cc-by-nc-4.0",
        ),
        (
            "Creative Commons Attribution-NonCommercial 4.0 International Public License "
            "with Acceptable Use Addendum",
            "cohere-c4ai",
        ),
        (read("tongyi-qianwen-research-license.txt"), "tongyi-qianwen-research"),
        ("GNU LESSER GENERAL PUBLIC LICENSE\nVersion 3, 29 June 2007\n", "lgpl-3.0"),
        ("GNU GENERAL PUBLIC LICENSE\nVersion 3, 29 June 2007\n", "gpl-3.0"),
    ],
    ids=["cc-by-nc", "cohere-addendum", "tongyi-research", "lgpl-3", "gpl-3"],
)
def test_the_more_specific_sibling_wins(text: str, expected: str) -> None:
    assert found(text)["licence"] == expected


# ---------------------------------------------------------------- terms


EU_MULTIMODAL = ["llama3.2", "llama3.2-aup", "llama3.3", "llama3.3-aup", "llama4", "llama4-aup"]


@pytest.mark.parametrize("key", EU_MULTIMODAL)
def test_llama_eu_clause_for_multimodal_models(key: str) -> None:
    (territorial,) = entry(key).terms.territorial
    assert territorial.territories == ("EU",)
    assert territorial.scope == "multimodal"
    assert territorial.where == "Acceptable Use Policy"
    assert "principal place of business in, the European Union" in territorial.clause


@pytest.mark.parametrize("version", ["3.2", "3.3"])
def test_llama_eu_clause_is_quoted_from_the_policy(version: str) -> None:
    policy = read(f"llama-{version}-acceptable-use-policy.md")
    assert occurs(entry(f"llama{version}").terms.territorial[0].clause, policy)


def test_minimax_excludes_four_territories_for_all_models() -> None:
    (territorial,) = entry("minimax-h3").terms.territorial
    assert set(territorial.territories) == {"EU", "GB", "KR", "US"}
    assert territorial.scope == "all"


@pytest.mark.parametrize(
    ("key", "metric", "value"),
    [
        *((k, "monthly_active_users", 700_000_000) for k in ("llama2", "llama3", "llama3.1")),
        *((k, "monthly_active_users", 700_000_000) for k in ("llama3.2", "llama3.3", "llama4")),
        ("tongyi-qianwen", "monthly_active_users", 100_000_000),
        ("qwen", "monthly_active_users", 100_000_000),
        ("stability-community", "annual_revenue_usd", 1_000_000),
        ("kimi-modified-mit", "monthly_active_users", 100_000_000),
        ("kimi-modified-mit", "monthly_revenue_usd", 20_000_000),
    ],
)
def test_thresholds(key: str, metric: str, value: int) -> None:
    assert (metric, value) in {(t.metric, t.value) for t in entry(key).terms.thresholds}


@pytest.mark.parametrize(
    ("key", "field", "expected"),
    [
        ("cc-by-nc-4.0", "commercial", "no"),
        ("cohere-c4ai", "commercial", "no"),
        ("tongyi-qianwen-research", "commercial", "no"),
        ("mrl", "commercial", "no"),
        ("mnpl", "commercial", "no"),
        ("apache-2.0", "commercial", "yes"),
        ("mit", "commercial", "yes"),
        ("stability-community", "commercial", "conditional"),
        ("deepseek", "governing_law", "CN"),
        ("tongyi-qianwen", "governing_law", "CN"),
        ("chatglm", "governing_law", "CN"),
        ("llama3.1", "governing_law", "US-CA"),
        ("gemma", "governing_law", "US-CA"),
        ("llama3.1", "aup", "llama3.1-aup"),
        ("llama4", "aup", "llama4-aup"),
        ("gemma", "aup", "gemma-prohibited-use-policy"),
        ("apache-2.0", "aup", None),
        ("llama3", "attribution_display", "Built with Meta Llama 3"),
        ("llama3.1", "attribution_display", "Built with Llama"),
        ("qwen", "attribution_display", "Built with Qwen"),
        ("llama3", "naming_prefix", "Llama 3"),
        ("llama3.3", "naming_prefix", "Llama"),
        ("llama3.1", "output_restriction", None),
        ("gemma", "flow_down", True),
        ("deepseek", "remote_restriction", True),
        ("gpl-3.0", "copyleft", "strong"),
        ("agpl-3.0", "copyleft", "network"),
    ],
)
def test_terms(key: str, field: str, expected: object) -> None:
    assert getattr(entry(key).terms, field) == expected


@pytest.mark.parametrize("key", ["llama2", "llama3", "tongyi-qianwen"])
def test_output_restriction_is_the_improve_other_models_clause(key: str) -> None:
    assert "to improve any other large language model (excluding" in (
        entry(key).terms.output_restriction or ""
    )
