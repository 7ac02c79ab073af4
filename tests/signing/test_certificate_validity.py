"""Does a certificate outside its validity period stop a certificate-chain signature from verifying?

model_signing checks a chain at the signing certificate's own not-before date, so on its
own it accepts a chain that expired years ago or only becomes valid years from now. A
certificate bundle carries no trusted timestamp, so provscan checks every certificate of
the chain, and the trusted CA that anchors it, at the time of verification: outside its
window the signature is unverified (review under the default policy, deny under production).

Each chain is made here with real validity windows, and the model is signed with
model_signing's own API using it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from fixtures.signing import Pki, Validity, sign_with_model_signing, write_pki
from provscan.emit.cyclonedx import render_cyclonedx
from provscan.emit.markdown import render_markdown
from provscan.pipeline import ScanOptions, scan
from provscan.report import Report, SignatureCheck, SignatureStatus
from provscan.signing.bundle import read_envelope
from provscan.signing.trust import load_trust
from provscan.signing.verify import verify_signature

UTC = timezone.utc
NOW = datetime.now(UTC).replace(microsecond=0)  # certificates keep whole seconds
# Long enough that the CAs above a short-lived or future certificate are valid around it.
LONG: Validity = (datetime(2018, 1, 1, tzinfo=UTC), datetime(NOW.year + 20, 1, 1, tzinfo=UTC))
PAST: Validity = (datetime(2019, 1, 1, tzinfo=UTC), datetime(2020, 1, 1, tzinfo=UTC))
# Years from now, whenever the tests run.
FUTURE: Validity = (datetime(NOW.year + 9, 1, 1, tzinfo=UTC), datetime(NOW.year + 10, 1, 1, tzinfo=UTC))  # fmt: skip
CURRENT: Validity = (NOW - timedelta(days=1), NOW + timedelta(days=365))
EXPIRED_CA: Validity = (datetime(2018, 1, 1, tzinfo=UTC), datetime(2021, 1, 1, tzinfo=UTC))
LATER_LONG: Validity = (datetime(2019, 1, 1, tzinfo=UTC), LONG[1])


def zulu(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# name: (root, intermediate, leaf validity, whether the bundle carries the root, which
# certificate is outside its window, the phrase and the date the reason must give).
CASES: dict[str, tuple[Validity, Validity, Validity, bool, str, str]] = {
    "leaf-expired-2020": (LONG, LONG, PAST, True, "leaf", f"expired on {zulu(PAST[1])}"),
    "leaf-not-yet-valid": (
        LONG, LONG, FUTURE, True, "leaf", f"is valid only from {zulu(FUTURE[0])}",
    ),
    "intermediate-expired": (
        LONG, EXPIRED_CA, LATER_LONG, True, "intermediate", f"expired on {zulu(EXPIRED_CA[1])}",
    ),
    # The intermediate expired before the leaf was issued: model_signing's own chain check
    # fails too, and the reason still names the certificate and the date.
    "intermediate-expired-before-leaf": (
        LONG, PAST, CURRENT, True, "intermediate", f"expired on {zulu(PAST[1])}",
    ),
    "trusted-root-expired": (
        EXPIRED_CA, LATER_LONG, LATER_LONG, True, "root", f"expired on {zulu(EXPIRED_CA[1])}",
    ),
    # The bundle's chain stops at the intermediate: the expired root is only the trusted CA.
    "trusted-root-expired-not-in-bundle": (
        EXPIRED_CA, LATER_LONG, LATER_LONG, False, "root", f"expired on {zulu(EXPIRED_CA[1])}",
    ),
}  # fmt: skip


def make_pki(directory: Path, case: str) -> Pki:
    root, intermediate, leaf, _, _, _ = CASES[case]
    return write_pki(
        directory, case.title().replace("-", ""), root_validity=root,
        intermediate_validity=intermediate, leaf_validity=leaf,
    )  # fmt: skip


def signed_with(model: Path, pki: Pki, *, with_root: bool = True) -> Path:
    chain = [pki.intermediate, pki.root] if with_root else [pki.intermediate]
    return sign_with_model_signing(model, pki, chain=chain)


def only_signature(report: Report) -> SignatureCheck:
    assert report.signatures is not None
    assert len(report.signatures.signatures) == 1, report.signatures
    return report.signatures.signatures[0]


def named(pki: Pki, which: str) -> str:
    """How the reason names the certificate: its role and subject (and a CA's file)."""
    return {
        "leaf": f"signing certificate {pki.leaf_subject}",
        "intermediate": f"intermediate certificate {pki.intermediate_subject}",
        "root": f"trusted CA {pki.root_subject} (from {pki.root})",
    }[which]


def verdict_rules(result: Any) -> list[str]:
    return [reason["rule"] for reason in result.json()["verdict"]["reasons"]]


@pytest.mark.parametrize("case", list(CASES))
def test_a_certificate_outside_its_validity_is_unverified(
    case: str, demo_model: Path, tmp_path: Path, cli
) -> None:
    pki = make_pki(tmp_path / "pki", case)
    _, _, leaf, with_root, which, phrase = CASES[case]
    signed_with(demo_model, pki, with_root=with_root)
    before = datetime.now(UTC)
    report = scan(str(demo_model), ScanOptions(trust=load_trust(cas=[pki.root])))
    after = datetime.now(UTC)

    check = only_signature(report)
    assert check.status == "unverified", check.reason
    reason = check.reason or ""
    assert f"{named(pki, which)} {phrase}" in reason, reason
    if "expired" in phrase:
        assert "no trusted timestamp or transparency-log entry proves it signed before then" in (
            reason
        )
    signer = check.signer
    assert signer is not None and signer.method == "certificate"
    assert signer.certificate_subject == pki.leaf_subject
    assert (signer.certificate_not_before, signer.certificate_not_after) == leaf
    assert signer.validity_checked_at is not None
    assert before <= signer.validity_checked_at <= after
    assert signer.validity_basis == "verification-time"
    assert signer.trust_anchor is None
    [finding] = [f for f in report.findings if f.rule_id == "SIG-UNVERIFIED"]
    assert phrase in finding.message

    default = cli("check", demo_model, "--trusted-ca", pki.root)
    assert default.code == 4, default.out + default.err
    assert "VERDICT: REVIEW" in default.out
    assert "POL-SIG-UNTRUSTED" in default.out

    production = cli("check", demo_model, "--trusted-ca", pki.root, "--policy", "production")
    assert production.code == 1, production.out + production.err
    assert "VERDICT: DENY" in production.out


def test_a_chain_valid_now_is_verified_and_approved(demo_model: Path, tmp_path: Path, cli) -> None:
    # The control: the same kind of chain, every certificate valid now.
    pki = write_pki(
        tmp_path / "pki", "Current", root_validity=LONG, intermediate_validity=LATER_LONG,
        leaf_validity=CURRENT,
    )  # fmt: skip
    signed_with(demo_model, pki)
    before = datetime.now(UTC)
    check = only_signature(scan(str(demo_model), ScanOptions(trust=load_trust(cas=[pki.root]))))
    assert check.status == "verified", check.reason
    assert check.integrity == "match"
    signer = check.signer
    assert signer is not None
    assert signer.trust_anchor == f"ca:{pki.root_fingerprint}"
    assert (signer.certificate_not_before, signer.certificate_not_after) == CURRENT
    assert signer.validity_checked_at is not None and signer.validity_checked_at >= before
    assert signer.validity_basis == "verification-time"

    default = cli("check", demo_model, "--trusted-ca", pki.root, "--format", "json")
    assert default.code == 0, verdict_rules(default)
    production = cli(
        "check", demo_model, "--trusted-ca", pki.root, "--policy", "production", "--format", "json"
    )
    assert production.code == 0, verdict_rules(production)
    [recorded] = production.json()["signatures"]["signatures"]
    assert recorded["status"] == "verified"
    assert recorded["signer"]["validity_basis"] == "verification-time"
    assert recorded["signer"]["certificate_not_after"] is not None


def test_the_verification_time_decides(demo_model: Path, tmp_path: Path) -> None:
    """The same bundle verifies at a time inside every certificate's window, and not outside."""
    pki = make_pki(tmp_path / "pki", "leaf-expired-2020")  # leaf: 2019-01-01 to 2020-01-01
    envelope = read_envelope(signed_with(demo_model, pki), 1 << 20)
    trust = load_trust(cas=[pki.root])

    inside = datetime(2019, 6, 1, tzinfo=UTC)
    verified = verify_signature(envelope, trust, now=inside)
    assert verified.status == SignatureStatus.VERIFIED, verified.reason
    assert verified.signer.validity_checked_at == inside
    assert verified.signer.validity_basis == "verification-time"
    assert verified.signer.trust_anchor == f"ca:{pki.root_fingerprint}"
    # A naive time is taken as UTC.
    naive = verify_signature(envelope, trust, now=datetime(2019, 6, 1))
    assert naive.status == SignatureStatus.VERIFIED, naive.reason
    assert naive.signer.validity_checked_at == inside

    late = verify_signature(envelope, trust, now=datetime(2020, 1, 1, 0, 0, 1, tzinfo=UTC))
    assert late.status == SignatureStatus.UNVERIFIED
    assert f"{named(pki, 'leaf')} expired on 2020-01-01T00:00:00Z" in (late.reason or "")
    assert late.signer.trust_anchor is None

    early = verify_signature(envelope, trust, now=datetime(2018, 12, 31, tzinfo=UTC))
    assert early.status == SignatureStatus.UNVERIFIED
    assert f"{pki.leaf_subject} is valid only from 2019-01-01T00:00:00Z" in (early.reason or "")

    # Today, by default: the leaf expired in 2020.
    assert verify_signature(envelope, trust).status == SignatureStatus.UNVERIFIED


def test_without_a_trusted_ca_the_reason_also_says_the_certificate_expired(
    demo_model: Path, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path / "pki", "leaf-expired-2020")
    signed_with(demo_model, pki)
    check = only_signature(scan(str(demo_model), ScanOptions(trust=load_trust())))
    assert check.status == "unverified"
    assert "no trusted CA given" in (check.reason or "")
    assert f"{pki.leaf_subject} expired on 2020-01-01T00:00:00Z" in (check.reason or "")
    assert check.signer is not None and check.signer.certificate_not_after == PAST[1]


def test_the_audit_report_and_the_bom_show_the_validity(demo_model: Path, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", "leaf-expired-2020")
    signed_with(demo_model, pki)
    report = scan(str(demo_model), ScanOptions(trust=load_trust(cas=[pki.root])))
    checked_at = only_signature(report).signer.validity_checked_at  # type: ignore[union-attr]
    assert checked_at is not None

    markdown = render_markdown(report)
    assert "2019-01-01T00:00:00Z to 2020-01-01T00:00:00Z" in markdown
    assert f"{zulu(checked_at)}, the time of verification" in markdown

    bom = json.loads(render_cyclonedx(report))
    [model] = [c for c in bom["components"] if c["type"] == "machine-learning-model"]
    properties = {p["name"]: p["value"] for p in model["properties"]}
    prefix = "provscan:signature:model.sig"
    assert properties[f"{prefix}:certificate_not_before"] == "2019-01-01T00:00:00Z"
    assert properties[f"{prefix}:certificate_not_after"] == "2020-01-01T00:00:00Z"
    assert properties[f"{prefix}:validity_checked_at"] == zulu(checked_at)
    assert properties[f"{prefix}:validity_basis"] == "verification-time"


SIGSTORE_DATA = Path(__file__).resolve().parent.parent / "data" / "sigstore"


def test_a_sigstore_certificate_is_judged_at_the_log_entry_time() -> None:
    """A Fulcio certificate lives minutes: its validity is checked at the log's integrated time."""
    envelope = read_envelope(
        SIGSTORE_DATA / "model-transparency-v1.1.0-sigstore.model.sig", 1 << 20
    )
    trust = load_trust(sigstore_root=SIGSTORE_DATA / "production-trusted-root.json")
    # The verification time plays no part for Sigstore.
    result = verify_signature(envelope, trust, now=datetime(2099, 1, 1, tzinfo=UTC))
    assert result.status == SignatureStatus.VERIFIED, result.reason
    signer = result.signer
    assert signer.tlog is not None and signer.tlog.integrated_time is not None
    assert signer.validity_basis == "transparency-log"
    assert signer.validity_checked_at == signer.tlog.integrated_time
    assert signer.certificate_not_before is not None and signer.certificate_not_after is not None
    assert signer.certificate_not_before <= signer.validity_checked_at
    assert signer.validity_checked_at <= signer.certificate_not_after < NOW
