"""Which files does a signature say nothing about, and does anything read them?

A signer's ignore list, or shard serialization's silence about zero-length files, leaves
files out of what a signature proves. Whoever hands over the model can change or add
those files freely, so each one is listed with its role and what reads it: a tokenizer
model, ONNX external data, a sentence-transformers `modules.json`, a chat template, the
model card the licence step reads, code. Only files provscan knows no loader opens
(images, documents other than the card) count as not read; an unknown file counts as
read, since a configuration can name any file (`vocab_file`, `external_data` locations).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from provscan.report import FileFormat, FileRole

# What reads each role's files (transformers / sentence-transformers / diffusers /
# onnxruntime load them by name; provscan's own licence and origin steps read the card).
_ROLE_READERS: dict[FileRole, tuple[str, ...]] = {
    FileRole.WEIGHTS: (
        "weight loaders (torch, safetensors, transformers, llama.cpp, onnxruntime)",
    ),
    FileRole.CODE: ("Python import (trust_remote_code modules, custom pipelines)",),
    FileRole.TOKENIZER: ("tokenizer loaders (transformers, tokenizers, sentencepiece)",),
    FileRole.CONFIG: (
        "model configuration loaders (transformers, sentence-transformers, diffusers)",
    ),
    FileRole.MODEL_CARD: ("provscan licence and origin steps", "huggingface_hub ModelCard"),
    FileRole.LICENCE: ("provscan licence step",),
}
_CHAT_TEMPLATE = ("chat template rendering (transformers apply_chat_template)",)
# sentence-transformers reads modules.json and each module folder's configuration.
_MODULE_CONFIGS = {"modules.json", "sentence_bert_config.json", "config_sentence_transformers.json"}
_MODULE_READERS = ("sentence-transformers module loading",)
# ONNX external tensor data: onnxruntime opens the file the graph names, beside the graph.
_EXTERNAL_DATA_SUFFIXES = {".data", ".onnx_data", ".pb", ".bin", ".weight"}
_EXTERNAL_DATA = ("ONNX external data (onnxruntime), raw tensor files",)
_STRUCTURED_SUFFIXES = {".json", ".yaml", ".yml", ".toml", ".txt", ".model", ".vocab", ".cfg"}
_STRUCTURED = ("configuration or vocabulary a loader may read by name",)
# Files no model loader opens: pictures and documents shown to people.
_INERT_SUFFIXES = {
    ".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".bmp", ".ico",
    ".pdf", ".md", ".rst", ".mp4", ".webm",
}  # fmt: skip
# Content no loader takes whatever the name says (JSON, pickles, archives are never inert).
_INERT_FORMATS = frozenset({FileFormat.TEXT, FileFormat.BINARY, FileFormat.EMPTY})
_UNKNOWN = ("unknown: provscan cannot tell that no loader reads it",)


def readers_of(rel: str, fmt: FileFormat, role: FileRole) -> tuple[str, ...]:
    """What reads this file, as far as provscan knows; empty only for files nothing loads."""
    path = PurePosixPath(rel)
    name, suffix = path.name.lower(), path.suffix.lower()
    if suffix == ".jinja" or name.startswith("chat_template"):
        return _CHAT_TEMPLATE
    if role in _ROLE_READERS:
        return _ROLE_READERS[role]
    if name in _MODULE_CONFIGS:
        return _MODULE_READERS
    if suffix in _EXTERNAL_DATA_SUFFIXES or name.endswith(".onnx.data"):
        return _EXTERNAL_DATA
    if suffix in _INERT_SUFFIXES and fmt in _INERT_FORMATS:
        return ()
    if suffix in _STRUCTURED_SUFFIXES or fmt in (FileFormat.JSON, FileFormat.TEXT):
        return _STRUCTURED
    return _UNKNOWN
