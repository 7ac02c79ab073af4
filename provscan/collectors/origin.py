"""Where do the weights come from: publisher, base-model chain, family, jurisdictions?

Claims (the card's base_model, GGUF general.base_model.*, config _name_or_path, an
adapter's base, the models a mergekit config merges) are checked against evidence read from
the model's own files (model_type and architectures, tokenizer special tokens, vocabulary
size). Cards are often wrong or
stripped: the family and its publisher still come out of the files, and a claim the files
contradict is a finding. A Hub org name is not an identity, so origin is only ever taken
from the curated publisher registry, never from the uploader's name alone. A stated parent
that only reads as a Hub repo id once changed, or not at all, is a finding (parent_refs).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from provscan.collectors.origin_hub import HUB_SOURCE, hub_lineage_findings, hub_root_models
from provscan.collectors.parent_refs import (
    MERGEKIT_FILES,
    REPO_ID,
    mergekit_refs,
    resolve_parent,
)
from provscan.collectors.sentencepiece_read import SentencePieceUnreadable, read_sentencepiece
from provscan.collectors.serialization.gguf.scan import (
    GgufTokensUnreadable,
    read_gguf_tokens,
    read_provenance,
)
from provscan.collectors.tokenizer_read import TokenizerUnreadable, read_tokenizer_tokens
from provscan.files import (
    Collected,
    ScanFile,
    SniffedFile,
    load_json_object,
    string_list,
)
from provscan.hub.lineage import HubLineage
from provscan.knowledge.base import (
    FamilyEntry,
    KnownModel,
    PublisherEntry,
    family_base,
    family_by_key,
    known_model,
    publisher_by_key,
    publisher_for_org,
)
from provscan.limits import Limits
from provscan.report import (
    CardFacts,
    Confidence,
    FamilySignal,
    FileFormat,
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

# Read whole, as JSON (tokenizer_read): escapes decoded, nothing past a byte limit missed.
_TOKENIZER_FILES = ("tokenizer_config.json", "special_tokens_map.json", "tokenizer.json")
_SENTENCEPIECE_FILES = ("tokenizer.model",)
_RELATIONS: frozenset[str] = frozenset({"finetune", "adapter", "merge", "quantized"})
_STRENGTH = {"strong": 3, "weak": 1}


@dataclass
class _Evidence:
    """What the collector gathered from the files before deciding anything."""

    claims: list[tuple[str, Relation | None, str]] = field(
        default_factory=list
    )  # base, relation, source
    signals: list[FamilySignal] = field(default_factory=list)
    model_types: set[str] = field(default_factory=set)
    config_multimodal: bool | None = None
    gguf_org: str | None = None
    # family key -> the special tokens of its signature found in any tokenizer file.
    matched: dict[str, set[str]] = field(default_factory=dict)
    # ORG-BASE-NORMALISED / ORG-BASE-UNRESOLVED: stated parents changed or refused on reading.
    findings: list[Finding] = field(default_factory=list)

    def parent(
        self, value: object, path: str, field_name: str, *, loaded_from: bool = False
    ) -> str | None:
        """The Hub repo id a stated parent names, or None; what was changed or refused is
        recorded as a finding."""
        repo, finding = resolve_parent(value, path, field_name, loaded_from=loaded_from)
        if finding is not None:
            self.findings.append(finding)
        return repo


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
    by_name = {item.file.rel: item for item in files}
    evidence = _Evidence()
    _card_claims(card, evidence)
    config = _json(by_name.get("config.json"), limits)
    if config is not None:
        _config_evidence(config, "config.json", target, evidence)
    adapter = _json(by_name.get("adapter_config.json"), limits)
    if adapter is not None and adapter.get("base_model_name_or_path") is not None:
        field_name = "base_model_name_or_path"
        base = evidence.parent(adapter[field_name], "adapter_config.json", field_name)
        if base is not None:
            evidence.claims.append((base, "adapter", "adapter_config.json"))
    mergekit = [by_name[name] for name in sorted(MERGEKIT_FILES) if name in by_name]
    for item in mergekit:
        _mergekit_evidence(item.file, limits, evidence)
    if mergekit:
        evidence.claims = [(b, r or "merge", s) for b, r, s in evidence.claims]
    params = _json(by_name.get("params.json"), limits)
    if params is not None:
        _vocab_signal(params.get("vocab_size"), "params.json", "params", evidence)
    _tokenizer_evidence(by_name, evidence)
    for item in files:
        if item.format is FileFormat.GGUF:
            _gguf_evidence(item.file, evidence)
    if model is not None and model.model_type:
        evidence.model_types.add(model.model_type)
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


# ---------------------------------------------------------------- evidence


def _json(item: SniffedFile | None, limits: Limits) -> dict[str, Any] | None:
    if item is None:
        return None
    document, _problem = load_json_object(item.file, limits.json_file_max)
    return document  # a malformed config.json is reported by the model_facts step


def _card_claims(card: CardFacts | None, evidence: _Evidence) -> None:
    if card is None:
        return
    relation: Relation | None = None
    if card.base_model_relation in _RELATIONS:
        relation = card.base_model_relation  # type: ignore[assignment]  # checked just above
    tagged: dict[str, Relation] = {}
    for tag in card.tags:
        parts = tag.split(":", 2)
        if len(parts) == 3 and parts[0] == "base_model" and parts[1] in _RELATIONS:
            repo = evidence.parent(parts[2], card.path, f"tags base_model:{parts[1]}")
            if repo is not None:
                tagged[repo] = parts[1]  # type: ignore[assignment]  # checked just above
    stated = list(dict.fromkeys(card.base_models))
    resolved = [evidence.parent(base, card.path, "base_model") for base in stated]
    bases = list(dict.fromkeys(base for base in resolved if base is not None))
    # A parent that could not be read is still a parent: two stated ones are a merge.
    parents = len(bases) + resolved.count(None)
    merged = parents > 1 or any(t in {"merge", "mergekit"} for t in card.tags)
    for base in bases:
        chosen = relation or tagged.get(base) or ("merge" if merged else "finetune")
        evidence.claims.append((base, chosen, f"{card.path} base_model"))
    for base, tag_relation in tagged.items():
        if base not in bases:
            evidence.claims.append((base, tag_relation, f"{card.path} tags"))


def _config_evidence(
    config: dict[str, Any], rel: str, target: TargetInfo, evidence: _Evidence
) -> None:
    _declared_types(config, rel, "", evidence)
    # A multimodal wrapper (mistral3, gemma4, llama4, kimi_k25 ...) nests its language
    # model's model_type and vocab_size in text_config: both are evidence as well.
    text = config.get("text_config")
    if isinstance(text, dict):
        _declared_types(text, rel, "text_config.", evidence)
    evidence.config_multimodal = any(
        isinstance(config.get(key), dict) for key in ("vision_config", "audio_config")
    )
    # _name_or_path: what the weights were loaded from before being saved (often the base).
    # A local path there is the usual case (transformers records the folder it loaded from).
    if config.get("_name_or_path") is not None:
        name = evidence.parent(config["_name_or_path"], rel, "_name_or_path", loaded_from=True)
        if name is not None and name != target.repo_id:
            evidence.claims.append((name, None, f"{rel} _name_or_path"))
    # auto_map "org/repo--module.Class": remote code taken from another repo (a base model).
    auto_map = config.get("auto_map")
    if isinstance(auto_map, dict):
        for value in auto_map.values():
            for ref in value if isinstance(value, list) else [value]:
                if isinstance(ref, str) and "--" in ref:
                    repo = ref.split("--", 1)[0]
                    if REPO_ID.match(repo) and repo != target.repo_id:
                        evidence.claims.append((repo, None, f"{rel} auto_map"))


def _declared_types(config: dict[str, Any], rel: str, where: str, evidence: _Evidence) -> None:
    model_type = config.get("model_type")
    if isinstance(model_type, str):
        evidence.model_types.add(model_type)
    architectures = string_list(config.get("architectures"))
    for family in family_base().families:
        if isinstance(model_type, str) and model_type in family.model_types:
            detail = f"{where}model_type {model_type!r}"
            evidence.signals.append(_declared_by(family, "model_type", rel, detail))
        shared = [a for a in architectures if a in family.architectures]
        if shared:
            detail = f"{where}architectures {shared}"
            evidence.signals.append(_declared_by(family, "architecture", rel, detail))
    _vocab_signal(config.get("vocab_size"), rel, "vocab_size", evidence)


def _declared_by(family: FamilyEntry, signal: str, rel: str, detail: str) -> FamilySignal:
    """A model_type / architecture match: strong only where the family owns the name."""
    return FamilySignal(
        family=family.key,
        signal=signal,  # type: ignore[arg-type]  # one of the literal signal kinds
        path=rel,
        detail=detail,
        strength="strong" if family.exclusive else "weak",
    )


def _vocab_signal(value: object, rel: str, signal: str, evidence: _Evidence) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        return
    for family in family_base().families:
        if value in family.tokenizer.vocab_sizes:
            evidence.signals.append(
                FamilySignal(
                    family=family.key,
                    signal=signal,  # type: ignore[arg-type]  # "params" or "vocab_size"
                    path=rel,
                    detail=f"vocab_size {value}",
                    strength="weak",
                )
            )


def _wanted_tokens() -> frozenset[str]:
    return frozenset(t for f in family_base().families for t in f.tokenizer.special_tokens)


def _tokenizer_evidence(by_name: dict[str, SniffedFile], evidence: _Evidence) -> None:
    """Special tokens and vocabulary sizes of the tokenizer files; one that cannot be read
    is a finding naming it, and the other files still count."""
    wanted = _wanted_tokens()
    for name in (*_TOKENIZER_FILES, *_SENTENCEPIECE_FILES):
        item = by_name.get(name)
        if item is None:
            continue
        size: int | None
        # An hf:// metadata-only scan may hold only the file's first bytes: what they
        # define still counts, and a parse stopped by the missing rest is no finding.
        partial = item.file.read != "whole"
        try:
            if name in _SENTENCEPIECE_FILES:
                pieces = read_sentencepiece(item.file, wanted, partial=partial)
                tokens, size = pieces.tokens, pieces.vocab_size
            else:
                read = read_tokenizer_tokens(item.file, wanted, partial=partial)
                tokens, size = read.tokens, read.vocab_size
        except (TokenizerUnreadable, SentencePieceUnreadable) as exc:
            evidence.findings.append(_unreadable_tokenizer(item.file.rel, exc.problem))
            continue
        _token_signals(tokens, item.file.rel, evidence)
        if name in ("tokenizer.json", *_SENTENCEPIECE_FILES):
            _vocab_signal(size, item.file.rel, "vocab_size", evidence)


def _unreadable_tokenizer(rel: str, problem: str) -> Finding:
    return file_finding(
        "ORG-TOKENIZER-UNREADABLE",
        Severity.MEDIUM,
        rel,
        f"{rel}: the tokenizer could not be read ({problem}); its special tokens and "
        "vocabulary size are not part of the family evidence",
        problem=problem,
    )


def _token_signals(tokens: frozenset[str], rel: str, evidence: _Evidence) -> None:
    """A strong tokenizer signal for every family whose signature the tokens reach."""
    for family in family_base().families:
        signature = family.tokenizer
        if not signature.special_tokens:
            continue
        found = [token for token in signature.special_tokens if token in tokens]
        if not found:
            continue
        evidence.matched.setdefault(family.key, set()).update(found)
        if len(found) < signature.min_special:
            continue
        already = [
            s for s in evidence.signals if s.family == family.key and s.signal == "tokenizer"
        ]
        if already:
            continue  # one tokenizer signal per family, from the first file that reaches it
        evidence.signals.append(
            FamilySignal(
                family=family.key,
                signal="tokenizer",
                path=rel,
                detail=f"special tokens {found}",
                strength="strong",
            )
        )


def _gguf_evidence(file: ScanFile, evidence: _Evidence) -> None:
    meta = read_provenance(file)
    if meta is None:
        return  # reported by the serialization step
    architecture = meta.get("general.architecture")
    if isinstance(architecture, str):
        evidence.model_types.add(architecture)
        for family in family_base().families:
            if architecture in family.model_types:
                evidence.signals.append(
                    _declared_by(family, "gguf", file.rel, f"general.architecture {architecture!r}")
                )
    count = meta.get("general.base_model.count")
    for index in range(min(count, 16) if isinstance(count, int) else 0):
        prefix = f"general.base_model.{index}."
        repo = _gguf_base(meta, prefix, file.rel, evidence)
        if repo is not None:
            evidence.claims.append((repo, "quantized", f"{file.rel} {prefix}*"))
    organization = meta.get("general.organization")
    if isinstance(organization, str):
        evidence.gguf_org = organization
    try:
        tokens = read_gguf_tokens(file, _wanted_tokens())
    except GgufTokensUnreadable as exc:
        evidence.findings.append(_unreadable_tokenizer(file.rel, exc.problem))
        return
    if tokens is not None:
        _token_signals(tokens.tokens, file.rel, evidence)
        _vocab_signal(tokens.count, file.rel, "gguf", evidence)


def _gguf_base(meta: dict[str, Any], prefix: str, rel: str, evidence: _Evidence) -> str | None:
    url = meta.get(prefix + "repo_url")
    if url is not None:
        repo = evidence.parent(url, rel, prefix + "repo_url")
        if repo is not None:
            return repo
    org, name = meta.get(prefix + "organization"), meta.get(prefix + "name")
    if isinstance(org, str) and isinstance(name, str):
        # The display name and organization, as llama.cpp's converter writes them.
        candidate = f"{org}/{name}".replace(" ", "-")
        if REPO_ID.match(candidate):
            return candidate
        return evidence.parent(candidate, rel, prefix + "organization/name")
    if org is None and name is None:
        return None
    # Only one of them, or one of the wrong type: no repo id can be made of it.
    if org is None or (name is not None and not isinstance(name, str)):
        return evidence.parent(name, rel, prefix + "name")
    return evidence.parent(org, rel, prefix + "organization")


def _mergekit_evidence(file: ScanFile, limits: Limits, evidence: _Evidence) -> None:
    """Every model a mergekit config merges (and every LoRA applied to one): a merge parent."""
    refs, findings = mergekit_refs(file, limits.json_file_max)
    evidence.findings.extend(findings)
    for value, where in refs:
        repo = evidence.parent(value, file.rel, where)
        if repo is None:
            continue
        source = f"{file.rel} {where.split('[', 1)[0]}"
        if (repo, "merge", source) not in evidence.claims:
            evidence.claims.append((repo, "merge", source))


# ---------------------------------------------------------------- decisions


@dataclass(frozen=True)
class _Decision:
    """The family the files show, or, when families of one publisher tie, that publisher."""

    family: FamilyEntry | None
    publisher: PublisherEntry | None  # the family's publisher (or the tied families' one)
    confidence: Confidence
    candidates: tuple[FamilyEntry, ...] = ()  # the tied families when family is None

    @property
    def label(self) -> str:
        if self.family is not None:
            return self.family.name
        return " or ".join(f.name for f in self.candidates)

    @property
    def keys(self) -> tuple[str, ...]:
        return (
            (self.family.key,) if self.family is not None else tuple(c.key for c in self.candidates)
        )


def _decide(
    target: TargetInfo, evidence: _Evidence, own_known: KnownModel | None, hub: HubLineage | None
) -> Collected[OriginFacts]:
    decision = _family(evidence.signals, evidence.matched)
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


def _family(
    signals: Sequence[FamilySignal], matched: dict[str, set[str]] | None = None
) -> _Decision:
    """The family with the most evidence.

    Families that tie for the lead are told apart by their tokenizer signatures: one whose
    matched special tokens include every other leader's and more (Gemma 3's image tokens
    beside the turn tokens Gemma and Gemma 2 share) is the more specific match. Leaders
    that still tie leave the family undecided; when they all belong to one publisher
    (Qwen2 and Qwen3 names, Gemma 2 and 3), that publisher is still the answer, at
    medium confidence at most.
    """
    matched = matched or {}
    scores: dict[str, int] = {}
    for signal in signals:
        scores[signal.family] = scores.get(signal.family, 0) + _STRENGTH[signal.strength]
    if not scores:
        return _Decision(None, None, "low")
    top = max(scores.values())
    leaders = [key for key, score in scores.items() if score == top]
    if len(leaders) > 1:
        specific = [
            key
            for key in leaders
            if all(matched.get(o, set()) < matched.get(key, set()) for o in leaders if o != key)
        ]
        if len(specific) == 1:
            return _decided(specific[0], signals, cap="medium")
        entries = [e for e in (family_by_key(key) for key in leaders) if e is not None]
        owners = {e.publisher for e in entries}
        if len(owners) != 1:
            return _Decision(None, None, "low")
        strong = {s.signal for s in signals if s.family in leaders and s.strength == "strong"}
        confidence: Confidence = "medium" if strong else "low"
        return _Decision(None, publisher_by_key(owners.pop()), confidence, tuple(entries))
    return _decided(leaders[0], signals)


def _decided(key: str, signals: Sequence[FamilySignal], cap: Confidence | None = None) -> _Decision:
    entry = family_by_key(key)
    if entry is None:
        return _Decision(None, None, "low")
    own = [s for s in signals if s.family == key]
    strong = {s.signal for s in own if s.strength == "strong"}
    confidence: Confidence = "high" if len(strong) >= 2 else "medium" if strong else "low"
    if confidence == "low" and _declared_with_own_vocab(own):
        confidence = "medium"
    if cap == "medium" and confidence == "high":
        confidence = "medium"
    return _Decision(entry, publisher_by_key(entry.publisher), confidence)


_DECLARED = frozenset({"model_type", "architecture", "gguf"})


def _declared_with_own_vocab(own: Sequence[FamilySignal]) -> bool:
    """A shared model_type / architecture (llama, LlamaForCausalLM) together with a
    vocabulary size no other family uses (Llama 3's 128256): medium evidence. A model
    built from scratch would have to reuse both the architecture and that vocabulary."""
    if not any(s.signal in _DECLARED and not s.detail.startswith("vocab_size") for s in own):
        return False
    for signal in own:
        if not signal.detail.startswith("vocab_size "):
            continue
        value = int(signal.detail.removeprefix("vocab_size "))
        owners = [f for f in family_base().families if value in f.tokenizer.vocab_sizes]
        if len(owners) == 1:
            return True
    return False


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


def _multimodal(evidence: _Evidence, bases: Sequence[str], known: bool) -> bool | None:
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
    decision: _Decision,
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
    decision: _Decision,
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
