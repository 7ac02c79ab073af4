"""What does the AI-BOM say about the model's licences, declared and concluded?"""

from __future__ import annotations

import json

from cyclonedx.contrib.license.exceptions import InvalidSpdxLicenseException
from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import (
    AttachedText,
)
from cyclonedx.model.license import DisjunctiveLicense, LicenseAcknowledgement

from provscan.emit.bom.values import resolve_link, xs_uri
from provscan.knowledge.base import licence_by_key, lookup, reference_text
from provscan.report import Report


def bom_licence(
    key: str | None,
    fallback_name: str,
    ack: LicenseAcknowledgement,
    text: str | None,
    url: str | None,
) -> DisjunctiveLicense:
    """One licence entry: its SPDX id where there is one, else its name, text and URL."""
    factory = LicenseFactory()
    entry = licence_by_key(key) if key else None
    attached = AttachedText(content=text) if text is not None else None
    link = xs_uri(url) if url else None
    if entry is not None and entry.spdx:
        try:
            # make_with_id, not make_from_string: an SPDX expression here would turn the
            # licence list into an expression, which 1.6 forbids mixing with named licences.
            return factory.make_with_id(entry.spdx, text=attached, url=link, acknowledgement=ack)
        except InvalidSpdxLicenseException:
            pass
    name = entry.name if entry is not None else fallback_name
    if not name.strip():  # a card's `license: ""`: the library refuses a licence without a name
        name = f"(blank: {json.dumps(name)})"
    return factory.make_with_name(name, text=attached, url=link, acknowledgement=ack)


def licence_url(key: str | None) -> str | None:
    entry = licence_by_key(key) if key else None
    return entry.urls[0] if entry is not None and entry.urls else None


def _text_for(key: str, report: Report) -> str | None:
    """The licence's text: the model's own file where it was identified (as the scan read
    it), else the reference."""
    facts = report.licence
    licence_texts = report.licence_texts
    for e in facts.evidence if facts else ():
        if e.source == "file" and e.key == key and e.path is not None and e.path in licence_texts:
            return licence_texts[e.path]
    entry = licence_by_key(key)
    return reference_text(entry.text) if entry is not None and entry.text else None


def _declared(report: Report) -> list[tuple[str, str, str | None]]:
    """(source, value as written, knowledge key) for each licence the metadata declares.

    From the licence step's evidence; when that step did not run, from the card itself.
    """
    if report.licence is not None:
        return [
            (e.source, e.value, e.key)
            for e in report.licence.evidence
            if e.source in {"card:license", "card:license_name", "gguf", "config"}
            and e.kind in (None, "licence")
        ]
    card = report.card
    if card is None:
        return []
    values = [v for v in card.licenses if not (v == "other" and card.license_name)]
    values += [card.license_name] if card.license_name else []
    out: list[tuple[str, str, str | None]] = []
    for value in values:
        entry = lookup(value)
        out.append(("card:license", value, entry.key if entry else None))
    return out


def licences(report: Report) -> list[DisjunctiveLicense]:
    """Declared licences (what the artifact's metadata says, as written) and concluded ones
    (what provscan identified from texts and metadata, with the full text attached)."""
    out: list[DisjunctiveLicense] = []
    card = report.card
    facts = report.licence
    declared_link = resolve_link(card.license_link, report) if card and card.license_link else None
    seen: set[str] = set()
    for source, value, key in _declared(report):
        label = key or value
        if label in seen:
            continue
        seen.add(label)
        url = declared_link if source.startswith("card") else None
        out.append(
            bom_licence(key, value, LicenseAcknowledgement.DECLARED, None, url or licence_url(key))
        )
    for key in facts.concluded if facts else ():
        out.append(
            bom_licence(
                key,
                key,
                LicenseAcknowledgement.CONCLUDED,
                _text_for(key, report),
                licence_url(key),
            )
        )
    return out


def licence_properties(report: Report) -> list[tuple[str, object]]:
    facts = report.licence
    if facts is None:
        return []
    pairs: list[tuple[str, object]] = [
        ("provscan:licence:declared", ",".join(facts.declared)),
        ("provscan:licence:detected", ",".join(facts.detected)),
        ("provscan:licence:concluded", ",".join(facts.concluded) or "unknown"),
        ("provscan:licence:inherited", ",".join(facts.inherited)),
    ]
    for t in facts.terms:
        if t.kind != "licence":
            continue
        prefix = f"provscan:licence:{t.key}"
        pairs += [
            (f"{prefix}:commercial", t.commercial),
            (f"{prefix}:via", t.via),
            (f"{prefix}:attribution", t.attribution_display),
            (f"{prefix}:naming_prefix", t.naming_prefix),
            (f"{prefix}:governing_law", t.governing_law),
            (f"{prefix}:aup", t.aup_url),
        ]
        for threshold in t.thresholds:
            pairs.append((f"{prefix}:threshold:{threshold.metric}", threshold.value))
        for restriction in t.territorial:
            scope = f"{','.join(restriction.territories)} ({restriction.scope} models)"
            pairs.append((f"{prefix}:territory-excluded", scope))
    return pairs
