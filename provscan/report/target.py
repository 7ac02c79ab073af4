"""What was scanned, how was it had, with which parameters, and how did each step end?"""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import Field

from provscan.report.base import ReportModel


class TargetKind(str, Enum):
    DIRECTORY = "directory"
    FILE = "file"
    HF_CACHE_SNAPSHOT = "hf-cache-snapshot"
    # hf://ORG/NAME@REV scanned without downloading its weights: small files fetched whole,
    # the rest read by range (a safetensors header, or the first bytes).
    HUB_METADATA = "hub-metadata"


class HubFetch(ReportModel):
    """How an hf:// target's files were had: downloaded, or read as metadata only."""

    mode: Literal["download", "metadata", "offline"]
    endpoint: str
    requested_revision: str | None  # as typed (a branch, tag or commit); None: default branch
    files: int = Field(ge=0)  # files the commit holds
    bytes: int = Field(ge=0)  # their total size, as the Hub records it
    files_fetched: int = Field(default=0, ge=0)  # metadata mode: files read whole
    bytes_fetched: int = Field(default=0, ge=0)  # their size
    files_ranged: int = Field(default=0, ge=0)  # metadata mode: files read by range only
    bytes_ranged: int = Field(default=0, ge=0)  # bytes those range reads received
    range_requests: int = Field(default=0, ge=0)  # HTTP requests those reads made


class TargetInfo(ReportModel):
    input: str  # what the user typed
    kind: TargetKind
    root: str  # absolute path scanned
    name: str  # the model's name (directory name, or repo name for HF snapshots)
    repo_id: str | None = None  # HF 'org/name' when known
    revision: str | None = None  # full commit sha when known
    hub: HubFetch | None = None  # hf:// targets: how the files were had from the Hub


class ToolInfo(ReportModel):
    name: str = "provscan"
    version: str


class ScanParameters(ReportModel):
    """Every parameter that changes a result, so a report can be reproduced."""

    hash_algorithm: Literal["sha256"] = "sha256"
    serialization: Literal["files", "shards"] = "files"
    shard_size: int | None = None
    hash_workers: int = Field(ge=1)
    limits: dict[str, int]


class StepStatus(str, Enum):
    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAILED = "failed"


class Step(ReportModel):
    """One collector's outcome. A failed or skipped step always says why.

    Whether a step is required is the policy's call (config `required_steps`), not the report's.
    """

    name: str
    status: StepStatus
    reason: str | None = None
    duration_ms: int = Field(default=0, ge=0)
