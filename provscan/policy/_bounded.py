"""How does provscan run an external engine so that neither its time nor its output is unbounded?

The engine runs in its own session (process group), so a terminal's Ctrl-C reaches only
provscan, and provscan kills the whole group whenever it stops waiting for any reason: a
timeout, too much output, an exception (KeyboardInterrupt, SystemExit) in the waiting
thread, or interpreter exit (atexit, for engines started by other threads). A provscan
killed outright runs none of this: the regopy child, and the launcher that becomes the opa
binary, arrange their own death with their parent (provscan.policy._child).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

_CHUNK = 64 * 1024
# A verdict is a few KiB of JSON; an engine writing more is broken or hostile (Rego print()).
MAX_ENGINE_OUTPUT = 16 * 1024 * 1024
# Run children from the directory that holds the provscan package: `-m` puts the working
# directory first on sys.path, and the user's (possibly the scanned model's) directory
# must not be able to shadow regopy or json with a file of its own.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def child_command() -> list[str]:
    """How provscan starts its policy child (provscan.policy._child)."""
    return [sys.executable, "-m", "provscan.policy._child"]


def child_env() -> dict[str, str]:
    # Also on PYTHONPATH, so a source checkout works even when PYTHONSAFEPATH is set.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    return env


def tail(raw: bytes, limit: int = 2000) -> str:
    """The end of an engine's stderr, as text: where its error message is."""
    return raw.decode("utf-8", errors="replace").strip()[-limit:]


class CommandTimeout(Exception):
    """The command ran past its time limit and was killed."""


class OutputTooLarge(Exception):
    """The command wrote more than the limit to stdout or stderr and was killed."""


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: bytes


def _kill(proc: subprocess.Popen[bytes]) -> None:
    # The command runs in its own session: kill the whole group, so a wrapper script's
    # children (a hung `opa` behind a shell script) go too.
    if proc.returncode is not None:
        return  # reaped: its pid (and group id) may already belong to someone else
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(OSError):
            proc.kill()


# Engines started and not yet reaped, for the atexit hook.
_running: set[subprocess.Popen[bytes]] = set()
_running_lock = threading.Lock()


@atexit.register
def _kill_running() -> None:
    with _running_lock:
        procs = list(_running)
    for proc in procs:
        _kill(proc)


def _drain(
    stream: IO[bytes],
    limit: int,
    sink: list[bytes],
    over: threading.Event,
    proc: subprocess.Popen[bytes],
) -> None:
    total = 0
    while chunk := stream.read1(_CHUNK):  # type: ignore[attr-defined]
        total += len(chunk)
        if total > limit:
            over.set()
            _kill(proc)
            return
        sink.append(chunk)


def _feed(stream: IO[bytes], data: bytes) -> None:
    # OSError (a broken pipe included): the command stopped reading; its exit status says why.
    with contextlib.suppress(OSError):
        stream.write(data)
    with contextlib.suppress(OSError):
        stream.close()


def run_bounded(
    argv: Sequence[str],
    stdin: bytes,
    timeout_s: float,
    max_output: int,
    cwd: Path,
    env: Mapping[str, str] | None = None,
) -> Completed:
    """Run ``argv`` (no shell) with ``stdin``; kill it past ``timeout_s`` or ``max_output`` bytes.

    Raises OSError when it cannot be started, CommandTimeout or OutputTooLarge.
    """
    proc = subprocess.Popen(  # noqa: S603 - argv is built by the caller, no shell
        list(argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
        start_new_session=True,
    )
    with _running_lock:
        _running.add(proc)
    try:
        return _supervise(proc, stdin, timeout_s, max_output)
    finally:
        # Reached with the engine still running only when the wait was interrupted.
        if proc.returncode is None:
            _kill(proc)
            proc.wait()
        with _running_lock:
            _running.discard(proc)


def _supervise(
    proc: subprocess.Popen[bytes], stdin: bytes, timeout_s: float, max_output: int
) -> Completed:
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out: list[bytes] = []
    err: list[bytes] = []
    over = threading.Event()
    threads = [
        threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True),
        threading.Thread(
            target=_drain, args=(proc.stdout, max_output, out, over, proc), daemon=True
        ),
        threading.Thread(
            target=_drain, args=(proc.stderr, max_output, err, over, proc), daemon=True
        ),
    ]
    for thread in threads:
        thread.start()
    try:
        returncode = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        _kill(proc)
        proc.wait()
        raise CommandTimeout(f"killed after {timeout_s:g} s") from exc
    except BaseException:
        _kill(proc)  # KeyboardInterrupt, SystemExit: before the joins below wait on its pipes
        raise
    finally:
        for thread in threads:
            # A grandchild that inherited the pipes could keep them open: do not wait forever.
            thread.join(timeout=1.0)
    if over.is_set():
        raise OutputTooLarge(f"wrote more than {max_output} bytes")
    return Completed(returncode, b"".join(out), b"".join(err))
