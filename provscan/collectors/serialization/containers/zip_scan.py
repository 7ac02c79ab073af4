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

from provscan.collectors.base import isolated
from provscan.collectors.serialization.containers.members import (
    Route,
    may_be_pickle,
    member_location,
    route_bytes,
)
from provscan.collectors.serialization.containers.streams import Rejoined, read_bounded
from provscan.collectors.serialization.containers.zip_checks import (
    declared_member_count,
    layout_findings,
    malformed,
    mismatch_findings,
    problem_findings,
)
from provscan.collectors.serialization.containers.zip_entries import (
    Entry,
    Span,
    span_of,
    zipfile_entries,
)
from provscan.collectors.serialization.containers.zip_layout import compare
from provscan.collectors.serialization.containers.zip_local import StoredSlice, raw_member
from provscan.collectors.serialization.containers.zip_miniz import read_miniz, refusal
from provscan.collectors.serialization.pickle.scan import (
    describe,
    looks_like_pickle,
    scan_pickle_bytes,
)
from provscan.limits import Limits
from provscan.report import Finding, Location, Severity, located_finding

_PICKLE_SUFFIXES = (".pkl", ".pickle")
_TOO_LARGE = "SER-PICKLE-TOO-LARGE"
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
    route: Route,
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
            return route(stream, span.compress_size, location, limits, depth, name=entry.name)
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
    return route_bytes(route, data, location, limits, depth, name=entry.name)


def _scan_member(
    archive: zipfile.ZipFile,
    handle: IO[bytes],
    info: zipfile.ZipInfo,
    entry: Entry,
    where: Location,
    limits: Limits,
    depth: int,
    route: Route,
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
                return route(joined, info.file_size, location, limits, depth, name=info.filename)
            want = min(info.file_size, limits.pickle_max)
            data = head[:want]
            # Read the rest only if the start parses: a storage can begin like a pickle by
            # chance, and a named data.pkl that is garbage from byte 0 (a deflate bomb of
            # zeros) fails the loader right there, so its remaining bytes cannot matter.
            if len(data) < want and may_be_pickle(data, limits):
                data += read_bounded(member, want - len(data))
    except _MEMBER_ERRORS as exc:
        # Refused by zipfile is not refused by every loader: also scan the raw bytes.
        raw = _scan_raw(handle, entry, location, limits, depth, route, pickle=torch_pickle)
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


def scan_zip_archive(
    handle: IO[bytes], where: Location, limits: Limits, depth: int, route: Route
) -> list[Finding]:
    """Scan a zip read from `handle` (a file on disk, or a nested member in memory), both as
    Python's zipfile reads it and as PyTorch's reader (miniz) does.

    `where` names the archive itself; `depth` is the depth of its members (1 on disk);
    `route` scans a member by its content.
    """
    rel = describe(where)
    bound = limits.zip_max_members
    declared = declared_member_count(handle)
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
            return [malformed(where, exc, miniz.error)]
    findings: list[Finding] = []
    layout = compare(handle, size, archive, miniz)
    findings.extend(problem_findings(where, layout.problems))
    torch_pickle = None
    if layout.torch_data_pkl is not None:
        torch_pickle = span_of(handle, layout.torch_data_pkl, size)
    scanned: set[Span] = set()
    names = [e.name for e in miniz.entries]
    if archive is not None:
        with archive:
            findings.extend(
                _scan_zipfile_view(
                    archive, handle, where, limits, depth, route, torch_pickle, scanned
                )
            )
            names = [i.filename for i in archive.infolist()[:bound]] + names
    findings.extend(layout_findings(where, list(dict.fromkeys(names))))
    findings.extend(mismatch_findings(handle, layout.torch_only, where))
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
                partial(_scan_raw, handle, entry, location, limits, depth, route, pickle=as_pickle),
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
    route: Route,
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
    findings.extend(mismatch_findings(handle, entries, where))
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
                    route,
                    span is not None and span == torch_pickle,
                ),
                partial(_unreadable, info.filename, where, location),
            )
        )
    return findings
