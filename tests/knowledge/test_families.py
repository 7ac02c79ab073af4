"""Every family in families.yaml is told apart from the others by its own files.

tests/data/families/<key>/ holds a release's config.json and tokenizer files, trimmed to the
fields the family decision reads (README.md there names each release). Each folder must give
its own family, never a family of another publisher; the tokenizer alone must never point
at another publisher either. Families whose files only tie with a sibling of the same
publisher still give that publisher.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.models import build_metadata_model, write_gguf
from provscan.knowledge.base import family_base, family_by_key
from provscan.pipeline import ScanOptions, scan
from provscan.report import OriginFacts, Report, StepStatus
from tests.conftest import TESTS

FAMILIES = TESTS / "data" / "families"
KEYS = [family.key for family in family_base().families]
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "special_tokens_map.json")

# Families with no distinctive special tokens: told by the config alone (a model_type /
# architecture shared with other publishers' models, and the vocabulary size), at the
# confidence given here. Their tokenizer alone must still never point at another publisher.
NO_SIGNATURE = {
    # LlamaForCausalLM with the SentencePiece defaults "<s>", "</s>", "<unk>" and vocab
    # 32000: Mistral 7B v0.1 shares everything but its model_type, so only low confidence.
    "llama2": ("low", "no special tokens of its own; vocab 32000 is Mistral 7B v0.1's too"),
    # Yi's chat tokens are Qwen's and Phi-4's; model_type llama with vocab 64000, which no
    # other family uses, is medium evidence.
    "yi": ("medium", "chat tokens shared with Qwen and Phi-4; only the vocab size is Yi's"),
}


def _origin(report: Report) -> OriginFacts:
    step = report.step("origin")
    assert step is not None and step.status is StepStatus.COMPLETED, step
    assert report.origin is not None
    return report.origin


def _scan_folder(source: Path, tmp_path: Path, only: tuple[str, ...] | None = None) -> Report:
    folder = tmp_path / "src"
    folder.mkdir()
    for file in source.iterdir():
        if file.name != "README.md" and (only is None or file.name in only):
            (folder / file.name).write_bytes(file.read_bytes())
    model = build_metadata_model(tmp_path / "model", folder, card=False)
    return scan(str(model), ScanOptions(hash_workers=1))


def test_every_family_has_reference_files() -> None:
    assert sorted(p.name for p in FAMILIES.iterdir() if p.is_dir()) == sorted(KEYS)
    readme = (FAMILIES / "README.md").read_text(encoding="utf-8")
    for key in KEYS:
        assert f"| `{key}` |" in readme, f"{key}: no source recorded in README.md"


@pytest.mark.parametrize("key", KEYS)
def test_reference_files_give_their_family(key: str, tmp_path: Path) -> None:
    origin = _origin(_scan_folder(FAMILIES / key, tmp_path))
    assert origin.family == key, [s.model_dump() for s in origin.family_signals]
    if key in NO_SIGNATURE:
        assert origin.family_confidence == NO_SIGNATURE[key][0]
    else:
        assert origin.family_confidence in ("medium", "high")
    entry = family_by_key(key)
    assert entry is not None
    others = {
        family_by_key(s.family).publisher for s in origin.family_signals if s.strength == "strong"
    }  # type: ignore[union-attr]
    assert others <= {entry.publisher}, f"strong evidence for another publisher: {others}"


@pytest.mark.parametrize("key", KEYS)
def test_tokenizer_alone_never_points_at_another_publisher(key: str, tmp_path: Path) -> None:
    origin = _origin(_scan_folder(FAMILIES / key, tmp_path, only=TOKENIZER_FILES))
    entry = family_by_key(key)
    assert entry is not None
    if origin.family is not None:
        found = family_by_key(origin.family)
        assert found is not None and found.publisher == entry.publisher
    for jurisdiction in origin.jurisdictions:
        assert jurisdiction.role == "family"
        assert jurisdiction.org in _orgs(entry.publisher)


def _orgs(publisher: str) -> set[str]:
    from provscan.knowledge.base import publisher_by_key

    found = publisher_by_key(publisher)
    assert found is not None
    return set(found.hub_orgs)


@pytest.mark.parametrize(
    ("key", "publisher", "country"),
    [
        ("gemma", "google", "US"),  # Gemma and Gemma 2 share the turn tokens and vocab
        ("deepseek-v4", "deepseek", "CN"),  # V3 and V4 share the tokenizer and vocab
    ],
)
def test_same_publisher_tie_still_gives_the_publisher(
    key: str, publisher: str, country: str, tmp_path: Path
) -> None:
    origin = _origin(_scan_folder(FAMILIES / key, tmp_path, only=TOKENIZER_FILES))
    assert origin.family is None, "the siblings tie: the family is undecided"
    [jurisdiction] = origin.jurisdictions
    assert jurisdiction.role == "family" and jurisdiction.country == country
    assert jurisdiction.confidence == "medium"
    assert jurisdiction.org in _orgs(publisher)


def test_more_specific_tokenizer_breaks_a_tie(tmp_path: Path) -> None:
    # Gemma 3's tokenizer has the turn tokens Gemma and Gemma 2 have, and image tokens.
    origin = _origin(_scan_folder(FAMILIES / "gemma3", tmp_path, only=TOKENIZER_FILES))
    assert origin.family == "gemma3" and origin.family_confidence == "medium"


def test_escaped_tokens_in_tokenizer_json_are_read(tmp_path: Path) -> None:
    raw = (FAMILIES / "deepseek-v3" / "tokenizer.json").read_text(encoding="utf-8")
    assert "\\uff5c" in raw.lower() and "｜" not in raw  # the bars are JSON escapes
    origin = _origin(_scan_folder(FAMILIES / "deepseek-v3", tmp_path, only=("tokenizer.json",)))
    details = [s.detail for s in origin.family_signals if s.family == "deepseek-v3"]
    assert any("<｜User｜>" in d for d in details)


def _gguf(path: Path, arch: str, tokens: list[str]) -> Path:
    return write_gguf(path, arch, tokens=tokens)


def test_gguf_token_list_gives_the_family(tmp_path: Path) -> None:
    # A Llama 3 GGUF: the architecture name is llama.cpp's generic "llama", so only the
    # vocabulary (128256 tokens, the Llama 3 special tokens at its end) says Llama 3.
    tokens = [f"t{i}" for i in range(128000)]
    tokens += ["<|begin_of_text|>", "<|end_of_text|>"] + [f"<|r{i}|>" for i in range(254)]
    tokens[128006], tokens[128007], tokens[128009] = (
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
    )
    model = tmp_path / "model"
    model.mkdir()
    _gguf(model / "model.gguf", "llama", tokens)
    origin = _origin(scan(str(model), ScanOptions(hash_workers=1)))
    assert origin.family == "llama3"
    kinds = {(s.signal, s.detail) for s in origin.family_signals if s.family == "llama3"}
    assert ("gguf", "vocab_size 128256") in kinds
    assert any(signal == "tokenizer" for signal, _ in kinds)
    assert {j.country for j in origin.jurisdictions} == {"US"}


def test_reference_tokens_are_json(tmp_path: Path) -> None:
    # The trimmed tokenizer files stay what transformers reads: JSON objects.
    for key in KEYS:
        for name in TOKENIZER_FILES:
            path = FAMILIES / key / name
            if path.exists():
                assert isinstance(json.loads(path.read_text(encoding="utf-8")), dict)


# ---------------------------------------------------------------- official derivatives

CORPUS = TESTS / "data" / "corpus"
REVISION = "0123456789abcdef0123456789abcdef01234567"


def _official_corpus() -> list[str]:
    from provscan.knowledge.base import publisher_for_org

    return sorted(
        p.name for p in CORPUS.iterdir() if p.is_dir() and publisher_for_org(p.name.split("__")[0])
    )


@pytest.mark.parametrize("folder", _official_corpus())
def test_official_releases_are_no_claim_mismatch_or_licence_conflict(
    folder: str, tmp_path: Path
) -> None:
    from fixtures.models import build_hf_cache_snapshot

    repo_id = folder.replace("__", "/", 1)
    model = build_metadata_model(tmp_path / "src", CORPUS / folder)
    report = scan(
        str(build_hf_cache_snapshot(tmp_path / "hub", repo_id, REVISION, model)),
        ScanOptions(hash_workers=1),
    )
    rules = {f.rule_id for f in report.findings}
    assert "ORG-CLAIM-MISMATCH" not in rules
    assert "LIC-CONFLICT" not in rules


def _r1_distill_llama(folder: Path) -> Path:
    """deepseek-ai/DeepSeek-R1-Distill-Llama-8B's metadata, trimmed: Llama 3.1 8B weights
    (model_type llama, LlamaForCausalLM, vocab 128256, as the public config.json says)
    with DeepSeek-R1's chat tokens in place of Llama 3's begin/end of text.
    https://huggingface.co/deepseek-ai/DeepSeek-R1-Distill-Llama-8B/blob/main/config.json
    """
    folder.mkdir(parents=True)
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 128256}
    (folder / "config.json").write_text(json.dumps(config))
    tokens = {
        "128000": {"content": "<｜begin▁of▁sentence｜>", "special": True},
        "128001": {"content": "<｜end▁of▁sentence｜>", "special": True},
        "128011": {"content": "<｜User｜>", "special": False},
        "128012": {"content": "<｜Assistant｜>", "special": False},
    }
    (folder / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": tokens}))
    (folder / "README.md").write_text("---\nlicense: mit\nlibrary_name: transformers\n---\n")
    return folder


def test_deepseek_distill_on_llama_is_no_claim_mismatch(tmp_path: Path) -> None:
    from fixtures.models import build_hf_cache_snapshot

    repo_id = "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"
    model = build_metadata_model(tmp_path / "src", _r1_distill_llama(tmp_path / "meta"))
    report = scan(
        str(build_hf_cache_snapshot(tmp_path / "hub", repo_id, REVISION, model)),
        ScanOptions(hash_workers=1),
    )
    origin = _origin(report)
    assert origin.family == "llama3"  # the weights are Llama 3.1's: Meta's terms are found
    assert "ORG-CLAIM-MISMATCH" not in {f.rule_id for f in report.findings}
    countries = {(j.role, j.country) for j in origin.jurisdictions}
    assert ("publisher", "CN") in countries and ("family", "US") in countries


def test_an_unknown_release_on_the_same_files_still_mismatches(tmp_path: Path) -> None:
    # The same files under a name models.yaml does not know: Llama 3 by vocabulary and
    # architecture, DeepSeek by tokens. Two publishers tie, so no family is decided and
    # neither is reported as contradicting the claimed base.
    from fixtures.models import build_hf_cache_snapshot

    meta = _r1_distill_llama(tmp_path / "meta")
    (meta / "README.md").write_text("---\nbase_model: mistralai/Mistral-7B-v0.1\n---\n")
    model = build_metadata_model(tmp_path / "src", meta)
    report = scan(
        str(build_hf_cache_snapshot(tmp_path / "hub", "someone/R1-Llama", REVISION, model)),
        ScanOptions(hash_workers=1),
    )
    assert _origin(report).family is None
    assert "ORG-CLAIM-MISMATCH" not in {f.rule_id for f in report.findings}
