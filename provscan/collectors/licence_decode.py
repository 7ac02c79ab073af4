"""How are a licence file's bytes decoded as text, whatever their encoding?

Each is decoded by its byte-order mark (UTF-8, UTF-16 LE/BE, UTF-32 LE/BE), as UTF-16 when
it has no mark but a NUL in every other byte, else as UTF-8, GB18030 or Windows-1252. A UTF-16
licence sniffs as binary, so the format the inventory gave is not trusted here.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

# C0 controls other than tab, newlines, form feed, vertical tab and escape: text has few.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1a\x1c-\x1f]")
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


@dataclass(frozen=True)
class Decoded:
    text: str | None  # None: not decodable as text
    encoding: str  # the encoding used, or tried


def decode(data: bytes, *, whole: bool = True) -> Decoded:
    """Decode a file's bytes as text: byte-order mark first, then the NUL pattern of BOM-less
    UTF-16 / UTF-32, then UTF-8, GB18030 and Windows-1252. `whole=False`: `data` is the
    file's head, and a character cut at its end is not an error."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _strict(data[len(bom) :], encoding, whole)
    guessed = _nul_pattern(data[:4096])
    if guessed is not None:
        return _strict(data, guessed, whole)
    for encoding in ("utf-8", "gb18030", "cp1252"):
        decoded = _strict(data, encoding, whole)
        if decoded.text is not None:
            return decoded
    return Decoded(None, "utf-8")


def _strict(data: bytes, encoding: str, whole: bool = True) -> Decoded:
    try:
        text = codecs.getincrementaldecoder(encoding)().decode(data, final=whole)
    except UnicodeDecodeError:
        return Decoded(None, encoding)
    if "\x00" in text or len(_CONTROL.findall(text)) > len(text) // 100:
        return Decoded(None, encoding)
    return Decoded(text, encoding)


def _nul_pattern(head: bytes) -> str | None:
    """UTF-16 or UTF-32 without a byte-order mark: ASCII text then has a NUL in every other
    byte (UTF-16) or three in every four (UTF-32)."""
    if len(head) < 8:
        return None
    head = head[: len(head) - len(head) % 4]
    lanes = [head[i::4].count(0) / (len(head) // 4) for i in range(4)]
    if lanes[1] > 0.9 and lanes[2] > 0.9 and lanes[3] > 0.9 and lanes[0] < 0.1:
        return "utf-32-le"
    if lanes[0] > 0.9 and lanes[1] > 0.9 and lanes[2] > 0.9 and lanes[3] < 0.1:
        return "utf-32-be"
    even = (lanes[0] + lanes[2]) / 2
    odd = (lanes[1] + lanes[3]) / 2
    if odd > 0.4 and even < 0.1:
        return "utf-16-le"
    if even > 0.4 and odd < 0.1:
        return "utf-16-be"
    return None


def claims_encoding(data: bytes) -> bool:
    """Does the data say which encoding it is in: a byte-order mark, or the NUL pattern of
    BOM-less UTF-16 / UTF-32?"""
    return any(data.startswith(bom) for bom, _ in _BOMS) or _nul_pattern(data[:4096]) is not None
