"""Which models does a Hub model derive from? Walk `base_model` on the Hub, bounded and cycle-safe.

From the target's `model_info`, breadth-first over its base models (the card's `base_model`,
the Hub's `baseModels` and `base_model:*` tags), one `model_info` per model: the given revision
for the target, the default branch for ancestors, each resolved to its commit. A model that
cannot be fetched (missing, private, rate limited, a timeout) or is not followed (depth or count
limit) is a node with an `error`, never an exception: the scan goes on and the policy decides;
only an answer that breaks a bound of `hub.session.hub_traffic` (size, deadline, redirect) raises.
Cycles and limits are `problems`. Card values are cut to `MAX_TEXT` characters.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from provscan.hub.http import HubLimitError, http_status, is_retryable, limit_error, retry_delay
from provscan.report import Relation

if TYPE_CHECKING:
    from huggingface_hub import HfApi, ModelInfo
    from huggingface_hub.hf_api import ExpandModelProperty_T

MAX_TEXT = 200
MAX_BASES = 16  # base models followed per model (a merge of more is cut, and says so)
RELATIONS: frozenset[str] = frozenset({"finetune", "adapter", "merge", "quantized"})
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_EXPAND: list[ExpandModelProperty_T] = ["author", "baseModels", "cardData", "gated", "sha", "tags"]


@dataclass(frozen=True)
class HubModel:
    """One model of the lineage, as its `model_info` showed it (or why it could not)."""

    repo_id: str
    depth: int  # base_model hops from the target (0)
    revision: str | None = None  # asked for: the target's revision; None (default branch) above
    sha: str | None = None  # the commit `model_info` resolved
    license: tuple[str, ...] = ()  # card `license` (else the Hub's `license:` tags)
    license_name: str | None = None
    license_link: str | None = None
    author: str | None = None
    gated: str | bool | None = None  # "auto" | "manual" | False; metadata stays public
    base_models: tuple[str, ...] = ()
    relations: tuple[Relation, ...] = ()  # how it was made from each of `base_models`
    error: str | None = None  # why it was not fetched; its own bases are then unknown


class HubEdge(NamedTuple):
    child: str
    base: str
    relation: Relation


@dataclass(frozen=True)
class HubLineage:
    """The target (`nodes[0]`), its ancestors, edges child -> base, the roots, what went wrong."""

    nodes: tuple[HubModel, ...]
    edges: tuple[HubEdge, ...]
    roots: tuple[str, ...]  # fetched models that declare no base model
    problems: tuple[str, ...]

    def node(self, repo_id: str) -> HubModel | None:
        return next((n for n in self.nodes if n.repo_id.casefold() == repo_id.casefold()), None)


def walk_base_models(
    repo_id: str,
    revision: str | None,
    *,
    api: HfApi,
    max_depth: int = 8,
    max_models: int = 32,
    timeout: float = 10.0,
    retries: int = 1,
    sleep: Callable[[float], None] = time.sleep,
) -> HubLineage:
    """The base-model lineage of `repo_id@revision`: at most `max_models` model_info calls
    (plus `retries` per model on HTTP 429 / 5xx / timeouts), `max_depth` hops."""
    retries = max(retries, 0)
    nodes: dict[str, HubModel] = {}
    edges: list[HubEdge] = []
    problems: list[str] = []
    queue: deque[tuple[str, int]] = deque([(repo_id, 0)])
    seen = {repo_id.casefold()}
    graph: dict[str, list[str]] = {}  # child (case-folded) -> its bases
    fetched = 0
    while queue:
        name, depth = queue.popleft()
        rev = revision if depth == 0 else None
        if fetched >= max_models:
            problems.append(f"model limit {max_models} reached: {name} not fetched")
            nodes[name.casefold()] = HubModel(name, depth, rev, error="not fetched: model limit")
            continue
        fetched += 1
        for attempt in range(retries + 1):
            try:
                info = api.model_info(name, revision=rev, timeout=timeout, expand=_EXPAND)
                node = _model(info, name, depth, rev, problems)
                break
            except Exception as exc:  # noqa: BLE001 - every failure becomes a reason on the node
                if (limit := limit_error(exc)) is not None:  # a hostile answer: fail closed
                    raise HubLimitError(limit.message, limit.remedy) from exc
                wait = _retry_after(exc, attempt)
                if wait is None or attempt == retries:
                    node = HubModel(name, depth, rev, error=_reason(exc, rev))
                    problems.append(f"{name}: {node.error}")
                    break
                sleep(wait)
        nodes[name.casefold()] = node
        for base, relation in zip(node.base_models, node.relations, strict=True):
            edges.append(HubEdge(name, base, relation))
            graph.setdefault(name.casefold(), []).append(base)
            if base.casefold() in seen:
                if loop := _path(graph, base, name):  # name's base already reaches name
                    problems.append("cycle: " + " -> ".join([name, *loop]))
                continue
            seen.add(base.casefold())
            if depth < max_depth:
                queue.append((base, depth + 1))
            else:
                problems.append(f"depth limit {max_depth}: {base} (base of {name}) not followed")
                nodes[base.casefold()] = HubModel(base, depth + 1, error="not fetched: depth limit")
    ordered = tuple(nodes.values())
    roots = tuple(n.repo_id for n in ordered if n.error is None and not n.base_models)
    return HubLineage(ordered, tuple(edges), roots, tuple(dict.fromkeys(problems)))


def _model(
    info: ModelInfo, name: str, depth: int, revision: str | None, problems: list[str]
) -> HubModel:
    """The node for one model_info: licence, gating, and its base models with their relation."""
    card: Any = info.card_data
    get: Callable[[str], Any] = card.get if card is not None else (lambda key: None)
    tags = [t for t in info.tags or [] if isinstance(t, str)]
    hub_bases = cast(Any, getattr(info, "base_models", None))  # {"relation", "models": [{"id"}]}
    hub_relation = hub_bases.get("relation") if isinstance(hub_bases, dict) else None
    listed = hub_bases.get("models") if isinstance(hub_bases, dict) else hub_bases
    tagged: dict[str, str] = {}
    for tag in tags:
        parts = tag.split(":")
        if parts[0] == "base_model" and len(parts) in (2, 3):
            tagged[parts[-1]] = parts[1] if len(parts) == 3 else tagged.get(parts[-1], "")
    claimed = [
        *_strings(get("base_model")),
        *(m.get("id") if isinstance(m, dict) else m for m in _list(listed)),
        *tagged,
    ]
    bases: list[str] = []
    folded = set()
    for base in dict.fromkeys(b for b in claimed if isinstance(b, str)):
        if base.casefold() == name.casefold():
            problems.append(f"{name}: names itself as its base model")
        elif not _REPO_ID.match(base):
            problems.append(f"{name}: base_model {_clip(base)!r} is not a Hub repo id")
        elif base.casefold() not in folded:
            bases.append(base)
            folded.add(base.casefold())
    if len(bases) > MAX_BASES:
        problems.append(f"{name}: {len(bases)} base models, only the first {MAX_BASES} followed")
    chosen = tuple(bases[:MAX_BASES])
    declared, fallback = get("base_model_relation"), "merge" if len(chosen) > 1 else "finetune"
    relations = {
        b: next((r for r in (declared, tagged.get(b), hub_relation) if r in RELATIONS), fallback)
        for b in chosen
    }
    licences = _strings(get("license")) or [t[8:] for t in tags if t.startswith("license:")]
    return HubModel(
        repo_id=name,
        depth=depth,
        revision=revision,
        sha=_text(info.sha),
        license=tuple(_clip(v) for v in licences),
        license_name=_text(get("license_name")),
        license_link=_text(get("license_link")),
        author=_text(info.author),
        gated=info.gated if isinstance(info.gated, str | bool) else None,
        base_models=chosen,
        relations=tuple(cast(Relation, relations[b]) for b in chosen),
    )


def _strings(value: object) -> list[str]:
    """A card value that is a string or a list of them (anything else: none)."""
    items = [value] if isinstance(value, str) else _list(value)
    return [v for v in items if isinstance(v, str) and v.strip()]


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _clip(value: str) -> str:
    return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 3] + "..."


def _text(value: object) -> str | None:
    return _clip(value) if isinstance(value, str) and value.strip() else None


def _retry_after(exc: BaseException, attempt: int) -> float | None:
    """Seconds to wait before trying again, or None when trying again would not help."""
    return retry_delay(exc, attempt, cap=10.0) if is_retryable(exc) else None


def _reason(exc: BaseException, revision: str | None) -> str:
    import httpx2  # huggingface_hub 2.x's HTTP client
    from huggingface_hub import errors

    status, name, text = http_status(exc), type(exc).__name__, (str(exc).splitlines() or [""])[0]
    if isinstance(exc, errors.GatedRepoError):
        return f"gated: the Hub withholds its metadata from this token (HTTP {status})"
    if isinstance(exc, errors.RepositoryNotFoundError):
        return f"not found on the Hub: deleted, renamed, private or misspelt (HTTP {status})"
    if isinstance(exc, errors.RevisionNotFoundError):
        return f"revision {revision!r} not found (HTTP {status})"
    if isinstance(exc, errors.DisabledRepoError):
        return f"disabled on the Hub (HTTP {status})"
    if status == 429:
        return "rate limited by the Hub (HTTP 429); set HF_TOKEN or run again later"
    if status is not None:
        return _clip(f"the Hub answered HTTP {status}: {text}")
    if isinstance(exc, (httpx2.TimeoutException, TimeoutError)):
        return "timed out waiting for the Hub"
    if isinstance(exc, OSError) or is_retryable(exc):
        return _clip(f"could not reach the Hub ({name}: {text})")
    return _clip(f"model_info failed ({name}: {text})")


def _path(graph: dict[str, list[str]], start: str, goal: str) -> list[str] | None:
    """The chain of base models from `start` up to `goal`, if there is one (breadth-first)."""
    paths, queue = {start.casefold(): [start]}, deque([start])
    while queue:
        here = queue.popleft()
        for base in graph.get(here.casefold(), []):
            if base.casefold() not in paths:
                paths[base.casefold()] = [*paths[here.casefold()], base]
                queue.append(base)
    return paths.get(goal.casefold())
