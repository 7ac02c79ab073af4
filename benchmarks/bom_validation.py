"""Why provscan validates AI-BOMs with its own schema walk: time it against the library's.

cyclonedx-python-lib's JsonStrictValidator checks `uniqueItems` pairwise, which grows with
the square of the file count; provscan/emit/bom/schema.py validates against the same
CycloneDX 1.6 schema files with a linear uniqueness check. This renders (and so validates)
a BOM for a model of N files, then validates the same text with the library, and prints
both times and their ratio. Usage: python benchmarks/bom_validation.py [N ...]
"""

from __future__ import annotations

import argparse
import time

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from fixtures.models import DEMO_DIR
from provscan.emit.cyclonedx import render_cyclonedx
from provscan.pipeline import scan
from provscan.report import FileEntry, FileFormat, FileRole


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("counts", nargs="*", type=int, default=[500, 2000, 5000])
    args = parser.parse_args()
    base = scan(str(DEMO_DIR))
    print(f"{'files':>7}  {'provscan render+validate':>25}  {'library validate only':>22}  ratio")
    for count in args.counts:
        files = tuple(
            FileEntry(
                path=f"model-{i:05d}.safetensors",
                size=1,
                format=FileFormat.SAFETENSORS,
                role=FileRole.WEIGHTS,
                sha256=f"{i:064x}",
            )
            for i in range(count)
        )
        report = base.model_copy(update={"files": files})
        start = time.perf_counter()
        bom = render_cyclonedx(report)
        ours = time.perf_counter() - start
        start = time.perf_counter()
        error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(bom)
        theirs = time.perf_counter() - start
        assert error is None, error
        print(f"{count:>7}  {ours:>24.2f}s  {theirs:>21.2f}s  {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
