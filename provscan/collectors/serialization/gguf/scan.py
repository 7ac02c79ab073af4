"""Is this GGUF file well formed, does its chat template inject code, and what origin does it declare?"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from provscan.collectors.serialization.chat_template.lint import UNCHECKED, lint_chat_template
from provscan.collectors.serialization.gguf.reader import (
    T_ARRAY,
    T_STRING,
    GgufArray,
    GgufError,
    GgufMetadata,
    GgufValue,
    _Cursor,
    _read_key,
    _read_value,
    read_gguf,
)
from provscan.files import ScanFile, open_scanned, read_capped
from provscan.limits import Limits
from provscan.parsing import (
    HostileData,
    hostile_number_findings,
    parse_json_as_loaded,
)
from provscan.report import Finding, Location, Severity, file_finding

PROVENANCE_VALUE_MAX = 1024  # characters kept of each general.* value
PROVENANCE_KEYS = frozenset(
    {"general.name", "general.basename", "general.finetune", "general.version",
     "general.size_label", "general.license", "general.license.name", "general.license.link",
     "general.author", "general.organization", "general.url", "general.repo_url",
     "general.doi", "general.uuid", "general.architecture", "general.quantization_version",
     "general.file_type", "general.base_model.count"}
)  # fmt: skip
PROVENANCE_PREFIXES = ("general.source.", "general.base_model.")

# Problems that break no known loader's bounds but depart from the spec or from what
# llama.cpp accepts; a reader that differs from the scanner is worth a review, not a
# hostile-file verdict. Every other problem is a structure llama.cpp-family parsers have
# mishandled before (heap overflows, CVE-2025-53630), so it is critical.
NONSTANDARD_PROBLEMS = frozenset(
    {"too-many-dims", "unknown-tensor-type", "nested-array", "string-truncated", "key-too-long"}
)
EVIDENCE_PATTERNS_MAX = 20


def _template_findings(rel: str, where: str, template: str) -> list[Finding]:
    hits = lint_chat_template(template)
    findings: list[Finding] = []
    unchecked = [excerpt for name, excerpt in hits if name == UNCHECKED]
    patterns = [(name, excerpt) for name, excerpt in hits if name != UNCHECKED]
    if unchecked:
        findings.append(
            file_finding(
                "SER-CHAT-TEMPLATE-UNCHECKED",
                Severity.HIGH,
                rel,
                f"{rel}: chat template {where} could not be fully checked: {unchecked[0]}",
                template=where,
                reason=unchecked[0],
            )
        )
    if patterns:
        names = sorted({name for name, _ in patterns})
        findings.append(
            file_finding(
                "SER-CHAT-TEMPLATE-INJECTION",
                Severity.CRITICAL,
                rel,
                f"{rel}: chat template {where} reaches for Python internals when rendered "
                f"({', '.join(names)}): server-side template injection",
                template=where,
                patterns=names,
                excerpts=[excerpt for _, excerpt in patterns[:EVIDENCE_PATTERNS_MAX]],
            )
        )
    return findings


def _chat_templates(meta: GgufMetadata) -> list[tuple[str, str]]:
    return [
        (key, value)
        for key, value in meta.kv.items()
        if (key == "tokenizer.chat_template" or key.startswith("tokenizer.chat_template."))
        and isinstance(value, str)
    ]


def scan_gguf(file: ScanFile, limits: Limits) -> list[Finding]:
    """Check a GGUF file's structure with the bounded reader, then lint its chat templates."""
    del limits  # GGUF bounds are module constants in gguf.reader until they move to Limits
    try:
        with open_scanned(file) as handle:
            meta = read_gguf(handle)
    except GgufError as exc:
        return [
            Finding(
                rule_id="SER-GGUF-MALFORMED",
                severity=Severity.CRITICAL,
                message=f"{file.rel}: {exc.message}",
                location=Location(path=file.rel, offset=exc.offset),
                evidence={"code": "unreadable-structure"},
            )
        ]
    findings: list[Finding] = []
    for problem in meta.problems:
        mild = problem.code in NONSTANDARD_PROBLEMS
        findings.append(
            Finding(
                rule_id="SER-GGUF-NONSTANDARD" if mild else "SER-GGUF-MALFORMED",
                severity=Severity.HIGH if mild else Severity.CRITICAL,
                message=f"{file.rel}: {problem.code}: {problem.message}",
                location=Location(path=file.rel, offset=problem.offset),
                evidence={"code": problem.code},
            )
        )
    for key, template in _chat_templates(meta):
        findings.extend(_template_findings(file.rel, key, template))
    return findings


def _plain(value: GgufValue) -> Any:
    if isinstance(value, GgufArray):
        return [_plain(item) for item in value.items]
    if isinstance(value, str):
        return value[:PROVENANCE_VALUE_MAX]
    return value


@lru_cache(maxsize=32)
def read_metadata(file: ScanFile) -> GgufMetadata | None:
    """A GGUF file's metadata, None when it does not parse (a serialization finding).

    The origin, licence and model-facts steps all read it; the file is parsed once per listed
    file (path, size, inode) for them, not once per step. The safety scan (scan_gguf) parses
    on its own: it reports why a file does not parse.
    """
    try:
        with open_scanned(file) as handle:
            return read_gguf(handle)
    except (GgufError, OSError):
        return None


@lru_cache(maxsize=32)
def read_provenance(file: ScanFile) -> dict[str, Any] | None:
    """The general.* keys of a GGUF file, None when it does not parse."""
    meta = read_metadata(file)
    return gguf_provenance(meta) if meta is not None else None


def gguf_provenance(meta: GgufMetadata) -> dict[str, Any]:
    """The general.* keys that say what the model is, who made it, and under what licence."""
    return {
        key: _plain(value)
        for key, value in meta.kv.items()
        if key in PROVENANCE_KEYS or key.startswith(PROVENANCE_PREFIXES)
    }


def _templates_in_config(data: Any) -> list[tuple[str, str]] | None:
    """The named templates of a tokenizer_config.json / chat_template.json, None if malformed."""
    value = data.get("chat_template") if isinstance(data, dict) else None
    if value is None:
        return []
    if isinstance(value, str):
        return [("chat_template", value)]
    if isinstance(value, list):
        found: list[tuple[str, str]] = []
        for index, entry in enumerate(value):
            if not isinstance(entry, dict) or not isinstance(entry.get("template"), str):
                return None
            found.append((f"chat_template[{entry.get('name', index)!s}]", entry["template"]))
        return found
    return None


def scan_tokenizer_config_template(file: ScanFile, limits: Limits) -> list[Finding]:
    """Lint the chat template(s) of tokenizer_config.json, chat_template.json or a .jinja file."""
    rel = file.rel

    def unchecked(reason: str) -> list[Finding]:
        message = f"{rel}: chat template could not be checked: {reason}"
        return [
            file_finding("SER-CHAT-TEMPLATE-UNCHECKED", Severity.HIGH, rel, message, reason=reason)
        ]

    if file.size > limits.json_file_max:
        return unchecked(f"{file.size} bytes is over json_file_max ({limits.json_file_max})")
    with open_scanned(file) as handle:
        raw, too_large = read_capped(handle, limits.json_file_max)  # even if the file grew
    if too_large:
        return unchecked(f"the file is over json_file_max ({limits.json_file_max})")
    text = raw.decode("utf-8", errors="replace")
    templates: list[tuple[str, str]] | None = [("chat_template", text)]
    problems: list[str] = []
    if not rel.endswith(".jinja"):
        try:
            # A hostile number is reported, and read as transformers reads it: the template
            # is still checked.
            document, problems = parse_json_as_loaded(text)
            templates = _templates_in_config(document)
        except HostileData as exc:
            return unchecked(f"the file {exc.problem}")
        except (ValueError, RecursionError):
            return unchecked("not valid JSON")
    findings: list[Finding] = hostile_number_findings(rel, problems)
    if templates is None:
        return [
            *findings,
            *unchecked("chat_template is neither a string nor a list of {name, template}"),
        ]
    for where, template in templates:
        findings.extend(_template_findings(rel, where, template))
    return findings


# tokenizer.ggml.tokens: the whole vocabulary, read only by read_gguf_tokens.
TOKENS_KEY = "tokenizer.ggml.tokens"
TOKENS_COUNT_MAX = 2_000_000  # real vocabularies have up to ~262k tokens
TOKENS_BYTES_MAX = 48 * 1024 * 1024  # bytes of token strings read (about 3 MB in real files)
TOKEN_KEEP_MAX = 1024  # bytes kept of one token; longer ones are skipped past


class GgufTokensUnreadable(Exception):
    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class GgufTokens:
    tokens: frozenset[str]  # the asked-for tokens the vocabulary holds
    count: int  # tokens in the vocabulary (llama.cpp pads it to the config's vocab_size)


def read_gguf_tokens(file: ScanFile, wanted: Iterable[str]) -> GgufTokens | None:
    """Which of `wanted` the GGUF vocabulary (tokenizer.ggml.tokens) holds, and its size.

    None when the file has no token list. The metadata before the list is read with the
    same bounded reader as read_gguf (a file it refuses is a serialization finding); the
    list itself is walked string by string, bounded in count and total bytes, keeping only
    the asked-for tokens. Raises GgufTokensUnreadable when the list breaks a bound.
    """
    wanted_set = {token.encode() for token in wanted}
    try:
        with open_scanned(file) as handle:
            size = handle.seek(0, 2)
            handle.seek(0)
            cur = _Cursor(handle, size)
            if size < 24 or cur.read(4, "magic") != b"GGUF" or cur.u32("version") not in (2, 3):
                return None
            cur.u64("tensor count")
            kv_count = cur.u64("metadata KV count")
            meta = GgufMetadata(version=0, tensor_count=0)  # problems are read_gguf's to report
            for index in range(min(kv_count, 65_536)):
                key = _read_key(cur, meta, index)
                value_type = cur.u32(f"key {key!r}: value type")
                if key == TOKENS_KEY and value_type == T_ARRAY:
                    return _token_list(cur, wanted_set)
                _read_value(cur, meta, key, value_type)
    except (GgufError, OSError):
        return None
    return None


def _token_list(cur: _Cursor, wanted: set[bytes]) -> GgufTokens:
    elem_type = cur.u32("token list element type")
    count = cur.u64("token list count")
    if elem_type != T_STRING:
        raise GgufTokensUnreadable(f"{TOKENS_KEY} holds element type {elem_type}, not strings")
    if count > TOKENS_COUNT_MAX:
        raise GgufTokensUnreadable(f"{TOKENS_KEY} declares {count:,} tokens")
    cur.need(count * 8, f"{TOKENS_KEY}: {count} tokens")
    found: set[str] = set()
    total = 0
    for index in range(count):
        raw, length = cur.string(TOKEN_KEEP_MAX, f"{TOKENS_KEY}: token {index}")
        total += length
        if total > TOKENS_BYTES_MAX:
            raise GgufTokensUnreadable(f"{TOKENS_KEY} is over {TOKENS_BYTES_MAX:,} bytes")
        if raw in wanted:
            found.add(raw.decode("utf-8"))
    return GgufTokens(tokens=frozenset(found), count=count)
