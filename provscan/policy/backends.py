"""Which Rego engine evaluates the policy, and where does it run?

Three backends decide with the same packs and the same `verdict_from_result`:

- ``regopy`` (default): the embedded engine, in a child process (provscan.policy._child).
- ``opa``: the ``opa`` binary (``opa eval``), found on PATH or named by ``opa_binary``.
- ``opa-server``: a running OPA server's REST Data API at ``opa_url``; the server owns its
  policies and data (``provscan policy push`` loads provscan's packs into it).

A bearer token for the server is read from the environment variable named by
``token_env``, never passed as a value, so it stays off command lines and out of reports.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from provscan.errors import PolicyError, UsageError


class PolicySetupError(PolicyError):
    """The policy can decide no report at all: its engine is missing or unreachable, or a
    module does not parse. Every input would fail the same way, so a run over many inputs
    (`provscan policy test`) stops at the first one instead of repeating it."""


BackendKind = Literal["regopy", "opa", "opa-server"]
KINDS: tuple[BackendKind, ...] = ("regopy", "opa", "opa-server")


@dataclass(frozen=True)
class PolicyBackend:
    """Where the Rego policy is evaluated. The default is the embedded regopy engine."""

    kind: BackendKind = "regopy"
    opa_url: str | None = None  # opa-server only: the server's base URL, e.g. http://opa:8181
    token_env: str | None = None  # opa-server only: the variable holding a bearer token
    opa_binary: str = "opa"  # opa only: a name looked up on PATH, or a path

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"unknown policy backend {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.kind == "opa-server":
            if not self.opa_url:
                raise UsageError("the opa-server policy backend needs the server's URL")
            object.__setattr__(self, "opa_url", check_server_url(self.opa_url))
        elif self.opa_url is not None or self.token_env is not None:
            raise UsageError("an OPA URL or token applies to the opa-server backend only")

    def token(self) -> str | None:
        """The bearer token from the environment, or None when no variable is named."""
        if self.token_env is None:
            return None
        value = os.environ.get(self.token_env, "").strip()
        if not value:
            raise UsageError(
                f"the OPA token variable {self.token_env} is not set or empty",
                f"export {self.token_env}=<token>, or leave the token option out",
            )
        if not value.isprintable() or any(ch in value for ch in "\r\n"):
            raise UsageError(f"the OPA token in {self.token_env} is not a valid header value")
        if self.opa_url is not None and not _may_carry_token(self.opa_url):
            raise UsageError(
                f"refusing to send the OPA token over plain http to {self.opa_url}",
                "use an https:// URL (or a loopback address for a local server)",
            )
        return value


REGOPY = PolicyBackend()


def check_server_url(url: str) -> str:
    """Validate an OPA base URL and return it without a trailing slash."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"the OPA URL {url!r} must start with http:// or https:// and name a host")
    if parts.username is not None or parts.password is not None:
        # Credentials in the URL would end up in error messages and logs.
        raise UsageError(
            "the OPA URL must not carry credentials",
            "put a bearer token in an environment variable and name that variable instead",
        )
    if parts.query or parts.fragment:
        raise UsageError(f"the OPA URL {url!r} must not have a query or fragment")
    return url.rstrip("/")


def _may_carry_token(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    host: Any = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return bool(ipaddress.ip_address(host).is_loopback)
    except ValueError:
        return False
