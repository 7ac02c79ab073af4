"""How is scanned text shown so that it can neither rewrite a terminal nor hide what it says?"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

# A code point in the surrogate range is not a character: UTF-8 cannot encode it, so JSON,
# SARIF, the BOM and the terminal would all fail on it. Python gives one for each byte of a
# name that is not valid UTF-8 (surrogateescape: U+DC80-U+DCFF stand for bytes 0x80-0xff).
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_surrogate(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # the undecodable byte itself, as backslashreplace writes it
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def valid_text(text: str) -> str:
    """``text`` as valid Unicode: each lone surrogate written as ``\\xNN`` or ``\\uNNNN``.

    A byte that is not UTF-8 (U+DC80-U+DCFF from surrogateescape) shows as the byte,
    ``\\xff``, the form a file name that is not UTF-8 has in the report; any other surrogate
    as ``\\udNNN``. Text without surrogates is returned unchanged (the same object).
    """
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub(_escape_surrogate, text)


def valid_data(value: Any) -> Any:
    """``value`` with every string in it (dict keys too, lists and tuples walked) valid_text.

    Anything else (numbers, enums, models, dates) passes unchanged; so does a container
    none of whose strings changes (the same object).
    """
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, dict):
        items = [(valid_data(k), valid_data(v)) for k, v in value.items()]
        if all(a is k and b is v for (a, b), (k, v) in zip(items, value.items(), strict=True)):
            return value
        return dict(items)
    if isinstance(value, list | tuple):
        walked = [valid_data(v) for v in value]
        if all(a is b for a, b in zip(walked, value, strict=True)):
            return value
        return type(value)(walked) if type(value) in (list, tuple) else walked
    return value


# Controls (ESC, C1 CSI included), format characters (bidi overrides, zero-width) and line or
# paragraph separators: they make text display differently from what it is ("Trojan Source").
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp"})


def visible(text: str, keep: str = "") -> str:
    """``text`` with each hidden character written as ``\\xNN`` or ``\\uNNNN``.

    Characters in ``keep`` (a multi-line block keeps "\\t\\n") pass unchanged.
    """
    if text.translate(dict.fromkeys(map(ord, keep))).isprintable():
        return text  # the common case, checked at C speed
    text = valid_text(text)  # a lone surrogate in the same form as everywhere else
    out = []
    for char in text:
        if char not in keep and unicodedata.category(char) in _HIDDEN:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)
