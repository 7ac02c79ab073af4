"""While a scan talks to the Hub, which bounds hold its traffic, and how is a failed call retried?

Inside `hub_traffic`, every request huggingface_hub or provscan makes is bounded in size, in
time and in where it may be redirected (hub.traffic.HubTraffic); `with_retries` retries what
retrying may fix (hub.http) and waits no longer than the scan's deadline allows.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from provscan.hub.http import (
    RETRIES,
    HubLimitError,
    hub_error,
    is_retryable,
    limit_error,
    network_cause,
    retry_delay,
)
from provscan.hub.ref import HubRef
from provscan.limits import Limits

if TYPE_CHECKING:
    from provscan.hub.traffic import HubTraffic

T = TypeVar("T")

_TRAFFIC: HubTraffic | None = None  # the scan's bounds, while hub_traffic() is active
# The file a download in this thread (context) fetches, and the size the Hub lists for it.
_LISTED: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar(
    "provscan_hub_listed", default=None
)


@contextlib.contextmanager
def hub_traffic(limits: Limits) -> Iterator[HubTraffic]:
    """Inside the block, every request to the Hub (huggingface_hub's and provscan's own) is
    bounded as `limits` says: see hub.traffic.HubTraffic. `hub_scan_deadline` counts from here."""
    from huggingface_hub import constants, set_client_factory
    from huggingface_hub.utils import _http

    from provscan.hub.traffic import HubTraffic  # loads httpx2: only a scan of an hf:// target

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
            cause = exc if offline else network_cause(exc)
            if not is_retryable(cause) or attempt == RETRIES:
                raise hub_error(ref, cause, offline=offline) from exc
            delay = retry_delay(cause, attempt)
            if (traffic := _TRAFFIC) is not None:
                traffic.check_wait(delay, f"{ref}: retrying after {type(cause).__name__}")
            sleep(delay)
    raise AssertionError("unreachable")
