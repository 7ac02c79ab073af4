"""SIGINT and SIGTERM at any moment: exit 3, one line on stderr naming the signal, no traceback,
no output file (nor temporary file) left, no child process left, and within two seconds.

Each case runs `python -m provscan check` in a process of its own (a signal needs one), with
--json pointed at a file in an empty directory, and signals it at one moment: during start-up
(the imports), while a 4 GiB sparse file is hashed, or while the policy engine's child runs.
A signal while an output file is written is held until the file is whole."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fixtures.models import DEMO_DIR
from tests.conftest import REPO

pytestmark = [
    pytest.mark.skipif(
        not sys.platform.startswith("linux"), reason="watches the process through /proc (Linux)"
    ),
    pytest.mark.slow,  # seven processes, about ten seconds in all
]

PROMPT_S = 2.0  # how long provscan may take to end after the signal
BIG = "zeros.bin"  # sparse: hashing it reads 4 GiB of zeros, for seconds


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (state, ppid, ...), None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return raw[raw.rindex(b")") + 2 :].decode().split()


def _descendants(pid: int) -> set[tuple[int, str]]:
    """(pid, start time) of every live process below `pid`, from /proc."""
    parents: dict[int, list[tuple[int, str]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            # fields[1]: ppid; fields[19]: start time (the pid with it names one process).
            parents.setdefault(int(fields[1]), []).append((int(entry), fields[19]))
    found: set[tuple[int, str]] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child[0])
    return found


def _running(process: tuple[int, str]) -> bool:
    fields = _stat(process[0])
    return fields is not None and fields[19] == process[1] and fields[0] not in ("Z", "X")


def _handles_sigterm(pid: int) -> bool:
    """provscan's signal handlers installed (SIGTERM caught: Python leaves it default)"""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


def _reading(name: str) -> Callable[[int], bool]:
    """Whether the process has `name` open (hashing it, once it has been open a while)."""

    def check(pid: int) -> bool:
        """the file being hashed open"""
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            targets = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds]
        except OSError:
            return False
        return any(target.endswith(f"/{name}") for target in targets)

    return check


def _has_child(pid: int) -> bool:
    """a child process started (the policy engine's)"""
    return bool(_descendants(pid))


@pytest.fixture(scope="module")
def big_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = tmp_path_factory.mktemp("big") / "tiny-llama"
    shutil.copytree(DEMO_DIR, model)
    with open(model / BIG, "wb") as handle:
        handle.truncate(4 * 2**30)
    return model


def _interrupt(
    model: Path, out_dir: Path, signum: int, moment: Callable[[int], bool], settle: float = 0.0
) -> tuple[int, str, float, set[tuple[int, str]]]:
    """Start provscan, wait for `moment`, send `signum`; (exit code, stderr, seconds from the
    signal to the exit, every descendant seen up to the signal)."""
    err = out_dir.parent / "stderr"
    with open(err, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "provscan", "check", str(model), "-q"]
            + ["--json", str(out_dir / "report.json")],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        seen: set[tuple[int, str]] = set()
        start = time.monotonic()
        while not moment(proc.pid):
            assert proc.poll() is None, f"ended before {moment.__doc__}: {err.read_text()}"
            assert time.monotonic() < start + 60, f"never came: {moment.__doc__}"
            seen |= _descendants(proc.pid)
            time.sleep(0.01)
        if settle:
            time.sleep(settle)
            assert moment(proc.pid), f"passed already: {moment.__doc__}"
        seen |= _descendants(proc.pid)
        sent = time.monotonic()
        proc.send_signal(signum)
        seen |= _descendants(proc.pid)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"provscan still runs 30 s after {signal.Signals(signum).name}")
        return code, err.read_text(), time.monotonic() - sent, seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _assert_clean_exit(
    result: tuple[int, str, float, set[tuple[int, str]]], signum: int, out_dir: Path
) -> None:
    code, stderr, took, seen = result
    name = signal.Signals(signum).name
    assert code == 3, stderr
    assert "Traceback" not in stderr, stderr
    assert f"provscan: interrupted ({name})" in stderr, stderr
    assert took < PROMPT_S, f"took {took:.1f} s to end after {name}"
    assert os.listdir(out_dir) == [], "an output or temporary file was left"
    time.sleep(0.1)  # a child killed as provscan ended may take a moment to go
    assert not [p for p in seen if _running(p)], "a child process outlived provscan"


SIGNALS = [signal.SIGINT, signal.SIGTERM]


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_interrupt_during_start_up(tmp_path: Path, signum: int) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    # As soon as the handlers are in: provscan is still importing click, pydantic and the rest.
    result = _interrupt(DEMO_DIR, out_dir, signum, _handles_sigterm)
    _assert_clean_exit(result, signum, out_dir)


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_interrupt_while_hashing(big_model: Path, tmp_path: Path, signum: int) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    # Open for 0.3 s: the hashing threads are reading it (not the sniffer's quick look).
    result = _interrupt(big_model, out_dir, signum, _reading(BIG), settle=0.3)
    _assert_clean_exit(result, signum, out_dir)


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_interrupt_while_the_policy_engine_runs(tmp_path: Path, signum: int) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = _interrupt(DEMO_DIR, out_dir, signum, _has_child)
    assert result[3], "no child process was seen"
    _assert_clean_exit(result, signum, out_dir)


_WRITE_INTERRUPTED = """
import os, signal, sys
from pathlib import Path
from provscan import atomic, interrupts

interrupts.install()
write_all = atomic._write_all

def signalled_midway(fd, data):
    os.kill(os.getpid(), signal.SIGTERM)  # handled at the next bytecode: mid-write
    write_all(fd, data[:10])
    write_all(fd, data[10:])

atomic._write_all = signalled_midway
try:
    atomic.write_output(Path(sys.argv[1]), "x" * 100_000)
except interrupts.Interrupted as exc:
    print(signal.Signals(exc.signum).name)
"""


def test_interrupt_while_an_output_is_written_keeps_it_whole(tmp_path: Path) -> None:
    """The signal is held until the atomic write is over: the whole file, no temporary one."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", _WRITE_INTERRUPTED, str(out_dir / "report.json")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "SIGTERM"
    assert os.listdir(out_dir) == ["report.json"]
    assert (out_dir / "report.json").read_text() == "x" * 100_000
