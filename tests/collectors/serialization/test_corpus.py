"""Does provscan flag every public pickle-family bypass as critical, and no real checkpoint as dangerous?"""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.loader_proof import Proof, prove_samples
from fixtures.serialization_corpus import NO_LOADER, Sample, build_corpus
from provscan.report import Severity
from tests.collectors.serialization.corpus_support import (
    catalogue,
    critical_on,
    describe,
    scan_alone,
)

# Gaps the current scanner has. Each is strict: once the scanner catches the sample, the
# xfail turns into a failure and the entry must be removed.
XFAIL: dict[str, str] = {}


SAMPLES = catalogue(build_corpus)
MALICIOUS = [s for s in SAMPLES if s.malicious]
BENIGN = [s for s in SAMPLES if not s.malicious]


def _param(sample: Sample) -> object:
    marks = []
    if sample.name in XFAIL:
        marks.append(pytest.mark.xfail(strict=True, reason=XFAIL[sample.name]))
    return pytest.param(sample, id=sample.name, marks=marks)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("corpus")
    canary = root / "canary"
    build_corpus(root / "files", canary)
    return root / "files", canary


@pytest.mark.parametrize("sample", [_param(s) for s in MALICIOUS])
def test_malicious_sample_is_critical(
    corpus: tuple[Path, Path], sample: Sample, tmp_path: Path
) -> None:
    findings = scan_alone(corpus, sample, tmp_path)
    critical = critical_on(findings, sample)
    assert critical, (
        f"{sample.name} ({sample.source}) got no critical finding:\n{describe(findings)}"
    )


@pytest.fixture(scope="session")
def proofs(corpus: tuple[Path, Path]) -> dict[str, Proof]:
    files, canary = corpus
    return prove_samples(MALICIOUS, files, canary)


@pytest.mark.parametrize("sample", [_param(s) for s in MALICIOUS])
def test_the_real_loader_runs_or_reaches_the_payload(
    corpus: tuple[Path, Path], proofs: dict[str, Proof], sample: Sample, tmp_path: Path
) -> None:
    """Each malicious sample is an attack on a real loader, not a file that merely looks bad:
    run in a child process, the loader touches the canary, or (a gadget that is inert by
    design: another OS's shell, a browser) looks up a global provscan reports as critical."""
    if sample.loader == "none":
        pytest.skip(NO_LOADER[sample.name])
    proof = proofs[sample.name]
    if proof.ran:
        return
    critical = {
        str(f.evidence.get("global"))
        for f in scan_alone(corpus, sample, tmp_path)
        if f.severity is Severity.CRITICAL
    }
    assert proof.reached & critical, (
        f"{sample.name}: {sample.loader} neither ran the payload nor looked up a global "
        f"provscan calls critical (it looked up {sorted(proof.reached)}; critical: {sorted(critical)})"
    )


@pytest.mark.parametrize("sample", [_param(s) for s in BENIGN])
def test_benign_sample_is_not_dangerous(
    corpus: tuple[Path, Path], sample: Sample, tmp_path: Path
) -> None:
    findings = scan_alone(corpus, sample, tmp_path)
    bad = [f for f in findings if "DANGEROUS" in f.rule_id or f.severity is Severity.CRITICAL]
    assert not bad, f"{sample.name} falsely flagged:\n{describe(bad)}"
    if not sample.benign_but_unknown:
        # Plain torch/numpy files must not even be "unknown": the allowlist covers them.
        high = [f for f in findings if f.severity is Severity.HIGH]
        assert not high, f"{sample.name} has high findings:\n{describe(high)}"


def test_corpus_covers_the_required_techniques() -> None:
    names = {s.name for s in SAMPLES}
    for required in (
        "os_system_global_reduce",
        "memoized_stack_global",
        "inst_opcode",
        "obj_opcode",
        "newobj_subprocess_popen",
        "protocol0_text",
        "broken_stream_nullifai",
        "zip_bad_crc",
        "zip_name_mismatch",
        "legacy_torch_stacked_payload_later",
        "ext_opcode_copyreg",
        "benign_hf_training_args",
    ):
        assert required in names
    assert len({s.path for s in SAMPLES}) == len(SAMPLES), "two samples share a file name"
    for s in SAMPLES:
        assert s.source, f"{s.name} has no source"
