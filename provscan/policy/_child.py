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
- argv: ``--parent PID --memory BYTES --cpu SECONDS`` (see `limit_args`; without them, as
  when run by hand, there are no limits). Before it reads the request, the child arranges to
  be killed with its parent and caps its own CPU time and address space; `bounded_self` says
  how, and why in that order. Running out of memory ends it with exit status `EXIT_MEMORY`
  (a MemoryError, or rego-cpp's C API returning ``std::bad_alloc``) or SIGABRT with
  ``std::bad_alloc`` on stderr (rego-cpp); running out of CPU time, with SIGXCPU.

This is the only module that imports regopy.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from provscan.policy.rego_errors import describe_rego_errors

# Exit statuses the parent (provscan.policy.engine) tells apart from an engine crash.
EXIT_MEMORY = 90  # a MemoryError: the address-space limit was reached in Python code
EXIT_ORPHANED = 91  # the parent was already gone when the child started: nobody to answer
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _engine_error(raw: str) -> str:
    """An error text from rego-cpp's C API, which catches a failed allocation and returns its
    what(): that one is the memory limit (MemoryError), not a fault of the policy."""
    if raw.strip() == "std::bad_alloc":
        raise MemoryError(raw)
    return raw


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
            raw = _engine_error(str(exc.args[0]) if exc.args else "")
            # add_module parses the module (rego-cpp's parse and structure passes).
            message = describe_rego_errors(raw, sources, "parse error")
            if name not in message:
                message = f"{name}: {message}"
            return {"status": "load_error", "engine_version": version, "message": message}
    try:
        interp.add_data_json(json.dumps(request["data"]))
        # set_input_term, not set_input: the latter passes strings as C strings and
        # silently truncates them at the first NUL (a hostile file name could hide a suffix).
        interp.set_input_term(json.dumps(request["input"], ensure_ascii=True))
    except regopy.RegoError as exc:
        detail = _engine_error(str(exc.args[0]) if exc.args else "")
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
            detail = _engine_error(rego_shared.rego_get_error(interp._impl))
            message = describe_rego_errors(detail, sources) if detail else "no detail given"
            return {"status": "eval_error", "engine_version": version, "message": message}
        text = rego_shared.rego_output_string(impl)
    finally:
        rego_shared.rego_free_output(impl)
    if text.strip() == "undefined":
        return {"status": "ok", "engine_version": version, "result": None}
    if text.lstrip().startswith("("):
        # An "ok" output can still carry an error, e.g. a call to an unknown function.
        message = describe_rego_errors(_engine_error(text), sources)
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


def limit_args(parent: int, memory: int, cpu_s: int) -> list[str]:
    """The child's arguments: the parent's pid, the address-space budget, the CPU seconds."""
    return ["--parent", str(parent), "--memory", str(memory), "--cpu", str(cpu_s)]


def _parse_limits(argv: Sequence[str]) -> tuple[int, int, int]:
    values = dict(zip(argv[::2], argv[1::2], strict=True))
    return int(values["--parent"]), int(values["--memory"]), int(values["--cpu"])


def _die_with_parent(parent: int) -> None:
    """Be sent SIGKILL when the parent dies, however it dies (SIGKILL included).

    The parent also kills the child on its way out (provscan.policy._bounded), but a parent
    killed outright runs no code. Linux only; elsewhere the CPU-time limit still ends an
    orphan. The death signal follows the thread that forked, which is the thread that then
    waits for this child, so it cannot fire early.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        armed = libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        armed = False
    # A parent that died before prctl ran sent nothing: the child now has another parent.
    if armed and os.getppid() != parent:
        os._exit(EXIT_ORPHANED)


def _vm_size() -> int | None:
    """This process's mapped address space in bytes (Linux /proc), or None."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _set_limit(kind: int, soft: int, hard: int) -> None:
    import resource

    _, current = resource.getrlimit(kind)
    if current != resource.RLIM_INFINITY:
        soft, hard = min(soft, current), min(hard, current)
    resource.setrlimit(kind, (soft, hard))


def bounded_self(memory: int, cpu_s: int) -> None:
    """Cap this process's CPU time, load regopy, then cap its address space: in that order.

    Set here, by the child itself, rather than by a preexec_fn (which runs between fork
    and exec in a copy of a parent that may hold other threads' locks) or by prlimit from
    the parent (which would race with the child's first allocations).

    CPU time is capped first: SIGXCPU at ``cpu_s``, SIGKILL a second later. No core file.

    The address space is capped right after the engine's library is loaded and before any
    request is read: rego-cpp's allocator (snmalloc) reserves 256 GiB of address space for
    its page map when the library loads (reserved, not memory), and fails to initialise
    ("Failed to initialise snmalloc", SIGABRT) under any RLIMIT_AS smaller than that. So
    ``memory`` is a budget on top of what the loaded library maps: every Rego value the
    engine then allocates is a new mapping and counts against it. An allocation past it
    raises MemoryError in Python, or std::bad_alloc in rego-cpp: that aborts the process,
    or comes back from rego-cpp's C API as an error text (see `_engine_error`).
    """
    try:
        import resource
    except ImportError:  # not POSIX: the parent's timeout still bounds the child
        return
    _set_limit(resource.RLIMIT_CORE, 0, 0)  # SIGXCPU and SIGABRT would dump core
    _set_limit(resource.RLIMIT_CPU, cpu_s, cpu_s + 1)
    import regopy  # noqa: F401 - loads the library (and its reservation); reads no input

    loaded = _vm_size()
    if loaded is not None:
        _set_limit(resource.RLIMIT_AS, loaded + memory, loaded + memory)


def exec_bounded(argv: Sequence[str]) -> int:
    """``--parent P --memory M --cpu C --exec PROGRAM ARGS...``: bound this process, then
    become PROGRAM (the opa binary). The parent-death signal, the CPU-time limit and "no
    core file" survive execve. The address space is not capped: Go reserves far more address
    space than it uses, so the memory budget is handed to OPA's runtime as GOMEMLIMIT, a
    soft limit its garbage collector keeps to; the CPU limit and the timeout still end it."""
    split = list(argv).index("--exec")
    parent, memory, cpu_s = _parse_limits(argv[:split])
    program = list(argv[split + 1 :])
    _die_with_parent(parent)
    try:
        import resource
    except ImportError:  # not POSIX: the parent's timeout still bounds the program
        pass
    else:
        _set_limit(resource.RLIMIT_CORE, 0, 0)
        _set_limit(resource.RLIMIT_CPU, cpu_s, cpu_s + 1)
    os.environ["GOMEMLIMIT"] = f"{memory}B"
    os.execv(program[0], program)  # noqa: S606 - the parent built the argv, no shell


def main(argv: Sequence[str] = ()) -> int:
    if "--exec" in argv:
        return exec_bounded(argv)
    limits = _parse_limits(argv) if argv else None
    if limits is not None:
        _die_with_parent(limits[0])
    # Keep the real stdout for the reply, then point fd 1 at stderr before regopy is
    # imported, so nothing the engine writes to fd 1 can corrupt the reply.
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    if limits is not None:
        bounded_self(limits[1], limits[2])
    try:
        request = json.load(sys.stdin)
        reply = _evaluate(request)
    except MemoryError:
        # Say so without allocating: the parent names the memory limit.
        os._exit(EXIT_MEMORY)
    except Exception as exc:  # the parent reports this; the child must always answer
        reply = {"status": "internal_error", "message": f"{type(exc).__name__}: {exc}"}
    with os.fdopen(reply_fd, "w", encoding="utf-8") as out:
        json.dump(reply, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
