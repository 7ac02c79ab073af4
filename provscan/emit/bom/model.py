"""What does the AI-BOM say about the model itself: identity, files, facts and card?"""

from __future__ import annotations

from typing import Any

from cyclonedx.model import (
    ExternalReference,
    ExternalReferenceType,
    HashAlgorithm,
    HashType,
    Property,
)
from cyclonedx.model.component import Component, ComponentType, Pedigree
from packageurl import PackageURL

from provscan.emit.bom.licences import licence_properties, licences
from provscan.emit.bom.lineage import ancestors, publisher_entity
from provscan.emit.bom.probes import probe_properties
from provscan.emit.bom.signatures import signature_properties
from provscan.emit.bom.values import (
    HF_BASE_URL,
    model_ref,
    props,
    resolve_link,
    split_repo_id,
    xs_uri,
)
from provscan.knowledge.base import licence_by_key
from provscan.report import FileEntry, Report, Severity

# Named in the model component's properties so a reader knows what its one hash covers.
MANIFEST_STANDARD = "openssf-model-signing/v1.0"


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
    pairs += licence_properties(report) + _origin_properties(report)
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


def model_component(report: Report) -> Component:
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
    organisation = publisher_entity(report.origin.publisher) if report.origin else None
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
        licenses=licences(report),
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
