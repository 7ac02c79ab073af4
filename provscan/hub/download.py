"""Which files does `hf://org/name@revision` name? Hub access shared by both ways of scanning it.

`hf://ORG/NAME[@REVISION]` (a branch, tag or full commit) is read as metadata by default
(hub_view.py: small files downloaded, weights read by range), or with --download fetched by
huggingface_hub's `snapshot_download` into the standard cache (HF_HOME / HF_HUB_CACHE; a gated
repo needs HF_TOKEN) and scanned as the cache snapshot it is: pinned to the resolved commit,
every file compared with the hash the Hub recorded. Failures name the cause and what to do,
and end the run (fail closed, exit 3); a rate limit, a timeout or a dropped connection is
retried with backoff first.

The Hub's answers are hostile input like any file: while a scan talks to it (`hub_traffic`),
every request huggingface_hub or provscan makes is bounded in size, in time and in where it
may be redirected (hub_remote.HubTraffic); a bound that breaks is a HubLimitError, never
retried.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urljoin, urlsplit

from provscan.errors import ProvscanError, UsageError
from provscan.limits import Limits
from provscan.report import Finding, Severity, file_finding, target_finding

if TYPE_CHECKING:
    from provscan.hub.lineage import HubLineage
    from provscan.hub.ranges import HubTraffic

SCHEME = "hf://"
# Hub repo ids: an optional namespace and a name of letters, digits, '-', '_' and '.'.
_REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")
_REVISION = re.compile(r"^[\w./-]{1,256}$")
RETRIES = 3
T = TypeVar("T")


class HubError(ProvscanError):
    """The Hub (or the cache, offline) could not provide the model; nothing was scanned."""


class HubLimitError(HubError):
    """A Hub response broke one of the bounds of `HubTraffic` (size, deadline, redirect): the
    scan fails closed, and nothing retries it."""


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


def with_retries(
    ref: HubRef, call: Callable[[], T], sleep: Callable[[float], None], *, offline: bool = False
) -> T:
    """call(), retried with backoff while the failure is one that retrying may fix; any
    failure left is a HubError saying what to do."""
    for attempt in range(RETRIES + 1):
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - mapped to a HubError below, never swallowed
            if (limit := limit_error(exc)) is not None:
                raise HubLimitError(f"{ref}: {limit.message}", limit.remedy) from exc
            cause = exc if offline else _network_cause(exc)
            if not is_retryable(cause) or attempt == RETRIES:
                raise hub_error(ref, cause, offline=offline) from exc
            delay = retry_delay(cause, attempt)
            if (traffic := _TRAFFIC) is not None:
                traffic.check_wait(delay, f"{ref}: retrying after {type(cause).__name__}")
            sleep(delay)
    raise AssertionError("unreachable")


def limit_error(exc: BaseException) -> HubLimitError | None:
    """The HubLimitError that `exc` is or was raised from (huggingface_hub may wrap it)."""
    seen: BaseException | None = exc
    for _ in range(16):  # a cause chain is short; a cycle must not hang
        if seen is None or isinstance(seen, HubLimitError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _network_cause(exc: BaseException) -> BaseException:
    """The HTTP or connection error behind `exc`: when the Hub cannot be reached,
    huggingface_hub falls back to the cache and raises "not in the cache" instead."""
    seen: BaseException | None = exc
    while seen is not None:
        if http_status(seen) is not None or is_retryable(seen):
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of a Hub client error (huggingface_hub's errors carry the response)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def is_retryable(exc: BaseException) -> bool:
    """A rate limit, a server error, a timeout or a broken connection: trying again may help."""
    import httpx2  # huggingface_hub 2.x's HTTP client

    status = http_status(exc)
    if status is not None:
        return status == 429 or status >= 500
    return isinstance(exc, (httpx2.TransportError, ConnectionError, TimeoutError))


def retry_delay(exc: BaseException, attempt: int, cap: float = 60.0) -> float:
    """Seconds before the next try: the Hub's Retry-After when it sends one, else 1, 2, 4 ..."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    retry_after = headers.get("Retry-After") if hasattr(headers, "get") else None
    if retry_after is not None and str(retry_after).isdigit():
        return min(float(retry_after), cap)
    return min(float(2**attempt), cap)


def hub_error(ref: HubRef, exc: BaseException, *, offline: bool = False) -> ProvscanError:
    """A message a user can act on, for whatever the Hub client raised."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    endpoint = constants.ENDPOINT
    status = http_status(exc)
    if isinstance(exc, GatedRepoError):
        return HubError(
            f"{ref}: the repo is gated and this token has no access to its files (HTTP {status})",
            "accept the licence on the model's Hub page, then set HF_TOKEN to a token of that account",
        )
    if isinstance(exc, RepositoryNotFoundError):
        return HubError(
            f"{ref}: no such repo on {endpoint}, or it is private (HTTP {status})",
            "check the org and name; for a private repo set HF_TOKEN",
        )
    if isinstance(exc, RevisionNotFoundError):
        return HubError(
            f"{ref}: revision {ref.revision!r} does not exist in {ref.repo_id}",
            "give a branch, tag or full commit sha that exists",
        )
    if isinstance(exc, LocalEntryNotFoundError) and (offline or constants.HF_HUB_OFFLINE):
        return HubError(
            f"{ref}: not in the local Hugging Face cache, and offline mode forbids downloading it",
            "run once without --offline (and without HF_HUB_OFFLINE=1) to download it",
        )
    if status == 401:
        return HubError(f"{ref}: the Hub refused the token (HTTP 401)", "check HF_TOKEN")
    if status == 429:
        return HubError(
            f"{ref}: rate limited by {endpoint} (HTTP 429) after {RETRIES} retries",
            "wait and run again, or set HF_TOKEN (authenticated requests get higher limits)",
        )
    if status is not None:
        return HubError(f"{ref}: the Hub answered HTTP {status}: {str(exc)[:300]}")
    if is_retryable(exc):
        return HubError(
            f"{ref}: could not reach {endpoint} ({type(exc).__name__}: {str(exc)[:200]}) after {RETRIES} retries",
            "check the network (or HF_ENDPOINT); a partial download resumes on the next run",
        )
    if isinstance(exc, OSError):
        return HubError(
            f"{ref}: the download failed: {str(exc)[:300]}",
            "run again: huggingface_hub resumes; if it repeats, clear this repo from the cache",
        )
    return HubError(f"{ref}: the download failed ({type(exc).__name__}: {str(exc)[:300]})")


def hub_metadata(
    repo_id: str, revision: str, *, security: bool = True
) -> tuple[HubLineage | None, list[Finding]]:
    """What the Hub records about a commit beyond its files: the base-model lineage, and
    (`security`) its own security scan as findings. Nothing when HF_HUB_OFFLINE is set.
    What cannot be fetched is an error node or an info finding; only an answer that breaks a
    bound of `hub_traffic` raises (HubLimitError)."""
    from huggingface_hub import HfApi, constants

    from provscan.hub.lineage import walk_base_models

    if constants.HF_HUB_OFFLINE:
        return None, []
    lineage = walk_base_models(repo_id, revision, api=HfApi())
    return lineage, hub_scan_findings(repo_id, revision) if security else []


def hub_scan_findings(repo_id: str, revision: str) -> list[Finding]:
    """The Hub's own security scan of the commit (`model_info(securityStatus=True)`), as findings.

    The Hub scans uploads (malware, pickle imports); a file it flags is a finding located at
    that file. A scan that is not done, or a status that cannot be fetched, is an info finding:
    provscan's own checks still ran, and the Hub's verdict is a second opinion.
    """
    from huggingface_hub import HfApi

    try:  # bounded by hub_traffic: huggingface_hub reads the whole body itself
        info = HfApi().model_info(repo_id, revision=revision, securityStatus=True, timeout=30)
    except Exception as exc:  # noqa: BLE001 - a second opinion that cannot be had is only noted
        if (limit := limit_error(exc)) is not None:  # a broken bound is no missing opinion
            raise HubLimitError(limit.message, limit.remedy) from exc
        reason = f"{type(exc).__name__}: {str(exc)[:200]}"
        message = f"the Hub's security scan of {repo_id}@{revision} could not be read ({reason})"
        return [target_finding("SER-HUB-SCAN-UNAVAILABLE", Severity.INFO, message)]
    status = info.security_repo_status if isinstance(info.security_repo_status, dict) else {}
    return security_findings(status, repo_id, revision)


def security_findings(status: dict[str, Any], repo_id: str, revision: str) -> list[Finding]:
    """model_info's `securityRepoStatus` as findings (see hub_scan_findings)."""
    findings: list[Finding] = []
    if status.get("scansDone") is not True:
        message = f"the Hub has not finished scanning {repo_id}@{revision} (no security status yet)"
        findings.append(target_finding("SER-HUB-SCAN-UNAVAILABLE", Severity.INFO, message))
    issues = status.get("filesWithIssues")
    for issue in issues[:1000] if isinstance(issues, list) else []:
        path, level = (
            (issue.get("path"), issue.get("level")) if isinstance(issue, dict) else (None, None)
        )
        if not isinstance(path, str) or not path:
            continue
        level_text = str(level)[:40]
        severity = Severity.HIGH if level_text in _UNSAFE_LEVELS else Severity.MEDIUM
        message = f"{path}: the Hub's own security scan flags this file ({level_text}) at commit {revision}"
        findings.append(
            file_finding("SER-HUB-FLAGGED", severity, path[:1000], message, level=level_text)
        )
    return findings


# Hub scan levels that mean the scanner found something dangerous (others: "caution" ...).
_UNSAFE_LEVELS = {"unsafe", "dangerous", "malicious", "infected"}


# -- Hub traffic is hostile input: bounded in size, time and where it may be redirected ------------

_TRAFFIC: HubTraffic | None = None  # the scan's bounds, while hub_traffic() is active
# The file a download in this thread (context) fetches, and the size the Hub lists for it.
_LISTED: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar(
    "provscan_hub_listed", default=None
)
# Hosts whose subdomains serve the Hub's files: cdn-lfs.hf.co, cdn-lfs-us-1.hf.co and the other
# LFS CDNs, cas-bridge.xethub.hf.co (Xet), cdn-lfs.huggingface.co (older LFS links).
_HUB_FILE_DOMAINS = ("hf.co", "huggingface.co")


@contextlib.contextmanager
def hub_traffic(limits: Limits) -> Iterator[HubTraffic]:
    """Inside the block, every request to the Hub (huggingface_hub's and provscan's own) is
    bounded as `limits` says: see hub_remote.HubTraffic. `hub_scan_deadline` counts from here."""
    from huggingface_hub import constants, set_client_factory
    from huggingface_hub.utils import _http

    from provscan.hub.ranges import HubTraffic

    global _TRAFFIC
    traffic = HubTraffic(limits, current_listed=_LISTED.get)
    # The factory in use before, put back after (huggingface_hub keeps it in a private global).
    previous = getattr(_http, "_GLOBAL_CLIENT_FACTORY", _http.default_client_factory)
    # A file stored with Xet is downloaded by hf_xet's own HTTP client (Rust), which none of
    # these bounds reach: with Xet off, huggingface_hub fetches it over plain HTTP (the Hub
    # serves every file that way too), through the client above. Read at each download.
    xet_disabled = constants.HF_HUB_DISABLE_XET
    constants.HF_HUB_DISABLE_XET = True
    set_client_factory(traffic.client)
    _TRAFFIC = traffic
    try:
        yield traffic
    finally:
        _TRAFFIC = None
        set_client_factory(previous)
        constants.HF_HUB_DISABLE_XET = xet_disabled


@contextlib.contextmanager
def listed_file(path: str, size: int) -> Iterator[None]:
    """File bodies fetched in this block (in this thread) are `path`, which the Hub lists as
    `size` bytes: one served longer is cut there (a HubLimitError; nothing past it is kept)."""
    token = _LISTED.set((path, size))
    try:
        yield
    finally:
        _LISTED.reset(token)


def redirect_refusal(source: str, location: str) -> str | None:
    """Why a redirect from `source` to `location` is refused, or None when it may be followed.

    Followed: to the same origin; between the Hub's own hosts (huggingface.co, hf.co, the
    staging Hub, HF_ENDPOINT's), as huggingface_hub's `_is_same_or_hub_host`
    (utils/_http.py) follows them; and from a file's `/resolve/` URL to where the Hub keeps
    its files. huggingface_hub's `get_hf_file_metadata` stops its HEAD at that 302 ("Redirect
    to a CDN or storage host (signed URL)", `_httpx2_follow_hub_redirects_with_backoff`) and
    `hf_hub_download` GETs its Location without the token: on huggingface.co an LFS file goes to
    https://cdn-lfs*.hf.co (older links: cdn-lfs.huggingface.co), a Xet file to
    https://cas-bridge.xethub.hf.co. So a file may go to a subdomain of hf.co or
    huggingface.co over HTTPS, to a subdomain of the endpoint's own host (a mirror's CDN), or
    to the endpoint's host on another port. Anything else (an API answer sent elsewhere, a
    file sent to another host, a CDN sending it on, HTTPS to plain HTTP) the Hub never
    issues: refused, whoever rewrote the answer.
    """
    from huggingface_hub import constants

    target = urljoin(source, location)
    src, dst = urlsplit(source), urlsplit(target)
    src_host, dst_host = (src.hostname or "").lower(), (dst.hostname or "").lower()
    if dst.scheme not in ("http", "https") or not dst_host:
        return f"{target[:200]!r} is not an HTTP(S) URL"
    if _origin(src) == _origin(dst):
        return None
    if src.scheme == "https" and dst.scheme != "https":
        return f"from HTTPS on {src_host} to plain HTTP on {dst_host}"
    hub = {
        _origin(urlsplit(e))
        for e in (
            constants._HF_DEFAULT_ENDPOINT,
            constants._HF_DEFAULT_STAGING_ENDPOINT,
            constants.ENDPOINT,
            "https://hf.co",
        )
    }
    if _origin(src) in hub and _origin(dst) in hub:
        return None
    if "/resolve/" in src.path and (
        dst_host == src_host
        or dst_host.endswith("." + src_host)
        or (dst.scheme == "https" and any(_within(dst_host, d) for d in _HUB_FILE_DOMAINS))
    ):
        return None
    what = "a file" if "/resolve/" in src.path else "an API answer"
    return f"{what} redirected from {src_host} to {dst_host}, another host"


def _origin(url: Any) -> tuple[str, str, int]:
    """(scheme, host, port) of a urlsplit result, the port defaulted by scheme."""
    port = url.port or {"http": 80, "https": 443}.get(url.scheme, 0)
    return url.scheme, (url.hostname or "").lower(), port


def _within(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)
