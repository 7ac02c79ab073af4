#!/usr/bin/env bash
# The probe engines on a machine with an NVIDIA GPU, in one go:
#   1. install provscan with the probes and vllm extras into a fresh virtualenv (.venv-gpu;
#      vLLM pins its own CUDA build of torch, so no CPU constraints file here), unless
#      --no-install says to use the active environment (a machine without PyPI access);
#   2. the GPU tests (tests/probes/test_gpu.py: transformers on CUDA and vLLM give the CPU
#      engine's numbers, and the default suite's verdicts on the shipped backdoored, clean,
#      phrase-trigger, late-payload, system-turn and habit fixtures);
#   3. benchmarks/probes.py through every engine the machine has: passes, engine work,
#      seconds, findings per family, and the 8B/H100 projection from the measured rate.
# Usage: bash benchmarks/gpu_probes.sh [--no-install]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "gpu_probes: no nvidia-smi on this machine: nothing to measure" >&2
    exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if [ "${1:-}" != "--no-install" ]; then
    python3 -m venv .venv-gpu
    # shellcheck disable=SC1091
    . .venv-gpu/bin/activate
    python -m pip install --quiet -e '.[test,probes,vllm]'
fi
python - <<'PY'
import importlib.metadata as m
for name in ("torch", "transformers", "vllm"):
    try:
        print(f"{name} {m.version(name)}")
    except m.PackageNotFoundError:
        print(f"{name} not installed")
PY
status=0
python -m pytest -m gpu -n 0 tests/probes/test_gpu.py -v -rs || status=$?
python benchmarks/probes.py || status=$?
exit "$status"
