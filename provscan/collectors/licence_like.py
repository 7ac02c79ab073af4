"""Does a text read like a licence: a title or grant near its top, and licence vocabulary?

A licence title or grant ("licence agreement", "terms of use", "permission is hereby
granted", 许可协议) together with the usual licence vocabulary (warranty, liability,
redistribution ...). A README line that only mentions a licence in passing is not one.
"""

from __future__ import annotations

import re

# How much of a file decides whether it reads like a licence, and where its title must be.
SNIFF_CHARS = 64 * 1024
_TITLE_CHARS = 2048

# Phrases that name or grant a licence, and the vocabulary around them.
_STRONG = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"licen[cs]e\s+agreement",
        r"terms\s+of\s+(?:use|service)",
        r"terms\s+and\s+conditions",
        r"permission\s+is\s+hereby\s+granted",
        r"acceptable\s+use\s+policy",
        r"prohibited\s+use\s+policy",
        r"usage\s+policy",
        r"redistribution\s+and\s+use",
        r"licensed\s+under",
        r"all\s+rights\s+reserved",
        r"community\s+licen[cs]e",
        r"grant\s+of\s+(?:copyright\s+|patent\s+)?(?:licen[cs]e|rights)",
        "\u8bb8\u53ef\u534f\u8bae",  # 许可协议
        "\u8bb8\u53ef\u8bc1",  # 许可证
        "\u4f7f\u7528\u6761\u6b3e",  # 使用条款
        "\u4f7f\u7528\u534f\u8bae",  # 使用协议
        "\u6388\u6743\u534f\u8bae",  # 授权协议
        "\u7248\u6743\u6240\u6709",  # 版权所有
    )
)
_WEAK = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"\blicen[cs]",
        r"warrant",
        r"liabilit",
        r"redistribut",
        r"copyright",
        r"governing\s+law",
        r"indemnif",
        r"you\s+agree",
        r"prohibit",
        r"violat",
        "\u8bb8\u53ef",  # 许可
        "\u6388\u6743",  # 授权
        "\u8d23\u4efb",  # 责任
        "\u4fdd\u8bc1",  # 保证
        "\u7248\u6743",  # 版权
    )
)
# A text reads like a licence with at least one strong phrase and this much in all (a strong
# phrase counts twice): a README line "licensed under Apache-2.0, see LICENSE" does not.
_LICENCE_LIKE = 5
_LICENCE_LIKE_UNTITLED = 7


def licence_like(text: str) -> bool:
    """Does this text read like a licence: a title or grant (near its top, where a licence
    names itself), and the vocabulary around it? A text that only mentions a licence in
    passing further down is not one."""
    head = text[:SNIFF_CHARS]
    strong = sum(1 for p in _STRONG if p.search(head))
    weak = sum(1 for p in _WEAK if p.search(head))
    if strong == 0:
        return False
    titled = any(p.search(head[:_TITLE_CHARS]) for p in _STRONG)
    # Without a title near the top (the second half of a split licence) it takes more.
    return 2 * strong + weak >= (_LICENCE_LIKE if titled else _LICENCE_LIKE_UNTITLED)
