"""The fuzz harnesses (fixtures/fuzz) in the normal tests: every parser takes its seed corpus
and a fixed set of deterministic mutants without raising, the harness does flag a scanner that
raises or returns what the report cannot hold, and each crash the fuzzer found stays fixed."""

from __future__ import annotations

import importlib.util
import io
import itertools
import json
import os
import re
import struct
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from fixtures.fuzz import harness as fuzz_harness
from fixtures.fuzz.cli import parse_log, peak_rss_mb
from fixtures.fuzz.harness import TARGETS, CrashRecorder, Harness, InvariantBroken, Workspace
from fixtures.fuzz.mutate import DICTIONARIES, Mutator, libfuzzer_dictionary
from fixtures.fuzz.seeds import seed_corpus
from provscan.collectors.serialization.containers.scan import scan_7z, scan_zip
from provscan.collectors.serialization.keras.scan import scan_keras_zip
from provscan.collectors.serialization.safetensors.scan import scan_safetensors
from provscan.files import ScanFile
from provscan.limits import Limits
from provscan.report import Finding, Severity

REPO = Path(__file__).resolve().parent.parent
# Mutants per target: a few seconds each at most on one core. The HDF5 scanner reads every
# file in a child process (a fresh interpreter and libhdf5), a third of a second each.
MUTANTS = 120
SLOW_MUTANTS = {"hdf5": 3}
# numpy's own notice for a mutated header it reads the Python 2 way: noise here.
NUMPY_PY2_NOTICE = "ignore:Reading `.npy` or `.npz` file required:UserWarning"


def _harness(name: str, tmp_path: Path) -> tuple[Harness, list[bytes]]:
    seeds = [data for _, data in seed_corpus(name, light=True)]
    return Harness(TARGETS[name], tmp_path / "workspace", seeds), seeds


def _run(bound: Harness, name: str, inputs: list[bytes]) -> None:
    for index, data in enumerate(inputs):
        try:
            bound.one_input(data)
        except Exception as exc:
            raise AssertionError(
                f"{name}: input {index} ({len(data)} bytes) crashed the scanner: "
                f"{type(exc).__name__}: {exc}\n  input: {data[:200]!r}"
            ) from exc


@pytest.mark.filterwarnings(NUMPY_PY2_NOTICE)
@pytest.mark.parametrize("name", list(TARGETS))
def test_target_takes_its_seeds_and_their_mutants(name: str, tmp_path: Path) -> None:
    bound, seeds = _harness(name, tmp_path)
    assert seeds, f"{name} has no seed corpus"
    count = SLOW_MUTANTS.get(name, MUTANTS)
    mutants = list(itertools.islice(Mutator(seeds, DICTIONARIES[name], seed=1).mutants(), count))
    _run(bound, name, seeds + mutants)


def test_every_target_has_a_dictionary_libfuzzer_can_read() -> None:
    assert set(DICTIONARIES) == set(TARGETS)
    text = libfuzzer_dictionary((b'a"b\\', b"\x00\xff"))
    assert text == '"a\\x22b\\x5c"\n"\\x00\\xff"\n'


def test_mutants_are_the_same_for_the_same_seed() -> None:
    def first(seed: int) -> list[bytes]:
        return list(itertools.islice(Mutator([b"PK\x03\x04abc"], [b"x"], seed).mutants(), 50))

    assert first(3) == first(3)
    assert first(3) != first(4)


# ----------------------------------------------------------------- the harness can fail


def _boom(*args: object, **kwargs: object) -> list[Finding]:
    raise ValueError("scanner bug")


def test_a_scanner_that_raises_is_recorded_as_one_crash(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(fuzz_harness, "scan_zip", _boom)
    bound, seeds = _harness("zip", tmp_path)
    with pytest.raises(ValueError, match="scanner bug"):
        bound.one_input(seeds[0])
    recorder = CrashRecorder(tmp_path / "crashes")
    assert isinstance(recorder.guard(bound.one_input, seeds[0]), ValueError)
    assert isinstance(recorder.guard(bound.one_input, seeds[1]), ValueError)
    [crash] = [p for p in (tmp_path / "crashes").glob("crash-*") if p.suffix != ".txt"]
    assert crash.read_bytes() == seeds[0]  # the first input of a crash is kept, once
    report = crash.with_suffix(".txt").read_text(encoding="utf-8")
    assert report.startswith("ValueError at test_fuzz.py:") and "scanner bug" in report
    assert recorder.seen == {report.splitlines()[0]: 2}


def test_a_result_the_report_cannot_hold_is_a_crash(monkeypatch, tmp_path: Path) -> None:
    bound, seeds = _harness("numpy", tmp_path)
    monkeypatch.setattr(fuzz_harness, "scan_numpy", lambda file, limits: ["not a finding"])
    with pytest.raises(InvariantBroken, match="returned a str, not a Finding"):
        bound.one_input(seeds[0])
    monkeypatch.setattr(fuzz_harness, "scan_numpy", lambda file, limits: ())
    with pytest.raises(InvariantBroken, match="returned tuple, not a list"):
        bound.one_input(seeds[0])


def test_only_the_documented_diff_error_is_allowed(monkeypatch, tmp_path: Path) -> None:
    bound, _ = _harness("diff_input", tmp_path)
    assert bound.workspace.reference is not None  # compared with a real report, not itself
    bound.one_input(b"{not json")  # UsageError: `provscan diff` exits 2, as documented
    monkeypatch.setattr(fuzz_harness, "load_snapshot", _boom)
    with pytest.raises(ValueError, match="scanner bug"):
        bound.one_input(b"{}")


def test_chat_templates_are_not_rendered_and_the_render_cache_is_untouched(
    tmp_path: Path,
) -> None:
    from provscan.collectors.serialization.chat_template import lint as chat_template

    real = chat_template._rendered
    cached = dict(chat_template._RENDERED)
    bound, seeds = _harness("chat_template", tmp_path)
    bound.one_input(seeds[0])
    assert chat_template._rendered is real
    assert dict(chat_template._RENDERED) == cached


def test_libfuzzer_statistics_are_read() -> None:
    log = (
        "#2\tINITED cov: 10 ft: 10 corp: 1/1b exec/s: 0 rss: 90Mb\n"
        "#4096\tpulse  cov: 20 ft: 30 corp: 5/9b lim: 4 exec/s: 2048 rss: 120Mb\n"
        "#5000\tDONE   cov: 21 ft: 31 corp: 5/9b lim: 4 exec/s: 2000 rss: 130Mb\n"
        "stat::number_of_executed_units: 5001\nstat::peak_rss_mb:              131\n"
    )
    assert parse_log(log) == (5001, 131)
    assert parse_log(log.split("stat::")[0]) == (5000, 130)  # killed before its final stats
    assert parse_log("") == (0, 0)


@pytest.mark.filterwarnings(NUMPY_PY2_NOTICE)
def test_the_fallback_engine_fuzzes_and_reports_like_libfuzzer(tmp_path: Path, capsys) -> None:
    from fixtures.fuzz import child
    from fixtures.fuzz.seeds import write_corpus

    assert write_corpus("numpy", tmp_path / "corpus", light=True) > 0
    arguments = ["--target=numpy", "--seconds=1", f"--corpus={tmp_path / 'corpus'}"]
    arguments += [f"--crashes={tmp_path / 'crashes'}", f"--workdir={tmp_path / 'work'}"]
    arguments += [f"--dict={tmp_path / 'dict.txt'}", "--engine=python"]
    assert child.main(arguments) == 0
    out = capsys.readouterr().out
    assert "pure-Python mutator" in out
    executions, rss = parse_log(out)
    assert executions > 10 and rss > 0
    assert not (tmp_path / "crashes").exists()  # nothing crashed, nothing recorded


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_peak_rss_is_the_process_own() -> None:
    # This process's peak, not its parent's: a fuzz child forked from a parent that
    # imported torch would otherwise report the parent's 500 MB.
    assert 0 < peak_rss_mb(os.getpid()) < 100_000
    assert peak_rss_mb(2**22 + 1) is None  # above any pid_max: gone


@pytest.mark.slow
def test_the_fuzz_command_runs_and_summarises(tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        pytest.skip("atheris is not installed (the `fuzz` or `test` extra): no libFuzzer run")
    done = subprocess.run(
        [sys.executable, "-m", "fixtures.fuzz", "--target", "pickle", "--seconds", "5"]
        + ["--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "engine: atheris" in done.stdout
    summary = done.stdout.split("summary:", 1)[1]
    line = re.compile(
        r"^pickle +executions +([\d,]+) +exec/s +[\d,.]+ +crashes +0 +peak RSS +(\d+) MB +[\d.]+ s",
        re.M,
    )
    found = line.search(summary)
    assert found is not None, done.stdout
    assert int(found.group(1).replace(",", "")) > 0 and int(found.group(2)) > 0
    assert any((tmp_path / "pickle" / "corpus").glob("seed-*"))


# --------------------------------------------------------- crashes the fuzzer found, fixed


def _findings(
    tmp_path: Path, scanner: Callable[[ScanFile, Limits], list[Finding]], name: str, data: bytes
) -> list[Finding]:
    """The scanner's findings for `data` as file `name`: the raw scanner, no isolation."""
    return scanner(Workspace(tmp_path / "workspace").write(name, data), Limits())


def _has(findings: list[Finding], rule_id: str, severity: Severity) -> bool:
    return any(f.rule_id == rule_id and f.severity is severity for f in findings)


def _zip(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


_HIGH_OR_WORSE = (Severity.HIGH, Severity.CRITICAL)
_PAYLOAD = b"\x80\x02cos\nsystem\n(S'x'\ntR."


def test_zip_member_with_an_empty_name_is_scanned(tmp_path: Path) -> None:
    # zipfile.ZipInfo.is_dir() (CPython 3.11) raised IndexError on an empty name.
    findings = _findings(tmp_path, scan_zip, "model.bin", _zip("", _PAYLOAD))
    assert _has(findings, "SER-PICKLE-DANGEROUS-GLOBAL", Severity.CRITICAL), findings


def test_zip64_locator_pointing_past_any_file_is_malformed(tmp_path: Path) -> None:
    # The member count was read from the zip64 end record by seeking to the locator's
    # offset: 2**64 - 1 is past what seek takes (ValueError).
    data = _zip("archive/data.pkl", _PAYLOAD)
    end = data.rindex(b"PK\x05\x06")
    record = bytearray(data[end:])
    record[8:12] = b"\xff\xff\xff\xff"  # entry counts: "see the zip64 end record"
    locator = b"PK\x06\x07" + struct.pack("<LQL", 0, 2**64 - 1, 1)
    findings = _findings(tmp_path, scan_zip, "model.bin", data[:end] + locator + bytes(record))
    assert _has(findings, "SER-ZIP-MALFORMED", Severity.HIGH), findings


@pytest.mark.parametrize("dtype", [["F16"], {"F16": 1}])
def test_safetensors_dtype_that_is_not_a_string_is_invalid(tmp_path: Path, dtype: object) -> None:
    # `dtype not in DTYPE_BITS` raised TypeError for an unhashable dtype.
    entry = {"dtype": dtype, "shape": [1], "data_offsets": [0, 2]}
    header = json.dumps({"t": entry}).encode()
    data = struct.pack("<Q", len(header)) + header + b"\x00\x00"
    findings = _findings(tmp_path, scan_safetensors, "model.safetensors", data)
    assert findings and all(f.severity in _HIGH_OR_WORSE for f in findings), findings
    assert any("unknown dtype" in f.message for f in findings), findings


def _sevenzip_with_header(next_header: bytes) -> bytes:
    """A 7z archive whose (unencoded) header is `next_header`, every CRC right."""
    tail = struct.pack("<QQL", 0, len(next_header), zlib.crc32(next_header))
    start = b"7z\xbc\xaf\x27\x1c\x00\x04" + struct.pack("<L", zlib.crc32(tail)) + tail
    return start + next_header


def _sevenzip_file_times(times: bytes) -> bytes:
    """A 7z archive listing one empty file "a" whose last-write-time property is `times`."""
    name = "a".encode("utf-16-le") + b"\x00\x00"
    names = b"\x11" + bytes([len(name) + 1]) + b"\x00" + name  # kName, not external
    empty = b"\x0e\x01\x80"  # kEmptyStream: file 0 holds no data
    last_write = b"\x14" + bytes([len(times)]) + times  # kMTime
    # kHeader, kFilesInfo, one file, its properties, kEnd (files), kEnd (header)
    return _sevenzip_with_header(b"\x01\x05\x01" + empty + names + last_write + b"\x00\x00")


def _sevenzip(data: bytes, filters: list[dict[str, int]] | None) -> bytes:
    py7zr = pytest.importorskip("py7zr")
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w", filters=filters) as archive:
        archive.writestr(data, "archive/data.pkl")
    return buffer.getvalue()


def _corrupt_member_crc() -> bytes:
    py7zr = pytest.importorskip("py7zr")
    data = _sevenzip(_PAYLOAD + b"A" * 64, [{"id": py7zr.FILTER_COPY}])  # stored as is
    at = data.index(b"A" * 64)
    return data[:at] + b"B" + data[at + 1 :]


def _corrupt_lzma_stream() -> bytes:
    data = _sevenzip(bytes(range(256)) * 4, None)  # LZMA2
    return data[:40] + bytes([data[40] ^ 0xFF]) + data[41:]


@pytest.mark.parametrize(
    ("case", "build", "error"),
    [
        ("unknown header field", lambda: _sevenzip_with_header(b"\xa9"), "TypeError"),
        ("member CRC", _corrupt_member_crc, "CrcError"),
        ("corrupt LZMA data", _corrupt_lzma_stream, "LZMAError"),
        # all defined, but "external" (a byte py7zr asserts is 0)
        ("external times", lambda: _sevenzip_file_times(b"\x01\x01" + bytes(8)), "AssertionError"),
        # a FILETIME past year 9999
        ("time", lambda: _sevenzip_file_times(b"\x01\x00" + b"\xff" * 8), "OverflowError"),
    ],
)
def test_7z_archive_py7zr_cannot_read_is_unreadable(
    tmp_path: Path, case: str, build: Callable[[], bytes], error: str
) -> None:
    # py7zr raised these past read_members' except clause: the scan of the file crashed.
    pytest.importorskip("py7zr")
    findings = _findings(tmp_path, scan_7z, "model.7z", build())
    unreadable = [f for f in findings if f.rule_id == "SER-ARCHIVE-UNREADABLE"]
    assert unreadable and unreadable[0].severity is Severity.HIGH, findings
    assert error in unreadable[0].message, unreadable


def test_7z_member_scan_errors_are_not_taken_for_an_unreadable_archive(
    monkeypatch, tmp_path: Path
) -> None:
    # Whatever py7zr raises is the archive's; what provscan's own member scan raises is not.
    from provscan.collectors.serialization.containers import scan

    monkeypatch.setattr(scan, "scan_member_stream", _boom)
    with pytest.raises(ValueError, match="scanner bug"):
        _findings(tmp_path, scan_7z, "model.7z", _sevenzip(_PAYLOAD, None))


def test_keras_config_member_that_ends_early_is_malformed(tmp_path: Path) -> None:
    # zipfile raised EOFError reading a config.json whose data runs past the file's end.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("metadata.json", (2024, 1, 1, 0, 0, 0)), b"{}")
        archive.writestr(zipfile.ZipInfo("config.json", (2024, 1, 1, 0, 0, 0)), b"{}")
    data = bytearray(buffer.getvalue())
    entry = data.rindex(b"PK\x01\x02")  # the central entry of config.json, the last one
    struct.pack_into("<LL", data, entry + 20, 4096, 4096)  # compressed and real size
    findings = _findings(tmp_path, scan_keras_zip, "model.keras", bytes(data))
    assert [(f.rule_id, f.severity) for f in findings] == [("SER-KERAS-MALFORMED", Severity.HIGH)]
    assert "EOFError" in findings[0].message
    # A zip that is no Keras archive stays the zip scanner's to report.
    assert (
        _findings(tmp_path, scan_keras_zip, "other.zip", bytes(data).replace(b"meta", b"beta"))
        == []
    )
