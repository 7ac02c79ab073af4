"""May this model directory be loaded to run probes? The gate every local engine passes first.

`check_loadable` is the one gate every local engine (transformers, vLLM) passes before it
loads anything: weights only from safetensors, a config.json that names a causal-LM class
transformers ships, no `auto_map` anywhere in it (that key is how a repository asks a
loader to import and run its own Python), and no adapter_config.json (an adapter is probed
merged into its base, as it will ship). The checks read JSON only; they never import
model code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from provscan.collectors.base import load_json_object
from provscan.files import ScanFile
from provscan.limits import DEFAULT_LIMITS
from provscan.probes.engine import EngineError, install_command


def check_loadable(model_dir: Path) -> None:
    """Raise EngineError (naming the file and the problem) unless `model_dir` is safe to load."""
    if not model_dir.is_dir():
        raise EngineError(f"{model_dir}: not a directory; probes load a model directory")
    config = _read_config(model_dir / "config.json")
    _refuse_auto_map(config, model_dir / "config.json")
    _require_shipped_architecture(config, model_dir / "config.json")
    _require_safetensors(model_dir)
    _refuse_adapter(model_dir)


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise EngineError(
            f"{path}: missing; without it no engine can tell which class to load",
            "probes need a Hugging Face model directory (config.json + *.safetensors)",
        )
    # The same bounded JSON reader the collectors use for config.json.
    file = ScanFile(rel=path.name, path=path, size=path.stat().st_size)
    config, problem = load_json_object(file, DEFAULT_LIMITS.json_file_max)
    if config is None:
        raise EngineError(f"{path}: {problem}")
    return config


def _refuse_auto_map(node: Any, path: Path, where: str = "") -> None:
    """`auto_map` at any depth (sub-configs such as text_config may carry one too)."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}.{key}" if where else str(key)
            if key == "auto_map":
                raise EngineError(
                    f"{path}: key '{here}' asks the loader to run the repository's own Python "
                    "code; provscan never runs model code (trust_remote_code stays off)",
                    "probe only models whose architecture ships with transformers",
                )
            _refuse_auto_map(value, path, here)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            _refuse_auto_map(item, path, f"{where}[{index}]")


def _require_shipped_architecture(config: dict[str, Any], path: Path) -> None:
    shipped_types, shipped_classes, version = _causal_lm_classes()
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in shipped_types:
        raise EngineError(
            f"{path}: key 'model_type' is {model_type!r}, not a causal-LM type transformers "
            f"{version} ships",
            "probes run only architectures that ship with transformers (no remote code)",
        )
    architectures = config.get("architectures")
    if not isinstance(architectures, list) or not architectures:
        raise EngineError(f"{path}: key 'architectures' is missing or empty")
    for name in architectures:
        if not isinstance(name, str) or name not in shipped_classes:
            raise EngineError(
                f"{path}: key 'architectures' names {name!r}, not a causal-LM class "
                f"transformers {version} ships",
                "probes run only architectures that ship with transformers (no remote code)",
            )


def _causal_lm_classes() -> tuple[set[str], set[str], str]:
    """transformers' own causal-LM table: model types, class names, library version."""
    try:  # heavy, and optional (the `probes` extra): imported only to check a model
        import transformers
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    except ImportError as error:
        raise EngineError(
            f"transformers is not installed ({error})", install_command("probes")
        ) from error
    classes: set[str] = set()
    for value in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values():
        classes.update([value] if isinstance(value, str) else value)
    return set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES), classes, transformers.__version__


def _require_safetensors(model_dir: Path) -> None:
    if any(p.is_file() for p in model_dir.glob("*.safetensors")):
        return
    others = sorted(
        p.name for p in model_dir.iterdir() if p.suffix in {".bin", ".pt", ".pth", ".ckpt", ".pkl"}
    )
    found = f" (found {', '.join(others)}, which only a pickle loader reads)" if others else ""
    raise EngineError(
        f"{model_dir}: no *.safetensors weights{found}; probes load weights only from "
        "safetensors, never through torch.load",
        "convert the weights to safetensors in a sandbox, then scan the converted model",
    )


def _refuse_adapter(model_dir: Path) -> None:
    """With peft installed, transformers would load an adapter (and fetch its base model)."""
    if (model_dir / "adapter_config.json").exists():
        raise EngineError(
            f"{model_dir / 'adapter_config.json'}: an adapter directory; probes run whole models",
            "merge the adapter into its base model, then scan the merged model that will ship",
        )
