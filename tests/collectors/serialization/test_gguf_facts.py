"""Model facts from GGUF headers: architecture, exact size, context, quantization, and conflicts."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from provscan.collectors.base import Collected
from provscan.collectors.inventory import collect_inventory
from provscan.collectors.modelfacts import collect_model_facts
from provscan.collectors.serialization.gguf.facts import FILE_TYPES, read_gguf_facts
from provscan.collectors.serialization.gguf.tensors import GGML_TYPE_NAMES
from provscan.files import ScanFile
from provscan.limits import DEFAULT_LIMITS
from provscan.report import ModelDeclaration, ModelFacts
from provscan.resolve.target import resolve_target
from tests.collectors.serialization.test_gguf import (
    F32_TYPE,
    I32,
    STR,
    U32,
    U64,
    gguf,
    kv,
    kv_array,
    tensor_info,
)
from tests.conftest import CliResult

gguf_py = pytest.importorskip("gguf")  # llama.cpp's own writer, a test extra (constraints.txt)

# 10x64 F16 embeddings + 64x64 Q8_0 + 64 F32: 640 + 4096 + 64.
PARAMETERS = 4800


def write_model(
    path: Path,
    *,
    arch: str = "llama",
    file_type: int | None = 15,
    embedding: int = 64,
    blocks: int = 2,
) -> Path:
    """A small GGUF file written by gguf-py, with the standard model keys."""
    writer = gguf_py.GGUFWriter(str(path), arch)
    writer.add_name("Tiny Llama")
    writer.add_context_length(4096)
    writer.add_embedding_length(embedding)
    writer.add_block_count(blocks)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_license("apache-2.0")
    if file_type is not None:
        writer.add_file_type(file_type)
    writer.add_tensor("token_embd.weight", np.zeros((10, 64), dtype=np.float16))
    q8 = gguf_py.GGMLQuantizationType.Q8_0
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((64, 68), dtype=np.uint8), raw_dtype=q8)
    writer.add_tensor("output_norm.weight", np.zeros((64,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def facts_of(folder: Path) -> Collected[ModelFacts | None]:
    files = resolve_target(str(folder), DEFAULT_LIMITS).files
    return collect_model_facts(collect_inventory(files, DEFAULT_LIMITS).value, DEFAULT_LIMITS)


def only(folder: Path) -> ModelFacts:
    result = facts_of(folder)
    assert result.value is not None
    return result.value


def raw_file(folder: Path, content: bytes, name: str = "model.gguf") -> Path:
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(content)
    return folder


# --- what a GGUF model declares ------------------------------------------------------------
def test_gguf_only_folder_gets_model_facts(tmp_path: Path) -> None:
    write_model(tmp_path / "model.gguf")
    result = facts_of(tmp_path)
    assert result.findings == ()
    facts = result.value
    assert facts is not None
    assert facts.model_type == "llama"
    assert facts.parameter_count == PARAMETERS
    assert facts.tensor_count == 3
    assert facts.context_length == 4096
    assert facts.quantization == ("Q4_K_M",)
    assert facts.weight_dtypes == ("F16", "F32", "Q8_0")
    assert facts.weight_files == ("model.gguf",)
    assert facts.declared == (
        ModelDeclaration(
            path="model.gguf",
            architecture="llama",
            name="Tiny Llama",
            context_length=4096,
            embedding_length=64,
            block_count=2,
            head_count=4,
            head_count_kv=2,
            quantization="Q4_K_M",
            tensor_count=3,
            parameter_count=PARAMETERS,
        ),
    )


def test_without_a_file_type_the_main_tensor_type_is_the_quantization(tmp_path: Path) -> None:
    write_model(tmp_path / "model.gguf", file_type=None)
    assert only(tmp_path).quantization == ("Q8_0",)  # 4096 of the 4800 weights


def test_an_unknown_file_type_falls_back_to_the_tensor_types(tmp_path: Path) -> None:
    write_model(tmp_path / "model.gguf", file_type=999)
    assert only(tmp_path).quantization == ("Q8_0",)


def test_file_type_names_are_llama_cpps() -> None:
    # Cross-check with gguf-py's copy of llama.h's enum llama_ftype and ggml's type names.
    current = {
        m.value: m.name.removeprefix("MOSTLY_").removeprefix("ALL_") for m in gguf_py.LlamaFileType
    }
    current.pop(1024)  # LLAMA_FTYPE_GUESSED: a runtime flag, never written to a file
    assert {k: v for k, v in FILE_TYPES.items() if k in current} == current
    assert set(FILE_TYPES) - set(current) == {4, 33, 34, 35}  # retired, still in older files
    assert {m.value: m.name for m in gguf_py.GGMLQuantizationType} == GGML_TYPE_NAMES


def test_quantized_copies_and_a_projector_name_the_main_model(tmp_path: Path) -> None:
    write_model(tmp_path / "tiny-Q4_K_M.gguf", file_type=15)
    write_model(tmp_path / "tiny-Q8_0.gguf", file_type=7)
    projector = gguf_py.GGUFWriter(str(tmp_path / "mmproj-f16.gguf"), "clip")
    projector.add_file_type(1)
    projector.add_tensor("v.patch_embd.weight", np.zeros((4, 4), dtype=np.float16))
    projector.write_header_to_file()
    projector.write_kv_data_to_file()
    projector.write_tensors_to_file()
    projector.close()
    facts = only(tmp_path)
    assert facts.model_type == "llama"
    assert facts.parameter_count == PARAMETERS  # one copy, not the sum of the files
    assert facts.quantization == ("Q4_K_M", "Q8_0")  # not the projector's F16
    assert [(d.path, d.parameter_count) for d in facts.declared] == [
        ("mmproj-f16.gguf", 16),
        ("tiny-Q4_K_M.gguf", PARAMETERS),
        ("tiny-Q8_0.gguf", PARAMETERS),
    ]


def _split(folder: Path, number: int, count: int, rows: int) -> None:
    # gguf-split's layout: the first split holds the metadata, each holds some tensors.
    writer = gguf_py.GGUFWriter(str(folder / f"tiny-{number:05d}-of-{count:05d}.gguf"), "llama")
    if number == 1:
        writer.add_context_length(2048)
        writer.add_file_type(0)
    writer.add_tensor(f"t{number}.weight", np.zeros((rows, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_a_split_model_is_counted_across_its_splits(tmp_path: Path) -> None:
    _split(tmp_path, 1, 2, 3)
    _split(tmp_path, 2, 2, 5)
    facts = only(tmp_path)
    assert (facts.parameter_count, facts.tensor_count) == (32, 2)
    assert (facts.context_length, facts.quantization) == (2048, ("F32",))


def test_a_split_model_missing_a_split_has_no_count(tmp_path: Path) -> None:
    _split(tmp_path, 1, 3, 3)
    _split(tmp_path, 2, 3, 5)
    facts = only(tmp_path)
    assert (facts.parameter_count, facts.tensor_count) == (None, None)
    assert facts.context_length == 2048


# --- conflicts with config.json ------------------------------------------------------------
CONFIG = {
    "model_type": "mistral",  # llama.cpp calls Mistral "llama": names are never compared
    "architectures": ["MistralForCausalLM"],
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,  # a converter may write another context: not compared
}


def test_a_gguf_agreeing_with_config_json_records_both(tmp_path: Path) -> None:
    write_model(tmp_path / "model.gguf")
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    result = facts_of(tmp_path)
    assert result.findings == ()
    facts = result.value
    assert facts is not None
    assert [d.path for d in facts.declared] == ["config.json", "model.gguf"]
    assert (facts.model_type, facts.context_length) == ("mistral", 32768)  # config.json first
    assert facts.declared[1].context_length == 4096
    assert facts.parameter_count == PARAMETERS  # no safetensors: the GGUF tensor table


def test_a_gguf_of_another_shape_than_config_json_is_a_finding(tmp_path: Path) -> None:
    write_model(tmp_path / "model.gguf", embedding=128, blocks=30)
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    result = facts_of(tmp_path)
    [finding] = result.findings
    assert finding.rule_id == "INV-GGUF-CONFIG-MISMATCH"
    assert finding.location is not None and finding.location.path == "model.gguf"
    assert finding.message == (
        "model.gguf declares embedding_length 128 (config.json: 64), block_count 30 "
        "(config.json: 2): the GGUF file and config.json describe different models"
    )
    assert finding.evidence == {
        "gguf": {"embedding_length": 128, "block_count": 30},
        "config": {"embedding_length": 64, "block_count": 2},
    }
    assert result.value is not None
    assert [(d.path, d.embedding_length) for d in result.value.declared] == [
        ("config.json", 64),
        ("model.gguf", 128),
    ]


def test_multi_token_prediction_layers_are_no_conflict(tmp_path: Path) -> None:
    write_model(tmp_path / "model.gguf", blocks=3)
    (tmp_path / "config.json").write_text(json.dumps({**CONFIG, "num_nextn_predict_layers": 1}))
    assert facts_of(tmp_path).findings == ()


# --- hostile headers -----------------------------------------------------------------------
def _header(kvs: list[bytes], tensors: list[bytes] | None = None) -> bytes:
    tensors = [tensor_info("w", [4, 2], F32_TYPE, 0)] if tensors is None else tensors
    return gguf([kv("general.architecture", STR, "llama"), *kvs], tensors, b"\0" * 32)


def test_values_of_the_wrong_type_are_left_out(tmp_path: Path) -> None:
    content = _header(
        [
            kv("llama.context_length", STR, "4096"),
            kv("llama.embedding_length", I32, -64),
            kv("llama.block_count", 7, True),  # a bool
            kv_array("llama.attention.head_count", U32, [4, 4]),  # per layer: no single value
            kv("general.file_type", STR, "Q4_K_M"),
            kv("general.name", U32, 5),
        ]
    )
    facts = only(raw_file(tmp_path / "m", content))
    [declared] = facts.declared
    assert declared == ModelDeclaration(
        path="model.gguf",
        architecture="llama",
        quantization="F32",  # the tensor type, since file_type is no number
        tensor_count=1,
        parameter_count=8,
    )
    assert facts.context_length is None


def test_a_duplicate_key_keeps_the_first_value(tmp_path: Path) -> None:
    content = _header([kv("llama.context_length", U32, 1024), kv("llama.context_length", U32, 9)])
    assert only(raw_file(tmp_path / "m", content)).context_length == 1024


def test_dims_whose_product_overflows_give_no_parameter_count(tmp_path: Path) -> None:
    huge = [tensor_info("w", [2**40, 2**40], F32_TYPE, 0)]
    facts = only(
        raw_file(tmp_path / "m", _header([kv("llama.context_length", U64, 2**64 - 1)], huge))
    )
    assert (facts.parameter_count, facts.tensor_count) == (None, 1)
    assert facts.model_type == "llama"
    assert facts.context_length is None  # beyond int64: no count anything reads


def test_data_past_the_end_of_the_file_gives_no_parameter_count(tmp_path: Path) -> None:
    content = _header([], [tensor_info("w", [1024, 1024], F32_TYPE, 0)])  # 4 MiB, 32 bytes here
    assert only(raw_file(tmp_path / "m", content)).parameter_count is None


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"GGUF" + struct.pack("<IQQ", 3, 2**62, 1), id="huge-tensor-count"),
        pytest.param(b"GGUF" + struct.pack("<IQQ", 3, 0, 2**62), id="huge-kv-count"),
        pytest.param(_header([kv("llama.context_length", U32, 7)])[:60], id="truncated"),
    ],
)
def test_an_unreadable_header_gives_no_gguf_facts(tmp_path: Path, content: bytes) -> None:
    folder = raw_file(tmp_path / "m", content)
    facts = only(folder)
    assert facts.declared == () and facts.model_type is None
    assert (facts.parameter_count, facts.weight_files) == (None, ("model.gguf",))
    path = folder / "model.gguf"
    assert read_gguf_facts(ScanFile(rel="model.gguf", path=path, size=path.stat().st_size)) is None


# --- the CLI, as a user runs it ------------------------------------------------------------
def test_check_json_shows_gguf_model_facts(cli: Callable[..., CliResult], tmp_path: Path) -> None:
    write_model(tmp_path / "model.gguf")
    result = cli("check", tmp_path, "--format", "json")
    assert result.code == 0, result.err  # approve: only warnings (no card, no signature)
    report = result.json()
    model = report["model"]
    assert (model["model_type"], model["parameter_count"]) == ("llama", PARAMETERS)
    assert (model["context_length"], model["quantization"]) == (4096, ["Q4_K_M"])
    assert model["declared"][0]["path"] == "model.gguf"
    # The GGUF's licence key is a sender's claim with its file named, as for a model card.
    assert {
        "fact": "licence",
        "detail": "gguf: apache-2.0",
        "path": "model.gguf",
        "signed_by": [],
    } in report["fact_sources"]
