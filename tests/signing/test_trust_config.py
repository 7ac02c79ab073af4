"""Is every unusable trust setting a usage error that names it, and is what was trusted recorded?

A key, CA or trusted root that cannot be used must stop the run (exit 2) before any verdict,
naming the file or config key: silently trusting less than the user asked for could turn a
"verified" into "unverified" unnoticed, and trusting more is worse.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fixtures.signing import KeyFiles, Pki, sign_with_model_signing
from provscan.errors import ConfigError
from provscan.signing.trust import EMBEDDED_SIGSTORE_ROOT, trust_from_config


def _public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"this is not a key\n", "not a PEM public key"),
        (b"", "not a PEM public key"),
        (_public_pem(rsa.generate_private_key(65537, 2048)), "a RSAPublicKey, not an EC P-256"),
        (_public_pem(ec.generate_private_key(ec.SECP256K1())), "not an EC P-256, P-384 or P-521"),
    ],
    ids=["not-pem", "empty", "rsa", "secp256k1"],
)
def test_unusable_trusted_key_is_a_usage_error(
    demo_model: Path, tmp_path: Path, cli, content: bytes, words: str
) -> None:
    path = tmp_path / "publisher.pub"
    path.write_bytes(content)
    result = cli("check", demo_model, "--trusted-key", path)
    assert result.code == 2, result.out + result.err
    assert f"trusted key {path}" in result.err and words in result.err
    assert result.out == ""


def test_a_private_key_given_as_trusted_key_is_refused(
    demo_model: Path, key: KeyFiles, cli
) -> None:
    result = cli("check", demo_model, "--trusted-key", key.private)
    assert result.code == 2
    assert str(key.private) in result.err and "not a PEM public key" in result.err


def test_missing_trust_files_are_usage_errors(demo_model: Path, tmp_path: Path, cli) -> None:
    missing = tmp_path / "absent.pem"
    for command in ("check", "inspect"):
        for option in ("--trusted-key", "--trusted-ca", "--sigstore-trusted-root"):
            result = cli(command, demo_model, option, missing)
            assert result.code == 2, (command, option, result.err)
            assert option in result.err and str(missing) in result.err, result.err
            assert "does not exist" in result.err or "No such file" in result.err


def test_a_trusted_ca_that_is_not_a_certificate_is_a_usage_error(
    demo_model: Path, key: KeyFiles, cli
) -> None:
    result = cli("check", demo_model, "--trusted-ca", key.public)
    assert result.code == 2
    assert f"trusted CA certificate {key.public}" in result.err


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"{}", "not a trusted_root.json"),
        (b"not json", "not a trusted_root.json"),
        (b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}', "not a trusted_root"),
    ],
    ids=["empty-object", "not-json", "a-bundle"],
)
def test_a_sigstore_trusted_root_that_is_not_one_is_a_usage_error(
    demo_model: Path, tmp_path: Path, cli, content: bytes, words: str
) -> None:
    path = tmp_path / "trusted_root.json"
    path.write_bytes(content)
    result = cli("check", demo_model, "--sigstore-trusted-root", path)
    assert result.code == 2, result.out + result.err
    assert f"Sigstore trusted root {path}" in result.err and words in result.err


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ('[trust]\nkeyz = ["a.pub"]\n', "trust.keyz: not a known setting (misspelt?)"),
        ('[trust]\nkeys = "a.pub"\n', "trust.keys: must be a list"),
        (
            '[trust]\nidentities = [{identity = "a@example.com"}]\n',
            "trust.identities[1]: issuer is required",
        ),
        (
            '[trust]\nidentities = [{identity = "a@example.com", identity_pattern = "a@.*", '
            'issuer = "https://accounts.google.com"}]\n',
            "trust.identities[1]: give exactly one of identity (exact) or identity_pattern (regex)",
        ),
        (
            '[trust]\nidentities = [{identity_pattern = "a@(", issuer = "https://x"}]\n',
            "entry 1: identity_pattern is not a regular expression",
        ),
        (
            '[trust]\nidentities = [{identity = "a", issuer = "https://x", email = "b"}]\n',
            "trust.identities[1].email: not a known setting",
        ),
        ('[trust]\nkeys = ["absent.pub"]\n', "absent.pub: cannot be read"),
    ],
    ids=[
        "unknown-key", "keys-not-list", "no-issuer", "both-identity-and-pattern", "bad-regex",
        "unknown-identity-field", "missing-key-file",
    ],
)  # fmt: skip
def test_a_bad_trust_table_is_a_usage_error(
    demo_model: Path, tmp_path: Path, cli, toml: str, words: str
) -> None:
    config = tmp_path / "provscan.toml"
    config.write_text(toml)
    result = cli("check", demo_model, "--config", config)
    assert result.code == 2, result.out + result.err
    assert words in result.err, result.err


def test_unequal_identity_and_issuer_counts_are_a_usage_error(demo_model: Path, cli) -> None:
    result = cli(
        "check", demo_model, "--trusted-identity", "a@example.com", "--trusted-identity",
        "b@example.com", "--trusted-issuer", "https://accounts.google.com",
    )  # fmt: skip
    assert result.code == 2
    assert "2 --trusted-identity but 1 --trusted-issuer" in result.err


def test_trust_from_config_reads_paths_relative_to_the_config_file(
    tmp_path: Path, key: KeyFiles, pki: Pki
) -> None:
    config_dir = tmp_path / "conf"
    config_dir.mkdir()
    (config_dir / "publisher.pub").write_bytes(key.public.read_bytes())
    (config_dir / "ca.pem").write_bytes(pki.root.read_bytes())
    trust = trust_from_config(
        {"trust": {"keys": ["publisher.pub"], "certificate_roots": ["ca.pem"]}}, config_dir
    )
    assert [k.fingerprint for k in trust.keys] == [key.fingerprint]
    assert [ca.fingerprint for ca in trust.cas] == [pki.root_fingerprint]
    assert trust.sigstore_root == EMBEDDED_SIGSTORE_ROOT
    with pytest.raises(ConfigError, match="unknown key"):
        trust_from_config({"trust": {"key": []}}, config_dir)


def test_a_config_trusted_key_verifies_from_another_working_directory(
    demo_model: Path, tmp_path: Path, key: KeyFiles, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_with_model_signing(demo_model, key)
    config_dir = tmp_path / "conf"
    config_dir.mkdir()
    (config_dir / "publisher.pub").write_bytes(key.public.read_bytes())
    (config_dir / "provscan.toml").write_text('[trust]\nkeys = ["publisher.pub"]\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = cli(
        "check", demo_model, "--config", config_dir / "provscan.toml", "--policy", "production",
        "--format", "json",
    )  # fmt: skip
    assert result.code == 0, [r["rule"] for r in result.json()["verdict"]["reasons"]]
    [check] = result.json()["signatures"]["signatures"]
    assert check["status"] == "verified"
    assert check["signer"]["trust_anchor"] == f"key:{key.fingerprint}"


def test_anchors_are_recorded_in_the_json_report(
    demo_model: Path, tmp_path: Path, key: KeyFiles, pki: Pki, other_pki: Pki, cli
) -> None:
    cas = tmp_path / "cas.pem"  # one file, two CA certificates: two anchors
    cas.write_bytes(pki.root.read_bytes() + other_pki.root.read_bytes())
    result = cli(
        "check", demo_model, "--trusted-key", key.public, "--trusted-key", key.public,
        "--trusted-ca", cas, "--format", "json",
    )  # fmt: skip
    assert result.code in (0, 4), result.err
    anchors = result.json()["signatures"]["anchors"]
    by_kind: dict[str, list[dict]] = {}
    for anchor in anchors:
        by_kind.setdefault(anchor["kind"], []).append(anchor)
    assert by_kind["key"] == [
        {
            "kind": "key",
            "fingerprint": key.fingerprint,
            "source": str(key.public),
            "name": "ecdsa-p256",
        }
    ]  # given twice, recorded once
    assert sorted(a["fingerprint"] for a in by_kind["ca"]) == sorted(
        [pki.root_fingerprint, other_pki.root_fingerprint]
    )
    assert {a["source"] for a in by_kind["ca"]} == {str(cas)}
    assert {a["name"] for a in by_kind["ca"]} == {"CN=Publisher Root CA", "CN=Unrelated Root CA"}
    [root] = by_kind["sigstore_root"]
    assert root["source"] == "embedded"
    assert root["fingerprint"] == hashlib.sha256(EMBEDDED_SIGSTORE_ROOT.read_bytes()).hexdigest()
