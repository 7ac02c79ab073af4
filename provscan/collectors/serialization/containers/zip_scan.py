"""Does this zip archive (usually a PyTorch checkpoint) hide code in its pickles or TorchScript?

Read twice: as Python's zipfile reads it and as PyTorch's reader (miniz) does (see
zip_layout for what each one does). Every member either reader hands out is scanned, and the
one torch.load unpickles as data.pkl always as a pickle.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from functools import partial
from typing import IO

from provscan.collectors.serialization.containers.members import (
    Rejoined,
    may_be_pickle,
    member_location,
    read_bounded,
    scan_member_bytes,
    scan_member_stream,
)
from provscan.collectors.serialization.containers.zip_layout import (
    Entry,
    Problem,
    Span,
    compare,
    read_miniz,
    refusal,
    span_of,
    zipfile_entries,
)
from provscan.collectors.serialization.containers.zip_local import (
    StoredSlice,
    header_disagreement,
    raw_member,
)
from provscan.collectors.serialization.pickle.scan import (
    describe,
    looks_like_pickle,
    scan_pickle_bytes,
)
from provscan.files import ScanFile, isolated, open_scanned
from provscan.limits import Limits
from provscan.report import Finding, Location, Severity, located_finding

_PICKLE_SUFFIXES = (".pkl", ".pickle")
_TOO_LARGE = "SER-PICKLE-TOO-LARGE"
_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
# What zipfile raises on a broken central directory (OSError: seeks to a hostile offset).
_ARCHIVE_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,
    ValueError,
    EOFError,
    struct.error,
    OSError,
)
# What zipfile raises on a member it will not read (bad CRC, encrypted, name mismatch ...).
_MEMBER_ERRORS = (
    zipfile.BadZipFile,
    RuntimeError,
    NotImplementedError,
    ValueError,
    EOFError,
    zlib.error,
    OSError,
)


def _declared_member_count(handle: IO[bytes]) -> int | None:
    """The entry count the end-of-central-directory record claims, read before zipfile
    builds a ZipInfo for every entry (which is where a huge count would cost memory)."""
    size = handle.seek(0, 2)
    tail_len = min(size, 22 + 0xFFFF)
    handle.seek(size - tail_len)
    tail = handle.read(tail_len)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        return None
    (count,) = struct.unpack_from("<H", tail, at + 10)
    locator = at - 20
    if count == 0xFFFF and locator >= 0 and tail[locator : locator + 4] == _EOCD64_LOCATOR:
        (eocd64_offset,) = struct.unpack_from("<Q", tail, locator + 8)
        if eocd64_offset + 56 <= size:  # past the end it is absent (and past seek's range)
            handle.seek(eocd64_offset)
            record = handle.read(56)
            if len(record) == 56 and record[:4] == _EOCD64:
                (count,) = struct.unpack_from("<Q", record, 32)
    return int(count)


def _is_torchscript(name: str) -> bool:
    # torch.jit.save writes <archive>/code/... and <archive>/constants.pkl; <archive> is the
    # file's stem, so a plain torch.save to code.pt has code/data.pkl and is not TorchScript.
    parts = name.split("/")
    return (len(parts) > 2 and parts[1] == "code") or parts[-1] == "constants.pkl"


def _layout_findings(where: Location, names: list[str]) -> list[Finding]:
    findings: list[Finding] = []
    rel = describe(where)
    script = [n for n in names if _is_torchscript(n)]
    if script:
        message = (
            f"{rel}: archive holds TorchScript ({script[0]} ...); torch.load used to hand such "
            "archives to torch.jit.load, which runs their code (CVE-2025-32434)"
        )
        evidence = {"members": script[:10], "count": len(script)}
        findings.append(
            located_finding("SER-TORCHSCRIPT", Severity.HIGH, message, where, **evidence)
        )
    data_pkls = sorted({n for n in names if n.rsplit("/", 1)[-1] == "data.pkl"})
    if len(data_pkls) > 1:
        message = (
            f"{rel}: archive has {len(data_pkls)} data.pkl members; which one loads is ambiguous"
        )
        evidence = {"members": data_pkls[:10]}
        findings.append(
            located_finding("SER-ZIP-MULTIPLE-DATA-PKL", Severity.HIGH, message, where, **evidence)
        )
    return findings


def _problem_findings(where: Location, problems: list[Problem]) -> list[Finding]:
    """Reader disagreements and layouts no zip writer produces: critical, because each one
    lets a loader run bytes that another reader (a reviewer, a scanner) never saw."""
    findings: list[Finding] = []
    for problem in problems:
        location = where if problem.member is None else member_location(where, problem.member)
        message = f"{describe(where)}: {problem.text}"
        findings.append(
            located_finding(
                problem.rule_id, Severity.CRITICAL, message, location, **problem.evidence
            )
        )
    return findings


def _mismatch_findings(handle: IO[bytes], entries: list[Entry], where: Location) -> list[Finding]:
    findings: list[Finding] = []
    checked: set[int] = set()
    for entry in entries:
        if entry.header_offset in checked:
            continue
        checked.add(entry.header_offset)
        try:
            differences = header_disagreement(handle, entry)
        except (OSError, ValueError, OverflowError, struct.error) as exc:
            differences = {"error": str(exc)[:200]}
        if differences is None:
            continue
        message = (
            f"{describe(where)}: member {entry.name}'s local header disagrees with the "
            f"central directory ({', '.join(sorted(differences))}); readers differ on what it holds"
        )
        location = member_location(where, entry.name)
        evidence = {"differences": differences, "offset": entry.header_offset}
        findings.append(
            located_finding(
                "SER-ZIP-HEADER-MISMATCH", Severity.CRITICAL, message, location, **evidence
            )
        )
    return findings


def _unreadable(
    name: str, where: Location, location: Location, exc: BaseException
) -> list[Finding]:
    message = (
        f"{describe(where)}: cannot read member {name}: {exc}; it was not scanned, "
        "though PyTorch's own zip reader may still load it"
    )
    error = str(exc)[:500]
    return [
        located_finding("SER-ZIP-MEMBER-UNREADABLE", Severity.HIGH, message, location, error=error)
    ]


def _refused(
    handle: IO[bytes], entry: Entry, where: Location, location: Location, exc: BaseException
) -> list[Finding]:
    """zipfile refuses the member; when torch's reader takes it anyway, the readers disagree."""
    size = handle.seek(0, 2)
    if refusal(entry) is not None or entry.directory or span_of(handle, entry, size) is None:
        return _unreadable(entry.name, where, location, exc)
    message = (
        f"{describe(where)}: zipfile refuses member {entry.name} ({exc}) but PyTorch's reader "
        "loads it (it checks no CRC and no local name); its raw bytes were scanned"
    )
    evidence = {"name": entry.name, "zipfile_error": str(exc)[:500]}
    return [
        located_finding(
            "SER-ZIP-READER-DISAGREEMENT", Severity.CRITICAL, message, location, **evidence
        )
    ]


def _scan_raw(
    handle: IO[bytes],
    entry: Entry,
    location: Location,
    limits: Limits,
    depth: int,
    *,
    pickle: bool = False,
) -> list[Finding]:
    """Scan an entry's bytes as torch's reader takes them; `pickle`: as torch's data.pkl."""
    try:
        span = span_of(handle, entry, handle.seek(0, 2))
        if span is None:
            return []
        if not pickle and entry.method == zipfile.ZIP_STORED:
            # Streamed like any member: a stored storage can be gigabytes.
            stream = StoredSlice(handle, span.data_offset, span.compress_size)
            return scan_member_stream(
                stream, span.compress_size, location, limits, depth, name=entry.name
            )
        data = raw_member(handle, entry, limits)
    except (OSError, ValueError, OverflowError, struct.error, zlib.error):
        return []
    if data is None:
        return []
    if pickle:
        total = entry.file_size
        return scan_pickle_bytes(data, location, limits, total_size=total, sniffed=False)
    if not data:
        return []
    return scan_member_bytes(data, location, limits, depth, name=entry.name)


def _scan_member(
    archive: zipfile.ZipFile,
    handle: IO[bytes],
    info: zipfile.ZipInfo,
    entry: Entry,
    where: Location,
    limits: Limits,
    depth: int,
    torch_pickle: bool,
) -> list[Finding]:
    location = member_location(where, info.filename)
    named = torch_pickle or info.filename.lower().endswith(_PICKLE_SUFFIXES)
    try:
        with archive.open(info) as member:
            head = read_bounded(member, limits.sniff_bytes)
            # Decide by content too: a pickle hidden under any name (CVE-2025-1889, -10155);
            # anything else (a nested archive, an .npy of an .npz) goes to the member router.
            if not named and not looks_like_pickle(head):
                joined = Rejoined(head, member)
                return scan_member_stream(
                    joined, info.file_size, location, limits, depth, name=info.filename
                )
            want = min(info.file_size, limits.pickle_max)
            data = head[:want]
            # Read the rest only if the start parses: a storage can begin like a pickle by
            # chance, and a named data.pkl that is garbage from byte 0 (a deflate bomb of
            # zeros) fails the loader right there, so its remaining bytes cannot matter.
            if len(data) < want and may_be_pickle(data, limits):
                data += read_bounded(member, want - len(data))
    except _MEMBER_ERRORS as exc:
        # Refused by zipfile is not refused by every loader: also scan the raw bytes.
        raw = _scan_raw(handle, entry, location, limits, depth, pickle=torch_pickle)
        return _refused(handle, entry, where, location, exc) + raw
    findings: list[Finding] = []
    if named and info.file_size > limits.pickle_max:
        message = (
            f"{describe(where)}: member {info.filename} is {info.file_size} bytes, over the "
            f"{limits.pickle_max}-byte pickle limit; only its start was scanned"
        )
        evidence = {"size": info.file_size, "max_bytes": limits.pickle_max}
        findings.append(located_finding(_TOO_LARGE, Severity.HIGH, message, location, **evidence))
    scanned = scan_pickle_bytes(
        data, location, limits, total_size=info.file_size, sniffed=not named
    )
    if findings:
        scanned = [f for f in scanned if f.rule_id != _TOO_LARGE]
    return findings + scanned


def _malformed(where: Location, exc: BaseException, torch_error: str | None) -> Finding:
    message = f"{describe(where)}: zip archive cannot be opened: {exc}"
    if torch_error:
        message += f"; PyTorch's reader refuses it too ({torch_error})"
    return located_finding("SER-ZIP-MALFORMED", Severity.HIGH, message, where, error=str(exc)[:500])


def scan_zip_archive(
    handle: IO[bytes], where: Location, limits: Limits, depth: int
) -> list[Finding]:
    """Scan a zip read from `handle` (a file on disk, or a nested member in memory), both as
    Python's zipfile reads it and as PyTorch's reader (miniz) does.

    `where` names the archive itself; `depth` is the depth of its members (1 on disk).
    """
    rel = describe(where)
    bound = limits.zip_max_members
    declared = _declared_member_count(handle)
    if declared is not None and declared > bound:
        message = f"{rel}: archive declares {declared} members, over the limit {bound}; not scanned"
        evidence = {"declared": declared, "max_members": bound}
        return [
            located_finding("SER-ZIP-TOO-MANY-MEMBERS", Severity.HIGH, message, where, **evidence)
        ]
    size = handle.seek(0, 2)
    miniz = read_miniz(handle, size, bound)
    archive: zipfile.ZipFile | None = None
    try:
        archive = zipfile.ZipFile(handle)
    except _ARCHIVE_ERRORS as exc:
        if miniz.error is not None:
            return [_malformed(where, exc, miniz.error)]
    findings: list[Finding] = []
    layout = compare(handle, size, archive, miniz)
    findings.extend(_problem_findings(where, layout.problems))
    torch_pickle = None
    if layout.torch_data_pkl is not None:
        torch_pickle = span_of(handle, layout.torch_data_pkl, size)
    scanned: set[Span] = set()
    names = [e.name for e in miniz.entries]
    if archive is not None:
        with archive:
            findings.extend(
                _scan_zipfile_view(archive, handle, where, limits, depth, torch_pickle, scanned)
            )
            names = [i.filename for i in archive.infolist()[:bound]] + names
    findings.extend(_layout_findings(where, list(dict.fromkeys(names))))
    findings.extend(_mismatch_findings(handle, layout.torch_only, where))
    # What torch reads and zipfile never hands out: as torch's reader takes it.
    for entry in layout.torch_only[:bound]:
        span = span_of(handle, entry, size)
        if span is None or span in scanned or entry.directory or refusal(entry):
            continue
        scanned.add(span)
        location = member_location(where, entry.name)
        as_pickle = span == torch_pickle
        findings.extend(
            isolated(
                partial(_scan_raw, handle, entry, location, limits, depth, pickle=as_pickle),
                partial(_unreadable, entry.name, where, location),
            )
        )
    return findings


def _scan_zipfile_view(
    archive: zipfile.ZipFile,
    handle: IO[bytes],
    where: Location,
    limits: Limits,
    depth: int,
    torch_pickle: Span | None,
    scanned: set[Span],
) -> list[Finding]:
    findings: list[Finding] = []
    bound = limits.zip_max_members
    size = handle.seek(0, 2)
    infos = archive.infolist()
    if len(infos) > bound:
        message = (
            f"{describe(where)}: archive has {len(infos)} members; only the first {bound} "
            "were scanned"
        )
        evidence = {"members": len(infos), "max_members": bound}
        findings.append(
            located_finding("SER-ZIP-TOO-MANY-MEMBERS", Severity.HIGH, message, where, **evidence)
        )
        infos = infos[:bound]
    entries = zipfile_entries(archive)[: len(infos)]
    findings.extend(_mismatch_findings(handle, entries, where))
    for info, entry in zip(infos, entries, strict=True):
        if entry.directory:  # never info.is_dir(), which raises on an empty name
            continue
        span = span_of(handle, entry, size)
        if span is not None:
            scanned.add(span)
        location = member_location(where, info.filename)
        findings.extend(
            isolated(
                partial(
                    _scan_member,
                    archive,
                    handle,
                    info,
                    entry,
                    where,
                    limits,
                    depth,
                    span is not None and span == torch_pickle,
                ),
                partial(_unreadable, info.filename, where, location),
            )
        )
    return findings


def scan_zip(file: ScanFile, limits: Limits) -> list[Finding]:
    """Scan every pickle in a zip archive, by name or by content; never extracts to disk."""
    with open_scanned(file) as handle:
        return scan_zip_archive(handle, Location(path=file.rel), limits, depth=1)
