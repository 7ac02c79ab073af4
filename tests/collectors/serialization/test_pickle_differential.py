"""Does provscan's walker read a pickle as CPython's unpicklers do, byte for byte?

Each case is checked against CPython itself: fixtures/pickle_oracle.py runs `_pickle.Unpickler`
(through a buffered file, and through a BytesIO as torch.load reads data.pkl) and
`pickle._Unpickler` in a child process with recording stand-ins, and the walker's imports and
calls must be the same set (a superset only past a point the walker marks as speculative).
"""

from __future__ import annotations

import io
import struct
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.pickle_fuzz import diverges, fuzz
from fixtures.pickle_oracle import Oracle
from provscan.collectors.serialization.pickle.scan import scan_as_pickle, walk_pickles
from provscan.collectors.serialization.pickle.values import Reader
from provscan.files import ScanFile
from provscan.limits import Limits
from provscan.report import Severity

_CALL = b"cos\nsystem\n(X\x01\x00\x00\x00xtR."

# Streams on which _pickle.c and pickle.py (CPython 3.11) disagree, each with the import
# and call that follows the disputed bytes.
QUIRKS = {
    "int_octal": b"I010\n0" + _CALL,
    "int_08": b"I08\n0" + _CALL,
    "int_empty_line": b"I\n0" + _CALL,
    "int_nul": b"I5\x00zz\n0" + _CALL,
    "int_hex": b"I0x10\n0" + _CALL,
    "int_underscore": b"I1_0\n0" + _CALL,
    "long_nul": b"L12\x00abc\n0" + _CALL,
    "float_nul": b"F1.5\x00zz\n0" + _CALL,
    "float_leading_space": b"F 1.5\n0" + _CALL,
    "float_underscore": b"F1_5\n0" + _CALL,
    "put_nul": b"I1\np1\x00x\n0" + _CALL,
    "global_empty_module": b"c\nsystem\n(X\x01\x00\x00\x00xtR.",
    "global_no_newline": b"cos\nsystem",
    "inst_without_mark": b"ios\nsystem\n.",
    "reduce_list_args": b"cos\nsystem\n]R.",
    "newobj_list_args": b"\x80\x02cos\nsystem\n]\x81.",
    "newobj_ex_str_kwargs": b"\x80\x04cos\nsystem\n)X\x01\x00\x00\x00k\x92.",
    "setitems_odd_on_import": b"\x80\x02cos\nenviron\n(K\x01K\x02K\x03u.",
    "appends_empty_on_import": b"\x80\x02cos\nsystem\n(e.",
    "build_empty_on_list": b"]}b" + _CALL,
    "frame_longer_than_data": b"\x80\x04\x95\x40\x00\x00\x00\x00\x00\x00\x00" + _CALL,
    "frame_straddling_global": b"\x80\x04\x95\x09\x00\x00\x00\x00\x00\x00\x00cbuiltinsos\nsystem\n)R.",
    "frame_straddling_binunicode": b"\x80\x04\x95\x03\x00\x00\x00\x00\x00\x00\x00X\x03\x00"
    + b"\x00\x00abc.",
    "frame_straddling_binbytes": b"\x80\x04\x95\x03\x00\x00\x00\x00\x00\x00\x00C\x03abc.",
    "frame_inside_frame": b"\x80\x04\x95\x20\x00\x00\x00\x00\x00\x00\x00\x95\x02\x00\x00\x00"
    + b"\x00\x00\x00\x00K\x01"
    + _CALL,
    "memo_index_too_big_for_c": b"\x80\x02cos\nsystem\nr\xff\xff\xff\x7f)R.",
    "stack_global_on_call_result": b"\x80\x04cbuiltins\nstr\n)R\x8c\x02os\x93.",
    "unregistered_ext": b"\x80\x02\x82\x07)R.",
    "after_stop": _CALL + _CALL,
    "int_nul_first": b"I\x00(K\x01\n0" + _CALL,
    "appends_on_a_mark": b"(e" + _CALL,
    "setitems_below_an_outer_mark": b"cos\nenviron\n((u0" + _CALL,
}


@pytest.fixture(scope="module")
def oracle() -> Iterator[Oracle]:
    with Oracle() as running:
        yield running


@pytest.mark.parametrize("name", sorted(QUIRKS))
def test_walker_reads_each_quirk_as_cpython_does(oracle: Oracle, name: str) -> None:
    data = QUIRKS[name]
    readings = oracle.read(data)
    assert readings is not None, "the oracle child died"
    for reader, theirs in zip((Reader.C, Reader.C_STREAM, Reader.PY), readings, strict=True):
        found = diverges(data, reader, theirs)
        assert found is None, found.describe()


def test_quirks_really_split_the_readers(oracle: Oracle) -> None:
    """The table is worth having: on most cases CPython's own readers disagree."""
    split = 0
    for data in QUIRKS.values():
        readings = oracle.read(data)
        assert readings is not None
        c, c_stream, py = readings
        split += len({frozenset(r.events) for r in readings}) > 1
    assert split >= 12


def test_mutated_pickles_agree_with_cpython(oracle: Oracle) -> None:
    """A short run of the differential fuzzer (benchmarks run 100,000)."""
    result = fuzz(1500, seed=20261206, oracle=oracle)
    assert result.with_events > 100  # the mutants do reach imports and calls
    assert [d.describe() for d in result.divergences] == []


def test_frame_straddle_is_a_reader_differential(tmp_path: Path) -> None:
    # Read as bytes: GLOBAL 'builtinsos' 'system'. Read as torch.load reads data.pkl (a
    # BytesIO): the frame's unread 'builtins' is dropped and the GLOBAL is os.system.
    data = QUIRKS["frame_straddling_global"]
    walk = walk_pickles(io.BytesIO(data), limit=len(data), max_opcodes=1000)
    assert {"builtinsos.system", "os.system"} <= set(walk.imports)
    assert walk.disagreement is not None and "end of its frame" in walk.disagreement


def test_a_tar_whose_first_name_is_a_pickle_is_a_polyglot(tmp_path: Path) -> None:
    payload = b"cos\nsystem\n(X\x04\x00\x00\x00truetR."
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo(payload.decode("latin-1"))
        archive.addfile(info, io.BytesIO(b""))
    path = tmp_path / "weights.tar"
    path.write_bytes(buffer.getvalue())
    assert buffer.getvalue()[257:262] == b"ustar"  # sniffed as a tar by its magic
    findings = scan_as_pickle(
        ScanFile(rel="weights.tar", path=path, size=path.stat().st_size), Limits(), "tar"
    )
    rules = {f.rule_id: f for f in findings}
    assert rules["SER-PICKLE-POLYGLOT"].severity is Severity.CRITICAL
    assert rules["SER-PICKLE-DANGEROUS-GLOBAL"].evidence["global"] == "os.system"


def test_ordinary_files_are_not_pickles(tmp_path: Path) -> None:
    for name, data in {
        "config.json": b'{"architectures": ["LlamaForCausalLM"]}',
        "README.md": b"# Model card\n\nLicense: apache-2.0\n",
        "copyright.txt": b"(c) 2024 Example Corp. All rights reserved.\n",
        "weights.bin": struct.pack("<8f", *range(8)),
    }.items():
        path = tmp_path / name
        path.write_bytes(data)
        file = ScanFile(rel=name, path=path, size=len(data))
        assert scan_as_pickle(file, Limits(), "text") == [], name
