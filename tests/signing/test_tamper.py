"""Does provscan catch every change made to a signed model, and name what changed?

Each model is signed by model_signing with the publisher's key, then tampered with; provscan
is given that key as trusted. A change must be named (file, rule) and must deny.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from fixtures.models import build_demo_model
from fixtures.signing import KeyFiles, edit_payload, flip_signature_byte, sign_with_model_signing
from provscan.pipeline import ScanOptions, scan
from provscan.report import Finding, Report, SignatureCheck
from provscan.signing.trust import load_trust

WEIGHTS = "model.safetensors"


def scanned(model: Path, key: KeyFiles) -> tuple[SignatureCheck, Report]:
    report = scan(str(model), ScanOptions(trust=load_trust([key.public])))
    assert report.signatures is not None and len(report.signatures.signatures) == 1
    assert all(step.status == "completed" for step in report.steps), report.steps
    return report.signatures.signatures[0], report


def sig_findings(report: Report) -> list[Finding]:
    return [f for f in report.findings if f.rule_id.startswith("SIG-")]


def only_finding(report: Report, rule: str) -> Finding:
    found = sig_findings(report)
    assert [f.rule_id for f in found] == [rule], found
    assert found[0].severity == "critical"
    assert found[0].evidence["signature"] == "model.sig"
    return found[0]


def assert_denied_naming(cli, model: Path, key: KeyFiles, *names: str) -> None:
    result = cli("check", model, "--trusted-key", key.public)
    assert result.code == 1, result.out + result.err
    assert "VERDICT: DENY" in result.out
    for name in names:
        assert name in result.out, name


@pytest.fixture
def signed(demo_model: Path, key: KeyFiles) -> Path:
    sign_with_model_signing(demo_model, key)
    return demo_model


def test_untampered_control_is_verified_and_approved(signed: Path, key: KeyFiles, cli) -> None:
    check, report = scanned(signed, key)
    assert (check.status, check.integrity) == ("verified", "match")
    assert sig_findings(report) == []
    assert cli("check", signed, "--trusted-key", key.public).code == 0


def test_one_flipped_byte_in_the_weights_is_a_changed_file(
    signed: Path, key: KeyFiles, cli
) -> None:
    weights = signed / WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # the last tensor's last byte: the file still parses
    weights.write_bytes(bytes(data))
    check, report = scanned(signed, key)
    assert check.status == "verified"  # the signature itself is intact
    assert check.integrity == "mismatch"
    assert (check.changed, check.missing, check.extra) == ((WEIGHTS,), (), ())
    finding = only_finding(report, "SIG-FILE-CHANGED")
    assert finding.location is not None and finding.location.path == WEIGHTS
    assert WEIGHTS in finding.message
    assert_denied_naming(cli, signed, key, "SIG-FILE-CHANGED", WEIGHTS)


def test_an_added_file_is_an_extra_file(signed: Path, key: KeyFiles, cli) -> None:
    (signed / "backdoor.py").write_text("import os\n")
    check, report = scanned(signed, key)
    assert check.integrity == "mismatch"
    assert (check.changed, check.missing, check.extra) == ((), (), ("backdoor.py",))
    finding = only_finding(report, "SIG-FILE-EXTRA")
    assert finding.location is not None and finding.location.path == "backdoor.py"
    assert_denied_naming(cli, signed, key, "SIG-FILE-EXTRA", "backdoor.py")


def test_a_removed_file_is_a_missing_file(signed: Path, key: KeyFiles, cli) -> None:
    (signed / "tokenizer_config.json").unlink()
    check, report = scanned(signed, key)
    assert check.integrity == "mismatch"
    assert (check.changed, check.missing, check.extra) == ((), ("tokenizer_config.json",), ())
    finding = only_finding(report, "SIG-FILE-MISSING")
    assert finding.evidence["file"] == "tokenizer_config.json"
    assert "tokenizer_config.json" in finding.message
    assert_denied_naming(cli, signed, key, "SIG-FILE-MISSING", "tokenizer_config.json")


def test_a_renamed_file_is_missing_under_its_old_name_and_extra_under_the_new(
    signed: Path, key: KeyFiles, cli
) -> None:
    (signed / "generation_config.json").rename(signed / "generation_config.old.json")
    check, report = scanned(signed, key)
    assert check.integrity == "mismatch"
    assert check.missing == ("generation_config.json",)
    assert check.extra == ("generation_config.old.json",)
    assert check.changed == ()
    rules = sorted(f.rule_id for f in sig_findings(report))
    assert rules == ["SIG-FILE-EXTRA", "SIG-FILE-MISSING"]
    assert_denied_naming(cli, signed, key, "generation_config.json", "generation_config.old.json")


def test_a_signature_copied_from_another_model_does_not_match(
    demo_model: Path, tmp_path: Path, key: KeyFiles, cli
) -> None:
    other = build_demo_model(tmp_path / "other-model")
    readme = other / "README.md"
    readme.write_text(readme.read_text() + "\nA different model.\n")
    shutil.copy(sign_with_model_signing(other, key), demo_model / "model.sig")
    check, report = scanned(demo_model, key)
    assert check.status == "verified"  # a genuine signature, by the trusted key ...
    assert check.integrity == "mismatch"  # ... over other files
    assert check.changed == ("README.md",)
    only_finding(report, "SIG-FILE-CHANGED")
    assert_denied_naming(cli, demo_model, key, "README.md")


def _change_weights_digest(statement: dict, *, keep_consistent: bool) -> None:
    resources = statement["predicate"]["resources"]
    [entry] = [r for r in resources if r["name"] == WEIGHTS]
    entry["digest"] = hashlib.sha256(b"other weights").hexdigest()
    if keep_consistent:  # what a forger would do: fix the subject (root) digest too
        raw = b"".join(bytes.fromhex(r["digest"]) for r in resources)
        statement["subject"][0]["digest"]["sha256"] = hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize(
    ("keep_consistent", "rule", "status", "words"),
    [
        (False, "SIG-MALFORMED", "malformed", "inconsistent"),
        (True, "SIG-INVALID", "invalid", "does not verify"),
    ],
    ids=["digest-only", "digest-and-root"],
)
def test_an_edited_payload_digest_is_critical_and_denied(
    signed: Path, key: KeyFiles, cli, keep_consistent: bool, rule: str, status: str, words: str
) -> None:
    edit_payload(
        signed / "model.sig", lambda s: _change_weights_digest(s, keep_consistent=keep_consistent)
    )
    check, report = scanned(signed, key)
    assert check.status == status
    assert words in (check.reason or "")
    finding = [f for f in sig_findings(report) if f.rule_id == rule]
    assert len(finding) == 1 and finding[0].severity == "critical"
    assert "model.sig" in finding[0].message and words in finding[0].message
    assert_denied_naming(cli, signed, key, rule, "model.sig")


def test_a_signature_by_an_untrusted_key_is_unverified(
    demo_model: Path, key: KeyFiles, other_key: KeyFiles, cli
) -> None:
    sign_with_model_signing(demo_model, other_key)
    check, report = scanned(demo_model, key)
    assert check.status == "unverified"
    assert check.integrity == "match"  # the files are what the stranger signed
    assert check.signer is not None
    assert check.signer.key_fingerprint == other_key.fingerprint != key.fingerprint
    assert check.signer.trust_anchor is None
    assert other_key.fingerprint in (check.reason or "")
    [finding] = sig_findings(report)
    assert (finding.rule_id, finding.severity) == ("SIG-UNVERIFIED", "info")

    review = cli("check", demo_model, "--trusted-key", key.public, "--format", "json")
    assert review.code == 4
    [untrusted] = [
        r for r in review.json()["verdict"]["reasons"] if r["rule"] == "POL-SIG-UNTRUSTED"
    ]
    assert untrusted["level"] == "review"
    assert other_key.fingerprint in untrusted["msg"]
    production = cli("check", demo_model, "--trusted-key", key.public, "--policy", "production")
    assert production.code == 1
    assert "POL-SIG-REQUIRED" in production.out


def test_altered_signature_bytes_with_the_right_key_are_invalid(
    signed: Path, key: KeyFiles, cli
) -> None:
    flip_signature_byte(signed / "model.sig")
    check, report = scanned(signed, key)
    assert check.status == "invalid"
    assert check.signer is not None and check.signer.trust_anchor is None
    finding = only_finding(report, "SIG-INVALID")
    assert finding.location is not None and finding.location.path == "model.sig"
    assert_denied_naming(cli, signed, key, "SIG-INVALID", "model.sig")


@pytest.mark.parametrize(
    ("ignored", "role", "loader_read"),
    [
        ("notes.txt", "other", True),
        ("config.json", "config", True),
        ("diagram.png", "other", False),
    ],
    ids=["notes", "config", "picture"],
)
def test_a_file_the_signer_ignored_is_not_covered_not_extra(
    demo_model: Path, key: KeyFiles, ignored: str, role: str, loader_read: bool
) -> None:
    (demo_model / "notes.txt").write_text("unsigned notes\n")
    (demo_model / "diagram.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    sign_with_model_signing(demo_model, key, ignore=[ignored])
    check, report = scanned(demo_model, key)
    assert check.serialization is not None and ignored in check.serialization.ignore_paths
    assert check.status == "verified"
    assert check.integrity == "match"
    assert check.extra == ()
    [entry] = check.not_covered
    assert (entry.path, entry.role, entry.reason) == (ignored, role, "ignored")
    assert entry.loader_read is loader_read and bool(entry.read_by) is loader_read
    # The finding records the fact; the policy decides (POL-SIG-NOT-COVERED).
    [finding] = sig_findings(report)
    assert finding.rule_id == "SIG-NOT-COVERED"
    assert finding.severity == "info"
    assert finding.location is not None and finding.location.path == ignored
    assert finding.evidence["loader_read"] is loader_read


def test_a_strangers_signature_naming_the_trusted_key_is_invalid(
    demo_model: Path, key: KeyFiles, other_key: KeyFiles, cli
) -> None:
    """The key hint is not signed: rewriting it to the trusted key's fingerprint must not help."""
    signature = sign_with_model_signing(demo_model, other_key)
    bundle = json.loads(signature.read_text())
    bundle["verificationMaterial"]["publicKey"]["hint"] = key.fingerprint
    signature.write_text(json.dumps(bundle))
    check, report = scanned(demo_model, key)
    assert check.status == "invalid"
    assert check.signer is not None and check.signer.trust_anchor is None
    only_finding(report, "SIG-INVALID")
    assert_denied_naming(cli, demo_model, key, "SIG-INVALID", "model.sig")


def _drop_key_hint(signature: Path) -> None:
    bundle = json.loads(signature.read_text())
    del bundle["verificationMaterial"]["publicKey"]["hint"]  # optional in a Sigstore bundle
    signature.write_text(json.dumps(bundle))


def test_a_signature_without_key_hint_is_tried_with_each_trusted_key(
    signed: Path, key: KeyFiles, other_key: KeyFiles
) -> None:
    _drop_key_hint(signed / "model.sig")
    trust = load_trust([other_key.public, key.public])
    [check] = scan(str(signed), ScanOptions(trust=trust)).signatures.signatures
    assert (check.status, check.integrity) == ("verified", "match")
    assert check.signer is not None and check.signer.trust_anchor == f"key:{key.fingerprint}"
    [alone] = scan(str(signed), ScanOptions(trust=load_trust())).signatures.signatures
    assert alone.status == "unverified"
    assert "does not name" in (alone.reason or "")


def test_a_hintless_signature_by_an_unknown_key_is_unverified_not_invalid(
    signed: Path, key: KeyFiles, other_key: KeyFiles
) -> None:
    _drop_key_hint(signed / "model.sig")  # signed by `key`; only `other_key` is trusted
    trust = load_trust([other_key.public])
    [check] = scan(str(signed), ScanOptions(trust=trust)).signatures.signatures
    assert check.status == "unverified", check.reason
