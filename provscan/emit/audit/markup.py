"""How is HTML built so that scanned text can only ever be text? Escape by default.

A plain `str` is always escaped; only `Markup` made by `tag` (from constant names and escaped
children) passes through. Nothing here marks a scanned string safe.
"""

from __future__ import annotations

import html


class Markup(str):
    """HTML built by `tag`: already escaped."""

    __slots__ = ()


def escape(value: str) -> Markup:
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(value, quote=True))


def join(parts: list[Markup] | tuple[Markup, ...], sep: str = "\n") -> Markup:
    return Markup(sep.join(escape(p) for p in parts))


def tag(element: str, /, *children: str, **attrs: str | None) -> Markup:
    """<element attrs>children</element>; `cls` sets class; None attributes are left out."""
    rendered = "".join(
        f' {"class" if key == "cls" else key.replace("_", "-")}="{escape(value)}"'
        for key, value in attrs.items()
        if value is not None
    )
    body = "".join(escape(child) for child in children)
    return Markup(f"<{element}{rendered}>{body}</{element}>")


def void(element: str, /, **attrs: str | None) -> Markup:
    """An element without content (<meta>, <br>)."""
    rendered = "".join(
        f' {key.replace("_", "-")}="{escape(value)}"'
        for key, value in attrs.items()
        if value is not None
    )
    return Markup(f"<{element}{rendered}>")
