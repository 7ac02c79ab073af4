"""What does a Hub request's failure or redirect mean: an error to name, a try to repeat, a hop to refuse?

A rate limit, a server error, a timeout or a dropped connection is worth trying again (with
backoff, the Hub's Retry-After first); any other failure becomes a HubError that names the
cause and what to do. A HubLimitError (a Hub answer that broke a bound of the scan's traffic,
hub.session.hub_traffic) is never retried.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from provscan.errors import ProvscanError

if TYPE_CHECKING:
    from provscan.hub.ref import HubRef

RETRIES = 3
# Hosts whose subdomains serve the Hub's files: cdn-lfs.hf.co, cdn-lfs-us-1.hf.co and the other
# LFS CDNs, cas-bridge.xethub.hf.co (Xet), cdn-lfs.huggingface.co (older LFS links).
_HUB_FILE_DOMAINS = ("hf.co", "huggingface.co")


class HubError(ProvscanError):
    """The Hub (or the cache, offline) could not provide the model; nothing was scanned."""


class HubLimitError(HubError):
    """A Hub response broke one of the bounds of `HubTraffic` (size, deadline, redirect): the
    scan fails closed, and nothing retries it."""


def limit_error(exc: BaseException) -> HubLimitError | None:
    """The HubLimitError that `exc` is or was raised from (huggingface_hub may wrap it)."""
    seen: BaseException | None = exc
    for _ in range(16):  # a cause chain is short; a cycle must not hang
        if seen is None or isinstance(seen, HubLimitError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def network_cause(exc: BaseException) -> BaseException:
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
