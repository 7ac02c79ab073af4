"""Under what licence may this model be used, and on what terms?

Every source in the artifact is read and kept as evidence: the card's `license`,
`license_name`, `license_link` and prose (licence_stated), the text of LICENSE / NOTICE /
USE_POLICY files (identified by text, with a similarity score; licence_evidence), GGUF
`general.license*`, config fields, and the licence a known official release was published
under. The licences that bind the model, its own and inherited ones, and the conflicts
between sources are then concluded (licence_conclude). A text provscan cannot identify is
reported with its hash.
"""

from __future__ import annotations

from collections.abc import Sequence

from provscan.collectors.base import Collected, load_json_object
from provscan.collectors.licence_conclude import conclude
from provscan.collectors.licence_evidence import licence_text_evidence
from provscan.collectors.licence_stated import Gathered, card_evidence, gguf_evidence, looked_up
from provscan.files import SniffedFile
from provscan.knowledge.base import known_model
from provscan.limits import Limits
from provscan.report import (
    CardFacts,
    FileFormat,
    LicenceEvidence,
    LicenceFacts,
    OriginFacts,
    TargetInfo,
)


def collect_licence(
    files: Sequence[SniffedFile],
    target: TargetInfo,
    card: CardFacts | None,
    origin: OriginFacts | None,
    limits: Limits,
) -> Collected[LicenceFacts]:
    gathered = Gathered()
    card_evidence(card, gathered)
    # Licence files by name and by content, any encoding; split texts put back together.
    file_evidence, file_findings = licence_text_evidence(files)
    gathered.evidence.extend(file_evidence)
    gathered.findings.extend(file_findings)
    for item in files:
        if item.format is FileFormat.GGUF:
            gguf_evidence(item, gathered)
    config = next((f for f in files if f.file.rel == "config.json"), None)
    if config is not None:
        document, _problem = load_json_object(config.file, limits.json_file_max)
        value = document.get("license") if document else None
        if isinstance(value, str) and value.strip():
            gathered.evidence.append(looked_up("config", value, "config.json", gathered))
    own = known_model(target.repo_id) if target.repo_id else None
    if own is not None:
        gathered.evidence.append(
            LicenceEvidence(
                source="knowledge:model",
                value=f"{target.repo_id} (known release; {own.source})",
                key=own.licence,
                kind="licence",
            )
        )
    facts = conclude(gathered, origin, own)
    return Collected(value=facts, findings=tuple(gathered.findings))
