"""What model is this (architecture, dtypes, size), and do config and weights agree?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from provscan.collectors.base import (
    Collected,
    SniffedFile,
    load_json_object,
    open_scanned,
    string_list,
)
from provscan.collectors.serialization.safetensors_header import SafetensorsError, read_header
from provscan.limits import Limits
from provscan.report import FileFormat, Finding, ModelFacts, Severity, file_finding

# Weights may legitimately carry a few extra buffers (e.g. rotary inv_freq in older
# Llama checkpoints); a larger gap means config and weights describe different models.
PARAMETER_TOLERANCE = 0.01

# model_type values whose parameter count follows the decoder formula below.
_DECODER_FAMILIES = {"llama", "mistral", "qwen2", "qwen3", "gemma", "granite", "phi3"}


def collect_model_facts(
    files: Sequence[SniffedFile], limits: Limits
) -> Collected[ModelFacts | None]:
    findings: list[Finding] = []
    config = _read_config(files, limits, findings)
    weights = [f for f in files if f.format is FileFormat.SAFETENSORS]
    if config is None and not weights:
        return Collected(value=None, findings=tuple(findings))
    tensor_count = 0
    parameters = 0
    dtypes: set[str] = set()
    names: set[str] = set()
    complete = True
    for item in weights:
        try:
            with open_scanned(item.file) as handle:
                header = read_header(handle, max_header=limits.safetensors_header_max)
        except (SafetensorsError, OSError):
            complete = False  # reported by the serialization step
            continue
        tensor_count += len(header.tensors)
        parameters += header.parameter_count
        dtypes |= header.dtypes
        names |= {t.name for t in header.tensors}
    config = config or {}
    implied = implied_parameter_count(
        config, has_lm_head=any(n.endswith("lm_head.weight") for n in names)
    )
    facts = ModelFacts(
        architectures=tuple(string_list(config.get("architectures"))),
        model_type=config.get("model_type") if isinstance(config.get("model_type"), str) else None,
        config_dtype=_config_dtype(config),
        weight_dtypes=tuple(sorted(dtypes)),
        tensor_count=tensor_count if weights and complete else None,
        parameter_count=parameters if weights and complete else None,
        config_parameter_count=implied,
        weight_files=tuple(f.file.rel for f in weights),
    )
    if (
        facts.parameter_count
        and implied
        and abs(facts.parameter_count - implied) > PARAMETER_TOLERANCE * implied
    ):
        findings.append(
            file_finding(
                "INV-PARAM-MISMATCH",
                Severity.HIGH,
                "config.json",
                (
                    f"config.json implies {implied:,} parameters but the safetensors weights hold "
                    f"{facts.parameter_count:,}: config and weights describe different models"
                ),
                config_parameters=implied,
                weight_parameters=facts.parameter_count,
            )
        )
    return Collected(value=facts, findings=tuple(findings))


def _read_config(
    files: Sequence[SniffedFile], limits: Limits, findings: list[Finding]
) -> dict[str, Any] | None:
    item = next((f for f in files if f.file.rel == "config.json"), None)
    if item is None:
        return None
    document, problem = load_json_object(item.file, limits.json_file_max)
    if document is not None:
        return document
    findings.append(
        file_finding(
            "INV-CONFIG-MALFORMED",
            Severity.HIGH,
            "config.json",
            f"config.json: {problem}; the architecture could not be read",
        )
    )
    return None


def _config_dtype(config: Mapping[str, Any]) -> str | None:
    value = config.get("torch_dtype", config.get("dtype"))
    return value if isinstance(value, str) else None


def _int(config: Mapping[str, Any], key: str) -> int | None:
    value = config.get(key)
    return value if type(value) is int and value >= 0 else None


def implied_parameter_count(config: Mapping[str, Any], *, has_lm_head: bool) -> int | None:
    """Parameters a Llama-style decoder config implies, or None for unknown families.

    Counted the way transformers builds these models: embeddings, per layer q/k/v/o
    projections (+ biases for Qwen2, + q/k norms for Qwen3), a gated MLP of three
    matrices, two RMSNorms, a final norm, and an lm_head unless tied to the embeddings.
    """
    if (
        not isinstance(config.get("model_type"), str)
        or config["model_type"] not in _DECODER_FAMILIES
    ):
        return None
    vocab, hidden = _int(config, "vocab_size"), _int(config, "hidden_size")
    inter, layers = _int(config, "intermediate_size"), _int(config, "num_hidden_layers")
    heads = _int(config, "num_attention_heads")
    if None in (vocab, hidden, inter, layers, heads) or not heads:
        return None
    assert (
        vocab is not None
        and hidden is not None
        and inter is not None
        and layers is not None
        and heads is not None
    )
    kv_heads = _int(config, "num_key_value_heads") or heads
    head_dim = _int(config, "head_dim") or hidden // heads
    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    attention = hidden * q_out + 2 * hidden * kv_out + q_out * hidden
    model_type = config["model_type"]
    if model_type == "qwen2" or config.get("attention_bias") is True:
        attention += q_out + 2 * kv_out
    if model_type == "qwen3":
        attention += 2 * head_dim
    mlp = 3 * hidden * inter + (2 * inter + hidden if config.get("mlp_bias") is True else 0)
    per_layer = attention + mlp + 2 * hidden
    tied_default = model_type.startswith("gemma")
    tied = config.get("tie_word_embeddings", tied_default) is True and not has_lm_head
    return vocab * hidden + layers * per_layer + hidden + (0 if tied else vocab * hidden)
