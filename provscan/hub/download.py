"""Which snapshot does `hf://org/name@revision` download to, in the standard Hugging Face cache?

`hf://ORG/NAME[@REVISION]` (a branch, tag or full commit) is read as metadata by default
(resolve/hub_metadata.py: small files downloaded, weights read by range), or with --download
fetched by huggingface_hub's `snapshot_download` into the standard cache (HF_HOME /
HF_HUB_CACHE; a gated repo needs HF_TOKEN) and scanned as the cache snapshot it is: pinned to
the resolved commit, every file compared with the hash the Hub recorded. Failures name the
cause and what to do, and end the run (fail closed, exit 3); a rate limit, a timeout or a
dropped connection is retried with backoff first.

The Hub's answers are hostile input like any file: while a scan talks to it
(`hub.session.hub_traffic`), every request huggingface_hub or provscan makes is bounded in
size, in time and in where it may be redirected (hub.traffic.HubTraffic); a bound that breaks
is a HubLimitError, never retried.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from provscan.hub.http import HubError
from provscan.hub.ref import HubRef
from provscan.hub.session import with_retries


def download_snapshot(
    ref: HubRef,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    offline: bool = False,
    progress: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Download (or, offline, find in the cache) the snapshot `ref` names; its directory.

    huggingface_hub resumes partial downloads and skips files already cached; `include` /
    `exclude` are its allow / ignore patterns.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils.tqdm import disable_progress_bars

    def download() -> str:
        quiet = contextlib.nullcontext() if progress else disable_progress_bars()
        with quiet:
            return snapshot_download(
                ref.repo_id,
                revision=ref.revision,
                allow_patterns=list(include) or None,
                ignore_patterns=list(exclude) or None,
                local_files_only=offline,
            )

    snapshot = Path(with_retries(ref, download, sleep, offline=offline))
    if not snapshot.is_dir():  # the Hub listed nothing to download: not the user's mistake
        raise HubError(
            f"{ref}: the Hub listed no files to download for this revision (no snapshot at {snapshot})",
            "check --include / --exclude, and that the revision holds the model's files",
        )
    return snapshot
