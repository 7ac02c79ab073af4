"""What does the model card (README.md front matter) declare: licence, base model, tags?"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import yaml

from provscan.collectors.base import Collected
from provscan.collectors.parent_refs import shown
from provscan.files import ScanFile, open_scanned, read_capped
from provscan.limits import Limits
from provscan.parsing import HostileData, parse_yaml, parse_yaml_leniently
from provscan.report import CardFacts, Finding, Severity, file_finding


def collect_model_card(files: Sequence[ScanFile], limits: Limits) -> Collected[CardFacts | None]:
    card = next((f for f in files if f.rel.lower() == "readme.md"), None)
    if card is None:
        finding = Finding(
            rule_id="INV-CARD-MISSING",
            severity=Severity.MEDIUM,
            message="no model card (README.md): the declared licence and base model are unknown",
        )
        return Collected(value=None, findings=(finding,))
    findings: list[Finding] = []
    with open_scanned(card) as handle:
        raw, too_large = read_capped(handle, limits.card_max)
    if too_large:
        findings.append(
            file_finding(
                "INV-CARD-TOO-LARGE",
                Severity.MEDIUM,
                card.rel,
                f"{card.rel}: larger than {limits.card_max} bytes; only the start was read",
            )
        )
    text = raw.decode("utf-8", errors="replace")
    prose = prose_licence(text)
    bare = CardFacts(path=card.rel, license_prose=prose)
    front, problem, first_line = _front_matter(text, limits.front_matter_max)
    if problem is not None:
        findings.append(_malformed(card.rel, problem))
        return Collected(value=bare, findings=tuple(findings))
    if front is None:
        return Collected(value=bare, findings=tuple(findings))
    data, problem = _parse(front, first_line, card.rel, findings)
    if problem is not None:
        findings.append(_malformed(card.rel, problem))
        return Collected(value=bare, findings=tuple(findings))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        findings.append(
            _malformed(card.rel, f"front matter is a YAML {type(data).__name__}, not a mapping")
        )
        return Collected(value=bare, findings=tuple(findings))
    data = _second_block(text, first_line, front, card.rel, data, findings)
    facts = _facts(card.rel, data, findings, prose)
    return Collected(value=facts, findings=tuple(findings))


# How huggingface_hub finds a card's metadata block (repocard.REGEX_YAML_BLOCK, the text
# decoded as utf-8-sig): blank lines before the opening '---' and a byte-order mark are
# allowed, and the closing '---' may carry trailing spaces. Read the same way, so a card
# cannot show the Hub's tools one licence and provscan none.
# https://github.com/huggingface/huggingface_hub/blob/v0.26.0/src/huggingface_hub/repocard.py
_HUB_BLOCK = re.compile(r"^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))")
_OPENING = re.compile(r"^\s*---[ \t]*(?:\r\n|\r|\n)")


def _front_matter(text: str, max_len: int) -> tuple[str | None, str | None, int]:
    """Return (front matter, problem, the line of the file it starts on). No opening '---'
    line (after a byte-order mark and blank lines) means no front matter."""
    text = text.removeprefix("\ufeff")
    match = _HUB_BLOCK.search(text)
    if match is None:
        if _OPENING.match(text):
            return None, "front matter opened with '---' is never closed", 1
        return None, None, 1
    front = match.group(2)
    if len(front) > max_len:
        return None, f"front matter is longer than {max_len} bytes", 1
    return front, None, text[: match.start(2)].count("\n") + 1


def _parse(
    front: str, first_line: int, rel: str, findings: list[Finding]
) -> tuple[Any, str | None]:
    """(data, problem). A front matter that only a lenient reader reads (a repeated key, a
    custom tag) is read that way, every value kept, with a high finding: readers disagree on
    such a card, so every value any of them could take is evidence."""
    try:
        # Bounded: aliases ("billion laughs"), deep nesting and over-long numbers refused.
        return parse_yaml(front, first_line=first_line), None
    except HostileData as exc:
        if "repeats the key" not in exc.problem:
            return None, f"front matter {exc.problem}"
    except RecursionError:
        return None, "front matter nests too deeply to parse"
    except yaml.constructor.ConstructorError:
        pass  # a tag the safe loader does not know: read leniently below
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = (
            f" (line {mark.line + first_line}, column {mark.column + 1})"
            if mark is not None
            else ""
        )
        detail = getattr(exc, "problem", None) or str(exc)
        return None, f"front matter is not valid YAML{where}: {detail}"
    try:
        data, problems = parse_yaml_leniently(front, first_line=first_line)
    except (HostileData, RecursionError, yaml.YAMLError) as exc:
        detail = exc.problem if isinstance(exc, HostileData) else str(exc)[:200]
        return None, f"front matter is not readable YAML: {detail}"
    findings.append(
        file_finding(
            "INV-CARD-MALFORMED",
            Severity.HIGH,
            rel,
            f"{rel}: front matter {'; '.join(problems[:5])}: YAML readers disagree on what "
            "it says (the Hub refuses it, others keep one value or drop the tag); every value "
            "is counted as evidence",
            problems=problems[:20],
        )
    )
    return data, None


# Card fields whose every value counts when a second block repeats them.
_EVIDENCE_FIELDS = ("license", "license_name", "license_link", "base_model", "tags")


def _second_block(
    text: str,
    first_line: int,
    front: str,
    rel: str,
    data: dict[str, Any],
    findings: list[Finding],
) -> dict[str, Any]:
    """A second '---' block right after the first: the Hub reads only the first, a reader
    that takes the last block (or a person skimming the page) sees another. Its licence and
    lineage fields are added to the first block's, with a high finding."""
    body = text.removeprefix("\ufeff")
    first = _HUB_BLOCK.search(body)
    if first is None:
        return data
    rest = body[first.end() :]
    second = _HUB_BLOCK.match(rest)
    if second is None or not second.group(2).strip():
        return data
    line = body[: first.end() + second.start(2)].count("\n") + 1
    try:
        extra, _problems = parse_yaml_leniently(second.group(2), first_line=line)
    except (HostileData, RecursionError, yaml.YAMLError):
        return data  # prose between '---' rules, not a metadata block
    if not isinstance(extra, dict):
        return data
    declared = {k: extra[k] for k in _EVIDENCE_FIELDS if k in extra}
    if not declared:
        return data
    merged = dict(data)
    for key, value in declared.items():
        before = merged.get(key)
        items = [*(before if isinstance(before, list) else [] if before is None else [before])]
        items += value if isinstance(value, list) else [value]
        merged[key] = items
    shown = ", ".join(f"{k}: {str(v)[:60]}" for k, v in declared.items())
    findings.append(
        file_finding(
            "INV-CARD-MALFORMED",
            Severity.HIGH,
            rel,
            f"{rel}: a second front-matter block (line {line}) declares {shown}; the Hub reads "
            "only the first block, other readers the last: both blocks' values are counted",
            line=line,
        )
    )
    return merged


def _strings(field: str, value: Any, rel: str, findings: list[Finding]) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    readable = [v for v in items if isinstance(v, (str, int, float)) and not isinstance(v, bool)]
    good = tuple(str(v) for v in readable)
    if len(good) != len(items):
        # A licence or a parent the Hub cannot read is one nobody checks: high.
        severity = Severity.HIGH if field in _EVIDENCE_FIELDS else Severity.MEDIUM
        dropped = [shown(v) for v in items if not any(v is r for r in readable)][:3]
        findings.append(
            file_finding(
                "INV-CARD-MALFORMED",
                severity,
                rel,
                f"{rel}: '{field}' must be a string or a list of strings; "
                f"{', '.join(dropped)} could not be read",
                field=field,
            )
        )
    return good


# "**License:** llama3" or "- License: [Apache 2.0](https://...)" in the card's text.
_PROSE_LICENCE = re.compile(r"^[\s>*_#-]*licen[cs]e[\s*_]*:[\s*_]*(.+?)\s*$", re.I | re.M)
_MD_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


def prose_licence(text: str) -> str | None:
    """The first 'License: X' line of the card's text (a weak signal, used when nothing better says)."""
    body = text.removeprefix("\ufeff")
    for _ in range(2):  # the front matter, and a second block right after it
        block = _HUB_BLOCK.match(body)
        body = body[block.end() :] if block is not None else body
    match = _PROSE_LICENCE.search(body)
    if match is None:
        return None
    value = _MD_LINK.sub(r"\1", match.group(1)).strip(" *_`")
    return value[:120] or None


def _facts(rel: str, data: dict[str, Any], findings: list[Finding], prose: str | None) -> CardFacts:
    def one(field: str) -> str | None:
        values = _strings(field, data.get(field), rel, findings)
        return values[0] if values else None

    # A licence name or link given twice (repeated key, second block): the first is the
    # card's, the others still count as licence ids to look up.
    extra = tuple(
        value
        for field in ("license_name", "license_link")
        for value in _strings(field, data.get(field), rel, [])[1:]
    )

    return CardFacts(
        path=rel,
        licenses=_strings("license", data.get("license"), rel, findings) + extra,
        license_name=one("license_name"),
        license_link=one("license_link"),
        base_models=_strings("base_model", data.get("base_model"), rel, findings),
        base_model_relation=one("base_model_relation"),
        license_prose=prose,
        tags=_strings("tags", data.get("tags"), rel, findings),
        pipeline_tag=one("pipeline_tag"),
        library_name=one("library_name"),
    )


def _malformed(rel: str, problem: str, severity: Severity = Severity.HIGH) -> Finding:
    return file_finding(
        "INV-CARD-MALFORMED",
        severity,
        rel,
        f"{rel}: {problem}; the card's licence and lineage could not be read",
    )
