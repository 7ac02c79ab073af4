"""A base model on the Hub as weight evidence needs it: its embedding and output rows, by range.

`--weights-base hf://ORG/NAME[@REV]` compares the model with a base that is not on disk. Weight
evidence reads two matrices of the base (``provscan/probes/weights.py``), a few percent of an
8B model's 16 GB (Llama 3 8B: two 128,256 x 4,096 BF16 matrices, 1 GB each), so only they are
fetched:

- the commit's listing and every top-level ``*.safetensors`` file's header, as a metadata-only
  hf:// scan reads them (``resolve.hub_metadata.resolve_metadata_only``, inside
  ``hub.session.hub_traffic``'s bounds): small files come whole into the HF cache, the others
  become sparse stand-ins in a private temporary directory, as long as the file and holding
  only its header;
- the embedding and output tensors are found in those headers by the same names and checks
  as on a local base; each one's bytes are fetched by Range GETs (``hub.ranges.fetch_range``)
  and written into its stand-in at their offset. Nothing else of the file is read, and the
  weight reader then reads the stand-ins as local files.

A stand-in's other tensors read as zeros; nothing but the two matrices is ever read from it.
A byte range the server does not serve exactly is an error naming the file (never zeros read
as weights): the caller turns it into PRB-WEIGHT-UNREADABLE, and the probes still run.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from provscan.errors import ProvscanError
from provscan.hub.ranges import fetch_range
from provscan.hub.ref import HubOptions, parse_hub_target
from provscan.hub.session import hub_traffic
from provscan.limits import Limits
from provscan.probes.weights import WeightError, WeightLimits, _matrices
from provscan.resolve.hub_metadata import resolve_metadata_only


@contextlib.contextmanager
def hub_base(target: str, limits: Limits) -> Iterator[Path]:
    """A directory of the base's safetensors files with their embedding and output matrices
    readable (the rest holes), for the duration of the block."""
    ref = parse_hub_target(target)
    options = HubOptions(include=("*.safetensors",))
    with contextlib.ExitStack() as stack:
        stack.enter_context(hub_traffic(limits))
        resolved = resolve_metadata_only(target, ref, limits, options)
        stack.enter_context(resolved.cleanup)
        commit = resolved.info.revision or ""
        weights = {f.rel: f for f in resolved.files if "/" not in f.rel}
        if not weights:
            raise WeightError(f"{ref}: no top-level *.safetensors weights at commit {commit}")
        view = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="provscan-base-")))
        for rel, file in weights.items():
            (view / rel).symlink_to(file.path)
        try:
            embedding, output = _matrices(view, WeightLimits())
        except WeightError as exc:  # name the Hub file, not the temporary stand-in
            raise WeightError(exc.message.replace(f"{view}/", f"{ref}: ")) from exc
        for matrix in (embedding, output):
            if matrix is None:
                continue
            file = weights[matrix.path.name]
            if file.read == "whole":
                continue  # downloaded whole: already complete
            data_start = 8 + matrix.header.header_len
            start, end = data_start + matrix.info.start, data_start + matrix.info.end
            try:
                with open(file.path, "r+b") as stand_in:
                    for offset, data in fetch_range(ref.repo_id, commit, file.rel, start, end):
                        os.pwrite(stand_in.fileno(), data, offset)
            except ProvscanError as exc:
                raise WeightError(f"{matrix.info.name}: {exc.message}") from exc
            except OSError as exc:
                raise WeightError(f"{file.rel}: cannot write its stand-in: {exc}") from exc
        yield view
