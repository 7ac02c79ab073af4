"""Outputs never harm the host: devices and FIFOs are written into, never replaced; files get the
umask's mode; `-` is standard output, for one output at most."""

from __future__ import annotations

import errno
import json
import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fixtures.models import DEMO_DIR


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from an empty directory: a `-` taken for a file name would show up here."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def umask() -> Iterator[Callable[[int], int]]:
    """os.umask, with the process's umask put back after the test."""
    previous = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(previous)


def _char_device(path: str) -> tuple[int, int]:
    st = os.stat(path)
    assert stat.S_ISCHR(st.st_mode), f"{path} is no longer a character device"
    return os.major(st.st_rdev), os.minor(st.st_rdev)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="only root can replace /dev/null (the old atomic rename did): as another user the "
    "rename fails whatever provscan does, so the test would prove nothing",
)
def test_dev_null_stays_a_character_device(cli) -> None:
    before = _char_device("/dev/null")
    result = cli("check", DEMO_DIR, "-q", "--json", "/dev/null", "--bom", "/dev/null")
    assert result.code == 0, result.err
    assert _char_device("/dev/null") == before


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
def test_dev_full_is_exit_3_naming_it(cli) -> None:
    before = _char_device("/dev/full")
    result = cli("check", DEMO_DIR, "-q", "--json", "/dev/full")
    assert result.code == 3, result.err
    assert "/dev/full" in result.err
    assert os.strerror(errno.ENOSPC) in result.err  # written to, not renamed over
    assert "Traceback" not in result.err
    assert _char_device("/dev/full") == before


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifo_receives_the_whole_report_and_stays_a_fifo(cli, tmp_path: Path) -> None:
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as handle:
            received.append(handle.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    result = cli("check", DEMO_DIR, "-q", "--json", fifo)
    reader.join(timeout=30)
    assert result.code == 0, result.err
    assert not reader.is_alive(), "nothing was written into the FIFO"
    report = json.loads(received[0])
    assert report["verdict"]["decision"] == "approve"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["report.fifo"]


def test_files_get_the_mode_the_umask_gives(cli, tmp_path: Path, umask) -> None:
    report = tmp_path / "report.json"
    for mask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        umask(mask)
        before = report.stat().st_ino if report.exists() else None
        result = cli("check", DEMO_DIR, "-q", "--json", report)
        assert result.code == 0, result.err
        assert stat.S_IMODE(report.stat().st_mode) == mode, f"umask {mask:03o}"
        # An existing file is replaced by a rename (a new inode), never rewritten in place.
        assert report.stat().st_ino != before
        assert json.loads(report.read_text())["verdict"]["decision"] == "approve"
        assert sorted(os.listdir(tmp_path)) == ["report.json"]  # no temporary file left


def test_json_dash_puts_the_report_alone_on_stdout(cli, in_tmp: Path) -> None:
    result = cli("check", DEMO_DIR, "-q", "--json", "-")
    assert result.code == 0, result.err
    assert json.loads(result.out)["verdict"]["decision"] == "approve"
    assert "VERDICT: APPROVE" in result.err  # the summary for people moved to stderr
    assert os.listdir(in_tmp) == []


def test_dev_stdout_is_stdout_too(cli, in_tmp: Path) -> None:
    result = cli("check", DEMO_DIR, "-q", "--sarif", "/dev/stdout")
    assert result.code == 0, result.err
    assert json.loads(result.out)["version"] == "2.1.0"
    assert "VERDICT: APPROVE" in result.err


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--json", "-", "--bom", "-"), ("--json", "--bom")),
        (("--format", "json", "--sarif", "-"), ("--format json", "--sarif")),
        (("--markdown", "-", "--html", "/dev/stdout"), ("--markdown", "--html")),
    ],
)
def test_two_outputs_on_stdout_are_a_usage_error(cli, in_tmp: Path, args, named) -> None:
    result = cli("check", DEMO_DIR, "-q", *args)
    assert result.code == 2, result.out + result.err
    for flag in named:
        assert flag in result.err
    assert "standard output" in result.err
    assert result.out == ""
    assert os.listdir(in_tmp) == []


def test_diff_json_dash(cli, in_tmp: Path) -> None:
    report = in_tmp / "report.json"
    assert cli("check", DEMO_DIR, "-q", "--json", report).code == 0
    result = cli("diff", report, report, "--json", "-")
    assert result.code == 0, result.err
    assert isinstance(json.loads(result.out), dict)
    assert sorted(os.listdir(in_tmp)) == ["report.json"]
    assert cli("diff", report, report, "--json", "-", "--format", "json").code == 2


def test_a_signature_is_never_written_to_stdout(cli, in_tmp: Path) -> None:
    bom = in_tmp / "bom.json"
    bom.write_text("{}")
    result = cli("sign-bom", bom, "--signature", "-")
    assert result.code == 2, result.err
    assert "--signature -" in result.err
    assert sorted(os.listdir(in_tmp)) == ["bom.json"]
