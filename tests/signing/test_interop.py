"""Does provscan agree with model_signing, the reference OMS implementation, both ways?

Signatures made by model_signing (its API and its command line) must verify in provscan,
and signatures made by `provscan sign` must verify in model_signing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from model_signing import hashing, signing, verifying

from fixtures.signing import KeyFiles, Pki, sign_with_model_signing, write_key
from provscan.pipeline import ScanOptions, scan
from provscan.report import Report, SignatureCheck
from provscan.signing.trust import load_trust


def model_signing_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_signing", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def scanned(model: Path, *, keys: tuple[Path, ...] = (), cas: tuple[Path, ...] = ()) -> Report:
    return scan(str(model), ScanOptions(trust=load_trust(keys, cas)))


def only_signature(report: Report) -> SignatureCheck:
    assert report.signatures is not None
    assert len(report.signatures.signatures) == 1, report.signatures
    return report.signatures.signatures[0]


def signature_rules(report: Report) -> list[str]:
    return [f.rule_id for f in report.findings if f.rule_id.startswith("SIG-")]


def assert_key_verified(report: Report, key: KeyFiles, key_type: str = "ecdsa-p256") -> None:
    check = only_signature(report)
    assert check.status == "verified", check.reason
    assert check.integrity == "match"
    assert check.signer is not None
    assert check.signer.method == "key"
    assert check.signer.key_fingerprint == key.fingerprint
    assert check.signer.key_type == key_type
    assert check.signer.trust_anchor == f"key:{key.fingerprint}"
    assert signature_rules(report) == []


def verdict_rules(result) -> list[str]:
    return [reason["rule"] for reason in result.json()["verdict"]["reasons"]]


def test_model_signing_api_key_signature_is_verified_and_admitted(
    demo_model: Path, key: KeyFiles, provscan, cli
) -> None:
    sign_with_model_signing(demo_model, key)
    assert_key_verified(scanned(demo_model, keys=(key.public,)), key)

    # In a child process, as CI runs it; the other tests run the same entry point in-process.
    result = provscan(
        "check", str(demo_model), "--trusted-key", str(key.public), "--policy", "production",
        "--format", "json",
    )  # fmt: skip
    rules = verdict_rules(result)
    assert not [r for r in rules if r.startswith(("POL-SIG-", "SIG-"))], rules
    assert result.code == 0, rules  # the demo model has nothing else that stops it

    # The same model without the trusted key: production refuses it.
    refused = cli("check", demo_model, "--policy", "production", "--format", "json")
    assert refused.code == 1
    assert {"POL-SIG-REQUIRED", "POL-SIG-UNTRUSTED"} <= set(verdict_rules(refused))


def test_model_signing_cli_key_signature_is_verified(demo_model: Path, key: KeyFiles) -> None:
    signature = demo_model / "model.sig"
    made = model_signing_cli(
        "sign", "key", demo_model, "--private_key", key.private, "--signature", signature
    )
    assert made.returncode == 0, made.stderr
    assert_key_verified(scanned(demo_model, keys=(key.public,)), key)


@pytest.mark.parametrize("curve", ["p384", "p521"])
def test_p384_and_p521_keys_verify(demo_model: Path, tmp_path: Path, curve: str) -> None:
    key = write_key(tmp_path / "keys", curve, curve)
    sign_with_model_signing(demo_model, key)
    assert_key_verified(scanned(demo_model, keys=(key.public,)), key, f"ecdsa-{curve}")


def assert_certificate_verified(report: Report, pki: Pki) -> None:
    check = only_signature(report)
    assert check.status == "verified", check.reason
    assert check.integrity == "match"
    assert check.signer is not None
    assert check.signer.method == "certificate"
    assert check.signer.certificate_subject == pki.leaf_subject
    assert check.signer.trust_anchor == f"ca:{pki.root_fingerprint}"
    assert signature_rules(report) == []


def test_model_signing_api_certificate_signature(
    demo_model: Path, pki: Pki, other_pki: Pki
) -> None:
    sign_with_model_signing(demo_model, pki)
    assert_certificate_verified(scanned(demo_model, cas=(pki.root,)), pki)

    untrusted = only_signature(scanned(demo_model))
    assert untrusted.status == "unverified"
    assert pki.leaf_subject in (untrusted.reason or "")
    assert "no trusted CA" in (untrusted.reason or "")

    unrelated = only_signature(scanned(demo_model, cas=(other_pki.root,)))
    assert unrelated.status == "unverified"
    assert pki.leaf_subject in (unrelated.reason or "")
    assert "does not lead to a trusted CA" in (unrelated.reason or "")
    assert unrelated.signer is not None and unrelated.signer.trust_anchor is None


def test_model_signing_cli_certificate_signature(demo_model: Path, pki: Pki, cli) -> None:
    made = model_signing_cli(
        "sign", "certificate", demo_model, "--private_key", pki.leaf_key.private,
        "--signing_certificate", pki.leaf, "--certificate_chain", pki.intermediate,
        "--certificate_chain", pki.root, "--signature", demo_model / "model.sig",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    result = cli("check", str(demo_model), "--trusted-ca", str(pki.root), "--format", "json")
    check = result.json()["signatures"]["signatures"][0]
    assert check["status"] == "verified", check["reason"]
    assert check["integrity"] == "match"
    assert check["signer"]["trust_anchor"] == f"ca:{pki.root_fingerprint}"
    assert result.code == 0, verdict_rules(result)


def test_model_signing_shard_serialization_drives_hashing(demo_model: Path, key: KeyFiles) -> None:
    sign_with_model_signing(demo_model, key, shard=1000)
    report = scanned(demo_model, keys=(key.public,))
    assert_key_verified(report, key)
    assert report.parameters.serialization == "shards"
    assert report.parameters.shard_size == 1000
    check = only_signature(report)
    assert check.serialization is not None and check.serialization.shard_size == 1000
    assert report.manifest is not None
    weights = [r for r in report.manifest.resources if r.name.startswith("model.safetensors:")]
    size = (demo_model / "model.safetensors").stat().st_size
    assert len(weights) == -(-size // 1000) > 1


def verify_in_model_signing(model: Path, key: KeyFiles) -> None:
    """model_signing's API and CLI both accept the signature at MODEL/model.sig."""
    config = verifying.Config().use_elliptic_key_verifier(public_key=key.public)
    config.verify(model, model / "model.sig")  # raises on any mismatch
    theirs = model_signing_cli(
        "verify", "key", model, "--public_key", key.public, "--signature", model / "model.sig"
    )
    assert theirs.returncode == 0, theirs.stdout + theirs.stderr


def test_provscan_key_signature_verifies_in_model_signing(
    demo_model: Path, key: KeyFiles, cli
) -> None:
    result = cli("sign", str(demo_model), "--key", str(key.private))
    assert result.code == 0, result.err
    verify_in_model_signing(demo_model, key)
    assert_key_verified(scanned(demo_model, keys=(key.public,)), key)


def test_provscan_certificate_signature_verifies_in_model_signing(
    demo_model: Path, pki: Pki, cli
) -> None:
    result = cli(
        "sign", str(demo_model), "--key", str(pki.leaf_key.private), "--certificate",
        str(pki.leaf), "--chain", str(pki.intermediate), "--chain", str(pki.root),
    )  # fmt: skip
    assert result.code == 0, result.err
    signature = demo_model / "model.sig"
    verifying.Config().use_certificate_verifier(certificate_chain=[pki.root]).verify(
        demo_model, signature
    )
    theirs = model_signing_cli(
        "verify", "certificate", demo_model, "--signature", signature,
        "--certificate_chain", pki.root,
    )  # fmt: skip
    assert theirs.returncode == 0, theirs.stdout + theirs.stderr
    assert_certificate_verified(scanned(demo_model, cas=(pki.root,)), pki)


def test_provscan_shard_signature_verifies_in_model_signing(
    demo_model: Path, key: KeyFiles, cli
) -> None:
    result = cli(
        "sign", str(demo_model), "--key", str(key.private), "--serialization", "shards",
        "--shard-size", "1000",
    )  # fmt: skip
    assert result.code == 0, result.err
    # model_signing 1.1.1 cannot guess a shard signature's hashing (the shard size comes back
    # from its protobuf Struct as 1000.0 and range() refuses a float): give it explicitly.
    shards = hashing.Config().set_ignored_paths(paths=[demo_model / "model.sig"])
    config = verifying.Config().use_elliptic_key_verifier(public_key=key.public)
    config.set_hashing_config(shards.use_shard_serialization(shard_size=1000))
    config.verify(demo_model, demo_model / "model.sig")
    report = scanned(demo_model, keys=(key.public,))
    assert_key_verified(report, key)
    assert report.parameters.shard_size == 1000


def test_provscan_signs_with_a_password_protected_key(
    demo_model: Path, tmp_path: Path, cli
) -> None:
    key = write_key(tmp_path / "keys", "locked", password=b"correct horse")
    result = cli(
        "sign", str(demo_model), "--key", str(key.private), "--password-env", "MODEL_KEY_PW",
        env={"MODEL_KEY_PW": "correct horse"},
    )  # fmt: skip
    assert result.code == 0, result.err
    verify_in_model_signing(demo_model, key)

    wrong = cli(
        "sign", str(demo_model), "--key", str(key.private), "--password-env", "MODEL_KEY_PW",
        "--force", env={"MODEL_KEY_PW": "wrong"},
    )  # fmt: skip
    assert wrong.code == 2
    assert str(key.private) in wrong.err and "not a usable PEM private key" in wrong.err

    unset = cli(
        "sign", str(demo_model), "--key", str(key.private), "--password-env", "NO_SUCH_VAR_XYZ",
        "--force",
    )  # fmt: skip
    assert unset.code == 2
    assert "NO_SUCH_VAR_XYZ" in unset.err

    # Neither failed attempt touched the good signature.
    verify_in_model_signing(demo_model, key)


def test_existing_signature_is_not_overwritten_without_force(
    demo_model: Path, key: KeyFiles, other_key: KeyFiles, cli
) -> None:
    signature = sign_with_model_signing(demo_model, key)
    before = signature.read_bytes()
    refused = cli("sign", str(demo_model), "--key", str(other_key.private))
    assert refused.code == 2
    assert "--force" in refused.err and str(signature) in refused.err
    assert signature.read_bytes() == before

    forced = cli("sign", str(demo_model), "--key", str(other_key.private), "--force")
    assert forced.code == 0, forced.err
    assert signature.read_bytes() != before
    assert_key_verified(scanned(demo_model, keys=(other_key.public,)), other_key)


def test_model_signing_signature_object_round_trip_matches_provscan_manifest(
    demo_model: Path, key: KeyFiles
) -> None:
    """provscan's own manifest root digest is the one model_signing signs."""
    signing.Config().use_elliptic_key_signer(private_key=key.private).sign(
        demo_model, demo_model / "model.sig"
    )
    report = scanned(demo_model, keys=(key.public,))
    check = only_signature(report)
    assert report.manifest is not None
    assert check.signed_root_digest == report.manifest.root_digest


def test_model_signing_single_file_signature(
    demo_model: Path, tmp_path: Path, key: KeyFiles
) -> None:
    """model_signing names a single-file model's one resource "."; provscan maps it to the file."""
    weights, signature = demo_model / "model.safetensors", tmp_path / "weights.sig"
    signing.Config().use_elliptic_key_signer(private_key=key.private).sign(weights, signature)
    options = ScanOptions(signature_paths=(signature,), trust=load_trust([key.public]))
    check = only_signature(scan(str(weights), options))
    assert (check.status, check.integrity) == ("verified", "match"), check.reason

    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    tampered = only_signature(scan(str(weights), options))
    assert tampered.integrity == "mismatch"
    assert tampered.changed == ("model.safetensors",)


def test_a_blake2_signature_is_compared_by_rehashing(demo_model: Path, key: KeyFiles) -> None:
    """Only a SHA-256 signature drives the hashing step; any other is checked by a second read."""
    blake2 = hashing.Config().use_file_serialization(hashing_algorithm="blake2")
    config = signing.Config().set_hashing_config(blake2)
    config.use_elliptic_key_signer(private_key=key.private).sign(
        demo_model, demo_model / "model.sig"
    )
    report = scanned(demo_model, keys=(key.public,))
    check = only_signature(report)
    assert (check.status, check.integrity) == ("verified", "match"), check.reason
    assert check.serialization is not None and check.serialization.hash_type.startswith("blake2")
    assert check.compared_with == "rehash"
    assert report.manifest is not None and report.manifest.hash_type == "sha256"

    (demo_model / "config.json").write_text("{}\n")
    changed = only_signature(scanned(demo_model, keys=(key.public,)))
    assert (changed.integrity, changed.changed) == ("mismatch", ("config.json",))


def test_the_models_own_signature_given_again_is_checked_once(
    demo_model: Path, key: KeyFiles
) -> None:
    signature = sign_with_model_signing(demo_model, key)
    options = ScanOptions(signature_paths=(signature,), trust=load_trust([key.public]))
    check = only_signature(scan(str(demo_model), options))
    assert check.path == "model.sig"
    assert check.compared_with == "manifest"
