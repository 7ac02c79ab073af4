"""Can loading this pickle run code? Walks its pickles, bounded, and reports what they import."""

from __future__ import annotations

import contextlib
import io
import mmap
import os
import warnings
from collections.abc import Iterator
from typing import Any, BinaryIO

from provscan.collectors.serialization.pickle.globals import (
    GlobalVerdict,
    PickleImport,
    Unresolved,
    classify_global,
)
from provscan.collectors.serialization.pickle.reading import MAX_LIVE_BLOCKS, TORCH_LEGACY_PICKLES
from provscan.collectors.serialization.pickle.values import PickleWalk, Reader, Stream
from provscan.collectors.serialization.pickle.walk import Walker
from provscan.files import ScanFile, open_scanned
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
    """Walk the pickle(s) in `stream` up to `limit` bytes, as each unpickler reads them.

    The stream is read twice, by `_pickle.c`'s rules and by pickle.py's (joblib's), and the
    imports and calls of both are reported; where the two disagree, `disagreement` says how.
    Stacked pickles are walked too (torch's legacy format is five of them; a loader may call
    load() again). A pickle found only by sniffing (`sniffed`, or any after the first) that
    fails before it imports anything is taken for unrelated bytes: no unpickler would run
    anything from it.
    """
    direct = isinstance(stream, (io.BytesIO, mmap.mmap))
    reader: Stream = stream if direct else BoundedReader(stream, limit)
    start = reader.tell()
    # pickle.py warns (DeprecationWarning) on odd escapes in hostile input; that is not news.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        walks: list[PickleWalk] = []
        for which in (Reader.C, Reader.PY, Reader.C_STREAM):
            if which is Reader.C_STREAM and walks[0].straddle_offset is None:
                break  # without an opcode across a frame's end, both C readings are one
            reader.seek(start)
            walks.append(_walk_stacked(reader, which, limit, max_opcodes, sniffed))
    return merge_walks(*walks)


def _walk_stacked(
    reader: Stream, which: Reader, limit: int, max_opcodes: int, sniffed: bool
) -> PickleWalk:
    walk = PickleWalk(reader=which)
    max_pickles: int | None = None
    while max_pickles is None or walk.pickles < max_pickles:
        start = reader.tell()
        if start >= limit and walk.pickles == 0 and not sniffed:
            walk.error, walk.error_offset, walk.exhausted = "no pickle data", start, True
        if start >= limit or walk.opcode_limit:
            break
        if walk.pickles and not looks_like_pickle(reader.read(2)):
            break  # what follows a STOP is read again only as a new pickle (torch's legacy stack)
        reader.seek(start)
        tentative = sniffed or walk.pickles > 0
        events, exhausted = len(walk.trail), walk.exhausted
        walker = Walker(reader, walk, which, limit=limit, max_opcodes=max_opcodes)
        complete = walker.run()
        if walk.error is not None and tentative and len(walk.trail) == events:
            # Bytes that are not a pickle: no unpickler runs anything from them.
            walk.error, walk.error_offset, walk.exhausted = None, None, exhausted
            break
        if not complete:
            break
        walk.pickles += 1
        if walk.pickles == 1 and walker.torch_magic:
            max_pickles = TORCH_LEGACY_PICKLES
    return walk


def _prefix(shorter: list[tuple[str, str]], longer: list[tuple[str, str]]) -> bool:
    return longer[: len(shorter)] == shorter


def _disagreement(a: PickleWalk, b: PickleWalk, joblib_from: int | None) -> str | None:
    """How two readings' imports and calls differ, unless one merely stops sooner. In a joblib
    stream only what comes before joblib's first array counts: _pickle.c goes on to read the
    array bytes as opcodes, which is not how such a file is loaded."""
    if joblib_from is not None:
        same = a.trail[:joblib_from] == b.trail[:joblib_from]
    else:
        same = (
            a.trail == b.trail
            or (a.error is not None and _prefix(a.trail, b.trail))  # a stops, b reads on
            or (b.error is not None and _prefix(b.trail, a.trail))
        )
    if same:
        return None
    only_a = sorted({n for _, n in a.trail} - {n for _, n in b.trail})
    only_b = sorted({n for _, n in b.trail} - {n for _, n in a.trail})
    parts = [f"{a.reader.value} reads {len(a.trail)} imports and calls"]
    parts.append(f"{b.reader.value} reads {len(b.trail)}")
    for walk, only in ((a, only_a), (b, only_b)):
        if only:
            parts.append(f"only {walk.reader.name} reaches {', '.join(only[:5])}")
    if not only_a and not only_b:
        parts.append("in a different order")
    return "; ".join(parts)


def merge_walks(c: PickleWalk, py: PickleWalk, stream: PickleWalk | None = None) -> PickleWalk:
    """Everything any reader imports or calls; an error only where every reader stops early."""
    merged = c
    others = [walk for walk in (py, stream) if walk is not None]
    notes = [d for other in others if (d := _disagreement(c, other, py.joblib_from))]
    if c.straddle_offset is not None:
        notes.append(
            f"the opcode at offset {c.straddle_offset} reads past the end of its frame, which "
            "_pickle.c reads differently from bytes and from an unbuffered stream"
        )
    merged.disagreement = "; ".join(notes) or None
    for walk in (c, *others):
        if py.joblib_from is not None:
            _drop_array_noise(walk, py.joblib_from)
    for other in others:
        _absorb(merged, other)
    if py.error is None and not py.opcode_limit and py.pickles:
        merged.error, merged.error_offset, merged.exhausted = None, None, False
    elif py.error is not None and c.error is not None and py.joblib_arrays:
        # Both stop early in a joblib stream: joblib's reading is the one that matters.
        merged.error, merged.error_offset, merged.exhausted = (
            py.error,
            py.error_offset,
            py.exhausted,
        )
    return merged


def _drop_array_noise(walk: PickleWalk, cut: int) -> None:
    """A C reading of a joblib stream: globals first seen after joblib's first array are kept
    only when they are dangerous (pickle.load, or numpy.load with allow_pickle on a renamed
    file, would run them); the rest is array data read as opcodes."""
    if walk.reader is Reader.PY:
        return
    before = {name for _, name in walk.trail[:cut]}
    for qualified, found in list(walk.imports.items()):
        if found.raw in before:
            continue
        verdict, _ = classify_global(found.qualified, found.raw, found.name)
        if verdict is not GlobalVerdict.DANGEROUS:
            del walk.imports[qualified]


def _absorb(merged: PickleWalk, other: PickleWalk) -> None:
    for qualified, found in other.imports.items():
        mine = merged.imports.setdefault(qualified, found)
        if mine.call_opcode is None and found.call_opcode is not None:
            mine.call_opcode, mine.call_offset = found.call_opcode, found.call_offset
    seen = {(u.opcode, u.offset) for u in merged.dynamic + merged.unknown_extensions}
    merged.dynamic += [u for u in other.dynamic if (u.opcode, u.offset) not in seen]
    merged.unknown_extensions += [
        u for u in other.unknown_extensions if (u.opcode, u.offset) not in seen
    ]
    merged.opcode_limit = merged.opcode_limit or other.opcode_limit
    merged.value_limit = merged.value_limit or other.value_limit
    merged.opcodes = max(merged.opcodes, other.opcodes)
    merged.pickles = max(merged.pickles, other.pickles)
    offsets = [o for o in (merged.speculative_offset, other.speculative_offset) if o is not None]
    merged.speculative_offset = min(offsets) if offsets else None


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
    if walk.disagreement is not None:
        message = (
            f"{where}: the unpicklers read this stream differently ({walk.disagreement}); "
            "a scan can only vouch for one reading, and a loader may take the other"
        )
        findings.append(
            located_finding(
                "SER-PICKLE-READER-DIFFERENTIAL",
                Severity.CRITICAL,
                message,
                location,
                detail=walk.disagreement[:500],
            )
        )
    unscanned = "the rest was not scanned"
    if walk.value_limit:
        message = (
            f"{where}: pickle builds over {MAX_LIVE_BLOCKS:,} values before its end; {unscanned}"
        )
        evidence: dict[str, Any] = {"max_values": MAX_LIVE_BLOCKS}
        findings.append(located_finding(_TOO_LARGE, Severity.HIGH, message, location, **evidence))
    elif walk.opcode_limit:
        message = f"{where}: pickle has over {limits.pickle_max_opcodes} opcodes; {unscanned}"
        evidence = {"max_opcodes": limits.pickle_max_opcodes}
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


@contextlib.contextmanager
def _mapped(handle: BinaryIO, most: int) -> Iterator[tuple[Any, int]]:
    """The file's first `most` bytes, memory-mapped: read lazily (a legacy torch file is GBs of
    storage after a few KB of pickles, and only the pickles are touched) at C speed, and never
    past the limit. Falls back to a bounded reader where a file cannot be mapped."""
    size = os.fstat(handle.fileno()).st_size
    length = min(size, most)
    try:
        view = mmap.mmap(handle.fileno(), length, access=mmap.ACCESS_READ) if length else None
    except (OSError, ValueError):
        yield handle, size
        return
    if view is None:
        yield io.BytesIO(b""), size
        return
    try:
        yield view, size
    finally:
        view.close()


def scan_as_pickle(file: ScanFile, limits: Limits, fmt: str) -> list[Finding]:
    """Walk a file identified as another format from byte 0, as pickle.load would read it.

    No format decision is final for a pickle loader: torch.load, joblib.load and pickle.load
    read whatever bytes they are given. A file that reaches an import or call that way is a
    polyglot, whatever else it also is; one that fails first runs nothing in any unpickler.
    """
    with open_scanned(file) as handle, _mapped(handle, limits.pickle_max) as (view, size):
        limit, max_opcodes = min(size, limits.pickle_max), limits.pickle_max_opcodes
        walk = walk_pickles(view, limit=limit, max_opcodes=max_opcodes, sniffed=True)
    if not walk.plausible:
        return []
    location = Location(path=file.rel)
    findings = walk_findings(walk, location, limits, cut=size > limits.pickle_max)
    names = ", ".join(sorted(walk.imports)[:5]) or "globals it cannot name"
    message = (
        f"{file.rel}: identified as {fmt}, but an unpickler reading it from byte 0 imports "
        f"{names}: a file that is two formats at once is read differently by different loaders"
    )
    evidence: dict[str, Any] = {"format": fmt, "imports": sorted(walk.imports)[:20]}
    polyglot = located_finding(
        "SER-PICKLE-POLYGLOT", Severity.CRITICAL, message, location, **evidence
    )
    return [polyglot, *findings]


def scan_pickle_file(file: ScanFile, limits: Limits) -> list[Finding]:
    """Scan a file whose content is a pickle (or torch's legacy stack of pickles)."""
    with open_scanned(file) as handle, _mapped(handle, limits.pickle_max) as (view, size):
        limit, max_opcodes = min(size, limits.pickle_max), limits.pickle_max_opcodes
        walk = walk_pickles(view, limit=limit, max_opcodes=max_opcodes)
    return walk_findings(walk, Location(path=file.rel), limits, cut=size > limits.pickle_max)
