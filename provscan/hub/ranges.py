"""What safetensors header does each weight file of a Hub commit carry? Read it by byte ranges.

For a metadata-only scan: per file the exact header bytes (the 8-byte little-endian length N, then
N bytes of JSON) and no tensor data. Not `HfApi.get_safetensors_metadata`: it asks for
`bytes=0-100000` of every file (2.4% of a repo of 4 MiB shards, 24 times this module's 0.1%
target), makes its second request without bounding the declared length, and returns parsed
metadata, not the raw bytes that provscan's own checks (serialization/safetensors/header.py) run on.

Each file goes as in `hf_hub_download`: `hf_hub_url` pinned to the commit; `get_hf_file_metadata`
(HEAD /resolve with the library's session, backoff, user agent and token; it stops at the Hub's
cross-origin 302: size, commit, location); then Range GETs on the location via
`http_stream_backoff`, without `Authorization` off the Hub (`_is_same_or_hub_host`, as
file_download.py decides). The first GET asks for bytes 0..P-1, P = 1/2048 of the file (8 B to
64 KiB): over-reading stays under 0.05% of a file and a header that fits costs one GET. Only if
8+N > P, and after N is checked against `max_header` and the file size, a second GET asks for
P..8+N-1. `first_read=8` reads exactly: bytes 0-7, then 8..8+N-1.

A server that ignores Range (200) is read streamed only up to what was asked, then closed; the
bytes received are counted and `range_ignored` says so. A non-safetensors file (a pickle, a zip)
nearly always fails the length bound (its first 8 bytes read as an enormous N): HeaderTooLarge
after one GET. A plausible N over bytes that are not a UTF-8 JSON object is NotSafetensors.
Deeper checks are left to provscan's scanner.

Every request here is bounded like any of the scan's Hub traffic (hub.traffic.HubTraffic, while
hub.session.hub_traffic is active): sizes, deadlines, redirects.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx2
from huggingface_hub import HfFileMetadata, constants, get_hf_file_metadata, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils._headers import build_hf_headers
from huggingface_hub.utils._http import (
    _is_same_or_hub_host,
    hf_raise_for_status,
    http_stream_backoff,
)

from provscan import __version__
from provscan.files import SHA1_HEX
from provscan.hub.http import HubError
from provscan.hub.ref import HubRef

PREFIX = 8  # the little-endian u64 header length
SPECULATE_DIVISOR, SPECULATE_MAX = 2048, 64 * 1024  # first GET: size // 2048, at most 64 KiB
_AGENT = {"provscan": __version__}  # user agent: "...; provscan/0.1.0"
_STATUS = {
    401: "unauthorized: gated or private repo, or an invalid token; set HF_TOKEN",
    403: "forbidden: this token has not been granted access to the repo",
    416: "the server refused the byte range",
    429: "rate limited by the Hub, still after retries; set HF_TOKEN or run again later",
}


@dataclass(frozen=True)
class RemoteHeader:
    """A file's header as served: `header` is the N JSON bytes after the 8-byte prefix."""

    path: str
    length_prefix: int  # N, as the first 8 bytes declare it
    header: bytes
    file_size: int | None  # from the Hub's HEAD (X-Linked-Size or Content-Length)
    bytes_downloaded: int  # body bytes received for this file, over-reads included
    requests: int  # HTTP requests: the HEAD, the GETs and the redirects they followed
    range_ignored: bool = False  # a server answered 200 to a Range request

    @property
    def raw(self) -> bytes:
        """The file's first 8+N bytes, as a local reader reads them."""
        return self.length_prefix.to_bytes(PREFIX, "little") + self.header


@dataclass(frozen=True)
class RemoteError:
    """Why a file's header could not be had. `code`: for a bad file, safetensors.header's
    (HeaderTooSmall, HeaderTooLarge, InvalidHeaderLength) or NotSafetensors; when the Hub could
    not serve it right: http-NNN, network, ShortRead, RangeMismatch, Encoded, CommitMismatch."""

    path: str
    reason: str
    code: str = "error"
    bytes_downloaded: int = 0
    requests: int = 0
    head: bytes = b""  # a file that is not safetensors: its first bytes (see head_bytes)


class _Refused(Exception):
    def __init__(self, code: str, reason: str, head: bytes = b"") -> None:
        super().__init__(reason)
        self.code, self.reason, self.head = code, reason, head


@dataclass
class _Counts:
    requests: int = 0
    bytes: int = 0
    range_ignored: bool = False


def _get(url: str, start: int, end: int, headers: dict[str, str], counts: _Counts) -> bytes:
    """Bytes start..end-1 of `url`; of a body that ignores Range, no more than its first `end`."""
    counts.requests += 1
    ranged, data, skip = headers | {"Range": f"bytes={start}-{end - 1}"}, bytearray(), 0
    timeout = constants.HF_HUB_DOWNLOAD_TIMEOUT
    with http_stream_backoff("GET", url, headers=ranged, timeout=timeout) as response:
        counts.requests += len(response.history)
        counts.bytes += sum(r.num_bytes_downloaded for r in response.history)
        try:
            hf_raise_for_status(response)  # reads an error body, as the library always does
            if response.status_code == 200:  # Range ignored: the body starts at byte 0
                counts.range_ignored, skip = True, start
            elif not response.headers.get("Content-Range", "").startswith(f"bytes {start}-"):
                raise _Refused("RangeMismatch", f"asked for bytes from {start}, got others")
            if response.headers.get("Content-Encoding", "identity") != "identity":
                raise _Refused("Encoded", "the server compressed the range despite identity")
            for chunk in response.iter_raw():
                data += chunk
                if len(data) >= skip + end - start:
                    break  # leaving the block closes the response: the rest is never read
        finally:
            counts.bytes += response.num_bytes_downloaded
    return bytes(data[skip : skip + end - start])


def _located(
    url: str, revision: str, token: bool | str | None, endpoint: str | None
) -> tuple[HfFileMetadata, dict[str, str]]:
    """The file's HEAD (where it is, its size), pinned to `revision`, and the headers for its
    Range GETs: the token only while they stay on the Hub."""
    meta = get_hf_file_metadata(
        url, token, endpoint=endpoint, retry_on_errors=True, user_agent=_AGENT
    )
    if meta.commit_hash not in (None, revision):
        raise _Refused("CommitMismatch", f"the Hub served commit {meta.commit_hash}")
    headers = build_hf_headers(token=token, user_agent=_AGENT) | {"Accept-Encoding": "identity"}
    if not _is_same_or_hub_host(url, meta.location):
        headers.pop("authorization", None)  # a CDN: the token stays on the Hub
    return meta, headers


def _read(
    url: str,
    revision: str,
    max_header: int,
    first_read: int | None,
    token: bool | str | None,
    endpoint: str | None,
    counts: _Counts,
    head_bytes: int = 0,
) -> tuple[int, bytes, int | None]:
    """(N, header, file size) of the file at `url`, or _Refused."""
    counts.requests += 1
    meta, headers = _located(url, revision, token, endpoint)
    if (size := meta.size) is not None and size < PREFIX:
        raise _Refused("HeaderTooSmall", f"file is {size} bytes, shorter than the 8-byte prefix")
    if first_read is None:
        first_read = min(SPECULATE_MAX, (size or 0) // SPECULATE_DIVISOR)
    data = _get(meta.location, 0, max(PREFIX, min(first_read, size or first_read)), headers, counts)
    if len(data) < PREFIX:
        raise _Refused("ShortRead", f"the server sent {len(data)} of the 8 prefix bytes asked")

    def not_safetensors(code: str, reason: str) -> _Refused:
        """The refusal, with the file's first `head_bytes` (fetched if not yet) to sniff."""
        want = min(head_bytes, size) if size is not None else head_bytes
        head = data + (
            _get(meta.location, len(data), want, headers, counts) if want > len(data) else b""
        )
        return _Refused(code, reason, head[:want])

    if (n := int.from_bytes(data[:PREFIX], "little")) > max_header:
        raise not_safetensors(
            "HeaderTooLarge", f"declared header length {n} exceeds the {max_header}-byte limit"
        )
    if size is not None and PREFIX + n > size:
        raise not_safetensors(
            "InvalidHeaderLength",
            f"declared header length {n} runs past the end of the {size}-byte file",
        )
    if len(data) < PREFIX + n:
        data += _get(meta.location, len(data), PREFIX + n, headers, counts)
    if len(data) < PREFIX + n:
        raise _Refused("ShortRead", f"the server sent {len(data)} of the {PREFIX + n} bytes asked")
    try:
        if not isinstance(json.loads(data[PREFIX : PREFIX + n].decode("utf-8")), dict):
            raise ValueError("not an object")
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError included
        raise not_safetensors(
            "NotSafetensors", f"not a safetensors file: header is not a UTF-8 JSON object ({exc})"
        ) from exc
    return n, data[PREFIX : PREFIX + n], size


def _http_reason(exc: HfHubHTTPError) -> str:
    status, server = exc.response.status_code, exc.server_message
    if isinstance(exc, GatedRepoError):
        what = "gated repo: needs a token granted access" + (", none sent" if status == 401 else "")
    elif isinstance(exc, RepositoryNotFoundError):
        what = "repository not found (deleted, renamed, private or misspelt)"
    elif isinstance(exc, RevisionNotFoundError):
        what = "revision not found"
    elif isinstance(exc, RemoteEntryNotFoundError):
        what = "file not found at this revision"
    else:
        what = _STATUS.get(status, "HTTP error")
    return f"HTTP {status}: {what}" + (f" (Hub: {server})" if server else "")


def fetch_safetensors_headers(
    repo_id: str,
    revision: str,
    paths: Sequence[str],
    *,
    max_header: int,
    workers: int = 8,
    token: bool | str | None = None,
    endpoint: str | None = None,
    first_read: int | None = None,
    head_bytes: int = 0,
) -> dict[str, RemoteHeader | RemoteError]:
    """Each path's header at `revision` (a full commit sha), `workers` files at a time.

    `token` as in huggingface_hub (None: the saved token; False: none). `first_read`: bytes of
    the first GET (default 1/2048 of the file, 8 to 64 KiB). `head_bytes`: for a file that is
    not safetensors, at least this many of its first bytes come back in `RemoteError.head`
    (fewer if the file is shorter), so that its format can be told. One file's fault never
    raises.
    """
    if not SHA1_HEX.fullmatch(revision):
        raise ValueError(f"revision must be a full 40-hex commit sha, not {revision!r}")
    if max_header < 0 or workers < 1 or (first_read is not None and first_read < PREFIX):
        raise ValueError("need max_header >= 0, workers >= 1 and first_read >= 8")
    if head_bytes < 0:
        raise ValueError("need head_bytes >= 0")

    def fetch(path: str) -> RemoteHeader | RemoteError:
        counts = _Counts()
        try:
            url = hf_hub_url(repo_id, path, revision=revision, endpoint=endpoint)
            n, header, size = _read(
                url, revision, max_header, first_read, token, endpoint, counts, head_bytes
            )
            ignored = counts.range_ignored
            return RemoteHeader(path, n, header, size, counts.bytes, counts.requests, ignored)
        except _Refused as exc:
            code, reason, head = exc.code, exc.reason, exc.head
        except HfHubHTTPError as exc:
            code, reason, head = f"http-{exc.response.status_code}", _http_reason(exc), b""
        except (httpx2.HTTPError, RuntimeError) as exc:  # connection, timeout, protocol
            code, reason, head = "network", _network_reason(exc), b""
        return RemoteError(path, reason, code, counts.bytes, counts.requests, head)

    unique = list(dict.fromkeys(paths))
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(unique)))) as pool:
        return dict(zip(unique, pool.map(fetch, unique), strict=True))


def _network_reason(exc: BaseException) -> str:
    """What went wrong on the wire, after huggingface_hub's retries.

    Its http_stream_backoff is a generator context manager that retries by yielding again: a
    body cut while it is read (inside the `with`) surfaces as RuntimeError("generator didn't
    stop after throw()"), the network error as its context."""
    if isinstance(exc, RuntimeError) and not isinstance(exc.__context__, httpx2.HTTPError):
        raise exc  # not a network error: a bug, never hidden as one
    cause = exc.__context__ if isinstance(exc, RuntimeError) else exc
    return f"network error: {type(cause).__name__}: {cause}"


RANGE_CHUNK = 64 * 1024 * 1024  # bytes per GET of fetch_range


def fetch_range(
    repo_id: str,
    revision: str,
    path: str,
    start: int,
    end: int,
    *,
    chunk: int = RANGE_CHUNK,
    token: bool | str | None = None,
    endpoint: str | None = None,
) -> Iterator[tuple[int, bytes]]:
    """Bytes start..end-1 of one file at `revision` (a full commit sha), `chunk` bytes per
    Range GET, as (offset, bytes). One HEAD resolves the file as for a header; a server that
    ignores Range, answers another range, compresses or sends short is an error naming the
    file (HubError), never a silent gap: the caller would read zeros as weights."""
    if not SHA1_HEX.fullmatch(revision):
        raise ValueError(f"revision must be a full 40-hex commit sha, not {revision!r}")
    if not 0 <= start <= end or chunk < 1:
        raise ValueError("need 0 <= start <= end and chunk >= 1")
    where = f"{HubRef(repo_id, revision)}: {path}"
    counts = _Counts()
    try:
        url = hf_hub_url(repo_id, path, revision=revision, endpoint=endpoint)
        meta, headers = _located(url, revision, token, endpoint)
        if meta.size is not None and end > meta.size:
            raise _Refused("ShortFile", f"bytes up to {end} asked of a {meta.size}-byte file")
        for at in range(start, end, chunk):
            stop = min(end, at + chunk)
            data = _get(meta.location, at, stop, headers, counts)
            if counts.range_ignored:
                raise _Refused("RangeIgnored", "the server ignored the Range header")
            if len(data) != stop - at:
                raise _Refused("ShortRead", f"the server sent {len(data)} of {stop - at} bytes")
            yield at, data
    except _Refused as exc:
        raise HubError(f"{where}: bytes {start}-{end - 1}: {exc.reason}") from exc
    except HfHubHTTPError as exc:
        raise HubError(f"{where}: {_http_reason(exc)}") from exc
    except (httpx2.HTTPError, RuntimeError) as exc:
        raise HubError(f"{where}: {_network_reason(exc)}") from exc
