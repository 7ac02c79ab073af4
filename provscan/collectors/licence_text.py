"""Which licence is this text? Identified by word shingles and marker phrases, clause by clause.

A LICENSE file in the wild is reflowed, wrapped in markdown, prefixed with a company
header, or lightly edited; the same licence family also comes in versions that differ by
a few words (Llama 3.1 / 3.2 / 3.3). So identification has three parts:

* similarity: the share of the reference text's 5-word shingles found in the file
  (containment, so a prepended header or an appended notice does not lower it);
* markers: the title and version phrases that tell siblings apart. For licences that
  ship no reference text, markers alone decide;
* clauses: the reference text is split into its numbered sections (markdown headings,
  "Section II", "Attachment A", or paragraphs when nothing is numbered), and each is
  looked up in the file. A text that is clearly the licence but lacks a clause (the
  700-million-user clause cut out of a Llama licence, the use restrictions cut out of a
  DeepSeek licence) is still that licence, and the changed clauses are named.

Chinese text has no spaces between words: CJK characters are tokens of their own, so a
shingle there is five characters. A reference text may hold the same licence in two
languages (the ChatGLM3 licence ships Chinese then English); each language is compared on
its own, so a file in either language is recognised.

This is a small, auditable matcher for the few dozen model licences provscan knows;
general-purpose licence scanners (ScanCode) have no entries for most model licences
and pull in a large dependency for what is here a few hundred lines.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import Literal

from provscan.knowledge.base import LicenceEntry, licence_base, reference_text

SHINGLE = 5
# Containment a text needs to count as a reference licence, and the share of its markers.
# A licence with one whole clause deleted, or a few clauses reworded, keeps well over 0.60 of
# its shingles; sibling versions (Llama 3.1 / 3.2, Qwen / Qwen research) share far more than
# that, so the markers are what tell them apart.
MIN_CONTAINMENT = 0.60
MIN_MARKERS = 0.5
# A text with its title and version lines rewritten (the markers gone) is still the licence
# when it carries this much of the reference and most of the shingles no sibling reference
# has (the version words left in its body). Sibling versions share up to ~0.955 of each
# other's shingles, so the second condition is what tells them apart.
MARKERLESS_CONTAINMENT = 0.90
# A clause with at least this share of its shingles in the file was reworded; below it the
# clause is missing or changed beyond recognition.
CLAUSE_REWORDED = 0.5
# A language part of a reference text needs this many shingles to be compared on its own.
_MIN_PART = 40

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[a-z0-9]+(?:[.'][a-z0-9]+)*|[{_CJK}]")
_FOLD = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " "})

Script = Literal["latin", "cjk"]
ClauseStatus = Literal["reworded", "missing"]


def tokens(text: str) -> list[str]:
    """Lower-case words (versions such as '3.1' kept whole) and single CJK characters;
    punctuation and markup dropped. NFKC folds full-width letters and digits to ASCII."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).translate(_FOLD).casefold())


def _script(token: str) -> Script:
    return "cjk" if len(token) == 1 and ord(token) >= 0x3400 else "latin"


def _split_scripts(words: list[str]) -> dict[Script, list[str]]:
    out: dict[Script, list[str]] = {"latin": [], "cjk": []}
    for word in words:
        out[_script(word)].append(word)
    return out


def _shingles(words: list[str]) -> frozenset[int]:
    if len(words) < SHINGLE:
        return frozenset({hash(tuple(words))}) if words else frozenset()
    return frozenset(hash(tuple(words[i : i + SHINGLE])) for i in range(len(words) - SHINGLE + 1))


def _gapped_shingles(words: list[str]) -> frozenset[int]:
    """Shingles of a reference clause, leaving out those that cross a placeholder gap."""
    runs: list[list[str]] = [[]]
    for word in words:
        if word == _GAP:
            runs.append([])
        else:
            runs[-1].append(word)
    if len(runs) == 1:
        return _shingles(runs[0])
    out: set[int] = set()
    for run in runs:
        if len(run) >= SHINGLE:  # a few words between two placeholders say nothing
            out |= _shingles(run)
    return frozenset(out)


def _text_shingles(words: list[str]) -> frozenset[int]:
    """A file's shingles: each script's tokens shingled on their own, then pooled."""
    parts = _split_scripts(words)
    return _shingles(parts["latin"]) | _shingles(parts["cjk"])


# ---------------------------------------------------------------- reference clauses

_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
_NUMBERED = re.compile(r"^(\s*)(?:\*\*|__)?(\d{1,2})(?:\\|\*\*|__)*\s*[.)\u3001\uff0e]\s*(\S.*)$")
_LABELLED = re.compile(
    r"^\s*((?:section|article)\s+(?:[ivxlc]+|\d+)\b.*|(?:attachment|appendix|exhibit|annex)\b.*)$",
    re.IGNORECASE,
)
_LABELLED_MAX = 60  # a longer line that begins "Section 2 ..." is prose, not a heading
_SENTENCE_END = re.compile(r"(?<=[a-z0-9)\]])\.(?:\s|$)|\u3002", re.IGNORECASE)
_COLON = re.compile(r":|\uff1a")
# Template placeholders ("Copyright [yyyy] [name of copyright owner]", "<YEAR>") are filled in
# by every licensee: shingles that cross them are left out of the clause comparison.
_PLACEHOLDER = re.compile(r"\[[^\]\n]{1,40}\](?!\()|<[A-Z][A-Z ]{1,30}>")
_GAP = "provscangap0"  # a token no licence text holds
_MARKUP = re.compile(r"[*_`#]+")
_LABEL_MAX = 60


@dataclass(frozen=True)
class _Clause:
    label: str
    script: Script
    words: tuple[str, ...]  # this clause's tokens in its script
    shingles: frozenset[int]


@dataclass(frozen=True)
class _Reference:
    parts: dict[Script, frozenset[int]]  # each language's shingles (only substantial ones)
    clauses: tuple[_Clause, ...]


def _label(number: str | None, heading: str) -> str:
    heading = _MARKUP.sub("", heading).replace("\\", "").strip()
    end = _SENTENCE_END.search(heading)
    if end is not None and end.start() > 0:
        heading = heading[: end.start()]
    if number is not None:  # "1. Violate the law ..., including to:" ends at the colon
        colon = _COLON.search(heading)
        if colon is not None and colon.start() > 0:
            heading = heading[: colon.start()]
    heading = heading.strip(" .:")
    if len(heading) > _LABEL_MAX:
        heading = heading[:_LABEL_MAX].rsplit(" ", 1)[0] + " ..."
    return f"{number}. {heading}" if number is not None else heading


def _boundaries(lines: list[str]) -> list[tuple[int, str]]:
    """(line index, label) where each clause of a reference text begins."""
    markdown = [i for i, line in enumerate(lines) if _MD_HEADING.match(line)]
    numbered = [(i, m) for i, line in enumerate(lines) if (m := _NUMBERED.match(line))]
    # Top-level sections sit at the smallest indent any numbered line has; deeper ones are
    # list items inside a section.
    indent = min((len(m.group(1).expandtabs()) for _, m in numbered), default=0)
    found: list[tuple[int, str]] = []
    last: int | None = None
    for i, line in enumerate(lines):
        if len(markdown) >= 2:
            heading = _MD_HEADING.match(line)
            if heading is not None:
                found.append((i, _label(None, heading.group(1))))
            continue
        labelled = _LABELLED.match(line)
        if labelled is not None and len(line.strip()) <= _LABELLED_MAX:
            found.append((i, _label(None, labelled.group(1))))
            continue
        match = _NUMBERED.match(line)
        if match is None or len(match.group(1).expandtabs()) > indent + 1:
            continue
        number = int(match.group(2))
        # Top-level sections run 1, 2, 3 ...; a list item "2." inside section 5 does not
        # start a clause. A new "1." starts a new run (a second language, an appended policy).
        if last is None or number in (last + 1, 1):
            found.append((i, _label(str(number), match.group(3))))
            last = number
    return found


def _paragraphs(lines: list[str]) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    blank = True
    for i, line in enumerate(lines):
        if line.strip() and blank:
            found.append((i, _label(None, line.strip())))
        blank = not line.strip()
    return found


def split_clauses(text: str) -> list[tuple[str, str]]:
    """A reference text as (label, text) clauses: numbered sections, markdown headings and
    attachments; the text before the first one is the preamble. Unnumbered texts split
    into paragraphs."""
    lines = unicodedata.normalize("NFKC", text).splitlines()
    starts = _boundaries(lines) or _paragraphs(lines)
    clauses: list[tuple[str, str]] = []
    first = starts[0][0] if starts else len(lines)
    preamble = "\n".join(lines[:first])
    if tokens(preamble):
        clauses.append(("preamble", preamble))
    for n, (start, label) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(lines)
        clauses.append((label, "\n".join(lines[start:end])))
    return clauses


@cache
def _reference(name: str) -> _Reference:
    text = reference_text(name)
    scripts = _split_scripts(tokens(text))
    every = {script: _shingles(words) for script, words in scripts.items()}
    parts = {script: sh for script, sh in every.items() if len(sh) >= _MIN_PART}
    if not parts:  # a short text: its larger script is the text
        larger = max(every, key=lambda s: len(every[s]))
        parts = {larger: every[larger]} if every[larger] else {}
    clauses: list[_Clause] = []
    for label, body in split_clauses(text):
        split = _split_scripts(tokens(_PLACEHOLDER.sub(f" {_GAP} ", body)))
        script: Script = "cjk" if len(split["cjk"]) > len(split["latin"]) else "latin"
        words = split[script]
        if words:
            kept = [w for w in words if w != _GAP]
            clauses.append(_Clause(label, script, tuple(kept), _gapped_shingles(words)))
    return _Reference(parts=parts, clauses=tuple(clauses))


# ---------------------------------------------------------------- identification


@cache
def _marker_words(marker: str) -> str:
    return " " + " ".join(tokens(marker)) + " "


@dataclass(frozen=True)
class ClauseChange:
    """A clause of the reference text that the file does not carry word for word."""

    label: str  # "2. Additional Commercial Terms"
    status: ClauseStatus  # reworded: most of it is there; missing: missing or changed
    share: float  # share of the clause's shingles found in the file

    def describe(self) -> str:
        return f"{self.label} ({'reworded' if self.status == 'reworded' else 'missing or changed'})"


@dataclass(frozen=True)
class TextMatch:
    key: str
    kind: str
    score: float | None  # containment of the reference text; None when markers alone decided
    markers: float  # share of the entry's markers present
    modified: tuple[ClauseChange, ...] = ()  # reference clauses not found word for word


@dataclass(frozen=True)
class TextIdentity:
    sha256: str
    matches: tuple[
        TextMatch, ...
    ]  # best licence, AUP and notice found in the text (each kind once)
    title: str  # the first non-empty line, for reports about unknown texts


@dataclass(frozen=True)
class _Shipped:
    joined: str
    shingles: frozenset[int]
    script_joined: dict[Script, str]


def identify(text: str) -> TextIdentity:
    words = tokens(text)
    by_script = _split_scripts(words)
    shipped = _Shipped(
        joined=" " + " ".join(words) + " ",
        shingles=_text_shingles(words),
        script_joined={s: " " + " ".join(w) + " " for s, w in by_script.items()},
    )
    best: dict[str, tuple[tuple[float, float], TextMatch, tuple[Script, ...]]] = {}
    for entry in licence_base().licences:
        found = _match(entry, shipped)
        if found is None:
            continue
        match, scripts = found
        rank = (match.markers, match.score if match.score is not None else 1.0)
        if entry.kind not in best or rank > best[entry.kind][0]:
            best[entry.kind] = (rank, match, scripts)
    matches: list[TextMatch] = []
    for _rank, match, scripts in sorted(best.values(), key=lambda item: item[1].kind):
        entry_text = next(e.text for e in licence_base().licences if e.key == match.key)
        if entry_text is not None and scripts:
            changes = _clause_changes(_reference(entry_text), scripts, shipped)
            match = TextMatch(match.key, match.kind, match.score, match.markers, changes)
        matches.append(match)
    title = next((line.strip() for line in text.splitlines() if line.strip()), "")[:200]
    return TextIdentity(
        sha256=hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest(),
        matches=tuple(matches),
        title=title,
    )


def _match(entry: LicenceEntry, shipped: _Shipped) -> tuple[TextMatch, tuple[Script, ...]] | None:
    """The entry's match, and the languages of its reference text the file carries."""
    markers = (
        sum(_marker_words(m) in shipped.joined for m in entry.markers) / len(entry.markers)
        if entry.markers
        else 1.0
    )
    if entry.text is None:
        # Marker-only entries need every marker: a phrase or two is weak evidence.
        if markers < 1.0:
            return None
        return TextMatch(key=entry.key, kind=entry.kind, score=None, markers=markers), ()
    reference = _reference(entry.text)
    if not reference.parts:
        return None
    scored = [
        (len(part & shipped.shingles) / len(part), script)
        for script, part in reference.parts.items()
    ]
    score = max(share for share, _ in scored)
    if markers >= MIN_MARKERS:
        if score < MIN_CONTAINMENT:
            return None
    elif score < MARKERLESS_CONTAINMENT or not _own_words_kept(entry, shipped):
        return None
    match = TextMatch(key=entry.key, kind=entry.kind, score=round(score, 4), markers=markers)
    return match, tuple(script for share, script in scored if share >= MIN_CONTAINMENT)


@cache
def _own_shingles(key: str) -> frozenset[int]:
    """The shingles of this entry's reference text that no other reference text of its kind
    has: its version numbers, dates and links, wherever they occur in the body."""
    entry = next(e for e in licence_base().licences if e.key == key)
    assert entry.text is not None
    others: set[int] = set()
    for other in licence_base().licences:
        if other.text is not None and other.kind == entry.kind and other.key != key:
            for part in _reference(other.text).parts.values():
                others |= part
    own: set[int] = set()
    for part in _reference(entry.text).parts.values():
        own |= part - others
    return frozenset(own)


def _own_words_kept(entry: LicenceEntry, shipped: _Shipped) -> bool:
    """Without its title and version lines a text is this licence only if the body still
    says which version it is: most of the shingles only this reference has are there (a
    Llama 3.1 text with every "3.1" made "9.9" is no Llama licence provscan knows)."""
    own = _own_shingles(entry.key)
    return bool(own) and len(own & shipped.shingles) / len(own) >= MIN_MARKERS


def _clause_changes(
    reference: _Reference, scripts: tuple[Script, ...], shipped: _Shipped
) -> tuple[ClauseChange, ...]:
    changes: list[ClauseChange] = []
    for clause in reference.clauses:
        if clause.script not in scripts:
            continue  # the other language of a bilingual reference text, not shipped
        if len(clause.words) < SHINGLE:
            found = " " + " ".join(clause.words) + " " in shipped.script_joined[clause.script]
            share = 1.0 if found else 0.0
        else:
            share = len(clause.shingles & shipped.shingles) / len(clause.shingles)
        if share >= 1.0:
            continue
        status: ClauseStatus = "reworded" if share >= CLAUSE_REWORDED else "missing"
        changes.append(ClauseChange(clause.label, status, round(share, 4)))
    return tuple(changes)
