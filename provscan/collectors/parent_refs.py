"""A stated parent model (a card's base_model, a config's _name_or_path, an adapter's base, a
GGUF base_model.N.repo_url, a mergekit parent) read as a Hub repo id, or refused; never dropped.

Every value that has to be changed to read as `org/name` (invisible characters, surrounding
whitespace, a Unicode compatibility form, a look-alike letter from another script, a Hub URL) is kept with an ORG-BASE-NORMALISED
finding; every value that cannot be read as one (a local path, a wrong type, an empty string,
anything else) is an ORG-BASE-UNRESOLVED finding. Both name the file, the field and the value
as stated.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from provscan.collectors.normalise import normalise
from provscan.files import ScanFile, read_scanned
from provscan.parsing import HostileData, parse_yaml
from provscan.report import Finding, Severity, file_finding

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
NORMALISED = "ORG-BASE-NORMALISED"
UNRESOLVED = "ORG-BASE-UNRESOLVED"
MERGEKIT_FILES = frozenset({"mergekit_config.yml", "mergekit_config.yaml"})
_STATED_MAX = 200
# huggingface.co / hf.co, any scheme or none, `www.`, then org/name and optionally what a
# browser adds after it: /tree/<rev>, /blob/..., /resolve/..., a trailing slash, a query.
_HUB_URL = re.compile(
    r"^(?:https?://)?(?:www\.)?(?:huggingface\.co|hf\.co)/"
    r"(?P<org>[^/\s?#]+)/(?P<name>[^/\s?#]+)"
    r"(?:/(?:tree|blob|resolve|commit|commits|raw)(?:/[^?#]*)?)?/?(?:[?#].*)?$",
    re.IGNORECASE,
)
# Hub URL paths that are not a model repo.
_NOT_MODELS = frozenset({"datasets", "spaces", "docs", "blog", "papers", "collections", "api"})
_WINDOWS_PATH = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")


def shown(value: object) -> str:
    """The value as stated, for a message: its repr, cut to about 200 characters."""
    text = repr(value)
    return text if len(text) <= _STATED_MAX else text[: _STATED_MAX - 3] + "..."


def resolve_parent(
    value: object, path: str, field: str, *, loaded_from: bool = False
) -> tuple[str | None, Finding | None]:
    """(repo id, finding) for a stated parent reference found in `path` under `field`.

    The repo id is None when the value is refused (the finding says why). `loaded_from`: the
    field records where the weights were loaded from (config.json `_name_or_path`): a local
    path or a bare name there is the usual case, so refusing it is low, not high.
    """
    if not isinstance(value, str):
        return None, _unresolved(
            path, field, value, f"is a {type(value).__name__}, not a string", Severity.HIGH
        )
    normal = normalise(value)
    text = normal.text
    reasons = list(normal.changes)
    deceptive = normal.deceptive
    refusal = Severity.LOW if loaded_from else Severity.HIGH
    if not text:
        return None, _unresolved(path, field, value, "is empty", refusal)
    repo = hub_repo_of_url(text)
    if repo is not None:
        reasons.append("a Hub URL reduced to its repo id")
    elif _local_path(text):
        why = (
            "is a local path: where the weights were loaded from, not a Hub repo"
            if loaded_from
            else "is a local path, not a Hub repo"
        )
        return None, _unresolved(path, field, value, why, refusal)
    elif REPO_ID.match(text):
        repo = text
    else:
        why = "is not a Hub repo id (org/name)"
        if loaded_from:
            why += ": a relative local path or an unqualified name the weights were loaded from"
        return None, _unresolved(path, field, value, why, refusal)
    if not reasons:
        return repo, None
    severity = Severity.HIGH if deceptive else Severity.MEDIUM
    message = f"{path} {field}: base model stated as {shown(value)} is read as {repo} ({'; '.join(reasons)})"
    if deceptive:
        message += ": the stated name only looks like the repo it names"
    finding = file_finding(
        NORMALISED,
        severity,
        path,
        message,
        field=field,
        stated=shown(value),
        repo_id=repo,
        changes=list(reasons),
    )
    return repo, finding


def hub_repo_of_url(text: str) -> str | None:
    """The model repo id a Hub URL (huggingface.co or hf.co, any form) points into."""
    match = _HUB_URL.match(text)
    if match is None or match.group("org").casefold() in _NOT_MODELS:
        return None
    name = match.group("name")
    name = name[:-4] if name.endswith(".git") else name
    repo = f"{match.group('org')}/{name}"
    return repo if REPO_ID.match(repo) else None


def _local_path(text: str) -> bool:
    if text.startswith(("/", "~", "./", "../", ".\\", "..\\", "file:")) or text in {".", ".."}:
        return True
    if "\\" in text or _WINDOWS_PATH.match(text):
        return True
    # A Hub repo id has one slash; more (and no URL scheme) is a directory path.
    return "://" not in text and text.count("/") > 1


def _unresolved(path: str, field: str, value: object, why: str, severity: Severity) -> Finding:
    return file_finding(
        UNRESOLVED,
        severity,
        path,
        f"{path} {field}: base model stated as {shown(value)} {why}; "
        "what the model derives from through it is unknown",
        field=field,
        stated=shown(value),
        problem=why,
    )


# ---------------------------------------------------------------- mergekit


def mergekit_refs(file: ScanFile, max_bytes: int) -> tuple[list[tuple[object, str]], list[Finding]]:
    """Every parent a mergekit config names, as (stated value, field), or why none can be read.

    Parents sit under `base_model`, `models: - model:`, `slices: - sources: - model:` and (a
    mixture of experts) `experts: - source_model:`. A `model+lora` value is split in two, and a
    `@revision` suffix dropped (mergekit's own syntax); each part is returned on its own.
    """
    document, problem = _load_yaml(file, max_bytes)
    if problem is not None:
        return [], [_unreadable(file.rel, problem)]
    if not isinstance(document, dict):
        return [], [_unreadable(file.rel, f"a YAML {type(document).__name__}, not a mapping")]
    found: list[tuple[object, str]] = []
    findings: list[Finding] = []
    if "base_model" in document and document["base_model"] is not None:
        found += _model_ref(document["base_model"], "base_model")
    for section, key in (("models", "model"), ("experts", "source_model")):
        for index, entry in _entries(document, section, file.rel, findings):
            if isinstance(entry, dict) and key in entry:
                found += _model_ref(entry[key], f"{section}[{index}].{key}")
            else:
                found.append((entry, f"{section}[{index}]"))
    for index, slice_ in _entries(document, "slices", file.rel, findings):
        sources = slice_.get("sources") if isinstance(slice_, dict) else slice_
        where = f"slices[{index}].sources"
        if not isinstance(sources, list):
            found.append((sources, where))
            continue
        for number, source in enumerate(sources):
            if isinstance(source, dict) and "model" in source:
                found += _model_ref(source["model"], f"{where}[{number}].model")
            else:
                found.append((source, f"{where}[{number}]"))
    return found, findings


def _load_yaml(file: ScanFile, max_bytes: int) -> tuple[Any, str | None]:
    if file.read != "whole":
        return None, "only part of it was downloaded"
    if file.size > max_bytes:
        return None, f"larger than {max_bytes} bytes"
    try:
        raw = read_scanned(file, max_bytes)
        if len(raw) > max_bytes:
            return None, f"larger than {max_bytes} bytes"
        return parse_yaml(raw.decode("utf-8")), None
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})"
    except HostileData as exc:
        return None, exc.problem
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except yaml.YAMLError as exc:
        return None, f"not valid YAML ({str(exc).splitlines()[0] if str(exc) else exc})"


def _entries(
    document: dict[Any, Any], section: str, rel: str, findings: list[Finding]
) -> list[tuple[int, Any]]:
    value = document.get(section)
    if value is None:
        return []
    if not isinstance(value, list):
        findings.append(_unresolved(rel, section, value, "is not a list of models", Severity.HIGH))
        return []
    return list(enumerate(value))


def _model_ref(value: object, field: str) -> list[tuple[object, str]]:
    """`org/name`, `org/name@rev`, `org/name+lora`, or mergekit's mapping forms of them."""
    if isinstance(value, str):
        model, plus, lora = value.partition("+")
        refs: list[tuple[object, str]] = [(_no_revision(model), field)]
        if plus:
            refs.append((_no_revision(lora), f"{field} (LoRA)"))
        return refs
    if isinstance(value, dict):
        if "path" in value:
            return [(value["path"], f"{field}.path")]
        if "model" in value:
            refs = _model_ref(value["model"], f"{field}.model")
            if value.get("lora") is not None:
                refs += _model_ref(value["lora"], f"{field}.lora")
            return refs
    return [(value, field)]


def _no_revision(ref: str) -> str:
    head, at, revision = ref.rpartition("@")
    return head if at and head and "/" not in revision else ref


def _unreadable(rel: str, problem: str) -> Finding:
    return file_finding(
        UNRESOLVED,
        Severity.HIGH,
        rel,
        f"{rel}: the mergekit config cannot be read ({problem}); the models it merges are unknown",
        field="(file)",
        problem=problem,
    )
