"""What does provscan know about licences, publishers and model families? Typed YAML.

The knowledge lives in provscan/knowledge/*.yaml so it can be reviewed and updated
without touching code; every entry carries its source. Each file is validated against the
models below when first loaded; a malformed file is a bug in provscan, raised loudly.
"""

from __future__ import annotations

import fnmatch
import re
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from provscan.knowledge.files import load_yaml
from provscan.report import Commercial, LicenceKind, Threshold


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---------------------------------------------------------------- licences.yaml


class Territorial(_Strict):
    territories: tuple[str, ...]
    scope: Literal["all", "multimodal"]
    clause: str
    where: str  # which document carries the clause ("AUP", "licence section 1")


class Terms(_Strict):
    commercial: Commercial
    commercial_note: str | None = None
    thresholds: tuple[Threshold, ...] = ()
    aup: str | None = None  # licence key of the acceptable-use policy it incorporates
    aup_url: str | None = None
    attribution_display: str | None = None
    attribution_notice: str | None = None
    naming_prefix: str | None = None
    output_restriction: str | None = None
    territorial: tuple[Territorial, ...] = ()
    governing_law: str | None = None  # ISO 3166 code, with subdivision where it matters (US-CA)
    venue: str | None = None
    flow_down: bool | None = None
    remote_restriction: bool | None = None
    revocable: bool | None = None
    copyleft: Literal["none", "weak", "strong", "network"] | None = None


class LicenceEntry(_Strict):
    key: str
    name: str
    kind: LicenceKind = "licence"
    spdx: str | None = None
    hub_ids: tuple[str, ...] = ()  # Hugging Face `license:` ids that mean this licence
    aliases: tuple[str, ...] = ()  # license_name / GGUF / prose spellings, compared case-folded
    urls: tuple[str, ...] = ()  # license_link values that point at this licence
    text: str | None = None  # reference text in knowledge/licence_texts/
    markers: tuple[str, ...] = ()  # phrases that must all appear (normalised) for a text match
    source: str
    verified: Literal["V", "S", "U"]  # checked against the primary text / secondary / unchecked
    terms: Terms

    def names(self) -> set[str]:
        """Every spelling that means this licence: key, Hub ids, aliases, name, SPDX id."""
        return {
            self.key,
            *self.hub_ids,
            *self.aliases,
            self.name,
            *([self.spdx] if self.spdx else []),
        }

    @model_validator(mode="after")
    def _identifiable(self) -> LicenceEntry:
        if self.text is None and not self.markers:
            raise ValueError(f"licence {self.key}: needs a reference text or markers")
        return self


class LicenceBase(_Strict):
    hub_ids_source: str
    hub_ids: tuple[str, ...]  # the Hub's full list of `license:` ids
    licences: tuple[LicenceEntry, ...]

    @model_validator(mode="after")
    def _consistent(self) -> LicenceBase:
        keys = [e.key for e in self.licences]
        if len(keys) != len(set(keys)):
            raise ValueError("licences.yaml: duplicate keys")
        mapped: dict[str, str] = {}
        for entry in self.licences:
            for hub_id in entry.hub_ids:
                if hub_id in mapped:
                    raise ValueError(f"hub id {hub_id} maps to {mapped[hub_id]} and {entry.key}")
                mapped[hub_id] = entry.key
            if entry.terms.aup is not None and entry.terms.aup not in keys:
                raise ValueError(f"licence {entry.key}: unknown aup key {entry.terms.aup}")
        missing = set(self.hub_ids) - set(mapped) - {"other", "unknown"}
        if missing:
            raise ValueError(f"licences.yaml: hub ids with no entry: {sorted(missing)}")
        return self


# ---------------------------------------------------------------- publishers.yaml


class PublisherEntry(_Strict):
    key: str
    hub_orgs: tuple[str, ...]
    legal_entity: str
    country: str = Field(pattern=r"^[A-Z]{2}$")  # ISO 3166-1 alpha-2 of the legal entity's seat
    evidence: Literal["L", "T", "P", "K"]  # licence clause / own terms / press / background
    evidence_url: str
    verified_org: bool  # the Hub shows the org as verified (a name alone is not an identity)
    last_reviewed: str
    notes: str | None = None


class PublisherBase(_Strict):
    publishers: tuple[PublisherEntry, ...]


# ---------------------------------------------------------------- families.yaml


class TokenizerSignature(_Strict):
    vocab_sizes: tuple[int, ...] = ()  # config vocab_size values (padded sizes included)
    special_tokens: tuple[str, ...] = ()  # tokens found in tokenizer files
    min_special: int = 2  # how many special tokens must be present for a strong match


class FamilyEntry(_Strict):
    key: str
    name: str
    publisher: str  # publishers.yaml key of the family's creator
    model_types: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ()
    exclusive: bool  # model_type/architecture used only by this publisher (strong evidence)
    multimodal_model_types: tuple[str, ...] = ()
    tokenizer: TokenizerSignature = TokenizerSignature()
    # licences.yaml keys the family's official releases are published under. One key: a
    # model whose files show this family carries that licence's terms. Several: which one
    # applies depends on the release, so a model not naming its base is reviewed.
    licences: tuple[str, ...] = ()
    source: str


class FamilyBase(_Strict):
    families: tuple[FamilyEntry, ...]

    @model_validator(mode="after")
    def _licences_known(self) -> FamilyBase:
        keys = {e.key for e in licence_base().licences}
        for family in self.families:
            unknown = set(family.licences) - keys
            if unknown:
                raise ValueError(f"family {family.key}: unknown licence keys {sorted(unknown)}")
        return self


# ---------------------------------------------------------------- models.yaml


class KnownModel(_Strict):
    """An official release whose licence and family are known: matched by repo id pattern."""

    pattern: str  # fnmatch pattern over 'org/name', case-insensitive
    licence: str  # licences.yaml key
    family: str | None = None
    # families.yaml keys of other publishers' families the release is built on (an official
    # distillation onto Llama or Qwen weights): its files showing them is no claim mismatch.
    built_on: tuple[str, ...] = ()
    multimodal: bool = False
    source: str


class ModelBase(_Strict):
    models: tuple[KnownModel, ...]

    @model_validator(mode="after")
    def _references_known(self) -> ModelBase:
        licences = {e.key for e in licence_base().licences}
        families = {e.key for e in family_base().families}
        for model in self.models:
            if model.licence not in licences:
                raise ValueError(f"model {model.pattern}: unknown licence {model.licence}")
            unknown = {k for k in (model.family, *model.built_on) if k is not None} - families
            if unknown:
                raise ValueError(f"model {model.pattern}: unknown families {sorted(unknown)}")
        return self


@cache
def licence_base() -> LicenceBase:
    return LicenceBase.model_validate(load_yaml("licences.yaml"))


@cache
def publisher_base() -> PublisherBase:
    return PublisherBase.model_validate(load_yaml("publishers.yaml"))


@cache
def family_base() -> FamilyBase:
    return FamilyBase.model_validate(load_yaml("families.yaml"))


@cache
def model_base() -> ModelBase:
    return ModelBase.model_validate(load_yaml("models.yaml"))


@cache
def reference_text(name: str) -> str:
    path = resources.files("provscan") / "knowledge" / "licence_texts" / name
    return path.read_text(encoding="utf-8")


def licence_by_key(key: str) -> LicenceEntry | None:
    return next((e for e in licence_base().licences if e.key == key), None)


_URL_NOISE = re.compile(r"^https?://(www\.)?|/+$")


def lookup(value: str) -> LicenceEntry | None:
    """The entry a licence id, name, alias, SPDX id or URL means; None if unknown."""
    folded = value.strip().casefold()
    url = _URL_NOISE.sub("", folded)
    for entry in licence_base().licences:
        if folded in {n.casefold() for n in entry.names()}:
            return entry
        if url and any(_URL_NOISE.sub("", u.casefold()) == url for u in entry.urls):
            return entry
    return None


def publisher_for_org(org: str) -> PublisherEntry | None:
    folded = org.casefold()
    for entry in publisher_base().publishers:
        if any(o.casefold() == folded for o in entry.hub_orgs):
            return entry
    return None


def publisher_by_key(key: str) -> PublisherEntry | None:
    return next((e for e in publisher_base().publishers if e.key == key), None)


def family_by_key(key: str) -> FamilyEntry | None:
    return next((e for e in family_base().families if e.key == key), None)


def known_model(repo_id: str) -> KnownModel | None:
    folded = repo_id.casefold()
    for entry in model_base().models:
        if fnmatch.fnmatchcase(folded, entry.pattern.casefold()):
            return entry
    return None
