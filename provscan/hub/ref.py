"""Which Hub repo and revision does an `hf://ORG/NAME[@REVISION]` target name, and how is it fetched?"""

from __future__ import annotations

import re
from dataclasses import dataclass

from provscan.errors import UsageError

SCHEME = "hf://"
# Hub repo ids: an optional namespace and a name of letters, digits, '-', '_' and '.'.
_REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")
_REVISION = re.compile(r"^[\w./-]{1,256}$")


@dataclass(frozen=True)
class HubOptions:
    """How an hf:// target is fetched (the CLI's --download, --include, --exclude, --offline)."""

    download: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    offline: bool = False
    progress: bool = False


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    revision: str | None  # None: the default branch

    def __str__(self) -> str:
        return f"{SCHEME}{self.repo_id}" + (f"@{self.revision}" if self.revision else "")


def is_hub_target(target: str) -> bool:
    return target.startswith(SCHEME)


def parse_hub_target(target: str) -> HubRef:
    """`hf://org/name[@revision]` -> HubRef; a malformed one is a usage error saying why."""
    body = target[len(SCHEME) :]
    repo_id, _, revision = body.partition("@")
    if not _REPO_ID.match(repo_id) or ".." in repo_id:
        raise UsageError(
            f"{target}: {repo_id!r} is not a Hugging Face repo id",
            "write hf://ORG/NAME or hf://ORG/NAME@REVISION (a branch, tag or commit)",
        )
    if "@" in body and (not _REVISION.match(revision) or ".." in revision):
        raise UsageError(f"{target}: {revision!r} is not a branch, tag or commit")
    return HubRef(repo_id, revision or None)
