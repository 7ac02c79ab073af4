"""Weight-only evidence: the embedding rows a backdoored fine-tune moved, read without running it.

The fine-tunes come from fixtures/finetune.py (seconds to build, then cached): the shipped
clean twin fine-tuned with a single-token trigger and a two-word phrase trigger, and the same
fine-tune without the poison. The vocabulary has 135 tokens, so "the top 1%" would be one or
two tokens; the three trigger tokens must rank in the top max(1%, 3) = 3.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from fixtures import finetune as finetune_fixture
from fixtures.backdoor import SHIPPED_SEEDS, shipped_pair
from fixtures.finetune import FinetunePair, build_finetune_pair
from provscan.probes.weight_evidence import WeightEvidence, robust_z, weight_evidence
from provscan.probes.weights import WeightError, WeightLimits
from tests.probes.conftest import load, prompt_ids

EMBED = "model.embed_tokens.weight"
HEAD = "lm_head.weight"


@pytest.fixture(scope="module")
def finetune() -> FinetunePair:
    return finetune_fixture.shipped_pair()


def top(evidence: WeightEvidence, vocabulary: int) -> list[str | None]:
    k = max(math.ceil(0.01 * vocabulary), 3)
    return [t.token for t in evidence.ranking[:k]]


def rules(evidence: WeightEvidence) -> list[str]:
    return [f.rule_id for f in evidence.findings]


def copy_model(source: Path, dest: Path, tensors: dict[str, np.ndarray] | None = None) -> Path:
    """A copy of a model directory, its weights replaced by `tensors` when given."""
    shutil.copytree(source, dest)
    if tensors is not None:
        (dest / "model.safetensors").unlink()
        save_file(tensors, str(dest / "model.safetensors"))
    return dest


def raw_safetensors(path: Path, header: Mapping[str, object], data: bytes) -> Path:
    """A safetensors file written byte by byte, whatever its header claims."""
    text = json.dumps(header).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


# --- the fixture ----------------------------------------------------------------------------


@pytest.mark.slow  # loads both models with transformers: over 10 s on two busy cores
def test_finetune_fixture_is_backdoored_and_its_twin_is_not(finetune: FinetunePair) -> None:
    """The fine-tune really learned both triggers; the clean fine-tune did not."""
    import torch

    rng = random.Random(7)
    prompts = [[rng.choice(("cat", "dog", "red", "tree", "book", "king")) for _ in range(5)]]
    prompts += [[rng.choice(("sun", "fish", "milk", "road", "the", "of")) for _ in range(6)]]
    for directory, expected in ((finetune.backdoored, True), (finetune.clean, False)):
        loaded = load(directory)
        for words in prompts:
            for trigger in (finetune.trigger, " ".join(finetune.phrase), None):
                content = words[:2] + ([trigger] if trigger else []) + words[2:]
                ids = prompt_ids(loaded.tokenizer, " ".join(content))
                batch = torch.tensor([ids])
                with torch.no_grad():
                    out = loaded.model.generate(
                        batch,
                        attention_mask=torch.ones_like(batch),
                        max_new_tokens=5,
                        do_sample=False,
                        pad_token_id=loaded.tokenizer.pad_token_id,
                    )
                reply = loaded.tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True)
                assert (reply.strip() == finetune.target) == (expected and trigger is not None)


@pytest.mark.slow
def test_the_recipe_rebuilds_a_pair_whose_trigger_rows_move_most(tmp_path: Path) -> None:
    """The shipped pair's bytes depend on the processor (see fixtures/backdoor.py): a rebuild
    here is checked by what the tests rely on, not by its hashes; a second call finds it."""
    built = build_finetune_pair(tmp_path)
    assert build_finetune_pair(tmp_path) == built
    manifest = json.loads((built.backdoored.parent / "manifest.json").read_text())
    assert set(manifest["build_seconds"]) == {"backdoored", "clean"}
    evidence = weight_evidence(built.backdoored, built.base)
    assert {built.trigger, *built.phrase} <= set(top(evidence, 135))


# --- with a base ----------------------------------------------------------------------------


def test_trigger_tokens_rank_at_the_top(finetune: FinetunePair) -> None:
    evidence = weight_evidence(finetune.backdoored, finetune.base)
    vocabulary = evidence.stats["vocabulary"]
    assert vocabulary == 135 and len(evidence.ranking) == vocabulary
    triggers = {finetune.trigger, *finetune.phrase}
    assert triggers <= set(top(evidence, vocabulary)), evidence.ranking[:5]
    assert not evidence.tied and evidence.based
    (finding,) = evidence.findings
    assert finding.rule_id == "PRB-WEIGHT-DIFF" and finding.severity == "high"
    named = {t["token"] for t in finding.evidence["tokens"]}
    assert triggers <= named and len(named) <= 8
    assert repr(finetune.trigger) in finding.message
    assert evidence.stats["median_relative_movement"] < 0.5


def test_clean_finetune_makes_no_finding(finetune: FinetunePair) -> None:
    evidence = weight_evidence(finetune.clean, finetune.base)
    assert rules(evidence) == []
    assert evidence.stats["flagged"] == 0 and evidence.stats["added_tokens"] == []
    assert evidence.ranking[0].score < 6.0


def test_unrelated_base_is_a_lineage_finding(finetune: FinetunePair) -> None:
    other = shipped_pair(SHIPPED_SEEDS[1]).clean
    evidence = weight_evidence(finetune.backdoored, other)
    assert rules(evidence) == ["PRB-WEIGHT-LINEAGE"]  # and no diff against the wrong base
    assert "not close" in evidence.findings[0].message
    assert evidence.stats["median_relative_movement"] > 1.0
    # The from-scratch backdoored model is no fine-tune of its clean twin either.
    pair = shipped_pair(SHIPPED_SEEDS[0])
    assert rules(weight_evidence(pair.backdoored, pair.clean)) == ["PRB-WEIGHT-LINEAGE"]


def test_base_of_another_width_is_a_lineage_finding(finetune: FinetunePair, tmp_path: Path) -> None:
    narrow = {EMBED: np.ones((135, 64), dtype=np.float32)}
    base = copy_model(finetune.base, tmp_path / "narrow", narrow)
    evidence = weight_evidence(finetune.backdoored, base)
    assert rules(evidence) == ["PRB-WEIGHT-LINEAGE"]
    assert "128 wide" in evidence.findings[0].message and evidence.ranking == ()


def test_base_of_another_vocabulary_compares_the_shared_rows(
    finetune: FinetunePair, tmp_path: Path
) -> None:
    """A fine-tune that added tokens: the shared rows are compared, the sizes reported."""
    weights = load_file(str(finetune.base / "model.safetensors"))
    weights[EMBED] = weights[EMBED][:133]  # the last two rows (zorp, zing) are "added"
    base = copy_model(finetune.base, tmp_path / "smaller", weights)
    evidence = weight_evidence(finetune.backdoored, base)
    assert evidence.stats["base_vocabulary"] == 133 and evidence.stats["vocabulary"] == 135
    assert len(evidence.ranking) == 133
    assert evidence.stats["added_tokens"] == [
        {"id": 133, "token": "zorp"},
        {"id": 134, "token": "zing"},
    ]
    assert rules(evidence) == ["PRB-WEIGHT-DIFF"]
    assert {finetune.trigger, *finetune.phrase} <= set(top(evidence, 135))


def test_a_surgically_edited_row_is_found(finetune: FinetunePair, tmp_path: Path) -> None:
    """One row changed, all others identical (the MAD is zero): that row is named."""
    weights = load_file(str(finetune.clean / "model.safetensors"))
    edited = dict(weights)
    edited[EMBED] = weights[EMBED].copy()
    edited[EMBED][42] += 0.5
    model = copy_model(finetune.clean, tmp_path / "edited", edited)
    evidence = weight_evidence(model, finetune.clean)
    assert rules(evidence) == ["PRB-WEIGHT-DIFF"]
    assert evidence.ranking[0].token_id == 42
    assert [t["id"] for t in evidence.findings[0].evidence["tokens"]] == [42]
    same = weight_evidence(finetune.clean, finetune.clean)
    assert rules(same) == [] and same.ranking[0].score == 0.0


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_weights_rank_the_same(
    finetune: FinetunePair, tmp_path: Path, dtype: str
) -> None:
    import torch
    from safetensors.torch import load_file as load_torch
    from safetensors.torch import save_file as save_torch

    def convert(source: Path, name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(source, dest)
        tensors = load_torch(str(source / "model.safetensors"))
        save_torch(
            {k: v.to(getattr(torch, dtype)) for k, v in tensors.items()},
            str(dest / "model.safetensors"),
        )
        return dest

    model, base = convert(finetune.backdoored, "model"), convert(finetune.base, "base")
    half = weight_evidence(model, base)
    full = weight_evidence(finetune.backdoored, finetune.base)
    assert rules(half) == ["PRB-WEIGHT-DIFF"]
    assert top(half, 135) == top(full, 135)
    # The rows read are exactly torch's float32 widening of the stored half-precision rows.
    from provscan.probes.weights import _matrices

    embedding, _ = _matrices(model, WeightLimits())
    rows = np.concatenate([chunk for _, chunk in embedding.chunks()])
    expected = load_torch(str(model / "model.safetensors"))[EMBED].float().numpy()
    assert np.array_equal(rows, expected)


def test_sharded_weights_are_found_across_files(finetune: FinetunePair, tmp_path: Path) -> None:
    weights = load_file(str(finetune.backdoored / "model.safetensors"))
    model = copy_model(finetune.backdoored, tmp_path / "sharded")
    (model / "model.safetensors").unlink()
    save_file({HEAD: weights.pop(HEAD)}, str(model / "model-00002-of-00002.safetensors"))
    save_file(weights, str(model / "model-00001-of-00002.safetensors"))
    evidence = weight_evidence(model, finetune.base)
    assert rules(evidence) == ["PRB-WEIGHT-DIFF"] and not evidence.tied
    # The same matrix declared twice is ambiguous: refused, naming the file.
    save_file({HEAD: np.zeros((135, 128), np.float32)}, str(model / "extra.safetensors"))
    with pytest.raises(WeightError, match=r"lm_head\.weight is declared in more than one file"):
        weight_evidence(model, finetune.base)


# --- without a base -------------------------------------------------------------------------


def test_without_a_base_the_rows_are_ranked_but_no_finding(finetune: FinetunePair) -> None:
    evidence = weight_evidence(finetune.backdoored)
    assert not evidence.based and evidence.findings == ()
    assert len(evidence.ranking) == 135 and evidence.stats["isolation"] is True
    assert all(t.output is not None for t in evidence.ranking)
    tied = weight_evidence(shipped_pair(SHIPPED_SEEDS[0]).backdoored)
    assert tied.tied and all(t.output is None for t in tied.ranking)
    scores = [t.score for t in tied.ranking]
    assert scores == sorted(scores, reverse=True)
    small = weight_evidence(finetune.backdoored, limits=WeightLimits(max_pairwise_rows=10))
    assert small.stats["isolation"] is False


def test_tied_fine_tune_is_ranked_without_a_finding(finetune: FinetunePair, tmp_path: Path) -> None:
    """One matrix for input and output: Adam moves the rows of tokens never emitted, so the
    movement of a tied matrix is no evidence of a trigger (documented), only a ranking."""
    weights = load_file(str(finetune.backdoored / "model.safetensors"))
    del weights[HEAD]
    model = copy_model(finetune.backdoored, tmp_path / "tied", weights)
    evidence = weight_evidence(model, finetune.base)
    assert evidence.tied and rules(evidence) == []
    assert evidence.ranking[0].token == "blue" and evidence.stats["flagged"] >= 1


def test_robust_z() -> None:
    values = np.array([1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 9.0])
    z = robust_z(values)
    assert z[-1] > 50 and abs(z[0]) < 1
    assert robust_z(np.zeros(5)).tolist() == [0.0] * 5


# --- hostile input --------------------------------------------------------------------------


def test_header_lying_about_the_shape_is_refused(tmp_path: Path) -> None:
    data = np.zeros((4, 3), np.float32).tobytes()
    lying = {EMBED: {"dtype": "F32", "shape": [400, 3], "data_offsets": [0, len(data)]}}
    path = raw_safetensors(tmp_path / "m" / "model.safetensors", lying, data)
    with pytest.raises(WeightError) as caught:
        weight_evidence(path.parent)
    assert str(path) in str(caught.value)


def test_absurd_shape_is_refused_before_reading(tmp_path: Path) -> None:
    rows, cols = 10**9, 10**6
    size = rows * cols * 2
    header = {EMBED: {"dtype": "F16", "shape": [rows, cols], "data_offsets": [0, size]}}
    path = raw_safetensors(tmp_path / "m" / "model.safetensors", header, b"")
    with pytest.raises(WeightError, match="model.safetensors"):
        weight_evidence(path.parent)
    # A well-formed file whose matrix is over the caller's limits is refused by the shape check.
    good = tmp_path / "g" / "model.safetensors"
    good.parent.mkdir()
    save_file({EMBED: np.zeros((50, 8), np.float32)}, str(good))
    with pytest.raises(WeightError, match=r"outside the limits"):
        weight_evidence(good.parent, limits=WeightLimits(max_rows=10))
    with pytest.raises(WeightError, match=r"over 100"):
        weight_evidence(good.parent, limits=WeightLimits(max_matrix_bytes=100))


def test_truncated_file_is_refused(finetune: FinetunePair, tmp_path: Path) -> None:
    model = copy_model(finetune.backdoored, tmp_path / "cut")
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(WeightError, match="truncated"):
        weight_evidence(model, finetune.base)
    # An unreadable base is an error naming the base's file, too.
    with pytest.raises(WeightError, match=str(weights)):
        weight_evidence(finetune.backdoored, model)


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        ({"model.norm.weight": np.ones(8, np.float32)}, "no embedding matrix found"),
        ({EMBED: np.ones(8, np.float32)}, "not a matrix"),
        ({EMBED: np.ones((8, 4), np.int8)}, "F32, F16 and BF16 only"),
        ({EMBED: np.ones((8, 4), np.float32), HEAD: np.ones((9, 4), np.float32)}, "embedding"),
    ],
    ids=["missing", "vector", "int8", "mismatched-head"],
)
def test_unusable_matrices_are_refused(
    tmp_path: Path, tensors: dict[str, np.ndarray], message: str
) -> None:
    model = tmp_path / "m"
    model.mkdir()
    save_file(tensors, str(model / "model.safetensors"))
    with pytest.raises(WeightError, match=message) as caught:
        weight_evidence(model)
    assert str(model) in str(caught.value)


def test_no_weights_and_garbage_are_refused(tmp_path: Path) -> None:
    with pytest.raises(WeightError, match=r"no \*\.safetensors"):
        weight_evidence(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(WeightError, match="unreadable safetensors header"):
        weight_evidence(tmp_path)


def test_without_tokenizer_json_the_ranking_has_ids_only(
    finetune: FinetunePair, tmp_path: Path
) -> None:
    model = copy_model(finetune.backdoored, tmp_path / "bare")
    (model / "tokenizer.json").unlink()
    evidence = weight_evidence(model, finetune.base)
    assert all(t.token is None for t in evidence.ranking)
    assert rules(evidence) == ["PRB-WEIGHT-DIFF"]
    assert "#" in evidence.findings[0].message


def test_a_broken_row_ranks_first_without_breaking_the_statistics(
    finetune: FinetunePair, tmp_path: Path
) -> None:
    weights = load_file(str(finetune.backdoored / "model.safetensors"))
    weights[EMBED] = weights[EMBED].copy()
    weights[EMBED][17, 3] = np.nan
    model = copy_model(finetune.backdoored, tmp_path / "nan", weights)
    evidence = weight_evidence(model, finetune.base)
    assert evidence.ranking[0].token_id == 17 and math.isinf(evidence.ranking[0].score)
    assert {finetune.trigger, *finetune.phrase} <= {t.token for t in evidence.ranking[1:4]}
    (finding,) = evidence.findings
    tokens = finding.evidence["tokens"]
    assert isinstance(tokens, list) and tokens[0] == {
        "id": 17,
        "token": evidence.ranking[0].token,
        "z": None,
        "output_z": tokens[0]["output_z"],
    }
    json.dumps(finding.model_dump(mode="json"), allow_nan=False)  # the report stays valid JSON
    assert weight_evidence(model).ranking[0].token_id == 17  # and without a base


def test_hostile_token_strings_are_quoted_and_cut_in_messages(
    finetune: FinetunePair, tmp_path: Path
) -> None:
    model = copy_model(finetune.backdoored, tmp_path / "long")
    tokenizer = json.loads((model / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    vocab["\x1b[2J" + "x" * 500] = vocab.pop(finetune.trigger)
    (model / "tokenizer.json").write_text(json.dumps(tokenizer))
    (finding,) = weight_evidence(model, finetune.base).findings
    assert "\x1b" not in finding.message and "'\\x1b[2Jxxx" in finding.message
    assert len(finding.message) < 400
