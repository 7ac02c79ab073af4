"""Pickle scanning: malicious pickles are caught without ever being loaded; real ones pass."""

from __future__ import annotations

import collections
import io
import pickle
import pickletools
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import yaml

from provscan.collectors.serialization.pickle.globals import (
    GlobalVerdict,
    allowed_globals,
    classify_global,
    dangerous_patterns,
)
from provscan.collectors.serialization.scan import scan_serialization
from provscan.files import ScanFile, SniffedFile
from provscan.limits import Limits
from provscan.report import FileFormat, Finding, Severity
from tests.conftest import REPO

KNOWLEDGE = REPO / "provscan" / "knowledge"


def _cmd(canary: Path) -> bytes:
    return f"touch {canary}".encode()


def _unicode(text: bytes) -> bytes:
    return b"X" + struct.pack("<I", len(text)) + text  # BINUNICODE


def _short(text: bytes) -> bytes:
    return b"\x8c" + bytes([len(text)]) + text  # SHORT_BINUNICODE


def scan(
    tmp_path: Path, data: bytes, limits: Limits | None = None, name: str = "model.pkl"
) -> list[Finding]:
    path = tmp_path / name
    path.write_bytes(data)
    sniffed = SniffedFile(ScanFile(rel=name, path=path, size=len(data)), FileFormat.PICKLE)
    return list(scan_serialization([sniffed], limits or Limits()).findings)


def rules(findings: list[Finding]) -> dict[str, Finding]:
    return {f.rule_id: f for f in findings}


def dangerous(findings: list[Finding], name: str) -> Finding:
    hits = [
        f
        for f in findings
        if f.rule_id == "SER-PICKLE-DANGEROUS-GLOBAL" and f.evidence["global"] == name
    ]
    assert hits, f"no dangerous-global finding for {name}: {findings}"
    assert hits[0].severity is Severity.CRITICAL
    return hits[0]


# ---- malicious samples, built from raw opcodes ---------------------------------------


def test_protocol0_global_reduce(tmp_path: Path, canary: Path) -> None:
    payload = b"cos\nsystem\n(S'" + _cmd(canary) + b"'\ntR."
    pickletools.dis(payload, out=io.StringIO())  # a valid pickle that would run the command
    finding = dangerous(scan(tmp_path, payload), "os.system")
    assert finding.evidence["opcode"] == "REDUCE"
    assert finding.evidence["offset"] == payload.index(b"R")
    assert (
        "model.pkl" in finding.message
        and "os.system" in finding.message
        and "shell" in finding.message
    )
    assert finding.location is not None and finding.location.path == "model.pkl"


def test_protocol2_posix_system(tmp_path: Path, canary: Path) -> None:
    # pickle.dumps(os.system) writes 'posix system' on Linux.
    payload = b"\x80\x02cposix\nsystem\n" + _unicode(_cmd(canary)) + b"\x85R."
    pickletools.dis(payload, out=io.StringIO())
    assert dangerous(scan(tmp_path, payload), "posix.system").evidence["opcode"] == "REDUCE"


def test_protocol4_stack_global_through_memo(tmp_path: Path, canary: Path) -> None:
    # Module and name memoised first and fetched back with BINGET, with a decoy in between.
    payload = (
        b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00"
        + _short(b"os")
        + b"\x94"
        + _short(b"torch.LongStorage")
        + b"\x94"
        + _short(b"system")
        + b"\x94"
        + b"0"
        + b"0"
        + b"0"  # POP x3: only the memo holds them now
        + b"h\x00h\x02\x93"
        + _short(_cmd(canary))
        + b"\x85R."
    )
    pickletools.dis(payload, out=io.StringIO())
    finding = dangerous(scan(tmp_path, payload), "os.system")
    assert finding.evidence["opcode"] == "REDUCE"


def test_inst_opcode(tmp_path: Path, canary: Path) -> None:
    payload = b"(S'" + _cmd(canary) + b"'\nios\nsystem\n."
    pickletools.dis(payload, out=io.StringIO())
    assert dangerous(scan(tmp_path, payload), "os.system").evidence["opcode"] == "INST"


def test_obj_opcode_hidden_by_pop(tmp_path: Path, canary: Path) -> None:
    # fickling's bypass: the call's result is discarded, the returned value is harmless.
    payload = b"(cos\nsystem\nS'" + _cmd(canary) + b"'\no0N."
    pickletools.dis(payload, out=io.StringIO())
    assert dangerous(scan(tmp_path, payload), "os.system").evidence["opcode"] == "OBJ"


def test_builtins_eval_protocol2_py2_name(tmp_path: Path, canary: Path) -> None:
    source = f"__import__('os').system('{_cmd(canary).decode()}')".encode()
    payload = b"\x80\x02c__builtin__\neval\n" + _unicode(source) + b"\x85R."
    pickletools.dis(payload, out=io.StringIO())
    finding = dangerous(scan(tmp_path, payload), "builtins.eval")
    assert finding.evidence["written_as"] == "__builtin__.eval"


def test_builtins_eval_protocol4_dotted_name(tmp_path: Path, canary: Path) -> None:
    source = f"__import__('os').system('{_cmd(canary).decode()}')".encode()
    payload = (
        b"\x80\x04"
        + _short(b"builtins")
        + _short(b"eval.__call__")
        + b"\x93"
        + _short(source)
        + b"\x85R."
    )
    pickletools.dis(payload, out=io.StringIO())
    dangerous(scan(tmp_path, payload), "builtins.eval.__call__")


def test_submodule_of_dangerous_module(tmp_path: Path) -> None:
    # CVE-2025-10157: a submodule of a denied module must be denied too.
    payload = (
        b"\x80\x04"
        + _short(b"asyncio.unix_events")
        + _short(b"_UnixSubprocessTransport")
        + b"\x93."
    )
    dangerous(scan(tmp_path, payload), "asyncio.unix_events._UnixSubprocessTransport")


def test_truncated_after_global_reports_global_and_offset(tmp_path: Path) -> None:
    payload = b"\x80\x02cos\nsystem\n" + b"X\x10\x00\x00\x00tou"  # string cut short
    findings = scan(tmp_path, payload)
    dangerous(findings, "os.system")
    malformed = rules(findings)["SER-PICKLE-MALFORMED"]
    assert malformed.severity is Severity.HIGH
    assert malformed.location is not None and malformed.location.offset == payload.index(b"X\x10")
    assert malformed.evidence["imports_before"] == 1


def test_backslash_in_global_does_not_hide_what_follows(tmp_path: Path, canary: Path) -> None:
    # pickletools cannot parse this GLOBAL (it escape-decodes the line); CPython reads it
    # literally, and a module of that name may exist on the loader's sys.path.
    payload = b"\x80\x02cmy\\mod\nThing\n0cos\nsystem\n" + _unicode(_cmd(canary)) + b"\x85R."
    findings = scan(tmp_path, payload)
    assert "SER-PICKLE-MALFORMED" not in rules(findings)
    assert rules(findings)["SER-PICKLE-UNKNOWN-GLOBAL"].evidence["global"] == "my\\mod.Thing"
    assert dangerous(findings, "os.system").evidence["opcode"] == "REDUCE"


def test_unknown_global_is_high_not_critical(tmp_path: Path) -> None:
    payload = b"\x80\x02cmymodule\nThing\n)\x81."
    findings = scan(tmp_path, payload)
    assert [f.rule_id for f in findings] == ["SER-PICKLE-UNKNOWN-GLOBAL"]
    assert findings[0].severity is Severity.HIGH
    assert findings[0].evidence == {
        "global": "mymodule.Thing",
        "opcode": "NEWOBJ",
        "offset": payload.index(b"\x81"),
    }
    assert "mymodule.Thing" in findings[0].message


def test_stack_global_on_non_strings_is_dynamic(tmp_path: Path) -> None:
    # The module name is built by a call, so the scan cannot know it.
    payload = (
        b"\x80\x04"
        + _short(b"builtins")
        + _short(b"str")
        + b"\x93"
        + _short(b"os")
        + b"\x85R"
        + _short(b"system")
        + b"\x93."
    )
    finding = rules(scan(tmp_path, payload))["SER-PICKLE-DYNAMIC-GLOBAL"]
    assert finding.severity is Severity.CRITICAL
    assert "builtins.str" in finding.message


def test_unknown_extension_code(tmp_path: Path) -> None:
    finding = rules(scan(tmp_path, b"\x80\x02\x82\x07)R."))["SER-PICKLE-UNKNOWN-EXTENSION"]
    assert finding.severity is Severity.CRITICAL and finding.evidence["opcode"] == "EXT1"


def test_missing_memo_key_is_malformed(tmp_path: Path) -> None:
    payload = b"\x80\x04h\x05h\x06\x93."
    with pytest.raises(pickle.UnpicklingError, match="Memo value not found"):
        pickle.loads(payload)  # CPython stops at the first GET: the STACK_GLOBAL never runs
    findings = scan(tmp_path, payload)
    assert rules(findings)["SER-PICKLE-MALFORMED"].location.offset == 2  # type: ignore[union-attr]
    assert "SER-PICKLE-DYNAMIC-GLOBAL" not in rules(findings)


def test_opcode_limit(tmp_path: Path) -> None:
    payload = pickle.dumps(list(range(1000)), protocol=2)
    finding = rules(scan(tmp_path, payload, Limits(pickle_max_opcodes=50)))["SER-PICKLE-TOO-LARGE"]
    assert finding.evidence == {"max_opcodes": 50}


def test_byte_limit_keeps_imports_seen(tmp_path: Path) -> None:
    payload = b"\x80\x02cos\nsystem\n" + pickle.dumps(list(range(5000)), protocol=2)[2:]
    findings = scan(tmp_path, payload, Limits(pickle_max=1000))
    dangerous(findings, "os.system")
    assert "SER-PICKLE-TOO-LARGE" in rules(findings) and "SER-PICKLE-MALFORMED" not in rules(
        findings
    )


def test_payload_in_second_stacked_pickle(tmp_path: Path) -> None:
    payload = (
        pickle.dumps({"a": 1}, protocol=2)
        + b"\x80\x02cos\nsystem\n"
        + _unicode(b"true")
        + b"\x85R."
    )
    dangerous(scan(tmp_path, payload), "os.system")


def test_trailing_bytes_that_look_like_a_pickle_are_ignored(tmp_path: Path) -> None:
    payload = pickle.dumps({"a": 1}, protocol=2) + b"\x80\x02\x00\x00\xff\xff\xff"
    assert scan(tmp_path, payload) == []


# ---- benign samples ------------------------------------------------------------------

BENIGN = {
    "ordered_dict": collections.OrderedDict(a=1, b=[1.5, "x"]),
    "dict": {"a": (1, 2), "b": b"bytes", "c": None, "d": True},
    "list": [1, 2.5, "three", [4], {5}, frozenset({6}), 7j, bytearray(b"8"), slice(1, 9)],
    "numpy_array": np.arange(12, dtype=np.float32).reshape(3, 4),
    "numpy_object_array": np.array([1, "a"], dtype=object),
    "numpy_scalar": np.float64(1.5),
    "numpy_record": np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")]),
    "counter": collections.Counter("abca"),
    "defaultdict": collections.defaultdict(int, {"a": 1}),
}


@pytest.mark.parametrize("protocol", range(6))
@pytest.mark.parametrize("name", sorted(BENIGN))
def test_benign_pickles_have_no_findings(tmp_path: Path, name: str, protocol: int) -> None:
    assert scan(tmp_path, pickle.dumps(BENIGN[name], protocol=protocol)) == []


def _state_dict() -> dict[str, object]:
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    state = model.state_dict()
    state["half"] = torch.zeros(640, dtype=torch.float16)  # storage size 640 = b"\x80\x02..."
    state["bf16"] = torch.ones(2, dtype=torch.bfloat16)
    state["long"] = torch.arange(3)
    return {
        "state_dict": state,
        "step": 3,
        "param": torch.nn.Parameter(torch.ones(2)),
        "dtype": torch.float16,
    }


def test_torch_legacy_format_all_pickles_scanned(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    torch.save(_state_dict(), buffer, _use_new_zipfile_serialization=False)
    assert scan(tmp_path, buffer.getvalue(), name="pytorch_model.bin") == []


def test_torch_legacy_storage_bytes_that_look_like_a_pickle(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    torch.save(
        {"half": torch.zeros(640, dtype=torch.float16)},
        buffer,
        _use_new_zipfile_serialization=False,
    )
    data = buffer.getvalue()
    stream = io.BytesIO(data)
    for _ in range(5):
        for _ in pickletools.genops(stream):
            pass
    assert data[stream.tell() : stream.tell() + 2] == b"\x80\x02"  # numel 640, little-endian
    assert scan(tmp_path, data, name="pytorch_model.bin") == []


def test_hostile_length_is_never_allocated(tmp_path: Path) -> None:
    payload = b"\x80\x04\x8e" + struct.pack("<Q", 3 * 2**30) + b"abc"  # BINBYTES8 claims 3 GiB
    tracemalloc.start()
    try:
        findings = scan(tmp_path, payload)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000
    assert rules(findings)["SER-PICKLE-MALFORMED"].location.offset == 2  # type: ignore[union-attr]


class Thing:
    """A class outside every allowlist, pickled inside a legacy torch file."""


def test_torch_legacy_format_object_pickle_is_reached(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2), "extra": Thing()}, buffer, _use_new_zipfile_serialization=False)
    findings = scan(tmp_path, buffer.getvalue(), name="pytorch_model.bin")
    assert [f.evidence["global"] for f in findings] == [f"{__name__}.Thing"]
    assert findings[0].severity is Severity.HIGH


# ---- the knowledge files -------------------------------------------------------------


def test_every_knowledge_entry_says_where_it_comes_from() -> None:
    for name, key in (("pickle_allowlist.yaml", "globals"), ("pickle_dangerous.yaml", "patterns")):
        document = yaml.safe_load((KNOWLEDGE / name).read_text(encoding="utf-8"))
        for entry in document["entries"]:
            assert entry["source"].strip() and entry["why"].strip() and entry[key], entry


def test_allowlist_and_denylist_do_not_overlap() -> None:
    assert dangerous_patterns()
    for name in allowed_globals():
        assert classify_global(name)[0] is GlobalVerdict.ALLOWED, name


@pytest.mark.parametrize(
    "name",
    [
        "torch.storage._load_from_bytes",
        "torch.load",
        "numpy.load",
        "builtins.getattr",
        "subprocess.Popen",
        "runpy._run_code",
        "pickle.loads",
        "marshal.loads",
        "types.CodeType",
        "socket.socket",
        "shutil.rmtree",
        "ctypes.CDLL",
        "sys.modules",
        "importlib.import_module",
        "os.execvp",
        "os.spawnl",
        "pty.spawn",
        "numpy.__builtins__",
        "webbrowser.open",
        "code.interact",
    ],
)
def test_known_code_execution_globals_are_dangerous(name: str) -> None:
    verdict, why = classify_global(name)
    assert verdict is GlobalVerdict.DANGEROUS and why


@pytest.mark.parametrize(
    ("module", "name", "opcode"),
    [
        ("pathlib", "os.system", "STACK_GLOBAL"),
        ("torch.serialization", "os.system", "GLOBAL"),
        ("logging", "os.system", "STACK_GLOBAL"),
    ],
)
def test_a_dotted_name_is_read_as_the_unpickler_resolves_it(
    tmp_path: Path, module: str, name: str, opcode: str
) -> None:
    """Protocol 4 resolves a dotted name attribute by attribute: `os.system` inside pathlib is
    pathlib's own `os`, then `system`. Differential: CPython's own unpickler, in a child
    process, runs the command (a canary file appears); provscan calls it os.system, critical."""
    canary = tmp_path / "canary"
    command = _cmd(canary)
    if opcode == "STACK_GLOBAL":
        head = _short(module.encode()) + _short(name.encode()) + b"\x93"
    else:
        head = b"c" + module.encode() + b"\n" + name.encode() + b"\n"
    data = b"\x80\x04" + head + _unicode(command) + b"\x85R."
    path = tmp_path / "model.pkl"
    path.write_bytes(data)
    if module.startswith("torch"):
        pytest.importorskip("torch")
    loader = f"import pickle; pickle.load(open({str(path)!r}, 'rb'))"
    subprocess.run([sys.executable, "-c", loader], check=True, timeout=120)
    assert canary.exists(), "the real unpickler did not run the payload"
    canary.unlink()

    found = dangerous(scan(tmp_path, data), f"{module}.{name}")
    assert found.severity is Severity.CRITICAL
    assert "reaches os.system" in found.evidence["why"]
    assert not canary.exists()


def test_dotted_tails_leave_nested_classes_and_allowed_names_alone() -> None:
    assert (
        classify_global("collections.OrderedDict", name="OrderedDict")[0] is GlobalVerdict.ALLOWED
    )
    # A nested class name reaches nothing dangerous: unknown (default deny), not critical.
    assert classify_global("mylib.Outer.Inner", name="Outer.Inner")[0] is GlobalVerdict.UNKNOWN
    verdict, why = classify_global("mylib.helpers.subprocess.Popen", name="subprocess.Popen")
    assert verdict is GlobalVerdict.DANGEROUS and "reaches subprocess.Popen" in (why or "")


def test_a_pickle_that_builds_too_many_values_stops_early(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from provscan.collectors.serialization.pickle import reading as pickle_reading

    # 200,000 distinct short strings: few bytes, many live objects. The bound is lowered so the
    # test stays small; the check runs every 65,536 opcodes.
    monkeypatch.setattr(pickle_reading, "MAX_LIVE_BLOCKS", 50_000)
    body = b"".join(b"\x8c\x05" + f"{i:05x}".encode() for i in range(200_000))
    findings = rules(scan(tmp_path, b"\x80\x04(" + body + b"l."))
    assert findings["SER-PICKLE-TOO-LARGE"].evidence.keys() == {"max_values"}
