"""What did the scan find? The typed, versioned Report every later stage reads."""

from __future__ import annotations

import re
from datetime import datetime
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Bump the minor version for additive changes, the major for anything that
# breaks a consumer (renamed or removed fields, changed meaning).
SCHEMA_VERSION = "1.0.0"

RULE_ID_PATTERN = r"^(INV|HSH|SIG|SER|LIC|ORG|PRB|POL)-[A-Z0-9]+(-[A-Z0-9]+)*$"
_RULE_ID_RE = re.compile(RULE_ID_PATTERN)

JsonValue = Any  # evidence values are JSON-safe scalars, lists and dicts (checked below)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)


class Severity(str, Enum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class StepStatus(str, Enum):
    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAILED = "failed"


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


class TargetKind(str, Enum):
    DIRECTORY = "directory"
    FILE = "file"
    HF_CACHE_SNAPSHOT = "hf-cache-snapshot"


class Location(_Frozen):
    """Where a finding points: a file, optionally a member inside it, and an offset."""

    path: str | None = None
    member: str | None = None
    offset: int | None = Field(default=None, ge=0)


class Finding(_Frozen):
    rule_id: str
    severity: Severity
    message: str
    location: Location | None = None
    evidence: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("rule_id")
    @classmethod
    def _rule_id_shape(cls, value: str) -> str:
        if not _RULE_ID_RE.match(value):
            raise ValueError(f"rule id {value!r} does not match {RULE_ID_PATTERN}")
        return value


def located_finding(
    rule_id: str, severity: Severity, message: str, location: Location, /, **evidence: JsonValue
) -> Finding:
    """A finding at a location (file, archive member, offset), evidence as keywords.

    Positional-only, so evidence may use any key (an ONNX finding records `location`).
    """
    return Finding(
        rule_id=rule_id, severity=severity, message=message, location=location, evidence=evidence
    )


def file_finding(
    rule_id: str, severity: Severity, path: str, message: str, /, **evidence: JsonValue
) -> Finding:
    """A finding about one file of the target (the common case)."""
    return located_finding(rule_id, severity, message, Location(path=path), **evidence)


class Step(_Frozen):
    """One collector's outcome. A failed or skipped step always says why.

    Whether a step is required is the policy's call (config `required_steps`), not the report's.
    """

    name: str
    status: StepStatus
    reason: str | None = None
    duration_ms: int = Field(default=0, ge=0)


class FileEntry(_Frozen):
    path: str  # relative to the target root, '/'-separated
    size: int = Field(ge=0)
    format: FileFormat
    role: FileRole
    sha256: str | None = None
    symlink: bool = False
    in_manifest: bool = True  # False for paths the OMS manifest ignores (.git, model.sig ...)


class ManifestResource(_Frozen):
    name: str
    algorithm: str
    digest: str


class Manifest(_Frozen):
    """The OpenSSF model-signing (OMS) v1.0 manifest of the target."""

    model_name: str
    method: Literal["files", "shards"]
    hash_type: Literal["sha256"] = "sha256"
    allow_symlinks: bool
    ignore_paths: tuple[str, ...]
    shard_size: int | None = None
    resources: tuple[ManifestResource, ...]
    root_digest: str  # SHA-256 over the raw resource digests in manifest order


class ModelFacts(_Frozen):
    """Facts read from config.json and weight headers (never tensor data)."""

    architectures: tuple[str, ...] = ()
    model_type: str | None = None
    config_dtype: str | None = None
    weight_dtypes: tuple[str, ...] = ()
    tensor_count: int | None = None
    parameter_count: int | None = None  # counted from weight headers
    config_parameter_count: int | None = None  # implied by config.json, when a formula is known
    weight_files: tuple[str, ...] = ()


class CardFacts(_Frozen):
    """What the model card (README.md YAML front matter) declares."""

    path: str
    licenses: tuple[str, ...] = ()
    license_name: str | None = None
    license_link: str | None = None
    base_models: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    pipeline_tag: str | None = None
    library_name: str | None = None


class TargetInfo(_Frozen):
    input: str  # what the user typed
    kind: TargetKind
    root: str  # absolute path scanned
    name: str  # the model's name (directory name, or repo name for HF snapshots)
    repo_id: str | None = None  # HF 'org/name' when known
    revision: str | None = None  # full commit sha when known


class ToolInfo(_Frozen):
    name: str = "provscan"
    version: str


class ScanParameters(_Frozen):
    """Every parameter that changes a result, so a report can be reproduced."""

    hash_algorithm: Literal["sha256"] = "sha256"
    serialization: Literal["files", "shards"] = "files"
    shard_size: int | None = None
    hash_workers: int = Field(ge=1)
    limits: dict[str, int]


class Reason(_Frozen):
    """One policy result: a rule that fired, at one level, with its message."""

    rule: str
    level: Literal["deny", "review", "warn"]
    msg: str
    details: dict[str, JsonValue] = Field(default_factory=dict)


class Decision(str, Enum):
    APPROVE = "approve"
    REVIEW = "review"
    DENY = "deny"


class PolicyInfo(_Frozen):
    packs: tuple[str, ...]
    digest: str  # sha256 over the policy sources, data and effective config
    engine: str
    engine_version: str


class Verdict(_Frozen):
    decision: Decision
    reasons: tuple[Reason, ...]
    policy: PolicyInfo


class Report(_Frozen):
    schema_version: str = SCHEMA_VERSION
    tool: ToolInfo
    scanned_at: datetime
    target: TargetInfo
    parameters: ScanParameters
    steps: tuple[Step, ...]
    files: tuple[FileEntry, ...]
    manifest: Manifest | None = None
    model: ModelFacts | None = None
    card: CardFacts | None = None
    findings: tuple[Finding, ...]
    verdict: Verdict | None = None

    def policy_input(self) -> dict[str, Any]:
        """The document the policy sees: the report as JSON, without any verdict."""
        data: dict[str, Any] = self.model_dump(mode="json", exclude={"verdict"})
        return data

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)


def report_json_schema() -> dict[str, Any]:
    """The JSON Schema of the Report, as committed in sbom/report.schema.json."""
    schema = Report.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://provscan.dev/schema/report-{SCHEMA_VERSION}.json"
    return schema
