"""What do the model's licence files say? Their text, read while scanning, for the AI-BOM."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from provscan.collectors.licence_sources import LICENCE_TEXT_MAX
from provscan.files import read_at_most
from provscan.report import FileEntry, FileFormat, FileRole, TargetInfo, TargetKind


def licence_texts(target: TargetInfo, files: Iterable[FileEntry]) -> dict[str, str]:
    """Map each readable text licence file (relative path) to its content.

    Only the bytes the scan hashed are kept (the entry's SHA-256 must match), so a file
    changed since it was hashed is not attached.
    """
    root = Path(target.root)
    base = root if root.is_dir() else root.parent
    # Check containment at read time: a file swapped for a link must not smuggle another
    # file's content into the BOM.
    allowed = base.parent.parent if target.kind is TargetKind.HF_CACHE_SNAPSHOT else base
    texts: dict[str, str] = {}
    for entry in files:
        if entry.role is not FileRole.LICENCE or entry.format is not FileFormat.TEXT:
            continue
        if entry.size > LICENCE_TEXT_MAX:
            continue
        real = (base / entry.path).resolve()
        if not real.is_relative_to(allowed):
            continue
        try:
            raw = read_at_most(real, LICENCE_TEXT_MAX)  # no link followed, no FIFO waited on
        except OSError:
            continue
        # Only the very bytes the scan hashed: a file changed since is not attached.
        if entry.sha256 is None or hashlib.sha256(raw).hexdigest() != entry.sha256:
            continue
        texts[entry.path] = raw.decode("utf-8", errors="replace")
    return texts
