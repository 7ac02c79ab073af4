"""How is scanned text shown so that it can neither rewrite a terminal nor hide what it says?"""

from __future__ import annotations

import unicodedata

# Controls (ESC, C1 CSI included), format characters (bidi overrides, zero-width) and line or
# paragraph separators: they make text display differently from what it is ("Trojan Source").
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp"})


def visible(text: str, keep: str = "") -> str:
    """``text`` with each hidden character written as ``\\xNN`` or ``\\uNNNN``.

    Characters in ``keep`` (a multi-line block keeps "\\t\\n") pass unchanged.
    """
    if text.translate(dict.fromkeys(map(ord, keep))).isprintable():
        return text  # the common case, checked at C speed
    out = []
    for char in text:
        if char not in keep and unicodedata.category(char) in _HIDDEN:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)
