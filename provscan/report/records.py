"""What did comparing the files with a record of what the Hub holds show?"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from provscan.report.base import ReportModel

RecordSource = Literal["hub-model-info", "hub-cache-blob", "local-dir-metadata", "hub-tree-cache"]


class RecordCheck(ReportModel):
    """The files compared with one record of what the Hub holds, and what that showed.

    source: hub-model-info (the hashes the Hub's model_info API listed, fetched in this run:
    an hf:// metadata-only scan); hub-cache-blob (the hash each cache snapshot blob is named
    by); local-dir-metadata (the etags in a `--local-dir` download's
    `.cache/huggingface/download/*.metadata`); hub-tree-cache (the commit's file listing
    huggingface_hub cached, `trees/<commit>.json`).
    authenticated: the record came from the Hub itself over HTTPS in this run. Every local
    record is False: it sits in the same writable folder as the files, so whoever changed a
    file can have rewritten its record to match; consistency with it proves nothing.
    consistent: files whose content matches the record; mismatched: files whose content or
    size differs; not_compared: files present that the record covers but that could not be
    compared (no usable hash, unreadable, not downloaded, or not linked to a cache blob).
    Files the record lists that are absent, or present files it does not list, are findings.
    """

    source: RecordSource
    authenticated: bool
    files_compared: int = Field(ge=0)  # consistent + mismatched
    consistent: tuple[str, ...] = ()
    mismatched: tuple[str, ...] = ()
    not_compared: tuple[str, ...] = ()
    commit: str | None = None  # the commit the record is of, when it names one
