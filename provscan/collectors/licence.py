"""Under what licence may this model be used, and on what terms?

Every source in the artifact is read and kept as evidence: the card's `license`,
`license_name`, `license_link` and prose, the text of LICENSE / NOTICE / USE_POLICY files
(identified by text, with a similarity score), GGUF `general.license*`, config fields, and
the licence a known official release was published under. Then:

* concluded: the model's own licence. Licence text beats metadata (metadata is often
  wrong or copied from a template); metadata beats the card's prose.
* inherited: licences reaching it through its base models; a derivative carries its
  root's duties.
* conflicts between sources, and a permissive label on a restricted base ("licence
  laundering"), are findings. A text provscan cannot identify is reported with its hash.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from provscan.collectors.base import Collected, SniffedFile, load_json_object, open_scanned
from provscan.collectors.inventory import role_of
from provscan.collectors.licence_text import identify
from provscan.collectors.serialization.gguf_scan import read_provenance
from provscan.knowledge_base import LicenceEntry, known_model, licence_by_key, lookup
from provscan.limits import Limits
from provscan.report import (
    CardFacts,
    FileFormat,
    FileRole,
    Finding,
    LicenceEvidence,
    LicenceFacts,
    LicenceTerms,
    OriginFacts,
    Severity,
    TargetInfo,
    TerritorialRestriction,
    file_finding,
    target_finding,
)

# A licence file larger than this is not a licence (the longest model licences are ~20 KB).
LICENCE_TEXT_MAX = 1024 * 1024
# Licence files read per scan; a directory of thousands of NOTICE files is not read through.
LICENCE_FILES_MAX = 64

# Evidence sources, strongest first, for choosing the model's own licence.
_METADATA = ("card:license", "card:license_name", "card:license_link", "gguf", "config")


@dataclass
class _Gathered:
    evidence: list[LicenceEvidence] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def collect_licence(
    files: Sequence[SniffedFile],
    target: TargetInfo,
    card: CardFacts | None,
    origin: OriginFacts | None,
    limits: Limits,
) -> Collected[LicenceFacts]:
    gathered = _Gathered()
    _card_evidence(card, gathered)
    licence_files = [f for f in files if role_of(f.file.rel, f.format) is FileRole.LICENCE]
    for item in licence_files[:LICENCE_FILES_MAX]:
        _file_evidence(item, gathered)
    for item in licence_files[LICENCE_FILES_MAX:]:
        gathered.findings.append(
            file_finding(
                "LIC-FILE-UNREADABLE",
                Severity.HIGH,
                item.file.rel,
                f"{item.file.rel}: not read: the target holds more than {LICENCE_FILES_MAX} licence files",
            )
        )
    for item in files:
        if item.format is FileFormat.GGUF:
            _gguf_evidence(item, gathered)
    config = next((f for f in files if f.file.rel == "config.json"), None)
    if config is not None:
        document, _problem = load_json_object(config.file, limits.json_file_max)
        value = document.get("license") if document else None
        if isinstance(value, str) and value.strip():
            gathered.evidence.append(_looked_up("config", value, "config.json"))
    own = known_model(target.repo_id) if target.repo_id else None
    if own is not None:
        gathered.evidence.append(
            LicenceEvidence(
                source="knowledge:model",
                value=f"{target.repo_id} (known release; {own.source})",
                key=own.licence,
                kind="licence",
            )
        )
    facts = _conclude(gathered, origin)
    return Collected(value=facts, findings=tuple(gathered.findings))


# ---------------------------------------------------------------- evidence


def _looked_up(source: str, value: str, path: str | None) -> LicenceEvidence:
    entry = lookup(value)
    return LicenceEvidence(
        source=source,
        path=path,
        value=value,
        key=entry.key if entry else None,
        kind=entry.kind if entry else None,
    )


def _card_evidence(card: CardFacts | None, gathered: _Gathered) -> None:
    if card is None:
        return
    for value in card.licenses:
        if value == "other" and (card.license_name or card.license_link):
            continue  # 'other' says: look at license_name / license_link
        found = _looked_up("card:license", value, card.path)
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
        gathered.evidence.append(_looked_up("card:license_name", card.license_name, card.path))
    if card.license_link and "://" in card.license_link:
        gathered.evidence.append(_looked_up("card:license_link", card.license_link, card.path))
    if card.license_prose:
        gathered.evidence.append(_looked_up("card:prose", card.license_prose, card.path))


def _file_evidence(item: SniffedFile, gathered: _Gathered) -> None:
    rel = item.file.rel
    if item.format is FileFormat.EMPTY:
        return
    if item.format is not FileFormat.TEXT or item.file.size > LICENCE_TEXT_MAX:
        why = (
            f"{item.file.size} bytes, over {LICENCE_TEXT_MAX}"
            if item.file.size > LICENCE_TEXT_MAX
            else f"its content is {item.format.value}, not text"
        )
        gathered.findings.append(
            file_finding(
                "LIC-FILE-UNREADABLE",
                Severity.HIGH,
                rel,
                f"{rel}: licence file not read ({why}); its terms are unknown",
                format=item.format.value,
                size=item.file.size,
            )
        )
        return
    try:
        with open_scanned(item.file) as handle:
            text = handle.read(LICENCE_TEXT_MAX + 1).decode("utf-8", errors="replace")
    except OSError as exc:
        gathered.findings.append(
            file_finding(
                "LIC-FILE-UNREADABLE", Severity.HIGH, rel, f"{rel}: unreadable ({exc.strerror})"
            )
        )
        return
    identity = identify(text)
    for match in identity.matches:
        gathered.evidence.append(
            LicenceEvidence(
                source="file",
                path=rel,
                value=identity.title,
                key=match.key,
                kind=match.kind,  # type: ignore[arg-type]  # a LicenceKind from the knowledge base
                score=match.score,
                sha256=identity.sha256,
            )
        )
    if not identity.matches:
        gathered.evidence.append(
            LicenceEvidence(source="file", path=rel, value=identity.title, sha256=identity.sha256)
        )
        gathered.findings.append(
            file_finding(
                "LIC-TEXT-UNKNOWN",
                Severity.MEDIUM,
                rel,
                f"{rel}: licence text not identified (sha256 {identity.sha256[:16]}..., "
                f"begins {identity.title[:60]!r}); a person must read its terms",
                sha256=identity.sha256,
                title=identity.title,
            )
        )


def _gguf_evidence(item: SniffedFile, gathered: _Gathered) -> None:
    meta = read_provenance(item.file)
    if meta is None:
        return  # reported by the serialization step
    for key in ("general.license", "general.license.name", "general.license.link"):
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            gathered.evidence.append(_looked_up("gguf", value, item.file.rel))


# ---------------------------------------------------------------- conclusions


def _keys(evidence: Iterable[LicenceEvidence], sources: Iterable[str]) -> tuple[str, ...]:
    wanted = set(sources)
    return tuple(
        dict.fromkeys(
            e.key
            for e in evidence
            if e.source in wanted and e.key is not None and e.kind == "licence"
        )
    )


def _conclude(gathered: _Gathered, origin: OriginFacts | None) -> LicenceFacts:
    evidence = gathered.evidence
    declared = _keys(evidence, _METADATA)
    detected = _keys(evidence, ("file",))
    known = _keys(evidence, ("knowledge:model",))
    prose = _keys(evidence, ("card:prose",))
    concluded = detected or declared or known or prose
    _conflicts(evidence, declared, detected, known, gathered)
    inherited: dict[str, str] = {}
    for base in origin.root_models if origin else ():
        entry = known_model(base)
        if entry is not None and entry.licence not in concluded:
            inherited.setdefault(entry.licence, base)
    _laundering(concluded, inherited, evidence, gathered)
    multimodal = origin.multimodal if origin else None
    terms: dict[tuple[str, str | None], LicenceTerms] = {}
    for key in concluded:
        _add_terms(terms, key, None, multimodal)
    for key, base in inherited.items():
        _add_terms(terms, key, base, multimodal)
    for e in evidence:  # AUPs and notices shipped as files
        if e.key is not None and e.kind in {"aup", "notice"}:
            _add_terms(terms, e.key, None, multimodal)
    return LicenceFacts(
        evidence=tuple(evidence),
        declared=declared,
        detected=detected,
        concluded=concluded,
        inherited=tuple(inherited),
        terms=tuple(terms.values()),
    )


def _conflicts(
    evidence: Sequence[LicenceEvidence],
    declared: tuple[str, ...],
    detected: tuple[str, ...],
    known: tuple[str, ...],
    gathered: _Gathered,
) -> None:
    def where(keys: Iterable[str], sources: Iterable[str]) -> str:
        wanted = set(sources)
        parts = [
            f"{e.path or e.source} says {e.key}"
            for e in evidence
            if e.source in wanted and e.key in set(keys)
        ]
        return "; ".join(dict.fromkeys(parts))

    if declared and detected and not set(detected) <= set(declared):
        gathered.findings.append(
            target_finding(
                "LIC-CONFLICT",
                Severity.HIGH,
                f"licence sources disagree: {where(declared, _METADATA)}, but "
                f"{where(detected, ('file',))}; the licence text governs",
                declared=list(declared),
                detected=list(detected),
            )
        )
    stated = detected or declared
    if known and stated and not set(known) & set(stated):
        gathered.findings.append(
            target_finding(
                "LIC-CONFLICT",
                Severity.HIGH,
                f"this repo's known release licence is {', '.join(known)}, but the "
                f"artifact says {', '.join(stated)}",
                known=list(known),
                stated=list(stated),
            )
        )


def restricted(entry: LicenceEntry) -> bool:
    """Does the licence limit use beyond attribution (commercial terms, AUP, caps, territory)?"""
    t = entry.terms
    return bool(
        t.commercial != "yes"
        or t.thresholds
        or t.aup
        or t.territorial
        or t.output_restriction
        or t.naming_prefix
        or t.flow_down
    )


def _laundering(
    concluded: tuple[str, ...],
    inherited: dict[str, str],
    evidence: Sequence[LicenceEvidence],
    gathered: _Gathered,
) -> None:
    own = [licence_by_key(k) for k in concluded]
    if not own or any(e is None or restricted(e) for e in own):
        return
    for key, base in inherited.items():
        entry = licence_by_key(key)
        if entry is not None and restricted(entry):
            gathered.findings.append(
                target_finding(
                    "LIC-LAUNDERING",
                    Severity.HIGH,
                    f"the model is labelled {', '.join(concluded)} but derives from {base}, "
                    f"released under {entry.name}; that licence's terms still apply",
                    own=list(concluded),
                    inherited=key,
                    base_model=base,
                )
            )


def _add_terms(
    terms: dict[tuple[str, str | None], LicenceTerms],
    key: str,
    via: str | None,
    multimodal: bool | None,
) -> None:
    entry = licence_by_key(key)
    if entry is None or (key, via) in terms:
        return
    t = entry.terms
    terms[(key, via)] = LicenceTerms(
        key=entry.key,
        name=entry.name,
        kind=entry.kind,
        spdx=entry.spdx,
        commercial=t.commercial,
        commercial_note=t.commercial_note,
        thresholds=t.thresholds,
        aup_url=t.aup_url,
        attribution_display=t.attribution_display,
        attribution_notice=t.attribution_notice,
        naming_prefix=t.naming_prefix,
        output_restriction=t.output_restriction,
        territorial=tuple(
            TerritorialRestriction(
                territories=r.territories,
                scope=r.scope,
                clause=r.clause,
                applies=True if r.scope == "all" else multimodal,
            )
            for r in t.territorial
        ),
        governing_law=t.governing_law,
        venue=t.venue,
        flow_down=t.flow_down,
        remote_restriction=t.remote_restriction,
        copyleft=t.copyleft,
        source=entry.source,
        via=via,
    )
    if t.aup is not None:
        _add_terms(terms, t.aup, via, multimodal)
