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
regopy's is broken), against all the packs given, combined.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from provscan.config import merge_config
from provscan.errors import ProvscanError
from provscan.policy.engine import evaluate
from provscan.policy.verdict import LEVELS
from provscan.report import Decision, Report, Verdict

_EXPECTED_KEYS = {"description", "verdict", "config", *LEVELS}


@dataclass(frozen=True)
class CaseResult:
    name: str  # "<pack>/<case>"
    passed: bool
    message: str  # what differed, or "ok"


@dataclass(frozen=True)
class _Expected:
    verdict: Decision
    levels: dict[str, frozenset[str]]
    config: dict[str, Any]


class _CaseError(Exception):
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
) -> list[CaseResult]:
    """Evaluate every table-test case of the given packs; one result per case, in order."""
    results: list[CaseResult] = []
    for name, case_dir in find_cases(policy_dirs):
        try:
            report, expected = _load_case(case_dir)
            case_config = merge_config(config or {}, expected.config)
            verdict = evaluate(report, policy_dirs, case_config, timeout_s=timeout_s)
        except _CaseError as exc:
            results.append(CaseResult(name, False, str(exc)))
            continue
        except ProvscanError as exc:
            results.append(CaseResult(name, False, f"policy error: {exc.message}"))
            continue
        problems = _compare(expected, verdict)
        results.append(CaseResult(name, not problems, "; ".join(problems) or "ok"))
    return results


def _load_case(case_dir: Path) -> tuple[Report, _Expected]:
    input_path, expected_path = case_dir / "input.json", case_dir / "expected.yaml"
    for path in (input_path, expected_path):
        if not path.is_file():
            raise _CaseError(f"{path.name} is missing")
    try:
        doc = json.loads(input_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _CaseError(f"input.json cannot be read: {exc}") from exc
    try:
        report = Report.model_validate(doc)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise _CaseError(f"input.json is not a valid Report: {errors}") from exc
    return report, _load_expected(expected_path)


def _load_expected(path: Path) -> _Expected:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise _CaseError(f"expected.yaml cannot be read: {exc}") from exc
    if not isinstance(doc, dict):
        raise _CaseError("expected.yaml must be a mapping")
    unknown = set(doc) - _EXPECTED_KEYS
    if unknown:
        raise _CaseError(f"expected.yaml has unknown keys: {', '.join(sorted(map(str, unknown)))}")
    try:
        verdict = Decision(doc.get("verdict"))
    except ValueError as exc:
        raise _CaseError("expected.yaml: 'verdict' must be approve, review or deny") from exc
    levels: dict[str, frozenset[str]] = {}
    for level in LEVELS:
        if level not in doc:
            continue
        rules = doc[level] if doc[level] is not None else []
        if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
            raise _CaseError(f"expected.yaml: '{level}' must be a list of rule ids")
        levels[level] = frozenset(rules)
    case_config = doc.get("config") or {}
    if not isinstance(case_config, dict):
        raise _CaseError("expected.yaml: 'config' must be a mapping")
    return _Expected(verdict, levels, case_config)


def _compare(expected: _Expected, verdict: Verdict) -> list[str]:
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
