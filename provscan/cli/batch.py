"""`provscan check T1 T2 ...`: many targets, each decided on its own, one summary at the end.

Each target is checked exactly as `provscan check TARGET` would (the same function, the same
flags), in this process or, with --jobs N, in N worker processes: a target that crashes,
exhausts memory or hangs its parser takes down only its own worker's result. One target
failing never stops the others; it is a row with its error and exit code 3 (or 2).
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click

from provscan.atomic import STDOUT, make_output_dir, write_output
from provscan.cli import summary, term
from provscan.cli.checking import check_one, exit_code, show_progress
from provscan.cli.outputs import FLAG_OF, OutputFormat, OutputRequest, render_outputs
from provscan.cli.settings import CheckSettings
from provscan.cli.summary import Row
from provscan.errors import ExitCode, ProvscanError, UsageError
from provscan.limits import MiB
from provscan.visible import visible

# A registry's list of models: thousands of lines at most.
MAX_TARGETS_FILE_BYTES = 4 * MiB
MAX_TARGETS = 10_000
# The report, AI-BOM and SARIF of each target, under --output-dir.
OUTPUT_SUFFIXES = {
    OutputFormat.JSON: ".report.json",
    OutputFormat.CYCLONEDX: ".cdx.json",
    OutputFormat.SARIF: ".sarif.json",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def read_targets(path: Path) -> list[str]:
    """One target per line; blank lines and lines starting with '#' are skipped. Relative
    paths are relative to the working directory, as for targets on the command line."""
    # Imported here: the diff's reader loads the report model (heavy on the `--help` path).
    from provscan.diff.fields import BadInput
    from provscan.diff.load import read_bounded

    try:
        data = read_bounded(path, MAX_TARGETS_FILE_BYTES, "a list of targets")
    except BadInput as exc:
        raise UsageError(f"--targets-from {path}: {exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"--targets-from {path}: not UTF-8 text (byte {exc.start})") from exc
    targets = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if any(ord(c) < 32 or ord(c) == 127 for c in line):
            raise UsageError(
                f"--targets-from {path}:{number}: a control character in the target name"
            )
        targets.append(line)
    if len(targets) > MAX_TARGETS:
        raise UsageError(f"--targets-from {path}: more than {MAX_TARGETS:,} targets")
    return targets


def unique(targets: Sequence[str]) -> list[str]:
    """The targets in order, each once (a target named twice would write its files twice)."""
    return list(dict.fromkeys(targets))


def output_name(target: str) -> str:
    """A file-name-safe name for a target, the same on every run: a readable part and a digest
    of the target itself, so that two models both called `model` do not overwrite each other."""
    if target.startswith("hf://"):
        readable = target[len("hf://") :].replace("/", "--")
        canonical = target
    else:
        path = Path(target).expanduser().absolute()
        readable = path.name or "model"
        canonical = str(path)
    slug = _UNSAFE.sub("-", readable).strip("-.")[:60] or "model"
    return f"{slug}-{hashlib.sha256(canonical.encode()).hexdigest()[:10]}"


def output_paths(output_dir: Path, name: str) -> dict[OutputFormat, Path | str]:
    return {kind: output_dir / f"{name}{suffix}" for kind, suffix in OUTPUT_SUFFIXES.items()}


def check_target(target: str, name: str, settings: CheckSettings, output_dir: Path | None) -> Row:
    """Check one target and write its outputs; every failure becomes the row's error.

    Runs in a worker process with --jobs: module-level, its arguments plain data."""
    try:
        report = check_one(target, settings, progress=False)
        assert report.verdict is not None
        written: list[str] = []
        if output_dir is not None:
            outputs = render_outputs(report, output_paths(output_dir, name))
            for path, text in outputs:
                write_output(path, text)
                written.append(str(path))
        verdict = report.verdict
        return Row(
            input=target,
            target=target,
            old=None,
            new=verdict.decision,
            added=(),
            removed=(),
            error=None,
            exit_code=exit_code(verdict.decision),
            reasons=tuple((r.level, r.rule, r.msg) for r in verdict.reasons),
            name=name,
            outputs=tuple(written),
        )
    except ProvscanError as exc:
        return _failed(target, name, exc.one_line(), int(exc.exit_code))
    except Exception as exc:  # noqa: BLE001 - one target's crash must not stop the others
        return _failed(
            target, name, f"internal error: {type(exc).__name__}: {exc}", int(ExitCode.INCOMPLETE)
        )


def _failed(target: str, name: str, error: str, code: int) -> Row:
    return Row(target, target, None, None, (), (), error, code, name=name)


def run_all(
    targets: Sequence[str],
    settings: CheckSettings,
    *,
    jobs: int,
    output_dir: Path | None,
    on_done: Callable[[Row], None] | None = None,
) -> list[Row]:
    """Every target's row, in the order the targets were given."""
    names = [output_name(t) for t in targets]
    if output_dir is not None:
        make_output_dir(output_dir, "--output-dir")
    results: dict[int, Row] = {}
    for index, row in _rows(targets, names, settings, jobs, output_dir):
        results[index] = row
        if on_done is not None:
            on_done(row)
    return [results[i] for i in range(len(targets))]


def _rows(
    targets: Sequence[str],
    names: Sequence[str],
    settings: CheckSettings,
    jobs: int,
    output_dir: Path | None,
) -> Iterator[tuple[int, Row]]:
    if jobs == 1 or len(targets) == 1:
        for index, (target, name) in enumerate(zip(targets, names, strict=True)):
            yield index, check_target(target, name, settings, output_dir)
        return
    # Imported here: the process pool's machinery is a tenth of `provscan --help`'s start-up.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    # spawn, not fork: the parent may hold threads (hashing pools, progress), and a forked
    # child of a threaded process can deadlock on a lock some thread held.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(targets)), mp_context=context) as pool:
        futures = {
            pool.submit(check_target, target, name, settings, output_dir): index
            for index, (target, name) in enumerate(zip(targets, names, strict=True))
        }
        try:
            for future in as_completed(futures):
                index = futures[future]
                try:
                    yield index, future.result()
                except BrokenProcessPool:
                    # The worker died (killed for memory, a crash in native code): the target
                    # it held, and any queued behind it, get no verdict.
                    yield (
                        index,
                        _failed(
                            targets[index],
                            names[index],
                            "the worker process checking it died (out of memory or a crash)",
                            int(ExitCode.INCOMPLETE),
                        ),
                    )
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def progress_printer(total: int, stream: Any = None) -> Callable[[Row], None]:
    """A line per finished target on a terminal, so that a long run shows it is moving."""
    out = stream or sys.stderr
    done = [0]

    def show(row: Row) -> None:
        done[0] += 1
        state = row.new.value if row.new is not None else f"error ({row.exit_code})"
        print(f"[{done[0]}/{total}] {visible(row.target)}: {state}", file=out, flush=True)

    return show


def check_many(
    targets: list[str],
    settings: CheckSettings,
    output: OutputRequest,
    *,
    jobs: int,
    output_dir: Path | None,
) -> int:
    """`provscan check` of several targets: each decided on its own, then the summary table
    (or JSON lines); the exit code is the worst row's."""
    for fmt in output.files:
        if fmt is not OutputFormat.JSON:
            raise UsageError(
                f"{FLAG_OF[fmt]} names one file, and there are {len(targets)} targets",
                "give --output-dir DIR: each target's report, AI-BOM and SARIF are written there",
            )
    json_out = output.files.get(OutputFormat.JSON)
    printed_json = output.stdout is OutputFormat.JSON
    if json_out is not None and printed_json and str(json_out) == STDOUT:
        raise UsageError("--format json and --json - both write to standard output; give one")
    on_done = progress_printer(len(targets)) if show_progress(output) else None
    rows = run_all(targets, settings, jobs=jobs, output_dir=output_dir, on_done=on_done)
    lines = "".join(summary.json_line(row) for row in rows)
    if json_out is not None:
        write_output(json_out, lines)
    if printed_json:
        click.echo(lines, nl=False)
    else:
        stream = sys.stderr if str(json_out) == STDOUT else sys.stdout
        text = summary.render_verdicts(
            rows,
            color=term.color_enabled(stream, no_color=output.no_color),
            width=term.width(stream),
        )
        click.echo(text, nl=False, file=stream, color=True)
    return summary.worst_exit(row.exit_code for row in rows)
