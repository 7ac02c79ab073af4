"""Which licences bind the model, given every source's evidence, and where do they clash?

* concluded: the model's own licences: every licence its texts, its metadata and its card's
  prose name, the text's first. Sources that disagree are a finding, and the conclusion is
  the most restrictive reading consistent with all of them, never the permissive side alone.
* inherited: licences reaching it through its base models, and through the family its files
  show when no stated base carries that family's licence; a derivative carries its root's
  duties.
* conflicts between sources, and a permissive label on a restricted base ("licence
  laundering"), are findings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from provscan.collectors.licence_stated import METADATA, Gathered
from provscan.knowledge.base import (
    KnownModel,
    LicenceEntry,
    family_by_key,
    known_model,
    licence_by_key,
)
from provscan.report import (
    LicenceEvidence,
    LicenceFacts,
    LicenceTerms,
    OriginFacts,
    Severity,
    TerritorialRestriction,
    target_finding,
)


def _keys(evidence: Iterable[LicenceEvidence], sources: Iterable[str]) -> tuple[str, ...]:
    wanted = set(sources)
    return tuple(
        dict.fromkeys(
            e.key
            for e in evidence
            if e.source in wanted and e.key is not None and e.kind == "licence"
        )
    )


def conclude(
    gathered: Gathered, origin: OriginFacts | None, own_known: KnownModel | None
) -> LicenceFacts:
    """The most restrictive reading consistent with every source: the model's own licences
    are all those its texts and its metadata name (a disagreement is a finding, never settled
    by picking the permissive side); inherited ones come through its bases and, when nothing
    names a base that carries them, through the family its files show."""
    evidence = gathered.evidence
    declared = _keys(evidence, METADATA)
    detected = _keys(evidence, ("file",))
    known = _keys(evidence, ("knowledge:model",))
    prose = _keys(evidence, ("card:prose",))
    concluded = tuple(dict.fromkeys(detected + declared + prose)) or known
    _conflicts(evidence, declared, detected, known, gathered)
    _metadata_conflicts(evidence, gathered)
    inherited: dict[str, str] = {}
    base_licences: set[str] = set()
    for base in origin.root_models if origin else ():
        entry = known_model(base)
        if entry is not None:
            base_licences.add(entry.licence)
            if entry.licence not in concluded:
                inherited.setdefault(entry.licence, base)
    _laundering(concluded, inherited, evidence, gathered)
    _family_licences(origin, own_known, concluded, base_licences, inherited, gathered)
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


# Sources that state the model's licence in its metadata, compared with one another.
_STATED = (*METADATA, "card:prose")


def _metadata_conflicts(evidence: Sequence[LicenceEvidence], gathered: Gathered) -> None:
    """Two metadata sources that name no licence in common (`license_name: apache-2.0` with a
    `license_link` to the Llama licence; a card's prose against its front matter; GGUF or
    config against the card): one high finding naming both sides of each disagreement."""
    by_source: dict[tuple[str, str | None], set[str]] = {}
    for e in evidence:
        if e.source in _STATED and e.key is not None and e.kind == "licence":
            by_source.setdefault((e.source, e.path), set()).add(e.key)
    sides = sorted(by_source.items(), key=lambda item: _STATED.index(item[0][0]))
    reported: set[frozenset[str]] = set()
    for index, ((source, path), keys) in enumerate(sides):
        for (other, other_path), other_keys in sides[index + 1 :]:
            pair = frozenset(keys | other_keys)
            if keys & other_keys or pair in reported:
                continue
            reported.add(pair)
            first = f"{path or source} {source.split(':', 1)[-1]} says {', '.join(sorted(keys))}"
            second = (
                f"{other_path or other} {other.split(':', 1)[-1]} says "
                f"{', '.join(sorted(other_keys))}"
            )
            gathered.findings.append(
                target_finding(
                    "LIC-CONFLICT",
                    Severity.HIGH,
                    f"licence metadata disagrees: {first}, but {second}; every licence named "
                    "is taken to apply until a person settles it",
                    sides={source: sorted(keys), other: sorted(other_keys)},
                )
            )


def _family_licences(
    origin: OriginFacts | None,
    own_known: KnownModel | None,
    concluded: tuple[str, ...],
    base_licences: set[str],
    inherited: dict[str, str],
    gathered: Gathered,
) -> None:
    """The licence of the family the files show, when no stated base settles it: Llama-family
    weights labelled Apache with no base named still carry a Llama licence. A family whose
    releases use one licence passes it on unless the model states it. A family whose releases
    differ (Qwen2.5: Apache-2.0 or the Qwen licence, by size) passes on every restricted one
    the model does not state, and reviews, until a known base model says which release the
    weights come from. A known official release is its own family's source: only the
    families it is built on (an R1 distill on Llama) pass a licence on."""
    if origin is None or origin.family is None or origin.family_confidence == "low":
        return
    if own_known is not None and origin.family not in own_known.built_on:
        return
    family = family_by_key(origin.family)
    if family is None or not family.licences or base_licences & set(family.licences):
        return  # no licence recorded, or a known base says which release
    licences = family.licences
    missing = [key for key in licences if key not in concluded]
    strict = [key for key in missing if (e := licence_by_key(key)) is not None and restricted(e)]
    if len(missing) < len(licences) and not strict:
        return  # the model states one of them, and none it leaves out is stricter
    if concluded and not strict:
        return  # a permissive family and a stated licence: nothing carried over is stricter
    via = f"the {family.name} family (shown by its files)"
    for key in missing:
        inherited.setdefault(key, via)
    which = (
        licences[0]
        if len(licences) == 1
        else f"one of {', '.join(licences)} (which one depends on the release)"
    )
    said = f"labelled {', '.join(concluded)}" if concluded else "given no licence"
    gathered.findings.append(
        target_finding(
            "LIC-FAMILY-LICENCE",
            Severity.HIGH,
            f"the files show a {family.name} model ({origin.family_confidence} confidence), "
            f"published under {which}; the model is {said} and names no known base model "
            f"that settles it: the terms of {', '.join(missing)} are taken to apply",
            family=family.key,
            family_licences=list(licences),
            own=list(concluded),
            inherited=list(missing),
        )
    )


def _conflicts(
    evidence: Sequence[LicenceEvidence],
    declared: tuple[str, ...],
    detected: tuple[str, ...],
    known: tuple[str, ...],
    gathered: Gathered,
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
                f"licence sources disagree: {where(declared, METADATA)}, but "
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
    gathered: Gathered,
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
