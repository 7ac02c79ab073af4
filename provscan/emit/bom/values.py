"""How are the AI-BOM's values written: properties, URIs, repo ids and refs?"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

from cyclonedx.model import (
    Property,
    XsUri,
)
from jsonschema import Draft7Validator

from provscan.report import Report

HF_BASE_URL = "https://huggingface.co"


def props(pairs: Iterable[tuple[str, object]]) -> list[Property]:
    """Properties for the pairs whose value is known; booleans as 'true'/'false'."""
    out: list[Property] = []
    for name, value in pairs:
        if value is None or value == "" or value == ():
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        out.append(Property(name=name, value=text))
    return out


_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Kept as written: the delimiters of a URL (RFC 3986 gen-delims but [ ], and sub-delims).
_URL_DELIMITERS = ":/?@!$&'()*+,;=%~"


def xs_uri(url: str) -> XsUri | None:
    """A URL as the BOM may hold it, or None when it cannot be one.

    A card's license_link or base_model may hold anything (controls, spaces, brackets): what
    an IRI cannot hold is percent-encoded (a second '#' too); what is still not an IRI
    reference after that is left out (the JSON report keeps the text as written).
    """
    head, hash_, fragment = _STRAY_PERCENT.sub("%25", url).partition("#")
    text = quote(head, safe=_URL_DELIMITERS) + hash_ + quote(fragment, safe=_URL_DELIMITERS)
    if not Draft7Validator.FORMAT_CHECKER.conforms(text, "iri-reference"):
        return None
    return XsUri(text)


def split_repo_id(repo_id: str) -> tuple[str, str] | None:
    """('org', 'name') for an 'org/name' Hub id, None for anything else."""
    parts = repo_id.split("/")
    if len(parts) == 2 and all(part.strip() for part in parts):  # a purl strips blanks
        return parts[0], parts[1]
    return None


def model_ref(report: Report) -> str:
    return f"model:{report.target.repo_id or report.target.name}"


def resolve_link(link: str, report: Report) -> str:
    """An absolute URL for a card's license_link; HF cards often give a repo-relative path."""
    if "://" in link or report.target.repo_id is None:
        return link
    revision = report.target.revision or "main"
    return f"{HF_BASE_URL}/{report.target.repo_id}/blob/{revision}/{link.lstrip('./')}"
