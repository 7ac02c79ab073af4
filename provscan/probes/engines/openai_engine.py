"""What does a served model say next, asked over an OpenAI-compatible `/v1/completions` API?

Written for `vllm serve` (one GPU, tensor-parallel, or a multi-node Ray deployment: the
client does not care). Prompts travel as token-id lists, never text, and vLLM's extensions
keep the answers in token ids too: `return_tokens_as_token_ids` (tokens come back as
"token_id:123"), `stop_token_ids`, `ignore_eos` (only the probe's stop ids end a sequence)
and `logprob_token_ids`. Every sampling knob is sent explicitly (repetition_penalty 1,
top_k -1, min_p 0 ...) because vLLM otherwise fills gaps from the model's
generation_config.json; run the server with `--generation-config vllm` so that its defaults
(extra stop ids included) cannot leak in either.

next_token asks for `logprobs=top_k` (vLLM caps this at `--max-logprobs`, 20 by default).
Log-probabilities of requested ids outside the top-k come from a second request with vLLM's
`logprob_token_ids` (vLLM >= 0.30; at most 128 ids a request; prefix caching makes the
repeat prefill cheap). A server without that extension ignores the field; an id it leaves out
is then reported as -inf (its true value is below every top-k value), never made up. vLLM
writes -inf as -9999.0, since JSON has no infinity; it is read back as -inf.

HTTP errors, timeouts (per socket operation), redirects (never followed: they could carry the
API key elsewhere) and malformed replies become EngineError with the status and the server's
own message. Stdlib only (urllib), so this engine needs no extra installed.
"""

from __future__ import annotations

import http.client
import json
import math
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from provscan.files import read_capped
from provscan.probes.engine import (
    EngineError,
    EngineInfo,
    NextToken,
    SamplingParams,
    TokenIds,
    chunks,
)

MAX_REPLY_BYTES = 256 * 1024 * 1024  # a top-20 reply for 64 prompts is ~100 KB
MAX_ERROR_BYTES = 64 * 1024
MAX_LOGPROB_TOKEN_IDS = 128  # vLLM's own cap per request
_ID_PREFIX = "token_id:"
_JSON_NEG_INF = -9999.0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


class _Client:
    """JSON over HTTP to one base URL; every failure an EngineError."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise EngineError(f"base URL {base_url!r} is not http:// or https://")
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.headers = {"Accept": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self._opener = urllib.request.build_opener(_NoRedirect)

    # The scheme of every URL was checked in __init__ (http or https only): hence the noqa S310.
    def get(self, url: str) -> Any:
        return self._call(urllib.request.Request(url, headers=self.headers, method="GET"))  # noqa: S310

    def post(self, path: str, body: dict[str, Any]) -> Any:
        data = json.dumps(body).encode()
        headers = self.headers | {"Content-Type": "application/json"}
        return self._call(
            urllib.request.Request(self.base + path, data=data, headers=headers, method="POST")  # noqa: S310
        )

    def _call(self, request: urllib.request.Request) -> Any:
        url = request.full_url
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw, too_long = read_capped(response, MAX_REPLY_BYTES)
        except urllib.error.HTTPError as error:
            raise _http_error(url, error) from error
        except TimeoutError as error:
            raise _timeout(url, self.timeout) from error
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                raise _timeout(url, self.timeout) from error
            raise EngineError(
                f"cannot reach {url}: {error.reason}", "is the server running at --base-url?"
            ) from error
        except (http.client.HTTPException, OSError) as error:
            raise EngineError(
                f"{url}: the connection failed ({type(error).__name__}: {error})"
            ) from error
        if too_long:
            raise EngineError(f"{url}: reply over {MAX_REPLY_BYTES:,} bytes; refused")
        try:
            return json.loads(raw)
        except ValueError as error:
            raise EngineError(f"malformed reply from {url}: not JSON ({raw[:200]!r})") from error


def _timeout(url: str, seconds: float) -> EngineError:
    return EngineError(
        f"{url}: no answer within {seconds:g} s (timed out)",
        "raise the timeout, lower --batch-size, or check the server's load",
    )


def _http_error(url: str, error: urllib.error.HTTPError) -> EngineError:
    try:
        body = error.read(MAX_ERROR_BYTES)
    except OSError:
        body = b""
    message = _server_message(body) or error.reason or "no message"
    remedy = {
        401: "check the API key (the server's --api-key)",
        403: "check the API key (the server's --api-key)",
        404: "check --base-url (it usually ends in /v1) and --served-model",
    }.get(error.code)
    if error.code == 400 and "logprobs" in str(message):
        remedy = "start the server with a larger --max-logprobs, or ask for a smaller top-k"
    if 300 <= error.code < 400:
        remedy = "point --base-url at the server itself; redirects are not followed"
    return EngineError(f"{url}: HTTP {error.code}: {message}", remedy)


def _server_message(body: bytes) -> str:
    """vLLM answers {"error": {"message": ...}}; older builds {"message": ...}; its API-key
    check {"error": "Unauthorized"}. Anything else is shown raw (shortened)."""
    try:
        reply = json.loads(body)
    except ValueError:
        return body[:300].decode("utf-8", "replace").strip()
    if isinstance(reply, dict):
        error = reply.get("error", reply)
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])[:1000]
        if isinstance(error, str):
            return error[:1000]
    return json.dumps(reply)[:300]


def served_models(base_url: str, *, api_key: str | None = None, timeout: float = 60) -> list[str]:
    """The model names the server serves (`GET {base_url}/models`)."""
    client = _Client(base_url, api_key, timeout)
    reply = client.get(client.base + "/models")
    try:
        return [str(entry["id"]) for entry in reply["data"]]
    except (KeyError, TypeError) as error:
        raise EngineError(f"malformed reply from {client.base}/models: {error!r}") from error


class OpenAIEngine:
    """A model behind an OpenAI-compatible completions endpoint (e.g. `vllm serve`)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 60,
        batch_size: int = 64,
    ) -> None:
        if batch_size < 1:
            raise EngineError(f"batch size must be at least 1, not {batch_size}")
        self._client = _Client(base_url, api_key, timeout)
        self._model = model
        self._batch_size = batch_size
        served = served_models(base_url, api_key=api_key, timeout=timeout)
        if model not in served:
            raise EngineError(
                f"{self._client.base} does not serve {model!r} (it serves {', '.join(served) or 'nothing'})",
                "name the served model with --served-model",
            )
        self._info = EngineInfo(name="openai", version=self._server_version(), model=model)

    @property
    def info(self) -> EngineInfo:
        return self._info

    def next_token(
        self, prompts: Sequence[TokenIds], *, top_k: int, token_ids: TokenIds = ()
    ) -> list[NextToken]:
        chosen = list(dict.fromkeys(int(t) for t in token_ids))
        results: list[NextToken] = []
        for chunk in chunks(_rows(prompts), self._batch_size):
            steps = self._first_steps(chunk, logprobs=top_k)
            extra: list[dict[int, float]] = [{} for _ in chunk]
            if any(t not in step for step in steps for t in chosen):
                for ids in chunks(chosen, MAX_LOGPROB_TOKEN_IDS):
                    more = self._first_steps(chunk, logprobs=0, logprob_token_ids=ids)
                    for have, add in zip(extra, more, strict=True):
                        have.update(add)
            results.extend(
                next_token_from_steps(s, x, top_k, chosen)
                for s, x in zip(steps, extra, strict=True)
            )
        return results

    def greedy(
        self, prompts: Sequence[TokenIds], *, max_tokens: int, stop_ids: TokenIds = ()
    ) -> list[tuple[int, ...]]:
        rows = _rows(prompts)
        if max_tokens <= 0:  # vLLM refuses max_tokens=0 unless echoing
            return [() for _ in rows]
        outputs: list[tuple[int, ...]] = []
        for chunk in chunks(rows, self._batch_size):
            body = self._body(chunk, max_tokens=max_tokens, temperature=0.0, stop_ids=stop_ids)
            outputs.extend(_continuation(c, max_tokens) for c in self._choices(body, len(chunk)))
        return outputs

    def sample(
        self, prompts: Sequence[TokenIds], params: SamplingParams
    ) -> list[list[tuple[int, ...]]]:
        n, max_tokens = params.n, params.max_tokens
        if n < 1:
            raise EngineError(f"n must be at least 1, not {n}")
        rows = _rows(prompts)
        if max_tokens <= 0:
            return [[() for _ in range(n)] for _ in rows]
        outputs: list[list[tuple[int, ...]]] = []
        for chunk in chunks(rows, max(1, self._batch_size // n)):
            body = self._body(
                chunk,
                max_tokens=max_tokens,
                temperature=params.temperature,
                stop_ids=params.stop_ids,
            )
            body |= {"n": n, "top_p": params.top_p, "seed": params.seed}
            flat = [_continuation(c, max_tokens) for c in self._choices(body, len(chunk) * n)]
            outputs.extend(flat[i * n : (i + 1) * n] for i in range(len(chunk)))
        return outputs

    def close(self) -> None:
        """Nothing to release: the server owns the model."""

    # -- requests ----------------------------------------------------------------------

    def _body(
        self,
        rows: list[list[int]],
        *,
        max_tokens: int,
        temperature: float,
        stop_ids: TokenIds = (),
        logprobs: int = 0,
    ) -> dict[str, Any]:
        # logprobs=0 still returns each generated token (as "token_id:N"): that is how the
        # continuation's ids come back, whatever the server's tokenizer would print.
        return {
            "model": self._model,
            "prompt": rows,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": 1.0,
            "top_k": -1,
            "min_p": 0.0,
            "repetition_penalty": 1.0,
            "presence_penalty": 0.0,
            "frequency_penalty": 0.0,
            "n": 1,
            "logprobs": logprobs,
            "echo": False,
            "stream": False,
            "ignore_eos": True,
            "stop_token_ids": [int(t) for t in stop_ids],
            "return_tokens_as_token_ids": True,
        }

    def _first_steps(
        self, rows: list[list[int]], *, logprobs: int, logprob_token_ids: list[int] | None = None
    ) -> list[dict[int, float]]:
        body = self._body(rows, max_tokens=1, temperature=0.0, logprobs=logprobs)
        if logprob_token_ids:
            body["logprob_token_ids"] = logprob_token_ids
        return [_first_step(choice) for choice in self._choices(body, len(rows))]

    def _choices(self, body: dict[str, Any], expected: int) -> list[dict[str, Any]]:
        """The reply's choices in prompt-major order (prompt i, sample j at i*n + j)."""
        url = self._client.base + "/completions"
        reply = self._client.post("/completions", body)
        try:
            choices = reply["choices"]
            ordered = sorted(choices, key=lambda c: int(c["index"]))
            indexes = [int(c["index"]) for c in ordered]
        except (KeyError, TypeError, ValueError) as error:
            raise EngineError(
                f"malformed reply from {url}: no usable 'choices' ({error!r})"
            ) from error
        if indexes != list(range(expected)):
            raise EngineError(
                f"malformed reply from {url}: {len(indexes)} choices for {expected} expected"
            )
        return [dict(c) for c in ordered]

    def _server_version(self) -> str:
        """vLLM serves GET /version at the root, beside /v1."""
        root = self._client.base.removesuffix("/v1")
        try:
            reply = self._client.get(root + "/version")
        except EngineError:
            return "unknown"
        version = reply.get("version") if isinstance(reply, dict) else None
        return str(version) if version else "unknown"


def _rows(prompts: Sequence[TokenIds]) -> list[list[int]]:
    rows = [[int(t) for t in prompt] for prompt in prompts]
    for index, row in enumerate(rows):
        if not row:
            raise EngineError(f"prompt {index} is empty; a prompt needs at least one token")
        if min(row) < 0:
            raise EngineError(f"prompt {index} holds a negative token id")
    return rows


def _token_id(token: Any) -> int:
    if not isinstance(token, str) or not token.startswith(_ID_PREFIX):
        raise EngineError(
            f"malformed reply: token {token!r} is not 'token_id:N' "
            "(the server ignored return_tokens_as_token_ids; is it vLLM?)"
        )
    try:
        return int(token.removeprefix(_ID_PREFIX))
    except ValueError as error:
        raise EngineError(f"malformed reply: token {token!r} is not 'token_id:N'") from error


def _logprob(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EngineError(f"malformed reply: log-probability {value!r} is not a number")
    return -math.inf if value <= _JSON_NEG_INF else float(value)


def _logprobs(choice: dict[str, Any]) -> dict[str, Any]:
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict) or not isinstance(logprobs.get("tokens"), list):
        raise EngineError("malformed reply: a choice has no logprobs.tokens")
    return logprobs


def _continuation(choice: dict[str, Any], max_tokens: int) -> tuple[int, ...]:
    tokens = tuple(_token_id(t) for t in _logprobs(choice)["tokens"])
    if len(tokens) > max_tokens:
        raise EngineError(f"malformed reply: {len(tokens)} tokens for max_tokens={max_tokens}")
    return tokens


def _first_step(choice: dict[str, Any]) -> dict[int, float]:
    """The first generated position's {token id: log-probability}, as the server gave it."""
    top = _logprobs(choice).get("top_logprobs")
    if not isinstance(top, list) or not top or not isinstance(top[0], dict):
        raise EngineError("malformed reply: a choice has no logprobs.top_logprobs[0]")
    return {_token_id(token): _logprob(value) for token, value in top[0].items()}


def next_token_from_steps(
    step: dict[int, float], extra: dict[int, float], top_k: int, chosen: list[int]
) -> NextToken:
    """A NextToken from a top-k step and a step for requested ids (absent ids: -inf).

    vLLM adds the sampled token to the top-k; at temperature 0 it is the argmax, so sorting
    and cutting to top_k gives exactly the top-k. Shared with the vllm engine.
    """
    ranked = sorted(step.items(), key=lambda item: (-item[1], item[0]))[: max(top_k, 0)]
    known = extra | step
    return NextToken(top=tuple(ranked), chosen={t: known.get(t, -math.inf) for t in chosen})
