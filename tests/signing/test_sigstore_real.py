"""Does a real, production Sigstore model signature verify offline, and fail when tampered with?

The data is the real keyless signature from sigstore/model-transparency's v1.1.0 tests
(tests/data/sigstore/README.md) over a two-file model rebuilt here byte for byte. Every test
in this module runs with the network switched off in this process; one more runs the command
line in a child process with dead proxies and an unwritable HOME.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import socket
import urllib.request
from pathlib import Path

import pytest

from fixtures.signing import edit_payload, flip_signature_byte
from provscan.pipeline import ScanOptions, scan
from provscan.report import Report, SignatureCheck
from provscan.signing.bundle import read_envelope
from provscan.signing.trust import load_trust
from provscan.signing.verify import verify_signature

DATA = Path(__file__).resolve().parent.parent / "data" / "sigstore"
BUNDLE = DATA / "model-transparency-v1.1.0-sigstore.model.sig"
NPM_BUNDLE = DATA / "npm-sigstore-3.1.0.sigstore.json"
TRUSTED_ROOT = DATA / "production-trusted-root.json"
ROOT_SHA256 = "6494e21ea73fa7ee769f85f57d5a3e6a08725eae1e38c755fc3517c9e6bc0b66"
IDENTITY = "stefanb@us.ibm.com"
ISSUER = "https://sigstore.verify.ibm.com/oauth2"
LOG_INDEX = 598151086


class NetworkUsed(AssertionError):
    pass


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection or name lookup from this process fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise NetworkUsed(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """The signed model: `signme-1` and `signme-2` (8 bytes each, no newline), and model.sig."""
    directory = tmp_path / "v1.1.0-sigstore"
    directory.mkdir()
    (directory / "signme-1").write_bytes(b"signme-1")
    (directory / "signme-2").write_bytes(b"signme-2")
    shutil.copy(BUNDLE, directory / "model.sig")
    return directory


def checked(model: Path, **trust: Path) -> tuple[SignatureCheck, Report]:
    report = scan(str(model), ScanOptions(trust=load_trust(**trust)))
    assert report.signatures is not None and len(report.signatures.signatures) == 1
    return report.signatures.signatures[0], report


def sig_rules(report: Report) -> list[str]:
    return sorted(f.rule_id for f in report.findings if f.rule_id.startswith("SIG-"))


def policy_rules(result) -> dict[str, str]:
    return {r["rule"]: r["level"] for r in result.json()["verdict"]["reasons"]}


def test_the_network_guard_works() -> None:
    with pytest.raises(NetworkUsed):
        urllib.request.urlopen("https://tuf-repo-cdn.sigstore.dev/", timeout=5)  # noqa: S310


def test_real_keyless_signature_verifies_offline_with_the_embedded_root(model: Path) -> None:
    check, report = checked(model)
    assert check.status == "verified", check.reason
    assert check.integrity == "match"
    signer = check.signer
    assert signer is not None
    assert signer.method == "sigstore"
    assert signer.identity == IDENTITY
    assert signer.oidc_issuer == ISSUER
    assert signer.tlog is not None and signer.tlog.log_index == LOG_INDEX
    assert signer.tlog.integrated_time is not None
    assert int(signer.tlog.integrated_time.timestamp()) == 1760062340
    assert signer.trust_anchor == f"sigstore:{ROOT_SHA256}"
    assert check.signed_files == 2
    assert "ignore-me" in check.serialization.ignore_paths
    assert sig_rules(report) == []
    assert hashlib.sha256(TRUSTED_ROOT.read_bytes()).hexdigest() == ROOT_SHA256


def test_real_signature_verifies_with_an_explicit_trusted_root(model: Path, cli) -> None:
    result = cli("check", model, "--sigstore-trusted-root", TRUSTED_ROOT, "--format", "json")
    report = result.json()
    [check] = report["signatures"]["signatures"]
    assert check["status"] == "verified", check["reason"]
    assert check["integrity"] == "match"
    assert check["signer"]["identity"] == IDENTITY
    assert check["signer"]["tlog"]["log_index"] == LOG_INDEX
    assert check["signer"]["trust_anchor"] == f"sigstore:{ROOT_SHA256}"
    [anchor] = [a for a in report["signatures"]["anchors"] if a["kind"] == "sigstore_root"]
    assert anchor["source"] == str(TRUSTED_ROOT)
    assert anchor["fingerprint"] == ROOT_SHA256


def test_a_trusted_root_without_the_issuing_fulcio_ca_does_not_verify(
    model: Path, tmp_path: Path
) -> None:
    root = json.loads(TRUSTED_ROOT.read_text())
    root["certificateAuthorities"] = root["certificateAuthorities"][:1]  # only the 2021-22 CA
    edited = tmp_path / "trusted_root.json"
    edited.write_text(json.dumps(root))
    check, report = checked(model, sigstore_root=edited)
    assert check.status == "invalid"
    assert check.signer is not None and check.signer.trust_anchor is None
    assert sig_rules(report) == ["SIG-INVALID"]


def test_default_policy_asks_for_review_of_an_unlisted_identity(model: Path, cli) -> None:
    result = cli("check", model, "--format", "json")
    rules = policy_rules(result)
    assert rules.get("POL-SIG-UNTRUSTED") == "review"
    [reason] = [r for r in result.json()["verdict"]["reasons"] if r["rule"] == "POL-SIG-UNTRUSTED"]
    assert IDENTITY in reason["msg"] and ISSUER in reason["msg"] and str(LOG_INDEX) in reason["msg"]
    assert result.code == 4


def test_trusted_identity_and_issuer_make_it_trusted(model: Path, cli) -> None:
    result = cli(
        "check", model, "--trusted-identity", IDENTITY, "--trusted-issuer", ISSUER,
        "--format", "json",
    )  # fmt: skip
    assert not [r for r in policy_rules(result) if r.startswith(("POL-SIG-", "SIG-"))]


def test_right_identity_with_another_issuer_is_not_trusted(model: Path, cli) -> None:
    result = cli(
        "check", model, "--trusted-identity", IDENTITY, "--trusted-issuer",
        "https://accounts.google.com", "--format", "json",
    )  # fmt: skip
    assert policy_rules(result).get("POL-SIG-UNTRUSTED") == "review"


@pytest.mark.parametrize(
    ("pattern", "trusted"),
    [
        ("stefanb@.*[.]ibm[.]com", True),
        ("stefanb@.*[.]google[.]com", False),
        ("stefanb", False),  # the pattern must match the whole identity, not a part
        (".*@us[.]ibm[.]com[.]evil[.]example", False),
    ],
    ids=["matching", "other-domain", "partial", "longer"],
)
def test_identity_pattern_from_the_config_file(
    model: Path, tmp_path: Path, cli, pattern: str, trusted: bool
) -> None:
    config = tmp_path / "provscan.toml"
    config.write_text(
        f'[trust]\nidentities = [{{identity_pattern = "{pattern}", issuer = "{ISSUER}"}}]\n'
    )
    result = cli("check", model, "--config", config, "--format", "json")
    assert result.code in (0, 4), result.err
    assert ("POL-SIG-UNTRUSTED" not in policy_rules(result)) is trusted


def _tamper_inclusion_proof(signature: Path) -> None:
    bundle = json.loads(signature.read_text())
    hashes = bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"]
    raw = bytearray(base64.b64decode(hashes[3]))
    raw[0] ^= 0x01
    hashes[3] = base64.b64encode(bytes(raw)).decode()
    signature.write_text(json.dumps(bundle))


def _rename_subject(signature: Path) -> None:
    """A payload change that keeps the statement self-consistent, so sigstore must catch it."""
    edit_payload(signature, lambda s: s["subject"][0].update(name="v1.1.0-sigstorf"))


@pytest.mark.parametrize(
    ("tamper", "words"),
    [
        (_rename_subject, "DSSE: invalid signature"),
        (flip_signature_byte, "DSSE: invalid signature"),
        (_tamper_inclusion_proof, "inclusion proof"),
    ],
    ids=["payload-subject-name", "signature-bytes", "inclusion-proof-hash"],
)
def test_a_tampered_bundle_is_invalid(model: Path, cli, tamper, words: str) -> None:
    tamper(model / "model.sig")
    check, report = checked(model)
    assert check.status == "invalid"
    assert "Sigstore verification failed" in (check.reason or "")
    assert words in (check.reason or "")
    assert check.signer is not None and check.signer.trust_anchor is None
    assert sig_rules(report) == ["SIG-INVALID"]
    result = cli("check", model, "--trusted-identity", IDENTITY, "--trusted-issuer", ISSUER)
    assert result.code == 1
    assert "SIG-INVALID" in result.out


def test_an_edited_resource_digest_is_caught_before_sigstore(model: Path) -> None:
    def edit(statement: dict) -> None:
        statement["predicate"]["resources"][0]["digest"] = "00" * 32

    edit_payload(model / "model.sig", edit)
    check, report = checked(model)
    assert check.status == "malformed"
    assert "inconsistent" in (check.reason or "")
    assert sig_rules(report) == ["SIG-MALFORMED"]


def test_a_changed_model_file_is_verified_but_mismatched(model: Path, cli) -> None:
    (model / "signme-1").write_bytes(b"signme-X")
    check, report = checked(model)
    assert check.status == "verified"
    assert check.integrity == "mismatch"
    assert check.changed == ("signme-1",)
    assert sig_rules(report) == ["SIG-FILE-CHANGED"]
    [finding] = [f for f in report.findings if f.rule_id == "SIG-FILE-CHANGED"]
    assert finding.location is not None and finding.location.path == "signme-1"
    result = cli("check", model, "--trusted-identity", IDENTITY, "--trusted-issuer", ISSUER)
    assert result.code == 1
    assert "signme-1" in result.out


def test_the_signers_ignored_file_is_reported_not_covered(model: Path) -> None:
    (model / "ignore-me").write_bytes(b"anything")
    check, report = checked(model)
    assert (check.status, check.integrity) == ("verified", "match")
    assert [(e.path, e.reason, e.loader_read) for e in check.not_covered] == [
        ("ignore-me", "ignored", True)  # an unknown file may be read by anything
    ]
    assert sig_rules(report) == ["SIG-NOT-COVERED"]


def test_npm_bundle_is_reported_as_not_a_model_signature(model: Path, cli) -> None:
    """A real DSSE bundle, but SLSA provenance: as a model signature it is malformed."""
    (model / "model.sig").unlink()
    result = cli("check", model, "--signature", NPM_BUNDLE, "--format", "json")
    report = result.json()
    [check] = report["signatures"]["signatures"]
    assert check["status"] == "malformed"
    assert "'https://slsa.dev/provenance/v1' is not an OpenSSF model signature" in check["reason"]
    assert policy_rules(result).get("SIG-MALFORMED") == "deny"
    assert result.code == 1


def test_npm_bundle_log_entry_type_is_honestly_unverified() -> None:
    """Its envelope alone: sigstore 4.5.1 cannot check an intoto/0.0.2 log entry, and provscan
    says so (unverified) rather than calling it invalid or valid."""
    envelope = read_envelope(NPM_BUNDLE, 1024 * 1024)
    result = verify_signature(envelope, load_trust())
    assert result.status == "unverified"
    assert "intoto/0.0.2" in (result.reason or "")
    assert result.signer.method == "sigstore"
    assert result.signer.tlog is not None and result.signer.tlog.log_index == 168704762
    assert result.signer.identity == (
        "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main"
    )
    assert result.signer.oidc_issuer == "https://token.actions.githubusercontent.com"
    assert result.signer.trust_anchor is None


def test_command_line_verifies_with_dead_proxies_and_no_writable_home(
    model: Path, tmp_path: Path, provscan
) -> None:
    home = tmp_path / "home-is-a-file"
    home.write_text("not a directory")
    dead = "http://127.0.0.1:9"
    env = {
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "HTTPS_PROXY": dead, "HTTP_PROXY": dead, "https_proxy": dead, "http_proxy": dead,
        "NO_PROXY": "", "no_proxy": "",
    }  # fmt: skip
    result = provscan("check", str(model), "--format", "json", "-q", env=env, cwd=tmp_path)
    assert result.code in (0, 4), result.err
    [check] = result.json()["signatures"]["signatures"]
    assert check["status"] == "verified", check["reason"]
    assert check["signer"]["identity"] == IDENTITY
