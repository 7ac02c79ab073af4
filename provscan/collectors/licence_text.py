"""Which licence is this text? Identified by word shingles and marker phrases.

A LICENSE file in the wild is reflowed, wrapped in markdown, prefixed with a company
header, or lightly edited; the same licence family also comes in versions that differ by
a few words (Llama 3.1 / 3.2 / 3.3). So identification has two parts:

* similarity: the share of the reference text's 5-word shingles found in the file
  (containment, so a prepended header or an appended notice does not lower it);
* markers: the title and version phrases that tell siblings apart. For licences that
  ship no reference text, markers alone decide.

This is a small, auditable matcher for the few dozen model licences provscan knows;
general-purpose licence scanners (ScanCode) have no entries for most model licences
and pull in a large dependency for what is here ~100 lines.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache

from provscan.knowledge_base import LicenceEntry, licence_base, reference_text

SHINGLE = 5
# Containment a text needs to count as a reference licence, and the share of its markers.
MIN_CONTAINMENT = 0.80
MIN_MARKERS = 0.5

_TOKEN = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*")
_FOLD = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " "})


def tokens(text: str) -> list[str]:
    """Lower-case words (versions such as '3.1' kept whole); punctuation and markup dropped."""
    return _TOKEN.findall(text.translate(_FOLD).casefold())


def _shingles(words: list[str]) -> frozenset[int]:
    if len(words) < SHINGLE:
        return frozenset({hash(tuple(words))}) if words else frozenset()
    return frozenset(hash(tuple(words[i : i + SHINGLE])) for i in range(len(words) - SHINGLE + 1))


@cache
def _reference(name: str) -> frozenset[int]:
    return _shingles(tokens(reference_text(name)))


@cache
def _marker_words(marker: str) -> str:
    return " " + " ".join(tokens(marker)) + " "


@dataclass(frozen=True)
class TextMatch:
    key: str
    kind: str
    score: float | None  # containment of the reference text; None when markers alone decided
    markers: float  # share of the entry's markers present


@dataclass(frozen=True)
class TextIdentity:
    sha256: str
    matches: tuple[
        TextMatch, ...
    ]  # best licence, AUP and notice found in the text (each kind once)
    title: str  # the first non-empty line, for reports about unknown texts


def identify(text: str) -> TextIdentity:
    words = tokens(text)
    joined = " " + " ".join(words) + " "
    shingles = _shingles(words)
    best: dict[str, tuple[tuple[float, float], TextMatch]] = {}
    for entry in licence_base().licences:
        match = _match(entry, joined, shingles)
        if match is None:
            continue
        rank = (match.markers, match.score if match.score is not None else 1.0)
        if entry.kind not in best or rank > best[entry.kind][0]:
            best[entry.kind] = (rank, match)
    title = next((line.strip() for line in text.splitlines() if line.strip()), "")[:200]
    return TextIdentity(
        sha256=hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest(),
        matches=tuple(m for _, m in sorted(best.values(), key=lambda item: item[1].kind)),
        title=title,
    )


def _match(entry: LicenceEntry, joined: str, shingles: frozenset[int]) -> TextMatch | None:
    markers = (
        sum(_marker_words(m) in joined for m in entry.markers) / len(entry.markers)
        if entry.markers
        else 1.0
    )
    if entry.text is None:
        # Marker-only entries need every marker: a phrase or two is weak evidence.
        if markers < 1.0:
            return None
        return TextMatch(key=entry.key, kind=entry.kind, score=None, markers=markers)
    reference = _reference(entry.text)
    if not reference:
        return None
    score = len(reference & shingles) / len(reference)
    if score < MIN_CONTAINMENT or markers < MIN_MARKERS:
        return None
    return TextMatch(key=entry.key, kind=entry.kind, score=round(score, 4), markers=markers)
