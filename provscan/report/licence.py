"""What may the model be used for? Every licence signal and the terms concluded."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from provscan.report.base import ReportModel

LicenceKind = Literal["licence", "aup", "notice"]
Commercial = Literal["yes", "no", "conditional", "unknown"]


class LicenceEvidence(ReportModel):
    """One place the artifact says something about its licence, and what provscan made of it.

    `source`: card:license | card:license_name | card:license_link | card:prose | file |
    gguf | config | knowledge:model (the licence a known official repo was released under).
    `key` is the knowledge-base key it identified (None: not identified); `score` is the
    text similarity (0-1) for licence files; `sha256` identifies the text that was read.
    `modified_clauses`: the clauses of the identified licence that the file does not carry
    word for word ("2. Additional Commercial Terms (missing or changed)").
    """

    source: str
    path: str | None = None
    value: str
    key: str | None = None
    kind: LicenceKind | None = None
    score: float | None = Field(default=None, ge=0, le=1)
    sha256: str | None = None
    modified_clauses: tuple[str, ...] = ()


class Threshold(ReportModel):
    """A size of the licensee above which the licence's terms change.

    `effect`: separate_licence (the grant does not reach: ask the licensor), terminates (the
    licence ends), or display (a duty to show the model's name starts; use stays allowed).
    """

    metric: Literal["monthly_active_users", "annual_revenue_usd", "monthly_revenue_usd"]
    value: int = Field(ge=0)
    effect: Literal["separate_licence", "terminates", "display"] = "separate_licence"
    clause: str


class TerritorialRestriction(ReportModel):
    """Territories where the licence grants no rights (for the models in `scope`)."""

    territories: tuple[str, ...]  # ISO 3166-1 alpha-2 codes, or "EU"
    scope: Literal["all", "multimodal"]
    clause: str  # the licence's own words
    applies: bool | None  # does the scope cover this model? None: provscan cannot tell


class LicenceTerms(ReportModel):
    """The machine-checkable terms of one licence that governs this model."""

    key: str
    name: str
    kind: LicenceKind = "licence"
    spdx: str | None = None
    commercial: Commercial
    commercial_note: str | None = None
    thresholds: tuple[Threshold, ...] = ()
    aup_url: str | None = None
    attribution_display: str | None = None  # text the licensee must display ("Built with Llama")
    attribution_notice: str | None = None  # notice text to ship with copies
    naming_prefix: str | None = None  # derivative model names must begin with this
    output_restriction: str | None = None
    territorial: tuple[TerritorialRestriction, ...] = ()
    governing_law: str | None = None
    venue: str | None = None
    flow_down: bool | None = None  # use restrictions must be passed on as enforceable terms
    remote_restriction: bool | None = None  # licensor may restrict use remotely
    copyleft: Literal["none", "weak", "strong", "network"] | None = None
    source: str  # where these terms were read
    via: str | None = None  # None: the model's own licence; else the ancestor it comes from


class LicenceFacts(ReportModel):
    """What the model may be used for: every licence signal, and the terms concluded from them."""

    evidence: tuple[LicenceEvidence, ...] = ()
    declared: tuple[str, ...] = ()  # keys the card / GGUF / config metadata declare
    detected: tuple[str, ...] = ()  # keys identified from licence files' text
    concluded: tuple[str, ...] = ()  # the model's own licence(s), as provscan concludes
    inherited: tuple[str, ...] = ()  # licences that reach it through its base models
    terms: tuple[LicenceTerms, ...] = ()  # concluded, inherited and their AUPs
