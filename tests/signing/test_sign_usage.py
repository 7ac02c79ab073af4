"""`provscan sign` refuses what it cannot sign, before hashing anything, and says why."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fixtures.models import build_demo_model
from fixtures.signing import KeyFiles, Pki


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return build_demo_model(tmp_path / "tiny-llama")


def test_sign_needs_a_key_or_sigstore(model: Path, cli) -> None:
    result = cli("sign", model)
    assert result.code == 2
    assert "--key" in result.err
    assert not (model / "model.sig").exists()


def test_a_certificate_without_its_key_is_refused(model: Path, cli, pki: Pki) -> None:
    result = cli("sign", model, "--certificate", pki.leaf)
    assert result.code == 2
    assert "--key" in result.err


def test_sigstore_and_a_key_are_exclusive(model: Path, cli, key: KeyFiles) -> None:
    result = cli("sign", model, "--sigstore", "--key", key.private)
    assert result.code == 2
    assert "keyless" in result.err


def test_an_unset_password_variable_is_named(model: Path, cli, key: KeyFiles) -> None:
    result = cli("sign", model, "--key", key.private, "--password-env", "PROVSCAN_NO_SUCH_VAR")
    assert result.code == 2
    assert "PROVSCAN_NO_SUCH_VAR" in result.err


def test_an_rsa_key_is_refused_naming_the_file(model: Path, cli, tmp_path: Path) -> None:
    rsa_key = tmp_path / "rsa.pem"
    rsa_key.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    result = cli("sign", model, "--key", rsa_key)
    assert result.code == 2
    assert str(rsa_key) in result.err and "P-256" in result.err
    assert not (model / "model.sig").exists()


def test_a_public_key_given_as_the_private_key_is_refused(model: Path, cli, key: KeyFiles) -> None:
    result = cli("sign", model, "--key", key.public)
    assert result.code == 2
    assert str(key.public) in result.err
