"""Where are the licence texts, and what do they say once decoded?

Licence files are found two ways:

* by name: LICENSE, LICENCE, NOTICE, USE_POLICY, COPYING ... (the inventory's LICENCE role);
* by content: any other small file, in any folder and under any name (MODEL_LICENSE,
  legal/TERMS.md, docs/usage-terms.txt), whose text reads like a licence: a licence title or
  grant ("licence agreement", "terms of use", "permission is hereby granted", 许可协议) together
  with the usual licence vocabulary (warranty, liability, redistribution ...). Model cards,
  READMEs, code and data files are not licence files.

Each is decoded by its byte-order mark (UTF-8, UTF-16 LE/BE, UTF-32 LE/BE), as UTF-16 when
it has no mark but a NUL in every other byte, else as UTF-8, GB18030 or Windows-1252. A UTF-16
licence sniffs as binary, so the format the inventory gave is not trusted here. A licence
file that cannot be decoded is a finding: its terms are unknown.

A licence split over several files (sections 1-3 in LICENSE, the rest in LICENSE-2) is
identified from the files' texts put together when no single one is identified.

Reads are bounded: at most LICENCE_TEXT_MAX bytes a file, LICENCE_FILES_MAX named licence
files, and CONTENT_READS_MAX other files read to see whether they are licences.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from provscan.collectors.inventory import role_of
from provscan.collectors.licence_text import TextIdentity, TextMatch, identify
from provscan.files import SniffedFile, open_scanned
from provscan.report import (
    FileFormat,
    FileRole,
    Finding,
    JsonValue,
    LicenceEvidence,
    Severity,
    file_finding,
    target_finding,
)

# A licence file larger than this is not a licence (the longest model licences are ~20 KB).
LICENCE_TEXT_MAX = 1024 * 1024
# Named licence files read per scan; a directory of thousands of NOTICE files is not read through.
LICENCE_FILES_MAX = 64
# Other files read per scan to see whether their content is a licence.
CONTENT_READS_MAX = 256
# How much of a file decides whether it reads like a licence, and where its title must be.
_SNIFF_CHARS = 64 * 1024
_HEAD_BYTES = 4 * _SNIFF_CHARS  # that many characters even in UTF-32
_TITLE_CHARS = 2048
# Licence texts put together when none of them is identified alone.
_RECOMBINE_MAX = 6

# Files that are never licence files, whatever they hold.
_NOT_LICENCE_ROLES = {
    FileRole.CODE,
    FileRole.MODEL_CARD,
    FileRole.WEIGHTS,
    FileRole.TOKENIZER,
    FileRole.CONFIG,
}
_NOT_LICENCE_SUFFIXES = {
    ".json",
    ".jsonl",
    ".csv",
    ".tsv",
    ".ipynb",
    ".parquet",
    ".arrow",
    ".js",
    ".ts",
    ".c",
    ".h",
    ".cpp",
    ".cu",
    ".java",
    ".go",
    ".rs",
    ".jinja",
    ".tiktoken",
}
_CANDIDATE_FORMATS = {FileFormat.TEXT, FileFormat.BINARY, FileFormat.PICKLE}
# Names that suggest legal text: read first when the content reads are rationed.
_LEGAL_NAME = re.compile(
    r"licen[cs]|terms|legal|agreement|polic|eula|copying|copyright|notice|usage|"
    r"\u8bb8\u53ef|\u534f\u8bae|\u6761\u6b3e",
    re.IGNORECASE,
)

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


@dataclass(frozen=True)
class LicenceText:
    rel: str
    text: str
    encoding: str


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


def licence_like(text: str) -> bool:
    """Does this text read like a licence: a title or grant (near its top, where a licence
    names itself), and the vocabulary around it? A text that only mentions a licence in
    passing further down is not one."""
    head = text[:_SNIFF_CHARS]
    strong = sum(1 for p in _STRONG if p.search(head))
    weak = sum(1 for p in _WEAK if p.search(head))
    if strong == 0:
        return False
    titled = any(p.search(head[:_TITLE_CHARS]) for p in _STRONG)
    # Without a title near the top (the second half of a split licence) it takes more.
    return 2 * strong + weak >= (_LICENCE_LIKE if titled else _LICENCE_LIKE_UNTITLED)


# ---------------------------------------------------------------- discovery


def _named(item: SniffedFile) -> bool:
    return role_of(item.file.rel, item.format) is FileRole.LICENCE


def _candidate(item: SniffedFile) -> bool:
    path = PurePosixPath(item.file.rel)
    if any(part.startswith(".") for part in path.parts[:-1]):
        return False  # .git, .cache/huggingface bookkeeping
    if path.name.lower().startswith("readme") or path.suffix.lower() in _NOT_LICENCE_SUFFIXES:
        return False
    if role_of(item.file.rel, item.format) in _NOT_LICENCE_ROLES:
        return False
    return (
        item.format in _CANDIDATE_FORMATS
        and 0 < item.file.size <= LICENCE_TEXT_MAX
        and item.file.read == "whole"
    )


def _unreadable(rel: str, why: str, **evidence: JsonValue) -> Finding:
    return file_finding(
        "LIC-FILE-UNREADABLE",
        Severity.HIGH,
        rel,
        f"{rel}: licence file not read ({why}); its terms are unknown",
        **evidence,
    )


def _read(item: SniffedFile, limit: int) -> bytes:
    with open_scanned(item.file) as handle:
        return handle.read(limit)


def find_licence_texts(files: Sequence[SniffedFile]) -> tuple[list[LicenceText], list[Finding]]:
    """The licence texts of the target, decoded, and findings for those that cannot be read."""
    texts: list[LicenceText] = []
    findings: list[Finding] = []
    named = [f for f in files if _named(f)]
    for item in named[:LICENCE_FILES_MAX]:
        _read_named(item, texts, findings)
    for item in named[LICENCE_FILES_MAX:]:
        findings.append(
            file_finding(
                "LIC-FILE-UNREADABLE",
                Severity.HIGH,
                item.file.rel,
                f"{item.file.rel}: not read: the target holds more than {LICENCE_FILES_MAX} "
                "licence files",
            )
        )
    others = [f for f in files if not _named(f) and _candidate(f)]
    others.sort(
        key=lambda f: (not _LEGAL_NAME.search(f.file.rel), f.file.rel.count("/"), f.file.rel)
    )
    for item in others[:CONTENT_READS_MAX]:
        _read_by_content(item, texts, findings)
    if len(others) > CONTENT_READS_MAX:
        skipped = [f.file.rel for f in others[CONTENT_READS_MAX:]]
        findings.append(
            target_finding(
                "LIC-SEARCH-INCOMPLETE",
                Severity.MEDIUM,
                f"{len(skipped)} text files past the first {CONTENT_READS_MAX} were not read to "
                f"see whether they hold licence terms (first: {skipped[0]})",
                not_read=skipped[:20],
                not_read_count=len(skipped),
            )
        )
    return texts, findings


def _read_named(item: SniffedFile, texts: list[LicenceText], findings: list[Finding]) -> None:
    rel = item.file.rel
    if item.format is FileFormat.EMPTY:
        return
    if item.file.size > LICENCE_TEXT_MAX:
        findings.append(
            _unreadable(
                rel,
                f"{item.file.size} bytes, over {LICENCE_TEXT_MAX}",
                format=item.format.value,
                size=item.file.size,
            )
        )
        return
    try:
        data = _read(item, LICENCE_TEXT_MAX + 1)
    except OSError as exc:
        findings.append(
            file_finding(
                "LIC-FILE-UNREADABLE",
                Severity.HIGH,
                rel,
                f"{rel}: unreadable ({exc.strerror or exc})",
            )
        )
        return
    decoded = decode(data)
    if decoded.text is None:
        findings.append(
            _unreadable(
                rel,
                f"its content is {item.format.value}, not text in any encoding tried",
                format=item.format.value,
                size=item.file.size,
                encoding=decoded.encoding,
            )
        )
        return
    texts.append(LicenceText(rel, decoded.text, decoded.encoding))


def _read_by_content(item: SniffedFile, texts: list[LicenceText], findings: list[Finding]) -> None:
    rel = item.file.rel
    try:
        if item.file.size > _HEAD_BYTES:  # most files are no licence: judge by the head
            head = decode(_read(item, _HEAD_BYTES), whole=False)
            if head.text is not None and not licence_like(head.text):
                return
        data = _read(item, LICENCE_TEXT_MAX + 1)
    except OSError:
        return  # not known to be a licence; the inventory reports unreadable files
    decoded = decode(data)
    if decoded.text is not None:
        if licence_like(decoded.text):
            texts.append(LicenceText(rel, decoded.text, decoded.encoding))
        return
    # Undecodable: when its mark says which encoding it claims, look through the damage for
    # a licence that someone made unreadable.
    if any(data.startswith(bom) for bom, _ in _BOMS) or _nul_pattern(data[:4096]):
        rough = data.decode(decoded.encoding, errors="replace").replace("\x00", "")
        if licence_like(rough):
            findings.append(
                _unreadable(
                    rel,
                    f"reads like a licence but is not valid {decoded.encoding}",
                    format=item.format.value,
                    size=item.file.size,
                    encoding=decoded.encoding,
                )
            )


# ---------------------------------------------------------------- evidence


def licence_text_evidence(
    files: Sequence[SniffedFile],
) -> tuple[list[LicenceEvidence], list[Finding]]:
    """Evidence and findings from every licence text in the target. Never raises: a failure
    on one file is a finding naming it."""
    evidence: list[LicenceEvidence] = []
    findings: list[Finding] = []
    try:
        texts, read_findings = find_licence_texts(files)
    except Exception as exc:  # noqa: BLE001 - a scan must go on with its other findings
        findings.append(
            target_finding(
                "LIC-FILE-UNREADABLE",
                Severity.HIGH,
                f"licence files not read ({type(exc).__name__}: {exc}); their terms are unknown",
            )
        )
        return evidence, findings
    findings.extend(read_findings)
    identities: dict[str, TextIdentity] = {}
    for item in texts:
        try:
            identities[item.rel] = identify(item.text)
        except Exception as exc:  # noqa: BLE001
            findings.append(
                file_finding(
                    "LIC-FILE-UNREADABLE",
                    Severity.HIGH,
                    item.rel,
                    f"{item.rel}: licence text could not be compared ({type(exc).__name__})",
                )
            )
    try:
        combined = _recombine(texts, identities)
    except Exception:  # noqa: BLE001 - each part is still reported on its own
        combined = {}
    for item in texts:
        identity = identities.get(item.rel)
        if identity is None:
            continue
        recombined = combined.get(item.rel)
        if recombined is not None:
            if recombined[0] == item.rel:  # report the whole once, on its first part
                _report(item.rel, recombined[2], evidence, findings, parts=recombined[1])
            continue
        _report(item.rel, identity, evidence, findings)
    return evidence, findings


def _licence_match(identity: TextIdentity) -> TextMatch | None:
    return next((m for m in identity.matches if m.kind == "licence"), None)


def _quality(identity: TextIdentity) -> tuple[bool, int, float]:
    """Identified as a licence at all, then fewer changed clauses, then a higher score."""
    match = _licence_match(identity)
    if match is None:
        return (False, 0, 0.0)
    return (True, -len(match.modified), match.score or 0.0)


def _recombine(
    texts: Sequence[LicenceText], identities: dict[str, TextIdentity]
) -> dict[str, tuple[str, tuple[str, ...], TextIdentity]]:
    """Texts that identify a licence only together: {part: (first part, parts, identity)}."""
    incomplete = [
        t
        for t in texts
        if t.rel in identities
        and (
            not identities[t.rel].matches
            or any(m.modified for m in identities[t.rel].matches if m.kind == "licence")
        )
    ]
    if len(incomplete) < 2:
        return {}
    groups: dict[str, list[LicenceText]] = {}
    for item in incomplete:
        groups.setdefault(str(PurePosixPath(item.rel).parent), []).append(item)
    candidates = [g for g in groups.values() if len(g) >= 2]
    if len(groups) > 1:
        candidates.append(incomplete)  # the parts may sit in different folders
    out: dict[str, tuple[str, tuple[str, ...], TextIdentity]] = {}
    for group in candidates:
        parts = sorted(group, key=lambda t: t.rel)[:_RECOMBINE_MAX]
        if any(p.rel in out for p in parts):
            continue
        identity = identify("\n\n".join(p.text for p in parts))
        whole = _licence_match(identity)
        if whole is None or _quality(identity) <= max(_quality(identities[p.rel]) for p in parts):
            continue
        names = tuple(p.rel for p in parts)
        for p in parts:
            out[p.rel] = (names[0], names, identity)
    return out


def _report(
    rel: str,
    identity: TextIdentity,
    evidence: list[LicenceEvidence],
    findings: list[Finding],
    parts: tuple[str, ...] = (),
) -> None:
    value = identity.title
    if parts:
        value = f"{value} (one text split over {', '.join(parts)})"
    for match in identity.matches:
        changed = tuple(c.describe() for c in match.modified)
        evidence.append(
            LicenceEvidence(
                source="file",
                path=rel,
                value=value,
                key=match.key,
                kind=match.kind,  # type: ignore[arg-type]  # a LicenceKind from the knowledge base
                score=match.score,
                sha256=identity.sha256,
                modified_clauses=changed,
            )
        )
        if changed:
            where = f"{rel} (with {', '.join(parts[1:])})" if parts else rel
            findings.append(
                file_finding(
                    "LIC-TEXT-MODIFIED",
                    Severity.HIGH,
                    rel,
                    f"{where}: the text is the {match.key} {match.kind} with clauses missing or "
                    f"changed: {'; '.join(changed)}; the licensor's terms still bind, so it is "
                    f"read as {match.key}",
                    key=match.key,
                    score=match.score,
                    sha256=identity.sha256,
                    clauses=[
                        {"clause": c.label, "status": c.status, "share": c.share}
                        for c in match.modified
                    ],
                    parts=list(parts),
                )
            )
    if not identity.matches:
        evidence.append(
            LicenceEvidence(source="file", path=rel, value=value, sha256=identity.sha256)
        )
        findings.append(
            file_finding(
                "LIC-TEXT-UNKNOWN",
                Severity.HIGH,
                rel,
                f"{rel}: licence text not identified (sha256 {identity.sha256[:16]}..., "
                f"begins {identity.title[:60]!r}); a person must read its terms",
                sha256=identity.sha256,
                title=identity.title,
            )
        )
