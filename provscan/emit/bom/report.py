"""Where does the AI-BOM carry the scan report it was made from? In one component of type data.

The BOM's own fields say what the policy decided and what the files are, but not every fact
the policy reads (the per-file facts, the signature coverage, the Hub records). So that a BOM
can be judged again by a later policy (`provscan evaluate BOM`), the report itself travels
in it: a top-level component of type `data` whose `data[0].contents.attachment` holds the
report as JSON, with content type application/json, and whose `hashes` give the SHA-256 of
that text. CycloneDX 1.6 defines componentData and its attachment for data that is part of
a BOM: https://cyclonedx.org/docs/1.6/json/#components_items_data

Local paths stay out of the BOM, as everywhere else in it: the embedded report's
`target.root` is empty and `target.input` is the model's name (an hf:// reference is kept;
it is no local path). No policy rule reads either.
"""

from __future__ import annotations

import hashlib
from typing import Any

from provscan.report import Report

REPORT_REF = "report:provscan"
REPORT_NAME = "provscan report"
CONTENT_TYPE = "application/json"


def shareable(report: Report) -> Report:
    """The report without the local paths the scan was run with."""
    target = report.target
    update: dict[str, Any] = {"root": ""}
    if not target.input.startswith("hf://"):
        update["input"] = target.name
    return report.model_copy(update={"target": target.model_copy(update=update)})


def report_component(report: Report) -> dict[str, Any]:
    """The data component that carries `report` (see the module docstring)."""
    content = shareable(report).model_dump_json()
    return {
        "type": "data",
        "bom-ref": REPORT_REF,
        "name": REPORT_NAME,
        "description": (
            f"The provscan scan report (schema {report.schema_version}) this BOM was made "
            "from, with every fact the admission policy reads: `provscan evaluate` decides "
            "it again under another policy."
        ),
        "hashes": [{"alg": "SHA-256", "content": sha256_text(content)}],
        "data": [
            {
                "type": "other",
                "name": REPORT_NAME,
                "contents": {"attachment": {"contentType": CONTENT_TYPE, "content": content}},
            }
        ],
    }


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
