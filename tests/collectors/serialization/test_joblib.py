"""joblib.dump files: the raw array bytes after each NumpyArrayWrapper are skipped, not parsed."""

from __future__ import annotations

import io
import os
import pickletools
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from provscan.collectors.serialization.pickle.globals import GlobalVerdict, classify_global
from provscan.report import Finding, Severity
from tests.collectors.serialization.test_pickle_scan import scan

joblib = pytest.importorskip("joblib")


class _Touch:
    """Pickles as os.system("touch <canary>"); dumping it runs nothing."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.canary}",))


def _dump(value: object, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(value, buffer, **kwargs)
    return buffer.getvalue()


def _bad(findings: list[Finding]) -> list[Finding]:
    return [
        f
        for f in findings
        if f.severity in (Severity.HIGH, Severity.CRITICAL) or f.rule_id == "SER-PICKLE-MALFORMED"
    ]


def _scan(tmp_path: Path, data: bytes) -> list[Finding]:
    return scan(tmp_path, data, name="model.joblib")


def test_numeric_array(tmp_path: Path) -> None:
    assert _bad(_scan(tmp_path, _dump(np.arange(1000, dtype=np.float64)))) == []


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_dict_of_dtypes_with_alignment(tmp_path: Path, protocol: int) -> None:
    value = {
        "f8": np.linspace(0, 1, 17),
        "i4": np.arange(13, dtype=np.int32).reshape(13, 1),
        "bool": np.array([True, False, True]),
        "f2": np.ones((3, 5), dtype=">f2", order="F"),
        "empty": np.zeros((0, 4)),
        "scalar": np.float64(2.5),  # memoizes the float64 dtype before a wrapper reuses it
        "again": np.arange(4, dtype=np.float64),
        "text": np.array(["ab", "cde"]),
        "record": np.zeros(2, dtype=[("a", "<i4"), ("b", "f8")]),
    }
    data = _dump(value, compress=False, protocol=protocol)
    assert b"numpy_array_alignment_bytes" in data
    assert _bad(_scan(tmp_path, data)) == []


def test_logistic_regression(tmp_path: Path) -> None:
    linear = pytest.importorskip("sklearn.linear_model")
    model = linear.LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    assert _bad(_scan(tmp_path, _dump(model))) == []


def test_pipeline_with_random_forest(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    features, labels = rng.random((40, 4)), np.arange(40) % 3
    model = Pipeline(
        [("scale", StandardScaler()), ("forest", RandomForestClassifier(n_estimators=3))]
    ).fit(features, labels)
    assert _bad(_scan(tmp_path, _dump(model))) == []


def test_object_array_walks_the_nested_pickle(tmp_path: Path, canary: Path) -> None:
    array = np.array([1, _Touch(canary)], dtype=object)
    findings = _scan(tmp_path, _dump({"w": np.arange(3), "objects": array}))
    critical = [f for f in findings if f.severity is Severity.CRITICAL]
    assert [f.evidence["global"] for f in critical] == ["posix.system"]
    assert not [f for f in findings if f.rule_id == "SER-PICKLE-MALFORMED"]


def test_global_after_an_array_is_seen(tmp_path: Path, canary: Path) -> None:
    data = _dump([np.arange(500, dtype=np.int64), _Touch(canary)])
    findings = _scan(tmp_path, data)
    critical = [f for f in findings if f.severity is Severity.CRITICAL]
    assert critical and critical[0].evidence["global"] == "posix.system"
    assert critical[0].evidence["offset"] > 500 * 8  # after the array's bytes
    assert not [f for f in findings if f.rule_id == "SER-PICKLE-MALFORMED"]


def test_huge_declared_shape_is_malformed_without_allocating(tmp_path: Path) -> None:
    # Protocol 2 has no frames, so the edit below leaves joblib's reading intact up to the array.
    data = _dump(np.arange(7, dtype=np.int32), protocol=2)
    assert data.count(b"K\x07\x85") == 1  # shape (7,): BININT1 7, TUPLE1
    huge = data.replace(b"K\x07\x85", b"\x8a\x06" + (2**40).to_bytes(6, "little") + b"\x85")
    tracemalloc.start()
    try:
        findings = _scan(tmp_path, huge)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20
    malformed = [f for f in findings if f.rule_id == "SER-PICKLE-MALFORMED"]
    assert len(malformed) == 1
    assert "declares 4398046511104 data bytes" in malformed[0].message
    assert malformed[0].location is not None and malformed[0].location.offset


def test_unresolvable_shape_is_malformed(tmp_path: Path) -> None:
    data = _dump(np.arange(7, dtype=np.int32), protocol=2)
    # shape (7,) -> (7.0,): a float, which the walk does not take as a dimension.
    odd = data.replace(b"K\x07\x85", b"G" + np.float64(7).astype(">f8").tobytes() + b"\x85")
    malformed = [f for f in _scan(tmp_path, odd) if f.rule_id == "SER-PICKLE-MALFORMED"]
    assert malformed and "is unknown: its shape is not a tuple of integers" in malformed[0].message


def test_wrapper_bytes_in_an_ordinary_pickle_are_not_skipped(tmp_path: Path) -> None:
    # Without the wrapper import a BUILD never skips anything: the same bytes parse as opcodes.
    ops = [op.name for op, _, _ in pickletools.genops(_dump({"a": 1}))]
    assert "STOP" in ops and _bad(_scan(tmp_path, _dump({"a": 1}))) == []


@pytest.mark.parametrize(
    ("name", "verdict"),
    [
        ("joblib.numpy_pickle.NumpyArrayWrapper", GlobalVerdict.ALLOWED),
        ("joblib.load", GlobalVerdict.DANGEROUS),
        ("joblib.numpy_pickle.load", GlobalVerdict.DANGEROUS),
        ("joblib.numpy_pickle_compat.NDArrayWrapper", GlobalVerdict.DANGEROUS),
        ("joblib.Parallel", GlobalVerdict.DANGEROUS),
        ("joblib.parallel.delayed", GlobalVerdict.DANGEROUS),
        ("joblib.externals.cloudpickle.cloudpickle._make_function", GlobalVerdict.DANGEROUS),
        ("joblib.numpy_pickle_compat.ZNDArrayWrapper", GlobalVerdict.UNKNOWN),
        ("sklearn.tree._tree.Tree", GlobalVerdict.ALLOWED),
        ("sklearn.datasets.fetch_openml", GlobalVerdict.UNKNOWN),
    ],
)
def test_joblib_classification(name: str, verdict: GlobalVerdict) -> None:
    assert classify_global(name)[0] is verdict


def _joblib_cases() -> dict[str, object]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.arange(12, dtype=np.float64).reshape(6, 2)
    pipeline = Pipeline([("scale", StandardScaler()), ("fit", LogisticRegression())])
    pipeline.fit(x, [0, 0, 0, 1, 1, 1])
    return {
        "arrays": {"a": np.arange(5, dtype=np.int16), "b": np.ones((3, 3), dtype=">f4")},
        "object_array": np.array([{"k": 1}, (2, 3), "text"], dtype=object),
        "strings_and_bytes": {"s": np.array(["ab", "cde"]), "b": np.array([b"x", b"yz"])},
        "structured": np.zeros(3, dtype=[("x", "<i4"), ("y", "<f8")]),
        "pipeline": pipeline,
        "empty_and_scalar": [np.zeros((0, 4)), np.float32(1.5), np.array(7)],
    }


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_walk_reads_the_globals_joblib_load_looks_up(tmp_path: Path, protocol: int) -> None:
    """Against joblib.load itself (in a child, its pickle.find_class audit events): the walk
    reaches exactly the globals joblib reaches, through every array it reads past."""
    pytest.importorskip("sklearn")
    from fixtures.loader_proof import prove
    from provscan.collectors.serialization.pickle.scan import walk_pickles

    for name, value in _joblib_cases().items():
        path = tmp_path / f"{name}.joblib"
        joblib.dump(value, path, protocol=protocol)
        data = path.read_bytes()
        walk = walk_pickles(io.BytesIO(data), limit=len(data), max_opcodes=1_000_000)
        assert walk.error is None, (name, walk.error)
        proof = prove("joblib", path, tmp_path / "canary")
        assert proof.reached, name
        assert {i.raw for i in walk.imports.values()} == set(proof.reached), name
