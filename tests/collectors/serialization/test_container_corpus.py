"""Container tricks (fixtures/corpus_containers.py): each payload really runs in its loader,
provscan calls each one critical without running it, and real torch/joblib files stay quiet."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.corpus_containers import SKIPPED, container_samples
from fixtures.loader_proof import Proof, prove_samples
from fixtures.serialization_corpus import Sample
from provscan.report import Severity
from tests.collectors.serialization.corpus_support import (
    catalogue,
    critical_on,
    describe,
    scan_alone,
)

pytest.importorskip("torch")
pytest.importorskip("joblib")

SAMPLES = catalogue(container_samples)
MALICIOUS = [s for s in SAMPLES if s.malicious]
BENIGN = [s for s in SAMPLES if not s.malicious]

# The container finding each technique must raise besides the payload's own (a scanner that
# only happened to scan every member would pass the critical check without seeing the trick).
EXPECTED_RULE = {
    "zip_two_zip64_end_records": "SER-ZIP-MULTIPLE-END-RECORDS",
    "zip_truncated_end_signature": "SER-ZIP-READER-DISAGREEMENT",
    "zip_directory_offset": "SER-ZIP-READER-DISAGREEMENT",
    "zip_entry_count": "SER-ZIP-READER-DISAGREEMENT",
    "zip_duplicate_data_pkl_middle": "SER-ZIP-DUPLICATE-MEMBER",
    "zip_case_folded_data_pkl": "SER-ZIP-READER-DISAGREEMENT",
    "zip_local_central_name_mismatch": "SER-ZIP-HEADER-MISMATCH",
    "zip_overlapping_members": "SER-ZIP-OVERLAP",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("containers")
    canary = root / "canary"
    container_samples(root / "files", canary)
    return root / "files", canary


@pytest.fixture(scope="module")
def proofs(corpus: tuple[Path, Path]) -> dict[str, Proof]:
    files, canary = corpus
    return prove_samples(MALICIOUS, files, canary)


@pytest.mark.parametrize("sample", MALICIOUS, ids=[s.name for s in MALICIOUS])
def test_payload_runs_in_its_loader(proofs: dict[str, Proof], sample: Sample) -> None:
    assert proofs[sample.name].ran, f"{sample.name}: {sample.loader} does not run the payload"


@pytest.mark.parametrize("sample", MALICIOUS, ids=[s.name for s in MALICIOUS])
def test_malicious_sample_is_critical(
    corpus: tuple[Path, Path], sample: Sample, tmp_path: Path
) -> None:
    findings = scan_alone(corpus, sample, tmp_path)
    critical = critical_on(findings, sample)
    assert critical, f"{sample.name} got no critical finding:\n{describe(findings)}"
    expected = EXPECTED_RULE.get(sample.name)
    if expected:
        assert expected in {f.rule_id for f in critical}, describe(findings)
    payload = [f for f in critical if f.rule_id == "SER-PICKLE-DANGEROUS-GLOBAL"]
    assert payload, f"{sample.name}: the payload itself was not found:\n{describe(findings)}"


@pytest.mark.parametrize("sample", BENIGN, ids=[s.name for s in BENIGN])
def test_benign_sample_is_quiet(corpus: tuple[Path, Path], sample: Sample, tmp_path: Path) -> None:
    findings = scan_alone(corpus, sample, tmp_path)
    bad = [f for f in findings if f.severity in (Severity.HIGH, Severity.CRITICAL)]
    assert not bad, f"{sample.name} flagged:\n{describe(bad)}"


def test_corpus_covers_the_container_techniques() -> None:
    names = {s.name for s in SAMPLES}
    required = {
        *EXPECTED_RULE,
        "zip_prepended_pickle",
        "torch_legacy_v7_tar",
        "torch_legacy_v7_tar_storage_views",
        "joblib_zlib_level1",
        "joblib_gzip",
        "joblib_bz2",
        "joblib_xz",
        "joblib_lzma",
        "joblib_lzma_small_dictionary",
        "benign_torch_zip_p2",
        "benign_torch_zip_p4",
        "benign_torch_legacy",
        *(f"benign_joblib_{c}" for c in ("zlib", "gzip", "bz2", "lzma", "xz")),
    }
    assert required <= names
    assert {"joblib_lz4", "tar_pickle_polyglot"} <= names | {name for name, _ in SKIPPED}
    assert len({s.path for s in SAMPLES}) == len(SAMPLES)
    for sample in MALICIOUS:
        assert sample.loader in ("torch", "joblib", "pickle") and sample.source
