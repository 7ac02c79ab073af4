"""Where does a model's own signature sit, and which download bookkeeping is never signed?"""

from __future__ import annotations

CONVENTIONAL_NAME = "model.sig"
# huggingface_hub's bookkeeping in a `hf download --local-dir` folder (metadata and lock
# files, rewritten on every re-check): never part of what a publisher signed.
HF_LOCAL_DIR_PATHS = (".cache/huggingface",)
