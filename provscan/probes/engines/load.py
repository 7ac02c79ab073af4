"""May this model directory be loaded to run probes, and with which engine?

`check_loadable` is the one gate every local engine (transformers, vLLM) passes before it
loads anything: weights only from safetensors, a config.json that names a causal-LM class
transformers ships, no `auto_map` anywhere in it (that key is how a repository asks a
loader to import and run its own Python), and no adapter_config.json (an adapter is probed
merged into its base, as it will ship). The checks read JSON only; they never import
model code. `make_engine` turns the CLI's engine flags into an `Engine`, importing the
heavy libraries (torch, transformers, vllm) only for the engine asked for.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from provscan.collectors.base import load_json_object
from provscan.errors import UsageError
from provscan.files import ScanFile
from provscan.limits import DEFAULT_LIMITS
from provscan.probes.engine import Engine, EngineError, MissingExtra

ENGINE_NAMES = ("transformers", "vllm", "openai")
_PROBES_EXTRA = "pip install 'provscan[probes]'"
# What each engine imports, by the extra (pyproject.toml) that installs it. Every engine reads
# the model's tokenizer.json with `tokenizers`; the openai engine needs nothing else.
_NEEDS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "transformers": (("probes", ("torch", "transformers", "tokenizers")),),
    "vllm": (("vllm", ("vllm",)), ("probes", ("tokenizers",))),
    "openai": (("probes", ("tokenizers",)),),
}


def require_extras(engine: str, command: str | None = None) -> None:
    """Raise MissingExtra, one line naming the extra to install, unless the libraries the
    engine imports are installed. Looked up, not imported: a missing extra is known before
    anything is scanned, at no cost."""
    for extra, modules in _NEEDS.get(engine, ()):
        missing = [m for m in modules if not installed(m)]
        if missing:
            who = "the probes need" if extra == "probes" else f"the {extra} engine needs"
            verb = "is" if len(missing) == 1 else "are"
            raise MissingExtra(
                f"{command + ': ' if command else ''}{who} the '{extra}' extra "
                f"({' and '.join(missing)} {verb} not installed): pip install 'provscan[{extra}]'"
            )


def installed(module: str) -> bool:
    """Whether `module` can be imported here (found, not imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # an import hook that refuses it, or a parent package that is missing
        return False
    except ValueError:  # already imported without a spec (a module made in place)
        return module in sys.modules


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
    try:
        import transformers
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    except ImportError as error:
        raise EngineError(f"transformers is not installed ({error})", _PROBES_EXTRA) from error
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


def make_engine(
    name: str,
    target: Path,
    *,
    device: str | None,
    base_url: str | None,
    served_model: str | None,
    batch_size: int,
    tensor_parallel_size: int,
    api_key: str | None = None,
) -> Engine:
    """The engine the CLI asked for, loaded (or connected) and ready."""
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {batch_size}")
    if name == "transformers":
        from provscan.probes.engines.transformers_engine import TransformersEngine

        return TransformersEngine(target, device=device or "cpu", batch_size=batch_size)
    if name == "vllm":
        if device is not None and not device.startswith("cuda"):
            raise UsageError(f"the vllm engine runs on CUDA GPUs, not {device!r}")
        from provscan.probes.engines.vllm_engine import VllmEngine

        return VllmEngine(target, tensor_parallel_size=tensor_parallel_size)
    if name == "openai":
        if not base_url:
            raise UsageError("the openai engine needs --base-url (e.g. http://host:8000/v1)")
        from provscan.probes.engines.openai_engine import OpenAIEngine, served_models

        model = served_model or _only_served_model(served_models(base_url, api_key=api_key))
        return OpenAIEngine(base_url, model, api_key=api_key, batch_size=batch_size)
    raise UsageError(f"unknown engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}")


def _only_served_model(models: list[str]) -> str:
    if len(models) == 1:
        return models[0]
    raise UsageError(
        f"the server serves {len(models)} models ({', '.join(models) or 'none'}); "
        "name one with --served-model"
    )
