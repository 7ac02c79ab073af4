"""Do the lines people read say who signed once, and call files "signed" only when they are?

A key signature reads "key 7532f563e1635da3", not "key: key 7532...". Files match "what was
signed" only when a trusted anchor verified the signature over the manifest they were
compared with: a manifest rewritten to fit changed files matches them, and its signature is
invalid.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fixtures.signing import KeyFiles, edit_payload, sign_with_model_signing
from provscan.report import SignatureCheck, SignatureStatus, Signer, TlogEntry
from provscan.signing.label import files_match_signed, signer_label


def words(text: str) -> str:
    """The text with its line wrapping undone (the terminal wraps at its width)."""
    return " ".join(text.split())


@pytest.fixture
def signed(demo_model: Path, key: KeyFiles) -> Path:
    sign_with_model_signing(demo_model, key)
    return demo_model


@pytest.fixture
def rewritten(signed: Path) -> Path:
    """config.json changed, and the bundle's manifest rewritten to its new digest (subject
    recomputed, so the bundle is well formed): only the signature can tell."""
    config = signed / "config.json"
    config.write_text(config.read_text().replace("{", '{"attacker": 1, ', 1))
    digest = hashlib.sha256(config.read_bytes()).hexdigest()

    def edit(statement: dict[str, object]) -> None:
        resources = statement["predicate"]["resources"]  # type: ignore[index]
        for resource in resources:
            if resource["name"] == "config.json":
                resource["digest"] = digest
        # OMS: the subject is SHA-256 over the raw resource digests, in order.
        raw = b"".join(bytes.fromhex(r["digest"]) for r in resources)
        statement["subject"][0]["digest"]["sha256"] = hashlib.sha256(raw).hexdigest()  # type: ignore[index]

    edit_payload(signed / "model.sig", edit)
    return signed


def test_the_rewritten_manifest_matches_the_files_and_is_invalid(
    rewritten: Path, key: KeyFiles, cli
) -> None:
    report = cli("check", rewritten, "--trusted-key", key.public, "--format", "json").json()
    [check] = report["signatures"]["signatures"]
    assert (check["status"], check["integrity"]) == ("invalid", "match")
    assert not files_match_signed(SignatureCheck.model_validate(check))


def test_the_audit_report_does_not_call_an_invalid_signatures_files_signed(
    rewritten: Path, key: KeyFiles, cli, tmp_path: Path
) -> None:
    out = tmp_path / "audit.md"
    result = cli("check", rewritten, "--trusted-key", key.public, "--markdown", out)
    assert result.code == 1, result.out + result.err
    text = out.read_text()
    assert (
        "### ⛔ model.sig: invalid, files match what the bundle claims, "
        "but its signature does not verify\n"
    ) in text
    assert "every signed file matches" not in text


def test_the_audit_report_does_not_call_an_unverified_signatures_files_signed(
    signed: Path, other_key: KeyFiles, cli, tmp_path: Path
) -> None:
    out = tmp_path / "audit.md"
    cli("check", signed, "--trusted-key", other_key.public, "--markdown", out)
    text = out.read_text()
    assert (
        "### ⚠️ model.sig: unverified, files match what the bundle claims; "
        "its signer is not verified\n"
    ) in text
    assert "every signed file matches" not in text


def test_the_audit_report_still_says_verified_files_match(
    signed: Path, key: KeyFiles, cli, tmp_path: Path
) -> None:
    out = tmp_path / "audit.md"
    assert cli("check", signed, "--trusted-key", key.public, "--markdown", out).code == 0
    text = out.read_text()
    assert "### ✅ model.sig: verified, every signed file matches\n" in text
    assert f"- **Key:** `sha256:{key.fingerprint}`\n" in text


def test_the_terminal_names_a_signing_key_once(signed: Path, key: KeyFiles, cli) -> None:
    result = cli("check", signed, "--trusted-key", key.public)
    assert result.code == 0, result.out + result.err
    text = words(result.out)
    assert (
        f"signature model.sig: verified (key {key.fingerprint[:16]}); 8 signed file(s) match"
        in text
    )
    assert "key: key" not in text


def test_the_terminal_does_not_call_an_invalid_signatures_files_signed(
    rewritten: Path, key: KeyFiles, cli
) -> None:
    result = cli("check", rewritten, "--trusted-key", key.public)
    assert result.code == 1, result.out + result.err
    text = words(result.out)
    assert (
        f"signature model.sig: invalid (key {key.fingerprint[:16]}); 8 file(s) match what "
        "the bundle claims, but its signature does not verify" in text
    )
    assert "signed file(s) match" not in text


def test_verify_bom_names_the_signing_key(tmp_path: Path, demo_model: Path, key: KeyFiles, cli):
    """verify-bom's line never doubled the word; it names the key by its whole SHA-256."""
    bom = tmp_path / "model.cdx.json"
    assert cli("check", demo_model, "--bom", bom).code in (0, 4)
    assert cli("sign-bom", bom, "--key", key.private).code == 0
    result = cli("verify-bom", bom, "--trusted-key", key.public)
    assert result.code == 0, result.out + result.err
    assert result.out.startswith(f"VERIFIED {bom}: signed by ")
    assert key.fingerprint in result.out
    assert "key: key" not in result.out and "key key" not in result.out


@pytest.mark.parametrize(
    ("signer", "label"),
    [
        (
            Signer(method="key", key_fingerprint="7532f563e1635da3" + "0" * 48),
            "key 7532f563e1635da3",
        ),
        (Signer(method="key"), "key not named in the signature"),
        (
            Signer(
                method="certificate", certificate_subject="CN=Publisher", key_fingerprint="ab" * 32
            ),
            "certificate: CN=Publisher",
        ),
        (
            Signer(
                method="sigstore",
                identity="me@example.com",
                oidc_issuer="https://accounts.example.com",
                tlog=TlogEntry(log_index=7),
            ),
            "sigstore: me@example.com via https://accounts.example.com, log index 7",
        ),
    ],
    ids=["key", "key-unnamed", "certificate", "sigstore"],
)
def test_signer_label(signer: Signer, label: str) -> None:
    assert signer_label(signer) == label


@pytest.mark.parametrize(
    ("status", "integrity", "signed"),
    [
        (SignatureStatus.VERIFIED, "match", True),
        (SignatureStatus.VERIFIED, "mismatch", False),
        (SignatureStatus.UNVERIFIED, "match", False),
        (SignatureStatus.INVALID, "match", False),
        (SignatureStatus.MALFORMED, "not_checked", False),
    ],
)
def test_only_a_verified_signature_makes_matching_files_signed(
    status: SignatureStatus, integrity: str, signed: bool
) -> None:
    check = SignatureCheck(path="model.sig", status=status, integrity=integrity)  # type: ignore[arg-type]
    assert files_match_signed(check) is signed
