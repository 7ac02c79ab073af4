"""How did the signer hash the model, if not as the scan did? Hash it again with model_signing.

A signature made with BLAKE2 or BLAKE3, or with another shard size than the scan's manifest,
cannot be compared with the hashing step's SHA-256 manifest; model_signing's own hashing
builds the manifest the signer did (a second read of every file, which the report records
as `compared_with: rehash`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from provscan.report import Manifest, ManifestResource, SignedSerialization

# Builds the target's manifest the way a signature says (another hash or serialization),
# leaving out the paths given.
RehashFn = Callable[[SignedSerialization, Sequence[str]], Manifest]


def model_signing_rehash(root: Path) -> RehashFn:
    """A RehashFn that hashes `root` with model_signing itself (a second read of every file)."""

    def rehash(serialization: SignedSerialization, ignored: Sequence[str]) -> Manifest:
        from model_signing import hashing  # loads slowly: only for a signature hashed otherwise

        paths = sorted(set(ignored))
        config = hashing.Config().set_ignored_paths(  # type: ignore[no-untyped-call]
            paths=[root / p for p in paths], ignore_git_paths=True
        )
        # The API's name for BLAKE2b is "blake2"; model_signing 1.1.1's own verify passes
        # the recorded "blake2b" and so cannot check its BLAKE2 signatures.
        algorithm = "blake2" if serialization.hash_type == "blake2b" else serialization.hash_type
        if serialization.method == "shards":
            config.use_shard_serialization(
                hashing_algorithm=algorithm,
                shard_size=serialization.shard_size or 1_000_000_000,
                allow_symlinks=True,
            )
        else:
            config.use_file_serialization(hashing_algorithm=algorithm, allow_symlinks=True)
        theirs = config.hash(root)
        resources = tuple(
            ManifestResource(
                name=str(r.identifier), algorithm=r.digest.algorithm, digest=r.digest.digest_hex
            )
            for r in theirs.resource_descriptors()
        )
        return Manifest(
            model_name=root.name,
            method=serialization.method,
            hash_type=serialization.hash_type,
            allow_symlinks=True,
            ignore_paths=tuple(paths),
            shard_size=serialization.shard_size,
            resources=resources,
            root_digest="",
        )

    return rehash
