"""What does one AI-BOM or report say about a model, in the one shape `provscan diff` compares?

A report and a BOM record the same scan in different places; each loader turns its input into
a Snapshot. A section the input does not record is None, and `missing` says why: the diff
then says the section was not compared, never that nothing changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class InputKind(str, Enum):
    REPORT = "report"
    BOM = "bom"


class Section(str, Enum):
    """The parts of a snapshot the diff compares, in the order it shows them."""

    TARGET = "target"
    FILES = "files"
    LICENCES = "licences"
    LINEAGE = "lineage"
    FINDINGS = "findings"
    SIGNATURES = "signatures"
    VERDICT = "verdict"
    MODEL = "model"
    PROBES = "probes"
    STEPS = "steps"


@dataclass(frozen=True)
class Target:
    """Who the model is: `name` is the Hub id (org/name) when known, else the model's name."""

    name: str
    revision: str | None = None
    purl: str | None = None
    manifest_digest: str | None = None  # OMS manifest root digest (sha256 hex)


@dataclass(frozen=True)
class FileFacts:
    sha256: str | None
    size: int | None
    format: str | None
    role: str | None


@dataclass(frozen=True)
class Licences:
    """Licence keys (provscan knowledge-base keys) per standing; `labels` maps key to SPDX id
    or full name where the input says."""

    concluded: frozenset[str]
    declared: frozenset[str]
    inherited: frozenset[str]
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Ancestor:
    base: str
    relation: str


@dataclass(frozen=True)
class Lineage:
    ancestors: tuple[Ancestor, ...]  # in the input's order
    roots: frozenset[str]


@dataclass(frozen=True, order=True)
class FindingKey:
    """What identifies a finding across scans: its rule and where it points, not its wording."""

    rule_id: str
    path: str
    member: str


@dataclass(frozen=True)
class FindingGroup:
    """All findings with one key: how many, the worst severity, and the first message."""

    count: int
    severity: str
    message: str


@dataclass(frozen=True)
class SignatureFacts:
    status: str | None
    integrity: str | None
    signer: str | None  # identity, certificate subject or key fingerprint


@dataclass(frozen=True)
class Reason:
    rule: str
    level: str


@dataclass(frozen=True)
class Verdict:
    decision: str
    reasons: frozenset[Reason]
    policy_digest: str | None


@dataclass(frozen=True)
class ModelFacts:
    """Model facts as display strings (lists comma-joined), each None when not recorded."""

    architectures: str | None = None
    model_type: str | None = None
    parameter_count: str | None = None
    config_parameter_count: str | None = None
    tensor_count: str | None = None
    weight_dtypes: str | None = None
    config_dtype: str | None = None


@dataclass(frozen=True)
class ProbeCandidate:
    status: str
    family: str
    trigger: str | None


@dataclass(frozen=True)
class Probes:
    suite: str  # "<suite_id> <suite_version>"
    engine: str
    partial: bool
    candidates: frozenset[ProbeCandidate]


@dataclass(frozen=True)
class Snapshot:
    """One input, normalised. Sections that are None were not recorded; see `missing`."""

    path: str
    kind: InputKind
    tool_version: str | None
    scanned_at: str | None
    target: Target
    files: dict[str, FileFacts]
    licences: Licences | None
    lineage: Lineage
    findings: dict[FindingKey, FindingGroup] | None
    signatures: dict[str, SignatureFacts] | None
    verdict: Verdict | None  # None: the input records no verdict (a fact, not a gap)
    model: ModelFacts
    probes: Probes | None  # None: no probes were run
    steps: dict[str, str]
    missing: dict[Section, str] = field(default_factory=dict)
