"""Which model family, and so which publisher, do the family signals point to?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from provscan.knowledge.base import (
    FamilyEntry,
    PublisherEntry,
    family_base,
    family_by_key,
    publisher_by_key,
)
from provscan.report import Confidence, FamilySignal

_STRENGTH = {"strong": 3, "weak": 1}


@dataclass(frozen=True)
class FamilyDecision:
    """The family the files show, or, when families of one publisher tie, that publisher."""

    family: FamilyEntry | None
    publisher: PublisherEntry | None  # the family's publisher (or the tied families' one)
    confidence: Confidence
    candidates: tuple[FamilyEntry, ...] = ()  # the tied families when family is None

    @property
    def label(self) -> str:
        if self.family is not None:
            return self.family.name
        return " or ".join(f.name for f in self.candidates)

    @property
    def keys(self) -> tuple[str, ...]:
        return (
            (self.family.key,) if self.family is not None else tuple(c.key for c in self.candidates)
        )


def decide_family(
    signals: Sequence[FamilySignal], matched: dict[str, set[str]] | None = None
) -> FamilyDecision:
    """The family with the most evidence.

    Families that tie for the lead are told apart by their tokenizer signatures: one whose
    matched special tokens include every other leader's and more (Gemma 3's image tokens
    beside the turn tokens Gemma and Gemma 2 share) is the more specific match. Leaders
    that still tie leave the family undecided; when they all belong to one publisher
    (Qwen2 and Qwen3 names, Gemma 2 and 3), that publisher is still the answer, at
    medium confidence at most.
    """
    matched = matched or {}
    scores: dict[str, int] = {}
    for signal in signals:
        scores[signal.family] = scores.get(signal.family, 0) + _STRENGTH[signal.strength]
    if not scores:
        return FamilyDecision(None, None, "low")
    top = max(scores.values())
    leaders = [key for key, score in scores.items() if score == top]
    if len(leaders) > 1:
        specific = [
            key
            for key in leaders
            if all(matched.get(o, set()) < matched.get(key, set()) for o in leaders if o != key)
        ]
        if len(specific) == 1:
            return _decided(specific[0], signals, cap="medium")
        entries = [e for e in (family_by_key(key) for key in leaders) if e is not None]
        owners = {e.publisher for e in entries}
        if len(owners) != 1:
            return FamilyDecision(None, None, "low")
        strong = {s.signal for s in signals if s.family in leaders and s.strength == "strong"}
        confidence: Confidence = "medium" if strong else "low"
        return FamilyDecision(None, publisher_by_key(owners.pop()), confidence, tuple(entries))
    return _decided(leaders[0], signals)


def _decided(
    key: str, signals: Sequence[FamilySignal], cap: Confidence | None = None
) -> FamilyDecision:
    entry = family_by_key(key)
    if entry is None:
        return FamilyDecision(None, None, "low")
    own = [s for s in signals if s.family == key]
    strong = {s.signal for s in own if s.strength == "strong"}
    confidence: Confidence = "high" if len(strong) >= 2 else "medium" if strong else "low"
    if confidence == "low" and _declared_with_own_vocab(own):
        confidence = "medium"
    if cap == "medium" and confidence == "high":
        confidence = "medium"
    return FamilyDecision(entry, publisher_by_key(entry.publisher), confidence)


_DECLARED = frozenset({"model_type", "architecture", "gguf"})


def _declared_with_own_vocab(own: Sequence[FamilySignal]) -> bool:
    """A shared model_type / architecture (llama, LlamaForCausalLM) together with a
    vocabulary size no other family uses (Llama 3's 128256): medium evidence. A model
    built from scratch would have to reuse both the architecture and that vocabulary."""
    if not any(s.signal in _DECLARED and not s.detail.startswith("vocab_size") for s in own):
        return False
    for signal in own:
        if not signal.detail.startswith("vocab_size "):
            continue
        value = int(signal.detail.removeprefix("vocab_size "))
        owners = [f for f in family_base().families if value in f.tokenizer.vocab_sizes]
        if len(owners) == 1:
            return True
    return False
