"""Where are the licence texts, and what do they say once decoded?

Licence files are found two ways:

* by name: LICENSE, LICENCE, NOTICE, USE_POLICY, COPYING ... (the inventory's LICENCE role);
* by content: any other small file, in any folder and under any name (MODEL_LICENSE,
  legal/TERMS.md, docs/usage-terms.txt), whose text reads like a licence (licence_like).
  Model cards, READMEs, code and data files are not licence files.

Each is decoded whatever its encoding (licence_decode). A licence file that cannot be
decoded is a finding: its terms are unknown.

Reads are bounded: at most LICENCE_TEXT_MAX bytes a file, LICENCE_FILES_MAX named licence
files, and CONTENT_READS_MAX other files read to see whether they are licences.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from provscan.collectors.inventory import role_of
from provscan.collectors.licence_decode import claims_encoding, decode
from provscan.collectors.licence_like import SNIFF_CHARS, licence_like
from provscan.files import SniffedFile, open_scanned
from provscan.report import (
    FileFormat,
    FileRole,
    Finding,
    JsonValue,
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
# A file larger than this is judged by its head first: SNIFF_CHARS characters even in UTF-32.
_HEAD_BYTES = 4 * SNIFF_CHARS

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


@dataclass(frozen=True)
class LicenceText:
    rel: str
    text: str
    encoding: str


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
    if claims_encoding(data):
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
