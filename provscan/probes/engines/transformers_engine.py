"""What does a local model say next, computed with transformers on CPU or one CUDA device?

The reference engine: every other engine is checked against it. Weights come only from
safetensors, after `check_loadable` (no remote code, no pickle). Prompts run in batches,
left-padded with an attention mask and explicit position ids, so a prompt's numbers do not
depend on what it is batched with. Decoding is this module's own loop over the KV cache
(not `generate`), so a model's generation_config.json cannot change what greedy means.

Sampling is seeded the way vLLM seeds a request: each prompt draws from its own generator,
seeded with `seed`, n uniforms per step; so the same seed gives the same samples whatever the
batch size, and two identical prompts get identical samples.
"""

from __future__ import annotations

import gc
import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import transformers

from provscan.probes.engine import (
    EngineError,
    EngineInfo,
    NextToken,
    SamplingParams,
    TokenIds,
    chunks,
)
from provscan.probes.engines.loadable import check_loadable

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}

Pick = Callable[[torch.Tensor], torch.Tensor]  # last-position logits [B, V] -> next ids [B]


class TransformersEngine:
    """A causal LM from a local safetensors directory, batched, deterministic."""

    def __init__(
        self,
        model_dir: Path,
        *,
        device: str = "cpu",
        dtype: str | None = None,
        batch_size: int = 64,
    ) -> None:
        if batch_size < 1:
            raise EngineError(f"batch size must be at least 1, not {batch_size}")
        check_loadable(model_dir)
        self._device = _resolve_device(device)
        self._dtype = _resolve_dtype(dtype, self._device)
        self._batch_size = batch_size
        self._model: Any = _load(model_dir, self._device, self._dtype)
        forward = inspect.signature(self._model.forward).parameters
        self._takes_positions = "position_ids" in forward
        self._takes_logits_to_keep = "logits_to_keep" in forward
        # The KV cache's keyword: `cache` since transformers renamed it (5.2x), where the old
        # `past_key_values` still works but warns of its removal; `past_key_values` before.
        self._cache_arg = "cache" if "cache" in forward else "past_key_values"
        self._vocab = int(self._model.get_input_embeddings().num_embeddings)
        pad = getattr(self._model.config, "pad_token_id", None)
        # Padded positions are masked out, so the pad id only has to be a valid index.
        self._pad = pad if isinstance(pad, int) and 0 <= pad < self._vocab else 0
        self._info = EngineInfo(
            name="transformers",
            version=transformers.__version__,
            model=str(model_dir),
            device=str(self._device),
            dtype=str(self._dtype).removeprefix("torch."),
        )

    @property
    def info(self) -> EngineInfo:
        return self._info

    @torch.inference_mode()
    def next_token(
        self, prompts: Sequence[TokenIds], *, top_k: int, token_ids: TokenIds = ()
    ) -> list[NextToken]:
        rows = self._rows(prompts)
        chosen = [int(t) for t in token_ids]
        results: list[NextToken] = []
        for chunk in chunks(rows, self._batch_size):
            ids, mask, positions = self._left_pad(chunk)
            logits, _ = self._forward(ids, mask, positions, None, use_cache=False)
            results.extend(_distributions(torch.log_softmax(logits, dim=-1), top_k, chosen))
        return results

    @torch.inference_mode()
    def greedy(
        self, prompts: Sequence[TokenIds], *, max_tokens: int, stop_ids: TokenIds = ()
    ) -> list[tuple[int, ...]]:
        rows = self._rows(prompts)
        outputs: list[tuple[int, ...]] = []
        for chunk in chunks(rows, self._batch_size):
            outputs.extend(self._decode(chunk, max_tokens, stop_ids, _argmax))
        return outputs

    @torch.inference_mode()
    def sample(
        self, prompts: Sequence[TokenIds], params: SamplingParams
    ) -> list[list[tuple[int, ...]]]:
        _check_sampling(params)
        n = params.n
        rows = self._rows(prompts)
        per_chunk = max(1, self._batch_size // n)  # whole prompts only: each owns a generator
        outputs: list[tuple[int, ...]] = []
        for chunk in chunks(rows, per_chunk):
            pick = _argmax if params.temperature == 0 else self._sampler(len(chunk), params)
            repeated = [row for row in chunk for _ in range(n)]
            outputs.extend(self._decode(repeated, params.max_tokens, params.stop_ids, pick))
        return [outputs[i * n : (i + 1) * n] for i in range(len(rows))]

    def close(self) -> None:
        self._model = None
        gc.collect()
        if self._device.type == "cuda":
            torch.cuda.empty_cache()

    # -- batching ----------------------------------------------------------------------

    def _rows(self, prompts: Sequence[TokenIds]) -> list[list[int]]:
        if self._model is None:
            raise EngineError("the transformers engine was closed")
        rows = [[int(t) for t in prompt] for prompt in prompts]
        for index, row in enumerate(rows):
            if not row:
                raise EngineError(f"prompt {index} is empty; a prompt needs at least one token")
            bad = [t for t in row if not 0 <= t < self._vocab]
            if bad:
                raise EngineError(
                    f"prompt {index} holds token id {bad[0]}, outside the vocabulary (0..{self._vocab - 1})"
                )
        return rows

    def _left_pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token ids, attention mask and position ids, each [B, width], on the device."""
        width = max(len(row) for row in rows)
        ids = torch.full((len(rows), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for index, row in enumerate(rows):
            ids[index, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[index, width - len(row) :] = 1
        # Positions count real tokens only, as if each prompt ran alone.
        positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)
        return ids.to(self._device), mask.to(self._device), positions.to(self._device)

    def _forward(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        past: Any,
        *,
        use_cache: bool,
    ) -> tuple[torch.Tensor, Any]:
        """Float32 logits at the last position [B, V], and the KV cache."""
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "use_cache": use_cache}
        if past is not None:
            kwargs[self._cache_arg] = past
        if self._takes_positions:
            kwargs["position_ids"] = positions
        if self._takes_logits_to_keep:
            kwargs["logits_to_keep"] = 1  # [B, L, V] logits of a long prompt would dwarf the model
        with self._guard(len(ids)):
            output = self._model(**kwargs)
            logits = output.logits[:, -1, :].float()
        return logits, getattr(output, self._cache_arg) if use_cache else None

    @contextmanager
    def _guard(self, batch: int) -> Iterator[None]:
        """A forward pass that fails says why, as an EngineError (never a silent pass)."""
        try:
            yield
        except torch.cuda.OutOfMemoryError as error:
            if self._device.type == "cuda":
                torch.cuda.empty_cache()
            raise EngineError(
                f"out of memory on {self._device} running a batch of {batch} "
                f"({str(error).splitlines()[0]}); lower --batch-size or use a larger GPU",
                "lower --batch-size or use a larger GPU",
            ) from error
        except (RuntimeError, ValueError, IndexError) as error:
            raise EngineError(
                f"the model's forward pass failed on {self._device}: {type(error).__name__}: {error}"
            ) from error

    # -- decoding ----------------------------------------------------------------------

    def _decode(
        self, rows: list[list[int]], max_tokens: int, stop_ids: TokenIds, pick: Pick
    ) -> list[tuple[int, ...]]:
        """Up to max_tokens per row, each row ending after its first stop id."""
        if max_tokens < 0:
            raise EngineError(f"max_tokens must be at least 0, not {max_tokens}")
        if max_tokens == 0:
            return [() for _ in rows]
        ids, mask, positions = self._left_pad(rows)
        stops = torch.tensor(
            sorted({int(t) for t in stop_ids}), dtype=torch.long, device=self._device
        )
        finished = torch.zeros(len(rows), dtype=torch.bool, device=self._device)
        logits, past = self._forward(ids, mask, positions, None, use_cache=True)
        position = positions[:, -1:]
        steps: list[torch.Tensor] = []
        for step in range(max_tokens):
            token = pick(logits)
            steps.append(token)
            finished |= torch.isin(token, stops)
            if step == max_tokens - 1 or bool(finished.all()):
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
            position = position + 1
            logits, past = self._forward(token[:, None], mask, position, past, use_cache=True)
        return _cut_at_stops(torch.stack(steps, dim=1).tolist(), set(stops.tolist()))

    def _sampler(self, prompts: int, params: SamplingParams) -> Pick:
        """Temperature and nucleus sampling; prompt i's n rows draw from generator i."""
        generators = [self._generator(params.seed) for _ in range(prompts)]

        def pick(logits: torch.Tensor) -> torch.Tensor:
            uniforms = torch.cat(
                [
                    torch.rand(params.n, generator=g, device=self._device, dtype=torch.float64)
                    for g in generators
                ]
            )
            return _nucleus(logits, uniforms, params.temperature, params.top_p)

        return pick

    def _generator(self, seed: int) -> torch.Generator:
        try:
            return torch.Generator(device=self._device).manual_seed(seed)
        except (RuntimeError, ValueError) as error:
            raise EngineError(f"seed {seed} is not usable: {error}") from error


def _argmax(logits: torch.Tensor) -> torch.Tensor:
    return logits.argmax(dim=-1)


def _nucleus(
    logits: torch.Tensor, uniforms: torch.Tensor, temperature: float, top_p: float
) -> torch.Tensor:
    """Inverse-CDF sampling over the smallest most-likely set holding top_p of the mass."""
    probs = torch.softmax(logits.double() / temperature, dim=-1)
    ranked, order = probs.sort(dim=-1, descending=True, stable=True)
    before = ranked.cumsum(dim=-1) - ranked  # mass strictly above each token; the first is kept
    kept = torch.where(before < top_p, ranked, torch.zeros_like(ranked))
    cdf = kept.cumsum(dim=-1)
    target = (uniforms * cdf[:, -1]).unsqueeze(-1)
    index = torch.searchsorted(cdf, target, right=True).clamp(max=ranked.shape[-1] - 1)
    return order.gather(-1, index).squeeze(-1)


def _distributions(logprobs: torch.Tensor, top_k: int, chosen: list[int]) -> list[NextToken]:
    width = logprobs.shape[-1]
    if top_k < 0:
        raise EngineError(f"top_k must be at least 0, not {top_k}")
    bad = [t for t in chosen if not 0 <= t < width]
    if bad:
        raise EngineError(
            f"token id {bad[0]} is outside the model's output vocabulary (0..{width - 1})"
        )
    values, indices = logprobs.topk(min(top_k, width), dim=-1)
    picked = logprobs[:, chosen].tolist() if chosen else [[] for _ in range(len(logprobs))]
    return [
        NextToken(top=tuple(zip(ids, lps, strict=True)), chosen=dict(zip(chosen, row, strict=True)))
        for ids, lps, row in zip(indices.tolist(), values.tolist(), picked, strict=True)
    ]


def _cut_at_stops(rows: list[list[int]], stops: set[int]) -> list[tuple[int, ...]]:
    cut: list[tuple[int, ...]] = []
    for row in rows:
        end = next((i + 1 for i, token in enumerate(row) if token in stops), len(row))
        cut.append(tuple(row[:end]))
    return cut


def _check_sampling(params: SamplingParams) -> None:
    if params.n < 1:
        raise EngineError(f"n must be at least 1, not {params.n}")
    if params.temperature < 0:
        raise EngineError(f"temperature must be at least 0, not {params.temperature}")
    if not 0 < params.top_p <= 1:
        raise EngineError(f"top_p must be in (0, 1], not {params.top_p}")


def _resolve_device(device: str) -> torch.device:
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError) as error:
        raise EngineError(f"unknown device {device!r}: {error}") from error
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise EngineError(
                f"device {device!r} asked for, but CUDA is not available to torch {torch.__version__}",
                "run on a machine with a GPU and a CUDA build of torch, or use --device cpu",
            )
        if resolved.index is None:
            resolved = torch.device("cuda", torch.cuda.current_device())
    return resolved


def _resolve_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    if dtype is None or dtype == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype not in _DTYPES:
        raise EngineError(f"unknown dtype {dtype!r}; choose one of auto, {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


def _load(model_dir: Path, device: torch.device, dtype: torch.dtype) -> Any:
    # transformers draws a "Loading weights" bar on stderr; provscan draws its own progress.
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        model: Any = transformers.AutoModelForCausalLM.from_pretrained(
            model_dir,
            use_safetensors=True,  # never the pickle path, even if a .bin sits beside
            trust_remote_code=False,
            local_files_only=True,
            dtype=dtype,
        )
        model.to(device)
    except torch.cuda.OutOfMemoryError as error:
        raise EngineError(
            f"out of memory on {device} loading {model_dir} as {dtype}; use a larger GPU",
            "use a larger GPU, or the vllm engine with --tensor-parallel-size",
        ) from error
    except Exception as error:  # transformers raises many kinds; all mean "could not load"
        raise EngineError(
            f"{model_dir}: transformers could not load the model ({type(error).__name__}: {error})"
        ) from error
    model.eval()
    return model
