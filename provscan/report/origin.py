"""Where do the weights come from? Publisher, lineage, family and jurisdictions."""

from __future__ import annotations

from typing import Literal

from provscan.report.base import ReportModel

Confidence = Literal["high", "medium", "low"]
Relation = Literal["finetune", "adapter", "merge", "quantized", "unknown"]


class Publisher(ReportModel):
    """A Hub organisation, and the legal entity behind it when the registry knows it."""

    org: str
    key: str | None = None  # publishers.yaml key; None: not in the registry
    legal_entity: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-2
    evidence_url: str | None = None


class LineageEdge(ReportModel):
    """`child` was made from `base` (by `relation`), as `sources` say."""

    child: str
    base: str
    relation: Relation
    sources: tuple[str, ...]


class FamilySignal(ReportModel):
    """One piece of evidence, read from the files, for the model family."""

    family: str
    signal: Literal[
        "model_type", "architecture", "tokenizer", "vocab_size", "chat_template",
        "name_or_path", "auto_map", "gguf", "params", "generation_config", "knowledge",
    ]  # fmt: skip
    path: str | None = None
    detail: str
    strength: Literal["strong", "weak"]


class Jurisdiction(ReportModel):
    """A country the weights come from, and why provscan thinks so."""

    country: str
    org: str
    role: Literal["publisher", "root", "family"]  # uploader, lineage root, or inferred family
    confidence: Confidence
    evidence: str


class OriginFacts(ReportModel):
    """Where the weights come from: publisher, base-model chain, family, jurisdictions."""

    publisher: Publisher | None = None  # this artifact's own publisher, when known
    lineage: tuple[LineageEdge, ...] = ()
    roots: tuple[Publisher, ...] = ()  # publishers of the lineage roots
    root_models: tuple[str, ...] = ()
    family: str | None = None
    family_confidence: Confidence | None = None
    family_signals: tuple[FamilySignal, ...] = ()
    multimodal: bool | None = None
    jurisdictions: tuple[Jurisdiction, ...] = ()
