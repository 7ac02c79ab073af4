"""What happens when provscan is told to stop (SIGINT, SIGTERM)? It stops cleanly, with exit 3.

The entry points (`python -m provscan` and the `provscan` script, both provscan.__main__.main)
install the handlers before anything heavy is imported. A signal then raises `Interrupted` in
the main thread, wherever it is, so every `finally` and `except BaseException` runs on the way
out (temporary output files removed, hashing threads told to stop), and the entry point prints
one line and exits 3: no traceback, no verdict. The policy engine's child is killed on that
way out (provscan.policy._bounded), and dies with provscan in any case (provscan.policy._child).
A second signal, while provscan is already on its way out, exits at once.

This module imports only the standard library: it is loaded before everything else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

EXIT_INTERRUPTED = 3  # ExitCode.INCOMPLETE: fail closed
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived. A BaseException, like KeyboardInterrupt, so that no
    `except Exception` swallows it (nor click, which turns KeyboardInterrupt into Abort)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def message(signum: int | None) -> str:
    """The one line provscan prints when it was interrupted."""
    named = f" ({signal_name(signum)})" if signum is not None else ""
    return f"provscan: interrupted{named}; no verdict"


class _State:
    armed = False  # handlers installed and main() still running: a signal raises Interrupted
    raised = False  # Interrupted was raised: provscan is on its way out
    deferring = 0  # depth of deferred() blocks in the main thread
    pending: int | None = None  # the signal that arrived inside a deferred() block


_state = _State()


def install() -> None:
    """Handle SIGINT and SIGTERM from now on (main thread only; elsewhere nothing is done)."""
    if threading.current_thread() is not threading.main_thread():
        return
    _state.armed = True
    for signum in SIGNALS:
        signal.signal(signum, _on_signal)


def disarm() -> None:
    """The command is over (its exit status decided): a signal from now on exits 3 at once."""
    _state.armed = False


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _state.raised or not _state.armed:
        _exit_now(signum)
    if _state.deferring:
        if _state.pending is None:
            _state.pending = signum
            return
        _exit_now(signum)  # asked twice: stop waiting for the critical section
    _state.raised = True
    raise Interrupted(signum)


def _exit_now(signum: int) -> None:
    with contextlib.suppress(OSError):
        os.write(2, (message(signum) + "\n").encode())
    os._exit(EXIT_INTERRUPTED)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold an interrupt until the block ends (then raise it): for a short critical section that
    must not be cut in half, such as creating, renaming or removing a temporary file."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers run in the main thread only
        return
    _state.deferring += 1
    try:
        yield
    finally:
        _state.deferring -= 1
        if not _state.deferring and _state.pending is not None:
            signum, _state.pending = _state.pending, None
            _state.raised = True
            raise Interrupted(signum)  # the held interrupt wins over an error of the block
