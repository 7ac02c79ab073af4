"""Does a broken or hostile signature file become a named, critical finding and never a crash?

Each case writes one bad model.sig into a fresh demo model; the scan must return, with the
signatures step completed, the signature `malformed`, and one critical SIG-MALFORMED
finding whose message names model.sig and what is wrong with it.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fixtures.models import build_demo_model
from fixtures.signing import KeyFiles, edit_payload, sign_with_model_signing
from provscan.limits import DEFAULT_LIMITS
from provscan.pipeline import ScanOptions, scan
from provscan.signing.trust import load_trust


@pytest.fixture(scope="module")
def valid_signature(tmp_path_factory: pytest.TempPathFactory, key: KeyFiles) -> bytes:
    """A genuine model_signing bundle over the demo model (the demo model is deterministic)."""
    model = build_demo_model(tmp_path_factory.mktemp("signed") / "tiny-llama")
    return sign_with_model_signing(model, key).read_bytes()


def _bundle(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(signature: Path) -> None:
        bundle = json.loads(signature.read_bytes())
        edit(bundle)
        signature.write_text(json.dumps(bundle))

    return apply


def _payload(raw: bytes) -> Callable[[Path], None]:
    return _bundle(lambda b: b["dsseEnvelope"].update(payload=base64.b64encode(raw).decode()))


def _statement(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    return lambda signature: edit_payload(signature, edit)


def _raw(content: bytes | Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def apply(signature: Path) -> None:
        old = signature.read_bytes()
        signature.write_bytes(content(old) if callable(content) else content)

    return apply


def _first_resource(statement: dict[str, Any]) -> dict[str, Any]:
    return statement["predicate"]["resources"][0]


# (id, how model.sig is spoiled, words the finding must contain)
CASES: list[tuple[str, Callable[[Path], None], str]] = [
    ("corrupt", _raw(lambda b: b[:40] + b"\x00#corrupt#\x00" + b[60:]), "not valid JSON"),
    ("truncated", _raw(lambda b: b[: len(b) // 2]), "not valid JSON"),
    ("empty", _raw(b""), "empty"),
    ("whitespace", _raw(b" \n\t\n"), "empty"),
    ("not-json", _raw(b"this is not a signature\n"), "not valid JSON"),
    ("json-array", _raw(b'[{"mediaType": "x"}]'), "a JSON list, not a Sigstore bundle"),
    ("json-string", _raw(b'"model.sig"'), "a JSON str, not a Sigstore bundle"),
    ("binary", _raw(random.Random(7).randbytes(4096)), "not UTF-8"),
    ("deeply-nested", _raw(b"[" * 100_000), "nested too deeply"),
    ("deeply-nested-object", _raw(b'{"a":' * 100_000), "nested too deeply"),
    ("wrong-media-type", _bundle(lambda b: b.update(mediaType="application/json")), "mediaType"),
    (
        "no-verification-material",
        _bundle(lambda b: b.pop("verificationMaterial")),
        "no verificationMaterial",
    ),
    ("no-dsse-envelope", _bundle(lambda b: b.pop("dsseEnvelope")), "no DSSE envelope"),
    (
        "message-signature-bundle",
        _bundle(lambda b: b.update(messageSignature=b.pop("dsseEnvelope"))),
        "no DSSE envelope",
    ),
    (
        "wrong-payload-type",
        _bundle(lambda b: b["dsseEnvelope"].update(payloadType="text/plain")),
        "payloadType 'text/plain'",
    ),
    (
        "two-signatures",
        _bundle(lambda b: b["dsseEnvelope"]["signatures"].append({"sig": "AAAA"})),
        "exactly one signature",
    ),
    (
        "bad-base64-payload",
        _bundle(lambda b: b["dsseEnvelope"].update(payload="not*base64!")),
        "payload is not valid base64",
    ),
    (
        "bad-base64-signature",
        _bundle(lambda b: b["dsseEnvelope"]["signatures"][0].update(sig="%%%")),
        "signature is not valid base64",
    ),
    ("payload-not-json", _payload(b"not json at all"), "payload is not valid JSON"),
    ("payload-deeply-nested", _payload(b"[" * 100_000), "payload is not valid JSON"),
    ("payload-not-in-toto", _payload(b'{"hello": "world"}'), "not an in-toto"),
    (
        "wrong-predicate-type",
        _statement(lambda s: s.update(predicateType="https://slsa.dev/provenance/v1")),
        "predicateType 'https://slsa.dev/provenance/v1' is not an OpenSSF model signature",
    ),
    (
        "ignore-path-escapes",
        _statement(lambda s: s["predicate"]["serialization"]["ignore_paths"].append("../x")),
        "'../x' is not a relative path inside the model",
    ),
    (
        "absolute-resource-name",
        _statement(lambda s: _first_resource(s).update(name="/etc/passwd")),
        "'/etc/passwd' is not a relative path inside the model",
    ),
    (
        "resource-name-escapes",
        _statement(lambda s: _first_resource(s).update(name="../../.ssh/id_rsa")),
        "is not a relative path inside the model",
    ),
    (
        "digest-not-hex",
        _statement(lambda s: _first_resource(s).update(digest="zz" * 32)),
        "digest is not hexadecimal",
    ),
    (
        "unknown-serialization",
        _statement(lambda s: s["predicate"]["serialization"].update(method="tarball")),
        "serialization method 'tarball'",
    ),
]


@pytest.mark.parametrize(("spoil", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_signature_file_is_a_named_critical_finding(
    tmp_path: Path, valid_signature: bytes, key: KeyFiles, spoil, words: str
) -> None:
    model = build_demo_model(tmp_path / "tiny-llama")
    signature = model / "model.sig"
    signature.write_bytes(valid_signature)
    spoil(signature)
    report = scan(str(model), ScanOptions(trust=load_trust([key.public])))
    assert_malformed(report, words)
    # The report keeps the digest of the bytes it rejected (any file that could be read).
    assert (
        report.signatures.signatures[0].sha256 == hashlib.sha256(signature.read_bytes()).hexdigest()
    )


def assert_malformed(report, words: str, path: str = "model.sig") -> None:
    steps = {step.name: step.status for step in report.steps}
    assert steps["signatures"] == "completed", report.steps
    [check] = report.signatures.signatures
    assert check.path == path
    assert check.status == "malformed"
    assert words in (check.reason or ""), check.reason
    found = [f for f in report.findings if f.rule_id.startswith("SIG-")]
    assert [f.rule_id for f in found] == ["SIG-MALFORMED"], found
    assert found[0].severity == "critical"
    assert found[0].message.startswith(f"{path}: ")
    assert words in found[0].message


def test_a_valid_signature_passes_the_same_harness(
    tmp_path: Path, valid_signature: bytes, key: KeyFiles
) -> None:
    """The control: without spoiling, the copied bundle verifies over the fresh demo model."""
    model = build_demo_model(tmp_path / "tiny-llama")
    (model / "model.sig").write_bytes(valid_signature)
    report = scan(str(model), ScanOptions(trust=load_trust([key.public])))
    [check] = report.signatures.signatures
    assert (check.status, check.integrity) == ("verified", "match")


@pytest.mark.parametrize(
    ("limit", "value", "words"),
    [
        ("signature_max", 1000, "larger than 1000 bytes, the signature size limit"),
        ("signature_max_resources", 5, "lists 8 resources, over the limit of 5"),
        # the 4 ignore paths (git's) are over a limit of 3, checked before the 8 resources
        ("signature_max_resources", 3, "ignore_paths lists 4 paths, over the limit of 3"),
    ],
    ids=["bytes", "resources", "ignore-paths"],
)
def test_a_signature_over_a_limit_is_refused_at_the_limit(
    tmp_path: Path, valid_signature: bytes, key: KeyFiles, limit: str, value: int, words: str
) -> None:
    model = build_demo_model(tmp_path / "tiny-llama")
    (model / "model.sig").write_bytes(valid_signature)
    assert len(valid_signature) > 1000
    limits = dataclasses.replace(DEFAULT_LIMITS, **{limit: value})
    report = scan(str(model), ScanOptions(limits=limits, trust=load_trust([key.public])))
    assert_malformed(report, words)


def test_a_bad_signature_denies_through_the_command_line(
    tmp_path: Path, key: KeyFiles, cli
) -> None:
    model = build_demo_model(tmp_path / "tiny-llama")
    (model / "model.sig").write_bytes(b"[" * 100_000)
    result = cli("check", model, "--trusted-key", key.public)
    assert result.code == 1, result.out + result.err
    assert "SIG-MALFORMED" in result.out and "model.sig" in result.out


def test_a_signature_option_naming_no_file_is_a_usage_error(tmp_path: Path, cli) -> None:
    model = build_demo_model(tmp_path / "tiny-llama")
    missing = tmp_path / "nowhere" / "model.sig"
    result = cli("check", model, "--signature", missing)
    assert result.code == 2, result.out + result.err
    assert "--signature" in result.err and str(missing) in result.err
    assert "does not exist" in result.err
    assert "Traceback" not in result.err and result.out == ""


def test_an_unreadable_signature_is_a_named_finding(tmp_path: Path, key: KeyFiles) -> None:
    """A signature path that cannot be read (here a directory, given through the API, which
    has no click check in front of it) is SIG-MALFORMED naming the OS error, not a crash."""
    model = build_demo_model(tmp_path / "tiny-llama")
    folder = tmp_path / "a-directory.sig"
    folder.mkdir()
    report = scan(
        str(model), ScanOptions(signature_paths=(folder,), trust=load_trust([key.public]))
    )
    assert_malformed(report, "cannot be read (Is a directory)", path=str(folder))


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_signature_path_that_is_not_a_regular_file_is_refused_without_blocking(
    tmp_path: Path, key: KeyFiles, kind: str
) -> None:
    """A FIFO would block a plain open() forever and /dev/zero never ends: both are refused."""
    model = build_demo_model(tmp_path / "tiny-llama")
    if kind == "fifo":
        path = tmp_path / "pipe.sig"
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    options = ScanOptions(signature_paths=(path,), trust=load_trust([key.public]))
    reports = []
    worker = threading.Thread(target=lambda: reports.append(scan(str(model), options)), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), f"scan blocked on {path}"
    assert_malformed(reports[0], "not a regular file", path=str(path))
