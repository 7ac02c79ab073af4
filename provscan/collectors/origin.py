"""Where do the weights come from: publisher, base-model chain, family, jurisdictions?

Claims (the card's base_model, GGUF general.base_model.*, config _name_or_path, an
adapter's base, the models a mergekit config merges) are checked against evidence read from
the model's own files (model_type and architectures, tokenizer special tokens, vocabulary
size; origin_evidence). Cards are often wrong or stripped: the family and its publisher
still come out of the files (origin_family), and a claim the files contradict is a finding. A Hub org name is not an identity, so origin is only ever taken
from the curated publisher registry, never from the uploader's name alone. A stated parent
that only reads as a Hub repo id once changed, or not at all, is a finding (parent_refs).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from provscan.collectors.base import Collected
from provscan.collectors.origin_evidence import Evidence, gather_evidence
from provscan.collectors.origin_family import FamilyDecision, decide_family
from provscan.collectors.origin_hub import HUB_SOURCE, hub_lineage_findings, hub_root_models
from provscan.files import SniffedFile
from provscan.hub.lineage import HubLineage
from provscan.knowledge.base import (
    KnownModel,
    PublisherEntry,
    family_base,
    family_by_key,
    known_model,
    publisher_for_org,
)
from provscan.limits import Limits
from provscan.report import (
    CardFacts,
    Confidence,
    FamilySignal,
    Finding,
    Jurisdiction,
    LineageEdge,
    ModelFacts,
    OriginFacts,
    Publisher,
    Relation,
    Severity,
    TargetInfo,
    file_finding,
    target_finding,
)


def collect_origin(
    files: Sequence[SniffedFile],
    target: TargetInfo,
    card: CardFacts | None,
    model: ModelFacts | None,
    limits: Limits,
    hub: HubLineage | None = None,
) -> Collected[OriginFacts]:
    """`hub`: the base-model lineage the Hub records for an hf:// target (edges beyond the
    files' own claims, the real roots, and what could not be followed)."""
    evidence = gather_evidence(files, target, card, model, limits)
    own_known = known_model(target.repo_id) if target.repo_id else None
    if own_known is not None and own_known.family is not None:
        evidence.signals.append(
            FamilySignal(
                family=own_known.family,
                signal="knowledge",
                detail=f"{target.repo_id} is a known release of this family",
                strength="strong",
            )
        )
    return _decide(target, evidence, own_known, hub)


# ---------------------------------------------------------------- decisions


def _decide(
    target: TargetInfo, evidence: Evidence, own_known: KnownModel | None, hub: HubLineage | None
) -> Collected[OriginFacts]:
    decision = decide_family(evidence.signals, evidence.matched)
    family, confidence = decision.family, decision.confidence
    own_org = target.repo_id.split("/", 1)[0] if target.repo_id else evidence.gguf_org
    publisher = _publisher(own_org) if own_org else None
    lineage = _lineage(target, evidence.claims, hub)
    child = target.repo_id or target.name
    direct = tuple(dict.fromkeys(edge.base for edge in lineage if edge.child == child))
    bases = hub_root_models(target, hub) or direct
    roots = tuple(_publisher(base.split("/", 1)[0]) for base in bases)
    known_multimodal = own_known is not None and own_known.multimodal
    multimodal = _multimodal(evidence, bases, known_multimodal)
    family_publisher = decision.publisher
    # Publishers the artifact claims (its own, its bases'); the files may show another.
    claimed = {p.key for p in (publisher, *roots) if p is not None and p.key}
    jurisdictions = _jurisdictions(publisher, roots, bases, decision, claimed)
    findings = evidence.findings + _unknown_bases(bases, roots) + hub_lineage_findings(hub)
    # An official release built on another publisher's family (DeepSeek-R1-Distill-Llama on
    # Llama 3, by DeepSeek) claims that family too: models.yaml says so.
    acknowledged = claimed | _built_on_publishers([own_known, *map(known_model, bases)])
    if (
        family_publisher is not None
        and claimed
        and family_publisher.key not in acknowledged
        and confidence != "low"
    ):
        findings.append(_mismatch(decision, family_publisher, bases, publisher, evidence.signals))
    facts = OriginFacts(
        publisher=publisher,
        lineage=lineage,
        roots=tuple(dict.fromkeys(roots)),
        root_models=bases,
        family=family.key if family else None,
        family_confidence=confidence if family else None,
        family_signals=tuple(evidence.signals),
        multimodal=multimodal,
        jurisdictions=jurisdictions,
    )
    return Collected(value=facts, findings=tuple(findings))


def _built_on_publishers(models: Iterable[KnownModel | None]) -> set[str]:
    """Publishers of the families official releases are known to be built on."""
    keys: set[str] = set()
    for model in models:
        if model is None:
            continue
        for family_key in (model.family, *model.built_on):
            entry = family_by_key(family_key) if family_key else None
            if entry is not None:
                keys.add(entry.publisher)
    return keys


def _publisher(org: str) -> Publisher:
    """The org as the registry knows it; an org the registry lacks has no country."""
    entry = publisher_for_org(org)
    if entry is None:
        return Publisher(org=org)
    return Publisher(
        org=org,
        key=entry.key,
        legal_entity=entry.legal_entity,
        country=entry.country,
        evidence_url=entry.evidence_url,
    )


def _lineage(
    target: TargetInfo,
    claims: Iterable[tuple[str, Relation | None, str]],
    hub: HubLineage | None,
) -> tuple[LineageEdge, ...]:
    child = target.repo_id or target.name
    own = (target.repo_id or "").casefold()
    claims = list(claims)
    further: list[LineageEdge] = []
    for edge in hub.edges if hub is not None else ():
        if edge.child.casefold() == own:
            claims.append((edge.base, edge.relation, HUB_SOURCE))
        else:
            further.append(
                LineageEdge(
                    child=edge.child, base=edge.base, relation=edge.relation, sources=(HUB_SOURCE,)
                )
            )
    merged: dict[str, tuple[Relation | None, list[str]]] = {}
    for base, relation, source in claims:
        if base == target.repo_id:
            continue  # a model naming itself (a config saved from its own repo) is no lineage
        known_relation, sources = merged.get(base, (None, []))
        merged[base] = (known_relation or relation, [*sources, source])
    own_edges = tuple(
        LineageEdge(child=child, base=base, relation=relation or "unknown", sources=tuple(sources))
        for base, (relation, sources) in merged.items()
    )
    return own_edges + tuple(further)


def _multimodal(evidence: Evidence, bases: Sequence[str], known: bool) -> bool | None:
    if known or evidence.config_multimodal:
        return True
    for base in bases:
        entry = known_model(base)
        if entry is not None and entry.multimodal:
            return True
    multimodal_types = {t for f in family_base().families for t in f.multimodal_model_types}
    if evidence.model_types & multimodal_types:
        return True
    if evidence.config_multimodal is None and not evidence.model_types:
        return None  # no config to tell from
    return False


def _jurisdictions(
    publisher: Publisher | None,
    roots: Sequence[Publisher],
    bases: Sequence[str],
    decision: FamilyDecision,
    claimed: set[str],
) -> tuple[Jurisdiction, ...]:
    """Every country the evidence ties the weights to: claimed ones and the files' own."""
    family_publisher = decision.publisher
    out: list[Jurisdiction] = []
    if publisher is not None and publisher.country is not None:
        out.append(
            Jurisdiction(
                country=publisher.country,
                org=publisher.org,
                role="publisher",
                confidence="high"
                if family_publisher and family_publisher.key == publisher.key
                else "medium",
                evidence=f"the artifact is published by {publisher.org} ({publisher.legal_entity})",
            )
        )
    for base, root in zip(bases, roots, strict=True):
        if root.country is None:
            continue  # not in the registry: ORG-BASE-UNKNOWN
        agrees = family_publisher is not None and family_publisher.key == root.key
        confidence: Confidence = (
            "high" if agrees else "medium" if family_publisher is None else "low"
        )
        out.append(
            Jurisdiction(
                country=root.country,
                org=root.org,
                role="root",
                confidence=confidence,
                evidence=f"base model {base} is published by {root.legal_entity}",
            )
        )
    if family_publisher is not None and family_publisher.key not in claimed:
        out.append(
            Jurisdiction(
                country=family_publisher.country,
                org=family_publisher.hub_orgs[0],
                role="family",
                confidence=decision.confidence,
                evidence=f"the files show a {decision.label} model ({family_publisher.legal_entity})",
            )
        )
    return tuple(out)


def _unknown_bases(bases: Sequence[str], roots: Sequence[Publisher]) -> list[Finding]:
    return [
        target_finding(
            "ORG-BASE-UNKNOWN",
            Severity.INFO,
            f"base model {base}: publisher {root.org} is not in the publisher registry; its origin is unknown",
            base_model=base,
        )
        for base, root in zip(bases, roots, strict=True)
        if root.key is None
    ]


def _mismatch(
    decision: FamilyDecision,
    family_publisher: PublisherEntry,
    bases: Sequence[str],
    publisher: Publisher | None,
    all_signals: Sequence[FamilySignal],
) -> Finding:
    claim = (
        f"base model {', '.join(bases)}"
        if bases
        else f"publisher {publisher.org if publisher else '?'}"
    )
    keys = decision.keys
    family = keys[0] if len(keys) == 1 else " / ".join(keys)
    signals = [s for s in all_signals if s.family in keys and s.strength == "strong"]
    where = signals[0].path if signals and signals[0].path else None
    detail = "; ".join(f"{s.path or s.signal}: {s.detail}" for s in signals)
    message = (
        f"the artifact claims {claim}, but its files show a {decision.label} model "
        f"by {family_publisher.legal_entity} ({detail})"
    )
    if where:
        return file_finding(
            "ORG-CLAIM-MISMATCH", Severity.HIGH, where, message, family=family, claim=claim
        )
    return target_finding("ORG-CLAIM-MISMATCH", Severity.HIGH, message, family=family, claim=claim)
