"""The regopy child cannot exhaust the host (memory, CPU) nor outlive provscan."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provscan.errors import PolicyError
from provscan.policy import _bounded, engine
from provscan.policy._child import EXIT_ORPHANED, limit_args
from provscan.policy.engine import evaluate
from provscan.report import Report
from provscan.resources import default_policy_dir

REPO = Path(__file__).resolve().parents[2]
CLEAN_INPUT = default_policy_dir() / "tests" / "clean_approve" / "input.json"
HEADER = "package provscan.main\n\nimport rego.v1\n\n"
MiB = 1024 * 1024

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc"),
    pytest.mark.slow,  # engine children run to their limits, seconds each
]

# rego-cpp keeps about 450 bytes per number: 5 million of them is about 2 GiB, far past the
# limits below, yet bounded, so a regression cannot exhaust the test machine.
ALLOCATES = HEADER + (
    'deny contains {"rule": "POL-X", "msg": "m"} if {\n  count(numbers.range(0, 5000000)) > 0\n}\n'
)
# 100 million iterations (over a minute), little memory.
SPINS = HEADER + (
    'deny contains {"rule": "POL-X", "msg": "m"} if {\n'
    "  count({1 | some i in numbers.range(1, 10000); some j in numbers.range(1, 10000)}) > 0\n"
    "}\n"
)


def clean_report() -> Report:
    return Report.model_validate(json.loads(CLEAN_INPUT.read_text()))


def make_pack(tmp_path: Path, source: str) -> Path:
    pack = tmp_path / "pack"
    pack.mkdir(exist_ok=True)
    (pack / "main.rego").write_text(source)
    return pack


def test_a_policy_allocating_far_past_the_limit_hits_the_named_memory_limit(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(PolicyError, match=r"exceeded its memory limit of 128 MiB"):
        evaluate(
            clean_report(),
            [make_pack(tmp_path, ALLOCATES)],
            {},
            timeout_s=10,
            memory_limit=128 * MiB,
        )
    assert time.monotonic() - start < 8


def test_the_memory_limit_is_exit_3_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from provscan.cli import main

    monkeypatch.setattr(engine, "DEFAULT_MEMORY_LIMIT", 128 * MiB)
    target = REPO / "fixtures" / "demo" / "tiny-llama"
    args = ["check", str(target), "--policy", str(make_pack(tmp_path, ALLOCATES)), "-q"]
    with pytest.raises(SystemExit) as exited:
        main([*args, "--policy-timeout", "10"])
    assert exited.value.code == 3
    assert "policy evaluation exceeded its memory limit of 128 MiB" in capsys.readouterr().err


@pytest.mark.parametrize("budget_mib", [8, 32, 96])
def test_a_report_too_large_for_the_limit_is_named_wherever_the_child_runs_out(
    budget_mib: int,
) -> None:
    # Depending on the budget, the child runs out while Python parses the request
    # (MemoryError), in rego-cpp outside its C API's catch (std::bad_alloc aborts), or inside
    # it (the call returns "std::bad_alloc" as its error, which must not read as a policy's).
    # The same request passes with the default limit (4 s).
    files = [{"path": f"f{i:08d}", "size": i, "sha256": "0" * 64} for i in range(20_000)]
    source = HEADER + 'warn contains {"rule": "POL-W", "msg": "w"} if count(input.files) > 0\n'
    request = {
        "modules": [["main.rego", source]],
        "data": {},
        "input": {"files": files},
        "query": "data.provscan.main",
    }
    with pytest.raises(PolicyError, match=rf"exceeded its memory limit of {budget_mib} MiB"):
        engine.run_engine(request, 30, memory_limit=budget_mib * MiB)


def test_a_policy_spinning_on_cpu_hits_the_named_cpu_limit(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(PolicyError, match=r"exceeded its CPU-time limit of 1 s"):
        evaluate(clean_report(), [make_pack(tmp_path, SPINS)], {}, timeout_s=30, cpu_limit_s=1)
    assert time.monotonic() - start < 10


def _ends_with(monkeypatch: pytest.MonkeyPatch, code: str) -> str:
    monkeypatch.setattr(engine, "_child_command", lambda: [sys.executable, "-c", code])
    with pytest.raises(PolicyError) as raised:
        evaluate(clean_report(), [default_policy_dir()], {}, timeout_s=5)
    return raised.value.message


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import os; os._exit(90)", r"exceeded its memory limit of 2 GiB"),  # a MemoryError
        ("import os, signal; os.kill(os.getpid(), signal.SIGXCPU)", r"CPU-time limit of 5 s"),
        (
            "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
            r"killed \(SIGKILL\): it exceeded its CPU-time limit of 5 s, or the system ran out",
        ),
    ],
)
def test_each_way_a_limit_ends_the_child_is_named(
    monkeypatch: pytest.MonkeyPatch, code: str, expected: str
) -> None:
    assert re.search(expected, _ends_with(monkeypatch, code))


def test_an_abort_is_the_memory_limit_only_when_the_engine_could_not_allocate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bad_alloc = "terminate called after throwing an instance of 'std::bad_alloc'"
    code = f"import os, sys; sys.stderr.write({bad_alloc!r}); sys.stderr.flush(); os.abort()"
    message = _ends_with(monkeypatch, code)
    assert message == "policy evaluation exceeded its memory limit of 2 GiB"
    message = _ends_with(monkeypatch, "import os; os.abort()")
    assert message.startswith("policy engine crashed (signal 6, SIGABRT)")


def test_a_child_whose_parent_is_already_gone_does_not_run() -> None:
    # Pid 1 is not its parent: as if provscan died before the child armed its death signal.
    request = {"modules": [], "data": {}, "input": {}, "query": "data.provscan.main"}
    proc = subprocess.run(  # noqa: S603
        [*engine._child_command(), *limit_args(1, 256 * MiB, 5)],
        input=json.dumps(request).encode(),
        capture_output=True,
        cwd=REPO,
        timeout=30,
        check=False,
    )
    assert proc.returncode == EXIT_ORPHANED
    assert proc.stdout == b""


def test_engines_still_running_at_exit_are_killed() -> None:
    # The atexit hook, for an engine a thread other than the exiting one still waits on.
    results: list[object] = []

    def run() -> None:
        sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
        results.append(_bounded.run_bounded(sleeper, b"", 60, 1024, REPO))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not _bounded._running and time.monotonic() < deadline:
        time.sleep(0.01)
    _bounded._kill_running()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert isinstance(results[0], _bounded.Completed)
    assert results[0].returncode == -signal.SIGKILL


# ---------------------------------------------------------------- provscan itself goes away

_PARENT = """
import json, signal, sys
from pathlib import Path
from provscan.policy.engine import evaluate
from provscan.report import Report

signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
report = Report.model_validate(json.loads(Path(sys.argv[1]).read_text()))
evaluate(report, [Path(sys.argv[2])], {}, timeout_s=300)
"""


def _stat(pid: int) -> tuple[str, int] | None:
    """The process's state letter and parent pid, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1])


def _gone(pid: int) -> bool:
    stat = _stat(pid)
    return stat is None or stat[0] in ("Z", "X")  # a zombie no longer runs


def _engine_child(parent: int) -> int | None:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _stat(int(entry))
        if stat is None or stat[1] != parent:
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if b"provscan.policy._child" in cmdline:
            return int(entry)
    return None


@pytest.fixture
def evaluating(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A provscan (the parent) evaluating a slow pack, and the pid of its engine child."""
    parent = subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", _PARENT, str(CLEAN_INPUT), str(make_pack(tmp_path, SPINS))],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    child = None
    try:
        deadline = time.monotonic() + 30
        while child is None and parent.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            child = _engine_child(parent.pid)
        assert child is not None, "the engine child did not start"
        time.sleep(0.5)  # well into the evaluation
        assert not _gone(child)
        yield parent, child
    finally:
        parent.kill()
        parent.wait()
        if child is not None and not _gone(child):
            os.killpg(child, signal.SIGKILL)  # the engine outlived the test: clean up


def _limits(pid: int) -> dict[str, list[str]]:
    rows = Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]
    return {row[:26].strip(): row[26:].split() for row in rows}


def test_the_running_child_carries_its_limits(
    evaluating: tuple[subprocess.Popen[bytes], int],
) -> None:
    parent, child = evaluating
    limits = _limits(child)
    # The CPU limit defaults to the timeout (300 s), with a hard stop a second later.
    assert limits["Max cpu time"][:2] == ["300", "301"]
    assert limits["Max core file size"][:2] == ["0", "0"]
    # The address space: what the engine's library maps when loaded, plus 2 GiB.
    soft = int(limits["Max address space"][0])
    assert soft > 2 * 1024 * MiB
    status = Path(f"/proc/{child}/status").read_text()
    size = next(int(line.split()[1]) * 1024 for line in status.splitlines() if "VmSize" in line)
    assert size < soft <= size + 2 * 1024 * MiB
    # Its own session: a terminal's Ctrl-C reaches provscan only.
    assert os.getsid(child) == child != os.getsid(parent.pid)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_the_child_dies_with_its_parent(
    evaluating: tuple[subprocess.Popen[bytes], int], signum: signal.Signals
) -> None:
    # SIGKILL and SIGTERM (no handler outside the CLI) end the parent at once: the child's
    # parent-death signal kills it. SIGINT raises KeyboardInterrupt: the parent kills it.
    parent, child = evaluating
    os.kill(parent.pid, signum)
    parent.wait(timeout=10)
    deadline = time.monotonic() + 2
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _gone(child), f"the engine child outlived its parent ({signum.name})"
