"""A value from the model's metadata, read as the person looking at it would read it.

A licence id or a base-model name is compared with what provscan knows. An uploader who wants
`llama3.1` to read as something else, while a person reviewing the card still sees `llama3.1`,
has several ways to do it: an invisible character inside it (U+200B), a compatibility form
(a full-width letter), a look-alike letter from another script (Cyrillic U+0430 for `a`),
a space at the end. Each is undone here, and what was undone is named, so the caller can
report it: the value is taken as it reads, and the disguise is a finding.

Look-alike letters come from the Unicode confusables data (Unicode Technical Standard #39,
https://www.unicode.org/reports/tr39/#Confusable_Detection) as packaged by
confusable-homoglyphs (https://pypi.org/project/confusable-homoglyphs/); `skeleton` follows
TS #39's skeleton: two strings that look alike have the same skeleton. The packaged data
lists look-alikes across scripts (Latin / Cyrillic / Greek / mathematical forms); look-alikes
within ASCII ('I' and 'l', 'rn' and 'm') are not in it and are not caught here.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import Any

# Longest value worth normalising; longer ones are cut (a licence id or repo id is < 200).
_MAX = 1000


@dataclass(frozen=True)
class Normalised:
    text: str  # the value as it reads
    changes: tuple[str, ...]  # what was undone, in words; empty when nothing was
    deceptive: bool  # a change that makes one value look like another (not just whitespace)


def _invisible(char: str) -> bool:
    # Cf: format characters (zero-width space / joiners, bidi controls, the byte-order mark,
    # the soft hyphen, tag characters): nothing a reader sees.
    return unicodedata.category(char) == "Cf"


def _confusables() -> Any:
    """The confusables data, loaded the first time a non-ASCII character needs it (its import
    reads a large table and pulls in urllib: a tenth of a check's start-up for ASCII text)."""
    from confusable_homoglyphs import confusables

    return confusables


@cache
def ascii_lookalike(char: str) -> str | None:
    """The ASCII character `char` is drawn like (Cyrillic 'а' -> 'a'), or None."""
    if char.isascii():
        return None
    found = _confusables().is_confusable(char, greedy=True)
    for item in found or ():
        for glyph in item["homoglyphs"]:
            candidate = glyph["c"]
            if len(candidate) == 1 and candidate.isascii() and candidate.isprintable():
                return str(candidate)
    return None


def normalise(value: str) -> Normalised:
    """Invisible characters removed, Unicode NFKC, look-alike letters replaced by the ASCII
    letters they imitate, surrounding whitespace removed."""
    value = value[:_MAX]
    changes: list[str] = []
    visible = "".join(c for c in value if not _invisible(c))
    if visible != value:
        hidden = sorted({f"U+{ord(c):04X}" for c in value if _invisible(c)})
        changes.append(f"invisible characters removed ({', '.join(hidden)})")
    compatible = unicodedata.normalize("NFKC", visible)
    if compatible != visible and compatible.strip() != visible.strip():
        changes.append("Unicode compatibility forms replaced (NFKC)")
    replaced: list[str] = []
    letters = []
    for char in compatible:
        ascii_char = ascii_lookalike(char)
        if ascii_char is not None and not char.isspace():
            replaced.append(f"U+{ord(char):04X} {unicodedata.name(char, '?')} -> {ascii_char!r}")
            letters.append(ascii_char)
        else:
            letters.append(char)
    if replaced:
        changes.append("look-alike letters replaced (" + "; ".join(replaced[:5]) + ")")
    deceptive = bool(changes)
    text = "".join(letters)
    stripped = text.strip()
    if stripped != text:
        changes.append("surrounding whitespace removed")
    return Normalised(text=stripped, changes=tuple(changes), deceptive=deceptive)


@cache
def _prototype(char: str) -> str:
    """The one character TS #39's skeleton maps `char` to, within what the packaged data
    gives: the smallest single-character look-alike, ASCII ones first."""
    found = _confusables().is_confusable(char, greedy=True)
    glyphs = {char}
    for item in found or ():
        glyphs.update(g["c"] for g in item["homoglyphs"] if len(g["c"]) == 1)
    ascii_glyphs = sorted(g for g in glyphs if g.isascii() and g.isprintable())
    return ascii_glyphs[0] if ascii_glyphs else min(glyphs)


def skeleton(value: str) -> str:
    """Two strings a reader cannot tell apart have the same skeleton ('llama3.1', 'llаma3.1'
    with a Cyrillic a, 'ⅼlama3.1' with a Roman numeral); case does not count, as in licence ids. Mapped before and
    after case folding, so 'I' (drawn like 'l') and 'L' (folded to 'l') both meet 'l'."""
    text = unicodedata.normalize("NFD", normalise(value).text)
    mapped = "".join(_prototype(c) for c in text).casefold()
    return "".join(_prototype(c) for c in mapped)
