"""What does each rule id mean as a SARIF rule, and which rules must a provscan SARIF log obey?"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from provscan.report import LEVELS, Severity
from provscan.resources import data_dir

# The official schema (vendored, see schemas/README.md) and GitHub code scanning's limits per
# run; over a limit GitHub rejects the upload or drops data, so provscan truncates and says so.
_SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "sarif-2.1.0-rtm.5.json"
MAX_RESULTS = 25_000
MAX_TAGS = 20
MAX_LOCATIONS = 1_000
_LEVEL_RANK = {"error": 0, "warning": 1, "note": 2, "none": 3}
_MESSAGE_MAX = 300  # jsonschema quotes the offending instance, which can be a whole run
# One place for where the rule reference lives online; helpUri = DOCS_RULES_URL#<anchor>.
DOCS_RULES_URL = "https://github.com/provscan/provscan/blob/main/docs/rules.md"
PROJECT_URL = "https://github.com/provscan/provscan"

SEVERITY_LEVEL = {
    Severity.CRITICAL.value: "error",
    Severity.HIGH.value: "error",
    Severity.MEDIUM.value: "warning",
    Severity.LOW.value: "note",
    Severity.INFO.value: "note",
}
POLICY_LEVEL = {"deny": "error", "review": "warning", "warn": "note"}
# GitHub reads "0.1".."10.0" (>= 9 critical, 7-8.9 high, 4-6.9 medium, < 4 low) and treats a
# rule that has one as a security alert; info has no place on that scale, so it gets none.
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "2.0"}
# A policy-only rule has a level, not a severity: a deny rates high (a gate refused the model;
# not itself an exploit, so not critical), a review medium, a warning low.
POLICY_SEVERITY = {"deny": "high", "review": "medium", "warn": "low"}
AREAS = {
    "INV": "inventory",
    "HSH": "hashing",
    "SIG": "signatures",
    "SER": "serialization",
    "LIC": "licence",
    "ORG": "origin",
    "PRB": "probes",
    "POL": "policy",
}
# Heuristic signals are less precise than structural checks of the bytes.
_PRECISION = {"PRB-CANDIDATE": "medium", "ORG-CLAIM-MISMATCH": "medium"}
# How bad an observed severity or policy level is, for a rule the docs do not describe: a
# policy level ranks as the severity it rates (POLICY_SEVERITY); info and other words rank
# below every word here.
_RANK: dict[str, int] = {
    **{s.value: s.rank for s in Severity if s.rank > Severity.INFO.rank},
    **{level: Severity(POLICY_SEVERITY[level]).rank for level in LEVELS},
}
_LEVEL_WORD = re.compile(r"\b(critical|high|medium|low|info|deny|review|warn)\b")
_ROW = re.compile(r"^\|\s*`([A-Z]{3}-[A-Z0-9-]+)`\s*\|(.*)$")
_ANCHOR_TAG = re.compile(r"<a\s[^>]*>\s*</a>", re.IGNORECASE)
_SENTENCE_END = re.compile(r"([.!?])(?:\s|$)")
_ABBREVIATION = re.compile(r"\b(?:e\.g|i\.e|etc|vs)\.$")


@dataclass(frozen=True)
class RuleDoc:
    """One row of docs/rules.md: the documented severity or level, meaning and remedy."""

    severity: str  # critical..info for findings, deny/review/warn for policy-only rules
    meaning: str  # markdown
    remedy: str  # markdown


def anchor(rule_id: str) -> str:
    """The fragment a rule's helpUri points at: the lower-cased rule id."""
    return rule_id.lower()


def _cells(row: str) -> list[str]:
    """Split a table row on '|', except inside `code spans` or after a backslash."""
    cells, current, in_code, escaped = [], [], False, False
    for char in row:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == "`":
            in_code = not in_code
            current.append(char)
        elif char == "|" and not in_code:
            cells.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    cells.append("".join(current).strip())
    return [_ANCHOR_TAG.sub("", cell).strip() for cell in cells]


def parse_rules(text: str) -> dict[str, RuleDoc]:
    """Every `| \\`ID\\` | severity | meaning | remedy |` row; malformed rows are skipped."""
    rules: dict[str, RuleDoc] = {}
    for line in text.splitlines():
        match = _ROW.match(line.strip())
        if match is None:
            continue
        cells = [cell for cell in _cells(match.group(2)) if cell] or [""]
        if len(cells) < 3:
            continue
        # More cells than columns: a '|' the author did not escape sits in the meaning.
        meaning = " | ".join(cells[1:-1])
        rules.setdefault(match.group(1), RuleDoc(cells[0], meaning, cells[-1]))
    return rules


@functools.lru_cache(maxsize=1)
def rule_catalogue() -> dict[str, RuleDoc]:
    """The shipped docs/rules.md, parsed once; empty when the page cannot be read."""
    try:
        path: Path = data_dir("docs") / "rules.md"
        return parse_rules(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return {}  # a generic description is better than no SARIF at all


def documented_level(doc: RuleDoc | None) -> str | None:
    """The first severity or policy level the severity cell names (config keys ignored)."""
    if doc is None:
        return None
    match = _LEVEL_WORD.search(re.sub(r"`[^`]*`", "", doc.severity))
    return match.group(1) if match else None


def _plain(markdown: str) -> str:
    return markdown.replace("`", "")


def _camel(rule_id: str) -> str:
    return "".join(part.capitalize() for part in rule_id.split("-"))


def rule_descriptor(rule_id: str, observed: str) -> dict[str, Any]:
    """The reportingDescriptor for a rule id; `observed` is the most severe severity or
    level its results carry in this run, used when the docs do not say."""
    doc = rule_catalogue().get(rule_id)
    level_word = documented_level(doc) or observed
    severity = POLICY_SEVERITY.get(level_word, level_word)
    if doc is None:
        meaning = f"provscan rule {rule_id} (not described in this installation's rule reference)."
        remedy = "Read the result's message; see the rule reference for the area's rules."
    else:
        meaning, remedy = doc.meaning, doc.remedy
    help_uri = f"{DOCS_RULES_URL}#{anchor(rule_id)}"
    if level_word in POLICY_LEVEL:
        default_level = POLICY_LEVEL[level_word]
    else:
        default_level = SEVERITY_LEVEL.get(severity, "warning")
    properties: dict[str, Any] = {
        "tags": ["security", AREAS.get(rule_id[:3], "other")],
        "precision": _PRECISION.get(rule_id, "very-high" if rule_id[:3] == "POL" else "high"),
        "provscan-severity": doc.severity if doc is not None else observed,
    }
    if severity in SECURITY_SEVERITY:
        properties["security-severity"] = SECURITY_SEVERITY[severity]
    return {
        "id": rule_id,
        "name": _camel(rule_id),
        "shortDescription": {"text": _first_sentence(_plain(meaning))},
        "fullDescription": {"text": _plain(meaning)},
        "help": {
            "text": f"{_plain(meaning)}\n\nWhat to do: {_plain(remedy)}",
            "markdown": f"{meaning}\n\n**What to do:** {remedy}\n\n[{rule_id}]({help_uri})",
        },
        "helpUri": help_uri,
        "defaultConfiguration": {"level": default_level},
        "properties": properties,
    }


def _first_sentence(text: str, limit: int = 200) -> str:
    """GitHub shows shortDescription as the rule's title: one sentence, bounded."""
    ends = (
        m.end(1) for m in _SENTENCE_END.finditer(text) if not _ABBREVIATION.search(text[: m.end(1)])
    )
    sentence = text[: next(ends, len(text))]
    return sentence if len(sentence) <= limit else sentence[: limit - 1] + "…"


def cap(items: list[Any], limit: int) -> tuple[list[Any], int]:
    """The first `limit` items, and how many were dropped."""
    return items[:limit], max(0, len(items) - limit)


def rules_for(
    results: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """One descriptor per rule id the results use, sorted; the results with their ruleIndex;
    and how many tags the per-rule limit dropped."""
    worst: dict[str, str] = {}
    for result in results:
        props = result["properties"]
        observed = props.get("severity") or props["policyOutcome"]
        if _RANK.get(observed, 0) > _RANK.get(worst.get(result["ruleId"], ""), -1):
            worst[result["ruleId"]] = observed
    rules = [rule_descriptor(rule_id, worst[rule_id]) for rule_id in sorted(worst)]
    dropped = 0
    for rule in rules:
        rule["properties"]["tags"], lost = cap(rule["properties"]["tags"], MAX_TAGS)
        dropped += lost
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    indexed = [{"ruleId": r["ruleId"], "ruleIndex": index[r["ruleId"]], **r} for r in results]
    return rules, indexed, dropped


def truncate(results: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int, int]:
    """Results within GitHub's limits (the most severe first, then report order), and how
    many results and locations were dropped."""
    dropped_results = dropped_locations = 0
    if len(results) > MAX_RESULTS:
        order = sorted(range(len(results)), key=lambda i: (_LEVEL_RANK[results[i]["level"]], i))
        keep = sorted(order[:MAX_RESULTS])
        dropped_results = len(results) - len(keep)
        results = [results[i] for i in keep]
    for result in results:
        for key in ("locations", "relatedLocations"):
            if key in result:
                result[key], lost = cap(result[key], MAX_LOCATIONS)
                dropped_locations += lost
    return results, dropped_results, dropped_locations


@functools.lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft4Validator:
    schema = json.loads(_SCHEMA_FILE.read_text(encoding="utf-8"))
    return jsonschema.Draft4Validator(
        schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
    )


def validate_sarif(text: str) -> list[str]:
    """Schema errors in a SARIF 2.1.0 log, ordered by path; empty when it is valid."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        return [f"not JSON: {exc}"]
    errors = sorted(_validator().iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    messages = []
    for error in errors:
        message = str(error.message)
        if len(message) > _MESSAGE_MAX:
            message = message[: _MESSAGE_MAX - 3] + "..."
        messages.append(f"{error.json_path}: {message}")
    return messages
