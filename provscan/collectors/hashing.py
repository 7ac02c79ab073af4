"""What is the SHA-256 of every file, and what OpenSSF model-signing (OMS) manifest do they make?

The manifest is byte-for-byte what model_signing 1.x builds (`hashing.Config().hash`), so
its root digest and predicate can be compared with, or signed as, an OMS signature:
- resources are sorted the way model_signing sorts its keys: by `PurePath` (part-wise:
  "a/b" sorts before "a.txt"), then by shard start and end;
- the root digest is SHA-256 over the concatenated raw resource digests in that order;
- "files": one resource per file, named by its relative path ("." for a single-file target);
- "shards": one resource per [start, end) of `shard_size` bytes, named "path:start:end",
  algorithm "sha256-sharded-<shard_size>"; zero-byte files have no shard and are omitted.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal

from provscan.collectors.base import Collected
from provscan.files import SHA256_HEX, ScanFile, open_scanned
from provscan.report import Finding, Location, Manifest, ManifestResource, Severity
from provscan.signing.layout import DEFAULT_SHARD_SIZE

# model_signing's defaults: the git paths (`ignore_git_paths=True`) plus its CLI's
# signature file. Recorded in the manifest as the relative paths model_signing records.
DEFAULT_IGNORE_PATHS = (".git", ".gitattributes", ".github", ".gitignore", "model.sig")
HASH_RULE_UNREADABLE = "HSH-UNREADABLE"


@dataclass(frozen=True)
class HashResult:
    """Whole-file digests of every readable file, and the OMS manifest of the in-manifest ones.

    `complete` is False when any file could not be hashed (see the HSH-UNREADABLE
    findings); the manifest then covers only the files that could, so it must not be
    trusted as the model's manifest.
    """

    digests: dict[str, str]  # rel -> SHA-256 hex of the whole file, for every file given
    manifest: Manifest
    complete: bool = True


class _FileChangedError(Exception):
    """The file is not what the resolver listed, or it changed while it was read."""


class _Stopped(Exception):
    """The hashing was called off (the main thread was interrupted): no digest."""


@dataclass(frozen=True)
class _Task:
    file: ScanFile
    start: int
    end: int
    whole: bool  # the whole file (its digest goes into `digests`), not one shard of it


def is_ignored(rel: str, ignore_paths: Sequence[str] = DEFAULT_IGNORE_PATHS) -> bool:
    """Whether model_signing leaves `rel` out of the manifest (an ignored path or inside one).

    Matches part-wise like model_signing's `Path.is_relative_to`: ".git" covers ".git/HEAD"
    but not ".github2"; paths are relative to the target root, so only top-level names match.
    """
    parts = PurePosixPath(rel).parts
    for ignored in ignore_paths:
        ignored_parts = PurePosixPath(ignored).parts
        if ignored_parts and parts[: len(ignored_parts)] == ignored_parts:
            return True
    return False


def shard_ranges(size: int, shard_size: int) -> list[tuple[int, int]]:
    """The [start, end) shards model_signing cuts a file of `size` bytes into (none if empty)."""
    return [(start, min(start + shard_size, size)) for start in range(0, size, shard_size)]


def planned_read_bytes(
    files: Sequence[ScanFile],
    *,
    method: Literal["files", "shards"] = "files",
    shard_size: int = DEFAULT_SHARD_SIZE,
) -> int:
    """How many bytes `hash_files` will read (and report to `progress`): a progress bar's total."""
    return sum(task.end - task.start for task in _plan(files, method, shard_size))


def _plan(files: Sequence[ScanFile], method: str, shard_size: int) -> list[_Task]:
    tasks: list[_Task] = []
    for file in files:
        if file.read != "whole":
            continue  # not downloaded: the Hub's record stands in (see _recorded)
        tasks.append(_Task(file, 0, file.size, whole=True))
        shards = shard_ranges(file.size, shard_size)
        # A file of one shard needs no shard task: that shard's digest is the whole-file
        # digest. A file of several shards is read twice (whole file plus shards), because
        # SHA-256 cannot combine the digests of parts into the digest of the whole; the two
        # reads run in parallel and the second is usually served from the page cache.
        if method == "shards" and file.in_manifest and len(shards) > 1:
            tasks.extend(_Task(file, start, end, whole=False) for start, end in shards)
    # Largest first, so the long reads start early and the small ones fill the gaps.
    tasks.sort(key=lambda task: task.end - task.start, reverse=True)
    return tasks


def _hash_range(
    task: _Task,
    buffer: bytearray,
    progress: Callable[[int], None] | None,
    stop: threading.Event | None = None,
) -> bytes:
    # The hardened open checks type, inode and size; reads of a buffer's size or more go
    # straight into it (BufferedReader does not copy them through its own buffer).
    with open_scanned(task.file) as stream:
        fd = stream.fileno()
        before = os.fstat(fd)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, task.start, task.end - task.start, os.POSIX_FADV_SEQUENTIAL)
        stream.seek(task.start)
        digest = hashlib.sha256()
        view = memoryview(buffer)
        remaining = task.end - task.start
        while remaining > 0:
            if stop is not None and stop.is_set():
                raise _Stopped
            # readinto a reused buffer: no allocation per chunk; hashlib releases the GIL
            # for large updates, so the worker threads hash in parallel.
            count = stream.readinto(view[: min(len(view), remaining)])
            if not count:
                raise _FileChangedError(f"ended {remaining} bytes early while being hashed")
            digest.update(view[:count])
            remaining -= count
            if progress is not None:
                progress(count)
        after = os.fstat(fd)
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            raise _FileChangedError("changed while being hashed")
        return digest.digest()


def _describe(error: Exception) -> tuple[str, dict[str, Any]]:
    if isinstance(error, OSError):
        reason = error.strerror or str(error)
        code = errno.errorcode.get(error.errno or 0)
        return reason, ({"error": reason, "errno": code} if code else {"error": reason})
    return str(error), {"error": str(error)}


def hash_files(
    files: Sequence[ScanFile],
    *,
    model_name: str,
    workers: int,
    buffer_size: int,
    method: Literal["files", "shards"] = "files",
    shard_size: int = DEFAULT_SHARD_SIZE,
    ignore_paths: Sequence[str] = DEFAULT_IGNORE_PATHS,
    allow_symlinks: bool = True,
    single_file_target: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Collected[HashResult]:
    """Hash every file (streamed, in parallel) and build the OMS manifest of the in-manifest ones.

    `progress(nbytes)` is called from the worker threads after each chunk, so it must be
    thread-safe; its total is `planned_read_bytes(...)`. `single_file_target` names the one
    resource "." as model_signing does when the model is a single file.
    """
    if workers < 1 or buffer_size < 1 or shard_size < 1:
        raise ValueError("workers, buffer_size and shard_size must be positive")
    if method not in ("files", "shards"):
        raise ValueError(f"unknown serialization method {method!r}")
    if method == "shards" and any(file.read != "whole" for file in files):
        raise ValueError("files that were not downloaded cannot be hashed by shards")
    local = threading.local()

    def run(task: _Task) -> tuple[_Task, bytes | Exception]:
        buffer: bytearray | None = getattr(local, "buffer", None)
        if buffer is None:
            buffer = local.buffer = bytearray(buffer_size)
        try:
            return task, _hash_range(task, buffer, progress, stop)
        except (OSError, _FileChangedError) as error:
            return task, error

    # A worker thread cannot be interrupted: when the main thread is (SIGINT, SIGTERM, any
    # exception while it waits), the queued reads are cancelled and the running ones stop at
    # their next chunk, so the pool's shutdown below returns within a chunk's read.
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="provscan-hash") as pool:
        try:
            outcomes = list(pool.map(run, _plan(files, method, shard_size)))
        except BaseException:
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise

    whole, failed = _recorded(files)
    shards: dict[tuple[str, int, int], bytes] = {}
    for task, outcome in outcomes:
        if isinstance(outcome, Exception):
            failed.setdefault(task.file.rel, outcome)
        elif task.whole:
            whole[task.file.rel] = outcome
        else:
            shards[(task.file.rel, task.start, task.end)] = outcome

    findings: list[Finding] = []
    for file in files:
        if file.rel in failed:
            reason, evidence = _describe(failed[file.rel])
            findings.append(
                Finding(
                    rule_id=HASH_RULE_UNREADABLE,
                    severity=Severity.CRITICAL,
                    message=f"{file.rel} could not be hashed: {reason}",
                    location=Location(path=file.rel),
                    evidence=evidence,
                )
            )
    hashed = [file for file in files if file.rel not in failed]
    manifest = _manifest(
        [file for file in hashed if file.in_manifest],
        whole,
        shards,
        model_name=model_name,
        method=method,
        shard_size=shard_size,
        ignore_paths=ignore_paths,
        allow_symlinks=allow_symlinks,
        single_file_target=single_file_target,
    )
    result = HashResult(
        digests={file.rel: whole[file.rel].hex() for file in hashed},
        manifest=manifest,
        complete=not failed,
    )
    return Collected(value=result, findings=tuple(findings))


def _recorded(files: Sequence[ScanFile]) -> tuple[dict[str, bytes], dict[str, Exception]]:
    """Digests of the files not downloaded (hf:// metadata-only): the SHA-256 the Hub recorded.

    Taken as the Hub's claim, not checked here; the report marks them hub-recorded. A file
    without one (not in LFS) cannot enter the manifest, and the manifest is incomplete.
    """
    digests: dict[str, bytes] = {}
    failed: dict[str, Exception] = {}
    for file in files:
        if file.read == "whole":
            continue
        if file.hub_record is not None and SHA256_HEX.fullmatch(file.hub_record):
            digests[file.rel] = bytes.fromhex(file.hub_record)
        else:
            failed[file.rel] = ValueError("not downloaded, and the Hub recorded no SHA-256 for it")
    return digests, failed


def _manifest(
    files: Sequence[ScanFile],
    whole: dict[str, bytes],
    shards: dict[tuple[str, int, int], bytes],
    *,
    model_name: str,
    method: Literal["files", "shards"],
    shard_size: int,
    ignore_paths: Sequence[str],
    allow_symlinks: bool,
    single_file_target: bool,
) -> Manifest:
    # (sort key, name, algorithm, raw digest); the key mirrors model_signing's dataclass
    # keys over PurePath (compared part by part), then start and end for shards.
    entries: list[tuple[tuple[tuple[str, ...], int, int], str, str, bytes]] = []
    for file in files:
        name = "." if single_file_target else str(PurePosixPath(file.rel))
        parts = PurePosixPath(name).parts
        if method == "files":
            entries.append(((parts, 0, 0), name, "sha256", whole[file.rel]))
            continue
        ranges = shard_ranges(file.size, shard_size)
        for start, end in ranges:
            raw = whole[file.rel] if len(ranges) == 1 else shards[(file.rel, start, end)]
            algorithm = f"sha256-sharded-{shard_size}"
            entries.append(((parts, start, end), f"{name}:{start}:{end}", algorithm, raw))
    entries.sort(key=lambda entry: entry[0])
    root = hashlib.sha256(b"".join(entry[3] for entry in entries))
    return Manifest(
        model_name=model_name,
        method=method,
        hash_type="sha256",
        allow_symlinks=allow_symlinks,
        ignore_paths=tuple(sorted({str(PurePosixPath(path)) for path in ignore_paths})),
        shard_size=shard_size if method == "shards" else None,
        resources=tuple(
            ManifestResource(name=name, algorithm=algorithm, digest=raw.hex())
            for _, name, algorithm, raw in entries
        ),
        root_digest=root.hexdigest(),
    )


def manifest_to_oms_predicate(manifest: Manifest) -> dict[str, Any]:
    """The OMS v1.0 predicate (`https://model_signing/signature/v1.0`) of a manifest.

    Same keys, key order and values as model_signing's `Payload`, except that
    model_signing's protobuf Struct turns `shard_size` into a float (1000.0 in its JSON)
    and lists `ignore_paths` in set order; here it is an int and the list is sorted.
    """
    serialization: dict[str, Any] = {"method": manifest.method, "hash_type": manifest.hash_type}
    if manifest.method == "shards":
        serialization["shard_size"] = manifest.shard_size
    serialization["allow_symlinks"] = manifest.allow_symlinks
    if manifest.ignore_paths:  # model_signing omits the key when nothing is ignored
        serialization["ignore_paths"] = list(manifest.ignore_paths)
    resources = [
        {"name": r.name, "algorithm": r.algorithm, "digest": r.digest} for r in manifest.resources
    ]
    return {"serialization": serialization, "resources": resources}
