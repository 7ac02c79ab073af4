"""ONNX: external data that escapes the model directory, missing external files, custom-op domains."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from provscan.collectors.serialization.onnx_scan import escapes, read_onnx, scan_onnx
from provscan.files import ScanFile
from provscan.limits import Limits

onnx = pytest.importorskip("onnx")  # test-only dependency: builds real ONNX files
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def model(
    domain: str = "",
    op: str = "Add",
    external: str | None = None,
    subgraph_domain: str | None = None,
):
    weight = numpy_helper.from_array(np.ones((4,), dtype=np.float32), name="w")
    if external is not None:
        weight.ClearField("raw_data")
        weight.data_location = TensorProto.EXTERNAL
        entry = weight.external_data.add()
        entry.key, entry.value = "location", external
    nodes = [helper.make_node(op, ["x", "w"], ["y"], domain=domain)]
    if subgraph_domain is not None:
        body = helper.make_graph(
            [helper.make_node("Evil", ["a"], ["b"], domain=subgraph_domain)],
            "body",
            [helper.make_tensor_value_info("a", TensorProto.FLOAT, [4])],
            [helper.make_tensor_value_info("b", TensorProto.FLOAT, [4])],
        )
        nodes.append(helper.make_node("If", ["cond"], ["z"], then_branch=body, else_branch=body))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        initializer=[weight],
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets)


def write(tmp_path: Path, proto, name: str = "model.onnx") -> ScanFile:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(proto.SerializeToString())
    return ScanFile(rel=name, path=path, size=path.stat().st_size)


def rules(findings) -> list[str]:
    return [f.rule_id for f in findings]


def test_plain_model_is_clean(tmp_path: Path) -> None:
    assert scan_onnx(write(tmp_path, model()), Limits()) == []


def test_external_data_inside_the_directory_is_fine(tmp_path: Path) -> None:
    file = write(tmp_path, model(external="weights.bin"))
    assert scan_onnx(file, Limits(), frozenset({"model.onnx", "weights.bin"})) == []
    with file.path.open("rb") as handle:
        assert read_onnx(handle).external == [("w", "weights.bin")]


@pytest.mark.parametrize(
    "location",
    ["../../etc/passwd", "/etc/passwd", "sub/../../x.bin", "..\\..\\x.bin", "C:/x.bin", ""],
)
def test_external_data_escaping_the_directory_is_critical(tmp_path: Path, location: str) -> None:
    findings = scan_onnx(
        write(tmp_path, model(external=location)), Limits(), frozenset({"model.onnx"})
    )
    assert rules(findings) == ["SER-ONNX-EXTERNAL-PATH"]
    assert findings[0].severity.value == "critical" and repr(location) in findings[0].message


def test_nested_model_may_point_to_its_own_parent_but_not_beyond(tmp_path: Path) -> None:
    assert not escapes("onnx/model.onnx", "../weights.bin")
    assert escapes("onnx/model.onnx", "../../weights.bin")


def test_missing_external_file_is_reported(tmp_path: Path) -> None:
    findings = scan_onnx(
        write(tmp_path, model(external="gone.bin")), Limits(), frozenset({"model.onnx"})
    )
    assert rules(findings) == ["SER-ONNX-EXTERNAL-MISSING"]


def test_custom_domain_is_flagged_and_known_ones_are_not(tmp_path: Path) -> None:
    assert rules(
        scan_onnx(write(tmp_path, model(domain="com.acme.ops", op="Backdoor")), Limits())
    ) == ["SER-ONNX-CUSTOM-OP"]
    assert (
        scan_onnx(
            write(tmp_path, model(domain="com.microsoft", op="FusedMatMul"), "ort.onnx"), Limits()
        )
        == []
    )


def test_custom_op_hidden_in_a_subgraph_is_found(tmp_path: Path) -> None:
    findings = scan_onnx(write(tmp_path, model(subgraph_domain="evil.domain")), Limits())
    assert [f.evidence["domain"] for f in findings] == ["evil.domain"]


def test_truncated_and_garbage_files_are_malformed_not_crashes(tmp_path: Path) -> None:
    data = model().SerializeToString()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x08\x12" + b"\xff" * 64)
    for name in ("cut.onnx", "junk.onnx"):
        path = tmp_path / name
        findings = scan_onnx(ScanFile(rel=name, path=path, size=path.stat().st_size), Limits())
        assert rules(findings) == ["SER-ONNX-MALFORMED"], name


def test_huge_declared_lengths_do_not_allocate(tmp_path: Path) -> None:
    # graph field claiming 2**60 bytes in a tiny file
    path = tmp_path / "claim.onnx"
    path.write_bytes(b"\x08\x08\x3a" + bytes([0x80] * 8 + [0x10]) + b"\x00" * 16)
    tracemalloc.start()
    findings = scan_onnx(ScanFile(rel="claim.onnx", path=path, size=path.stat().st_size), Limits())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert rules(findings) == ["SER-ONNX-MALFORMED"]
    assert peak < 5 * 1024 * 1024


def test_large_embedded_weights_are_skipped_not_read(tmp_path: Path) -> None:
    big = numpy_helper.from_array(np.zeros((4_000_000,), dtype=np.float32), name="big")  # 16 MB
    proto = model()
    proto.graph.initializer.append(big)
    file = write(tmp_path, proto)
    tracemalloc.start()
    assert scan_onnx(file, Limits()) == []
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 * 1024 * 1024
