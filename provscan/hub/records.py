"""What does the Hub record about a commit beyond its files: base-model lineage, its own scan?"""

from __future__ import annotations

from typing import Any

from provscan.hub.http import HubLimitError, limit_error
from provscan.hub.lineage import HubLineage, walk_base_models
from provscan.report import Finding, Severity, file_finding, target_finding


def hub_metadata(
    repo_id: str, revision: str, *, security: bool = True
) -> tuple[HubLineage | None, list[Finding]]:
    """What the Hub records about a commit beyond its files: the base-model lineage, and
    (`security`) its own security scan as findings. Nothing when HF_HUB_OFFLINE is set.
    What cannot be fetched is an error node or an info finding; only an answer that breaks a
    bound of `hub.session.hub_traffic` raises (HubLimitError)."""
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        return None, []
    lineage = walk_base_models(repo_id, revision, api=HfApi())
    return lineage, hub_scan_findings(repo_id, revision) if security else []


def hub_scan_findings(repo_id: str, revision: str) -> list[Finding]:
    """The Hub's own security scan of the commit (`model_info(securityStatus=True)`), as findings.

    The Hub scans uploads (malware, pickle imports); a file it flags is a finding located at
    that file. A scan that is not done, or a status that cannot be fetched, is an info finding:
    provscan's own checks still ran, and the Hub's verdict is a second opinion.
    """
    from huggingface_hub import HfApi

    try:  # bounded by hub.session.hub_traffic: huggingface_hub reads the whole body itself
        info = HfApi().model_info(repo_id, revision=revision, securityStatus=True, timeout=30)
    except Exception as exc:  # noqa: BLE001 - a second opinion that cannot be had is only noted
        if (limit := limit_error(exc)) is not None:  # a broken bound is no missing opinion
            raise HubLimitError(limit.message, limit.remedy) from exc
        reason = f"{type(exc).__name__}: {str(exc)[:200]}"
        message = f"the Hub's security scan of {repo_id}@{revision} could not be read ({reason})"
        return [target_finding("SER-HUB-SCAN-UNAVAILABLE", Severity.INFO, message)]
    status = info.security_repo_status if isinstance(info.security_repo_status, dict) else {}
    return security_findings(status, repo_id, revision)


def security_findings(status: dict[str, Any], repo_id: str, revision: str) -> list[Finding]:
    """model_info's `securityRepoStatus` as findings (see hub_scan_findings)."""
    findings: list[Finding] = []
    if status.get("scansDone") is not True:
        message = f"the Hub has not finished scanning {repo_id}@{revision} (no security status yet)"
        findings.append(target_finding("SER-HUB-SCAN-UNAVAILABLE", Severity.INFO, message))
    issues = status.get("filesWithIssues")
    for issue in issues[:1000] if isinstance(issues, list) else []:
        path, level = (
            (issue.get("path"), issue.get("level")) if isinstance(issue, dict) else (None, None)
        )
        if not isinstance(path, str) or not path:
            continue
        level_text = str(level)[:40]
        severity = Severity.HIGH if level_text in _UNSAFE_LEVELS else Severity.MEDIUM
        message = f"{path}: the Hub's own security scan flags this file ({level_text}) at commit {revision}"
        findings.append(
            file_finding("SER-HUB-FLAGGED", severity, path[:1000], message, level=level_text)
        )
    return findings


# Hub scan levels that mean the scanner found something dangerous (others: "caution" ...).
_UNSAFE_LEVELS = {"unsafe", "dangerous", "malicious", "infected"}
