"""Which bytes does each zip reader take for each member, and where do the readers part ways?

`torch.load` opens a zip checkpoint with `torch._C.PyTorchFileReader`
(caffe2/serialize/inline_container.cc over the miniz 3.0.2 that PyTorch vendors,
https://github.com/pytorch/pytorch/blob/main/caffe2/serialize/inline_container.cc ,
https://github.com/pytorch/pytorch/tree/main/third_party/miniz-3.0.2); numpy (`.npz`), Keras and most
scanners use Python's `zipfile`. zip_miniz.py models miniz's reader byte for byte; this module
compares it with what `zipfile` resolves (zip_coverage.py: which bytes each view accounts
for). Facts below were established by experiment with torch 2.13.0+cpu and CPython 3.11.7
`zipfile` (hand-built archives, read with
`PyTorchFileReader(path).get_all_records()` / `.get_record(name)`, `torch.load(...,
weights_only=False)` and `zipfile.ZipFile`):

- `torch.load` takes the zip path only when the file starts with `PK\\x03\\x04`
  (`torch.serialization._is_zipfile`); anything else goes to the legacy tar / stacked-pickle
  reader, so a pickle prepended to a zip runs as a pickle.
- End record: miniz scans back from the end for the last `PK\\x05\\x06` with at least 22
  bytes after it (about 64 KiB back at most). zipfile takes the last signature in that window
  whatever follows it, and refuses the file when fewer than 22 bytes follow: a truncated
  signature at the end hides the archive from zipfile but not from torch.
- ZIP64: miniz reads the zip64 end record at the offset the locator names; zipfile ignores
  that offset and reads the 56 bytes just before the locator, so two zip64 end records make
  the readers use two different central directories.
- Central directory: miniz reads it at the offset the end record gives. zipfile reads it
  just before the end record ("concat" = its position minus that offset, added to every
  member offset), so prepended bytes move zipfile's members but break miniz, and a second
  directory at the stated offset is what torch reads.
- Entry count: miniz reads exactly the count the end record gives; zipfile reads entries
  until the directory's byte size is used up, so extra entries are zipfile's alone.
- Names: miniz sorts the directory (heap sort of ASCII-lowercased names) and binary-searches
  it, so lookups ignore case and, with duplicates, return whichever copy the search lands on
  (for 3 copies the middle one; zipfile returns the last). zipfile cuts a name at its first
  NUL; miniz compares all its bytes.
- Prefix: torch takes the first entry's name up to its first `/` as the archive folder and
  looks up `<folder>/data.pkl`, `<folder>/version` ...; `get_all_records()` (called by
  `torch.load`) raises when any entry is outside that folder, so torch 2.13 refuses such
  archives (older releases ignored those entries).
- Local headers: both readers take the name and extra lengths from the local header to find
  the data, and the sizes, method and flags from the central directory; neither checks the
  local name (zipfile refuses a differing name, miniz does not), CRCs (miniz is built
  without them) or local sizes.
- Leading / trailing bytes are ignored by both when the offsets still fit; data descriptors
  (torch.save writes them, flag bit 3) are ignored by both.
- An entry with the DOS directory attribute (0x10) is a directory to miniz, which hands out
  no bytes for it (zipfile only goes by a trailing `/`).
- Methods: miniz reads stored and deflate only (bz2 / lzma members fail at `get_record`);
  encryption flags (bits 0 and 6) and patch data (bit 5) fail in both readers.
- Overlapping entries (two directory entries on one local header, or data running into
  another member) are read by both (zipfile 3.11.7 has no overlap check; 3.12.2+ refuses
  some).
"""

from __future__ import annotations

import zipfile
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any

from provscan.collectors.serialization.containers.zip_coverage import (
    Region,
    coverage_problems,
    covered,
    directory_size,
    end_records,
    regions,
    tail_regions,
    zipfile_end,
)
from provscan.collectors.serialization.containers.zip_entries import (
    EOCD_SIZE,
    Entry,
    Span,
    span_of,
    zipfile_entries,
)
from provscan.collectors.serialization.containers.zip_miniz import MinizView

# Records torch.load asks its reader for by name, under the archive folder
# (torch/serialization.py _load, inline_container.cc init).
TORCH_RECORDS = (
    "data.pkl",
    "version",
    ".data/version",
    "byteorder",
    ".format_version",
    ".storage_alignment",
    ".data/serialization_id",
    "constants.pkl",
)


@dataclass(frozen=True)
class Problem:
    """One way the archive departs from a plain zip, or the readers from each other."""

    rule_id: str
    text: str
    evidence: dict[str, Any]
    member: str | None = None


@dataclass
class Layout:
    problems: list[Problem] = field(default_factory=list)
    # Entries torch reads whose bytes zipfile never hands out: scan them raw as well.
    torch_only: list[Entry] = field(default_factory=list)
    # What torch.load reads as <folder>/data.pkl, if it opens the archive.
    torch_data_pkl: Entry | None = None


def _describe_span(entry: Entry | None, span: Span | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    shown: dict[str, Any] = {"entry": entry.name, "header_offset": entry.header_offset}
    if span is not None:
        shown.update(data_offset=span.data_offset, size=span.compress_size, method=span.method)
    return shown


def _coverage(
    handle: IO[bytes],
    size: int,
    entries: list[Entry],
    directory: tuple[int, int],
    tail: list[Region],
    spans: dict[int, Span | None],
) -> list[dict[str, Any]]:
    return coverage_problems(regions(handle, entries, size, directory, tail, spans), size)


def compare(
    handle: IO[bytes], size: int, archive: zipfile.ZipFile | None, miniz: MinizView
) -> Layout:
    """Everything that makes torch's reader and zipfile see different archives, or that a
    plain zip writer never produces (several end records, overlaps, stray bytes)."""
    layout = Layout()
    problems = layout.problems
    py_end = zipfile_end(handle, size)
    # ------------------------------------------------------------ which reader opens it
    if (archive is not None) != (miniz.error is None):
        opened, refused = ("zipfile", "torch") if archive is not None else ("torch", "zipfile")
        why = miniz.error if archive is not None else "zipfile cannot open it"
        problems.append(
            Problem(
                "SER-ZIP-READER-DISAGREEMENT",
                f"{opened} opens the archive but {refused} refuses it ({why})",
                {"opens": opened, "refuses": refused, "why": why},
            )
        )
    # ------------------------------------------------------------ end records
    used: set[int] = set()
    if miniz.end_offset is not None:
        used.add(miniz.end_offset)
    if py_end is not None:
        used.add(py_end[0])
    if len(used) > 1:
        problems.append(
            Problem(
                "SER-ZIP-READER-DISAGREEMENT",
                f"torch uses the end record at offset {miniz.end_offset}, zipfile the one at "
                f"{py_end[0] if py_end else None}",
                {"torch_end": miniz.end_offset, "zipfile_end": py_end[0] if py_end else None},
            )
        )
    py_zip64 = py_end[1] if py_end else None
    if miniz.zip64_offset is not None and py_zip64 is not None and miniz.zip64_offset != py_zip64:
        problems.append(
            Problem(
                "SER-ZIP-MULTIPLE-END-RECORDS",
                f"two zip64 end records: torch follows the locator to offset "
                f"{miniz.zip64_offset}, zipfile reads the one at {py_zip64}",
                {"torch_zip64_end": miniz.zip64_offset, "zipfile_zip64_end": py_zip64},
            )
        )
    py_entries = zipfile_entries(archive) if archive is not None else []
    data_ranges: list[tuple[int, int]] = []
    spans: dict[int, Span | None] = {}
    for entry in [*miniz.entries, *py_entries]:
        span = span_of(handle, entry, size)
        spans[id(entry)] = span
        if span is not None:
            data_ranges.append((span.data_offset, span.data_offset + span.compress_size))
    in_data = covered(data_ranges)
    stray = [at for at in end_records(handle, size) if at not in used and not in_data(at)]
    if stray:
        problems.append(
            Problem(
                "SER-ZIP-MULTIPLE-END-RECORDS",
                f"{len(stray) + len(used)} end-of-central-directory signatures outside member "
                "data; readers that pick another one see another archive",
                {"used": sorted(used), "others": stray[:10]},
            )
        )
    # ------------------------------------------------------------ central directories
    py_directory: tuple[int, int] | None = None
    if archive is not None:
        py_directory = (archive.start_dir, directory_size(handle, py_end))
    if (
        miniz.directory is not None
        and py_directory is not None
        and miniz.directory[0] != py_directory[0]
    ):
        problems.append(
            Problem(
                "SER-ZIP-READER-DISAGREEMENT",
                f"torch reads the central directory at offset {miniz.directory[0]}, "
                f"zipfile at {py_directory[0]} (the end record's offset is not where the "
                "directory lies)",
                {"torch_directory": miniz.directory[0], "zipfile_directory": py_directory[0]},
            )
        )
    # ------------------------------------------------------------ names
    if miniz.error is None and archive is not None:
        _compare_names(handle, size, miniz, archive, py_entries, spans, problems)
    _duplicates(miniz, py_entries, problems)
    # ------------------------------------------------------------ byte coverage
    seen: set[tuple[str, int, int]] = set()
    views: list[tuple[list[Entry], tuple[int, int] | None, list[Region]]] = []
    if miniz.error is None and miniz.end_offset is not None:
        views.append(
            (
                miniz.entries,
                miniz.directory,
                tail_regions(miniz.end_offset, miniz.end_length, miniz.zip64_offset, handle),
            )
        )
    if archive is not None and py_end is not None:
        comment = len(archive.comment)
        views.append(
            (
                py_entries,
                py_directory,
                tail_regions(py_end[0], EOCD_SIZE + comment, py_zip64, handle),
            )
        )
    for entries, directory, tail in views:
        if directory is None:
            continue
        for problem in _coverage(handle, size, entries, directory, tail, spans):
            key = (problem["kind"], problem["start"], problem["end"])
            if key in seen:
                continue
            seen.add(key)
            problems.append(_coverage_problem(problem))
    # ------------------------------------------------------------ what torch reads
    if miniz.error is None:
        zip_spans = {spans[id(e)] for e in py_entries if spans[id(e)] is not None}
        layout.torch_only = [
            e for e in miniz.entries if spans[id(e)] is None or spans[id(e)] not in zip_spans
        ]
        prefix = miniz.prefix
        if prefix is not None:
            layout.torch_data_pkl = miniz.locate(prefix + b"/data.pkl")
    return layout


_COVERAGE_RULES = {
    "leading": ("SER-ZIP-LEADING-DATA", "bytes before the first member"),
    "trailing": ("SER-ZIP-TRAILING-DATA", "bytes after the end of the archive"),
    "gap": ("SER-ZIP-GAP", "bytes between members that no entry accounts for"),
    "overlap": ("SER-ZIP-OVERLAP", "byte range shared by two parts of the archive"),
}


def _coverage_problem(problem: dict[str, Any]) -> Problem:
    rule_id, what = _COVERAGE_RULES[problem["kind"]]
    start, end = problem["start"], problem["end"]
    text = f"{end - start} {what} (offsets {start} to {end})"
    if problem["kind"] == "overlap":
        text += f": {problem['parts'][0]} and {problem['parts'][1]}"
    return Problem(rule_id, text, problem)


def _compare_names(
    handle: IO[bytes],
    size: int,
    miniz: MinizView,
    archive: zipfile.ZipFile,
    py_entries: list[Entry],
    spans: dict[int, Span | None],
    problems: list[Problem],
) -> None:
    """For every name either reader lists: does a lookup by that name give the same bytes?"""
    by_name = {e.name: e for e in py_entries}  # zipfile's NameToInfo: the last copy wins
    queries: dict[str, bytes] = {}
    for entry in py_entries:
        queries.setdefault(entry.name, entry.name.encode("utf-8"))
    for entry in miniz.entries:
        shown = entry.name.split("\x00", 1)[0]
        queries.setdefault(shown, entry.raw_name if not shown.isascii() else shown.encode())
    prefix = miniz.prefix
    if prefix is not None and prefix.isascii():
        for record in TORCH_RECORDS:
            name = f"{prefix.decode()}/{record}"
            queries.setdefault(name, name.encode())
    reported = 0
    for name, raw in queries.items():
        torch_entry = miniz.locate(raw)
        py_entry = by_name.get(name)
        if torch_entry is None and py_entry is None:
            continue
        torch_span = _span(handle, size, torch_entry, spans)
        py_span = _span(handle, size, py_entry, spans)
        if torch_entry is not None and py_entry is not None:
            # miniz reads nothing of what it takes for a directory (a DOS attribute too).
            if torch_entry.directory and py_entry.directory:
                continue
            if not torch_entry.directory and torch_span == py_span:
                continue
        if reported >= 10:
            break
        reported += 1
        problems.append(
            Problem(
                "SER-ZIP-READER-DISAGREEMENT",
                f"member {name!r}: torch reads "
                f"{_where(torch_entry, torch_span)}, zipfile reads {_where(py_entry, py_span)}",
                {
                    "name": name,
                    "torch": _describe_span(torch_entry, torch_span),
                    "zipfile": _describe_span(py_entry, py_span),
                },
                member=name,
            )
        )


def _span(
    handle: IO[bytes], size: int, entry: Entry | None, spans: dict[int, Span | None]
) -> Span | None:
    if entry is None:
        return None
    if id(entry) not in spans:
        spans[id(entry)] = span_of(handle, entry, size)
    return spans[id(entry)]


def _where(entry: Entry | None, span: Span | None) -> str:
    if entry is None:
        return "nothing"
    if entry.directory:
        return f"entry {entry.name!r} as a directory (no bytes)"
    if span is None:
        return f"entry {entry.name!r} (no local header at {entry.header_offset})"
    return f"entry {entry.name!r} ({span.compress_size} bytes at offset {span.data_offset})"


def _duplicates(miniz: MinizView, py_entries: list[Entry], problems: list[Problem]) -> None:
    exact = sorted(n for n, c in Counter(e.name for e in py_entries).items() if c > 1)
    folded = miniz.duplicates()
    shown = exact or folded
    if not shown:
        return
    how = "" if exact else " (ignoring case, as torch's reader does)"
    problems.append(
        Problem(
            "SER-ZIP-DUPLICATE-MEMBER",
            f"archive names {shown[0]!r} twice or more{how}; readers differ on which copy counts",
            {"members": shown[:10], "torch_duplicates": folded[:10]},
            member=shown[0],
        )
    )
