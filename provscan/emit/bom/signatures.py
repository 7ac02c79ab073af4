"""How does the AI-BOM record the model's signatures? As provscan:signature:* properties.

CycloneDX 1.6 has no place for an OMS signature over a component's files (its `signature`
member is JSF over the BOM itself), so each signature is described in properties of the
model component, keyed by the signature file's path.
"""

from __future__ import annotations

from datetime import datetime, timezone

from provscan.report import Report


def signature_properties(report: Report) -> list[tuple[str, object]]:
    facts = report.signatures
    if facts is None:
        return []
    pairs: list[tuple[str, object]] = [("provscan:signature:count", len(facts.signatures))]
    for sig in facts.signatures:
        prefix = f"provscan:signature:{sig.path}"
        signer = sig.signer
        pairs += [
            (f"{prefix}:status", sig.status.value),
            (f"{prefix}:sha256", sig.sha256),
            (f"{prefix}:integrity", sig.integrity),
            (f"{prefix}:changed", ", ".join(sig.changed)),
            (f"{prefix}:missing", ", ".join(sig.missing)),
            (f"{prefix}:extra", ", ".join(sig.extra)),
            (f"{prefix}:not_covered", ", ".join(e.path for e in sig.not_covered)),
            (
                f"{prefix}:not_covered_loader_read",
                ", ".join(e.path for e in sig.not_covered if e.loader_read),
            ),
        ]
        if signer is not None:
            pairs += [
                (f"{prefix}:method", signer.method),
                (f"{prefix}:identity", signer.identity),
                (f"{prefix}:oidc_issuer", signer.oidc_issuer),
                (f"{prefix}:key", signer.key_fingerprint),
                (f"{prefix}:certificate", signer.certificate_subject),
                (f"{prefix}:tlog_index", signer.tlog.log_index if signer.tlog else None),
                (f"{prefix}:certificate_not_before", _utc(signer.certificate_not_before)),
                (f"{prefix}:certificate_not_after", _utc(signer.certificate_not_after)),
                (f"{prefix}:validity_checked_at", _utc(signer.validity_checked_at)),
                (f"{prefix}:validity_basis", signer.validity_basis),
                (f"{prefix}:trust_anchor", signer.trust_anchor),
            ]
    return pairs


def _utc(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None
