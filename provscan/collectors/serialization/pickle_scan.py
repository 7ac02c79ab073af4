"""Can loading this pickle run code? Walks its pickles, bounded, and reports what they import."""

from __future__ import annotations

import io
import os
import warnings
from typing import Any, BinaryIO

from provscan.collectors.base import ScanFile
from provscan.collectors.serialization.pickle_globals import (
    GlobalVerdict,
    PickleImport,
    Unresolved,
    classify_global,
)
from provscan.collectors.serialization.pickle_walk import (
    TORCH_LEGACY_PICKLES,
    PickleMachine,
    PickleWalk,
    Stream,
)
from provscan.limits import Limits
from provscan.report import Finding, Location, Severity, located_finding

_TOO_LARGE = "SER-PICKLE-TOO-LARGE"


class BoundedReader:
    """A file view that never reads past `limit`, so a hostile length cannot allocate.

    A buffered file's read(n) allocates n bytes before reading; BytesIO needs no wrapper.
    """

    def __init__(self, raw: BinaryIO, limit: int) -> None:
        self.raw = raw
        self.limit = limit
        self.tell = raw.tell
        self.seek = raw.seek

    def read(self, size: int = -1) -> bytes:
        room = max(0, self.limit - self.raw.tell())
        return self.raw.read(room if size < 0 or size > room else size)

    def readline(self) -> bytes:
        return self.raw.readline(max(0, self.limit - self.raw.tell()))


def looks_like_pickle(head: bytes) -> bool:
    """Whether two bytes open a protocol 2-5 pickle (PROTO opcode)."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def walk_pickles(
    stream: BinaryIO, *, limit: int, max_opcodes: int, sniffed: bool = False
) -> PickleWalk:
    """Walk the pickle(s) in `stream` up to `limit` bytes.

    Stacked pickles are walked too (torch's legacy format is five of them). A pickle
    found only by sniffing (`sniffed`, or any after the first) that fails to parse and
    imports nothing is taken for unrelated bytes, not reported as malformed: no
    unpickler would run anything from it.
    """
    # genops warns (DeprecationWarning) on odd escapes in hostile input; that is not news.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return _walk_stacked(stream, limit, max_opcodes, sniffed)


def _walk_stacked(stream: BinaryIO, limit: int, max_opcodes: int, sniffed: bool) -> PickleWalk:
    walk = PickleWalk()
    reader: Stream = stream if isinstance(stream, io.BytesIO) else BoundedReader(stream, limit)
    max_pickles: int | None = None
    while max_pickles is None or walk.pickles < max_pickles:
        start = reader.tell()
        if start >= limit and walk.pickles == 0 and not sniffed:
            walk.error, walk.error_offset, walk.exhausted = "no pickle data", start, True
        if start >= limit or walk.opcode_limit:
            break
        head = reader.read(2)
        reader.seek(start)
        if walk.pickles and not looks_like_pickle(head):
            break  # trailing bytes that pickle.load never reads
        tentative = sniffed or walk.pickles > 0
        events, exhausted = walk.events, walk.exhausted
        machine = PickleMachine(walk, reader, limit)
        machine.run(max_opcodes)
        if machine.error is not None and tentative and walk.events == events:
            walk.exhausted = exhausted
            break
        if machine.error is not None and walk.error is None:
            walk.error, walk.error_offset = machine.error
        if not machine.complete or machine.error is not None:
            break
        walk.pickles += 1
        if walk.pickles == 1 and machine.torch_magic:
            max_pickles = TORCH_LEGACY_PICKLES
    return walk


def describe(location: Location) -> str:
    where = location.path or "<input>"
    return f"{where} (member {location.member})" if location.member else where


def _import_finding(imported: PickleImport, location: Location) -> Finding | None:
    verdict, why = classify_global(imported.qualified, imported.raw, imported.name)
    if verdict is GlobalVerdict.ALLOWED:
        return None
    called = imported.call_opcode is not None
    opcode = imported.call_opcode or imported.opcode
    offset = imported.call_offset if imported.call_offset is not None else imported.offset
    evidence: dict[str, Any] = {"global": imported.qualified, "opcode": opcode, "offset": offset}
    if imported.raw != imported.qualified:
        evidence["written_as"] = imported.raw
    use = f"{'called' if called else 'imported'} by {opcode} at offset {offset}"
    head = f"{describe(location)}: pickle imports {imported.qualified}"
    at = location.model_copy(update={"offset": offset})
    if verdict is GlobalVerdict.DANGEROUS:
        evidence["why"] = why
        message = f"{head} ({why}), {use}; loading it can run code"
        return located_finding(
            "SER-PICKLE-DANGEROUS-GLOBAL", Severity.CRITICAL, message, at, **evidence
        )
    message = f"{head}, which is not on the allowlist of known-safe globals ({use})"
    return located_finding("SER-PICKLE-UNKNOWN-GLOBAL", Severity.HIGH, message, at, **evidence)


def _unresolved_finding(unresolved: Unresolved, location: Location, dynamic: bool) -> Finding:
    head = f"{describe(location)}: {unresolved.opcode} at offset {unresolved.offset}"
    at = location.model_copy(update={"offset": unresolved.offset})
    evidence = {
        "opcode": unresolved.opcode,
        "offset": unresolved.offset,
        "detail": unresolved.detail,
    }
    if dynamic:
        message = f"{head} imports a global the scan cannot name ({unresolved.detail})"
        return located_finding(
            "SER-PICKLE-DYNAMIC-GLOBAL", Severity.CRITICAL, message, at, **evidence
        )
    message = (
        f"{head} imports copyreg {unresolved.detail}, which is not registered here; "
        "what it names depends on the loading process"
    )
    # Critical, like a dynamic global: the callable cannot be checked, and no model
    # serializer (torch, numpy, joblib) emits EXT opcodes, so only a crafted stream has one.
    return located_finding(
        "SER-PICKLE-UNKNOWN-EXTENSION", Severity.CRITICAL, message, at, **evidence
    )


def walk_findings(
    walk: PickleWalk, location: Location, limits: Limits, *, cut: bool
) -> list[Finding]:
    """Findings for a finished walk. `cut`: more bytes followed than the walk could read."""
    where = describe(location)
    found = (_import_finding(i, location) for i in walk.imports.values())
    findings = [f for f in found if f is not None]
    findings.extend(_unresolved_finding(u, location, True) for u in walk.dynamic)
    findings.extend(_unresolved_finding(u, location, False) for u in walk.unknown_extensions)
    unscanned = "the rest was not scanned"
    if walk.opcode_limit:
        message = f"{where}: pickle has over {limits.pickle_max_opcodes} opcodes; {unscanned}"
        evidence: dict[str, Any] = {"max_opcodes": limits.pickle_max_opcodes}
        findings.append(located_finding(_TOO_LARGE, Severity.HIGH, message, location, **evidence))
    elif walk.error is not None and walk.exhausted and cut:
        message = f"{where}: pickle runs past the {limits.pickle_max}-byte limit; {unscanned}"
        evidence = {"max_bytes": limits.pickle_max}
        findings.append(located_finding(_TOO_LARGE, Severity.HIGH, message, location, **evidence))
    elif walk.error is not None:
        message = (
            f"{where}: pickle does not parse at offset {walk.error_offset}: {walk.error}; "
            "an unpickler runs everything before that point"
        )
        at = location.model_copy(update={"offset": walk.error_offset})
        evidence = {
            "error": walk.error[:500],
            "offset": walk.error_offset,
            "imports_before": len(walk.imports),
        }
        findings.append(
            located_finding("SER-PICKLE-MALFORMED", Severity.HIGH, message, at, **evidence)
        )
    return findings


def scan_pickle_bytes(
    data: bytes,
    location: Location,
    limits: Limits,
    *,
    total_size: int | None = None,
    sniffed: bool = False,
) -> list[Finding]:
    """Scan an in-memory pickle (a zip member), already cut to at most limits.pickle_max bytes."""
    stream, max_opcodes = io.BytesIO(data), limits.pickle_max_opcodes
    walk = walk_pickles(stream, limit=len(data), max_opcodes=max_opcodes, sniffed=sniffed)
    cut = total_size is not None and total_size > len(data)
    return walk_findings(walk, location, limits, cut=cut)


def scan_pickle_file(file: ScanFile, limits: Limits) -> list[Finding]:
    """Scan a file whose content is a pickle (or torch's legacy stack of pickles)."""
    with file.path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        # Read lazily through a bounded reader: a legacy torch file is GBs of storage
        # after a few KB of pickles, and only the pickles are walked.
        limit, max_opcodes = min(size, limits.pickle_max), limits.pickle_max_opcodes
        walk = walk_pickles(handle, limit=limit, max_opcodes=max_opcodes)
    return walk_findings(walk, Location(path=file.rel), limits, cut=size > limits.pickle_max)
