"""Where is an archive member, may it be opened, and how is one handed to the member router?

Locations: `Location.path` is the file on disk; `Location.member` is the chain of member
names from the outermost archive inwards, joined with "!/" (as in jar: URLs). A zip file
holding `inner.zip` that holds `data.pkl` gives member "inner.zip!/data.pkl". Compression
layers (gzip, bz2, xz, lzma, zlib, lz4) wrap one stream and add no link to the chain.

Depth: `depth` is how many containers (archives or compression layers) enclose the bytes
being routed; the members of a file on disk are at depth 1. A container found at depth d
is opened only if d + 1 <= limits.archive_max_depth.

Routing: the container readers never import the router (route.py), which imports them; each
is handed it as a `Route` and calls it for every member it finds.
"""

from __future__ import annotations

import io
import posixpath
from typing import Protocol

from provscan.collectors.serialization.containers.streams import Readable
from provscan.collectors.serialization.pickle.scan import describe, walk_pickles
from provscan.limits import Limits
from provscan.report import Finding, Location, Severity, located_finding

CHAIN = "!/"


class Route(Protocol):
    """Scans one member (or decompressed stream) by its content; `size` None if unknown."""

    def __call__(
        self,
        stream: Readable,
        size: int | None,
        location: Location,
        limits: Limits,
        depth: int,
        *,
        name: str = "",
        as_pickle: bool = False,
    ) -> list[Finding]: ...


def route_bytes(
    route: Route, data: bytes, location: Location, limits: Limits, depth: int, *, name: str = ""
) -> list[Finding]:
    """Route an in-memory member (a 7z member, a zip member read raw) by its content."""
    return route(io.BytesIO(data), len(data), location, limits, depth, name=name)


def member_location(parent: Location, name: str) -> Location:
    member = name if parent.member is None else f"{parent.member}{CHAIN}{name}"
    return Location(path=parent.path, member=member)


def escapes(name: str) -> bool:
    """Whether an archive path leaves the extraction folder (absolute, drive, or ..)."""
    path = name.replace("\\", "/")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        return True
    return posixpath.normpath(path).split("/")[0] == ".."


def name_findings(name: str, location: Location) -> list[Finding]:
    if not escapes(name):
        return []
    message = f"{describe(location)}: member name {name!r} points outside the extraction folder"
    return [
        located_finding(
            "SER-ARCHIVE-PATH-TRAVERSAL", Severity.HIGH, message, location, name=name[:500]
        )
    ]


def too_deep(location: Location, limits: Limits, depth: int) -> Finding | None:
    """A finding when a container at `depth` is one level too many to open."""
    if depth + 1 <= limits.archive_max_depth:
        return None
    message = (
        f"{describe(location)}: archive nested {depth + 1} levels deep, over the limit "
        f"{limits.archive_max_depth}; its content was not scanned"
    )
    evidence = {"depth": depth + 1, "max_depth": limits.archive_max_depth}
    return located_finding("SER-ARCHIVE-TOO-DEEP", Severity.HIGH, message, location, **evidence)


def may_be_pickle(prefix: bytes, limits: Limits) -> bool:
    """Whether a prefix parses as a pickle start (raw storage can begin like one by chance)."""
    probe = walk_pickles(
        io.BytesIO(prefix), limit=len(prefix), max_opcodes=limits.pickle_max_opcodes
    )
    return probe.error is None or probe.exhausted or probe.events > 0
