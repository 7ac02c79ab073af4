"""Which signatures prove each file, and which reported facts rest on files none proves?

A licence concluded from the model card, a base model named in config.json, a family
recognised from the chat template: each is only as good as the file it was read from.
When no verified signature that the files match covers that file, whoever handed over
the model could have written it, and the report says so per fact; the policy can then
require licence and origin to come from signed files (POL-SIG-UNCOVERED-FACTS).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from provscan.files import ScanFile
from provscan.report import (
    CardFacts,
    FactSource,
    LicenceFacts,
    OriginFacts,
    SignatureFacts,
)
from provscan.signing.label import files_match_signed

Fact = Literal["licence", "lineage", "card", "family"]


def signed_by(
    facts: SignatureFacts | None, files: Sequence[ScanFile]
) -> dict[str, tuple[str, ...]]:
    """Each file's proving signatures: verified, the files match them, and they cover it.

    `files` carry in_manifest as the signature plan set it: a file outside every
    comparison (git metadata, the signature files) is proven by none.
    """
    proving: dict[str, list[str]] = {}
    for check in facts.signatures if facts is not None else ():
        if not files_match_signed(check):
            continue
        uncovered = {entry.path for entry in check.not_covered}
        for f in files:
            if f.in_manifest and f.rel not in uncovered:
                proving.setdefault(f.rel, []).append(check.path)
    return {rel: tuple(paths) for rel, paths in proving.items()}


def fact_sources(
    card: CardFacts | None,
    licence: LicenceFacts | None,
    origin: OriginFacts | None,
    files: Iterable[str],
    signed: Mapping[str, tuple[str, ...]],
) -> tuple[FactSource, ...]:
    """Every (fact, file) the report's licence, lineage, card and family facts come from."""
    present = set(files)
    rels = sorted(present, key=len, reverse=True)  # longest first: "a/b.json" before "a"
    out: dict[tuple[str, str, str], FactSource] = {}

    def add(fact: Fact, detail: str, path: str | None) -> None:
        if path is None or path not in present:
            return
        source = FactSource(
            fact=fact, detail=detail[:200], path=path, signed_by=signed.get(path, ())
        )
        out.setdefault((fact, detail, path), source)

    if card is not None:
        add("card", "model card front matter", card.path)
    for evidence in licence.evidence if licence is not None else ():
        add("licence", f"{evidence.source}: {evidence.value}", evidence.path)
    for edge in origin.lineage if origin is not None else ():
        for source in edge.sources:
            path = next((r for r in rels if source == r or source.startswith(r + " ")), None)
            add("lineage", f"{edge.child} <- {edge.base} ({source})", path)
    for signal in origin.family_signals if origin is not None else ():
        add("family", f"{signal.signal}: {signal.detail}", signal.path)
    return tuple(sorted(out.values(), key=lambda s: (s.fact, s.path, s.detail)))
