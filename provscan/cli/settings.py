"""What did a command ask for? The parsed flags as small frozen values.

The commands turn their named parameters into these; checking and the many-target runner
take them instead of a dict of flags. They hold only plain data (paths, strings, numbers,
tuples), so that `check --jobs N` can send them to spawned worker processes (pickled).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from provscan.signing.layout import DEFAULT_SHARD_SIZE

if TYPE_CHECKING:
    from provscan.probes.engine import EngineName

# --budget: (forward passes, seconds); one of the two is set.
Budget = tuple[int | None, float | None]


@dataclass(frozen=True)
class ScanSettings:
    """How a target is read and hashed, and what its signatures are checked against."""

    workers: int | None = None
    serialization: Literal["files", "shards"] = "files"
    shard_size: int = DEFAULT_SHARD_SIZE
    signatures: tuple[Path, ...] = ()
    trusted_keys: tuple[Path, ...] = ()
    trusted_cas: tuple[Path, ...] = ()
    sigstore_trusted_root: Path | None = None
    download: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    offline: bool = False


@dataclass(frozen=True)
class EngineChoice:
    """Where the Rego policy runs (--policy-engine, --opa-binary, --opa-url, --opa-token-env)."""

    policy_engine: str = "regopy"
    opa_binary: str = "opa"
    opa_url: str | None = None
    opa_token_env: str | None = None


@dataclass(frozen=True)
class DecisionSettings:
    """Which packs and config decide, whom to trust, and how long the policy may take."""

    policies: tuple[str, ...] = ()
    config_path: Path | None = None
    engine: EngineChoice = EngineChoice()
    trusted_identities: tuple[str, ...] = ()
    trusted_issuers: tuple[str, ...] = ()
    policy_timeout: float = 60.0
    config_from_target: bool = False


@dataclass(frozen=True)
class ProbeRequest:
    """The probe flags as given (provscan.cli.probe_request turns them into ProbeOptions)."""

    engine: EngineName = "transformers"
    device: str | None = None
    suite: str = "default"
    prompts: Path | None = None
    weights_base: str | None = None
    budget: Budget | None = None
    base_url: str | None = None
    served_model: str | None = None
    batch_size: int = 64
    tensor_parallel_size: int = 1


@dataclass(frozen=True)
class CheckSettings:
    """Everything `provscan check TARGET` needs besides the target (the same for each one)."""

    decision: DecisionSettings
    scan: ScanSettings
    probes: ProbeRequest | None = None
