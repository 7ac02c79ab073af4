"""Which files does the target hold, in what format and role, and what is their manifest?"""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import Field

from provscan.report.base import ReportModel


class FileFormat(str, Enum):
    """A file's format as decided from its content, never from its name."""

    SAFETENSORS = "safetensors"
    GGUF = "gguf"
    PICKLE = "pickle"
    ZIP = "zip"
    ONNX = "onnx"
    HDF5 = "hdf5"
    NUMPY = "numpy"
    SEVENZIP = "7z"
    TAR = "tar"
    GZIP = "gzip"
    JSON = "json"
    TEXT = "text"
    EMPTY = "empty"
    BINARY = "binary"  # unrecognised binary content
    UNREADABLE = "unreadable"


class FileRole(str, Enum):
    WEIGHTS = "weights"
    CONFIG = "config"
    TOKENIZER = "tokenizer"
    MODEL_CARD = "model-card"
    LICENCE = "licence"
    CODE = "code"
    OTHER = "other"


class FileEntry(ReportModel):
    path: str  # relative to the target root, '/'-separated
    size: int = Field(ge=0)
    format: FileFormat
    role: FileRole
    sha256: str | None = None
    symlink: bool = False
    in_manifest: bool = True  # False for paths the OMS manifest ignores (.git, model.sig ...)
    # What the scan read of the file: all of it; or, not downloaded (hf:// metadata-only),
    # its safetensors header ("header") or its first bytes ("head"), fetched by range.
    read: Literal["whole", "header", "head"] = "whole"
    # Where sha256 comes from: computed from the bytes, or the Hub's record of a file that was
    # not downloaded ("hub-recorded": the publisher's claim, not verified locally).
    sha256_source: Literal["computed", "hub-recorded"] = "computed"
    # The signatures that prove this file: verified, the files match them, and they cover
    # it (it is neither in their ignore paths nor a zero-length file under shards).
    signed_by: tuple[str, ...] = ()


class ManifestResource(ReportModel):
    name: str
    algorithm: str
    digest: str


class Manifest(ReportModel):
    """The OpenSSF model-signing (OMS) v1.0 manifest of the target."""

    model_name: str
    method: Literal["files", "shards"]
    hash_type: Literal["sha256", "blake2b", "blake2", "blake3"] = "sha256"
    allow_symlinks: bool
    ignore_paths: tuple[str, ...]
    shard_size: int | None = None
    resources: tuple[ManifestResource, ...]
    root_digest: str  # SHA-256 over the raw resource digests in manifest order
