"""What model is this (architecture, dtypes, size, context, quantization), and do config.json,
the weights and GGUF headers agree?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from provscan.collectors.base import Collected, load_json_object, string_list
from provscan.collectors.serialization.gguf.facts import (
    SPLIT_NAME,
    GgufModelFacts,
    read_gguf_facts,
)
from provscan.collectors.serialization.gguf.tensors import INT64_MAX
from provscan.collectors.serialization.safetensors.header import SafetensorsError, read_header
from provscan.files import SniffedFile, open_scanned
from provscan.limits import Limits
from provscan.report import (
    FileFormat,
    Finding,
    ModelDeclaration,
    ModelFacts,
    Severity,
    file_finding,
)

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
    ggufs = [f for f in files if f.format is FileFormat.GGUF]
    if config is None and not weights and not ggufs:
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
    gguf = _gguf_models(ggufs)
    primary = _primary(gguf)
    for model in gguf:
        dtypes.update(t for _, facts in model.files if facts for t in facts.tensor_types)
    declared_by_config = _config_declaration(config) if config is not None else None
    config = config or {}
    implied = implied_parameter_count(
        config, has_lm_head=any(n.endswith("lm_head.weight") for n in names)
    )
    head = primary.head if primary is not None else None
    counts: tuple[int | None, int | None] = (None, None)
    if weights:
        counts = (tensor_count, parameters) if complete else (None, None)
    elif primary is not None:
        counts = (primary.tensor_count, primary.parameter_count)
    model_type = config.get("model_type")
    facts = ModelFacts(
        architectures=tuple(string_list(config.get("architectures"))),
        model_type=model_type if isinstance(model_type, str) else _gguf(head, "architecture"),
        config_dtype=_config_dtype(config),
        weight_dtypes=tuple(sorted(dtypes)),
        tensor_count=counts[0],
        parameter_count=counts[1],
        config_parameter_count=implied,
        weight_files=tuple(f.file.rel for f in (*weights, *ggufs)),
        context_length=_int(config, "max_position_embeddings") or _gguf(head, "context_length"),
        quantization=_quantizations(gguf, head),
        declared=(
            *([declared_by_config] if declared_by_config is not None else []),
            *(_gguf_declaration(rel, f) for m in gguf for rel, f in m.files if f is not None),
        ),
    )
    if (
        weights
        and complete
        and implied
        and abs(parameters - implied) > PARAMETER_TOLERANCE * implied
    ):
        findings.append(
            file_finding(
                "INV-PARAM-MISMATCH",
                Severity.HIGH,
                "config.json",
                (
                    f"config.json implies {implied:,} parameters but the safetensors weights hold "
                    f"{parameters:,}: config and weights describe different models"
                ),
                config_parameters=implied,
                weight_parameters=parameters,
            )
        )
    if declared_by_config is not None:
        findings += _gguf_conflicts(declared_by_config, facts.declared, config)
    return Collected(value=facts, findings=tuple(findings))


# ---------------------------------------------------------------- GGUF


@dataclass(frozen=True)
class _GgufModel:
    """One model stored as GGUF: a single file, or the splits of one gguf-split set."""

    files: tuple[tuple[str, GgufModelFacts | None], ...]  # (rel, facts), in split order
    complete: bool  # every split listed, and each one parsed

    @property
    def head(self) -> GgufModelFacts | None:
        return self.files[0][1]  # the first split holds the metadata

    @property
    def tensor_count(self) -> int | None:
        if not self.complete:
            return None
        return sum(f.tensor_count for _, f in self.files if f is not None)

    @property
    def parameter_count(self) -> int | None:
        counts = [f.parameter_count if f is not None else None for _, f in self.files]
        if not self.complete or None in counts:
            return None
        total = sum(c for c in counts if c is not None)
        return total if total <= INT64_MAX else None


def _gguf(head: GgufModelFacts | None, field: str) -> Any:
    """A fact of the main GGUF model, for what config.json does not say."""
    return getattr(head, field) if head is not None else None


def _gguf_models(items: Sequence[SniffedFile]) -> list[_GgufModel]:
    """The GGUF files grouped into models (splits together), in path order."""
    groups: dict[tuple[str, int], dict[int, tuple[str, GgufModelFacts | None]]] = {}
    for item in sorted(items, key=lambda i: i.file.rel):
        rel = item.file.rel
        # A stand-in for a file not downloaded (hf:// metadata scans) holds only its start.
        facts = read_gguf_facts(item.file) if item.file.read == "whole" else None
        split = SPLIT_NAME.match(rel)
        count = int(split["count"]) if split else 1
        if split is not None and count > 1:
            key, number = (split["prefix"], count), int(split["no"])
        else:
            key, number = (rel, 1), 1
        groups.setdefault(key, {})[number] = (rel, facts)
    models = []
    for (_, count), members in groups.items():
        ordered = tuple(members[n] for n in sorted(members))
        complete = sorted(members) == list(range(1, count + 1)) and all(
            f is not None for _, f in ordered
        )
        models.append(_GgufModel(files=ordered, complete=complete))
    return models


def _primary(models: Sequence[_GgufModel]) -> _GgufModel | None:
    """The model the folder's GGUF files are for: the largest that parsed.

    A folder often holds several quantizations of one model (the same count) and, for a
    vision model, a much smaller projector (mmproj, architecture "clip").
    """
    parsed = [m for m in models if m.head is not None]
    if not parsed:
        return None
    return max(parsed, key=lambda m: m.parameter_count or -1)


def _quantizations(models: Sequence[_GgufModel], head: GgufModelFacts | None) -> tuple[str, ...]:
    """The quantization of every copy of the main model (its architecture), each once."""
    if head is None:
        return ()
    found = {
        m.head.quantization
        for m in models
        if m.head is not None and m.head.architecture == head.architecture
    }
    return tuple(sorted(q for q in found if q is not None))


def _gguf_declaration(rel: str, facts: GgufModelFacts) -> ModelDeclaration:
    return ModelDeclaration(
        path=rel,
        architecture=facts.architecture,
        name=facts.name,
        context_length=facts.context_length,
        embedding_length=facts.embedding_length,
        block_count=facts.block_count,
        head_count=facts.head_count,
        head_count_kv=facts.head_count_kv,
        quantization=facts.quantization,
        tensor_count=facts.tensor_count,
        parameter_count=facts.parameter_count,
    )


def _config_declaration(config: Mapping[str, Any]) -> ModelDeclaration:
    model_type = config.get("model_type")
    return ModelDeclaration(
        path="config.json",
        architecture=model_type[:200] if isinstance(model_type, str) else None,
        context_length=_int(config, "max_position_embeddings"),
        embedding_length=_int(config, "hidden_size"),
        block_count=_int(config, "num_hidden_layers"),
        head_count=_int(config, "num_attention_heads"),
        head_count_kv=_int(config, "num_key_value_heads"),
    )


# The shape of the network, which a conversion keeps. The context length is not compared: a
# converter may write another one on purpose, and both stay in `declared`. Nor are the
# architecture names: llama.cpp names some families otherwise (Mistral is "llama").
_SHAPE = ("embedding_length", "block_count", "head_count", "head_count_kv")


def _gguf_conflicts(
    config: ModelDeclaration, declared: Sequence[ModelDeclaration], raw: Mapping[str, Any]
) -> list[Finding]:
    """INV-GGUF-CONFIG-MISMATCH for each GGUF header whose network shape config.json contradicts."""
    # DeepSeek-V3 / GLM style multi-token-prediction layers are GGUF blocks too.
    extra_blocks = _int(raw, "num_nextn_predict_layers") or 0
    findings: list[Finding] = []
    for gguf in declared:
        if gguf is config:
            continue
        differ = {}
        for field in _SHAPE:
            ours, theirs = getattr(gguf, field), getattr(config, field)
            if ours is None or theirs is None or ours == theirs:
                continue
            if field == "block_count" and ours == theirs + extra_blocks:
                continue
            differ[field] = (ours, theirs)
        if not differ:
            continue
        said = ", ".join(f"{k} {g:,} (config.json: {c:,})" for k, (g, c) in differ.items())
        findings.append(
            file_finding(
                "INV-GGUF-CONFIG-MISMATCH",
                Severity.HIGH,
                gguf.path,
                f"{gguf.path} declares {said}: the GGUF file and config.json describe "
                "different models",
                gguf={k: g for k, (g, _) in differ.items()},
                config={k: c for k, (_, c) in differ.items()},
            )
        )
    return findings


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
