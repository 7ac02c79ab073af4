"""What do the model's config, weight headers and model card declare?"""

from __future__ import annotations

from provscan.report.base import ReportModel


class ModelDeclaration(ReportModel):
    """What one file says the model is: config.json, or a GGUF file's header.

    Whoever handed over the model wrote it: evidence to compare, not authority. Each field
    is None when the file does not say it (or says it with the wrong type).
    `architecture`: config.json model_type, GGUF general.architecture (llama.cpp's names,
    which differ from transformers' for some families). `parameter_count` and
    `tensor_count` are counted from a GGUF file's own tensor table.
    """

    path: str
    architecture: str | None = None
    name: str | None = None  # GGUF general.name
    context_length: int | None = None  # max_position_embeddings, <arch>.context_length
    embedding_length: int | None = None  # hidden_size, <arch>.embedding_length
    block_count: int | None = None  # num_hidden_layers, <arch>.block_count
    head_count: int | None = None  # num_attention_heads, <arch>.attention.head_count
    head_count_kv: int | None = None  # num_key_value_heads, <arch>.attention.head_count_kv
    quantization: str | None = None  # GGUF general.file_type by llama.cpp's name (Q4_K_M)
    tensor_count: int | None = None
    parameter_count: int | None = None


class ModelFacts(ReportModel):
    """Facts read from config.json, weight headers and GGUF headers (never tensor data)."""

    architectures: tuple[str, ...] = ()
    model_type: str | None = None
    config_dtype: str | None = None
    weight_dtypes: tuple[str, ...] = ()
    tensor_count: int | None = None
    parameter_count: int | None = None  # counted from weight headers
    config_parameter_count: int | None = None  # implied by config.json, when a formula is known
    weight_files: tuple[str, ...] = ()
    context_length: int | None = None  # config.json's, else the GGUF model's
    quantization: tuple[str, ...] = ()  # of the GGUF model's files (one per quantized copy)
    declared: tuple[ModelDeclaration, ...] = ()  # each file's own claims, conflicts included


class CardFacts(ReportModel):
    """What the model card (README.md YAML front matter) declares."""

    path: str
    licenses: tuple[str, ...] = ()
    license_name: str | None = None
    license_link: str | None = None
    base_models: tuple[str, ...] = ()
    base_model_relation: str | None = None
    license_prose: str | None = None  # "License: X" in the card's text, when it has no front matter
    tags: tuple[str, ...] = ()
    pipeline_tag: str | None = None
    library_name: str | None = None
