"""Which callables named in a Keras config can run code when the model loads?"""

from __future__ import annotations

from typing import Any

from provscan.collectors.serialization.pickle.globals import GlobalVerdict, classify_global
from provscan.report import Severity

# Packages a Keras config may reference in ordinary models.
KERAS_MODULE_PREFIXES = (
    "keras",
    "keras_hub",
    "keras_nlp",
    "keras_cv",
    "tensorflow.keras",
    "tf_keras",
)
# References into these run code whatever Keras' safe_mode says (any name inside them).
DANGEROUS_MODULES = (
    "os",
    "posix",
    "nt",
    "subprocess",
    "sys",
    "shutil",
    "runpy",
    "pty",
    "socket",
    "importlib",
    "pickle",
    "marshal",
    "ctypes",
    "webbrowser",
    "code",
)
# Keras APIs that are not model building blocks: they read, write or download files, load
# other models, or switch safe_mode off. Keras 3.11 and later refuse all but TFSMLayer by
# these names (serialization_lib.NON_MODELING_APIS, after CVE-2025-8747 and CVE-2025-9906);
# TFSMLayer loads a SavedModel from a path (CVE-2026-1462).
KERAS_UNSAFE_NAMES = frozenset(
    {
        "enable_unsafe_deserialization",
        "get_file",
        "load_model",
        "model_from_json",
        "load_weights",
        "save_model",
        "save_weights",
        "deserialize_keras_object",
        "serialize_keras_object",
        "register_keras_serializable",
        "load_img",
        "save_img",
        "image_dataset_from_directory",
        "text_dataset_from_directory",
        "audio_dataset_from_directory",
        "clear_session",
        "TFSMLayer",
    }
)
LAMBDA_LAYERS = frozenset({"Lambda"})
TF_OP_LAYERS = frozenset({"TFOpLambda", "SlicingOpLambda"})
# TensorFlow APIs a TFOpLambda can name that read or write files, run Python or load code.
TF_UNSAFE_PREFIXES = (
    "io.",
    "py_function",
    "numpy_function",
    "compat.v1.py_func",
    "compat.v1.io.",
    "compat.v1.gfile.",
    "compat.v1.read_file",
    "compat.v1.write_file",
    "raw_ops.",
    "saved_model.",
    "load_op_library",
    "load_library",
    "keras.",
)
# Keras' own special objects: values, not callables.
SPECIAL_CLASS_NAMES = frozenset(
    {
        "__keras_tensor__",
        "__tensor__",
        "__numpy__",
        "__bytes__",
        "__ellipsis__",
        "__slice__",
    }
)


def is_keras_module(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in KERAS_MODULE_PREFIXES)


def last_part(name: Any) -> str:
    """The final component of a dotted or registered ('package>Name') name."""
    if not isinstance(name, str):
        return ""
    return name.replace(">", ".").rsplit(".", 1)[-1]


def judge_callable(module: str, name: str) -> tuple[Severity, str] | None:
    """Severity and reason for a config reference to module.name, or None when it is fine."""
    if is_keras_module(module):
        if last_part(name) in KERAS_UNSAFE_NAMES:
            return Severity.CRITICAL, (
                "a Keras API that is not a model building block (reads, writes or downloads "
                "files, loads other models, or turns safe_mode off)"
            )
        return None
    qualified = f"{module}.{name}"
    verdict, why = classify_global(qualified, name=name)
    if verdict is GlobalVerdict.DANGEROUS:
        return Severity.CRITICAL, why or "runs code"
    if module.split(".")[0] in DANGEROUS_MODULES:
        return Severity.CRITICAL, f"{module} runs code, processes, files or network access"
    if verdict is GlobalVerdict.ALLOWED:
        return None
    return Severity.HIGH, "a module outside Keras"
