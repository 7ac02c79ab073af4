"""Where does a model's own signature sit, which download bookkeeping is never signed, and
how large is a manifest shard by default?"""

from __future__ import annotations

CONVENTIONAL_NAME = "model.sig"
# huggingface_hub's bookkeeping in a `hf download --local-dir` folder (metadata and lock
# files, rewritten on every re-check): never part of what a publisher signed.
HF_LOCAL_DIR_PATHS = (".cache/huggingface",)
# model_signing's default shard size for `--serialization shards` manifests (bytes).
DEFAULT_SHARD_SIZE = 1_000_000_000
