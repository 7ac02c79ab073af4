"""What did the scan find? The typed, versioned Report every later stage reads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from provscan.report.base import ReportModel
from provscan.report.files import FileEntry, Manifest
from provscan.report.findings import Finding
from provscan.report.licence import LicenceFacts
from provscan.report.model_facts import CardFacts, ModelFacts
from provscan.report.origin import OriginFacts
from provscan.report.probes import ProbeFacts
from provscan.report.records import RecordCheck
from provscan.report.signatures import FactSource, SignatureFacts
from provscan.report.target import ScanParameters, Step, TargetInfo, ToolInfo
from provscan.report.verdict import Verdict

# Bump the minor version for additive changes, the major for anything that
# breaks a consumer (renamed or removed fields, changed meaning).
SCHEMA_VERSION = "1.5.0"


class Report(ReportModel):
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
    origin: OriginFacts | None = None
    licence: LicenceFacts | None = None
    signatures: SignatureFacts | None = None
    # Every comparison with a record of what the Hub holds (model_info, cache blob names,
    # download metadata, cached tree listings): only authenticated ones prove anything.
    records: tuple[RecordCheck, ...] = ()
    # Which files the licence, lineage, card and family facts were read from, and whether a
    # verified signature covers each (empty when no such fact was read from a file).
    fact_sources: tuple[FactSource, ...] = ()
    probes: ProbeFacts | None = None  # only when probes were asked for
    findings: tuple[Finding, ...]
    verdict: Verdict | None = None
    # The text of each licence file (relative path -> text) that the licence step read while
    # it scanned, for the AI-BOM to attach: only text licence files of at most
    # LICENCE_TEXT_MAX bytes (collectors/licence_sources.py) inside the target, and only the very bytes that were hashed.
    # Held in memory and never serialized: the JSON report records each licence file's
    # SHA-256 (files, licence.evidence), the BOM attaches the text.
    licence_texts: dict[str, str] = Field(default_factory=dict, exclude=True)

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)


def report_json_schema() -> dict[str, Any]:
    """The JSON Schema of the Report, as committed in sbom/report.schema.json."""
    schema = Report.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://provscan.dev/schema/report-{SCHEMA_VERSION}.json"
    return schema
