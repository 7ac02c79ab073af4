"""Can the person handing over a signed model change what a loader reads and still be approved?

Every model here is signed for real (model_signing's API and provscan's own signing code),
then changed by fixtures/signing_attacks.py. Each test asserts what the signature section
says and the verdict: the default pack at least reviews, the production pack denies.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures import signing_attacks as attacks
from fixtures.signing import KeyFiles
from provscan.pipeline import ScanOptions, scan
from provscan.report import Report, SignatureCheck
from provscan.signing.trust import load_trust


def checked(model: Path, key: KeyFiles, *given: Path) -> tuple[Report, dict[str, SignatureCheck]]:
    report = scan(str(model), ScanOptions(trust=load_trust([key.public]), signature_paths=given))
    assert report.signatures is not None
    assert all(step.status == "completed" for step in report.steps), report.steps
    return report, {check.path: check for check in report.signatures.signatures}


def verdicts(cli, model: Path, key: KeyFiles, *extra: str | Path) -> tuple[str, str]:
    """(default verdict line, production verdict line) of `provscan check`."""
    found = []
    for policy in ((), ("--policy", "production")):
        result = cli("check", model, "--trusted-key", key.public, *extra, *policy)
        line = next(x for x in result.out.splitlines() if x.startswith("VERDICT:"))
        found.append(line.split("  (")[0])
        expected = {"DENY": 1, "REVIEW": 4, "APPROVE": 0}[line.split()[1]]
        assert result.code == expected, result.out + result.err
    return found[0], found[1]


@pytest.mark.parametrize("by", attacks.SIGNERS)
def test_the_unchanged_signed_model_is_approved_by_both_packs(
    tmp_path: Path, key: KeyFiles, by: attacks.SignedBy, cli
) -> None:
    """The control: without the attacker's change, the same signing approves."""
    model = attacks.build_demo_model(tmp_path / "model")
    attacks.sign(model, key, model / "model.sig", by=by)
    report, checks = checked(model, key)
    assert (checks["model.sig"].status, checks["model.sig"].integrity) == ("verified", "match")
    assert checks["model.sig"].not_covered == ()
    assert all(f.signed_by == ("model.sig",) for f in report.files if f.path != "model.sig")
    assert verdicts(cli, model, key) == ("VERDICT: APPROVE", "VERDICT: APPROVE")


@pytest.mark.parametrize("by", attacks.SIGNERS)
@pytest.mark.parametrize(
    ("victim", "role"),
    [
        ("tokenizer.model", "tokenizer"),
        ("model.onnx_data", "other"),
        ("modules.json", "other"),
        ("README.md", "model-card"),
    ],
)
def test_a_loader_read_file_the_signer_left_out_is_not_proven(
    tmp_path: Path, key: KeyFiles, by: attacks.SignedBy, victim: str, role: str, cli
) -> None:
    attack = attacks.ignored_then_changed(tmp_path, key, by, victim)
    report, checks = checked(attack.model, key)
    check = checks["model.sig"]
    # The signature itself still checks out and every file it covers matches ...
    assert (check.status, check.integrity, check.extra) == ("verified", "match", ())
    # ... but it says so about the changed file, which it does not cover and a loader reads.
    [entry] = [e for e in check.not_covered if e.path == victim]
    assert (entry.reason, entry.role, entry.loader_read) == ("ignored", role, True)
    assert entry.read_by
    [file] = [f for f in report.files if f.path == victim]
    assert file.signed_by == ()
    default, production = verdicts(cli, attack.model, key)
    assert default == "VERDICT: REVIEW"
    assert production == "VERDICT: DENY"
    result = cli("check", attack.model, "--trusted-key", key.public)
    assert "POL-SIG-NOT-COVERED" in result.out and victim in result.out


@pytest.mark.parametrize("by", attacks.SIGNERS)
def test_a_licence_from_an_unsigned_card_is_marked_and_never_approves(
    tmp_path: Path, key: KeyFiles, by: attacks.SignedBy, cli
) -> None:
    """Signed as non-commercial, card swapped to Apache-2.0 after signing: before, the
    unsigned card's licence turned a review (commercial use of cc-by-nc) into an approval."""
    attack = attacks.card_licence_swapped(tmp_path, key, by)
    report, _ = checked(attack.model, key)
    assert report.licence is not None and report.licence.concluded == ("apache-2.0",)
    licence_sources = [s for s in report.fact_sources if s.fact == "licence"]
    assert licence_sources and all(s.path == "README.md" for s in licence_sources)
    assert all(s.signed_by == () for s in licence_sources)
    signed_sources = [s for s in report.fact_sources if s.path == "config.json"]
    assert signed_sources and all(s.signed_by == ("model.sig",) for s in signed_sources)
    default, production = verdicts(cli, attack.model, key)
    assert (default, production) == ("VERDICT: REVIEW", "VERDICT: DENY")
    result = cli("check", attack.model, "--trusted-key", key.public, "--policy", "production")
    assert "POL-SIG-UNCOVERED-FACTS" in result.out


@pytest.mark.parametrize("shard", [None, 4096], ids=["files", "shards"])
@pytest.mark.parametrize("by", attacks.SIGNERS)
def test_an_attackers_signature_in_the_folder_changes_nothing_for_the_given_one(
    tmp_path: Path, key: KeyFiles, other_key: KeyFiles, by: attacks.SignedBy, shard: int | None, cli
) -> None:
    attack = attacks.second_signature_excuses(tmp_path, key, other_key, by, shard=shard)
    publisher = str(attack.signature)
    report, checks = checked(attack.model, key, attack.signature)
    assert checks["model.sig"].status == "unverified"  # the attacker's key is not trusted
    check = checks[publisher]
    assert check.status == "verified"
    assert (check.integrity, check.extra) == ("mismatch", ("extra_module.py",))
    assert check.not_covered == ()
    assert [f.rule_id for f in report.findings if f.rule_id == "SIG-FILE-EXTRA"] == [
        "SIG-FILE-EXTRA"
    ]
    # Without the attacker's signature the given one's check is the same in every field.
    (attack.model / "model.sig").unlink()
    _, alone = checked(attack.model, key, attack.signature)
    assert alone[publisher] == check
    (attack.model / "model.sig").write_text("{}")  # nor does a broken one change it
    _, broken = checked(attack.model, key, attack.signature)
    assert broken[publisher] == check
    verdict = verdicts(cli, attack.model, key, "--signature", attack.signature)
    assert verdict == ("VERDICT: DENY", "VERDICT: DENY")


@pytest.mark.parametrize("by", attacks.SIGNERS)
def test_an_empty_chat_template_under_shards_is_not_covered(
    tmp_path: Path, key: KeyFiles, by: attacks.SignedBy, cli
) -> None:
    """Shard serialization records no shard for an empty file, so an empty chat template
    (which changes what transformers renders) added after signing passes model_signing's
    own verification; provscan agrees the files match and says the signature cannot speak
    for the empty file."""
    from model_signing import hashing

    attack = attacks.empty_file_under_shards(tmp_path, key, by, "chat_template.jinja")

    def model_signing_manifest() -> object:
        config = hashing.Config().set_ignored_paths(paths=[attack.model / "model.sig"])
        return config.use_shard_serialization(shard_size=1 << 20).hash(attack.model)

    # model_signing's own manifest is the same with and without the empty file, so its
    # verification cannot tell them apart either (its verify() itself fails on sharded
    # signatures in 1.1.1: the shard size comes back from the bundle as a float).
    with_empty = model_signing_manifest()
    (attack.model / attack.changed).unlink()
    assert model_signing_manifest() == with_empty
    (attack.model / attack.changed).write_bytes(b"")
    report, checks = checked(attack.model, key)
    check = checks["model.sig"]
    assert (check.status, check.integrity) == ("verified", "match")
    [entry] = check.not_covered
    assert (entry.path, entry.reason, entry.loader_read) == ("chat_template.jinja", "empty", True)
    assert verdicts(cli, attack.model, key) == ("VERDICT: REVIEW", "VERDICT: DENY")


def test_a_signed_file_emptied_under_shards_is_named_missing_and_empty(
    tmp_path: Path, key: KeyFiles
) -> None:
    attack = attacks.empty_file_under_shards(tmp_path, key, "model_signing", "tokenizer.json")
    report, checks = checked(attack.model, key)
    assert checks["model.sig"].missing == ("tokenizer.json",)
    [finding] = [f for f in report.findings if f.rule_id == "SIG-FILE-MISSING"]
    assert "now empty" in finding.message
