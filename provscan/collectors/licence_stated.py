"""Which licence does each stated licence id, name or link (card, GGUF, config) mean?

Values are read as a person reads them: invisible characters and look-alike letters undone,
with a finding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from provscan.collectors.normalise import normalise, skeleton
from provscan.collectors.parent_refs import hub_repo_of_url, shown
from provscan.collectors.serialization.gguf.scan import read_provenance
from provscan.files import SniffedFile
from provscan.knowledge.base import LicenceEntry, known_model, licence_base, licence_by_key, lookup
from provscan.report import (
    CardFacts,
    Finding,
    JsonValue,
    LicenceEvidence,
    Severity,
    file_finding,
    target_finding,
)

# Evidence sources, strongest first, for choosing the model's own licence.
METADATA = (
    "card:license",
    "card:license_name",
    "card:license_link",
    "card:tags",
    "gguf",
    "config",
)


@dataclass
class Gathered:
    """The licence evidence and findings collected so far."""

    evidence: list[LicenceEvidence] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def looked_up(
    source: str, value: str, path: str | None, gathered: Gathered | None = None
) -> LicenceEvidence:
    """The licence a stated id, name or link means, read as a person reads it: invisible
    characters, compatibility forms and look-alike letters undone (with an LIC-ID-NORMALISED
    finding in `gathered`), then looked up by name, alias, URL, a Hub repo's known licence,
    or by its TS #39 skeleton."""
    normal = normalise(value)
    entry = lookup(value) or lookup(normal.text) or _by_link(normal.text)
    if entry is None and normal.text:
        entry = by_skeleton(normal.text)
    if gathered is not None and normal.deceptive:
        read_as = f"read as {entry.key}" if entry else "matches no licence provscan knows"
        message = (
            f"{path or source}: licence {source.split(':', 1)[-1]} {shown(value)} "
            f"{read_as} ({'; '.join(normal.changes)}): the stated value only looks like "
            "the licence it names"
        )
        details: dict[str, JsonValue] = {
            "stated": shown(value),
            "key": entry.key if entry else None,
            "changes": list(normal.changes),
        }
        gathered.findings.append(
            file_finding("LIC-ID-NORMALISED", Severity.HIGH, path, message, **details)
            if path is not None
            else target_finding("LIC-ID-NORMALISED", Severity.HIGH, message, **details)
        )
    return LicenceEvidence(
        source=source,
        path=path,
        value=value,
        key=entry.key if entry else None,
        kind=entry.kind if entry else None,
    )


def _by_link(text: str) -> LicenceEntry | None:
    """A license_link into a Hub repo whose licence is known (a release's LICENSE file)."""
    repo = hub_repo_of_url(text)
    model = known_model(repo) if repo else None
    return licence_by_key(model.licence) if model else None


@cache
def _skeletons() -> dict[str, frozenset[str]]:
    index: dict[str, set[str]] = {}
    for entry in licence_base().licences:
        for name in entry.names():
            index.setdefault(skeleton(name), set()).add(entry.key)
    return {k: frozenset(v) for k, v in index.items()}


def by_skeleton(text: str) -> LicenceEntry | None:
    """The one licence whose id or name looks like `text`; None when none or several do."""
    keys = _skeletons().get(skeleton(text), frozenset())
    return licence_by_key(next(iter(keys))) if len(keys) == 1 else None


def card_evidence(card: CardFacts | None, gathered: Gathered) -> None:
    if card is None:
        return
    for value in card.licenses:
        if value == "other" and (card.license_name or card.license_link):
            continue  # 'other' says: look at license_name / license_link
        found = looked_up("card:license", value, card.path, gathered)
        gathered.evidence.append(found)
        if found.key is None and value not in {
            "other",
            "unknown",
        }:  # valid Hub ids: "see elsewhere"
            gathered.findings.append(
                file_finding(
                    "LIC-UNKNOWN-ID",
                    Severity.MEDIUM,
                    card.path,
                    f"{card.path}: licence id {value!r} is not a Hugging Face licence id provscan knows",
                    value=value,
                )
            )
    if card.license_name:
        gathered.evidence.append(
            looked_up("card:license_name", card.license_name, card.path, gathered)
        )
    if card.license_link and "://" in card.license_link:
        gathered.evidence.append(
            looked_up("card:license_link", card.license_link, card.path, gathered)
        )
    for tag in card.tags:  # the Hub's own "license:<id>" tags, which a card may contradict
        if tag.casefold().startswith("license:") and tag[8:].strip() not in {"other", "unknown"}:
            gathered.evidence.append(looked_up("card:tags", tag[8:], card.path, gathered))
    if card.license_prose:
        gathered.evidence.append(looked_up("card:prose", card.license_prose, card.path, gathered))


def gguf_evidence(item: SniffedFile, gathered: Gathered) -> None:
    meta = read_provenance(item.file)
    if meta is None:
        return  # reported by the serialization step
    for key in ("general.license", "general.license.name", "general.license.link"):
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            gathered.evidence.append(looked_up("gguf", value, item.file.rel, gathered))
