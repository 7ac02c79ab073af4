"""Can a team sign the AI-BOM it produced, and does any change to that BOM show?

`provscan check --bom`, then `provscan sign-bom`, then `provscan verify-bom`: exit 0 when
the BOM is unchanged and signed by a trusted key or CA, 1 when it was changed or the
signature is not a signed BOM, 4 when nothing given can check the signature or there is none.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.signing import KeyFiles, Pki, sign_with_model_signing
from provscan.signing.bom import BOM_PREDICATE_TYPE
from provscan.signing.bundle import read_envelope


@pytest.fixture
def bom(demo_model: Path, tmp_path: Path, cli) -> Path:
    path = tmp_path / "tiny-llama.cdx.json"
    result = cli("check", demo_model, "--bom", path, "-q")
    assert result.code == 0, result.out + result.err
    assert json.loads(path.read_text())["bomFormat"] == "CycloneDX"
    return path


def test_signed_bom_verifies_with_the_trusted_key(bom: Path, key: KeyFiles, cli) -> None:
    signed = cli("sign-bom", bom, "--key", key.private)
    assert signed.code == 0, signed.err
    signature = bom.with_name(bom.name + ".sig")
    envelope = read_envelope(signature, 64 * 1024 * 1024)
    statement = json.loads(envelope.payload)
    assert statement["predicateType"] == BOM_PREDICATE_TYPE
    assert envelope.method == "key"

    result = cli("verify-bom", bom, "--trusted-key", key.public)
    assert result.code == 0, result.out + result.err
    assert result.out.startswith(f"VERIFIED {bom}")
    assert key.fingerprint in result.out


def test_a_bom_changed_by_one_byte_is_refused(bom: Path, key: KeyFiles, cli) -> None:
    assert cli("sign-bom", bom, "--key", key.private).code == 0
    text = bom.read_text()
    assert '"tiny-llama"' in text
    bom.write_text(text.replace('"tiny-llama"', '"tiny-llamb"', 1))  # one byte, still JSON
    result = cli("verify-bom", bom, "--trusted-key", key.public)
    assert result.code == 1, result.out + result.err
    assert result.out.startswith(f"INVALID {bom}")
    assert "changed after signing" in result.out


def test_a_bom_signed_by_another_key_needs_review(
    bom: Path, key: KeyFiles, other_key: KeyFiles, cli
) -> None:
    assert cli("sign-bom", bom, "--key", other_key.private).code == 0
    result = cli("verify-bom", bom, "--trusted-key", key.public)
    assert result.code == 4, result.out + result.err
    assert result.out.startswith(f"UNVERIFIED {bom}")
    assert other_key.fingerprint in result.out


def test_certificate_signed_bom_verifies_with_the_trusted_ca(
    bom: Path, pki: Pki, other_pki: Pki, cli
) -> None:
    signed = cli(
        "sign-bom", bom, "--key", pki.leaf_key.private, "--certificate", pki.leaf,
        "--chain", pki.intermediate, "--chain", pki.root,
    )  # fmt: skip
    assert signed.code == 0, signed.err
    result = cli("verify-bom", bom, "--trusted-ca", pki.root)
    assert result.code == 0, result.out + result.err
    assert pki.leaf_subject in result.out and pki.root_fingerprint in result.out
    unrelated = cli("verify-bom", bom, "--trusted-ca", other_pki.root)
    assert unrelated.code == 4, unrelated.out + unrelated.err
    assert unrelated.out.startswith("UNVERIFIED")


def test_a_bom_without_a_signature_needs_review(bom: Path, key: KeyFiles, cli) -> None:
    """No BOM.sig beside the BOM: nothing to check, not a malformed signature."""
    default = bom.with_name(bom.name + ".sig")
    assert not default.exists()
    result = cli("verify-bom", bom, "--trusted-key", key.public)
    assert result.code == 4, result.out + result.err
    assert result.out == f"UNVERIFIED {bom}: no signature: {default} does not exist\n"
    assert result.err == ""
    # Naming that same file is asking for the default: the same answer.
    named = cli("verify-bom", bom, "--signature", default, "--trusted-key", key.public)
    assert (named.code, named.out) == (4, result.out)


def test_a_named_signature_that_does_not_exist_is_a_usage_error(
    bom: Path, key: KeyFiles, tmp_path: Path, cli
) -> None:
    missing = tmp_path / "nowhere.sig"
    result = cli("verify-bom", bom, "--signature", missing, "--trusted-key", key.public)
    assert result.code == 2, result.out + result.err
    assert result.out == ""
    assert result.err.splitlines() == [
        f"provscan: error: --signature {missing}: does not exist",
        f"  hint: name the BOM's signature file (sign-bom writes {bom}.sig)",
    ]


def test_a_model_signature_is_not_a_signed_bom(
    bom: Path, demo_model: Path, key: KeyFiles, cli
) -> None:
    model_sig = sign_with_model_signing(demo_model, key)  # a genuine, verifiable OMS bundle
    result = cli("verify-bom", bom, "--signature", model_sig, "--trusted-key", key.public)
    assert result.code == 1, result.out + result.err
    assert result.out.startswith(f"MALFORMED {bom}")
    assert "not a signed CycloneDX BOM" in result.out
    assert "https://model_signing/signature/v1.0" in result.out


def test_verify_bom_needs_a_trust_anchor(bom: Path, key: KeyFiles, cli) -> None:
    assert cli("sign-bom", bom, "--key", key.private).code == 0
    result = cli("verify-bom", bom)
    assert result.code == 2
    assert "--trusted-key" in result.err


def test_sign_bom_refuses_a_file_that_is_not_a_bom(tmp_path: Path, key: KeyFiles, cli) -> None:
    notes = tmp_path / "notes.json"
    notes.write_text('{"hello": "world"}')
    result = cli("sign-bom", notes, "--key", key.private)
    assert result.code == 2, result.out + result.err
    assert str(notes) in result.err and "not a CycloneDX BOM" in result.err
    assert not notes.with_name("notes.json.sig").exists()
