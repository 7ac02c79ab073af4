"""How is an output written so that a reader never sees half of it, and the host is never harmed?

- `-` (or /dev/stdout, /dev/fd/1, /proc/self/fd/1: provscan's own standard output) is
  standard output. At most one output may take it (`claim_stdout`).
- A path that exists and is not a regular file, itself or through symlinks (a character
  device such as /dev/null, a FIFO, a socket, /dev/stderr), is opened as it is and the output
  streamed into it: never renamed over, never removed, never created. A write error (ENOSPC
  from /dev/full) is an OutputError naming the path. A block device (a disk) is refused.
- Anything else (a regular file, a path that does not exist yet) is written atomically: a
  temporary file in the same directory, fsync, then a rename over the path, so a reader sees
  the old file or the whole new one. The file gets the mode any new file gets, 0o666 less the
  umask (0644 under umask 022): the kernel applies the umask when the temporary file is made.
  A symlink to a regular file is replaced by the output (the file it pointed to is left
  alone), as the rename does; a symlink through an open descriptor (/dev/fd/N,
  /proc/PID/fd/N) is written through instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from provscan import interrupts
from provscan.errors import OutputError, UsageError

STDOUT = "-"

_FD_LINK = re.compile(r"/proc/(?P<pid>\d+)(?:/task/\d+)?/fd/(?P<fd>\d+)")
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_STREAM_FLAGS = os.O_WRONLY | getattr(os, "O_NOCTTY", 0) | _CLOEXEC  # no O_CREAT, no O_TRUNC
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | _CLOEXEC


class OutputPath(click.Path):
    """An output option's value: a Path, or STDOUT for `-` (a file named "-" is given as ./-)."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False, allow_dash=True, path_type=str)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, Path):
            return value
        converted = os.fsdecode(super().convert(value, param, ctx))
        return STDOUT if converted == STDOUT else Path(converted)


def is_stdout(target: Path | str) -> bool:
    """Whether an output goes to this process's standard output: `-`, /dev/stdout and the like."""
    if target == STDOUT:
        return True
    return _open_descriptor(Path(target)) == (os.getpid(), 1)


def claim_stdout(outputs: Iterable[tuple[str, Path | str | None]]) -> str | None:
    """Which of the (flag, value) outputs writes to standard output, if any; a UsageError when
    more than one would (their documents would run together)."""
    claims = [flag for flag, value in outputs if value is not None and is_stdout(value)]
    if len(claims) > 1:
        names = f"{', '.join(claims[:-1])} and {claims[-1]}"
        raise UsageError(
            f"{names} {'both' if len(claims) == 2 else 'all'} write to standard output (-)",
            "write all but one of them to a file: stdout carries one document",
        )
    return claims[0] if claims else None


def write_output(target: Path | str, text: str) -> None:
    """Write one output to `target` as the module docstring says; OutputError when it cannot."""
    if is_stdout(target):
        _write_stdout(text)
        return
    path = Path(target)
    descriptor = _open_descriptor(path)
    try:
        st: os.stat_result | None = os.stat(path)  # follows symlinks: /dev/null, a FIFO ...
    except OSError:
        st = None  # not there yet (or unreachable: the atomic write says why)
    if st is not None and stat.S_ISBLK(st.st_mode):
        raise OutputError(f"{path}: a block device (a disk): provscan writes no output onto one")
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{path}: cannot write output (Is a directory)")
    if descriptor is not None or (st is not None and not stat.S_ISREG(st.st_mode)):
        _write_stream(path, text.encode("utf-8"), descriptor)
    else:
        write_atomically(path, text)


def make_output_dir(directory: Path, flag: str) -> None:
    """Create a folder that outputs go into (and its parents); OutputError (exit 3) naming the
    flag when it cannot be made."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{flag} {directory}: cannot create it ({exc.strerror or exc})") from exc


def write_atomically(path: Path, text: str) -> None:
    """Write the whole file or nothing: a temporary file beside it, fsync, then a rename.

    An interrupt (SIGINT, SIGTERM) is held until the file is written or the temporary file
    removed, so neither a partial file nor a temporary one is left behind.
    """
    directory = os.path.dirname(os.path.abspath(path))
    data = text.encode("utf-8")
    try:
        with interrupts.deferred():
            tmp, fd = _create_temp(directory, path.name)
            try:
                try:
                    _write_all(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            _fsync_directory(directory)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write output ({exc.strerror or exc})") from exc


def _create_temp(directory: str, name: str) -> tuple[str, int]:
    # Created with mode 0o666: the kernel takes the umask off, as for any new file.
    for _ in range(100):
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}")
        try:
            return tmp, os.open(tmp, _TEMP_FLAGS, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(f"no unused temporary name beside {name}")


def _fsync_directory(directory: str) -> None:
    """Make the rename durable; some filesystems cannot sync a directory, which is no error."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_stream(path: Path, data: bytes, descriptor: tuple[int, int] | None) -> None:
    """Stream into a device, FIFO, socket or open descriptor: opened as it is, never replaced.
    A FIFO without a reader blocks here until one opens it (an interrupt still ends it)."""
    try:
        if descriptor is not None and descriptor[0] == os.getpid():
            # One of provscan's own descriptors (/dev/stderr): written through it, at its
            # offset, after what provscan already wrote there.
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            fd = os.dup(descriptor[1])
        else:
            fd = os.open(path, _STREAM_FLAGS)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write output ({exc.strerror or exc})") from exc


def _write_stdout(text: str) -> None:
    data = text.encode("utf-8")
    try:
        sys.stdout.flush()
        binary = getattr(sys.stdout, "buffer", None)
        if binary is not None:
            binary.write(data)
            binary.flush()
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
    except OSError as exc:
        _discard_stdout()
        raise OutputError(f"standard output: cannot write output ({exc.strerror or exc})") from exc


def _discard_stdout() -> None:
    """Point fd 1 at /dev/null after a failed write, so that the interpreter's own flush at exit
    does not fail again (and turn the exit status into 120)."""
    with contextlib.suppress(Exception):
        fileno = sys.stdout.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fileno)
        finally:
            os.close(devnull)


def _open_descriptor(path: Path) -> tuple[int, int] | None:
    """(pid, fd) when `path` reaches its file through /proc/PID/fd/FD (/dev/stdout, /dev/fd/1,
    /proc/self/fd/1): a file some process holds open, not a name in a directory. Linux only;
    None elsewhere, and for any ordinary path."""
    current = os.path.abspath(path)
    for _ in range(40):  # the kernel's limit on links followed in one lookup
        try:
            where = os.path.join(
                os.path.realpath(os.path.dirname(current)), os.path.basename(current)
            )
            match = _FD_LINK.fullmatch(where)
            if match is not None:
                return int(match["pid"]), int(match["fd"])
            if not os.path.islink(where):
                return None
            current = os.path.join(os.path.dirname(where), os.readlink(where))
        except OSError:
            return None
    return None
