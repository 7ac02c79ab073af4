"""What does the AI-BOM say about the model itself: identity, files, licences, lineage, facts?"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

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
from cyclonedx.model.license import DisjunctiveLicense, LicenseAcknowledgement
from packageurl import PackageURL

from provscan.report import CardFacts, FileEntry, Report, Severity

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


def split_repo_id(repo_id: str) -> tuple[str, str] | None:
    """('org', 'name') for an 'org/name' Hub id, None for anything else."""
    parts = repo_id.split("/")
    if len(parts) == 2 and all(parts):
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


def _chosen_licence_text(licence_texts: Mapping[str, str]) -> str | None:
    """The text of the model's main licence file: top-level LICENSE/LICENCE first."""

    def rank(path: str) -> tuple[int, bool, str]:
        base = path.rsplit("/", 1)[-1].upper()
        return path.count("/"), not base.startswith(("LICENSE", "LICENCE")), path

    for path in sorted(licence_texts, key=rank):
        return licence_texts[path]
    return None


def licences(
    card: CardFacts | None, report: Report, licence_texts: Mapping[str, str]
) -> list[DisjunctiveLicense]:
    """The licences the card declares: SPDX ids where they are ids, else named with terms."""
    if card is None:
        return []
    declared = list(card.licenses) or ([card.license_name] if card.license_name else [])
    factory = LicenseFactory()
    url = XsUri(resolve_link(card.license_link, report)) if card.license_link else None
    text_content = _chosen_licence_text(licence_texts)
    text = AttachedText(content=text_content) if text_content is not None else None
    out: list[DisjunctiveLicense] = []
    for tag in declared:
        try:
            # make_with_id, not make_from_string: an SPDX expression here would turn the
            # licence list into an expression, which 1.6 forbids mixing with named licences.
            out.append(factory.make_with_id(tag, acknowledgement=LicenseAcknowledgement.DECLARED))
            continue
        except InvalidSpdxLicenseException:
            pass
        # HF cards say 'license: other' and put the real name in license_name.
        name = card.license_name if tag == "other" and card.license_name else tag
        out.append(
            factory.make_with_name(
                name, text=text, url=url, acknowledgement=LicenseAcknowledgement.DECLARED
            )
        )
    return out


def ancestors(card: CardFacts | None, own_ref: str) -> list[Component]:
    """The card's base models as machine-learning-model components (pedigree ancestors)."""
    if card is None:
        return []
    out: list[Component] = []
    for base in dict.fromkeys(card.base_models):  # keeps order, drops repeats
        ref = f"model:{base}"
        if ref == own_ref:
            ref = f"{ref}#base"  # a local folder named like its base model: refs must stay unique
        split = split_repo_id(base)
        out.append(
            Component(
                type=ComponentType.MACHINE_LEARNING_MODEL,
                bom_ref=ref,
                group=split[0] if split else None,
                name=split[1] if split else base,
                purl=PackageURL("huggingface", split[0], split[1]) if split else None,
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
            ]
        ),
    )


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
    refs: list[ExternalReference] = []
    if target.repo_id:
        refs.append(
            ExternalReference(
                type=ExternalReferenceType.DISTRIBUTION,
                url=XsUri(f"{HF_BASE_URL}/{target.repo_id}"),
            )
        )
    if report.card is not None and report.card.license_link:
        refs.append(
            ExternalReference(
                type=ExternalReferenceType.LICENSE,
                url=XsUri(resolve_link(report.card.license_link, report)),
            )
        )
    lineage = ancestors(report.card, ref)
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
        licenses=licences(report.card, report, licence_texts),
        pedigree=Pedigree(ancestors=lineage) if lineage else None,
        external_references=refs,
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
        ]
    properties = [{"name": p.name, "value": p.value} for p in props(pairs)]
    result: dict[str, Any] = {}
    if parameters:
        result["modelParameters"] = parameters
    if properties:
        result["properties"] = sorted(properties, key=lambda p: (p["name"], p["value"]))
    return result or None
