"""Which files make up the target the user typed: a local directory or file, a cache snapshot, hf://?

A target is a local directory, a single file (resolve/local.py), a Hugging Face cache snapshot
(resolve/hf_cache.py: `.../models--org--name/snapshots/<commit>`, or the `models--org--name`
folder itself, read through refs/main), or `hf://ORG/NAME[@REVISION]`: read as metadata only
(resolve/hub_metadata.py), or downloaded into the HF cache and resolved as that snapshot.
"""

from __future__ import annotations

from provscan.errors import TargetError
from provscan.hub.download import download_snapshot
from provscan.hub.records import hub_metadata
from provscan.hub.ref import HubOptions, is_hub_target, parse_hub_target
from provscan.hub.session import hub_traffic
from provscan.limits import Limits
from provscan.report import HubFetch, TargetInfo, TargetKind
from provscan.resolve.hf_cache import hf_cache_location, snapshot_from_refs, snapshot_info
from provscan.resolve.hub_metadata import resolve_metadata_only
from provscan.resolve.local import local_path, single_file, walk_directory
from provscan.resolve.resolved import ResolvedTarget


def resolve_target(target: str, limits: Limits, hub: HubOptions | None = None) -> ResolvedTarget:
    """Resolve what the user typed into the files to scan. Raises on unusable targets."""
    if is_hub_target(target):
        with hub_traffic(limits):  # every Hub request bounded in size, time and redirects
            return _hub_snapshot(target, limits, hub or HubOptions())
    path = local_path(target)
    repo_folder, revision = hf_cache_location(path)
    if repo_folder is not None and path == repo_folder:
        path = snapshot_from_refs(repo_folder)
        revision = path.name
    if path.is_file():
        return single_file(target, path)
    if not path.is_dir():
        raise TargetError(f"{target}: is neither a regular file nor a directory")
    if repo_folder is not None:
        info = snapshot_info(target, path, repo_folder, revision)
        allowed_root = repo_folder
    else:
        info = TargetInfo(input=target, kind=TargetKind.DIRECTORY, root=str(path), name=path.name)
        allowed_root = path
    return walk_directory(target, info, path, allowed_root, limits)


def _hub_snapshot(target: str, limits: Limits, hub: HubOptions) -> ResolvedTarget:
    """An hf:// target: read as metadata only (the default), or downloaded into the HF cache
    (--download; --offline or HF_HUB_OFFLINE=1: the cache only) and scanned as that snapshot."""
    from huggingface_hub import constants

    ref = parse_hub_target(target)
    offline = hub.offline or constants.HF_HUB_OFFLINE
    if not hub.download and not offline:
        resolved = resolve_metadata_only(target, ref, limits, hub)
        assert resolved.info.revision is not None  # the commit model_info resolved
        resolved.lineage, _ = hub_metadata(ref.repo_id, resolved.info.revision, security=False)
        return resolved
    snapshot = download_snapshot(
        ref, include=hub.include, exclude=hub.exclude, offline=offline, progress=hub.progress
    )
    resolved = resolve_target(str(snapshot), limits)
    fetch = HubFetch(
        mode="offline" if offline else "download",
        endpoint=constants.ENDPOINT,
        requested_revision=ref.revision,
        files=len(resolved.files),
        bytes=sum(f.size for f in resolved.files),
    )
    resolved.info = resolved.info.model_copy(update={"input": target, "hub": fetch})
    if not offline and resolved.info.repo_id and resolved.info.revision:
        lineage, findings = hub_metadata(resolved.info.repo_id, resolved.info.revision)
        resolved.lineage = lineage
        resolved.findings += findings
    return resolved
