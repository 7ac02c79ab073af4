"""Does a policy pack decide its own table tests the way they expect?

A case is a folder ``<pack>/tests/<case>/`` holding ``input.json`` (a full Report) and
``expected.yaml``::

    description: a waived high finding becomes a warning   # optional
    verdict: approve                  # approve | review | deny
    deny: []                          # optional: the exact set of rule ids at this level
    review: []                        # optional, likewise
    warn: [POL-WAIVED]                # optional, likewise
    config:                           # optional: merged over the pack defaults (and the
      waivers: [...]                  #   config given to run_policy_tests) for this case

Each case is evaluated with the same engine as ``provscan check`` (no Rego ``with``:
regopy's is broken), against all the packs given, combined. With an OPA server backend
each case's packs and config are pushed to the server first (so use a scratch server:
its ``provscan/`` modules and data.provscan.config are overwritten), and the packs with
the base config are pushed again at the end.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from provscan.errors import ProvscanError
from provscan.policy.backends import REGOPY, PolicyBackend, PolicySetupError
from provscan.policy.config import merge_config
from provscan.policy.engine import evaluate, load_packs
from provscan.policy.opa_cli import find_opa
from provscan.policy.opa_server import push_packs
from provscan.report import LEVELS, Decision, Report, Verdict

_EXPECTED_KEYS = {"description", "verdict", "config", *LEVELS}


@dataclass(frozen=True)
class CaseResult:
    name: str  # "<pack>/<case>"
    passed: bool
    message: str  # what differed, or "ok"


@dataclass(frozen=True)
class Expected:
    verdict: Decision
    levels: dict[str, frozenset[str]]
    config: dict[str, Any]


class CaseError(Exception):
    """A case folder that cannot be run as written."""


def find_cases(policy_dirs: Sequence[Path]) -> list[tuple[str, Path]]:
    cases: list[tuple[str, Path]] = []
    for root in policy_dirs:
        tests = root / "tests"
        if tests.is_dir():
            cases.extend(
                (f"{root.name}/{case.name}", case)
                for case in sorted(tests.iterdir())
                if case.is_dir()
            )
    return cases


def run_policy_tests(
    policy_dirs: Sequence[Path],
    config: Mapping[str, Any] | None = None,
    *,
    timeout_s: float = 30.0,
    backend: PolicyBackend = REGOPY,
) -> list[CaseResult]:
    """Evaluate every table-test case of the given packs; one result per case, in order.

    A failure no case could pass (a pack that does not load, an engine that is missing or
    does not parse a module) is raised, once, instead of failing every case alike.
    """
    cases = find_cases(policy_dirs)
    if not cases:
        return []
    load_packs(policy_dirs)
    if backend.kind == "opa":
        find_opa(backend.opa_binary)
    results: list[CaseResult] = []
    for name, case_dir in cases:
        try:
            report, expected = load_case(case_dir)
            case_config = merge_config(config or {}, expected.config)
            verdict = evaluate_case(report, policy_dirs, case_config, timeout_s, backend)
        except CaseError as exc:
            results.append(CaseResult(name, False, str(exc)))
            continue
        except PolicySetupError:
            raise
        except ProvscanError as exc:
            results.append(CaseResult(name, False, f"policy error: {exc.message}"))
            continue
        problems = compare_verdict(expected, verdict)
        results.append(CaseResult(name, not problems, "; ".join(problems) or "ok"))
    if backend.kind == "opa-server" and results:
        push_packs(backend, policy_dirs, config or {}, timeout_s=timeout_s)
    return results


def evaluate_case(
    report: Report,
    policy_dirs: Sequence[Path],
    case_config: Mapping[str, Any],
    timeout_s: float,
    backend: PolicyBackend = REGOPY,
) -> Verdict:
    """One case's verdict; an OPA server gets the packs and this case's config pushed first."""
    if backend.kind == "opa-server":
        push_packs(backend, policy_dirs, case_config, timeout_s=timeout_s)
    return evaluate(report, policy_dirs, case_config, timeout_s=timeout_s, backend=backend)


def load_case(case_dir: Path) -> tuple[Report, Expected]:
    """A case's report and expectations; CaseError when the folder cannot be run as written."""
    input_path, expected_path = case_dir / "input.json", case_dir / "expected.yaml"
    for path in (input_path, expected_path):
        if not path.is_file():
            raise CaseError(f"{path.name} is missing")
    try:
        doc = json.loads(input_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CaseError(f"input.json cannot be read: {exc}") from exc
    try:
        report = Report.model_validate(doc)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise CaseError(f"input.json is not a valid Report: {errors}") from exc
    return report, _load_expected(expected_path)


def _load_expected(path: Path) -> Expected:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CaseError(f"expected.yaml cannot be read: {exc}") from exc
    if not isinstance(doc, dict):
        raise CaseError("expected.yaml must be a mapping")
    unknown = set(doc) - _EXPECTED_KEYS
    if unknown:
        raise CaseError(f"expected.yaml has unknown keys: {', '.join(sorted(map(str, unknown)))}")
    try:
        verdict = Decision(doc.get("verdict"))
    except ValueError as exc:
        raise CaseError("expected.yaml: 'verdict' must be approve, review or deny") from exc
    levels: dict[str, frozenset[str]] = {}
    for level in LEVELS:
        if level not in doc:
            continue
        rules = doc[level] if doc[level] is not None else []
        if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
            raise CaseError(f"expected.yaml: '{level}' must be a list of rule ids")
        levels[level] = frozenset(rules)
    case_config = doc.get("config") or {}
    if not isinstance(case_config, dict):
        raise CaseError("expected.yaml: 'config' must be a mapping")
    return Expected(verdict, levels, case_config)


def compare_verdict(expected: Expected, verdict: Verdict) -> list[str]:
    """What differs between a verdict and a case's expectations (empty: the case passes)."""
    problems: list[str] = []
    if verdict.decision != expected.verdict:
        problems.append(f"verdict: expected {expected.verdict.value}, got {verdict.decision.value}")
    for level, want in expected.levels.items():
        got = {reason.rule for reason in verdict.reasons if reason.level == level}
        missing, extra = sorted(want - got), sorted(got - want)
        if missing:
            problems.append(f"{level}: missing {', '.join(missing)}")
        if extra:
            problems.append(f"{level}: unexpected {', '.join(extra)}")
    return problems
