"""What does the embedded Rego engine answer for one request? (`python -m provscan.policy._child`)

The parent (provscan.policy.engine) runs this module in a separate process so that a
native crash or hang of regopy can only kill this process, never the scan. Protocol:

- stdin: one JSON object ``{"modules": [[name, source], ...], "data": {...},
  "input": {...}, "query": "data.provscan.main"}``.
- the original stdout (kept on a private fd): one JSON object, either
  ``{"status": "ok", "engine_version": V, "result": <value or null when undefined>}`` or
  ``{"status": "load_error" | "eval_error" | "internal_error", "engine_version": V,
  "message": M}``.
- fd 1 itself points at stderr while regopy runs, so Rego ``print()`` (which writes to the
  C-level fd 1) and anything else that prints lands on stderr instead of in the reply.

This is the only module that imports regopy.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

# rego-cpp reports errors as S-expressions whose strings are length-prefixed in bytes:
#   (error 9:a/x.rego|70|1 (errormsg 27:Invalid arithmetic operator) ...)
_ERROR_HEAD = re.compile(rb"\(error(?:\s+(\d+):)?")
_ERRORMSG = re.compile(rb"\(errormsg\s+(\d+):")
_LOCATION = re.compile(rb"\|(\d+)\|(\d+)")


def _take(text: bytes, start: int, length: int) -> str:
    return text[start : start + length].decode("utf-8", errors="replace")


def _line_col(source: str, offset: int) -> tuple[int, int]:
    """Map a byte offset in a module to a 1-based line and (character) column."""
    prefix = source.encode("utf-8")[:offset].decode("utf-8", errors="replace")
    line = prefix.count("\n") + 1
    return line, len(prefix) - (prefix.rfind("\n") + 1) + 1


def describe_rego_errors(raw: str, sources: dict[str, str]) -> str:
    """Turn rego-cpp's error S-expression into 'file:line:col: message' lines."""
    text = raw.encode("utf-8")
    parts: list[str] = []
    for head in _ERROR_HEAD.finditer(text):
        where = ""
        if head.group(1) is not None:
            start = head.end()
            name = _take(text, start, int(head.group(1)))
            loc = _LOCATION.match(text, start + int(head.group(1)))
            where = name
            if loc is not None and name in sources:
                line, col = _line_col(sources[name], int(loc.group(1)))
                where = f"{name}:{line}:{col}"
        found = _ERRORMSG.search(text, head.end())
        message = _take(text, found.end(), int(found.group(1))) if found else "unknown error"
        parts.append(f"{where}: {message}" if where else message)
    if not parts:
        return raw.strip() or "the engine gave no error detail"
    # The engine often reports one mistake at two neighbouring positions.
    return "; ".join(dict.fromkeys(parts))


def _evaluate(request: dict[str, Any]) -> dict[str, Any]:
    import regopy
    from regopy import rego_shared

    version = str(regopy.__version__)
    modules: list[tuple[str, str]] = [(str(n), str(s)) for n, s in request["modules"]]
    sources = dict(modules)
    interp = regopy.Interpreter()
    for name, source in modules:
        try:
            interp.add_module(name, source)
        except regopy.RegoError as exc:
            raw = str(exc.args[0]) if exc.args else ""
            message = describe_rego_errors(raw, sources)
            if name not in message:
                message = f"{name}: {message}"
            return {"status": "load_error", "engine_version": version, "message": message}
    try:
        interp.add_data_json(json.dumps(request["data"]))
        # set_input_term, not set_input: the latter passes strings as C strings and
        # silently truncates them at the first NUL (a hostile file name could hide a suffix).
        interp.set_input_term(json.dumps(request["input"], ensure_ascii=True))
    except regopy.RegoError as exc:
        detail = str(exc.args[0]) if exc.args else ""
        return {
            "status": "eval_error",
            "engine_version": version,
            "message": "could not pass the report or config to the engine: "
            + describe_rego_errors(detail, sources),
        }
    # The low-level calls are used on purpose: regopy's Output class json-parses the
    # output eagerly (and raises on error S-expressions), and str()/node() on a failed
    # output can SIGSEGV in 1.5.2. Only an ok output's string is ever read.
    impl = rego_shared.rego_query(interp._impl, str(request["query"]))
    try:
        if not rego_shared.rego_output_ok(impl):
            detail = rego_shared.rego_get_error(interp._impl)
            message = describe_rego_errors(detail, sources) if detail else "no detail given"
            return {"status": "eval_error", "engine_version": version, "message": message}
        text = rego_shared.rego_output_string(impl)
    finally:
        rego_shared.rego_free_output(impl)
    if text.strip() == "undefined":
        return {"status": "ok", "engine_version": version, "result": None}
    if text.lstrip().startswith("("):
        # An "ok" output can still carry an error, e.g. a call to an unknown function.
        message = describe_rego_errors(text, sources)
        return {"status": "eval_error", "engine_version": version, "message": message}
    try:
        output = json.loads(text)
    except ValueError as exc:
        # Seen with rego-cpp 1.5.2 when sprintf formats a json.marshal result.
        message = f"the engine's output is not valid JSON ({exc}): {text[:200]}"
        return {"status": "eval_error", "engine_version": version, "message": message}
    first = output[0] if isinstance(output, list) and output else output
    expressions = first.get("expressions", []) if isinstance(first, dict) else []
    result = expressions[0] if expressions else None
    return {"status": "ok", "engine_version": version, "result": result}


def main() -> int:
    # Keep the real stdout for the reply, then point fd 1 at stderr before regopy is
    # imported, so nothing the engine writes to fd 1 can corrupt the reply.
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    try:
        request = json.load(sys.stdin)
        reply = _evaluate(request)
    except Exception as exc:  # the parent reports this; the child must always answer
        reply = {"status": "internal_error", "message": f"{type(exc).__name__}: {exc}"}
    with os.fdopen(reply_fd, "w", encoding="utf-8") as out:
        json.dump(reply, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
