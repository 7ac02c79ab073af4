"""What snapshot does a CycloneDX 1.6 AI-BOM written by provscan (read as raw JSON) give?

Where each fact sits is documented in sbom/README.md. A BOM that lacks a provscan property a
section needs (one another tool wrote, say) leaves that section out, with the reason.
"""

from __future__ import annotations

from typing import Any

from provscan.diff import bom_parts
from provscan.diff.fields import (
    BadInput,
    int_text,
    obj,
    opt_arr,
    opt_obj,
    opt_text,
    split_list,
    text,
)
from provscan.diff.from_report import UNKNOWN_LICENCE
from provscan.diff.load import check_schema_major
from provscan.diff.snapshot import (
    Ancestor,
    FileFacts,
    InputKind,
    Licences,
    Lineage,
    ModelFacts,
    ProbeCandidate,
    Probes,
    Section,
    SignatureFacts,
    Snapshot,
    Target,
    Verdict,
)

_SIGNATURE_PREFIX = "provscan:signature:"


def bom_snapshot(document: Any, path: str) -> Snapshot:
    top = obj(document, "the BOM")
    spec = text(top.get("specVersion"), "specVersion")
    if not spec.startswith("1."):
        raise BadInput(f"CycloneDX specVersion {spec[:20]!r} is not supported (1.x)")
    metadata = opt_obj(top.get("metadata"), "metadata") or {}
    meta = bom_parts.properties(metadata.get("properties"), "metadata.properties")
    if "provscan:report:schema_version" in meta:
        check_schema_major(meta["provscan:report:schema_version"], "provscan:report:schema_version")
    model = bom_parts.model_component(top)
    props = bom_parts.properties(model.get("properties"), "the model's properties")
    missing: dict[Section, str] = {}
    licences = _licences(model, props)
    if licences is None:
        missing[Section.LICENCES] = "the BOM has no provscan:licence:* properties"
    findings = None
    if "provscan:findings:total" in props:
        findings = bom_parts.findings(top, props["provscan:findings:total"])
    else:
        missing[Section.FINDINGS] = "the BOM records no provscan findings (provscan:findings:*)"
    signatures = _signatures(props)
    if signatures is None:
        missing[Section.SIGNATURES] = "the BOM has no provscan:signature:* properties"
    verdict = _verdict(top, props)
    if verdict is not None and not bom_parts.has_claims(top):
        # provscan writes a claim per reason beside every verdict: these reasons were dropped.
        missing[Section.VERDICT] = "the BOM has a verdict but no declarations.claims (its reasons)"
    return Snapshot(
        path=path,
        kind=InputKind.BOM,
        tool_version=bom_parts.tool_version(metadata),
        scanned_at=opt_text(metadata.get("timestamp"), "metadata.timestamp"),
        target=_target(model),
        files=_files(model),
        licences=licences,
        lineage=_lineage(model, props),
        findings=findings,
        signatures=signatures,
        verdict=verdict,
        model=_model_facts(model),
        probes=_probes(props),
        steps={
            name.removeprefix("provscan:step:"): value
            for name, value in meta.items()
            if name.startswith("provscan:step:")
        },
        missing=missing,
    )


def _target(model: dict[str, Any]) -> Target:
    name = text(model.get("name"), "the model's name")
    group = opt_text(model.get("group"), "the model's group")
    return Target(
        name=f"{group}/{name}" if group else name,
        revision=opt_text(model.get("version"), "the model's version"),
        purl=opt_text(model.get("purl"), "the model's purl"),
        manifest_digest=bom_parts.sha256_of(model, "the model"),
    )


def _files(model: dict[str, Any]) -> dict[str, FileFacts]:
    files: dict[str, FileFacts] = {}
    for i, item in enumerate(opt_arr(model.get("components"), "the model's components")):
        where = f"the model's components[{i}]"
        component = obj(item, where)
        if component.get("type") != "file":
            continue
        path = text(component.get("name"), f"{where}.name")
        if path in files:
            raise BadInput(f"{where}: the file {path[:200]!r} is listed twice")
        props = bom_parts.properties(component.get("properties"), f"{where}.properties")
        size = props.get("provscan:file:size")
        files[path] = FileFacts(
            sha256=bom_parts.sha256_of(component, where),
            size=None if size is None else int_text(size, f"{where} provscan:file:size"),
            format=props.get("provscan:file:format"),
            role=props.get("provscan:file:role"),
        )
    return files


def _licences(model: dict[str, Any], props: dict[str, str]) -> Licences | None:
    concluded_text = props.get("provscan:licence:concluded")
    if concluded_text is None:
        return None
    concluded = [k.strip() for k in concluded_text.split(",") if k.strip()]
    # One `concluded` licences[] entry per concluded key, in order (the emitter's contract).
    entries = []
    for i, item in enumerate(opt_arr(model.get("licenses"), "the model's licenses")):
        licence = opt_obj(obj(item, f"licenses[{i}]").get("license"), f"licenses[{i}].license")
        if licence is not None and licence.get("acknowledgement") == "concluded":
            label = opt_text(licence.get("id"), f"licenses[{i}].license.id")
            entries.append(label or opt_text(licence.get("name"), f"licenses[{i}].license.name"))
    labels = (
        {k: v for k, v in zip(concluded, entries, strict=True) if v}
        if len(entries) == len(concluded)
        else {}
    )
    return Licences(
        concluded=frozenset(concluded) - {UNKNOWN_LICENCE},
        declared=split_list(props.get("provscan:licence:declared")),
        inherited=split_list(props.get("provscan:licence:inherited")),
        labels=tuple(sorted(labels.items())),
    )


def _lineage(model: dict[str, Any], props: dict[str, str]) -> Lineage:
    pedigree = opt_obj(model.get("pedigree"), "the model's pedigree") or {}
    ancestors = []
    for i, item in enumerate(opt_arr(pedigree.get("ancestors"), "pedigree.ancestors")):
        where = f"pedigree.ancestors[{i}]"
        component = obj(item, where)
        ref = component.get("bom-ref")
        if isinstance(ref, str) and ref.startswith("model:"):
            base = ref.removeprefix("model:").removesuffix("#base")
        else:
            name = text(component.get("name"), f"{where}.name")
            group = opt_text(component.get("group"), f"{where}.group")
            base = f"{group}/{name}" if group else name
        ancestor_props = bom_parts.properties(component.get("properties"), f"{where}.properties")
        relation = ancestor_props.get("provscan:lineage:relation") or "unknown"
        ancestors.append(Ancestor(base=base, relation=relation))
    return Lineage(tuple(ancestors), split_list(props.get("provscan:origin:root_models")))


def _signatures(props: dict[str, str]) -> dict[str, SignatureFacts] | None:
    count = props.get("provscan:signature:count")
    if count is None:
        return None
    fields: dict[str, dict[str, str]] = {}
    for name, value in props.items():
        rest = name.removeprefix(_SIGNATURE_PREFIX)
        if rest == name or ":" not in rest:
            continue
        # Paths may hold ':'; the field name after the last ':' never does.
        path, field_name = rest.rsplit(":", 1)
        fields.setdefault(path, {})[field_name] = value
    if len(fields) != int_text(count, "provscan:signature:count"):
        raise BadInput(
            f"provscan:signature:count is {count} but properties describe {len(fields)} signatures"
        )
    return {
        path: SignatureFacts(
            status=f.get("status"),
            integrity=f.get("integrity"),
            signer=f.get("identity") or f.get("certificate") or f.get("key"),
        )
        for path, f in fields.items()
    }


def _verdict(top: dict[str, Any], props: dict[str, str]) -> Verdict | None:
    decision = bom_parts.decision(top, props)
    if decision is None:
        return None
    return Verdict(
        decision=decision,
        reasons=bom_parts.reasons(top),
        policy_digest=props.get("provscan:policy:digest"),
    )


def _model_facts(model: dict[str, Any]) -> ModelFacts:
    card = opt_obj(model.get("modelCard"), "modelCard") or {}
    parameters = opt_obj(card.get("modelParameters"), "modelCard.modelParameters") or {}
    facts = bom_parts.properties(card.get("properties"), "modelCard.properties")

    def fact(key: str) -> str | None:
        return facts.get(f"provscan:model:{key}")

    return ModelFacts(
        architectures=fact("architectures")
        or opt_text(parameters.get("modelArchitecture"), "modelArchitecture"),
        model_type=opt_text(parameters.get("architectureFamily"), "architectureFamily"),
        parameter_count=fact("parameter_count"),
        config_parameter_count=fact("config_parameter_count"),
        tensor_count=fact("tensor_count"),
        weight_dtypes=fact("weight_dtypes"),
        config_dtype=fact("config_dtype"),
    )


def _probes(props: dict[str, str]) -> Probes | None:
    suite_id = props.get("provscan:probes:suite_id")
    if suite_id is None:
        return None
    candidates = set()
    n = 1
    while f"provscan:probe:{n}:status" in props:
        prefix = f"provscan:probe:{n}"
        candidates.add(
            ProbeCandidate(
                status=props[f"{prefix}:status"],
                family=props.get(f"{prefix}:family", ""),
                trigger=props.get(f"{prefix}:trigger"),
            )
        )
        n += 1
    return Probes(
        suite=f"{suite_id} {props.get('provscan:probes:suite_version', '')}".strip(),
        engine=props.get("provscan:probes:engine", ""),
        partial=props.get("provscan:probes:partial") == "true",
        candidates=frozenset(candidates),
    )
