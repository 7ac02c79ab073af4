"""What do a model's own files and claims say about its family and its parents?

Claims (the card's base_model, GGUF general.base_model.*, config _name_or_path, an
adapter's base, the models a mergekit config merges) are gathered as stated parents, and
the files' model_type and architectures, tokenizer special tokens and vocabulary sizes as
family signals. A stated parent that only reads as a Hub repo id once changed, or not at
all, is a finding (parent_refs). Nothing is decided here (origin_family, origin).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from provscan.collectors.base import load_json_object, string_list
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
from provscan.files import ScanFile, SniffedFile
from provscan.knowledge.base import FamilyEntry, family_base
from provscan.limits import Limits
from provscan.report import (
    CardFacts,
    FamilySignal,
    FileFormat,
    Finding,
    ModelFacts,
    Relation,
    Severity,
    TargetInfo,
    file_finding,
)

# Read whole, as JSON (tokenizer_read): escapes decoded, nothing past a byte limit missed.
_TOKENIZER_FILES = ("tokenizer_config.json", "special_tokens_map.json", "tokenizer.json")
_SENTENCEPIECE_FILES = ("tokenizer.model",)
_RELATIONS: frozenset[str] = frozenset({"finetune", "adapter", "merge", "quantized"})


@dataclass
class Evidence:
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


def gather_evidence(
    files: Sequence[SniffedFile],
    target: TargetInfo,
    card: CardFacts | None,
    model: ModelFacts | None,
    limits: Limits,
) -> Evidence:
    """Every stated parent and family signal in the target's card and files."""
    by_name = {item.file.rel: item for item in files}
    evidence = Evidence()
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
    return evidence


def _json(item: SniffedFile | None, limits: Limits) -> dict[str, Any] | None:
    if item is None:
        return None
    document, _problem = load_json_object(item.file, limits.json_file_max)
    return document  # a malformed config.json is reported by the model_facts step


def _card_claims(card: CardFacts | None, evidence: Evidence) -> None:
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
    config: dict[str, Any], rel: str, target: TargetInfo, evidence: Evidence
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


def _declared_types(config: dict[str, Any], rel: str, where: str, evidence: Evidence) -> None:
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


def _vocab_signal(value: object, rel: str, signal: str, evidence: Evidence) -> None:
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


def _tokenizer_evidence(by_name: dict[str, SniffedFile], evidence: Evidence) -> None:
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


def _token_signals(tokens: frozenset[str], rel: str, evidence: Evidence) -> None:
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


def _gguf_evidence(file: ScanFile, evidence: Evidence) -> None:
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


def _gguf_base(meta: dict[str, Any], prefix: str, rel: str, evidence: Evidence) -> str | None:
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


def _mergekit_evidence(file: ScanFile, limits: Limits, evidence: Evidence) -> None:
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
