"""How is every Hub request of a scan bounded: in size, in time and in where it may be redirected?

`HubTraffic` hooks huggingface_hub's HTTP client (installed by `hub.session.hub_traffic`): every
request huggingface_hub or provscan makes while a scan talks to the Hub goes through it.
"""

from __future__ import annotations

import email.utils
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import httpx2
from huggingface_hub.utils._http import default_client_factory, parse_ratelimit_headers

from provscan.hub.http import HubLimitError, redirect_refusal
from provscan.limits import Limits

_TIMING = "provscan.hub.traffic.timing"  # request.extensions key: the request's _Timing
_DECLARED_KEPT = 4096  # sizes the HEADs declared, kept for the GETs that follow them
_RETRY_STATUS = (408, 429, 500, 502, 503, 504)


@dataclass(frozen=True)
class _Timing:
    start: float
    deadline: float
    scan: bool  # the scan's deadline (hub_scan_deadline) comes first, not hub_request_timeout


class HubTraffic:
    """The bounds on one scan's Hub traffic, enforced by event hooks on huggingface_hub's client.

    Hooks on the client that `get_session()` returns (installed with `set_client_factory`), not
    provscan's own requests: huggingface_hub reads whole bodies itself (`model_info`,
    `list_repo_tree`, `repo_info`: `get_session().get(...)` then `.json()`; an error's body in
    `hf_raise_for_status`), follows redirects itself and writes downloads itself (`http_get`).
    Its hooks see every request and response, each redirect hop included, before any body is
    read, and leave proxies, the user agent and the token handling as they are.

    - Size: a body read into memory (anything under /api/, an error, a redirect) is decoded
      piece by piece (httpx2 inflates gzip, deflate, br and zstd at most 1 MiB a step) and
      refused past `hub_response_max` bytes; what was read becomes the response's content, so
      huggingface_hub's `.json()` / `.read()` find it. A file body (any other GET) is asked for
      with `Accept-Encoding: identity`, refused if encoded all the same, and cut at the size the
      Hub lists for it (`hub.session.listed_file`) or, failing that, the size its HEAD declared
      (`X-Linked-Size` / `Content-Length`, what huggingface_hub's own size check uses): one byte
      more is a HubLimitError, and nothing past the size reaches the disk.
    - Time: a request (connect, headers, body) ends within `hub_request_timeout` seconds, a file
      body within that plus its size (as above, else its Content-Length) at `hub_min_rate`
      bytes a second; its socket timeouts are cut to the time left and the clock is read after
      every piece of body, so a server dripping a byte a second is cut off at the deadline.
      Nothing runs past `hub_scan_deadline` seconds from the start; a Retry-After beyond it
      fails at once.
    - Redirects: hub.http.redirect_refusal.
    """

    def __init__(
        self, limits: Limits, current_listed: Callable[[], tuple[str, int] | None]
    ) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.hub_scan_deadline
        self._listed = current_listed
        self._declared: OrderedDict[str, tuple[int, str]] = OrderedDict()  # URL: size, file URL
        self._lock = threading.Lock()

    def client(self) -> httpx2.Client:
        """huggingface_hub's default client (its request hook, redirects followed), with ours."""
        client = default_client_factory()
        hooks = client.event_hooks
        client.event_hooks = {kind: [*hooks[kind], *mine] for kind, mine in self.hooks.items()}
        return client

    @property
    def hooks(self) -> dict[str, list[Callable[..., Any]]]:
        """The event hooks that bound a client's traffic."""
        return {"request": [self._on_request], "response": [self._on_response]}

    def check_wait(self, seconds: float, what: str) -> None:
        """A HubLimitError if waiting `seconds` would pass the scan's deadline."""
        if time.monotonic() + seconds > self.deadline:
            raise self.late(f"{what}: waiting {seconds:g} s more", scan=True)

    def late(self, what: str, *, scan: bool) -> HubLimitError:
        if scan:
            return HubLimitError(
                f"{what} passes the deadline for all of the scan's Hub traffic, "
                f"{self.limits.hub_scan_deadline} s (hub_scan_deadline)",
                "run again when the Hub answers faster, or raise hub_scan_deadline in provscan/limits.py",
            )
        return HubLimitError(
            f"{what}: no complete answer within {self.limits.hub_request_timeout} s "
            "(hub_request_timeout, per request)",
            "run again; if it repeats, the server (HF_ENDPOINT, or a proxy) answers too slowly",
        )

    def _timing(self, start: float, extra: float = 0.0) -> _Timing:
        mine = start + self.limits.hub_request_timeout + extra
        return _Timing(start, min(mine, self.deadline), self.deadline < mine)

    def _on_request(self, request: httpx2.Request) -> None:
        now = time.monotonic()
        if now >= self.deadline:
            raise self.late(f"{request.method} {request.url}", scan=True)
        timing = self._timing(now)
        request.extensions[_TIMING] = timing
        left = timing.deadline - now
        given = request.extensions.get("timeout") or {}
        request.extensions["timeout"] = {
            kind: min(value, left) if isinstance(value, int | float) else left
            for kind in ("connect", "read", "write", "pool")
            for value in [given.get(kind)]
        }
        if request.method == "GET" and not _is_api(request.url):
            request.headers["Accept-Encoding"] = "identity"  # a file: its size is its length

    def _on_response(self, response: httpx2.Response) -> None:
        request = response.request
        url, what = str(request.url), f"{request.method} {request.url}"
        timing = request.extensions.get(_TIMING) or self._timing(time.monotonic())
        if response.has_redirect_location:
            location = urljoin(url, response.headers["Location"])
            if (refused := redirect_refusal(url, location)) is not None:
                raise HubLimitError(
                    f"{what}: the Hub's redirect to {location[:300]} is refused: {refused}",
                    "check HF_ENDPOINT and any proxy between provscan and the Hub",
                )
        self._check_retry_after(response, what)
        cap, name = None, None
        if request.method == "HEAD" and response.status_code < 400:
            self._declare(response, url)
        elif request.method == "GET" and response.is_success and not _is_api(request.url):
            encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding != "identity":
                raise HubLimitError(
                    f"{what}: a file served with Content-Encoding {encoding[:40]!r} though "
                    "identity was asked; refused (its size could not be bounded)"
                )
            cap, name = self._file_cap(response, url)
            length = _int(response.headers.get("Content-Length"))
            if cap is not None and length is not None and length > cap:
                raise _too_long(name or url, cap, f"; it declares {length} bytes")
            if (size := cap if cap is not None else length) is not None:
                timing = self._timing(timing.start, size / max(self.limits.hub_min_rate, 1))
        assert isinstance(response.stream, httpx2.SyncByteStream)  # a sync client's
        response.stream = _BoundedStream(response.stream, timing, self, what, cap, name or url)
        if request.method != "HEAD" and (_is_api(request.url) or response.status_code >= 300):
            self._read_in_memory(response, what)

    def _read_in_memory(self, response: httpx2.Response, what: str) -> None:
        """The whole (decoded) body, refused past hub_response_max bytes."""
        cap, data = self.limits.hub_response_max, bytearray()
        for piece in response.iter_bytes():
            data += piece
            if len(data) > cap:
                response.close()
                raise HubLimitError(
                    f"{what}: the response is larger than {cap} bytes decoded "
                    f"(hub_response_max); refused, nothing past {cap} bytes read",
                    "if the Hub's answer is legitimately this large, raise hub_response_max in provscan/limits.py",
                )
        response._content = bytes(data)  # what read() and json() return, as if read by httpx2

    def _check_retry_after(self, response: httpx2.Response, what: str) -> None:
        """A HubLimitError when the Hub asks to wait (before the retry huggingface_hub or
        provscan will make) past the scan's deadline."""
        if response.status_code not in _RETRY_STATUS:
            return
        asked = response.headers.get("Retry-After", "").strip()
        wait = float(asked) if asked.isdigit() else _seconds_until(asked)
        if (limited := parse_ratelimit_headers(response.headers)) and limited.remaining == 0:
            wait = max(wait or 0, limited.reset_in_seconds)
        if wait is not None:
            asks = f"{what}: HTTP {response.status_code}, the Hub asks to retry after {wait:g} s"
            self.check_wait(wait, asks)

    def _declare(self, response: httpx2.Response, url: str) -> None:
        """Remember the size a HEAD of a file declared, for the GET of where it points (a
        redirect's own Content-Length is the length of its body, not the file's)."""
        headers = response.headers
        length = None if response.is_redirect else headers.get("Content-Length")
        size = _int(headers.get("X-Linked-Size") or length)
        if size is None:
            return
        key = str(httpx2.URL(urljoin(url, headers.get("Location") or url)))
        with self._lock:
            self._declared[key] = (size, url)
            self._declared.move_to_end(key)
            while len(self._declared) > _DECLARED_KEPT:
                self._declared.popitem(last=False)

    def _file_cap(self, response: httpx2.Response, url: str) -> tuple[int | None, str | None]:
        """(bytes this file body may hold, the file's name if listed), None if unknown."""
        listed = self._listed()
        if listed is not None:
            name, size = listed
        else:
            with self._lock:
                declared = self._declared.get(url)
            if declared is None:
                return None, None
            size, name = declared
        start = 0
        if response.status_code == 206:
            match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
            start = int(match.group(1)) if match else 0
        return max(size - start, 0), name


class _BoundedStream(httpx2.SyncByteStream):
    """A response's raw body, checked after every piece: the deadline, and `cap` bytes."""

    def __init__(
        self,
        inner: httpx2.SyncByteStream,
        timing: _Timing,
        traffic: HubTraffic,
        what: str,
        cap: int | None,
        name: str,
    ) -> None:
        self._inner, self._timing, self._traffic = inner, timing, traffic
        self._what, self._cap, self._name, self._read = what, cap, name, 0

    @property
    def elapsed(self) -> Any:  # httpx2 reads the response's elapsed time from its stream
        return getattr(self._inner, "elapsed", None)

    def __iter__(self) -> Iterator[bytes]:
        try:
            for piece in self._inner:
                self._read += len(piece)
                if self._cap is not None and self._read > self._cap:
                    raise _too_long(self._name, self._cap)
                if time.monotonic() > self._timing.deadline:
                    raise self._traffic.late(self._what, scan=self._timing.scan)
                yield piece
        except httpx2.TimeoutException as exc:  # a socket timeout cut to the time left
            if time.monotonic() >= self._timing.deadline - 0.1:
                raise self._traffic.late(self._what, scan=self._timing.scan) from exc
            raise

    def close(self) -> None:
        self._inner.close()


def _too_long(name: str, cap: int, how: str = "") -> HubLimitError:
    return HubLimitError(
        f"{name}: the Hub served more than the {cap} bytes it lists for this file{how}; "
        f"stopped at {cap} bytes, nothing past them kept",
        "the server sends other bytes than the Hub recorded: check HF_ENDPOINT and any proxy",
    )


def _is_api(url: httpx2.URL) -> bool:
    return url.path.startswith("/api/") and "/resolve" not in url.path


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


def _seconds_until(http_date: str) -> float | None:
    """Seconds until an HTTP date (a Retry-After), None if it is not one."""
    try:
        when = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time()) if when.tzinfo else None
