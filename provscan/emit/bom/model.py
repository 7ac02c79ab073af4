"""What does the AI-BOM say about the model itself: identity, files, licences, lineage, facts?"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from cyclonedx.contrib.license.exceptions import InvalidSpdxLicenseException
from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import (
    AttachedText,
    ExternalReference,
    ExternalReferenceType,
    HashAlgorithm,
    HashType,
    Property,
    XsUri,
)
from cyclonedx.model.component import Component, ComponentType, Pedigree
from cyclonedx.model.contact import OrganizationalEntity, PostalAddress
from cyclonedx.model.license import DisjunctiveLicense, LicenseAcknowledgement
from jsonschema import Draft7Validator
from packageurl import PackageURL

from provscan.emit.bom.probes import probe_properties
from provscan.emit.bom.signatures import signature_properties
from provscan.knowledge.base import known_model, licence_by_key, lookup, reference_text
from provscan.report import FileEntry, LineageEdge, OriginFacts, Publisher, Report, Severity

HF_BASE_URL = "https://huggingface.co"
# Named in the model component's properties so a reader knows what its one hash covers.
MANIFEST_STANDARD = "openssf-model-signing/v1.0"


def props(pairs: Iterable[tuple[str, object]]) -> list[Property]:
    """Properties for the pairs whose value is known; booleans as 'true'/'false'."""
    out: list[Property] = []
    for name, value in pairs:
        if value is None or value == "" or value == ():
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        out.append(Property(name=name, value=text))
    return out


_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Kept as written: the delimiters of a URL (RFC 3986 gen-delims but [ ], and sub-delims).
_URL_DELIMITERS = ":/?@!$&'()*+,;=%~"


def xs_uri(url: str) -> XsUri | None:
    """A URL as the BOM may hold it, or None when it cannot be one.

    A card's license_link or base_model may hold anything (controls, spaces, brackets): what
    an IRI cannot hold is percent-encoded (a second '#' too); what is still not an IRI
    reference after that is left out (the JSON report keeps the text as written).
    """
    head, hash_, fragment = _STRAY_PERCENT.sub("%25", url).partition("#")
    text = quote(head, safe=_URL_DELIMITERS) + hash_ + quote(fragment, safe=_URL_DELIMITERS)
    if not Draft7Validator.FORMAT_CHECKER.conforms(text, "iri-reference"):
        return None
    return XsUri(text)


def split_repo_id(repo_id: str) -> tuple[str, str] | None:
    """('org', 'name') for an 'org/name' Hub id, None for anything else."""
    parts = repo_id.split("/")
    if len(parts) == 2 and all(part.strip() for part in parts):  # a purl strips blanks
        return parts[0], parts[1]
    return None


def model_ref(report: Report) -> str:
    return f"model:{report.target.repo_id or report.target.name}"


def resolve_link(link: str, report: Report) -> str:
    """An absolute URL for a card's license_link; HF cards often give a repo-relative path."""
    if "://" in link or report.target.repo_id is None:
        return link
    revision = report.target.revision or "main"
    return f"{HF_BASE_URL}/{report.target.repo_id}/blob/{revision}/{link.lstrip('./')}"


def _licence(
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


def _licence_url(key: str | None) -> str | None:
    entry = licence_by_key(key) if key else None
    return entry.urls[0] if entry is not None and entry.urls else None


def _text_for(key: str, report: Report, licence_texts: Mapping[str, str]) -> str | None:
    """The licence's text: the model's own file where it was identified, else the reference."""
    facts = report.licence
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


def licences(report: Report, licence_texts: Mapping[str, str]) -> list[DisjunctiveLicense]:
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
            _licence(key, value, LicenseAcknowledgement.DECLARED, None, url or _licence_url(key))
        )
    for key in facts.concluded if facts else ():
        out.append(
            _licence(
                key,
                key,
                LicenseAcknowledgement.CONCLUDED,
                _text_for(key, report, licence_texts),
                _licence_url(key),
            )
        )
    return out


def _organisation(publisher: Publisher | None) -> OrganizationalEntity | None:
    if publisher is None or publisher.key is None:
        return None
    link = xs_uri(publisher.evidence_url) if publisher.evidence_url else None
    return OrganizationalEntity(
        name=publisher.legal_entity,
        urls=[link] if link is not None else None,
        address=PostalAddress(country=publisher.country) if publisher.country else None,
    )


def ancestors(report: Report, own_ref: str) -> list[Component]:
    """The base models as machine-learning-model components (pedigree ancestors)."""
    origin = report.origin
    if origin is None:  # the origin step did not run: the card's claims, unchecked
        bases = report.card.base_models if report.card else ()
        edges = [
            LineageEdge(child=own_ref, base=b, relation="unknown", sources=("card",)) for b in bases
        ]
        origin = OriginFacts(lineage=tuple(edges))
    roots = {root.org: root for root in origin.roots}
    out: list[Component] = []
    for edge in origin.lineage:
        base = edge.base
        ref = f"model:{base}"
        if ref == own_ref:
            ref = f"{ref}#base"  # a local folder named like its base model: refs must stay unique
        split = split_repo_id(base)
        organisation = _organisation(roots.get(split[0])) if split else None
        known = known_model(base)
        entry = licence_by_key(known.licence) if known else None
        out.append(
            Component(
                type=ComponentType.MACHINE_LEARNING_MODEL,
                bom_ref=ref,
                group=split[0] if split else None,
                name=split[1] if split else base,
                purl=PackageURL("huggingface", split[0], split[1]) if split else None,
                supplier=organisation,
                manufacturer=organisation,
                # The licence the base was released under, as the knowledge base records it.
                licenses=[
                    _licence(
                        entry.key,
                        entry.name,
                        LicenseAcknowledgement.CONCLUDED,
                        None,
                        _licence_url(entry.key),
                    )
                ]
                if entry is not None
                else [],
                external_references=[
                    ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=url)
                    for url in [xs_uri(f"{HF_BASE_URL}/{base}") if split else None]
                    if url is not None
                ],
                properties=props(
                    [
                        ("provscan:lineage:relation", edge.relation),
                        ("provscan:lineage:sources", ", ".join(edge.sources)),
                    ]
                ),
            )
        )
    return out


def file_component(entry: FileEntry) -> Component:
    hashes = [HashType(alg=HashAlgorithm.SHA_256, content=entry.sha256)] if entry.sha256 else []
    return Component(
        type=ComponentType.FILE,
        bom_ref=f"file:{entry.path}",
        name=entry.path,
        hashes=hashes,
        properties=props(
            [
                ("provscan:file:format", entry.format.value),
                ("provscan:file:role", entry.role.value),
                ("provscan:file:size", entry.size),
                # Only the unusual case is recorded, to keep the BOM short.
                ("provscan:file:symlink", True if entry.symlink else None),
                ("provscan:file:in_manifest", False if not entry.in_manifest else None),
                ("provscan:file:read", entry.read if entry.read != "whole" else None),
                (
                    "provscan:file:sha256_source",
                    entry.sha256_source if entry.sha256_source != "computed" else None,
                ),
            ]
        ),
    )


def _licence_properties(report: Report) -> list[tuple[str, object]]:
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


def _origin_properties(report: Report) -> list[tuple[str, object]]:
    origin = report.origin
    if origin is None:
        return []
    pairs: list[tuple[str, object]] = [
        ("provscan:origin:family", origin.family),
        ("provscan:origin:family_confidence", origin.family_confidence),
        ("provscan:origin:multimodal", origin.multimodal),
        ("provscan:origin:root_models", ",".join(origin.root_models)),
    ]
    for j in origin.jurisdictions:
        pairs.append(
            (f"provscan:origin:jurisdiction:{j.role}", f"{j.country} ({j.org}, {j.confidence})")
        )
    return pairs


def _record_properties(report: Report) -> list[tuple[str, object]]:
    """Per Hub record compared: whether it is authenticated, and the files it showed."""
    pairs: list[tuple[str, object]] = []
    for record in report.records:
        prefix = f"provscan:records:{record.source}"
        pairs += [
            (f"{prefix}:authenticated", record.authenticated),
            (f"{prefix}:consistent", len(record.consistent)),
            (f"{prefix}:mismatched", len(record.mismatched)),
            (f"{prefix}:not_compared", len(record.not_compared)),
        ]
    return pairs


def _model_properties(report: Report) -> list[Property]:
    pairs: list[tuple[str, object]] = []
    if report.manifest is not None:
        m = report.manifest
        pairs += [
            ("provscan:manifest:standard", MANIFEST_STANDARD),
            ("provscan:manifest:method", m.method),
            ("provscan:manifest:shard_size", m.shard_size),
            ("provscan:manifest:resources", len(m.resources)),
            ("provscan:manifest:allow_symlinks", m.allow_symlinks),
            ("provscan:manifest:ignore_paths", ",".join(m.ignore_paths)),
        ]
    if report.card is not None:
        pairs += [
            ("provscan:card:path", report.card.path),
            ("provscan:card:library_name", report.card.library_name),
        ]
    pairs += _licence_properties(report) + _origin_properties(report)
    pairs += signature_properties(report) + probe_properties(report)
    pairs += _record_properties(report)
    pairs.append(("provscan:findings:total", len(report.findings)))
    for severity in Severity:
        count = sum(1 for f in report.findings if f.severity is severity)
        pairs.append((f"provscan:findings:{severity.value}", count))
    if report.verdict is not None:
        policy = report.verdict.policy
        pairs += [
            ("provscan:verdict", report.verdict.decision.value),
            ("provscan:policy:digest", policy.digest),
            ("provscan:policy:engine", policy.engine),
            ("provscan:policy:engine_version", policy.engine_version),
            ("provscan:policy:packs", ",".join(policy.packs)),
        ]
    return props(pairs)


def _external_references(report: Report) -> list[ExternalReference]:
    """Where the model, its card and its licence texts live (each URL once)."""
    target = report.target
    urls: dict[str, ExternalReferenceType] = {}
    if target.repo_id:
        urls[f"{HF_BASE_URL}/{target.repo_id}"] = ExternalReferenceType.DISTRIBUTION
        if report.card is not None:
            revision = target.revision or "main"
            card_url = f"{HF_BASE_URL}/{target.repo_id}/blob/{revision}/{report.card.path}"
            urls[card_url] = ExternalReferenceType.MODEL_CARD
    if report.card is not None and report.card.license_link:
        urls.setdefault(
            resolve_link(report.card.license_link, report), ExternalReferenceType.LICENSE
        )
    for terms in report.licence.terms if report.licence else ():
        entry = licence_by_key(terms.key)
        for url in [*(entry.urls[:1] if entry else ()), terms.aup_url]:
            if url:
                urls.setdefault(url, ExternalReferenceType.LICENSE)
    links = [(xs_uri(url), kind) for url, kind in urls.items()]
    return [ExternalReference(type=kind, url=link) for link, kind in links if link is not None]


def model_component(report: Report, licence_texts: Mapping[str, str]) -> Component:
    """The model as a machine-learning-model component with its files nested inside."""
    target = report.target
    ref = model_ref(report)
    split = split_repo_id(target.repo_id) if target.repo_id else None
    purl = (
        PackageURL("huggingface", split[0], split[1], target.revision)
        if split and target.revision
        else None
    )
    lineage = ancestors(report, ref)
    organisation = _organisation(report.origin.publisher) if report.origin else None
    return Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        bom_ref=ref,
        group=split[0] if split else None,
        name=split[1] if split else target.name,
        version=target.revision,
        purl=purl,
        hashes=(
            [HashType(alg=HashAlgorithm.SHA_256, content=report.manifest.root_digest)]
            if report.manifest is not None
            else []
        ),
        supplier=organisation,
        manufacturer=organisation,
        licenses=licences(report, licence_texts),
        pedigree=Pedigree(ancestors=lineage) if lineage else None,
        external_references=_external_references(report),
        tags=report.card.tags if report.card is not None else (),
        components=[file_component(entry) for entry in report.files],
        properties=_model_properties(report),
    )


def model_card(report: Report) -> dict[str, Any] | None:
    """The CycloneDX modelCard (not in cyclonedx-python-lib 11), with unknown fields left out."""
    facts, card = report.model, report.card
    parameters: dict[str, Any] = {}
    if card is not None and card.pipeline_tag:
        parameters["task"] = card.pipeline_tag
    if facts is not None and facts.model_type:
        parameters["architectureFamily"] = facts.model_type
    if facts is not None and facts.architectures:
        parameters["modelArchitecture"] = facts.architectures[0]
    pairs: list[tuple[str, object]] = []
    if facts is not None:
        pairs += [
            ("provscan:model:architectures", ",".join(facts.architectures)),
            ("provscan:model:parameter_count", facts.parameter_count),
            ("provscan:model:config_parameter_count", facts.config_parameter_count),
            ("provscan:model:tensor_count", facts.tensor_count),
            ("provscan:model:weight_dtypes", ",".join(facts.weight_dtypes)),
            ("provscan:model:config_dtype", facts.config_dtype),
            ("provscan:model:context_length", facts.context_length),
            ("provscan:model:quantization", ",".join(facts.quantization)),
        ]
    properties = [{"name": p.name, "value": p.value} for p in props(pairs)]
    result: dict[str, Any] = {}
    if parameters:
        result["modelParameters"] = parameters
    if properties:
        result["properties"] = sorted(properties, key=lambda p: (p["name"], p["value"]))
    return result or None
