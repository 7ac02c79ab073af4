"""What does a Hub commit hold, read without downloading its weights? (metadata-only hf:// scans)

`hf://ORG/NAME[@REV]` without --download: one `model_info` call gives the commit the revision
resolves to, every file's size and recorded hash (an LFS file's SHA-256, else its git blob
SHA-1) and the Hub's own security scan. Then:

- small files are downloaded whole into the standard HF cache with `hf_hub_download`, pinned
  to the commit: any file up to `limits.hub_fetch_any_max`, and card, config, tokenizer,
  licence, code, index and signature files up to `hub_fetch_metadata_max`
  (`hub_fetch_total_max` in all, smallest first). They are scanned like any local file and
  compared with the hash model_info recorded;
- every other file is read by HTTP range (`hub.ranges`): its safetensors header whole, else
  its first `limits.sniff_bytes`. Each becomes a sparse stand-in in a private temporary
  directory, as long as the file and holding only the bytes read, so that provscan's own
  readers (format sniffing, the safetensors checks, model facts) run on it unchanged.
  `ScanFile.read` keeps every scanner that needs more than those bytes off it, and its
  SHA-256 is the one the Hub recorded: marked "hub-recorded" in the report, the publisher's
  claim, not verified locally.

The listing is hostile input like any file: a name must be a plain relative path, a size a
non-negative integer; a file that fails is a finding and is never fetched. A failure to fetch
what the scan needs ends it with a named HubError (fail closed), as a download does; so does a
file served longer than its listed size, cut there (`hub.session.listed_file`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from provscan.collectors.hashing import DEFAULT_IGNORE_PATHS, is_ignored
from provscan.collectors.inventory import role_of
from provscan.files import SHA1_HEX, SHA256_HEX, ScanFile
from provscan.hub.http import HubError, HubLimitError
from provscan.hub.records import security_findings
from provscan.hub.ref import HubOptions, HubRef
from provscan.hub.session import listed_file, with_retries
from provscan.limits import Limits
from provscan.report import (
    FileFormat,
    FileRole,
    Finding,
    HubFetch,
    Severity,
    TargetInfo,
    TargetKind,
    file_finding,
    target_finding,
)
from provscan.resolve.resolved import ResolvedTarget

_METADATA_ROLES = {
    FileRole.MODEL_CARD, FileRole.CONFIG, FileRole.TOKENIZER, FileRole.LICENCE, FileRole.CODE,
}  # fmt: skip
# hub.ranges' codes for a file that is simply not safetensors (its first bytes come back).
_NOT_SAFETENSORS = {"HeaderTooSmall", "HeaderTooLarge", "InvalidHeaderLength", "NotSafetensors"}
_NAME_MAX = 1000
WORKERS = 8


@dataclass(frozen=True)
class Listed:
    """One file as model_info lists it: size and the hash the Hub recorded (None: none usable)."""

    rel: str
    size: int
    record: str | None


def resolve_metadata_only(
    target: str,
    ref: HubRef,
    limits: Limits,
    hub: HubOptions,
    sleep: Callable[[float], None] = time.sleep,
) -> ResolvedTarget:
    """The commit's files as ScanFiles: small ones downloaded, the rest read by range. Its
    `cleanup` removes the stand-ins, once the scan is done."""
    from huggingface_hub import HfApi, constants

    api = HfApi()
    # huggingface_hub reads model_info's whole body itself: hub_traffic bounds it (hub.traffic).
    info = with_retries(
        ref,
        lambda: api.model_info(
            ref.repo_id,
            revision=ref.revision,
            files_metadata=True,
            securityStatus=True,
            timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT,
        ),
        sleep,
    )
    commit = info.sha if isinstance(info.sha, str) else ""
    if not SHA1_HEX.fullmatch(commit):
        raise HubError(f"{ref}: the Hub named no valid commit for this revision ({commit[:80]!r})")
    listed, findings = listing(info.siblings, hub, limits)
    whole, ranged = split_by_fetch(listed, limits)
    fetched = _download(ref, commit, whole, hub.progress, sleep)
    files = [
        ScanFile(
            rel=entry.rel,
            path=path.resolve(),
            size=path.stat().st_size,
            symlink=path.is_symlink(),
            in_manifest=not is_ignored(entry.rel, DEFAULT_IGNORE_PATHS),
            hub_record=entry.record,
        )
        for entry in whole
        for path in [fetched[entry.rel]]
    ]
    stack = contextlib.ExitStack()  # handed to the caller, who closes it after the scan
    try:
        stand_ins = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="provscan-hub-")))
        remote, ranged_bytes, requests = _read_ranges(
            ref, commit, ranged, stand_ins, limits, findings
        )
    except BaseException:
        stack.close()
        raise
    files += remote
    files.sort(key=lambda f: f.rel)
    status = info.security_repo_status if isinstance(info.security_repo_status, dict) else {}
    findings += security_findings(status, ref.repo_id, commit)
    snapshot = _snapshot_dir(ref.repo_id, commit)
    view_info = TargetInfo(
        input=target,
        kind=TargetKind.HUB_METADATA,
        root=str(snapshot),
        name=ref.repo_id.split("/")[-1],
        repo_id=ref.repo_id,
        revision=commit,
        hub=HubFetch(
            mode="metadata",
            endpoint=constants.ENDPOINT,
            requested_revision=ref.revision,
            files=len(listed),
            bytes=sum(e.size for e in listed),
            files_fetched=len(whole),
            bytes_fetched=sum(e.size for e in whole),
            files_ranged=len(ranged),
            bytes_ranged=ranged_bytes,
            range_requests=requests,
        ),
    )
    return ResolvedTarget(info=view_info, files=files, findings=findings, cleanup=stack)


def listing(
    siblings: Sequence[Any] | None, hub: HubOptions, limits: Limits
) -> tuple[list[Listed], list[Finding]]:
    """The files model_info lists, checked; the --include / --exclude patterns applied."""
    from huggingface_hub.utils._paths import filter_repo_objects

    if siblings is None:
        raise HubError("the Hub's model_info listed no files for this commit")
    findings: list[Finding] = []
    entries: dict[str, Listed] = {}
    for sibling in siblings:
        name, size = getattr(sibling, "rfilename", None), getattr(sibling, "size", None)
        problem = _bad_name(name) or (
            None if isinstance(size, int) and size >= 0 else f"its size {size!r} is not a size"
        )
        if problem is None and name in entries:
            problem = "it is listed twice"
        shown = name[:_NAME_MAX] if isinstance(name, str) else repr(name)[:_NAME_MAX]
        if problem is not None:
            message = f"{shown!r}: the Hub's file listing is unusable for this file ({problem}); not scanned"
            findings.append(file_finding("INV-HUB-BAD-LISTING", Severity.CRITICAL, shown, message))
            continue
        assert isinstance(name, str) and isinstance(size, int)
        entries[name] = Listed(name, size, _record(sibling))
    if len(entries) > limits.max_files:
        message = f"the commit lists {len(entries)} files, more than {limits.max_files}; the rest were not scanned"
        findings.append(target_finding("INV-TOO-MANY-FILES", Severity.CRITICAL, message))
        entries = dict(list(entries.items())[: limits.max_files])
    kept = list(
        filter_repo_objects(
            entries.values(),
            allow_patterns=list(hub.include) or None,
            ignore_patterns=list(hub.exclude) or None,
            key=lambda e: e.rel,
        )
    )
    if len(kept) < len(entries):
        left = len(entries) - len(kept)
        message = f"{left} file(s) of the commit left out by --include / --exclude; not scanned"
        findings.append(target_finding("INV-HUB-EXCLUDED", Severity.INFO, message, files=left))
    if len(kept) > limits.hub_max_files:
        # Each listed file costs a request or two (a download, or a ranged read): a commit
        # listing a million files would keep the scan on the Hub for hours.
        most = limits.hub_max_files
        message = (
            f"the commit lists {len(kept)} files, more than {most} (limits.hub_max_files): a "
            f"metadata-only scan reads every file from the Hub, so only the first {most} in "
            f"path order were scanned and {len(kept) - most} were not; narrow the scan with "
            "--include, or download the snapshot and scan the folder"
        )
        findings.append(
            target_finding(
                "INV-TOO-MANY-FILES", Severity.CRITICAL, message, listed=len(kept), scanned=most
            )
        )
        kept = sorted(kept, key=lambda e: e.rel)[:most]
    return kept, findings


def _bad_name(name: object) -> str | None:
    """Why a listed name cannot be a file of a snapshot, or None for a plain relative path."""
    if not isinstance(name, str) or not name:
        return "no file name"
    if len(name) > _NAME_MAX:
        return f"name longer than {_NAME_MAX} characters"
    if any(ord(c) < 32 or c in "\\\x7f" for c in name):
        return "control characters or a backslash in the name"
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return "not a plain relative path"
    return None


def _record(sibling: Any) -> str | None:
    """The hash model_info records: an LFS file's SHA-256, else the git blob SHA-1."""
    lfs = getattr(sibling, "lfs", None)
    if lfs is not None:
        sha = getattr(lfs, "sha256", None) if not isinstance(lfs, dict) else lfs.get("sha256")
        return sha if isinstance(sha, str) and SHA256_HEX.fullmatch(sha) else None
    blob = getattr(sibling, "blob_id", None)
    return blob if isinstance(blob, str) and SHA1_HEX.fullmatch(blob) else None


def split_by_fetch(listed: Sequence[Listed], limits: Limits) -> tuple[list[Listed], list[Listed]]:
    """(downloaded whole, read by range): see the module docstring."""
    whole: list[Listed] = []
    ranged: list[Listed] = []
    total = 0
    for entry in sorted(listed, key=lambda e: (e.size, e.rel)):
        name = PurePosixPath(entry.rel).name
        metadata = (
            role_of(entry.rel, FileFormat.TEXT) in _METADATA_ROLES
            or name == "model.sig"
            or name.endswith(".index.json")
        )
        wanted = entry.size <= limits.hub_fetch_any_max or (
            metadata and entry.size <= limits.hub_fetch_metadata_max
        )
        if wanted and total + entry.size <= limits.hub_fetch_total_max:
            whole.append(entry)
            total += entry.size
        else:
            ranged.append(entry)
    return whole, ranged


def _download(
    ref: HubRef,
    commit: str,
    entries: Sequence[Listed],
    progress: bool,
    sleep: Callable[[float], None],
) -> dict[str, Path]:
    """Each entry downloaded into the HF cache at `commit` (a cached one is not fetched again)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils.tqdm import disable_progress_bars

    def one(entry: Listed) -> Path:
        call = lambda: hf_hub_download(ref.repo_id, entry.rel, revision=commit)  # noqa: E731
        with listed_file(entry.rel, entry.size):  # served longer than listed: cut, an error
            return Path(with_retries(ref, call, sleep))

    quiet = contextlib.nullcontext() if progress else disable_progress_bars()
    with quiet, ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return dict(zip([e.rel for e in entries], pool.map(one, entries), strict=True))


def _read_ranges(
    ref: HubRef,
    commit: str,
    entries: Sequence[Listed],
    into: Path,
    limits: Limits,
    findings: list[Finding],
) -> tuple[list[ScanFile], int, int]:
    """Sparse stand-ins under `into` for the files read by range; (files, bytes, requests)."""
    # Imported here: it loads huggingface_hub's HTTP client, which only a Hub scan needs.
    from provscan.hub.ranges import RemoteError, fetch_safetensors_headers

    try:
        read = fetch_safetensors_headers(
            ref.repo_id,
            commit,
            [e.rel for e in entries],
            max_header=limits.safetensors_header_max,
            head_bytes=limits.sniff_bytes,
            workers=WORKERS,
        )
    except HubLimitError as exc:  # a bound of hub_traffic broke: fail closed, naming the target
        raise HubLimitError(f"{ref}: {exc.message}", exc.remedy) from exc
    files: list[ScanFile] = []
    for entry in entries:
        got = read[entry.rel]
        if isinstance(got, RemoteError) and got.code not in _NOT_SAFETENSORS:
            raise HubError(
                f"{ref}: {entry.rel}: could not be read by range at commit {commit}: {got.reason}",
                "run again; if it repeats, scan with --download",
            )
        kind: Literal["header", "head"] = "head" if isinstance(got, RemoteError) else "header"
        data = got.head if isinstance(got, RemoteError) else got.raw
        try:
            path = _stand_in(into, entry, data)
        except OSError as exc:
            message = f"{entry.rel}: no stand-in could be written for it ({exc.strerror or exc}); not scanned"
            findings.append(file_finding("INV-UNREADABLE", Severity.CRITICAL, entry.rel, message))
            continue
        files.append(
            ScanFile(
                rel=entry.rel,
                path=path,
                size=entry.size,
                in_manifest=not is_ignored(entry.rel, DEFAULT_IGNORE_PATHS),
                read=kind,
                hub_record=entry.record,
            )
        )
    ranged_bytes = sum(r.bytes_downloaded for r in read.values())
    return files, ranged_bytes, sum(r.requests for r in read.values())


def _stand_in(into: Path, entry: Listed, data: bytes) -> Path:
    """A file as long as `entry` holding `data` at its start; the rest is a hole (zeros)."""
    path = into.joinpath(*entry.rel.split("/"))
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(path, flags, 0o600), "wb") as stream:
        stream.write(data[: entry.size])
        stream.truncate(entry.size)
    return path


def _snapshot_dir(repo_id: str, commit: str) -> Path:
    """Where huggingface_hub keeps this commit's files in the cache (HF_HOME / HF_HUB_CACHE)."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    folder = repo_folder_name(repo_id=repo_id, repo_type="model")
    return Path(constants.HF_HUB_CACHE) / folder / "snapshots" / commit
