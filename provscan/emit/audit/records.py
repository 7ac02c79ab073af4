"""What do the Hub records the files were compared with prove? Said per record, plainly.

A record fetched from the Hub over HTTPS in this run (model_info) is evidence of what the Hub
holds. A record read from the model folder (cache blob names, `--local-dir` download
metadata, a cached tree listing) is not: whoever changed a file can have rewritten its record
to match, so a match with one is only consistency. The audit report and the terminal output
both say which kind each match is.
"""

from __future__ import annotations

from provscan.emit.audit.model import Block, Para, Section, Tone
from provscan.emit.audit.text import line, names
from provscan.report import RecordCheck, RecordSource, Report

_LOCAL: dict[RecordSource, str] = {
    "hub-cache-blob": "hf cache blob names",
    "local-dir-metadata": "--local-dir download metadata",
    "hub-tree-cache": "the cached tree listing",
}


def record_name(record: RecordCheck) -> str:
    """What the record is, for a sentence: "the Hub's model_info record", "hf cache blob names"."""
    return _LOCAL.get(record.source, "the Hub's model_info record")


def record_summary(record: RecordCheck) -> str:
    """One sentence: how many files match the record, and what that match proves."""
    files = _files(len(record.consistent))
    at = f" of commit {line(record.commit, 80)}" if record.commit else ""
    if record.source == "hub-model-info":
        if record.authenticated:
            return f"{files} match the Hub's model_info record{at} (fetched over HTTPS in this run)"
        return (
            f"{files} match the Hub's model_info record{at}, fetched in this run but not over "
            "HTTPS (HF_ENDPOINT names a plain-HTTP server) — not authenticated: anyone on the "
            "network path could have rewritten it"
        )
    return (
        f"{files} consistent with local records ({record_name(record)}{at}) — not "
        "authenticated: anyone who can write the folder can rewrite them"
    )


def record_problems(record: RecordCheck) -> list[tuple[str, tuple[str, ...], Tone]]:
    """(heading, files, tone) for the files that differ from the record and those not
    compared with it: "Differing from hf cache blob names (2 files)"."""
    out: list[tuple[str, tuple[str, ...], Tone]] = []
    kinds: tuple[tuple[tuple[str, ...], str, Tone], ...] = (
        (record.mismatched, "Differing from", "bad"),
        (record.not_compared, "Not compared with", "warn"),
    )
    for files, what, tone in kinds:
        if files:
            out.append((f"{what} {record_name(record)} ({_files(len(files))})", files, tone))
    return out


def records_sections(report: Report) -> tuple[Section, ...]:
    """The audit report's "Hub records" section; none when no record was compared."""
    if not report.records:
        return ()
    blocks: list[Block] = [
        Para(
            "What the files were compared with, besides any signature. Only a record fetched "
            "from the Hub over HTTPS in this run is evidence of what the Hub holds; one read "
            "from the model folder can be rewritten by whoever changed the files."
        )
    ]
    for record in report.records:
        tone: Tone = "good" if record.authenticated else "warn"
        blocks.append(Para(f"{record_summary(record)}.", "bad" if record.mismatched else tone))
        for what, files, problem in record_problems(record):
            blocks.append(Para(f"{what}: {names(files)}.", problem))
    return (Section("records", "Hub records", tuple(blocks)),)


def _files(count: int) -> str:
    return f"{count:,} file" + ("" if count == 1 else "s")
