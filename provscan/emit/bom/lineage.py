"""Which base models and publishers does the AI-BOM name, and who are they?"""

from __future__ import annotations

from cyclonedx.model import (
    ExternalReference,
    ExternalReferenceType,
)
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.contact import OrganizationalEntity, PostalAddress
from cyclonedx.model.license import LicenseAcknowledgement
from packageurl import PackageURL

from provscan.emit.bom.licences import bom_licence, licence_url
from provscan.emit.bom.values import HF_BASE_URL, props, split_repo_id, xs_uri
from provscan.knowledge.base import known_model, licence_by_key
from provscan.report import LineageEdge, OriginFacts, Publisher, Report


def publisher_entity(publisher: Publisher | None) -> OrganizationalEntity | None:
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
        organisation = publisher_entity(roots.get(split[0])) if split else None
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
                    bom_licence(
                        entry.key,
                        entry.name,
                        LicenseAcknowledgement.CONCLUDED,
                        None,
                        licence_url(entry.key),
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
