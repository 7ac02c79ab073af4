"""How does provscan talk to an OPA server's REST API without trusting its answers' size or timing?

One small client for the calls provscan makes: TLS verified, no redirects followed, one
deadline across all calls of an operation, bodies read raw (no decompression) up to
MAX_RESPONSE bytes, JSON objects only.
Every failure is a PolicyError that names the URL (which never carries credentials) and
the HTTP status.
"""

from __future__ import annotations

import functools
import json
import ssl
import time
from collections.abc import Mapping
from typing import Any

import httpx2

from provscan.errors import PolicyError
from provscan.policy._bounded import MAX_ENGINE_OUTPUT
from provscan.policy.backends import PolicyBackend, PolicySetupError

MAX_RESPONSE = MAX_ENGINE_OUTPUT  # the same cap as a local engine's output
_PREVIEW = 300


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # The system's trust store (where an internal CA for an OPA server gets installed;
    # SSL_CERT_FILE / SSL_CERT_DIR apply), certificate and host name checked. Built once:
    # loading the CAs costs more than a local OPA call.
    return ssl.create_default_context()


class OpaClient:
    """Calls against one OPA server; every call shares the deadline set at creation."""

    def __init__(self, backend: PolicyBackend, timeout_s: float) -> None:
        if backend.opa_url is None:
            raise PolicyError("no OPA server URL given")
        self.base = backend.opa_url
        self.token_env = backend.token_env
        token = backend.token()
        self._headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"
        self._timeout_s = timeout_s
        self._deadline = time.monotonic() + timeout_s
        self._client = httpx2.Client(verify=_tls_context(), follow_redirects=False)

    def __enter__(self) -> OpaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        text_body: str | None = None,
        params: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> tuple[int, dict[str, Any] | None]:
        """Send one request; return (status, JSON object body or None when empty).

        A status outside ``ok`` raises PolicyError; so does any transport or body problem.
        """
        url = self.base + path
        headers = dict(self._headers)
        content: bytes | None = None
        if json_body is not None:
            content = json.dumps(json_body, ensure_ascii=True, allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        elif text_body is not None:
            content = text_body.encode("utf-8")
            headers["Content-Type"] = "text/plain"
        status, raw = self._send(method, url, headers, content, params)
        if status not in ok:
            raise PolicyError(_status_message(method, url, status, raw, self.token_env))
        return status, _parse(method, url, status, raw)

    def _remaining(self, method: str, url: str) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise PolicyError(f"OPA server {method} {url} timed out after {self._timeout_s:g} s")
        return left

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes | None,
        params: Mapping[str, str] | None,
    ) -> tuple[int, bytes]:
        timeout = httpx2.Timeout(self._remaining(method, url))
        try:
            with self._client.stream(
                method, url, headers=headers, content=content, params=params, timeout=timeout
            ) as response:
                if response.is_redirect:
                    where = response.headers.get("Location", "?")
                    raise PolicyError(
                        f"OPA server {method} {url} answered {response.status_code} "
                        f"(a redirect to {where}); provscan does not follow redirects",
                        "give the server's final URL",
                    )
                encoding = response.headers.get("Content-Encoding", "identity").lower()
                if encoding not in ("", "identity"):
                    raise PolicyError(
                        f"OPA server {method} {url} sent a {encoding}-encoded body, "
                        "which provscan does not decompress"
                    )
                return response.status_code, self._read(response, method, url)
        except httpx2.TimeoutException as exc:
            raise PolicyError(
                f"OPA server {method} {url} timed out after {self._timeout_s:g} s"
            ) from exc
        except httpx2.HTTPError as exc:
            raise PolicySetupError(
                f"OPA server {method} {url} could not be reached: {type(exc).__name__}: {exc}",
                "check the URL and that the server is running",
            ) from exc

    def _read(self, response: httpx2.Response, method: str, url: str) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_RESPONSE:
            raise PolicyError(_too_large(method, url))
        body = bytearray()
        for chunk in response.iter_raw():
            body += chunk
            if len(body) > MAX_RESPONSE:
                raise PolicyError(_too_large(method, url))
            # The read timeout is per chunk; a server that trickles bytes meets the deadline.
            self._remaining(method, url)
        return bytes(body)


def _too_large(method: str, url: str) -> str:
    return f"OPA server {method} {url} sent a response larger than {MAX_RESPONSE} bytes"


def _preview(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").strip()
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 3] + "..."


def _parse(method: str, url: str, status: int, raw: bytes) -> dict[str, Any] | None:
    if not raw.strip():
        return None
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise PolicyError(
            f"OPA server {method} {url} ({status}) sent a body that is not JSON: {_preview(raw)!r}"
        ) from exc
    if not isinstance(doc, dict):
        raise PolicyError(f"OPA server {method} {url} ({status}) sent JSON that is not an object")
    return doc


def _error_detail(raw: bytes) -> str:
    """OPA's error body: {"code": ..., "message": ..., "errors": [{"message", "location"}]}."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return _preview(raw)
    if not isinstance(doc, dict):
        return _preview(raw)
    parts = [f"{doc.get('code', 'error')}: {doc.get('message', '')}".strip()]
    errors = doc.get("errors")
    for error in errors[:5] if isinstance(errors, list) else []:
        if not isinstance(error, dict):
            continue
        location = error.get("location")
        where = ""
        if isinstance(location, dict):
            where = f"{location.get('file', '?')}:{location.get('row', '?')}: "
        parts.append(f"{where}{error.get('message', '')}")
    return "; ".join(parts)[: _PREVIEW * 3]


def _status_message(method: str, url: str, status: int, raw: bytes, token_env: str | None) -> str:
    detail = _error_detail(raw) if raw.strip() else "no body"
    message = f"OPA server {method} {url} answered HTTP {status}: {detail}"
    if status == 401:
        hint = (
            f"the token in {token_env} was refused"
            if token_env
            else "the server wants a bearer token: name the environment variable that holds it"
        )
        return f"{message} ({hint})"
    if status == 403:
        return f"{message} (the server's authorization policy forbids this call)"
    return message
