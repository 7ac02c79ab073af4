"""What does a model say next when vLLM runs it, on one GPU or many (offline `vllm.LLM`)?

For models too large or probes too many for transformers. The model directory passes
`check_loadable` first, and vLLM is told the same rules: `trust_remote_code=False`,
`load_format="safetensors"` (never a pickle), `generation_config="vllm"` (the model's
generation_config.json sets no defaults), `skip_tokenizer_init=True` (prompts are token ids;
nothing is ever detokenised). Prefix caching is on: probe prompts share long prefixes.

Every prompt goes to vLLM in one `generate` call (its scheduler batches continuously).
Requests are `TokensPrompt(prompt_token_ids=...)` with explicit `SamplingParams`:
`ignore_eos=True`, so only the probe's `stop_token_ids` end a sequence; greedy is
`temperature=0`; sampling is seeded per request, so two identical prompts with one seed give
identical samples, as in the transformers engine. Top-k log-probabilities are vLLM's raw
ones (`logprobs_mode` default raw_logprobs: before temperature or penalties), up to
`max_logprobs`. Requested ids outside the top-k come from a second request with
`logprob_token_ids` (recent vLLM; older builds lack it, and such ids are then -inf).
Multi-node: `distributed_executor_backend="ray"` with `tensor_parallel_size` over the nodes'
GPUs. For batch-invariant numerics set `VLLM_BATCH_INVARIANT=1` in the environment.

vLLM is imported lazily (it pins its own torch and needs CUDA); without it: EngineError.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from provscan.probes.engine import (
    EngineError,
    EngineInfo,
    NextToken,
    SamplingParams,
    TokenIds,
    chunks,
    install_command,
)
from provscan.probes.engines.loadable import check_loadable
from provscan.probes.engines.openai_engine import MAX_LOGPROB_TOKEN_IDS, next_token_from_steps

NOT_INSTALLED = f"vLLM is not installed: {install_command('vllm')} on a machine with a GPU"


def import_vllm() -> tuple[Any, Any]:
    """The `vllm` module and its TokensPrompt, or EngineError saying how to get them."""
    try:  # heavy, and optional (the `vllm` extra): imported when an engine is made
        import vllm
        from vllm.inputs import TokensPrompt
    except ImportError as error:
        raise EngineError(NOT_INSTALLED) from error
    except Exception as error:  # e.g. a CUDA library that does not match vLLM's build
        raise EngineError(
            f"vLLM is installed but failed to import ({type(error).__name__}: {error})",
            "install vLLM in an environment of its own, on a machine with a GPU",
        ) from error
    return vllm, TokensPrompt


class VllmEngine:
    """A causal LM from a local safetensors directory, run by vLLM's offline engine."""

    def __init__(
        self,
        model_dir: Path,
        *,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.85,
        distributed_executor_backend: str | None = None,
        max_model_len: int | None = None,
        seed: int = 0,
        max_logprobs: int = 20,
    ) -> None:
        check_loadable(model_dir)
        vllm, self._tokens_prompt = import_vllm()
        self._sampling_params = vllm.SamplingParams
        options: dict[str, Any] = {
            "model": str(model_dir),
            "trust_remote_code": False,
            "load_format": "safetensors",
            "generation_config": "vllm",
            "skip_tokenizer_init": True,
            "enable_prefix_caching": True,
            "tensor_parallel_size": tensor_parallel_size,
            "dtype": dtype,
            "gpu_memory_utilization": gpu_memory_utilization,
            "seed": seed,
            "max_logprobs": max_logprobs,
        }
        if distributed_executor_backend is not None:
            options["distributed_executor_backend"] = distributed_executor_backend
        if max_model_len is not None:
            options["max_model_len"] = max_model_len
        try:
            self._llm: Any = vllm.LLM(**options)
        except Exception as error:  # vLLM raises many kinds; all mean "could not load"
            raise _engine_error(f"vLLM could not load {model_dir}", error) from error
        device = (
            "cuda"
            if tensor_parallel_size == 1
            else f"cuda (tensor_parallel_size={tensor_parallel_size})"
        )
        self._info = EngineInfo(
            name="vllm",
            version=str(getattr(vllm, "__version__", "unknown")),
            model=str(model_dir),
            device=device,
            dtype=_loaded_dtype(self._llm, dtype),
        )

    @property
    def info(self) -> EngineInfo:
        return self._info

    def next_token(
        self, prompts: Sequence[TokenIds], *, top_k: int, token_ids: TokenIds = ()
    ) -> list[NextToken]:
        rows = _rows(prompts)
        chosen = list(dict.fromkeys(int(t) for t in token_ids))
        top = self._params(max_tokens=1, temperature=0.0, logprobs=top_k)
        steps = [first_step(output) for output in self._generate(rows, [top] * len(rows))]
        extra: list[dict[int, float]] = [{} for _ in rows]
        if any(t not in step for step in steps for t in chosen):
            for ids in chunks(chosen, MAX_LOGPROB_TOKEN_IDS):
                params = self._id_params(ids)
                if params is None:
                    break  # this vLLM has no logprob_token_ids: absent ids stay -inf
                for have, output in zip(
                    extra, self._generate(rows, [params] * len(rows)), strict=True
                ):
                    have.update(first_step(output))
        return [
            next_token_from_steps(step, more, top_k, chosen)
            for step, more in zip(steps, extra, strict=True)
        ]

    def greedy(
        self, prompts: Sequence[TokenIds], *, max_tokens: int, stop_ids: TokenIds = ()
    ) -> list[tuple[int, ...]]:
        rows = _rows(prompts)
        if max_tokens <= 0:
            return [() for _ in rows]
        params = self._params(max_tokens=max_tokens, temperature=0.0, stop_ids=stop_ids)
        return [
            continuations(output, 1)[0] for output in self._generate(rows, [params] * len(rows))
        ]

    def sample(
        self, prompts: Sequence[TokenIds], params: SamplingParams
    ) -> list[list[tuple[int, ...]]]:
        rows = _rows(prompts)
        n = params.n
        if params.max_tokens <= 0:
            return [[() for _ in range(n)] for _ in rows]
        request = self._params(
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            stop_ids=params.stop_ids,
            n=n,
            top_p=params.top_p,
            seed=params.seed,
        )
        return [continuations(output, n) for output in self._generate(rows, [request] * len(rows))]

    def close(self) -> None:
        self._llm = None
        gc.collect()
        try:
            import torch  # heavy: vLLM has loaded it by now, when it is installed at all

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    # -- requests ----------------------------------------------------------------------

    def _params(self, *, max_tokens: int, temperature: float, **extra: Any) -> Any:
        stop_ids = extra.pop("stop_ids", ())
        options: dict[str, Any] = {
            "max_tokens": max_tokens,
            "temperature": temperature,
            "ignore_eos": True,
            "stop_token_ids": [int(t) for t in stop_ids],
            "detokenize": False,
        }
        try:
            return self._sampling_params(**(options | extra))
        except (TypeError, ValueError) as error:
            raise EngineError(f"vLLM refused the sampling parameters: {error}") from error

    def _id_params(self, ids: list[int]) -> Any | None:
        try:
            return self._sampling_params(
                max_tokens=1,
                temperature=0.0,
                ignore_eos=True,
                detokenize=False,
                logprob_token_ids=ids,
            )
        except TypeError:
            return None

    def _generate(self, rows: list[list[int]], params: list[Any]) -> list[Any]:
        if self._llm is None:
            raise EngineError("the vllm engine was closed")
        prompts = [self._tokens_prompt(prompt_token_ids=row) for row in rows]
        try:
            outputs = list(self._llm.generate(prompts, params, use_tqdm=False))
        except Exception as error:
            raise _engine_error("vLLM failed while generating", error) from error
        if len(outputs) != len(rows):
            raise EngineError(f"vLLM returned {len(outputs)} outputs for {len(rows)} prompts")
        return outputs


# -- parsing vLLM's RequestOutput / CompletionOutput (pure: tested without vLLM) ------------


def first_step(output: Any) -> dict[int, float]:
    """{token id: log-probability} at the first generated position of a RequestOutput."""
    try:
        step: Mapping[int, Any] = output.outputs[0].logprobs[0]
        return {int(token): float(logprob.logprob) for token, logprob in step.items()}
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as error:
        raise EngineError(f"vLLM returned no log-probabilities for a prompt ({error!r})") from error


def continuations(output: Any, n: int) -> list[tuple[int, ...]]:
    """The n generated token-id sequences of a RequestOutput, in sample order."""
    try:
        completions = sorted(output.outputs, key=lambda c: int(c.index))
        sequences = [tuple(int(t) for t in c.token_ids) for c in completions]
    except (AttributeError, TypeError, ValueError) as error:
        raise EngineError(f"vLLM returned a malformed output ({error!r})") from error
    if len(sequences) != n:
        raise EngineError(f"vLLM returned {len(sequences)} samples for n={n}")
    return sequences


def _rows(prompts: Sequence[TokenIds]) -> list[list[int]]:
    rows = [[int(t) for t in prompt] for prompt in prompts]
    for index, row in enumerate(rows):
        if not row:
            raise EngineError(f"prompt {index} is empty; a prompt needs at least one token")
    return rows


def _loaded_dtype(llm: Any, asked: str) -> str:
    try:
        return str(llm.llm_engine.model_config.dtype).removeprefix("torch.")
    except AttributeError:
        return asked


def _engine_error(what: str, error: Exception) -> EngineError:
    text = f"{type(error).__name__}: {error}"
    if "out of memory" in text.lower():
        return EngineError(
            f"{what}: out of memory on the GPU ({text.splitlines()[0]})",
            "lower gpu_memory_utilization or max_model_len, or raise --tensor-parallel-size",
        )
    return EngineError(f"{what}: {text}")
